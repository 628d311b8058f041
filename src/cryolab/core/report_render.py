"""The HTML and Markdown text of a :class:`~cryolab.core.report.Report`.

HTML is one self-contained page (styles inline, the run graph and plots as inline SVG, pictures
as ``data:`` URIs), readable offline; the notebook view is the same without the page wrapper.
Markdown references the figure files the report writes under ``figures/``.
"""

from __future__ import annotations

import re
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryolab.core.report import Report, RunEntry

STYLE = """
.cryolab-report{font-family:Helvetica,Arial,sans-serif;color:#263238;line-height:1.5;
 max-width:1120px;margin:0 auto;padding:8px 20px 40px}
.cryolab-report h1{font-size:26px;margin:18px 0 4px}
.cryolab-report h2{font-size:19px;margin:30px 0 10px;padding-bottom:4px;
 border-bottom:2px solid #cfd8dc}
.cryolab-report h3{font-size:15px;margin:18px 0 6px}
.cryolab-report .meta{color:#607d8b;font-size:13px}
.cryolab-report nav a{margin-right:14px;color:#1f5fa8;text-decoration:none;font-size:14px}
.cryolab-report .graph{overflow-x:auto;text-align:center;border:1px solid #eceff1;
 border-radius:6px;padding:6px;
 background:#fafbfc}
.cryolab-report .methods{font-size:15px;text-align:justify;max-width:900px}
.cryolab-report .methods a,.cryolab-report .refs a{color:#1f5fa8;text-decoration:none}
.cryolab-report .refs{font-size:13.5px;max-width:900px}
.cryolab-report .refs li{margin-bottom:4px}
.cryolab-report .figures{display:flex;flex-wrap:wrap;gap:16px}
.cryolab-report figure{margin:0;border:1px solid #eceff1;border-radius:6px;padding:10px;
 background:#fff;flex:0 1 520px;max-width:100%}
.cryolab-report figure img{max-width:100%;image-rendering:pixelated;display:block}
.cryolab-report figure svg{width:100%;height:auto;display:block}
.cryolab-report h3 a{color:#263238}
.cryolab-report figcaption{font-size:12.5px;color:#455a64;max-width:560px;margin-top:6px}
.cryolab-report table{border-collapse:collapse;font-size:13px;margin:6px 0 12px}
.cryolab-report th,.cryolab-report td{border-bottom:1px solid #eceff1;padding:3px 10px 3px 0;
 text-align:left;vertical-align:top}
.cryolab-report th{color:#546e7a;font-weight:600}
.cryolab-report details{border:1px solid #eceff1;border-radius:6px;padding:6px 12px;
 margin:8px 0}
.cryolab-report summary{cursor:pointer;font-weight:600}
.cryolab-report .status-finished{color:#2e7d32}.cryolab-report .status-failed{color:#c62828}
.cryolab-report .note{background:#fff8e1;border-left:4px solid #f9a825;padding:4px 10px;
 font-size:13.5px}
.cryolab-report code{font-size:12.5px;background:#f5f7f8;padding:1px 4px;border-radius:3px}
"""
CITATION = re.compile(r"\[(\d+(?:, \d+)*)\]")


def when(timestamp: float | None) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS``, or an empty string."""
    if not timestamp:
        return ""
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def duration(run: RunEntry) -> str:
    """How long a run ran, e.g. ``1 min 5 s``."""
    if not run.started or not run.finished:
        return ""
    seconds = max(0.0, run.finished - run.started)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {rest} s"


def memory(run: RunEntry) -> str:
    """The run's peak memory, e.g. ``156 MiB``."""
    peak = (run.provenance.get("peak_memory") or {}).get("peak")
    return f"{peak / 2**20:.0f} MiB" if peak else ""


