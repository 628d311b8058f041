"""The volume viewer: the planes it sends, browser edits, and the choice of back end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cryolab.em.imageio import write_mrc
from cryolab.em.objects import SetOfVolumes
from cryolab.ui import volume as front
from cryolab.ui.volume import VolumeViewer, view


def ramp() -> np.ndarray:
    """A 4 x 5 x 6 map whose value encodes its voxel: 100 z + 10 y + x."""
    z, y, x = np.meshgrid(np.arange(4), np.arange(5), np.arange(6), indexing="ij")
    return (100 * z + 10 * y + x).astype(np.float32)


def plane(widget: VolumeViewer, axis: str) -> np.ndarray:
    rows, cols = {"z": (1, 2), "y": (0, 2), "x": (0, 1)}[axis]
    shape = widget.shape
    raw = np.frombuffer(getattr(widget, f"plane_{axis}"), dtype=np.uint8)
    return raw.reshape(shape[rows], shape[cols])


def browser_update(widget: VolumeViewer, **state: Any) -> None:
    """What the front end sends when the user clicks or scrolls."""
    widget._handle_msg(
        {
            "content": {"data": {"method": "update", "state": state, "buffer_paths": []}},
            "buffers": [],
        }
    )


def scaled(values: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(values / 355.0, 0, 1) * 255).astype(np.uint8)


def test_viewer_sends_the_three_planes_through_the_centre() -> None:
    widget = VolumeViewer(ramp(), pixel_size=2.5, title="ramp")
    widget.contrast = [0.0, 355.0]
    assert widget.shape == [4, 5, 6] and widget.position == [2, 2, 3]
    np.testing.assert_array_equal(plane(widget, "z"), scaled(ramp()[2]))
    np.testing.assert_array_equal(plane(widget, "y"), scaled(ramp()[:, 2, :]))
    np.testing.assert_array_equal(plane(widget, "x"), scaled(ramp()[:, :, 3]))
    state = widget.get_state()
    assert state["pixel_size"] == 2.5 and state["title"] == "ramp"
    assert "export default" in state["_esm"]


def test_a_click_in_the_browser_moves_the_slices_and_is_kept_inside_the_map() -> None:
    widget = VolumeViewer(ramp())
    widget.contrast = [0.0, 355.0]
    browser_update(widget, position=[1, 4, 0])
    np.testing.assert_array_equal(plane(widget, "z"), scaled(ramp()[1]))
    np.testing.assert_array_equal(plane(widget, "x"), scaled(ramp()[:, :, 0]))
    browser_update(widget, position=[9, -3, 2])
    assert widget.position == [3, 0, 2]


def test_projection_mode_sends_maximum_intensity_projections() -> None:
    widget = VolumeViewer(ramp())
    widget.contrast = [0.0, 355.0]
    browser_update(widget, mode="mip")
    np.testing.assert_array_equal(plane(widget, "z"), scaled(ramp().max(axis=0)))
    np.testing.assert_array_equal(plane(widget, "y"), scaled(ramp().max(axis=1)))
    browser_update(widget, mode="spin")  # refused: the state stays
    assert widget.mode == "mip"


def test_contrast_comes_from_percentiles_and_ignores_nan() -> None:
    data = ramp()
    data[0, 0, 0] = np.nan
    widget = VolumeViewer(data)
    low, high = widget.contrast
    assert 0 < low < 20 and 340 < high <= 355


def test_a_map_that_is_not_3d_is_refused() -> None:
    with pytest.raises(ValueError, match=r"needs a 3-D map, got shape \(4, 5\)"):
        VolumeViewer(np.zeros((4, 5)))


def test_view_falls_back_to_the_browser_slicer_without_a_display(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    path = write_mrc(tmp_path / "ramp.mrc", ramp(), voxel_size=1.5)
    shown = view(path)
    assert isinstance(shown, VolumeViewer)
    assert shown.pixel_size == pytest.approx(1.5) and shown.title == "ramp.mrc"
    monkeypatch.setattr(front, "napari_installed", lambda: False)
    with pytest.raises(RuntimeError, match=r"pip install 'cryolab\[napari\]'"):
        view(path, backend="napari")
    with pytest.raises(ValueError, match="backend must be"):
        view(path, backend="vtk")


def test_napari_is_asked_for_a_display_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(front, "napari_installed", lambda: True)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert isinstance(view(ramp()), VolumeViewer)  # auto: no display, so the web slicer
    with pytest.raises(RuntimeError, match="napari needs a display"):
        view(ramp(), backend="napari")


def test_a_volume_of_a_set_views_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    path = write_mrc(tmp_path / "map.mrc", ramp(), voxel_size=2.0)
    volumes = SetOfVolumes(
        {"image.path": [str(path)], "image.index": [1]}, properties={"sampling_rate": 2.0}
    )
    shown = volumes[0].view(backend="web")
    assert isinstance(shown, VolumeViewer)
    assert shown.shape == [4, 5, 6] and shown.pixel_size == 2.0 and shown.title == "map.mrc"
