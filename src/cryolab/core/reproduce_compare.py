"""Comparing a reproduced run's outputs with the original's, within stated tolerances.

One output pair gives a verdict, ``identical``, ``within tolerance`` or ``differs``, with the
figures behind it. Rows are matched order-insensitively, because parallel steps append in
completion order: a single row with a single row; by uid when both sets hold the same uids; by
the identifiers carried from the inputs (``*_uid`` columns equal in both) when they tell the
rows apart; else by sorting on the value columns. ``uid`` values and ``*_uid`` columns that
name newly drawn items are identifiers, not results: they are reported but never make a
difference.

- Runs of *deterministic* protocols (:attr:`Protocol.deterministic`) must have the same sizes,
  columns and properties, and equal values within ``rtol``/``atol``.
- Others are compared statistically: sizes within ``count_rtol``, each numeric column's
  distribution by a two-sample Kolmogorov-Smirnov test (p-value at least ``ks_alpha``).

Columns that only *point* to data (image files) are compared by an :class:`ItemComparator`
that a plugin names for the set type (``Plugin.comparators``); the engine knows no file format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from cryolab.core.compare import distribution_diff, uid_overlap
from cryolab.core.plugins import registry
from cryolab.core.runs import OutputRef
from cryolab.core.sets import UID, Set

IDENTICAL = "identical"
WITHIN = "within tolerance"
NOT_COMPARED = "not compared"
DIFFERS = "differs"
VERDICTS = (IDENTICAL, WITHIN, NOT_COMPARED, DIFFERS)  # from best to worst


def worst(verdicts: Iterable[str]) -> str:
    """The worst of ``verdicts`` (``identical`` when there are none)."""
    return max(verdicts, key=VERDICTS.index, default=IDENTICAL)


@dataclass(frozen=True)
class Tolerances:
    """The tolerances of a reproduction, printed in every report.

    Parameters
    ----------
    rtol, atol
        Deterministic runs: numeric values ``a``, ``b`` agree when
        ``|a - b| <= atol + rtol * |b|`` (as ``numpy.isclose``); pixel data agree when the
        largest difference is at most ``atol + rtol * max|b|`` of the image. Room for
        BLAS and compiler differences between machines; equal bits are ``identical``.
    count_rtol
        Statistical comparison: set sizes may differ by this fraction of the larger one.
    ks_alpha
        Statistical comparison: a numeric column differs when the two-sample
        Kolmogorov-Smirnov test rejects equal distributions at this level (p < ks_alpha).
    min_correlation
        Statistical comparison of images and volumes: the least Pearson correlation of an
        item's pixels with the original's.
    min_fsc, fsc_up_to
        Statistical comparison of volumes: the Fourier shell correlation of a map with the
        original must stay at least ``min_fsc`` in every shell up to ``fsc_up_to`` times the
        Nyquist frequency.
    """

    rtol: float = 1e-5
    atol: float = 1e-8
    count_rtol: float = 0.05
    ks_alpha: float = 0.01
    min_correlation: float = 0.95
    min_fsc: float = 0.5
    fsc_up_to: float = 0.5

    def to_dict(self) -> dict[str, float]:
        """The tolerances as JSON data."""
        return asdict(self)

    def __str__(self) -> str:
        return " ".join(f"{k}={v:g}" for k, v in self.to_dict().items())


@dataclass(frozen=True)
class CompareContext:
    """What an :class:`ItemComparator` needs besides the two sets.

    ``source_root``/``reproduced_root`` are the two projects' folders (relative file names
    in a set are relative to them unless the set's ``root`` property says otherwise).
    """

    tolerances: Tolerances
    deterministic: bool
    source_root: Path
    reproduced_root: Path


class ItemComparator(Protocol):
    """Compares what columns of a set only point to, e.g. the pixels of image files.

    A plugin names one per set type in ``Plugin.comparators`` (``"module:attribute"``); the
    most specific type of an output's type chain that has one is used.
    """

    def columns(self, names: Sequence[str]) -> list[str]:
        """The columns among ``names`` this comparator compares (the engine skips them)."""
        ...

    def compare(self, source: Set, reproduced: Set, context: CompareContext) -> dict[str, Any]:
        """Compare row ``i`` of ``source`` with row ``i`` of ``reproduced`` (rows matched).

        Returns JSON data with at least ``verdict`` (one of :data:`VERDICTS`) and
        ``summary`` (one line); the rest are the figures behind the verdict.
        """
        ...


def compare_outputs(
    source: OutputRef | None, reproduced: OutputRef | None, context: CompareContext
) -> dict[str, Any]:
    """Compare one output of a source run with the same output of its reproduction."""
    result: dict[str, Any] = {
        "count": {"source": _count(source), "reproduced": _count(reproduced)},
        "verdict": DIFFERS,
        "summary": "",
    }
    if source is None or reproduced is None:
        result["summary"] = "declared by only one of the runs"
        return result
    if not source.exists and not reproduced.exists:
        result.update(verdict=IDENTICAL, summary="not written by either run")
        return result
    if not source.exists or not reproduced.exists:
        missing = "the reproduction" if source.exists else "the source"
        result["summary"] = f"not written by {missing}"
        return result
    set_a, set_b = source.load(), reproduced.load()
    comparator = registry.comparator(source.types)
    claimed = comparator.columns(set_a.columns) if comparator is not None else []
    result.update(_compare_sets(set_a, set_b, context, claimed))
    order = result.pop("_order", None)
    if order is not None:  # whether the paired rows sit at the same positions
        result["row_order"] = "same" if np.array_equal(order[0], order[1]) else "different"
    if comparator is not None and claimed and order is not None:
        images = comparator.compare(set_a.take(order[0]), set_b.take(order[1]), context)
        result["items"] = images
        result["verdict"] = worst([result["verdict"], images["verdict"]])
        if images["verdict"] != IDENTICAL:
            result["summary"] = "; ".join(filter(None, [result["summary"], images["summary"]]))
    elif claimed:
        result["items"] = {
            "verdict": NOT_COMPARED,
            "summary": f"{', '.join(claimed)} not compared (items not paired: sizes differ)",
        }
    if not result["summary"]:
        result["summary"] = result["verdict"]
    return result


def _count(ref: OutputRef | None) -> int | None:
    return None if ref is None else ref.count


def _compare_sets(
    set_a: Set, set_b: Set, context: CompareContext, claimed: Sequence[str]
) -> dict[str, Any]:
    table_a, table_b = set_a.to_arrow(), set_b.to_arrow()
    names_a, names_b = table_a.column_names, table_b.column_names
    result: dict[str, Any] = {
        "uids": uid_overlap(table_a.column(UID).to_numpy(), table_b.column(UID).to_numpy()),
        "matched_by": None,
        "columns": {},
        "notes": [],
    }
    verdicts: list[str] = []
    problems: list[str] = []
    only = [c for c in names_a if c not in names_b] + [c for c in names_b if c not in names_a]
    if only:
        verdicts.append(DIFFERS)
        problems.append(f"columns in one set only: {', '.join(only)}")
    shared = [c for c in names_a if c in names_b and c != UID and c not in claimed]
    renewed = [c for c in shared if c.endswith("_uid") and not _same_values(table_a, table_b, c)]
    if renewed:
        result["notes"].append(f"identifiers drawn anew: {', '.join(renewed)}")
    if result["uids"]["relation"] != "equal":
        result["notes"].append("item uids drawn anew")
    values = [c for c in shared if c not in renewed]
    exact = None
    for order in _pairings(table_a, table_b, values):
        found = _exact_columns(table_a, table_b, values, order, context)
        if exact is None or _differing(found) < _differing(exact):
            exact, result["matched_by"], result["_order"] = found, order[2], order[:2]
        if not _differing(exact):
            break
    if result["matched_by"] == "sorted rows" and result["uids"]["relation"] == "equal":
        result["notes"].append("item uids given to other items")
    tol = context.tolerances
    deterministic = context.deterministic
    n_a, n_b = table_a.num_rows, table_b.num_rows
    if deterministic:
        if n_a != n_b:
            verdicts.append(DIFFERS)
            problems.append(f"{n_a} items in the source, {n_b} reproduced")
        elif exact is not None:
            result["columns"] = exact
            bad = [c for c, d in exact.items() if d["verdict"] == DIFFERS]
            verdicts += [d["verdict"] for d in exact.values()]
            if bad:
                problems.append(_column_problem(bad, exact))
        props = _compare_properties(set_a.properties, set_b.properties, context)
        result["properties"] = props
        verdicts.append(props["verdict"])
        if props["verdict"] == DIFFERS:
            problems.append(f"properties differ: {', '.join(props['differ'])}")
    else:
        if abs(n_a - n_b) > tol.count_rtol * max(n_a, n_b):
            verdicts.append(DIFFERS)
            problems.append(
                f"{n_a} items in the source, {n_b} reproduced "
                f"(beyond count_rtol {tol.count_rtol:g})"
            )
        if exact is not None and all(d["verdict"] == IDENTICAL for d in exact.values()):
            result["columns"] = exact
            verdicts.append(IDENTICAL if n_a == n_b else WITHIN)
        else:
            stats = _distribution_columns(table_a, table_b, values, tol)
            result["columns"] = stats
            verdicts += [d["verdict"] for d in stats.values()] or [WITHIN]
            bad = [c for c, d in stats.items() if d["verdict"] == DIFFERS]
            if bad:
                problems.append(_column_problem(bad, stats))
            verdicts = [WITHIN if v == IDENTICAL else v for v in verdicts]
        result["properties"] = _compare_properties(set_a.properties, set_b.properties, context)
    result["verdict"] = worst(verdicts)
    result["summary"] = "; ".join(problems)
    return result


def _column_problem(bad: Sequence[str], columns: Mapping[str, Mapping[str, Any]]) -> str:
    parts = []
    for name in bad[:4]:
        figures = columns[name]
        if figures.get("max_abs_diff") is not None:
            parts.append(f"{name} (max |diff| {_g(figures['max_abs_diff'])})")
        elif figures.get("ks_pvalue") is not None:
            parts.append(f"{name} (KS p {_g(figures['ks_pvalue'])})")
        else:
            parts.append(name)
    more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
    if len(bad) == 1:
        return f"column {parts[0]} differs"
    return f"columns {', '.join(parts)}{more} differ"


def _g(value: float) -> str:
    return f"{value:.3g}"


def _values(column: pa.ChunkedArray) -> NDArray[Any]:
    """A column as numpy values: numbers as numbers (nulls as NaN), anything else as objects."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        if column.null_count:
            return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
        return np.asarray(column.to_numpy())
    if pa.types.is_floating(kind):
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.asarray(column.to_pylist(), dtype=object)


