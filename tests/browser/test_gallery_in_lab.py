"""The lazy gallery in a real JupyterLab: 1 M particles, scroll deep, select a range, subset it."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pyarrow as pa
import pytest

from cryolab.core.project import open_project
from cryolab.em.gallery import ImagePages, Query
from cryolab.em.objects import SetOfParticles

from .conftest import Lab, open_notebook, screenshot

COUNT = 1_000_000
BOX = 32  # int8 images: 1 KB each, 1 GB for the stack
POOL = 1000  # distinct images; image i of the stack is POOL image i % POOL
SIZE = 64  # the gallery's thumbnail side
PAGE = 100  # the front end's page size (gallery.js)

TILES = ".cryolab-gallery .cg-tile"
# positions of the tiles drawn in the DOM, and whether each is still a placeholder
TILE_STATE = f"""() => Array.from(document.querySelectorAll("{TILES}"),
    t => [Number(t.dataset.position), t.classList.contains("cg-loading")])"""
# the grey values a tile's canvas shows (red channel), or null while it is a placeholder
CANVAS = f"""(position) => {{
    const tile = document.querySelector(`{TILES}[data-position="${{position}}"]`);
    if (!tile || tile.classList.contains("cg-loading")) return null;
    const canvas = tile.querySelector("canvas");
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    return Array.from({{length: data.length / 4}}, (_, i) => data[4 * i]);
}}"""

# tiles whose canvas or label lines stick out of the tile's border, or that overlap the next
TILE_OVERFLOWS = f"""() => {{
    const tiles = Array.from(document.querySelectorAll("{TILES}"));
    const bad = [];
    for (const tile of tiles) {{
        const position = Number(tile.dataset.position);
        const box = tile.getBoundingClientRect();
        const border = parseFloat(getComputedStyle(tile).borderLeftWidth);
        const parts = [tile.querySelector("canvas"), ...tile.querySelectorAll(".cg-line")];
        for (const part of parts) {{
            const r = part.getBoundingClientRect();
            if (r.left < box.left + border - 0.5 || r.right > box.right - border + 0.5
                || r.top < box.top + border - 0.5 || r.bottom > box.bottom - border + 0.5)
                bad.push([position, part.className || part.tagName]);
        }}
        if (tile.querySelectorAll(".cg-line").length !== 2) bad.push([position, "lines"]);
        const next = tiles.find(t => Number(t.dataset.position) === position + 1);
        if (next) {{
            const n = next.getBoundingClientRect();
            const apart = n.left >= box.right || n.top >= box.bottom;
            if (!apart) bad.push([position, "overlaps the next tile"]);
        }}
    }}
    return bad;
}}"""


@dataclass
class Particles:
    """A project in the lab's folder whose run 1 holds the imported 1 M-particle set."""

    folder: Path
    run_id: int
    images: SetOfParticles


