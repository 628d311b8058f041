"""Sphinx configuration of the cryolab documentation (``make docs``).

The pages are MyST Markdown; the tutorials are the notebooks of ``notebooks/``, copied into
``docs/tutorials/`` at build time and rendered as committed: code and text, no outputs (the
committed notebooks are clean and the docs build never executes them).
The build runs with ``-W -n``: any warning or unresolved reference fails.
"""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path
from typing import Any

from cryolab import __version__

DOCS = Path(__file__).parent
NOTEBOOKS = DOCS.parent / "notebooks"
TUTORIALS = DOCS / "tutorials"
TUTORIAL_MARKER = "<!-- tutorial notebooks -->"

project = "cryolab"
author = "cryolab developers"
copyright = "cryolab developers, BSD-3-Clause"
version = release = __version__

extensions = [
    "myst_nb",  # MyST Markdown pages (myst-parser) and notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
root_doc = "index"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # too slow for make test; papermill runs them in tests/notebooks
# widget views need a live kernel: a saved notebook shows their text form instead
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# No network when the docs build: references into other projects' documentation (numpy,
# pyarrow, the standard library beyond builtins) stay plain text instead of failing the build.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(np|numpy|NDArray|npt|pa|pyarrow|pd|pandas|scipy)(\..*)?"),
    (r"py:.*", r"(anywidget|traitlets|t|bokeh|ipywidgets|IPython|jupyter_bokeh)\..*"),
    (r"py:.*", r".*\._[A-Za-z]\w*"),  # private helpers (a base class such as params._Number)
    (r"py:.*", r"(abc|ast|os|pathlib|collections|typing|sqlite3|concurrent|subprocess|io)(\..*)?"),
    (r"py:.*", r"(Path|PathLike|Iterator|Iterable|Mapping|Sequence|Callable|Generator)"),
    (r"py:.*", r"(Any|Literal|ArrayLike|DTypeLike|FloatArray|Self|TypeAlias|T)"),
]

html_theme = "alabaster"
html_title = f"cryolab {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "A Jupyter-native workflow engine for cryo-EM image processing",
    "fixed_sidebar": True,
    "page_width": "1180px",
    "sidebar_width": "250px",
}


def _copy_notebooks() -> list[str]:
    """Copy ``notebooks/*.ipynb`` beside the tutorials page; return their document names.

    A notebook saved without running has no ``pygments_lexer``; its cells run in an IPython
    kernel (``!cryolab ...`` shell lines), so the copy names the IPython lexer.
    """
    names = []
    for source in sorted(NOTEBOOKS.glob("*.ipynb")):
        target = TUTORIALS / source.name
        notebook = json.loads(source.read_text(encoding="utf-8"))
        info = notebook.setdefault("metadata", {}).setdefault("language_info", {})
        if info.get("name", "python") == "python":
            info.setdefault("pygments_lexer", "ipython3")
        text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            shutil.copystat(source, target)  # rebuilt only when the source changes
        names.append(source.stem)
    wanted = {f"{name}.ipynb" for name in names}
    for stale in TUTORIALS.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    return names


TUTORIAL_NAMES = _copy_notebooks()


def _tutorial_toctree(app: Any, docname: str, source: list[str]) -> None:
    """Replace the marker of ``tutorials/index.md`` by a toctree of the notebooks found."""
    if docname != "tutorials/index" or TUTORIAL_MARKER not in source[0]:
        return
    if TUTORIAL_NAMES:
        block = "```{toctree}\n:maxdepth: 1\n\n" + "\n".join(TUTORIAL_NAMES) + "\n```\n"
    else:
        block = "*This checkout has no tutorial notebooks (`notebooks/*.ipynb`).*\n"
    source[0] = source[0].replace(TUTORIAL_MARKER, block)


def _exists(dotted: str) -> bool:
    """Whether ``dotted`` names an importable module or an attribute (or field) of one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except (ImportError, ValueError, TypeError):
            continue
        for index, attribute in enumerate(parts[cut:], start=cut):
            if hasattr(obj, attribute):
                obj = getattr(obj, attribute)
            elif attribute in getattr(obj, "__annotations__", {}):
                return index == len(parts) - 1  # a dataclass field without a default
            else:
                return False
        return True
    return False


def _resolve_reference(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve what a docstring names that Sphinx's exact lookup missed.

    A short name (``:meth:`Project.run```) is looked up as a leading dot would
    (``:meth:`.Project.run```): the one documented object whose full name ends with it. A name
    of something that exists but is not in the API reference (an internal module, an
    undocumented constant, the standard library) is shown as code without a link. Anything
    else stays unresolved, so a misspelt or removed name fails the build.
    """
    if node.get("refdomain") != "py" or node.get("refspecific"):
        return None
    node["refspecific"] = True
    domain = env.get_domain("py")
    target = node["reftarget"]
    found = domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], target, node, contnode
    )
    if found is not None:
        return found
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [target]
    if module:
        candidates += [f"{module}.{cls}.{target}"] if cls else []
        candidates.append(f"{module}.{target}")
    return contnode if any(_exists(name) for name in candidates) else None


def _prose_attribute_docstring(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Undo napoleon's reading of ``Words: more words`` in an attribute docstring as a type.

    Napoleon takes the text before a colon on the first line of an attribute or property
    docstring as its type; cryolab's types come from annotations and such a line is prose
    ("What the run ran on and with: parameters, ..."), so it is put back as written.
    """
    if what not in ("attribute", "data", "property") or len(lines) < 2:
        return
    if not lines[-1].startswith(":type: ") or lines[-2] != "":
        return
    prose = lines[-1].removeprefix(":type: ")
    del lines[-2:]
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        lines.append(f"{prose}:")
    else:
        lines[first] = f"{prose}: {lines[first]}"


def _tutorials_outdated(app: Any, env: Any, added: Any, changed: Any, removed: Any) -> list[str]:
    """Read the tutorials page again at each build: the notebooks it lists may have changed."""
    return ["tutorials/index"]


def setup(app: Any) -> None:
    """Register the tutorial toctree, reference and attribute-docstring hooks."""
    app.connect("source-read", _tutorial_toctree)
    app.connect("missing-reference", _resolve_reference)
    app.connect("env-get-outdated", _tutorials_outdated)
    # after napoleon's own handler (priority 500)
    app.connect("autodoc-process-docstring", _prose_attribute_docstring, priority=600)