def _is_number(values: NDArray[Any]) -> bool:
    return values.dtype.kind in "iufb"


def _same_values(table_a: pa.Table, table_b: pa.Table, name: str) -> bool:
    """Whether a column holds the same multiset of values in both tables."""
    a, b = _values(table_a.column(name)), _values(table_b.column(name))
    if a.shape != b.shape:
        return False
    if _is_number(a) and _is_number(b):
        return bool(np.array_equal(np.sort(a), np.sort(b), equal_nan=a.dtype.kind == "f"))
    return sorted(map(repr, a)) == sorted(map(repr, b))


def _differing(columns: Mapping[str, Mapping[str, Any]]) -> int:
    return sum(d["verdict"] == DIFFERS for d in columns.values())


def _pairings(
    table_a: pa.Table, table_b: pa.Table, keys: Sequence[str]
) -> list[tuple[NDArray[np.int64], NDArray[np.int64], str]]:
    """Row orders that pair the two tables' rows, best first (none when their sizes differ).

    A single row pairs with the single row. Else by uid when both hold the same unique uids,
    by the carried identifiers (the ``*_uid`` columns among ``keys``, which hold the same
    values in both) when they are unique per row, then by sorting on the value columns
    ``keys``: a run may give its new items the same uids in another order (steps that finish
    in another order), so a uid pairing that disagrees is not the last word.
    """
    if table_a.num_rows != table_b.num_rows:
        return []
    if table_a.num_rows == 1:
        single = np.zeros(1, dtype=np.int64)
        return [(single, single, "single row")]
    found = []
    uids_a = table_a.column(UID).to_numpy()
    uids_b = table_b.column(UID).to_numpy()
    sorted_a, sorted_b = np.sort(uids_a), np.sort(uids_b)
    if np.array_equal(sorted_a, sorted_b) and np.unique(sorted_a).size == sorted_a.size:
        found.append((np.argsort(uids_a, kind="stable"), np.argsort(uids_b, kind="stable"), "uid"))
    carried = [k for k in keys if k.endswith("_uid")]
    if carried and _unique_rows(table_a, carried):
        found.append((_sort_order(table_a, carried), _sort_order(table_b, carried), "carried uids"))
    found.append((_sort_order(table_a, keys), _sort_order(table_b, keys), "sorted rows"))
    return found


