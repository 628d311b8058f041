"""``consensus.alignment``: keep the particles whose two angular assignments agree."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cryolab.core.params import FloatParam, InputParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set
from cryolab.em.geometry import angular_distance
from cryolab.em.objects import SetOfParticles

ANGLES = ("transform.rot", "transform.tilt", "transform.psi")
SHIFTS = ("transform.shift_x", "transform.shift_y")


class AlignmentConsensus(Protocol):
    """Compare two orientation assignments of the same particles (matched by uid).

    For each particle, the angular difference is the angle of the rotation taking one
    orientation to the other (no symmetry applied) and the shift difference is the distance
    between the two in-plane origins; particles within both limits agree.
    """

    name = "consensus.alignment"
    label = "Alignment consensus"
    particles = InputParam(SetOfParticles, help="The primary assignment (its rows are kept).")
    other = InputParam(
        SetOfParticles,
        label="Compared with",
        help="Another assignment of (some of) the same particles.",
    )
    angle = FloatParam(
        default=15.0,
        min=0,
        max=180,
        unit="deg",
        help="Largest angular difference still counted as agreement.",
    )
    shift = FloatParam(
        default=5.0, min=0, unit="Å", help="Largest shift difference still counted as agreement."
    )
    outputs = {
        "particles": Output(like="particles", help="Agreeing particles, with their differences"),
        "discarded": Output(like="particles", help="Particles whose assignments disagree"),
    }

    def plan(self) -> Iterator[Step]:
        yield Step("compare", "compare")

    def compare(self, ctx: StepContext) -> None:
        """Join the assignments on uid, measure the differences and split the particles."""
        first: Set = ctx.input("particles")
        second: Set = ctx.input("other")
        for name, data in (("particles", first), ("other", second)):
            missing = [c for c in (*ANGLES, *SHIFTS) if c not in data]
            if missing:
                raise ValueError(f"input {name!r} has no orientations (missing {missing})")
        paired = first.join(second, columns=[*ANGLES, *SHIFTS], prefix="other.")
        angles = angular_distance(
            np.stack([paired[c] for c in ANGLES], axis=-1),
            np.stack([paired["other." + c] for c in ANGLES], axis=-1),
        )
        shifts = np.hypot(*(paired[c] - paired["other." + c] for c in SHIFTS))
        scored = paired.drop(*(f"other.{c}" for c in (*ANGLES, *SHIFTS))).with_columns(
            **{"consensus.angle_difference": angles, "consensus.shift_difference": shifts}
        )
        good = (angles <= self.values["angle"]) & (shifts <= self.values["shift"])
        for name, rows in (("particles", scored.where(good)), ("discarded", scored.where(~good))):
            ctx.update_properties(name, **first.properties)
            ctx.append(name, rows)
        ctx.log.info(
            "%d of %d particles agree (median angle difference %.2f deg)",
            int(good.sum()),
            len(good),
            float(np.median(angles)) if len(good) else 0.0,
        )

    def methods(self) -> str:
        return (
            f"Two angular assignments were compared; particles whose orientations differed "
            f"by at most {self.values['angle']:g} degrees and whose shifts differed by at "
            f"most {self.values['shift']:g} A were kept."
        )
