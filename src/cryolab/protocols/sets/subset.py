"""``sets.subset``: keep the items matching a condition, or those of another set."""

from __future__ import annotations

from collections.abc import Iterator

from cryolab.core.errors import ExpressionError
from cryolab.core.expressions import referenced_columns
from cryolab.core.params import BoolParam, ChoiceParam, InputParam, Issue, StrParam, when
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set


class Subset(Protocol):
    """Keep the items of a set that satisfy a condition, or whose uids are in another set."""

    name = "sets.subset"
    label = "Subset"
    source = InputParam(Set, label="Input set", help="The set to take items from.")
    mode = ChoiceParam(
        ["condition", "uids"],
        default="condition",
        help="Select by a condition on columns, or by the uids of another set.",
    )
    where = StrParam(
        default="",
        condition=when("mode") == "condition",
        required=True,
        help="A condition such as 'ctf.resolution < 5 and score > 0.1'.",
    )
    uids_from = InputParam(
        Set,
        label="Items of",
        required=True,
        condition=when("mode") == "uids",
        help="Keep the items whose uids appear in this set.",
    )
    exclude = BoolParam(default=False, help="Keep the items that do NOT match instead.")
    outputs = {"subset": Output(like="source", help="The selected items")}

    def check(self) -> list[Issue]:
        if self.values["mode"] == "condition":
            try:
                referenced_columns(self.values["where"])
            except ExpressionError as exc:
                return [Issue("where", str(exc))]
        return []

    def plan(self) -> Iterator[Step]:
        yield Step("subset", "select")

    def select(self, ctx: StepContext) -> None:
        """Select the items and write them."""
        source: Set = ctx.input("source")
        if self.values["mode"] == "condition":
            mask = source.where(self.values["where"]).uids
        else:
            mask = ctx.input("uids_from").uids
        chosen = source.subset(mask, exclude=self.values["exclude"])
        ctx.update_properties("subset", **source.properties)
        ctx.append("subset", chosen)
        ctx.log.info("kept %d of %d items", len(chosen), len(source))

    def summary(self, output_sizes: dict[str, int] | None = None) -> str:
        how = (
            f"where {self.values['where']}"
            if self.values["mode"] == "condition"
            else f"by the uids of {self.values['uids_from']}"
        )
        text = f"Subset of {self.values['source']} {how}"
        return text + (f": {output_sizes['subset']} items" if output_sizes else "")

    def methods(self) -> str:
        if self.values["mode"] == "condition":
            return f"Items were selected where {self.values['where']}."
        return "Items were selected by the uids of another set."