def version_rows(report: Report) -> list[tuple[str, str]]:
    """``(software, versions)`` rows of the software table."""
    names = {
        "cryolab": "cryolab",
        "git": "cryolab commit",
        "python": "Python",
        "numpy": "NumPy",
        "cupy": "CuPy",
        "cuda_runtime": "CUDA runtime",
        "cuda_driver": "CUDA driver",
        "gpu": "GPU",
    }
    rows = []
    for key, values in report.versions.items():
        if ":" in key:
            kind, name = key.split(":", 1)
            label = f"{name} ({'plugin' if kind == 'plugin' else 'program'})"
        else:
            label = names.get(key, key)
        rows.append((label, ", ".join(values)))
    hosts = sorted({str(r.provenance.get("host")) for r in report.runs if r.provenance.get("host")})
    if hosts:
        rows.append(("hosts", ", ".join(hosts)))
    return rows


# -------------------------------------------------------------------------------- HTML


def _linked(text: str) -> str:
    """Escaped text whose ``[1, 2]`` citations link to the references."""

    def link(match: re.Match[str]) -> str:
        numbers = match.group(1).split(", ")
        return "[" + ", ".join(f'<a href="#ref-{n}">{n}</a>' for n in numbers) + "]"

    return CITATION.sub(link, escape(text))


def _table(rows: list[tuple[str, str]], head: tuple[str, str] | None = None) -> str:
    top = f"<tr><th>{escape(head[0])}</th><th>{escape(head[1])}</th></tr>" if head else ""
    body = "".join(f"<tr><th>{escape(a)}</th><td>{escape(b)}</td></tr>" for a, b in rows)
    return f"<table>{top}{body}</table>"


def _run_html(report: Report, run: RunEntry) -> str:
    from cryolab.core.report import input_label

    facts = [
        ("protocol", run.protocol),
        ("status", run.status),
        ("started", when(run.started)),
        ("duration", duration(run)),
        ("peak memory", memory(run)),
        ("host", str(run.provenance.get("host") or "")),
        ("GPU", str(run.provenance.get("gpu") or "")),
        ("seed", str(run.provenance.get("seed") or "")),
        ("folder", run.folder),
    ]
    outputs = [(o["name"], f"{o['type']}: {o['count']} items ({o['state']})") for o in run.outputs]
    params = [(name, input_label(value)) for name, value in run.params.items()]
    methods = f'<p class="methods">{_linked(run.methods)}</p>' if run.methods else ""
    note = f'<p class="note">{escape(run.note)}</p>' if run.note else ""
    return (
        f'<details id="run-{run.id}"><summary>{escape(run.title)} '
        f'<span class="status-{escape(run.status)}">({escape(run.status)})</span></summary>'
        f"{note}<p>{escape(run.description)}</p>{methods}<h3>Run</h3>"
        f"{_table([f for f in facts if f[1]])}<h3>Parameters</h3>{_table(params)}"
        f"<h3>Outputs</h3>{_table(outputs)}</details>"
    )


