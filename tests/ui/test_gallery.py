"""The gallery widget without a kernel: commands and trait updates as the browser sends them."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cryolab.core.project import Project
from cryolab.core.runs import OutputRef
from cryolab.em import imageio
from cryolab.em.gallery import ImagePages, Query
from cryolab.em.objects import SetOfParticles
from cryolab.ui import gallery as gallery_module
from cryolab.ui.gallery import Gallery

COUNT = 30
BOX = 12
_ids = itertools.count()


@pytest.fixture
def particles(tmp_path: Path) -> SetOfParticles:
    rng = np.random.default_rng(5)
    stack = imageio.write_stack(
        tmp_path / "particles.mrcs", rng.normal(size=(COUNT, BOX, BOX)).astype(np.float32)
    )
    return SetOfParticles(
        {
            "image.path": [str(stack)] * COUNT,
            "image.index": np.arange(1, COUNT + 1),
            "ctf.defocus_u": rng.uniform(5000, 30000, COUNT),
            "class_id": np.arange(COUNT) % 3,
        }
    )


class Browser:
    """Plays the front end: sends commands and trait updates, keeps what Python sent back."""

    def __init__(self, widget: Gallery, monkeypatch: pytest.MonkeyPatch) -> None:
        self.widget = widget
        self.sent: list[tuple[dict[str, Any], list[Any]]] = []

        def send(data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
            self.sent.append((data, list(buffers or [])))

        monkeypatch.setattr(widget.comm, "send", send)

    def invoke(self, name: str, msg: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        ident = f"call-{next(_ids)}"
        content = {"kind": "anywidget-command", "id": ident, "name": name, "msg": msg}
        self.widget._handle_msg(
            {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
        )
        for data, buffers in reversed(self.sent):
            reply = data.get("content", {}) if data.get("method") == "custom" else {}
            if reply.get("kind") == "anywidget-command-response" and reply["id"] == ident:
                response: dict[str, Any] = reply["response"]
                return response, buffers
        raise AssertionError(f"no response to {name}")

    def update(self, **state: Any) -> None:
        self.widget._handle_msg(
            {
                "content": {"data": {"method": "update", "state": state, "buffer_paths": []}},
                "buffers": [],
            }
        )


def test_the_widget_ships_its_front_end(particles: SetOfParticles) -> None:
    state = Gallery(particles).get_state()
    assert "experimental.invoke" in state["_esm"]
    assert "AbortSignal.timeout(TIMEOUT_MS)" in state["_esm"]
    assert "cryolab-gallery" in state["_css"]
    assert state["total"] == COUNT
    assert state["columns"][0] == "uid" and "ctf.defocus_u" in state["columns"]


def test_pages_follow_the_sort_and_filter_set_by_the_browser(
    particles: SetOfParticles, monkeypatch: pytest.MonkeyPatch
) -> None:
    widget = Gallery(particles, labels=["class_id"], size=BOX)
    browser = Browser(widget, monkeypatch)
    browser.update(sort="ctf.defocus_u", descending=True, where="class_id != 1")
    assert widget.total == 20
    meta, buffers = browser.invoke("_page", {"start": 5, "count": 8})

    query = Query("ctf.defocus_u", True, "class_id != 1")
    expected = ImagePages(particles).page(5, 8, query=query, size=BOX, labels=["class_id"])
    assert meta["version"] == widget.version
    assert (meta["start"], meta["count"], meta["total"], meta["size"]) == (5, 8, 20, BOX)
    assert meta["uids"] == [str(u) for u in expected.uids]
    assert meta["labels"] == {"class_id": expected.labels["class_id"]}
    assert meta["selected"] == [False] * 8
    pixels = np.frombuffer(bytes(buffers[0]), dtype=np.uint8).reshape(8, BOX, BOX)
    np.testing.assert_array_equal(pixels, expected.thumbnails)

    meta, buffers = browser.invoke("_page", {"start": 20, "count": 8})
    assert meta["count"] == 0 and meta["total"] == 20 and len(bytes(buffers[0])) == 0


def test_a_bad_filter_or_sort_is_reported_and_the_last_good_query_stays(
    particles: SetOfParticles, monkeypatch: pytest.MonkeyPatch
) -> None:
    widget = Gallery(particles, where="class_id == 0")
    browser = Browser(widget, monkeypatch)
    version = widget.version
    browser.update(where="clas_id == 0")
    assert "unknown column 'clas_id'; did you mean 'class_id'?" in widget.error
    assert widget.total == 10 and widget.version == version
    assert widget.query.where == "class_id == 0"
    browser.update(where="class_id == 0")
    assert widget.error == "" and widget.version == version
    browser.update(sort="defocus")
    assert "cannot sort by 'defocus'" in widget.error
    browser.update(sort="class_id")
    assert widget.error == "" and widget.version == version + 1
    meta, _ = browser.invoke("_page", {"start": -3, "count": 5})
    assert "cannot start at -3" in meta["error"]
    with pytest.raises(Exception, match="cannot sort by 'nope'"):
        Gallery(particles, sort="nope")


def test_click_shift_click_select_all_and_clear(
    particles: SetOfParticles, monkeypatch: pytest.MonkeyPatch
) -> None:
    widget = Gallery(particles, sort="ctf.defocus_u")
    browser = Browser(widget, monkeypatch)
    order = ImagePages(particles).order(Query(sort="ctf.defocus_u"))
    uids = particles.uids[order]

    assert browser.invoke("_select", {"action": "toggle", "position": 4})[0]["n_selected"] == 1
    browser.invoke("_select", {"action": "range", "anchor": 10, "position": 7})
    assert widget.n_selected == 5
    assert widget.selected.tolist() == sorted(uids[[4, 7, 8, 9, 10]].tolist())
    browser.invoke("_select", {"action": "toggle", "position": 8})
    flags = browser.invoke("_flags_at", {"start": 3, "stop": 12})[0]["selected"]
    assert flags == [False, True, False, False, True, False, True, True, False]
    meta, _ = browser.invoke("_page", {"start": 0, "count": 12})
    assert meta["selected"][4] and not meta["selected"][8]

    browser.update(where="class_id == 2")
    browser.invoke("_select", {"action": "all"})
    kept = particles.uids[particles["class_id"] == 2]
    assert widget.selected.tolist() == sorted(kept.tolist())
    browser.invoke("_select", {"action": "none"})
    assert widget.n_selected == 0
    assert (
        "no item at position 99"
        in browser.invoke("_select", {"action": "toggle", "position": 99})[0]["error"]
    )


def imported(project: Project, data: SetOfParticles) -> OutputRef:
    run = project.add_imported_run(
        "external.job",
        {
            "program": "test",
            "job": "parts",
            "output_names": ["out"],
            "output_types": [data.type_name],
        },
        {"out": data},
    )
    return run.out.out


def test_make_subset_runs_sets_subset_with_the_selected_uids(
    project: Project, particles: SetOfParticles, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = imported(project, particles)
    widget = source.gallery(sort="ctf.defocus_u")
    assert isinstance(widget, Gallery) and widget.can_subset
    browser = Browser(widget, monkeypatch)
    assert "select items first" in browser.invoke("_subset", {})[0]["error"]
    browser.invoke("_select", {"action": "range", "anchor": 2, "position": 6})
    browser.invoke("_select", {"action": "toggle", "position": 25})
    chosen = widget.selected

    meta, _ = browser.invoke("_subset", {})
    assert meta["run"] == widget.subset_run
    run = project.get_run(meta["run"]).wait(120)
    assert run.protocol == "sets.subset"
    assert run.params["mode"] == "list"
    result = run.out.subset.load()
    assert sorted(result.uids.tolist()) == chosen.tolist()
    assert type(result) is SetOfParticles

    browser.update(where="class_id == 1")
    browser.invoke("_select", {"action": "all"})
    by_filter = project.get_run(browser.invoke("_subset", {})[0]["run"]).wait(120)
    assert by_filter.params["mode"] == "condition"
    assert by_filter.params["where"] == "class_id == 1"
    expected = particles.uids[particles["class_id"] == 1]
    assert sorted(by_filter.out.subset.load().uids.tolist()) == sorted(expected.tolist())


def test_a_plain_set_has_a_gallery_but_no_subsets(
    particles: SetOfParticles, monkeypatch: pytest.MonkeyPatch
) -> None:
    widget = particles.gallery(labels=["class_id"])
    assert isinstance(widget, Gallery) and not widget.can_subset
    browser = Browser(widget, monkeypatch)
    browser.invoke("_select", {"action": "toggle", "position": 0})
    assert "no run's output" in browser.invoke("_subset", {})[0]["error"]


def test_uid_labels_keep_every_digit_in_the_browser(
    particles: SetOfParticles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uids are 63-bit: as JSON numbers, JavaScript would show them rounded
    widget = Gallery(particles, labels=["uid", "class_id"], size=BOX)
    meta, _ = Browser(widget, monkeypatch).invoke("_page", {"start": 0, "count": 4})
    assert meta["labels"]["uid"] == [str(u) for u in particles.uids[:4]]
    assert meta["labels"]["uid"] == meta["uids"]
    assert meta["labels"]["class_id"] == [0, 1, 2, 0]


def css_pixels(css: str, selector: str, prop: str) -> int:
    block = re.search(re.escape(selector) + r" \{([^}]*)\}", css)
    assert block, selector
    value = re.search(rf"(?:^|;|\s){prop}: (\d+)px", block.group(1))
    assert value, (selector, prop)
    return int(value.group(1))


def test_the_tile_slots_of_the_front_end_match_the_tiles_css_box() -> None:
    # gallery.js positions tiles absolutely in slots computed from constants; the slots must
    # hold the CSS box (border-box width, padding, border, margin) or canvases overflow tiles
    static = Path(gallery_module.__file__).parent / "static"
    js = (static / "gallery.js").read_text()
    css = (static / "gallery.css").read_text()
    constants = {n: int(v) for n, v in re.findall(r"^const (\w+) = (\d+);", js, re.M)}
    tile = ".cryolab-gallery .cg-tile"
    assert "box-sizing: border-box" in css.split(tile + " {")[1].split("}")[0]
    frame = 2 * (css_pixels(css, tile, "padding") + css_pixels(css, tile, "border"))
    assert constants["FRAME"] == frame
    assert constants["MARGIN"] == css_pixels(css, tile, "margin")
    assert constants["LINE"] == css_pixels(css, ".cryolab-gallery .cg-line", "height")
    assert constants["LINE"] == css_pixels(css, ".cryolab-gallery .cg-label", "line-height")
    assert "const width = size + FRAME + 2 * MARGIN;" in js
    assert "const height = size + FRAME + 2 * MARGIN + LINE * lines;" in js
    assert "tile.style.width = `${g.width - 2 * MARGIN}px`;" in js
    # one line per label: the height reserves LINE pixels for each
    assert 'element("div", "cg-line")' in js
