"""Comparison of two runs: what parameters differ and how their outputs differ.

:func:`compare_runs` (``project.compare(a, b)``) returns a :class:`Comparison`, a plain nested
dict (:meth:`Comparison.to_dict`, the ``cryolab compare --json`` structure documented in
``docs/architecture.md``) shown as aligned text (``str``) or an HTML table in notebooks.

Outputs are read column by column from the memory-mapped sets, and every statistic is
vectorised (sorted uids for the overlap, ``scipy.stats.ks_2samp`` for the distributions), so
sets of millions of rows compare in seconds without holding all their columns in memory.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from cryolab.core.runs import OutputRef, Run
from cryolab.core.sets import UID

if TYPE_CHECKING:
    from cryolab.core.project import Project

STATS = ("count", "mean", "std", "min", "25%", "50%", "75%", "max")


class Comparison:
    """The comparison of two runs, as returned by ``project.compare(a, b)``.

    Parameters
    ----------
    data
        The comparison as built by :func:`compare_runs` (see :meth:`to_dict`).
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON data: keys ``a``, ``b``, ``params`` and ``outputs``."""
        return self._data

    def __repr__(self) -> str:
        return f"<Comparison of run {self._data['a']['id']} and run {self._data['b']['id']}>"

    def __str__(self) -> str:
        return _text(self._data)

    def _repr_html_(self) -> str:
        return _html(self._data)


def compare_runs(project: Project, a: int | str, b: int | str) -> Comparison:
    """Compare the parameters and outputs of runs ``a`` and ``b`` of ``project``.

    Parameters
    ----------
    project
        The project holding both runs.
    a, b
        The run ids (``RunNotFoundError`` if one does not exist).
    """
    run_a, run_b = project.get_run(a), project.get_run(b)
    outs_a, outs_b = run_a.out, run_b.out
    names = list(outs_a) + [n for n in outs_b if n not in outs_a]
    return Comparison(
        {
            "a": _run_info(run_a),
            "b": _run_info(run_b),
            "params": param_diff(run_a, run_b),
            "outputs": {n: _output_diff(outs_a.get(n), outs_b.get(n)) for n in names},
        }
    )


def _run_info(run: Run) -> dict[str, Any]:
    return {"id": run.id, "protocol": run.protocol, "status": run.status, "label": run.label}


def param_diff(run_a: Run, run_b: Run) -> dict[str, Any]:
    """The parameters of two runs: ``same_protocol``, ``changed`` (``[{name, a, b}]``),
    ``only_a``/``only_b`` (name to value) and ``unchanged`` (names); the ``params`` of
    :meth:`Comparison.to_dict`."""
    pa_, pb = run_a.params, run_b.params
    return {
        "same_protocol": run_a.protocol == run_b.protocol,
        "changed": [
            {"name": n, "a": pa_[n], "b": pb[n]} for n in pa_ if n in pb and pa_[n] != pb[n]
        ],
        "only_a": {n: v for n, v in pa_.items() if n not in pb},
        "only_b": {n: v for n, v in pb.items() if n not in pa_},
        "unchanged": [n for n in pa_ if n in pb and pa_[n] == pb[n]],
    }


def _output_diff(ref_a: OutputRef | None, ref_b: OutputRef | None) -> dict[str, Any]:
    diff: dict[str, Any] = {
        "a": _output_info(ref_a),
        "b": _output_info(ref_b),
        "uids": None,
        "columns": None,
        "distributions": {},
    }
    if ref_a is None or ref_b is None or not ref_a.exists or not ref_b.exists:
        return diff
    table_a, table_b = ref_a.load().to_arrow(), ref_b.load().to_arrow()
    diff["uids"] = uid_overlap(table_a.column(UID).to_numpy(), table_b.column(UID).to_numpy())
    names_a, names_b = set(table_a.column_names), set(table_b.column_names)
    shared = [c for c in table_a.column_names if c in names_b and c != UID]
    diff["columns"] = {
        "shared": shared,
        "only_a": [c for c in table_a.column_names if c not in names_b],
        "only_b": [c for c in table_b.column_names if c not in names_a],
    }
    for name in shared:  # one column at a time: only two columns are in memory at once
        values_a, values_b = _numeric(table_a.column(name)), _numeric(table_b.column(name))
        if values_a is not None and values_b is not None:
            diff["distributions"][name] = distribution_diff(values_a, values_b)
    return diff


def _output_info(ref: OutputRef | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {"ref": str(ref), "type": ref.types[0], "state": ref.state, "count": ref.count}


def _numeric(column: pa.ChunkedArray) -> NDArray[np.float64] | None:
    """The non-null, finite values of a numeric column as floats; None for other columns."""
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return None
    values: NDArray[np.float64] = np.asarray(pc.drop_null(column).to_numpy(), dtype=np.float64)
    finite: NDArray[np.float64] = values[np.isfinite(values)]
    return finite


def uid_overlap(uids_a: NDArray[Any], uids_b: NDArray[Any]) -> dict[str, Any]:
    """How many uids two sets share, and which one contains the other.

    Parameters
    ----------
    uids_a, uids_b
        The uid columns.

    Returns
    -------
    dict
        ``shared``, ``only_a``, ``only_b`` (counts of distinct uids) and ``relation``:
        ``"equal"``, ``"a_in_b"``, ``"b_in_a"``, ``"disjoint"`` or ``"partial"``.
    """
    sorted_a, sorted_b = np.unique(uids_a), np.unique(uids_b)
    if sorted_a.size:
        found = np.searchsorted(sorted_a, sorted_b).clip(max=sorted_a.size - 1)
        shared = int(np.count_nonzero(sorted_a[found] == sorted_b))
    else:
        shared = 0
    only_a, only_b = int(sorted_a.size) - shared, int(sorted_b.size) - shared
    if only_a == only_b == 0:
        relation = "equal"
    elif only_a == 0:
        relation = "a_in_b"
    elif only_b == 0:
        relation = "b_in_a"
    else:
        relation = "disjoint" if shared == 0 else "partial"
    return {"shared": shared, "only_a": only_a, "only_b": only_b, "relation": relation}


def describe(values: NDArray[np.float64]) -> dict[str, float | int | None]:
    """Count, mean, std, min, quartiles and max of ``values`` (None where empty)."""
    if values.size == 0:
        return {key: (0 if key == "count" else None) for key in STATS}
    q25, q50, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    summary = [
        values.mean(),
        values.std(ddof=1) if values.size > 1 else 0.0,
        values.min(),
        q25,
        q50,
        q75,
        values.max(),
    ]
    return {
        "count": int(values.size),
        **{k: float(v) for k, v in zip(STATS[1:], summary, strict=True)},
    }


def distribution_diff(
    values_a: NDArray[np.float64], values_b: NDArray[np.float64]
) -> dict[str, Any]:
    """Both samples described, and their two-sample Kolmogorov-Smirnov distance and p-value."""
    ks: dict[str, float | None] = {"statistic": None, "pvalue": None}
    if values_a.size and values_b.size:
        from scipy import stats  # imported on use: scipy.stats is slow to import

        result = stats.ks_2samp(values_a, values_b)
        ks = {"statistic": float(result.statistic), "pvalue": float(result.pvalue)}
    return {"a": describe(values_a), "b": describe(values_b), "ks": ks}


# -- display ---------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _side(info: dict[str, Any] | None, key: str) -> str:
    return "(none)" if info is None else _fmt(info[key])


def _overlap_text(uids: dict[str, Any], a: int, b: int) -> str:
    relation = {
        "equal": "same items",
        "a_in_b": f"{a} is contained in {b}",
        "b_in_a": f"{b} is contained in {a}",
        "disjoint": "no shared items",
        "partial": "partial overlap",
    }[uids["relation"]]
    return (
        f"{uids['shared']} shared, {uids['only_a']} only in {a}, "
        f"{uids['only_b']} only in {b} ({relation})"
    )


def _param_rows(params: dict[str, Any]) -> list[tuple[str, ...]]:
    """One (name, value in a, value in b) row per differing parameter."""
    rows: list[tuple[str, ...]] = [
        (c["name"], _fmt(c["a"]), _fmt(c["b"])) for c in params["changed"]
    ]
    rows += [(n, _fmt(v), "(unset)") for n, v in params["only_a"].items()]
    rows += [(n, "(unset)", _fmt(v)) for n, v in params["only_b"].items()]
    return rows


def _text(data: dict[str, Any]) -> str:
    a, b, params = data["a"], data["b"], data["params"]
    ia, ib = a["id"], b["id"]
    lines = [
        f"compare run {ia} ({a['protocol']}, {a['status']}) with run {ib} "
        f"({b['protocol']}, {b['status']})"
    ]
    rows = _param_rows(params)
    lines.append(f"parameters: {len(rows)} differ, {len(params['unchanged'])} unchanged")
    lines += _table([("", f"run {ia}", f"run {ib}"), *rows]) if rows else []
    for name, out in data["outputs"].items():
        lines.append(f"output {name}:")
        lines += _table(
            [
                ("", f"run {ia}", f"run {ib}"),
                ("type", _side(out["a"], "type"), _side(out["b"], "type")),
                ("count", _side(out["a"], "count"), _side(out["b"], "count")),
                ("state", _side(out["a"], "state"), _side(out["b"], "state")),
            ]
        )
        if out["uids"] is None:
            continue
        lines.append(f"  uids: {_overlap_text(out['uids'], ia, ib)}")
        for side, run_id in (("only_a", ia), ("only_b", ib)):
            if out["columns"][side]:
                lines.append(f"  columns only in {run_id}: {', '.join(out['columns'][side])}")
        header = ("column", "run", *STATS, "KS D", "p")
        rows = []
        for column, dist in out["distributions"].items():
            ks = dist["ks"]
            rows.append((column, str(ia), *(_fmt(dist["a"][k]) for k in STATS), "", ""))
            stats_b = (_fmt(dist["b"][k]) for k in STATS)
            rows.append(("", str(ib), *stats_b, _fmt(ks["statistic"]), _fmt(ks["pvalue"])))
        lines += _table([header, *rows]) if rows else []
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as aligned lines: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  "
        + "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _html_table(rows: list[tuple[str, ...]]) -> str:
    head, *body = rows
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{html.escape(c)}</th>" for c in head)
        + "</tr></thead><tbody>"
        + "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body
        )
        + "</tbody></table>"
    )


def _html(data: dict[str, Any]) -> str:
    a, b, params = data["a"], data["b"], data["params"]
    ia, ib = a["id"], b["id"]
    runs = f"run {ia}", f"run {ib}"
    parts = [
        "<div class='cryolab-compare'>",
        f"<b>Run {ia}</b> {html.escape(a['protocol'])} <code>{html.escape(a['status'])}</code>"
        f" vs <b>Run {ib}</b> {html.escape(b['protocol'])} "
        f"<code>{html.escape(b['status'])}</code>",
    ]
    rows = _param_rows(params)
    parts.append(f"<p>Parameters: {len(rows)} differ, {len(params['unchanged'])} unchanged</p>")
    if rows:
        parts.append(_html_table([("parameter", *runs), *rows]))
    for name, out in data["outputs"].items():
        parts.append(f"<p>Output <b>{html.escape(name)}</b></p>")
        rows = [(key, _side(out["a"], key), _side(out["b"], key)) for key in ("count", "state")]
        if out["uids"] is not None:
            rows.append(("uids", _overlap_text(out["uids"], ia, ib), ""))
            rows += [
                (f"columns only in run {run_id}", ", ".join(out["columns"][side]), "")
                for side, run_id in (("only_a", ia), ("only_b", ib))
                if out["columns"][side]
            ]
        parts.append(_html_table([("", *runs), *rows]))
        dist_rows = [
            (column, run, *(_fmt(dist[side][k]) for k in STATS), _fmt(dist["ks"]["statistic"]))
            for column, dist in out["distributions"].items()
            for side, run in (("a", str(ia)), ("b", str(ib)))
        ]
        if dist_rows:
            parts.append(_html_table([("column", "run", *STATS, "KS D"), *dist_rows]))
    parts.append("</div>")
    return "".join(parts)
