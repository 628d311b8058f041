"""``spa.ctf_estimate``: astigmatic CTF fit of each micrograph's power spectrum."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from cryolab.core.params import ChoiceParam, FloatParam, InputParam, IntParam, Issue, RangeParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set, new_uids
from cryolab.em.ctffit import fit_ctf, power_spectrum
from cryolab.em.imageio import read_image
from cryolab.em.objects import Acquisition, SetOfCTFs, SetOfMicrographs
from cryolab.protocols.citations import ROHOU2015

ADVANCED = "Advanced"


class CtfEstimate(Protocol):
    """Estimate each micrograph's defocus and astigmatism from its power spectrum.

    The spectrum is the average periodogram of overlapping ``box``-sized tiles. After its
    background is removed, a 1-D defocus search on its rotational average is refined in 2-D
    to ``(defocus_u, defocus_v, defocus_angle)``. The score is the correlation of the model
    with the spectrum and the resolution is how far the CTF rings still fit. No phase shift
    is fitted (``ctf.phase_shift`` is 0). Micrographs are shared among ``parallel`` steps.
    """

    name = "spa.ctf_estimate"
    deterministic = True
    label = "CTF estimation"
    micrographs = InputParam(SetOfMicrographs, label="Micrographs")
    device = ChoiceParam(["auto", "cpu", "gpu"], default="auto", help="Where to compute.")
    box = IntParam(default=512, min=64, max=4096, unit="px", help="Size of the spectrum tiles.")
    defocus_range = RangeParam(
        default=[5000.0, 50000.0], min=0.0, unit="Å", help="Defocus searched (underfocus > 0)."
    )
    resolution_range = RangeParam(
        default=[5.0, 30.0], min=0.1, unit="Å", help="Resolutions fitted (high, low)."
    )
    overlap = FloatParam(
        default=0.5, min=0.0, max=0.9, section=ADVANCED, expert=1, help="Overlap of the tiles."
    )
    parallel = IntParam(default=4, min=1, max=1024, help="Steps the micrographs are shared among.")
    outputs = {"ctfs": Output(SetOfCTFs, help="One CTF estimation per micrograph")}

    def check(self) -> list[Issue]:
        low, high = self.values["defocus_range"]
        if high <= 0:
            return [Issue("defocus_range", f"[{low:g}, {high:g}] holds no underfocus (values > 0)")]
        return []

    def plan(self) -> Iterator[Step]:
        shards = int(self.values["parallel"])
        for shard in range(shards):
            yield Step(f"ctf-{shard:04d}", "estimate", {"shard": shard, "shards": shards})

    def estimate(self, ctx: StepContext, shard: int, shards: int) -> None:
        """Fit the micrographs ``shard``, ``shard + shards``, ... and append their CTFs."""
        micrographs: Set = ctx.input("micrographs")
        if len(micrographs) == 0:
            raise ValueError("the input micrographs set is empty: there is nothing to process")
        acquisition = _acquisition(micrographs)
        size = acquisition.sampling_rate
        box = int(self.values["box"])
        device = str(self.values["device"])
        permissive = bool(micrographs.properties.get("permissive", False))
        columns: dict[str, list[float]] = {
            k: [] for k in ("u", "v", "angle", "resolution", "score")
        }
        indices = list(range(shard, len(micrographs), shards))
        for index in indices:
            item = micrographs[index]
            image = np.asarray(read_image(item.path, item.index, permissive), dtype=np.float32)
            if image.ndim != 2 or min(image.shape) < box:
                raise ValueError(
                    f"{item.path}: the micrograph ({' x '.join(map(str, image.shape[::-1]))} "
                    f"px) is smaller than the box ({box} px); lower box to at most "
                    f"{min(image.shape[-2:])} px"
                )
            spectrum = power_spectrum(image, box, float(self.values["overlap"]), device)
            fit = fit_ctf(
                spectrum,
                size,
                voltage=acquisition.voltage,
                cs=acquisition.spherical_aberration,
                amplitude_contrast=acquisition.amplitude_contrast,
                defocus_range=tuple(self.values["defocus_range"]),
                resolution_range=tuple(self.values["resolution_range"]),
                device=device,
            )
            columns["u"].append(fit.defocus_u)
            columns["v"].append(fit.defocus_v)
            columns["angle"].append(fit.defocus_angle)
            columns["resolution"].append(fit.resolution)
            columns["score"].append(fit.score)
            ctx.log.info(
                "%s: defocus %.0f / %.0f A at %.1f deg, score %.3f, fit to %.1f A",
                item.path.name,
                fit.defocus_u,
                fit.defocus_v,
                fit.defocus_angle,
                fit.score,
                fit.resolution,
            )
        ctx.update_properties("ctfs", sampling_rate=size, acquisition=acquisition.to_dict())
        if not indices:
            return
        ctx.append(
            "ctfs",
            {
                "micrograph_uid": np.asarray(micrographs.uids[indices], dtype=np.uint64),
                "ctf.defocus_u": np.asarray(columns["u"]),
                "ctf.defocus_v": np.asarray(columns["v"]),
                "ctf.defocus_angle": np.asarray(columns["angle"]),
                "ctf.phase_shift": np.zeros(len(indices)),
                "ctf.resolution": np.asarray(columns["resolution"]),
                "ctf.score": np.asarray(columns["score"]),
                "uid": new_uids(len(indices), ctx.rng),
            },
        )

    citations = (*Protocol.citations, ROHOU2015)

    def methods(self) -> str:
        v = self.values
        low, high = v["defocus_range"]
        fine, coarse = sorted(v["resolution_range"])
        return (
            "CTF parameters were estimated in the manner of CTFFIND4 [rohou2015ctffind4] from "
            f"the averaged power spectra of {v['box']} px tiles overlapping by "
            f"{v['overlap'] * 100:.0f} %: after background subtraction, an exhaustive search of "
            f"defocus from {low / 1e4:g} to {high / 1e4:g} µm on the rotational average was "
            "refined for astigmatism on the 2-D spectrum, fitting resolutions from "
            f"{coarse:g} to {fine:g} Å, and each fit's resolution was taken where the "
            "equiphase average stopped agreeing with the model."
        )


def _acquisition(micrographs: Set) -> Acquisition:
    data: dict[str, Any] = dict(micrographs.properties.get("acquisition") or {})
    if not data:
        raise ValueError(
            "the micrographs record no acquisition (voltage, Cs, amplitude contrast); "
            "import them with it first"
        )
    acquisition = Acquisition.from_dict(data)
    sampling = micrographs.properties.get("sampling_rate") or data.get("sampling_rate")
    if not sampling or not float(sampling) > 0:
        raise ValueError("the micrographs have no sampling_rate property (pixel size in A/px)")
    acquisition.sampling_rate = float(sampling)
    return acquisition
