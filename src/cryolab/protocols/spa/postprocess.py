"""``spa.postprocess``: mask, FSC and resolution, B-factor sharpening and low-pass filtering."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cryolab.core.params import FloatParam, InputParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set
from cryolab.em.fsc import estimate_bfactor, low_pass, masked_fsc, resolution, sharpen
from cryolab.em.imageio import write_mrc
from cryolab.em.objects import FSC, SetOfVolumes
from cryolab.protocols.citations import CHEN2013, ROSENTHAL2003
from cryolab.protocols.spa.fsc import (
    fsc_rows,
    pixel_size,
    read_volume,
    spherical_mask,
    volume_paths,
)


class Postprocess(Protocol):
    """Post-process a map from its half maps: masked, corrected FSC, sharpening and filtering.

    The half maps are averaged, the FSC is computed with a soft spherical mask (corrected by
    phase randomisation), the B-factor is fitted on the Guinier plot between
    ``fit_low_resolution`` and the 0.143 resolution unless given, and the map is sharpened,
    low-pass filtered at the resolution and masked.
    """

    name = "spa.postprocess"
    deterministic = True
    label = "Post-processing"
    volume = InputParam(SetOfVolumes, help="A volume with two half maps.")
    mask = InputParam(
        SetOfVolumes,
        required=False,
        help="A solvent mask (its map, values 0 to 1); instead of the spherical mask.",
    )
    mask_radius = FloatParam(
        default=0.0, min=0, unit="Å", help="Soft spherical mask radius; 0 for no mask."
    )
    mask_edge = FloatParam(default=6.0, min=0, unit="Å", help="Width of the mask's soft edge.")
    bfactor = FloatParam(
        default=None,
        required=False,
        unit="Å²",
        help="B-factor to apply (negative sharpens); empty to estimate it (Guinier plot).",
    )
    fit_low_resolution = FloatParam(
        default=10.0, min=0, unit="Å", expert=1, help="Low-resolution end of the Guinier fit."
    )
    outputs = {
        "volume": Output(SetOfVolumes, help="The sharpened, filtered and masked map"),
        "fsc": Output(FSC, help="The masked, corrected FSC of the half maps"),
    }

    def plan(self) -> Iterator[Step]:
        yield Step("postprocess", "process")

    def process(self, ctx: StepContext) -> None:
        """Compute the FSC, sharpen, filter and write the map and the curve."""
        volumes: Set = ctx.input("volume")
        pixel = pixel_size(volumes)
        files = volume_paths(volumes)
        if "half1" not in files or "half2" not in files:
            raise ValueError("post-processing needs a volume with two half maps")
        first, second = read_volume(files["half1"]), read_volume(files["half2"])
        size = first.shape[0]
        if self.values.get("mask"):
            mask = read_volume(volume_paths(ctx.input("mask"))["map"]).astype(np.float32)
            if mask.shape != first.shape:
                raise ValueError(f"the mask is {mask.shape}, the half maps {first.shape}")
        else:
            mask = spherical_mask(size, pixel, self.values["mask_radius"], self.values["mask_edge"])
        curves = masked_fsc(first, second, mask, pixel, seed=ctx.seed)
        rows = fsc_rows(curves)
        found = resolution(rows["fsc.frequency"], rows["fsc.value"], 0.143)
        average = 0.5 * (first + second)
        given = self.values.get("bfactor")
        bfactor = (
            float(given)
            if given is not None
            else estimate_bfactor(
                average * mask, pixel, found, float(self.values["fit_low_resolution"])
            )
        )
        result = low_pass(sharpen(average, pixel, bfactor), pixel, found) * mask
        target = ctx.run_dir / "postprocess.mrc"
        write_mrc(target, np.asarray(result, dtype=np.float32), voxel_size=pixel)
        properties = {k: v for k, v in volumes.properties.items() if k != "root"}
        ctx.update_properties(
            "volume", **{**properties, "sampling_rate": pixel, "bfactor": bfactor}
        )
        ctx.append("volume", {"image.path": [str(target.resolve())], "image.index": [1]})
        ctx.update_properties(
            "fsc",
            sampling_rate=pixel,
            resolution=found,
            bfactor=bfactor,
            **{"resolution_0.5": resolution(rows["fsc.frequency"], rows["fsc.value"], 0.5)},
        )
        ctx.append("fsc", rows)
        ctx.log.info("resolution %.2f A, B-factor %.1f A^2", found, bfactor)

    citations = (*Protocol.citations, ROSENTHAL2003, CHEN2013)

    def cited(self) -> list[str]:
        """The 0.143 criterion and B-factor; the mask correction only with a mask."""
        masked = bool(self.values["mask"] or self.values["mask_radius"])
        return ["cryolab", "rosenthal2003optimal", *(["chen2013noise"] if masked else [])]

    def methods(self) -> str:
        v = self.values
        if v["mask"]:
            mask = "the given solvent mask"
        elif v["mask_radius"]:
            mask = f"a soft spherical mask of {v['mask_radius']:g} Å radius"
        else:
            mask = "no mask"
        bfactor = (
            f"a B-factor of {v['bfactor']:g} Å²"
            if v["bfactor"] is not None
            else "a B-factor fitted on the Guinier plot from "
            f"{v['fit_low_resolution']:g} Å to the resolution [rosenthal2003optimal]"
        )
        corrected = (
            "corrected for the mask by phase randomisation [chen2013noise] and "
            if mask != "no mask"
            else ""
        )
        return (
            f"The map was post-processed with {mask}: the FSC of the half maps was "
            f"{corrected}read at 0.143 [rosenthal2003optimal], and the map was sharpened with "
            f"{bfactor} and low-pass filtered at the resolution."
        )
