"""The ``cryolab`` command line.

Users' scripts rely on these command names: add new ones, never rename them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from cryolab.core.errors import CryolabError, ParameterError
from cryolab.core.params import Issue
from cryolab.core.plugins import registry
from cryolab.core.project import Project, open_project


class UsageError(CryolabError):
    """A command-line argument is malformed (reported as a one-line error, exit code 2)."""


def _project(path: str) -> Project:
    return open_project(path, create=False)


def _run_id(text: str) -> int:
    """A run id given on the command line."""
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"a run id is a number, got {text!r}") from None


def _emit(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if as_json else text)


def parse_assignments(protocol: str, assignments: Sequence[str]) -> dict[str, Any]:
    """Turn ``name=value`` words into typed parameter values of ``protocol``."""
    params = registry.get(protocol).params()
    values: dict[str, Any] = {}
    issues: list[Issue] = []
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        if not sep:
            issues.append(Issue(name, f"expected name=value, got {assignment!r}"))
        elif name not in params:
            issues.append(Issue(name, f"{protocol} has no such parameter; it has {sorted(params)}"))
        else:
            try:
                values[name] = params[name].parse(text)
            except ValueError as exc:
                message = str(exc)
                prefix = f"parameter {name!r}: "
                if message.startswith(prefix):
                    message = message[len(prefix) :]
                else:
                    message = f"{text!r} is not valid: {message}"
                issues.append(Issue(name, message))
    if issues:
        raise ParameterError(issues)
    return values


def _run_info(project: Project, run_id: int) -> dict[str, Any]:
    run = project.get_run(run_id)
    return {
        "id": run.id,
        "protocol": run.protocol,
        "label": run.label,
        "status": run.status,
        "error": run.error,
        "params": run.params,
        "folder": str(run.folder),
        "outputs": {
            k: {"ref": str(v), "type": v.types[0], "count": v.count, "state": v.state}
            for k, v in run.out.items()
        },
        "steps": {
            s: sum(1 for x in run.steps() if x["status"] == s)
            for s in ("pending", "running", "done", "failed")
        },
        "origin": run.origin,
    }


def cmd_new(args: argparse.Namespace) -> int:
    project = Project.create(args.path)
    print(f"created project {project.path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    info = _project(args.path).info()
    status = ", ".join(f"{v} {k}" for k, v in sorted(info["status"].items())) or "no runs"
    _emit(
        info,
        args.json,
        f"{info['path']}: {info['runs']} runs ({status}), schema {info['schema_version']}",
    )
    return 0


def cmd_protocols(args: argparse.Namespace) -> int:
    entries = registry.check_all()
    if args.json:
        _emit(
            {
                n: {"plugin": e.plugin, "available": e.available, "error": e.error}
                for n, e in entries.items()
            },
            True,
            "",
        )
        return 0
    for name, entry in entries.items():
        if entry.available:
            doc = (registry.get(name).__doc__ or "").strip().splitlines()
            print(f"{name:28s} {doc[0] if doc else ''}")
        else:
            print(f"{name:28s} UNAVAILABLE ({entry.plugin}): {entry.error}")
    for name, plugin in registry.plugins().items():
        if plugin.error:
            print(f"plugin {name} ({plugin.target}) UNAVAILABLE: {plugin.error}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    project = _project(args.path)
    values = parse_assignments(args.protocol, args.params)
    run = project.run(
        args.protocol,
        label=args.label,
        executor=args.executor,
        cores=args.cores,
        seed=args.seed,
        **values,
    )
    if args.wait:
        run.wait(check=False)
    info = _run_info(project, run.id)
    _emit(
        info,
        args.json,
        f"run {run.id} {run.protocol}: {info['status']}"
        + (f" ({info['error']})" if info["error"] else ""),
    )
    return 1 if args.wait and info["status"] != "finished" else 0


def cmd_restart(args: argparse.Namespace) -> int:
    project = _project(args.path)
    run = project.launch(_run_id(args.run))
    if args.wait:
        run.wait(check=False)
    print(f"run {run.id} {run.protocol}: {run.status}")
    return 0 if not args.wait or run.status == "finished" else 1


def cmd_status(args: argparse.Namespace) -> int:
    project = _project(args.path)
    run_id = _run_id(args.run)
    info = {**_run_info(project, run_id), "provenance": project.get_run(run_id).provenance}
    outputs = ", ".join(
        f"{k} ({v['count']} {v['type']}, {v['state']})" for k, v in info["outputs"].items()
    )
    steps = info["steps"]
    _emit(
        info,
        args.json,
        f"run {info['id']} {info['protocol']}: {info['status']}"
        + (f" ({info['error']})" if info["error"] else "")
        + f"\n  steps: {steps['done']} done, {steps['failed']} failed, "
        f"{steps['running']} running, {steps['pending']} pending\n  outputs: {outputs}"
        + _notebook_line(info["origin"].get("notebook")),
    )
    return 0


def _notebook_line(notebook: dict[str, Any] | None) -> str:
    """The status line naming the notebook (and cell) a run was created from."""
    if not notebook:
        return ""
    cell = notebook.get("cell_id") or notebook.get("cell_index")
    return f"\n  notebook: {notebook.get('path')}" + (f", cell {cell}" if cell is not None else "")


def cmd_log(args: argparse.Namespace) -> int:
    print(_project(args.path).get_run(_run_id(args.run)).log(tail=args.tail), end="")
    return 0


def cmd_abort(args: argparse.Namespace) -> int:
    run = _project(args.path).get_run(_run_id(args.run))
    run.abort()
    print(f"run {run.id}: {run.status}")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    graph = _project(args.path).run_graph()
    if args.json:
        _emit(graph, True, "")
        return 0
    inputs: dict[int, list[str]] = {}
    for edge in graph["edges"]:
        inputs.setdefault(edge["target"], []).append(f"{edge['source']}.{edge['output']}")
    for node in graph["nodes"]:
        outs = ", ".join(f"{o['name']} ({o['count']})" for o in node["outputs"])
        src = ", ".join(inputs.get(node["id"], [])) or "-"
        print(
            f"{node['id']:4d} {node['protocol']:22s} [{node['status']}] "
            f"<- {src}  -> {outs}{'  ' + node['label'] if node['label'] else ''}"
        )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    comparison = _project(args.path).compare(_run_id(args.run_a), _run_id(args.run_b))
    _emit(comparison.to_dict(), args.json, str(comparison))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    dynamic = {}
    for item in args.dynamic:
        key, sep, name = item.partition("=")
        if not sep or not key or not name:
            raise UsageError(f"--dynamic needs RUN.param=name, got {item!r}")
        dynamic[key] = name
    runs = [_run_id(r) for r in args.runs.split(",") if r.strip()] if args.runs else None
    document = _project(args.path).export_workflow(args.output, runs, dynamic)
    print(f"exported {len(document['runs'])} runs to {args.output}")
    return 0


def cmd_export_notebook(args: argparse.Namespace) -> int:
    runs = [_run_id(r) for r in args.runs.split(",") if r.strip()] if args.runs else None
    notebook = _project(args.path).export_notebook(args.output, runs)
    ids = notebook["metadata"]["cryolab"]["runs"]
    print(f"exported {len(ids)} runs ({', '.join(map(str, ids))}) to {args.output}")
    return 0


def _set_values(items: Sequence[str]) -> dict[str, str]:
    """``--set name=value`` words as a dict of text values."""
    values = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ParameterError([Issue(name, f"--set needs name=value, got {item!r}")])
        values[name] = text
    return values


def cmd_import(args: argparse.Namespace) -> int:
    values = _set_values(args.set)
    runs = _project(args.path).import_workflow(args.file, values, launch=args.launch)
    print(
        f"imported {len(runs)} runs: {', '.join(str(r.id) for r in runs)}"
        + (" (launched)" if args.launch else " (saved; launch with 'cryolab restart')")
    )
    return 0


def cmd_import_relion(args: argparse.Namespace) -> int:
    from cryolab.em.relion_pipeline import import_relion

    runs = import_relion(_project(args.path), args.file)
    for run in runs:
        outputs = ", ".join(f"{k} ({v.count} {v.types[0]})" for k, v in run.out.items())
        print(f"{run.id:4d} {run.label}: {outputs or 'no outputs'}")
    print(f"imported {len(runs)} RELION job(s) as finished runs")
    return 0


def cmd_export_relion(args: argparse.Namespace) -> int:
    from cryolab.core.params import is_reference, split_reference
    from cryolab.em.objects import SetOfMicrographs, SetOfParticles
    from cryolab.em.relion_export import micrographs_to_star, particles_to_star

    if not is_reference(args.output_ref):
        raise ParameterError(
            [Issue("RUN.output", f"expected e.g. 12.particles, got {args.output_ref!r}")]
        )
    run_id, name = split_reference(args.output_ref)
    run = _project(args.path).get_run(run_id)
    if name not in run.out:
        raise ParameterError(
            [Issue("RUN.output", f"run {run_id} has no output {name!r}; it has {sorted(run.out)}")]
        )
    data = run.out[name].load()
    if isinstance(data, SetOfParticles):
        written = particles_to_star(data, args.output, version=args.version)
    elif isinstance(data, SetOfMicrographs):
        written = micrographs_to_star(data, args.output, version=args.version)
    else:
        raise ParameterError(
            [
                Issue(
                    "RUN.output",
                    f"{args.output_ref} is a {data.type_name}; "
                    "particles or micrographs can be exported",
                )
            ]
        )
    print(f"wrote {len(data)} {data.item_label}s to {written} (RELION {args.version})")
    return 0


def cmd_import_scipion(args: argparse.Namespace) -> int:
    from cryolab.em.scipion_workflow import import_scipion_workflow

    values = _set_values(args.set)
    runs = import_scipion_workflow(_project(args.path), args.file, values, launch=args.launch)
    placeholders = sum(1 for r in runs if r.protocol == "external.job")
    print(
        f"imported {len(runs)} Scipion protocols as runs {runs[0].id}-{runs[-1].id}: "
        f"{len(runs) - placeholders} cryolab protocols, {placeholders} placeholders "
        "(external.job: kept in the graph, cannot run)"
    )
    if args.launch:
        print(f"launched {sum(1 for r in runs if r.status != 'saved')} runs")
    elif placeholders < len(runs):
        print("the runs are saved: launch them with 'cryolab restart PATH RUN'")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from cryolab.core.report import check_formats

    formats = check_formats(f.strip() for f in args.format.split(",") if f.strip())
    report = _project(args.path).report(title=args.title or None, license=args.license)
    written = report.write(args.output, formats)
    for kind in ("html", "md", "crate"):
        if kind in written:
            print(f"wrote {written[kind]}")
    if report.crate_note:
        print(f"cryolab report: warning: {report.crate_note}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cryolab.demo import main as demo

    return demo(args.path)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from cryolab.core.reproduce import Tolerances, reproduce

    given = {
        name: getattr(args, name)
        for name in Tolerances.__dataclass_fields__
        if getattr(args, name, None) is not None
    }
    report = reproduce(
        args.source,
        args.into,
        against=args.against,
        tolerances=Tolerances(**given),
        timeout=args.timeout,
        values=_set_values(args.set),
        kernel_name=args.kernel,
        start_timeout=args.start_timeout,
    )
    _emit(report.to_dict(), args.json, str(report))
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cryolab`` command."""
    parser = argparse.ArgumentParser(prog="cryolab", description="cryolab workflow engine")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Any, help: str, path: bool = True) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help, description=help)
        if path:
            command.add_argument("path", help="project folder")
        command.set_defaults(func=func)
        return command

    add("new", cmd_new, "create a project")
    add("info", cmd_info, "show a project's facts").add_argument("--json", action="store_true")
    add("protocols", cmd_protocols, "list the installed protocols", path=False).add_argument(
        "--json", action="store_true"
    )
    run = add("run", cmd_run, "create and launch a run (inputs as RUNID.output)")
    run.add_argument("protocol")
    run.add_argument("params", nargs="*", metavar="name=value")
    run.add_argument("--wait", action="store_true", help="wait until the run ends")
    run.add_argument("--json", action="store_true")
    run.add_argument("--label", default="")
    run.add_argument("--executor", choices=["local", "sync"], default=None)
    run.add_argument("--cores", type=int, default=None)
    run.add_argument("--seed", type=int, default=None)
    restart = add("restart", cmd_restart, "launch a saved run, or resume a failed/aborted one")
    restart.add_argument("run")
    restart.add_argument("--wait", action="store_true")
    status = add("status", cmd_status, "show a run's status, steps and outputs")
    status.add_argument("run")
    status.add_argument("--json", action="store_true")
    log = add("log", cmd_log, "print a run's log")
    log.add_argument("run")
    log.add_argument("--tail", type=int, default=None)
    add("abort", cmd_abort, "stop a run").add_argument("run")
    add("graph", cmd_graph, "show the run graph").add_argument("--json", action="store_true")
    compare = add("compare", cmd_compare, "compare two runs: parameters and outputs")
    compare.add_argument("run_a", metavar="RUN_A")
    compare.add_argument("run_b", metavar="RUN_B")
    compare.add_argument("--json", action="store_true")
    export = add("export", cmd_export, "export runs as a workflow template (JSON)")
    export.add_argument("-o", "--output", required=True)
    export.add_argument("--runs", default="", help="comma-separated run ids (default: all)")
    export.add_argument(
        "--dynamic",
        action="append",
        default=[],
        metavar="RUN.param=name",
        help="make a value a dynamic parameter asked for at import",
    )
    export_nb = add(
        "export-notebook",
        cmd_export_notebook,
        "write runs as a runnable notebook (papermill parameters: project_path, data, acquisition)",
    )
    export_nb.add_argument("-o", "--output", required=True, metavar="NB.ipynb")
    export_nb.add_argument(
        "--runs", default="", help="comma-separated run ids, their upstream runs too (default: all)"
    )
    imp = add("import", cmd_import, "import a workflow template as new runs")
    imp.add_argument("file")
    imp.add_argument("--set", action="append", default=[], metavar="name=value")
    imp.add_argument("--launch", action="store_true", help="launch the imported runs")
    relion = add(
        "import-relion",
        cmd_import_relion,
        "import a RELION pipeline (default_pipeline.star) or a particles/micrographs STAR file",
    )
    relion.add_argument("file", metavar="PIPELINE_OR_STAR")
    export_relion = add(
        "export-relion", cmd_export_relion, "write particles or micrographs as a RELION STAR file"
    )
    export_relion.add_argument("output_ref", metavar="RUN.output")
    export_relion.add_argument("-o", "--output", required=True, metavar="FILE.star")
    export_relion.add_argument("--version", choices=["3.0", "3.1", "4", "5"], default="3.1")
    scipion = add(
        "import-scipion",
        cmd_import_scipion,
        "import a Scipion workflow (.json or .json.template) as saved runs",
    )
    scipion.add_argument("file", metavar="TEMPLATE")
    scipion.add_argument(
        "--set", action="append", default=[], metavar="name=value", help="a template marker value"
    )
    scipion.add_argument(
        "--launch", action="store_true", help="launch the runs of cryolab protocols"
    )
    demo = add(
        "demo",
        cmd_demo,
        "run the demonstration: a whole SPA pipeline on simulated movies",
        path=False,
    )
    demo.add_argument("--path", default="demo-project")
    report = add(
        "report",
        cmd_report,
        "write the project's report: HTML, Markdown and an RO-Crate (Workflow Run Crate)",
    )
    report.add_argument("-o", "--output", required=True, metavar="DIR")
    report.add_argument(
        "--format", default="html,md,crate", help="comma-separated: html, md, crate (default all)"
    )
    report.add_argument("--title", default="", help="heading (default: the project's name)")
    report.add_argument(
        "--license", default="https://spdx.org/licenses/CC-BY-4.0", help="licence URL of the crate"
    )
    reproduce = add(
        "reproduce",
        cmd_reproduce,
        "re-run a project, workflow JSON or notebook into a new project and compare the "
        "results (exit 0: identical or within tolerance, 1: a run differs or nothing could "
        "be compared)",
        path=False,
    )
    reproduce.add_argument("source", metavar="SOURCE", help="project folder, .json or .ipynb")
    reproduce.add_argument("--into", required=True, metavar="NEWPATH", help="the new project")
    reproduce.add_argument("--against", metavar="PROJECT", help="the project to compare with")
    reproduce.add_argument("--json", action="store_true")
    reproduce.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="limit for the whole re-execution (notebook and runs); runs still going are aborted",
    )
    reproduce.add_argument(
        "--set", action="append", default=[], metavar="name=value", help="a workflow parameter"
    )
    reproduce.add_argument("--kernel", default=None, help="notebook kernel (default: its own)")
    reproduce.add_argument("--start-timeout", type=float, default=60.0, metavar="S")
    for name in ("rtol", "atol", "count_rtol", "ks_alpha", "min_correlation", "min_fsc"):
        reproduce.add_argument(
            f"--{name.replace('_', '-')}", type=float, default=None, help="see reproducibility.md"
        )
    reproduce.add_argument("--fsc-up-to", type=float, default=None, metavar="FRACTION")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cryolab`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (CryolabError, OSError) as exc:  # OSError: a file that cannot be written, ...
        print(f"cryolab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
