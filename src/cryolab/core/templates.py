"""Workflow templates: export runs as versioned JSON, import them into another project.

The format is published as a JSON Schema (``docs/workflow.schema.json``). Runs are keyed
(``"r3"``), inputs name ``"KEY.output"`` of another run of the template, and any value may be a
dynamic marker ``{"$param": "pixel_size"}`` declared in ``parameters`` and filled at import
(Python ``values=``, CLI ``--set pixel_size=1.1``). Inputs from runs outside the exported
subgraph become dynamic parameters, to be wired to an output of the importing project.
Templates are data: they name registered protocols and never carry code.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

from cryolab._version import __version__
from cryolab.core import database
from cryolab.core.editing import topological_order
from cryolab.core.errors import CryolabError, TemplateError
from cryolab.core.params import InputParam, Param, split_reference
from cryolab.core.plugins import registry
from cryolab.core.runs import Run

if TYPE_CHECKING:
    from cryolab.core.project import Project

FORMAT = "cryolab.workflow"
VERSION = 1
MARKER = "$param"
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # of dynamic parameters (see the schema)


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of workflow templates."""
    text = resources.files("cryolab.core").joinpath("workflow.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def export_workflow(
    project: Project,
    path: str | os.PathLike[str] | None,
    runs: Sequence[int] | None,
    dynamic: Mapping[str, str],
) -> dict[str, Any]:
    """Export runs (default: all) as a template; write it to ``path`` when given.

    Parameters
    ----------
    dynamic
        ``"RUNID.param"`` to a dynamic parameter name: that value is asked for at import, with
        the current value as default.
    """
    ids = topological_order(project, list(runs) if runs else [r.id for r in project.runs()])
    if not ids:
        raise TemplateError("there are no runs to export")
    bad_names = sorted({n for n in dynamic.values() if not NAME_PATTERN.fullmatch(n)})
    if bad_names:
        raise TemplateError(
            f"dynamic parameter names must be identifiers (letters, digits, _); got {bad_names}"
        )
    keys = {run_id: f"r{run_id}" for run_id in ids}
    used: set[str] = set()
    declared: dict[str, dict[str, Any]] = {}
    entries = []
    for run_id in ids:
        run = project.get_run(run_id)
        cls = registry.get(run.protocol)
        described = cls.params()
        params: dict[str, Any] = {}
        inputs: dict[str, Any] = {}
        for name, value in run.params.items():
            param = described.get(name)
            if isinstance(param, InputParam):
                if value:
                    inputs[name] = _export_input(run_id, name, param, value, keys, declared)
                continue
            dynamic_name = dynamic.get(f"{run_id}.{name}")
            if dynamic_name is not None:
                used.add(f"{run_id}.{name}")
                _declare(declared, dynamic_name, param, default=value)
                value = {MARKER: dynamic_name}
            params[name] = value
        unused = [
            k for k in dynamic if k.startswith(f"{run_id}.") and k.split(".", 1)[1] not in described
        ]
        if unused:
            raise TemplateError(f"run {run_id} ({run.protocol}) has no parameter(s) {unused}")
        row = project._run_row(run_id)
        entries.append(
            {
                "key": keys[run_id],
                "protocol": run.protocol,
                "label": run.label,
                "comment": run.comment,
                "seed": row["seed"],
                "executor": json.loads(row["executor"]),
                "params": params,
                "inputs": inputs,
            }
        )
    ignored = sorted(set(dynamic) - used)
    if ignored:
        raise TemplateError(
            f"dynamic {ignored}: no such non-input parameter among the "
            f"exported runs {ids} (give 'RUNID.param'; inputs from runs "
            "outside the export become dynamic by themselves)"
        )
    document = {
        "format": FORMAT,
        "version": VERSION,
        "cryolab": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "parameters": list(declared.values()),
        "runs": entries,
    }
    if path is not None:
        try:
            Path(path).write_text(json.dumps(document, indent=2), encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"cannot write the template to {path}: {exc}") from None
    return document


def _export_input(
    run_id: int,
    name: str,
    param: InputParam,
    value: Any,
    keys: Mapping[int, str],
    declared: dict[str, dict[str, Any]],
) -> Any:
    refs = value if isinstance(value, list) else [value]
    if all(split_reference(r)[0] in keys for r in refs):
        mapped = [f"{keys[split_reference(r)[0]]}.{split_reference(r)[1]}" for r in refs]
        return mapped if isinstance(value, list) else mapped[0]
    dynamic_name = f"r{run_id}_{name}"
    _declare(
        declared,
        dynamic_name,
        param,
        default=None,
        help=f"An output of this project for input {name!r} (types {param.types}), "
        f"e.g. '12.{split_reference(refs[0])[1]}'",
    )
    return {MARKER: dynamic_name}


def _declare(
    declared: dict[str, dict[str, Any]],
    name: str,
    param: Param | None,
    *,
    default: Any,
    help: str = "",
) -> None:
    entry: dict[str, Any] = {
        "name": name,
        "label": param.label if param else name,
        "help": help or (param.help if param else ""),
        "kind": param.kind if param else "str",
    }
    if default is not None:
        entry["default"] = default
    declared.setdefault(name, entry)


