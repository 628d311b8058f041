"""Report figures of cryo-EM sets: CTF per micrograph, FSC curves, class averages, map slices.

The EM set types' :meth:`~cryolab.core.sets.Set.report_figures` call these. Plots are static
SVG (:mod:`cryolab.core.svgplot`) and pictures PNG (:func:`cryolab.core.figures.png`), so a
report renders offline without bokeh. A picture whose image files cannot be read is left out
(and logged): a report of a project whose raw data moved still shows everything else.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from cryolab.core.errors import CryolabError
from cryolab.core.figures import Figure, png, tile
from cryolab.core.svgplot import Guide, Series, plot

if TYPE_CHECKING:
    from cryolab.em.objects import FSC, SetOfClasses2D, SetOfCTFs, SetOfVolumes

log = logging.getLogger(__name__)

CLASS_TILE = 96  # px of one class average in the grid
SLICE_TILE = 160  # px of one central slice
MAX_CLASSES = 48
MAX_VOLUMES = 4
FSC_CURVES = (  # column, legend label
    ("fsc.value", "FSC (corrected)"),
    ("fsc.unmasked", "unmasked"),
    ("fsc.masked", "masked"),
    ("fsc.random", "phase-randomised"),
)


def _svg(name: str, title: str, caption: str, svg: str) -> Figure:
    return Figure(name, title, caption, "svg", svg.encode("utf-8"))


def ctf(ctfs: SetOfCTFs) -> list[Figure]:
    """Mean defocus (µm) and fit resolution (Å) against the micrograph's position in the set."""
    if len(ctfs) == 0 or "ctf.defocus_u" not in ctfs or "ctf.defocus_v" not in ctfs:
        return []
    index = np.arange(1, len(ctfs) + 1)
    defocus = (np.asarray(ctfs["ctf.defocus_u"]) + np.asarray(ctfs["ctf.defocus_v"])) / 2e4
    astigmatism = np.abs(np.asarray(ctfs["ctf.defocus_u"]) - np.asarray(ctfs["ctf.defocus_v"]))
    figures = [
        _svg(
            "ctf-defocus",
            "Defocus per micrograph",
            f"Mean defocus of {len(ctfs)} micrographs: median {np.median(defocus):.2f} µm "
            f"(range {defocus.min():.2f} to {defocus.max():.2f} µm); median astigmatism "
            f"{np.median(astigmatism):.0f} Å.",
            plot(
                [Series(index, defocus, kind="points")],
                title="CTF: mean defocus",
                x_label="micrograph",
                x_integer=True,
                y_label="defocus (µm)",
            ),
        )
    ]
    if "ctf.resolution" in ctfs:
        resolution = np.asarray(ctfs["ctf.resolution"], dtype=np.float64)
        finite = resolution[np.isfinite(resolution)]
        if finite.size:
            figures.append(
                _svg(
                    "ctf-resolution",
                    "CTF fit resolution per micrograph",
                    "Resolution to which the CTF fit is reliable: median "
                    f"{np.median(finite):.1f} Å "
                    f"(best {finite.min():.1f} Å, worst {finite.max():.1f} Å).",
                    plot(
                        [Series(index, resolution, kind="points")],
                        title="CTF: fit resolution",
                        x_label="micrograph",
                        x_integer=True,
                        y_label="resolution (Å)",
                    ),
                )
            )
    return figures


