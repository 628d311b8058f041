"""``spa.fsc``: the Fourier shell correlation of two half maps (or of two maps) and resolution."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cryolab.core.params import FloatParam, InputParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set
from cryolab.em.fsc import masked_fsc, resolution, soft_mask
from cryolab.em.imageio import read_image
from cryolab.em.objects import FSC, SetOfVolumes
from cryolab.protocols.citations import CHEN2013, ROSENTHAL2003


def volume_paths(volumes: Set, row: int = 0) -> dict[str, Path]:
    """The files of one volume row: ``map`` and, when present, ``half1``, ``half2``, ``mask``."""
    root = volumes.properties.get("root")

    def resolve(text: Any) -> Path:
        path = Path(str(text))
        return Path(root, path) if root and not path.is_absolute() else path

    found = {"map": resolve(volumes["image.path"][row])}
    for name in ("half1", "half2", "mask"):
        column = f"volume.{name}"
        if column in volumes:
            value = volumes[column][row]
            if value is not None and str(value) not in ("", "None", "nan"):
                found[name] = resolve(value)
    return found


def read_volume(path: Path) -> NDArray[np.float64]:
    """A map as float64."""
    return np.asarray(read_image(path, 1), dtype=np.float64)


def pixel_size(volumes: Set) -> float:
    """The set's pixel size (Å/px)."""
    value = volumes.properties.get("sampling_rate")
    if not value:
        raise ValueError("the volume set has no sampling_rate (pixel size)")
    return float(value)


def fsc_rows(curves: dict[str, NDArray[np.float64]]) -> dict[str, Any]:
    """Rows of an FSC set: the corrected curve and the other curves as extra columns."""
    rows: dict[str, Any] = {"fsc.frequency": curves["frequency"], "fsc.value": curves["corrected"]}
    for name in ("unmasked", "masked", "random"):
        rows[f"fsc.{name}"] = curves[name]
    return rows


def spherical_mask(size: int, pixel: float, radius: float, edge: float) -> NDArray[np.float32]:
    """A soft sphere of ``radius`` Å with an ``edge`` Å wide (all ones when the radius is 0)."""
    if radius <= 0:
        return np.ones((size, size, size), dtype=np.float32)
    return soft_mask(size, radius / pixel, edge / pixel)


class Fsc(Protocol):
    """Fourier shell correlation of a volume's two half maps, or of two volumes.

    With a mask radius, the maps are masked with a soft sphere and the curve is corrected for
    the mask by phase randomisation. The output's properties hold the resolution at the 0.143
    and 0.5 thresholds (``resolution``, ``resolution_0.5``), in Å.
    """

    name = "spa.fsc"
    label = "Fourier shell correlation"
    volume = InputParam(SetOfVolumes, help="A volume with half maps, or the first map.")
    other = InputParam(
        SetOfVolumes, required=False, help="A second map (instead of the half maps)."
    )
    mask_radius = FloatParam(
        default=0.0, min=0, unit="Å", help="Soft spherical mask radius; 0 for no mask."
    )
    mask_edge = FloatParam(default=6.0, min=0, unit="Å", help="Width of the mask's soft edge.")
    outputs = {"fsc": Output(FSC, help="The FSC curve, one row per shell")}

    def plan(self) -> Iterator[Step]:
        yield Step("fsc", "compute")

    def compute(self, ctx: StepContext) -> None:
        """Read the two maps, correlate them and write the curve."""
        volumes: Set = ctx.input("volume")
        pixel = pixel_size(volumes)
        files = volume_paths(volumes)
        if self.values.get("other"):
            first = read_volume(files["map"])
            second = read_volume(volume_paths(ctx.input("other"))["map"])
        elif "half1" in files and "half2" in files:
            first, second = read_volume(files["half1"]), read_volume(files["half2"])
        else:
            raise ValueError("the volume has no half maps; give a second volume as 'other'")
        mask = spherical_mask(
            first.shape[0], pixel, self.values["mask_radius"], self.values["mask_edge"]
        )
        curves = masked_fsc(first, second, mask, pixel, seed=ctx.seed)
        rows = fsc_rows(curves)
        at_0143 = resolution(rows["fsc.frequency"], rows["fsc.value"], 0.143)
        at_05 = resolution(rows["fsc.frequency"], rows["fsc.value"], 0.5)
        ctx.update_properties(
            "fsc", sampling_rate=pixel, resolution=at_0143, **{"resolution_0.5": at_05}
        )
        ctx.append("fsc", rows)
        ctx.log.info("resolution %.2f A at FSC 0.143, %.2f A at 0.5", at_0143, at_05)

    citations = (*Protocol.citations, ROSENTHAL2003, CHEN2013)

    def cited(self) -> list[str]:
        """The 0.143 criterion; the phase-randomisation correction only with a mask."""
        keys = ["cryolab", "rosenthal2003optimal"]
        return [*keys, "chen2013noise"] if self.values["mask_radius"] else keys

    def methods(self) -> str:
        masked = (
            f" within a soft spherical mask of {self.values['mask_radius']:g} Å radius, "
            "corrected for the mask by phase randomisation [chen2013noise]"
            if self.values["mask_radius"]
            else ""
        )
        return (
            f"Resolution was estimated by Fourier shell correlation{masked}, at the 0.143 "
            "threshold [rosenthal2003optimal]."
        )
