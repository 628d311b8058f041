"""``external.job``: a run done by another program, imported into the run graph.

RELION pipelines and Scipion workflows are imported as runs of this protocol: RELION jobs as
finished runs whose outputs are the sets read from the job's files, Scipion protocols without a
cryolab equivalent as saved placeholders that keep their settings and inputs but cannot run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

from cryolab.core.params import InputParam, Issue, ListParam, StrParam
from cryolab.core.protocol import Output, Protocol, Step
from cryolab.core.sets import Set


class ExternalJob(Protocol):
    """A job of another program (RELION, Scipion, ...), kept in the graph; it cannot run here."""

    name = "external.job"
    label = "External job"
    program = StrParam(default="", help="The program that ran (or would run) it, e.g. relion.")
    job = StrParam(default="", help="Its job type or protocol class, e.g. relion.refine3d.")
    source = StrParam(default="", required=False, help="Where it came from (folder or file).")
    settings = StrParam(
        default="{}", multiline=True, required=False, help="The job's own parameters, as JSON text."
    )
    inputs_from = InputParam(
        Set, multiple=True, required=False, label="Inputs", help="Outputs of other runs it used."
    )
    output_names = ListParam(StrParam(), default=[], required=False)
    output_types = ListParam(StrParam(), default=[], required=False)

    def check(self) -> list[Issue]:
        try:
            json.loads(self.values["settings"] or "{}")
        except json.JSONDecodeError as exc:
            return [Issue("settings", f"not JSON: {exc}")]
        if len(self.values["output_names"]) != len(self.values["output_types"]):
            return [Issue("output_types", "give one type per output name")]
        return []

    def declared_outputs(self) -> dict[str, Output]:
        names = self.values["output_names"] or []
        types = self.values["output_types"] or []
        return {n: Output(type=t) for n, t in zip(names, types, strict=False)}

    def plan(self) -> Iterator[Step]:
        raise RuntimeError(
            f"{self.values['program']} job {self.values['job']!r} has no cryolab protocol to run "
            "it; install a plugin that provides one, or replace this run"
        )

    def summary(self, output_sizes: Mapping[str, int] | None = None) -> str:
        text = f"{self.values['program']} {self.values['job']}"
        if output_sizes:
            text += ": " + ", ".join(f"{k}: {v} items" for k, v in output_sizes.items())
        return text

    def methods(self) -> str:
        return f"The {self.values['program']} job {self.values['job']} was imported."
