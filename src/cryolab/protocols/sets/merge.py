"""``sets.merge``: concatenate sets of the same kind, keeping every uid."""

from __future__ import annotations

from collections.abc import Iterator

from cryolab.core.params import ChoiceParam, InputParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set


class Merge(Protocol):
    """Merge several sets into one; uids are kept, so items stay traceable."""

    name = "sets.merge"
    deterministic = True
    label = "Merge sets"
    sets = InputParam(Set, multiple=True, label="Sets", help="The sets to merge, in order.")
    duplicates = ChoiceParam(
        ["error", "first"],
        default="error",
        help="A uid present in several inputs: fail, or keep the first.",
    )
    outputs = {"merged": Output(like="sets", help="All items of the inputs")}

    def methods(self) -> str:
        return f"{len(self.values['sets'])} sets were merged, items keeping their identifiers."

    def plan(self) -> Iterator[Step]:
        yield Step("merge", "merge")

    def merge(self, ctx: StepContext) -> None:
        """Concatenate the inputs and write the result."""
        sets: list[Set] = ctx.input("sets")
        merged = sets[0].union(*sets[1:], duplicates=self.values["duplicates"])
        ctx.update_properties("merged", **merged.properties)
        ctx.append("merged", merged)
        ctx.log.info("merged %d sets into %d items", len(sets), len(merged))