def render_html(report: Report, *, standalone: bool) -> str:
    """The report as HTML (see the module's docstring)."""
    counts: dict[str, int] = {}
    for run in report.runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    parts = [
        f"<style>{STYLE}</style>" if not standalone else "",
        '<div class="cryolab-report">',
        f"<h1>{escape(report.title)}</h1>",
        f'<p class="meta">Project <code>{escape(str(report.path))}</code> · {len(report.runs)} '
        f"runs ({escape(status or 'none')}) · generated {report.created:%Y-%m-%d %H:%M} by "
        f"cryolab</p>",
        f'<p class="note">{escape(report.crate_note)}</p>' if report.crate_note else "",
        '<nav><a href="#graph">Run graph</a><a href="#methods">Methods</a>'
        '<a href="#figures">Figures</a><a href="#runs">Runs and parameters</a>'
        '<a href="#software">Software</a><a href="#references">References</a></nav>',
        f'<h2 id="graph">Run graph</h2><div class="graph">{report.graph_svg}</div>',
        '<h2 id="methods">Methods</h2><p class="methods">',
        " ".join(
            f'<span data-runs="{" ".join(map(str, s.runs))}">{_linked(s.text)}</span>'
            for s in report.methods
        ),
        "</p>",
        '<h2 id="figures">Figures</h2>',
    ]
    shown = False
    for run in report.runs:
        if not run.figures:
            continue
        shown = True
        parts.append(
            f'<h3><a href="#run-{run.id}">{escape(run.title)}</a></h3><div class="figures">'
        )
        for output, figure in run.figures:
            parts.append(
                f'<figure data-figure="{escape(figure.name)}" data-output="{escape(output)}">'
                f"{figure.html()}<figcaption><b>{escape(figure.title)}</b> "
                f"({escape(output)}). {escape(figure.caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    if not shown:
        parts.append("<p>No run has outputs with figures yet.</p>")
    parts.append('<h2 id="runs">Runs and parameters</h2>')
    parts.extend(_run_html(report, run) for run in report.runs)
    parts.append(f'<h2 id="software">Software</h2>{_table(version_rows(report))}')
    parts.append('<h2 id="references">References</h2><ol class="refs">')
    for number, entry in enumerate(report.references, start=1):
        link = f' <a href="{escape(entry.link)}">{escape(entry.link)}</a>' if entry.link else ""
        text = escape(entry.text())
        if entry.link and entry.fields.get("doi"):
            text = escape(entry.text().replace(f" doi:{entry.fields['doi']}", ""))
        parts.append(f'<li id="ref-{number}" data-key="{escape(entry.key)}">{text}{link}</li>')
    parts.append("</ol></div>")
    body = "\n".join(parts)
    if not standalone:
        return body
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(report.title)}</title><style>{STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


# -------------------------------------------------------------------------------- Markdown


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(rows: list[tuple[str, str]], head: tuple[str, str]) -> list[str]:
    lines = [f"| {head[0]} | {head[1]} |", "| --- | --- |"]
    lines.extend(f"| {_cell(a)} | {_cell(b)} |" for a, b in rows)
    return [*lines, ""]


def render_markdown(report: Report) -> str:
    """The report as Markdown (see the module's docstring)."""
    from cryolab.core.report import input_label

    lines = [
        f"# {report.title}",
        "",
        f"Project `{report.path}` · {len(report.runs)} runs · generated "
        f"{report.created:%Y-%m-%d %H:%M} by cryolab.",
        "",
        *([f"> {report.crate_note}", ""] if report.crate_note else []),
        "## Run graph",
        "",
    ]
    for run in report.runs:
        sources = sorted({f"run {i['run']}" for i in run.inputs})
        after = f" ← {', '.join(sources)}" if sources else ""
        lines.append(f"- **{run.id}** `{run.protocol}` {run.label} ({run.status}){after}")
    lines += ["", "## Methods", "", " ".join(s.text for s in report.methods), "", "## Figures", ""]
    for run in report.runs:
        if not run.figures:
            continue
        lines += [f"### {run.title}", ""]
        for output, figure in run.figures:
            path = report.figure_file(run, output, figure)
            lines += [
                f"![{figure.title}]({path})",
                "",
                f"*{figure.title}* ({output}). {figure.caption}",
                "",
            ]
    lines += ["## Runs and parameters", ""]
    for run in report.runs:
        facts = (run.protocol, run.status, when(run.started), duration(run), memory(run))
        lines += [f"### {run.title}", "", " · ".join(f for f in facts if f), ""]
        if run.note:
            lines += [f"> {run.note}", ""]
        if run.methods:
            lines += [run.methods, ""]
        params = [(name, input_label(value)) for name, value in run.params.items()]
        lines += _md_table(params, ("parameter", "value"))
        outputs = [
            (o["name"], f"{o['type']}: {o['count']} items ({o['state']})") for o in run.outputs
        ]
        if outputs:
            lines += _md_table(outputs, ("output", "content"))
    lines += ["## Software", "", *_md_table(version_rows(report), ("software", "version"))]
    lines += ["## References", ""]
    lines += [f"{n}. {entry.text()}" for n, entry in enumerate(report.references, start=1)]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"