def write_stack(path: Path) -> None:
    """An int8 MRC stack of COUNT blob images, written as POOL images repeated (~1 s)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:BOX, :BOX] - (BOX - 1) / 2
    cy, cx = rng.uniform(-7, 7, (2, POOL, 1, 1))
    width = rng.uniform(2.5, 5, (POOL, 1, 1))
    blobs = 100 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width**2))
    pool = np.clip(blobs - 40 + rng.normal(0, 12, (POOL, BOX, BOX)), -127, 127).astype(np.int8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with mrcfile.new_mmap(path, shape=(COUNT, BOX, BOX), mrc_mode=0, overwrite=True) as mrc:
            mrc.set_image_stack()
            mrc.voxel_size = 1.0
            mrc.data.reshape(COUNT // POOL, POOL, BOX, BOX)[:] = pool


@pytest.fixture(scope="session")
def particles(lab: Lab) -> Iterator[Particles]:
    """1 M particles over a 1 GB stack, imported as a finished run of a project in the lab.

    The stack is deleted afterwards (pytest keeps the last temporary folders).
    """
    stack = lab.root / "particles.mrcs"
    write_stack(stack)
    rng = np.random.default_rng(8)
    images = SetOfParticles(
        {
            "image.path": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(COUNT, dtype=np.int32)), pa.array([str(stack)])
            ),
            "image.index": np.arange(1, COUNT + 1),
            "ctf.defocus_u": np.round(rng.uniform(5000, 35000, COUNT)),
            "class_id": rng.integers(0, 50, COUNT),
        }
    )
    folder = lab.root / "gallery-project"
    project = open_project(folder)
    try:
        run = project.add_imported_run(
            "external.job",
            {
                "program": "test",
                "job": "particles",
                "output_names": ["particles"],
                "output_types": ["SetOfParticles"],
            },
            {"particles": images},
            label="1 M particles",
        )
        run_id = run.id
    finally:
        project.close()
    yield Particles(folder, run_id, images)
    stack.unlink(missing_ok=True)


def expected_thumbnail(images: SetOfParticles, position: int) -> list[int]:
    page = ImagePages(images).page(position, 1, size=SIZE)
    return [int(v) for v in page.thumbnails[0].ravel()]


def status_text(page: Any) -> str:
    return str(page.locator(".cryolab-gallery .cg-status").inner_text())


def counts(selected: int) -> re.Pattern[str]:
    """The status line's counts (digits grouped as the browser's locale does)."""
    grouped = r"\D?".join(f"{selected:,}".split(","))
    return re.compile(rf"^1\D?000\D?000 items · {grouped} selected")


def test_scroll_a_million_particles_and_make_a_subset_of_a_range(
    page: Any, lab: Lab, particles: Particles
) -> None:
    from playwright.sync_api import expect

    cells = [
        "from cryolab.core.project import open_project\n"
        f"project = open_project({str(particles.folder)!r}, create=False)\n"
        f"source = project.get_run({particles.run_id}).out.particles",
        "source.gallery(labels=['class_id', 'ctf.defocus_u'])",
    ]
    open_notebook(page, lab, "gallery.ipynb", cells)
    gallery = page.locator(".cryolab-gallery")
    gallery.wait_for(timeout=120_000)
    gallery.scroll_into_view_if_needed()
    status = gallery.locator(".cg-status")
    expect(status).to_have_text(counts(0), timeout=60_000)
    expect(gallery.locator(".cg-title")).to_have_text(
        f"SetOfParticles {particles.run_id}.particles"
    )

    # the first tiles: drawn with the right images and labels
    page.wait_for_function(f"() => ({CANVAS})(0) !== null", timeout=60_000)
    assert page.evaluate(CANVAS, 0) == expected_thumbnail(particles.images, 0)
    assert page.evaluate(CANVAS, 1) == expected_thumbnail(particles.images, 1)
    first_labels = gallery.locator(".cg-tile[data-position='0'] .cg-line")
    defocus = particles.images["ctf.defocus_u"][0]
    expect(first_labels).to_have_text([str(particles.images["class_id"][0]), f"{defocus:.0f}"])

    # scroll to 75 % of the set: the tiles there load (no placeholder left), nothing before
    page.evaluate(
        """() => { const s = document.querySelector(".cryolab-gallery .cg-scroll");
        s.scrollTop = 0.75 * (s.scrollHeight - s.clientHeight); }"""
    )
    page.wait_for_function(
        f"""() => {{ const tiles = ({TILE_STATE})();
        return tiles.length > 0 && tiles.every(([p, loading]) => p > 700000 && !loading); }}""",
        timeout=60_000,
    )
    tiles = page.evaluate(TILE_STATE)
    positions = sorted(p for p, _ in tiles)
    assert 740_000 < positions[0] < positions[-1] < 760_000, positions[:3]
    # virtual scrolling: only the visible rows (and a few around them) are in the page
    columns = page.evaluate(
        f"""() => new Set(Array.from(document.querySelectorAll("{TILES}"),
        t => t.style.left)).size"""
    )
    rows_in_view = 480 // (SIZE + 12 + 2 * 14) + 1
    assert len(tiles) <= (rows_in_view + 2 * 2 + 1) * columns, (len(tiles), columns)
    assert positions == list(range(positions[0], positions[0] + len(tiles)))
    for position in (positions[0], positions[-1]):
        assert page.evaluate(CANVAS, position) == expected_thumbnail(particles.images, position)
    # each thumbnail and its two label lines fit inside its tile's border; tiles never overlap
    overflows = page.evaluate(f"({TILE_OVERFLOWS})()")
    assert overflows == [], overflows[:5]

    # click a tile, shift-click one some rows below: the range is selected
    visible = page.evaluate(
        f"""() => {{ const box = document.querySelector(".cryolab-gallery .cg-scroll")
            .getBoundingClientRect();
        return Array.from(document.querySelectorAll("{TILES}"))
            .filter(t => {{ const r = t.getBoundingClientRect();
                return r.top >= box.top && r.bottom <= box.bottom; }})
            .map(t => Number(t.dataset.position)).sort((a, b) => a - b); }}"""
    )
    first, last = visible[1], visible[-2]
    assert last - first > columns, (first, last, columns)  # the range spans rows
    gallery.locator(f".cg-tile[data-position='{first}']").click()
    expect(status).to_have_text(counts(1))
    gallery.locator(f".cg-tile[data-position='{last}']").click(modifiers=["Shift"])
    chosen = last - first + 1
    expect(status).to_have_text(counts(chosen))
    selected_tiles = gallery.locator(".cg-tile.cg-selected")
    expect(selected_tiles).to_have_count(chosen)
    marked = selected_tiles.evaluate_all("ts => ts.map(t => Number(t.dataset.position))")
    assert sorted(marked) == list(range(first, last + 1))

    # "Make subset" creates a sets.subset run of exactly those items
    subset_button = gallery.locator("button.cg-subset")
    expect(subset_button).to_be_enabled()
    subset_button.click()
    expect(status).to_contain_text("subset run", timeout=60_000)
    match = re.search(r"subset run (\d+) created", status_text(page))
    assert match, status_text(page)
    screenshot(page, "gallery-deep-selection")

    uids = ImagePages(particles.images).uids(Query())[first : last + 1]
    project = open_project(particles.folder, create=False)
    try:
        run = project.get_run(int(match.group(1))).wait(120)
        assert run.protocol == "sets.subset" and run.status == "finished"
        assert run.params["source"] == f"{particles.run_id}.particles"
        assert run.params["mode"] == "list"
        subset = run.out.subset.load()
        assert type(subset) is SetOfParticles
        assert sorted(subset.uids.tolist()) == sorted(uids.tolist())
        assert len(subset) == chosen
    finally:
        project.close()


def test_thumbnails_load_from_the_server_while_the_kernel_is_busy(
    page: Any, lab: Lab, particles: Particles
) -> None:
    cells = [
        "from cryolab.core.project import open_project\n"
        f"project = open_project({str(particles.folder)!r}, create=False)\n"
        f"source = project.get_run({particles.run_id}).out.particles",
        "source.gallery()",
        "import time\ntime.sleep(60)  # the kernel is busy: comm messages wait",
    ]
    open_notebook(page, lab, "busy.ipynb", cells)
    page.locator(".cryolab-gallery").wait_for(timeout=120_000)
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
        " === 'busy'",
        timeout=60_000,
    )
    page.evaluate(
        """() => { const s = document.querySelector(".cryolab-gallery .cg-scroll");
        s.scrollTop = 0.5 * (s.scrollHeight - s.clientHeight); }"""
    )
    page.wait_for_function(
        f"""() => {{ const tiles = ({TILE_STATE})();
        return tiles.length > 0 && tiles.every(([p, loading]) => p > 400000 && !loading); }}""",
        timeout=20_000,
    )
    position = page.evaluate(f"() => ({TILE_STATE})()[0][0]")
    assert page.evaluate(CANVAS, position) == expected_thumbnail(particles.images, position)
    screenshot(page, "gallery-busy-kernel")
    still_busy = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
    )
    assert still_busy == "busy"  # so these thumbnails came from the server, not the kernel
    page.evaluate("window.jupyterapp.commands.execute('kernelmenu:interrupt')")
