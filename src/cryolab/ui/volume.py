"""Looking at 3-D maps in a notebook: napari where a display exists, else a browser slicer.

:func:`view` is what ``volumes[0].view()`` calls. With ``backend="auto"`` it opens napari when
napari is installed and a display is available (``DISPLAY`` or ``WAYLAND_DISPLAY``; on a
JupyterHub node without one, start the server under ``xvfb-run -a jupyter lab``) and returns
an inline screenshot beside the napari window; otherwise it returns :class:`VolumeViewer`, an
anywidget that needs no X server: three orthogonal slices through a point (click a view to
move the point, scroll to step through slices) or the maximum-intensity projections, with the
contrast set from percentiles of the map.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets
from numpy.typing import ArrayLike, NDArray

STATIC = Path(__file__).parent / "static"
AXES = ("z", "y", "x")
"""The map's axes in array order; each view is the plane perpendicular to one of them."""


def _as_bytes(plane: NDArray[np.float64], low: float, high: float) -> bytes:
    """A plane mapped linearly from ``[low, high]`` to 0..255 (clipped), row-major uint8."""
    span = high - low if high > low else 1.0
    scaled = np.clip((plane - low) / span, 0.0, 1.0) * 255.0
    return np.ascontiguousarray(np.rint(scaled).astype(np.uint8)).tobytes()


class VolumeViewer(anywidget.AnyWidget):  # type: ignore[misc]
    """Orthogonal slices or maximum-intensity projections of a map, drawn in the browser.

    Parameters
    ----------
    volume
        A ``[z, y, x]`` array.
    pixel_size
        Å per voxel (shown with the position).
    title
        A caption (e.g. the file name).
    """

    _esm = STATIC / "volume.js"
    _css = STATIC / "volume.css"
    shape = traitlets.List(traitlets.Int()).tag(sync=True)
    position = traitlets.List(traitlets.Int()).tag(sync=True)
    mode = traitlets.Unicode("slices").tag(sync=True)
    contrast = traitlets.List(traitlets.Float()).tag(sync=True)
    pixel_size = traitlets.Float(1.0).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    plane_z = traitlets.Bytes(b"").tag(sync=True)
    plane_y = traitlets.Bytes(b"").tag(sync=True)
    plane_x = traitlets.Bytes(b"").tag(sync=True)

    def __init__(self, volume: ArrayLike, *, pixel_size: float = 1.0, title: str = "") -> None:
        data = np.asarray(volume, dtype=np.float64)
        if data.ndim != 3 or min(data.shape) < 1:
            raise ValueError(f"a volume viewer needs a 3-D map, got shape {data.shape}")
        self._data = data
        finite = data[np.isfinite(data)]
        low, high = np.percentile(finite, [1, 99.9]) if finite.size else (0.0, 1.0)
        super().__init__(
            shape=list(data.shape),
            position=[n // 2 for n in data.shape],
            contrast=[float(low), float(high)],
            pixel_size=float(pixel_size),
            title=title,
        )
        self._draw()

    @traitlets.validate("position")
    def _valid_position(self, proposal: Any) -> list[int]:
        value = [int(v) for v in proposal["value"]]
        if len(value) != 3:
            raise traitlets.TraitError(f"position needs 3 indices (z, y, x), got {value}")
        return [min(max(v, 0), n - 1) for v, n in zip(value, self._data.shape, strict=True)]

    @traitlets.validate("mode")
    def _valid_mode(self, proposal: Any) -> str:
        if proposal["value"] not in ("slices", "mip"):
            raise traitlets.TraitError(f"mode must be 'slices' or 'mip', not {proposal['value']!r}")
        return str(proposal["value"])

    @traitlets.observe("position", "mode", "contrast")
    def _redraw(self, _change: Any) -> None:
        self._draw()

    def planes(self) -> dict[str, NDArray[np.float64]]:
        """The three views as float arrays: the plane perpendicular to each axis."""
        z, y, x = self.position
        if self.mode == "mip":
            return {axis: self._data.max(axis=i) for i, axis in enumerate(AXES)}
        return {"z": self._data[z], "y": self._data[:, y, :], "x": self._data[:, :, x]}

    def _draw(self) -> None:
        low, high = self.contrast
        drawn = {f"plane_{axis}": _as_bytes(p, low, high) for axis, p in self.planes().items()}
        with self.hold_sync():
            for name, value in drawn.items():
                setattr(self, name, value)


def display_available() -> bool:
    """Whether a window can be opened (an X or Wayland display is set)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def napari_installed() -> bool:
    """Whether napari can be imported (the ``napari`` extra)."""
    import importlib.util

    return importlib.util.find_spec("napari") is not None


def view(
    volume: ArrayLike | str | Path,
    *,
    pixel_size: float | None = None,
    backend: str = "auto",
    title: str = "",
) -> Any:
    """Show a map: napari with an inline screenshot, or the browser slicer.

    Parameters
    ----------
    volume
        A ``[z, y, x]`` array or an MRC file.
    pixel_size
        Å per voxel (read from the file's header when a file is given and this is ``None``).
    backend
        ``"auto"`` (napari when installed and a display exists, else ``"web"``), ``"napari"`` or
        ``"web"``.
    title
        A caption.

    Returns
    -------
    VolumeViewer or NapariView
        Something a notebook cell displays.
    """
    if backend not in ("auto", "napari", "web"):
        raise ValueError(f"backend must be 'auto', 'napari' or 'web', not {backend!r}")
    if isinstance(volume, (str, Path)):
        from cryolab.em.imageio import read_header, read_image

        path = Path(volume)
        data = np.asarray(read_image(path, 1))
        pixel_size = pixel_size or float(read_header(path).voxel_size)
        title = title or path.name
    else:
        data = np.asarray(volume)
    size = float(pixel_size or 1.0)
    wants_napari = backend == "napari" or (
        backend == "auto" and napari_installed() and display_available()
    )
    if not wants_napari:
        return VolumeViewer(data, pixel_size=size, title=title)
    if not napari_installed():
        raise RuntimeError("napari is not installed: pip install 'cryolab[napari]'")
    if not display_available():
        raise RuntimeError(
            "napari needs a display: set DISPLAY, or start Jupyter under `xvfb-run -a jupyter lab`"
        )
    return NapariView(data, size, title)


class NapariView:
    """A napari window showing the map, displayed in the notebook as its screenshot."""

    def __init__(self, data: NDArray[Any], pixel_size: float, title: str) -> None:
        import napari

        self.viewer = napari.Viewer(title=title or "cryolab", ndisplay=3)
        self.layer = self.viewer.add_image(data, scale=(pixel_size,) * 3, rendering="mip")

    def screenshot(self) -> NDArray[np.uint8]:
        """The canvas as an RGBA image."""
        shot: NDArray[np.uint8] = self.viewer.screenshot(canvas_only=True)
        return shot

    def _repr_png_(self) -> bytes:
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(self.screenshot()).save(buffer, format="PNG")
        return buffer.getvalue()
