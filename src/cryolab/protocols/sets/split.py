"""``sets.split``: cut a set into N parts, in order or at random (e.g. gold-standard halves)."""

from __future__ import annotations

from collections.abc import Iterator

from cryolab.core.params import ChoiceParam, InputParam, IntParam, StrParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set


class Split(Protocol):
    """Split a set into parts ``part1`` … ``partN``; random splits are reproducible by seed."""

    name = "sets.split"
    deterministic = True
    label = "Split set"
    source = InputParam(Set, label="Input set")
    parts = IntParam(default=2, min=2, max=1000, help="How many parts to make.")
    order = ChoiceParam(
        ["random", "sequential"],
        default="random",
        help="Shuffle before cutting (seeded by the run's seed), or keep order.",
    )
    group_by = StrParam(
        default="",
        required=False,
        help="A column whose groups stay whole, e.g. micrograph_uid to split by micrograph.",
    )

    def declared_outputs(self) -> dict[str, Output]:
        parts = self.values["parts"]
        count = parts if isinstance(parts, int) and 2 <= parts <= 1000 else 2
        return {f"part{i + 1}": Output(like="source") for i in range(count)}

    def methods(self) -> str:
        v = self.values
        how = "at random (seeded)" if v["order"] == "random" else "in order"
        groups = f", keeping items of the same {v['group_by']} together" if v["group_by"] else ""
        return f"The set was split {how} into {v['parts']} parts{groups}."

    def plan(self) -> Iterator[Step]:
        yield Step("split", "split")

    def split(self, ctx: StepContext) -> None:
        """Cut the input and write each part."""
        source: Set = ctx.input("source")
        group_by = self.values["group_by"] or None
        if group_by is not None and group_by not in source:
            raise ValueError(
                f"the input has no column {group_by!r} to group by; columns: {source.columns}"
            )
        pieces = source.split(
            self.values["parts"],
            randomize=self.values["order"] == "random",
            seed=ctx.seed,
            groups=group_by,
        )
        for index, piece in enumerate(pieces):
            ctx.update_properties(f"part{index + 1}", **source.properties)
            ctx.append(f"part{index + 1}", piece)
