"""What a protocol form shows and does, without any widget: the logic behind the form widget.

:class:`FormModel` holds the parameter values of one protocol being edited for a project. From
them it derives the fields to draw (section, unit, help, whether the parameter's condition holds
and whether the expert toggle hides it), the outputs of the project each input may take, the
engine's own validation issues, and which launch buttons apply; :meth:`FormModel.launch` creates
the run. :mod:`cryolab.ui.form` only syncs this state with the browser, so all of it is testable
without a kernel.

Run and Schedule differ the way the engine's run process does: a launched run whose input runs
have not finished waits for them (status ``scheduled``). *Schedule* launches such a run; *Run*
is for starting now and is refused while an input is not finished.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cryolab.core.errors import ParameterError, ProjectError
from cryolab.core.params import (
    BoolParam,
    ChoiceParam,
    InputParam,
    Issue,
    Param,
    StrParam,
    is_reference,
    split_reference,
)
from cryolab.core.plugins import registry
from cryolab.core.project import Project, as_reference
from cryolab.core.protocol import Protocol
from cryolab.core.runs import ENDED, Run

LOG_TAIL_LINES = 30


def editor(param: Param) -> str:
    """The control a parameter is edited with in the browser.

    ``"number"``, ``"text"`` and ``"textarea"`` send text that :meth:`Param.parse` turns into a
    value (so the command line and the form read numbers, ranges and lists alike).
    """
    if isinstance(param, InputParam):
        return "inputs" if param.multiple else "input"
    if isinstance(param, BoolParam):
        return "checkbox"
    if isinstance(param, ChoiceParam):
        return "select"
    if isinstance(param, StrParam) and param.multiline:
        return "textarea"
    return "number" if param.kind in ("int", "float") else "text"


def display_text(value: Any) -> str:
    """A value as the text a text field shows (parsed back by :meth:`Param.parse`)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        plain = all(
            (isinstance(v, (int, float)) and not isinstance(v, bool))
            or (isinstance(v, str) and "," not in v and not v.startswith("["))
            for v in value
        )
        return ", ".join(display_text(v) for v in value) if plain else json.dumps(list(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if isinstance(value, float) else str(value)
    return text[:-2] if text.endswith(".0") else text


def from_browser(param: Param, raw: Any) -> tuple[Any, str | None]:
    """The value a browser edit stands for, and why its text cannot be read (or ``None``).

    Text is parsed by the parameter itself; an empty field means no value (``""`` for text
    parameters). A choice arrives as its index, an input as ``""`` when none is picked.
    """
    if isinstance(param, ChoiceParam):
        if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(param.choices):
            return param.choices[raw], None
        return raw, None
    if isinstance(param, InputParam):
        return (raw or None), None
    if not isinstance(raw, str) or editor(param) not in ("number", "text", "textarea"):
        return raw, None
    if isinstance(param, StrParam):
        return raw, None
    if not raw.strip():
        return None, None
    try:
        return param.parse(raw.strip()), None
    except (ValueError, TypeError) as exc:  # json.loads of a list may raise either
        message = str(exc).removeprefix(f"parameter {param.name!r}: ")
        return raw, message


def run_state(run: Run, tail: int = LOG_TAIL_LINES) -> dict[str, Any]:
    """What the form shows of a launched run: status, steps done of planned, outputs, log tail."""
    status = run.status
    steps = run.steps()
    return {
        "id": run.id,
        "protocol": run.protocol,
        "label": run.label,
        "status": status,
        "ended": status in ENDED,
        "done": sum(1 for s in steps if s["status"] == "done"),
        "total": len(steps),
        "error": run.error or "",
        "outputs": [
            {"ref": str(ref), "type": ref.types[0], "count": ref.count, "state": ref.state}
            for ref in run.out.values()
        ],
        "log": run.log(tail=tail),
    }


class FormModel:
    """The values of one protocol being edited for a project, and what follows from them.

    Parameters
    ----------
    protocol
        A registered protocol name or class.
    project
        The project the run will be created in.
    values
        Initial parameter values (output handles allowed); the others take their defaults.
    """

    def __init__(
        self,
        protocol: str | type[Protocol],
        project: Project,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        self.protocol = registry.get(protocol) if isinstance(protocol, str) else protocol
        self.project = project
        self.params = self.protocol.params()
        given = {k: as_reference(v) for k, v in (values or {}).items()}
        self.values: dict[str, Any] = self.protocol(given).values
        self.parse_errors: dict[str, str] = {}
        self.expert = False
        self._outputs: list[tuple[list[str], dict[str, Any]]] = []
        self.reload()

    # -- editing ------------------------------------------------------------------------------
    def _param(self, name: str) -> Param:
        if name not in self.params:
            raise ParameterError(
                [
                    Issue(
                        name, f"{self.protocol.name} has no such parameter; see {list(self.params)}"
                    )
                ]
            )
        return self.params[name]

    def edit(self, name: str, raw: Any) -> None:
        """Apply an edit as the browser sends it (text, a choice index, a picked output)."""
        value, problem = from_browser(self._param(name), raw)
        self.values[name] = value
        if problem is None:
            self.parse_errors.pop(name, None)
        else:
            self.parse_errors[name] = problem

    def set(self, name: str, value: Any) -> None:
        """Set a parameter to a Python value (an output handle for an input)."""
        self._param(name)
        self.values[name] = as_reference(value)
        self.parse_errors.pop(name, None)

    def launch_values(self) -> dict[str, Any]:
        """The values a launch passes: inputs whose condition is false are left unset.

        So an input picked and then hidden by another parameter adds no edge to the graph.
        """
        return {
            name: (
                self.values[name]
                if not isinstance(param, InputParam) or param.applies(self.values)
                else param.default
            )
            for name, param in self.params.items()
        }

    # -- derived state ------------------------------------------------------------------------
    def issues(self) -> list[Issue]:
        """Unreadable text, then the engine's validation issues (:meth:`Project.validate`)."""
        unreadable = [
            Issue(n, m) for n, m in self.parse_errors.items() if self.params[n].applies(self.values)
        ]
        try:
            self.project.validate(self.protocol, self.launch_values())
        except ParameterError as exc:
            return unreadable + [i for i in exc.issues if i.param not in self.parse_errors]
        return unreadable

    def reload(self) -> None:
        """Read the project's outputs again (new runs, item counts, statuses) for the pickers."""
        outputs = []
        for run in reversed(self.project.runs()):
            status = run.status
            label = f" {run.label}" if run.label else ""
            for ref in run.out.values():
                count = ref.count
                text = (
                    f"{ref} · {ref.types[0]} · {count} item{'s' * (count != 1)} · "
                    f"{run.protocol}{label} ({status})"
                )
                option = {
                    "ref": str(ref),
                    "type": ref.types[0],
                    "count": count,
                    "status": status,
                    "label": text,
                }
                outputs.append((ref.types, option))
        self._outputs = outputs

    def input_options(self) -> dict[str, list[dict[str, Any]]]:
        """For each input, the project's outputs of an accepted type, newest run first.

        Each option gives the reference, type, item count and its run's status, as of the last
        :meth:`reload`; a value that is not among them (a deleted run, an incompatible output)
        is kept as an unavailable option.
        """
        options: dict[str, list[dict[str, Any]]] = {}
        for name, param in self.protocol.inputs().items():
            found = [option for chain, option in self._outputs if param.accepts(chain)]
            value = self.values.get(name)
            known = {o["ref"] for o in found}
            for picked in value if isinstance(value, list) else [value]:
                if isinstance(picked, str) and picked and picked not in known:
                    found.append(
                        {
                            "ref": picked,
                            "type": "",
                            "count": 0,
                            "status": "",
                            "label": f"{picked} (unavailable)",
                        }
                    )
            options[name] = found
        return options

    def waiting_inputs(self) -> list[str]:
        """The picked inputs whose runs have not finished (only valid references)."""
        waiting = []
        values = self.launch_values()
        for name, param in self.protocol.inputs().items():
            value = values[name]
            if not param.applies(self.values) or not value:
                continue
            for ref in value if isinstance(value, list) else [value]:
                if not (isinstance(ref, str) and is_reference(ref)):
                    continue
                run_id, _ = split_reference(ref)
                if self.project.get_run(run_id).status != "finished":
                    waiting.append(ref)
        return waiting

    def actions(self, issues: list[Issue]) -> dict[str, dict[str, Any]]:
        """Whether Run and Schedule apply now, with the reason shown on each button."""
        if issues:
            reason = f"fix {len(issues)} problem{'s' * (len(issues) != 1)} first"
            return {
                "run": {"enabled": False, "reason": reason},
                "schedule": {"enabled": False, "reason": reason},
            }
        waiting = self.waiting_inputs()
        run_reason = (
            f"input {', '.join(waiting)} has not finished: schedule the run instead"
            if waiting
            else "start the run now"
        )
        return {
            "run": {"enabled": not waiting, "reason": run_reason},
            "schedule": {
                "enabled": True,
                "reason": "launch the run; it starts when its inputs have finished",
            },
        }

    def fields(self, issues: list[Issue]) -> list[dict[str, Any]]:
        """The fields to draw, in declaration order, with their current value and issue."""
        first_issue: dict[str, str] = {}
        for issue in issues:
            first_issue.setdefault(issue.param, issue.message)
        options = self.input_options()
        fields = []
        for name, param in self.params.items():
            applies = param.applies(self.values)
            value = self.values.get(name)
            field: dict[str, Any] = {
                "name": name,
                "label": param.label,
                "help": param.help,
                "unit": param.unit,
                "section": param.section,
                "expert": param.expert,
                "required": param.required,
                "editor": editor(param),
                "applies": applies,
                "shown": applies and (self.expert or param.expert == 0),
                "issue": first_issue.get(name, ""),
                "text": display_text(value),
                "checked": value is True,
            }
            if isinstance(param, ChoiceParam):
                field["choices"] = [display_text(c) for c in param.choices]
                field["index"] = param.choices.index(value) if value in param.choices else -1
            if isinstance(param, InputParam):
                field["options"] = options[name]
                field["selected"] = value if isinstance(value, list) else ([value] if value else [])
            fields.append(field)
        return fields

    def sections(self) -> list[str]:
        """The form's sections, in the order their first parameter is declared."""
        return list(dict.fromkeys(p.section for p in self.params.values()))

    # -- launching ----------------------------------------------------------------------------
    def launch(self, *, schedule: bool = False, label: str = "") -> Run:
        """Create and launch the run (a new one each call).

        Parameters
        ----------
        schedule
            Launch even if input runs have not finished: the run waits for them.
        label
            The run's label in the graph.

        Raises
        ------
        ParameterError
            If any value is invalid (nothing is created).
        ProjectError
            If ``schedule`` is false and an input run has not finished.
        """
        issues = self.issues()
        if issues:
            raise ParameterError(issues)
        waiting = self.waiting_inputs()
        if waiting and not schedule:
            raise ProjectError(
                f"input {', '.join(waiting)} has not finished; schedule the run to start it "
                "when its inputs are done"
            )
        return self.project.run(self.protocol.name, label=label, **self.launch_values())
