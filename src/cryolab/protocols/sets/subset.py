"""``sets.subset``: keep the items matching a condition, listed by uid or in another set."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from cryolab.core.errors import ExpressionError
from cryolab.core.expressions import referenced_columns, unknown_column
from cryolab.core.params import (
    BoolParam,
    ChoiceParam,
    InputParam,
    IntParam,
    Issue,
    ListParam,
    StrParam,
    when,
)
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set


class Subset(Protocol):
    """Keep the items of a set that satisfy a condition, whose uids are in another set or in a
    list (e.g. picked by hand in a gallery), or whose link column points into another set (e.g.
    particles of a subset of micrographs)."""

    name = "sets.subset"
    deterministic = True
    label = "Subset"
    source = InputParam(Set, label="Input set", help="The set to take items from.")
    mode = ChoiceParam(
        ["condition", "uids", "list", "linked"],
        default="condition",
        help="Select by a condition on columns, by the uids of another set, by a list of "
        "uids, or by a link column pointing to the items of another set (particles of some "
        "micrographs).",
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
    uid_list = ListParam(
        IntParam(min=0),
        label="uids",
        required=True,
        condition=when("mode") == "list",
        help="Keep the items with these uids (e.g. selected in a gallery).",
    )
    linked_to = InputParam(
        Set,
        label="Linked to",
        required=True,
        condition=when("mode") == "linked",
        help="Keep the items whose link column holds a uid of this set (e.g. micrographs).",
    )
    link = StrParam(
        default="micrograph_uid",
        condition=when("mode") == "linked",
        help="The column holding the uids of the linked set's items.",
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

    def check_inputs(self, columns: Mapping[str, list[str]]) -> list[Issue]:
        """A condition naming a column the source set does not have is refused before launch."""
        if self.values["mode"] != "condition" or "source" not in columns:
            return []
        known = columns["source"]
        missing = sorted(referenced_columns(self.values["where"]) - set(known))
        return [Issue("where", unknown_column(name, known)) for name in missing]

    def plan(self) -> Iterator[Step]:
        yield Step("subset", "select")

    def select(self, ctx: StepContext) -> None:
        """Select the items and write them."""
        source: Set = ctx.input("source")
        mode = self.values["mode"]
        if mode == "linked":
            link = self.values["link"]
            if link not in source:
                raise ValueError(
                    f"the input has no column {link!r} to link with; columns: {source.columns}"
                )
            targets = ctx.input("linked_to").uids
            keep = np.isin(np.asarray(source[link], dtype=np.uint64), targets)
            chosen = source.where(~keep if self.values["exclude"] else keep)
        else:
            if mode == "condition":
                wanted = source.where(self.values["where"]).uids
            elif mode == "list":
                wanted = np.asarray(self.values["uid_list"], dtype=np.uint64)
            else:
                wanted = ctx.input("uids_from").uids
            chosen = source.subset(wanted, exclude=self.values["exclude"])
        ctx.update_properties("subset", **source.properties)
        ctx.append("subset", chosen)
        ctx.log.info("kept %d of %d items", len(chosen), len(source))

    def summary(self, output_sizes: Mapping[str, int] | None = None) -> str:
        how = {
            "condition": f"where {self.values['where']}",
            "uids": f"by the uids of {self.values['uids_from']}",
            "list": f"by a list of {len(self.values['uid_list'] or [])} uids",
            "linked": f"by {self.values['link']} in {self.values['linked_to']}",
        }[self.values["mode"]]
        text = f"Subset of {self.values['source']} {how}"
        return text + (f": {output_sizes['subset']} items" if output_sizes else "")

    def methods(self) -> str:
        if self.values["mode"] == "condition":
            return f"Items were selected where {self.values['where']}."
        if self.values["mode"] == "linked":
            return f"Items were selected by their {self.values['link']} (linked items)."
        if self.values["mode"] == "list":
            return f"{len(self.values['uid_list'])} items were selected by hand, by uid."
        return "Items were selected by the uids of another set."