def _unique_rows(table: pa.Table, keys: Sequence[str]) -> bool:
    """Whether the values of ``keys`` tell every row apart."""
    rows = zip(*(map(repr, _values(table.column(k))) for k in keys), strict=True)
    return bool(len(set(rows)) == table.num_rows)


def _sort_order(table: pa.Table, keys: Sequence[str]) -> NDArray[np.int64]:
    """Rows sorted lexicographically on ``keys`` (first key most significant)."""
    columns = []
    for name in keys:
        values = _values(table.column(name))
        if not _is_number(values):
            values = np.unique(np.asarray([repr(v) for v in values]), return_inverse=True)[1]
        columns.append(values)
    if not columns:
        return np.arange(table.num_rows)
    order: NDArray[np.int64] = np.lexsort(columns[::-1])
    return order


def _normaliser(root: Path) -> Any:
    """Text with the project folder and run folder numbers replaced by placeholders."""
    prefix = str(root)

    def normalise(text: str) -> str:
        return re.sub(r"Runs/\d{6}_", "Runs/<run>_", text.replace(prefix, "<project>"))

    return normalise


def _exact_columns(
    table_a: pa.Table,
    table_b: pa.Table,
    names: Sequence[str],
    order: tuple[NDArray[np.int64], NDArray[np.int64], str],
    context: CompareContext,
) -> dict[str, dict[str, Any]]:
    """Per column: identical, within rtol/atol, or differs (rows paired by ``order``)."""
    tol = context.tolerances
    text_a = _normaliser(context.source_root)
    text_b = _normaliser(context.reproduced_root)
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        a = _values(table_a.column(name))[order[0]]
        b = _values(table_b.column(name))[order[1]]
        if _is_number(a) and _is_number(b):
            found[name] = _numeric_diff(a, b, tol)
        else:
            same = all(
                text_a(x) == text_b(y) if isinstance(x, str) and isinstance(y, str) else x == y
                for x, y in zip(a, b, strict=True)
            )
            found[name] = {"verdict": IDENTICAL if same else DIFFERS}
    return found