def load_template(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Read and check a template (file or dict) against the schema and its own references."""
    if isinstance(source, Mapping):
        document = dict(source)
        where = "the template"
    else:
        where = str(source)
        try:
            document = json.loads(Path(source).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TemplateError(f"no template file {where}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"cannot read the template {where}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise TemplateError(f"{where} is not valid JSON: {exc}") from None
    if (
        isinstance(document, dict)
        and document.get("format") == FORMAT
        and isinstance(document.get("version"), int)
        and document["version"] > VERSION
    ):
        raise TemplateError(
            f"{where} is workflow format {document['version']}; this cryolab reads up to {VERSION}"
        )
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema()).iter_errors(document)
    )
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise TemplateError(f"{where} is not a valid workflow template: at {at}: {error.message}")
    keys = [r["key"] for r in document["runs"]]
    if len(set(keys)) != len(keys):
        raise TemplateError(
            f"{where}: run keys must be unique; repeated: "
            f"{sorted({k for k in keys if keys.count(k) > 1})}"
        )
    names = [p["name"] for p in document.get("parameters", [])]
    if len(set(names)) != len(names):
        raise TemplateError(
            f"{where}: dynamic parameter names must be unique; repeated: "
            f"{sorted({n for n in names if names.count(n) > 1})}"
        )
    declared = set(names)
    for entry in document["runs"]:
        for value in [*entry.get("params", {}).values(), *entry.get("inputs", {}).values()]:
            if isinstance(value, dict) and MARKER in value and value[MARKER] not in declared:
                raise TemplateError(
                    f"{where}: run {entry['key']} uses dynamic parameter "
                    f"{value[MARKER]!r}, which 'parameters' does not declare"
                )
        for ref in _references(entry):
            if ref.split(".")[0] not in keys:
                raise TemplateError(
                    f"{where}: run {entry['key']} takes {ref!r}, but the "
                    f"template has no run {ref.split('.')[0]!r}"
                )
    _order(document["runs"], where)
    return document


def _references(entry: Mapping[str, Any]) -> list[str]:
    """The ``"KEY.output"`` references among a template run's inputs."""
    refs: list[str] = []
    for value in entry.get("inputs", {}).values():
        refs.extend(
            v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)
        )
    return refs


def _order(entries: Sequence[Mapping[str, Any]], where: str) -> list[Mapping[str, Any]]:
    """Entries in dependency order; a cycle is an error naming the runs in it."""
    needs: dict[str, set[str]] = {}
    by_key = {e["key"]: e for e in entries}
    for entry in entries:
        needs[entry["key"]] = {r.split(".")[0] for r in _references(entry)}
    order = []
    while needs:
        ready = [k for k, deps in needs.items() if not deps]
        if not ready:
            raise TemplateError(
                f"{where}: runs {sorted(needs)} take inputs from each other in a cycle"
            )
        for key in ready:
            del needs[key]
            order.append(by_key[key])
        for deps in needs.values():
            deps.difference_update(ready)
    return order


def import_workflow(
    project: Project,
    source: str | os.PathLike[str] | Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    launch: bool = False,
) -> list[Run]:
    """Create the template's runs in ``project`` (saved, or launched with ``launch``).

    Parameters
    ----------
    values
        Dynamic parameter values; text (from ``--set``) is parsed by the parameter's type.

    Raises
    ------
    TemplateError
        If the template is malformed, a dynamic value is missing or unknown, or a run is
        invalid; the project is then unchanged.
    """
    document = load_template(source)
    declared = {p["name"]: p for p in document.get("parameters", [])}
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise TemplateError(
            f"the template has no parameter(s) {unknown}; it has {sorted(declared)}"
        )
    created: dict[str, int] = {}
    with database.transaction(project.db):
        for entry in _order(document["runs"], "the template"):
            try:
                cls = registry.get(entry["protocol"])
            except CryolabError as exc:
                raise TemplateError(f"run {entry['key']}: {exc}") from None
            params = {}
            for name, value in {**entry.get("params", {}), **entry.get("inputs", {})}.items():
                params[name] = _fill(
                    value, cls.params().get(name), declared, values, created, entry["key"], name
                )
            try:
                created[entry["key"]] = project.create_run(
                    entry["protocol"],
                    params,
                    label=entry.get("label", ""),
                    comment=entry.get("comment", ""),
                    seed=entry.get("seed"),
                    executor=entry.get("executor"),
                    origin={"template_key": entry["key"]},
                )
            except CryolabError as exc:
                raise TemplateError(f"run {entry['key']} ({entry['protocol']}): {exc}") from None
    project.make_folders(list(created.values()))
    runs = [Run(project, run_id) for run_id in created.values()]
    if launch:
        for run in runs:
            project.launch(run.id)
    return runs


def _fill(
    value: Any,
    param: Param | None,
    declared: Mapping[str, Mapping[str, Any]],
    values: Mapping[str, Any],
    created: Mapping[str, int],
    key: str,
    name: str,
) -> Any:
    if isinstance(value, dict) and MARKER in value:
        dynamic = value[MARKER]
        if dynamic in values:
            given = values[dynamic]
            if isinstance(given, str) and param is not None:
                try:
                    return param.parse(given)
                except (ValueError, json.JSONDecodeError) as exc:
                    raise TemplateError(f"dynamic parameter {dynamic!r}: {exc}") from None
            return given
        if "default" in declared[dynamic]:
            return declared[dynamic]["default"]
        raise TemplateError(
            f"dynamic parameter {dynamic!r} (run {key}, {name}) needs a value: "
            f"give values={{'{dynamic}': ...}} or --set {dynamic}=..."
        )
    if isinstance(param, InputParam):
        refs = value if isinstance(value, list) else [value]
        mapped = []
        for ref in refs:
            target, _, output = ref.partition(".")
            if target not in created:
                raise TemplateError(
                    f"run {key}: input {name} takes {ref!r}, but the template has no run {target!r}"
                )
            mapped.append(f"{created[target]}.{output}")
        return mapped if isinstance(value, list) else mapped[0]
    return value