def fsc(curve: FSC, threshold: float = 0.143) -> list[Figure]:
    """The FSC curve(s) against spatial frequency (ticks in Å) with the threshold and the
    resolution where the (corrected) curve crosses it."""
    if len(curve) == 0 or "fsc.frequency" not in curve or "fsc.value" not in curve:
        return []
    frequency = np.asarray(curve["fsc.frequency"], dtype=np.float64)
    series = [
        Series(frequency, np.asarray(curve[column], dtype=np.float64), label)
        for column, label in FSC_CURVES
        if column in curve
    ]
    resolution = float(curve.properties.get("resolution") or curve.resolution(threshold))
    crossing = 1 / resolution if resolution > 0 and np.isfinite(resolution) else float("nan")
    svg = plot(
        series,
        title=f"Fourier shell correlation — {resolution:.1f} Å at {threshold:g}",
        x_label="resolution (Å)",
        y_label="FSC",
        y_range=(-0.1, 1.05),
        x_range=(0.0, float(frequency.max()) if frequency.size else 1.0),
        guides=[
            Guide(threshold, "y", f"FSC = {threshold:g}"),
            Guide(crossing, "x", f"{resolution:.1f} Å"),
        ],
        x_format=lambda f: f"{1 / f:.3g}" if f > 0 else "∞",
    )
    size = curve.properties.get("sampling_rate")
    pixel = f" at {float(size):g} Å/px" if size else ""
    return [
        _svg(
            "fsc",
            "Fourier shell correlation",
            f"FSC between the half maps over {len(curve)} shells{pixel}; the curve crosses "
            f"{threshold:g} at {resolution:.2f} Å.",
            svg,
        )
    ]


def class_averages(classes: SetOfClasses2D) -> list[Figure]:
    """The class averages, largest class first, in a grid (at most :data:`MAX_CLASSES`)."""
    if len(classes) == 0:
        return []
    sizes = (
        np.asarray(classes["class.size"], dtype=np.int64)
        if "class.size" in classes
        else np.zeros(len(classes), np.int64)
    )
    order = np.argsort(-sizes, kind="stable")[:MAX_CLASSES]
    images = _read([classes[int(i)] for i in order])
    if images is None:
        return []
    columns = min(8, len(images))
    picture = tile([_plane(image) for image in images], columns, CLASS_TILE)
    ids = (
        np.asarray(classes["class_id"]) if "class_id" in classes else np.arange(1, len(classes) + 1)
    )
    listed = ", ".join(f"{ids[i]} ({sizes[i]})" for i in order)
    shown = f"the {len(order)} largest of {len(classes)}" if len(order) < len(classes) else "all"
    return [
        Figure(
            "class-averages",
            "Class averages",
            f"Class averages, {shown}, largest first; class (particles): {listed}.",
            "png",
            png(picture),
        )
    ]


def volume_slices(volumes: SetOfVolumes | SetOfClasses2D, what: str = "map") -> list[Figure]:
    """Central XY, XZ and YZ slices of each map (a row per map, at most :data:`MAX_VOLUMES`)."""
    if len(volumes) == 0:
        return []
    items = [volumes[i] for i in range(min(len(volumes), MAX_VOLUMES))]
    maps = _read(items)
    if maps is None:
        return []
    slices: list[NDArray[Any]] = []
    for data in maps:
        if data.ndim != 3:
            return []
        z, y, x = (n // 2 for n in data.shape)
        slices.extend([data[z], data[:, y, :], data[:, :, x]])
    picture = tile(slices, 3, SLICE_TILE)
    size = volumes.properties.get("sampling_rate")
    box = maps[0].shape[-1]
    scale = f", box {box} px at {float(size):g} Å/px" if size else f", box {box} px"
    more = f" (first {len(items)} of {len(volumes)})" if len(items) < len(volumes) else ""
    return [
        Figure(
            "slices",
            f"Central slices of the {what}{'s' if len(items) > 1 else ''}",
            f"Central XY, XZ and YZ slices{more}, one row per {what}{scale}.",
            "png",
            png(picture),
        )
    ]


def _read(items: list[Any]) -> list[NDArray[Any]] | None:
    """The images of ``items``, or ``None`` (logged) when one cannot be read."""
    try:
        return [np.asarray(item.read(), dtype=np.float32) for item in items]
    except (OSError, ValueError, CryolabError) as exc:
        log.warning("report figure left out: cannot read %s: %s", items[0].path, exc)
        return None


def _plane(image: NDArray[Any]) -> NDArray[Any]:
    """A 2-D picture of an image: itself, or the central section of a volume."""
    return image if image.ndim == 2 else image[image.shape[0] // 2]
