"""``consensus.picking``: keep positions found by at least M of N pickers."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from cryolab.core.params import FloatParam, InputParam, IntParam, Issue
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set
from cryolab.em.objects import SetOfCoordinates


class PickingConsensus(Protocol):
    """Combine the coordinates of several pickers: keep positions found by at least M of them.

    On each micrograph, a coordinate counts the pickers that have a coordinate within
    ``radius`` pixels of it (itself included); those with enough votes are kept, and of
    coordinates closer than ``radius`` to each other only the one with most votes remains, at
    the mean position of its supporters.
    """

    name = "consensus.picking"
    label = "Picking consensus"
    coordinates = InputParam(SetOfCoordinates, multiple=True, label="Pickers' coordinates")
    min_votes = IntParam(default=2, min=1, label="At least", help="Pickers that must agree (M).")
    radius = FloatParam(
        default=10.0, min=0.5, unit="px", help="Positions closer than this are the same particle."
    )
    outputs = {"coordinates": Output(SetOfCoordinates, help="Consensus positions with votes")}

    def check(self) -> list[Issue]:
        if self.values["min_votes"] > len(self.values["coordinates"]):
            return [
                Issue(
                    "min_votes",
                    f"{self.values['min_votes']} votes needed but only "
                    f"{len(self.values['coordinates'])} picker(s) given",
                )
            ]
        return []

    def plan(self) -> Iterator[Step]:
        yield Step("vote", "vote")

    def vote(self, ctx: StepContext) -> None:
        """Count votes per micrograph and write the consensus coordinates."""
        sets: list[Set] = ctx.input("coordinates")
        x = np.concatenate([s["coordinate.x"] for s in sets]).astype(float)
        y = np.concatenate([s["coordinate.y"] for s in sets]).astype(float)
        micrograph = np.concatenate([s["micrograph_uid"] for s in sets]).astype(np.uint64)
        picker = np.concatenate([np.full(len(s), i) for i, s in enumerate(sets)])
        rows: dict[str, list[NDArray[np.float64]]] = {"x": [], "y": [], "votes": [], "mic": []}
        for uid in np.unique(micrograph):
            here = np.flatnonzero(micrograph == uid)
            cx, cy, votes = consensus_positions(
                x[here], y[here], picker[here], self.values["radius"], self.values["min_votes"]
            )
            rows["x"].append(cx)
            rows["y"].append(cy)
            rows["votes"].append(votes)
            rows["mic"].append(np.full(len(cx), uid, dtype=np.uint64))
        result = {
            "micrograph_uid": np.concatenate(rows["mic"])
            if rows["mic"]
            else np.zeros(0, np.uint64),
            "coordinate.x": np.concatenate(rows["x"]) if rows["x"] else np.zeros(0),
            "coordinate.y": np.concatenate(rows["y"]) if rows["y"] else np.zeros(0),
            "consensus.votes": np.concatenate(rows["votes"]) if rows["votes"] else np.zeros(0),
        }
        ctx.update_properties("coordinates", **sets[0].properties)
        ctx.append("coordinates", Set(result))
        ctx.log.info(
            "%d consensus positions from %d pickers", len(result["coordinate.x"]), len(sets)
        )

    def methods(self) -> str:
        return (
            f"Particle positions found by at least {self.values['min_votes']} of "
            f"{len(self.values['coordinates'])} pickers within {self.values['radius']:g} "
            "pixels were kept."
        )


def consensus_positions(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    picker: NDArray[np.int64],
    radius: float,
    min_votes: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Consensus positions on one micrograph: (x, y, votes) of the kept positions."""
    if len(x) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    distance = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    close = distance <= radius
    pickers = int(picker.max()) + 1
    near_by_picker = np.zeros((len(x), pickers), dtype=bool)
    for index in range(pickers):
        near_by_picker[:, index] = close[:, picker == index].any(axis=1)
    votes = near_by_picker.sum(axis=1)
    order = np.lexsort((np.arange(len(x)), -votes))
    taken = np.zeros(len(x), dtype=bool)
    out_x, out_y, out_votes = [], [], []
    for index in order:
        if votes[index] < min_votes:
            break
        if taken[index]:
            continue
        group = close[index] & ~taken
        taken |= close[index]
        out_x.append(x[group].mean())
        out_y.append(y[group].mean())
        out_votes.append(float(votes[index]))
    return np.asarray(out_x), np.asarray(out_y), np.asarray(out_votes)