def _numeric_diff(a: NDArray[Any], b: NDArray[Any], tol: Tolerances) -> dict[str, Any]:
    floating = a.dtype.kind == "f" or b.dtype.kind == "f"
    if np.array_equal(a, b, equal_nan=floating):
        return {"verdict": IDENTICAL, "max_abs_diff": 0.0}
    if not floating:  # integers (counts, ids, classes) agree exactly or not at all
        mismatches = int(np.count_nonzero(a != b))
        largest = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
        return {"verdict": DIFFERS, "max_abs_diff": largest, "mismatches": mismatches}
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    same_nan = np.isnan(fa) == np.isnan(fb)
    with np.errstate(invalid="ignore"):
        diff = np.abs(fa - fb)
        close = np.isclose(fa, fb, rtol=tol.rtol, atol=tol.atol, equal_nan=True) & same_nan
        scale = np.abs(fb)
        relative = np.where(scale > 0, diff / np.where(scale > 0, scale, 1), np.inf)
    finite = np.isfinite(diff)
    return {
        "verdict": WITHIN if bool(close.all()) else DIFFERS,
        "max_abs_diff": float(diff[finite].max()) if finite.any() else None,
        "max_rel_diff": _finite(float(relative[finite & (diff > 0)].max(initial=0.0))),
        "mismatches": int(np.count_nonzero(~close)),
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _distribution_columns(
    table_a: pa.Table, table_b: pa.Table, names: Sequence[str], tol: Tolerances
) -> dict[str, dict[str, Any]]:
    """Per numeric column: the KS test of the two distributions against ``ks_alpha``."""
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        a, b = _values(table_a.column(name)), _values(table_b.column(name))
        if not (_is_number(a) and _is_number(b)):
            continue
        a = a.astype(np.float64)[np.isfinite(a.astype(np.float64))]
        b = b.astype(np.float64)[np.isfinite(b.astype(np.float64))]
        diff = distribution_diff(a, b)
        pvalue = diff["ks"]["pvalue"]
        passed = pvalue is None or pvalue >= tol.ks_alpha
        found[name] = {
            "verdict": WITHIN if passed else DIFFERS,
            "ks_statistic": diff["ks"]["statistic"],
            "ks_pvalue": pvalue,
            "mean": {"source": diff["a"]["mean"], "reproduced": diff["b"]["mean"]},
        }
    return found


def _compare_properties(
    props_a: Mapping[str, Any], props_b: Mapping[str, Any], context: CompareContext
) -> dict[str, Any]:
    """Set properties: numbers within rtol/atol, text with project paths normalised."""
    text_a = _normaliser(context.source_root)
    text_b = _normaliser(context.reproduced_root)
    tol = context.tolerances
    differ: list[str] = []
    within: list[str] = []

    def walk(a: Any, b: Any, key: str) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for name in [*a, *(k for k in b if k not in a)]:
                walk(a.get(name), b.get(name), f"{key}.{name}" if key else str(name))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{key}[{i}]")
        elif _number(a) and _number(b):
            if a != b:
                close = math.isclose(a, b, rel_tol=tol.rtol, abs_tol=tol.atol)
                (within if close else differ).append(key)
        elif isinstance(a, str) and isinstance(b, str):
            if text_a(a) != text_b(b):
                differ.append(key)
        elif a != b:
            differ.append(key)

    walk(dict(props_a), dict(props_b), "")
    verdict = DIFFERS if differ else WITHIN if within else IDENTICAL
    return {"verdict": verdict, "differ": differ, "within": within}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
