"""``sets.join``: add columns of another set to the items with the same uid."""

from __future__ import annotations

from collections.abc import Iterator

from cryolab.core.params import ChoiceParam, InputParam, ListParam, StrParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set


class Join(Protocol):
    """Join metadata from another set onto a set, matching items by uid."""

    name = "sets.join"
    deterministic = True
    label = "Join metadata"
    source = InputParam(Set, label="Input set")
    other = InputParam(Set, label="Metadata from")
    columns = ListParam(
        StrParam(), default=[], required=False, help="Columns of the other set to add (empty: all)."
    )
    how = ChoiceParam(
        ["inner", "left"],
        default="inner",
        help="inner: keep items present in both; left: keep all input items.",
    )
    prefix = StrParam(default="", required=False, help="Prefix for the added column names.")
    outputs = {"joined": Output(like="source", help="The input items with the added columns")}

    def methods(self) -> str:
        columns = ", ".join(self.values["columns"]) or "all columns"
        return f"Metadata ({columns}) of another set were joined onto the items by identifier."

    def plan(self) -> Iterator[Step]:
        yield Step("join", "join")

    def join(self, ctx: StepContext) -> None:
        """Join and write the result."""
        source: Set = ctx.input("source")
        joined = source.join(
            ctx.input("other"),
            columns=self.values["columns"] or None,
            how=self.values["how"],
            prefix=self.values["prefix"],
        )
        ctx.update_properties("joined", **source.properties)
        ctx.append("joined", joined)
