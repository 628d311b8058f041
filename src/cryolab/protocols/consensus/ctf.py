"""``consensus.ctf``: keep the micrographs whose two CTF estimations agree."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from cryolab.core.params import FloatParam, InputParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set
from cryolab.em.ctf import agreement_resolution
from cryolab.em.objects import Acquisition, SetOfCTFs, SetOfMicrographs

CITATION = """@article{marabini2021ctf,
  title = {CTF Consensus: a practical approach to quality control of CTF estimations},
  author = {Marabini, Roberto and Sorzano, Carlos Oscar S. and others},
  journal = {Acta Crystallographica D},
  year = {2021}
}"""


class CtfConsensus(Protocol):
    """Compare two CTF estimations of the same micrographs and keep those that agree.

    For each micrograph, the agreement resolution is the resolution up to which the two
    estimations' phase aberrations differ by less than ``max_phase`` degrees in every direction.
    """

    name = "consensus.ctf"
    label = "CTF consensus"
    ctfs = InputParam(SetOfCTFs, label="CTFs", help="The primary estimation (its rows are kept).")
    other = InputParam(SetOfCTFs, label="Compared with", help="An independent estimation.")
    micrographs = InputParam(
        SetOfMicrographs,
        required=False,
        help="Micrographs to subset to the agreeing ones (optional).",
    )
    resolution = FloatParam(
        default=5.0,
        min=0.1,
        unit="Å",
        help="Keep micrographs whose estimations agree to this or better.",
    )
    max_phase = FloatParam(
        default=90.0,
        min=1,
        max=180,
        unit="deg",
        expert=1,
        help="Largest phase difference still counted as agreement.",
    )
    citations = (*Protocol.citations, CITATION)

    def declared_outputs(self) -> dict[str, Output]:
        outputs = {
            "ctfs": Output(SetOfCTFs, help="Agreeing CTFs, with consensus.resolution"),
            "discarded": Output(SetOfCTFs, help="The CTFs that disagree"),
        }
        if self.values.get("micrographs"):
            outputs["micrographs"] = Output(like="micrographs", help="The agreeing micrographs")
        return outputs

    def plan(self) -> Iterator[Step]:
        yield Step("compare", "compare")

    def compare(self, ctx: StepContext) -> None:
        """Compute the agreement per micrograph and split the CTFs."""
        first: Set = ctx.input("ctfs")
        second: Set = ctx.input("other")
        acquisition = _acquisition(first, second)
        columns = ["ctf.defocus_u", "ctf.defocus_v", "ctf.defocus_angle"]
        columns += ["ctf.phase_shift"] if "ctf.phase_shift" in second else []
        paired = _pair(first, second, columns)
        nyquist = 1.0 / (2.0 * acquisition.sampling_rate)
        agreement = agreement_resolution(
            {c: paired[c] for c in columns if c in paired},
            {c: paired["other." + c] for c in columns},
            voltage=acquisition.voltage,
            spherical_aberration=acquisition.spherical_aberration,
            amplitude_contrast=acquisition.amplitude_contrast,
            nyquist=nyquist,
            max_phase=self.values["max_phase"],
        )
        result = paired.with_columns(**{"consensus.resolution": agreement})
        result = result.drop(*(c for c in result.columns if c.startswith("other.")))
        good = agreement <= self.values["resolution"]
        for name, rows in (("ctfs", result.where(good)), ("discarded", result.where(~good))):
            ctx.update_properties(name, **first.properties)
            ctx.append(name, rows)
        if self.values.get("micrographs"):
            micrographs: Set = ctx.input("micrographs")
            kept = micrographs.subset(result.where(good)["micrograph_uid"])
            ctx.update_properties("micrographs", **micrographs.properties)
            ctx.append("micrographs", kept)
        ctx.log.info(
            "%d of %d micrographs agree to %.2f A or better",
            int(good.sum()),
            len(good),
            self.values["resolution"],
        )

    def methods(self) -> str:
        return (
            f"CTF estimations were compared by consensus [marabini2021ctf]: micrographs "
            f"whose estimations agreed within {self.values['max_phase']:g} degrees of phase "
            f"up to {self.values['resolution']:g} A or better were kept."
        )


def _acquisition(*sets: Set) -> Acquisition:
    for candidate in sets:
        data: dict[str, Any] | None = candidate.properties.get("acquisition")
        if data:
            acquisition = Acquisition.from_dict(data)
            sampling = candidate.properties.get("sampling_rate")
            if sampling:
                acquisition.sampling_rate = float(sampling)
            return acquisition
    raise ValueError(
        "neither CTF set records its acquisition (voltage, Cs, amplitude "
        "contrast, pixel size); import the micrographs with them first"
    )


def _pair(first: Set, second: Set, columns: list[str]) -> Set:
    """The first set's rows that have an estimation in the second (matched by micrograph)."""
    if "micrograph_uid" not in first or "micrograph_uid" not in second:
        raise ValueError("both CTF sets need a micrograph_uid column to be compared")
    keyed = Set(
        {
            "uid": np.asarray(second["micrograph_uid"], dtype=np.uint64),
            **{c: second[c] for c in columns},
        }
    )
    by_micrograph = Set(
        {"uid": np.asarray(first["micrograph_uid"], dtype=np.uint64), "row": np.arange(len(first))}
    )
    joined = by_micrograph.join(keyed, prefix="other.")
    rows = joined["row"]
    out = first.take(rows)
    return out.with_columns(**{f"other.{c}": joined[f"other.{c}"] for c in columns})
