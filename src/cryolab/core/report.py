"""``project.report()``: what was done, with which parameters and software, and what came out.

A :class:`Report` reads a project once: the run graph (drawn as SVG), each run's parameters,
inputs, outputs and provenance, a methods paragraph assembled from the protocols'
:meth:`~cryolab.core.protocol.Protocol.methods` texts in the order the runs depend on each
other, with numbered citations resolving to a bibliography, the software versions recorded by
the runs, and the figures of the outputs whose set type draws some
(:meth:`~cryolab.core.sets.Set.report_figures`). It shows inline in notebooks and writes
``report.html`` (one self-contained file), ``report.md`` (figures beside it under
``figures/``) and an RO-Crate (:mod:`cryolab.core.rocrate`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryolab._version import __version__
from cryolab.core import rocrate, rungraph
from cryolab.core.bibliography import Bibliography, Entry
from cryolab.core.editing import topological_order
from cryolab.core.errors import CryolabError, ProjectError
from cryolab.core.figures import Figure
from cryolab.core.params import is_reference, split_reference
from cryolab.core.plugins import registry
from cryolab.core.protocol import CRYOLAB_BIBTEX
from cryolab.core.report_render import render_html, render_markdown
from cryolab.core.sets import Set, set_type

if TYPE_CHECKING:
    from cryolab.core.project import Project
    from cryolab.core.runs import Run

log = logging.getLogger(__name__)

FORMATS = ("html", "md", "crate")
FIGURES = "figures"
SOFTWARE_KEY = "cryolab"
DEFAULT_LICENSE = "https://spdx.org/licenses/CC-BY-4.0"


@dataclass
class RunEntry:
    """One run as the report shows it."""

    id: int
    protocol: str
    label: str
    status: str
    folder: str
    params: dict[str, Any]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    provenance: dict[str, Any]
    created: float | None
    started: float | None
    finished: float | None
    description: str = ""
    note: str = ""
    methods: str | None = None
    cited: list[str] = field(default_factory=list)
    figures: list[tuple[str, Figure]] = field(default_factory=list)

    @property
    def title(self) -> str:
        """``"Run 3 · CTF estimation"`` (the label, else the protocol)."""
        return f"Run {self.id} · {self.label or self.protocol}"


@dataclass
class Sentence:
    """A sentence of the methods paragraph: the runs it describes and its resolved text."""

    runs: list[int]
    text: str


class Report:
    """The report of a project (see the module's docstring).

    Parameters
    ----------
    project
        The open project.
    title
        The heading (default: the project folder's name).
    license
        The licence of the report and crate, a URL (default CC BY 4.0).

    Attributes
    ----------
    crate_note : str or None
        Why the last :meth:`write` asked for a crate wrote none (the runs cannot be exported as
        a workflow), else ``None``; the HTML and Markdown texts show it.
    """

    def __init__(
        self, project: Project, *, title: str | None = None, license: str = DEFAULT_LICENSE
    ) -> None:
        self.project = project
        self.path = project.path
        self.title = title or f"Processing report: {project.path.name}"
        self.license = license
        self.created = datetime.now(timezone.utc).astimezone()
        self.graph = project.run_graph()
        order = topological_order(project, [r.id for r in project.runs()])
        self.runs = [self._entry(project.get_run(run_id)) for run_id in order]
        labels = {run.id: run.label for run in self.runs}  # protocol labels where runs have none
        self.graph_svg = rungraph.to_svg(
            {**self.graph, "nodes": [{**n, "label": labels[n["id"]]} for n in self.graph["nodes"]]}
        )
        self.bibliography = Bibliography()
        self.versions = _versions(self.runs)
        self.methods = self._methods()
        self.crate_note: str | None = None

    # -- reading the project ----------------------------------------------------------------
    def _entry(self, run: Run) -> RunEntry:
        row = self.project._run_row(run.id)
        inputs = [
            {"param": e["dst_param"], "run": e["src_run"], "output": e["src_output"]}
            for e in self.project.db.execute(
                "SELECT dst_param, src_run, src_output FROM edges WHERE dst_run = ? "
                "ORDER BY dst_param, position",
                (run.id,),
            )
        ]
        outputs = [
            {
                "name": name,
                "type": ref.types[0],
                "count": ref.count,
                "state": ref.state,
                "path": os.path.relpath(ref.path, self.path),
            }
            for name, ref in run.out.items()
        ]
        entry = RunEntry(
            id=run.id,
            protocol=run.protocol,
            label=run.label,
            status=run.status,
            folder=str(row["folder"]),
            params=run.params,
            inputs=inputs,
            outputs=outputs,
            provenance=run.provenance,
            created=row["created"],
            started=row["started"],
            finished=row["finished"],
        )
        try:
            cls = registry.get(run.protocol)
            entry.description = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
            entry.label = entry.label or cls.label
        except CryolabError as exc:
            log.info(
                "report: protocol %s of run %d is not available: %s", run.protocol, run.id, exc
            )
            entry.note = (
                f"The protocol {run.protocol} is not available in this installation ({exc}); "
                "the run is shown from its record, without the protocol's description, "
                "methods text and citations."
            )
        if run.status == "finished":
            entry.figures = self._figures(run)
        return entry

    def _figures(self, run: Run) -> list[tuple[str, Figure]]:
        found: list[tuple[str, Figure]] = []
        for name, ref in run.out.items():
            cls = set_type(ref.types[0])
            if cls.report_figures is Set.report_figures or not ref.exists:
                continue  # no figures of this type: the set is never read
            try:
                found.extend((name, figure) for figure in ref.load().report_figures())
            except (CryolabError, OSError, ValueError, KeyError) as exc:
                log.warning("report: no figures of %s: %s", ref, exc)
        return found

    # -- methods ------------------------------------------------------------------------------
    def _methods(self) -> list[Sentence]:
        """The methods sentences: the software first, then each finished run's protocol text,
        identical texts (e.g. repeated runs with other seeds) said once."""
        bib = self.bibliography
        bib.add(CRYOLAB_BIBTEX)
        sentences = [Sentence([], self._software_sentence())]
        said: dict[str, Sentence] = {}
        for entry in self.runs:
            if entry.status != "finished":
                continue
            text, cited = self._run_methods(entry)
            entry.methods, entry.cited = text, cited
            if text in said:
                said[text].runs.append(entry.id)
                continue
            said[text] = Sentence([entry.id], text)
            sentences.append(said[text])
        for sentence in sentences:
            if len(sentence.runs) > 1:
                sentence.text = (
                    sentence.text.rstrip(".") + f" ({len(sentence.runs)} independent runs)."
                )
        return sentences

    def _run_methods(self, entry: RunEntry) -> tuple[str, list[str]]:
        """A run's methods text with numbered citations, and the keys it cites."""
        try:
            protocol = registry.get(entry.protocol)(entry.params)
            for bibtex in protocol.citations:
                self.bibliography.add(bibtex)
            text, keys = protocol.methods().strip(), protocol.cited()
        except (CryolabError, ValueError, KeyError, TypeError) as exc:
            log.info("report: no methods text for run %d: %s", entry.id, exc)
            return f"Run {entry.id} used the protocol {entry.protocol}.", [SOFTWARE_KEY]
        resolved, inline = self.bibliography.resolve(text)
        missing = [k for k in keys if k not in inline and k != SOFTWARE_KEY]
        if missing:
            resolved = resolved.rstrip().rstrip(".") + " " + self.bibliography.cite(missing) + "."
        return resolved, [SOFTWARE_KEY, *inline, *(k for k in missing if k not in inline)]

    def _software_sentence(self) -> str:
        versions = self.versions
        cryolab = versions.get("cryolab") or [__version__]
        text = f"Data were processed with cryolab {_join(cryolab)} [{SOFTWARE_KEY}]"
        if versions.get("git"):
            text += f" (commit {_join([v[:10] for v in versions['git']])})"
        extras = []
        if versions.get("python"):
            extras.append(f"Python {_join(versions['python'])}")
        if versions.get("numpy"):
            extras.append(f"NumPy {_join(versions['numpy'])}")
        if versions.get("cupy"):
            cuda = versions.get("cuda_runtime")
            extras.append(
                f"CuPy {_join(versions['cupy'])}"
                + (f" (CUDA runtime {_join(cuda)})" if cuda else "")
            )
        for program, values in versions.items():
            if program.startswith("program:"):
                extras.append(f"{program.split(':', 1)[1]} {_join(values)}")
        if extras:
            text += " using " + _join(extras)
        if versions.get("gpu"):
            text += f", on {_join(versions['gpu'])} GPUs"
        finished = sum(1 for r in self.runs if r.status == "finished")
        text += f", in {finished} run{'s' if finished != 1 else ''}."
        resolved, _ = self.bibliography.resolve(text)
        return resolved

    @property
    def methods_text(self) -> str:
        """The methods paragraph as plain text (citations numbered)."""
        return " ".join(s.text for s in self.methods)

    @property
    def references(self) -> list[Entry]:
        """The bibliography: the cited entries, in citation order."""
        return self.bibliography.cited()

    # -- output ---------------------------------------------------------------------------------
    def figure_file(self, run: RunEntry, output: str, figure: Figure) -> str:
        """The path of a figure's file, relative to the report folder."""
        return f"{FIGURES}/run{run.id:03d}-{output}-{figure.name}.{figure.format}"

    def to_html(self, *, standalone: bool = True) -> str:
        """The report as HTML: a whole page, or a fragment for notebooks."""
        return render_html(self, standalone=standalone)

    def to_markdown(self) -> str:
        """The report as Markdown, figures referenced under ``figures/``."""
        return render_markdown(self)

    def _repr_html_(self) -> str:
        return self.to_html(standalone=False)

    def __repr__(self) -> str:
        return f"<Report of {self.path}: {len(self.runs)} runs, {len(self.references)} references>"

    def write(
        self, directory: str | os.PathLike[str], formats: Iterable[str] = FORMATS
    ) -> dict[str, Path]:
        """Write the report into ``directory`` (created if absent).

        Parameters
        ----------
        formats
            Any of ``"html"`` (``report.html``, self-contained), ``"md"`` (``report.md`` and
            ``figures/``) and ``"crate"`` (``ro-crate-metadata.json``, ``workflow.json`` and
            ``figures/``).

        Returns
        -------
        dict
            What was written: ``html``, ``md``, ``crate``, ``workflow``, and ``figures`` (the
            folder) as paths.

        Raises
        ------
        ProjectError
            If a format is unknown, or ``directory`` is a file, cannot be created or written.

        Notes
        -----
        The crate's main entity is the project's runs exported as a workflow (the Workflow Run
        Crate profile requires one). When they cannot be exported (no runs yet, or a run's
        protocol is not installed) no crate is written, the crate of an earlier write in
        ``directory`` is removed, :attr:`crate_note` says why and the HTML and Markdown files
        say so too.
        """
        chosen = check_formats(formats)
        folder = Path(directory).expanduser()
        _make_folder(folder)
        self.crate_note = None
        workflow = self._workflow() if "crate" in chosen else None
        if "crate" in chosen and workflow is None:
            for stale in (rocrate.METADATA_FILE, rocrate.WORKFLOW_FILE):
                _unlink(folder / stale)
        written: dict[str, Path] = {}
        files: list[str] = []
        if "md" in chosen or workflow is not None:
            _make_folder(folder / FIGURES)
            for run in self.runs:
                for output, figure in run.figures:
                    relative = self.figure_file(run, output, figure)
                    _write(folder / relative, figure.data)
                    files.append(relative)
            written["figures"] = folder / FIGURES
        if "html" in chosen:
            written["html"] = _write(folder / "report.html", self.to_html())
        if "md" in chosen:
            written["md"] = _write(folder / "report.md", self.to_markdown())
        if workflow is not None:
            written["workflow"] = _write(
                folder / rocrate.WORKFLOW_FILE, json.dumps(workflow, indent=2)
            )
            documents = [f"report.{f}" for f in ("html", "md") if f in chosen]
            crate = rocrate.build(self, documents, files)
            written["crate"] = _write(
                folder / rocrate.METADATA_FILE, json.dumps(crate, indent=2, ensure_ascii=False)
            )
        return written

    def _workflow(self) -> dict[str, Any] | None:
        """The runs as a workflow template, or ``None`` with :attr:`crate_note` set."""
        try:
            return self.project.export_workflow()
        except CryolabError as exc:
            self.crate_note = (
                f"No RO-Crate was written: its main entity, the runs as a workflow, cannot be "
                f"exported ({exc})."
            )
            log.info("report: %s", self.crate_note)  # callers show crate_note
            return None


def check_formats(formats: Iterable[str]) -> list[str]:
    """The report formats asked for, in order and once each.

    Raises
    ------
    ProjectError
        If a format is unknown or none is given.
    """
    chosen = list(dict.fromkeys(formats))
    unknown = sorted(set(chosen) - set(FORMATS))
    if unknown or not chosen:
        raise ProjectError(f"unknown report format(s) {unknown}; choose from {list(FORMATS)}")
    return chosen


def build_report(
    project: Project, out_dir: str | os.PathLike[str] | None = None, **options: Any
) -> Report:
    """:class:`Report` of ``project``, also written into ``out_dir`` when given."""
    report = Report(project, **options)
    if out_dir is not None:
        report.write(out_dir)
    return report


def _make_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ProjectError(f"cannot write the report into {folder}: it is a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProjectError(
            f"cannot create the report folder {folder}: {exc.strerror or exc}"
        ) from None


def _write(path: Path, content: str | bytes) -> Path:
    """Write a file whole (a partial file, renamed), or raise a :class:`ProjectError`."""
    partial = path.with_name(path.name + ".partial")
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        partial.write_bytes(data)
        partial.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise ProjectError(f"cannot write the report file {path}: {exc.strerror or exc}") from None
    return path


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise ProjectError(
            f"cannot remove the outdated file {path}: {exc.strerror or exc}"
        ) from None


def _join(values: list[str]) -> str:
    values = [str(v) for v in values]
    if len(values) <= 1:
        return "".join(values)
    return ", ".join(values[:-1]) + " and " + values[-1]


def _versions(runs: list[RunEntry]) -> dict[str, list[str]]:
    """Distinct versions the runs recorded: ``cryolab``, ``git``, ``python``, ``numpy``,
    ``cupy``, ``cuda_runtime``, ``gpu``, ``plugin:NAME`` and ``program:NAME``."""
    found: dict[str, list[str]] = {}

    def add(key: str, value: Any) -> None:
        if value is not None and value != "" and str(value) not in found.setdefault(key, []):
            found[key].append(str(value))

    for run in runs:
        record = run.provenance
        versions = record.get("versions") or {}
        for key, value in versions.items():
            if key == "plugins" and isinstance(value, dict):
                for name, version in value.items():
                    add(f"plugin:{name}", version)
            elif key == "programs" and isinstance(value, dict):
                for name, version in value.items():
                    add(f"program:{name}", version)
            elif not isinstance(value, dict):
                add(key, value)
        add("gpu", record.get("gpu"))
    return {k: v for k, v in found.items() if v}


def input_label(value: Any) -> str:
    """A parameter value for a table: inputs as ``run 2 · micrographs``, lists joined."""
    if isinstance(value, str) and is_reference(value):
        run_id, output = split_reference(value)
        return f"run {run_id} · {output}"
    if isinstance(value, list):
        if all(isinstance(v, str) and is_reference(v) for v in value) and value:
            return ", ".join(input_label(v) for v in value)
        return json.dumps(value)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
