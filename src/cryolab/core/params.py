"""Declarative, typed protocol parameters.

A protocol declares its parameters as class attributes::

    class Subset(Protocol):
        source = InputParam(Set, label="Input set")
        mode = ChoiceParam(["condition", "uids"], default="condition")
        where = StrParam(default="", condition=when("mode") == "condition")

Each parameter knows its type, default, bounds, unit, help, section and expert level, and may
carry a condition (data, never code) telling when it applies. ``check`` returns a message or
``None``; ``parse`` turns command-line text into a value; ``describe`` gives JSON for forms.
"""

from __future__ import annotations

import glob
import json
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}


@dataclass(frozen=True)
class Condition:
    """When a parameter applies, as data: ``{"param": "mode", "op": "==", "value": "x"}``.

    Combine with ``&``, ``|`` and ``~``; the JSON form is what forms evaluate live.
    """

    data: Mapping[str, Any]

    def __and__(self, other: Condition) -> Condition:
        return Condition({"all": [self.data, other.data]})

    def __or__(self, other: Condition) -> Condition:
        return Condition({"any": [self.data, other.data]})

    def __invert__(self) -> Condition:
        return Condition({"not": self.data})

    def evaluate(self, values: Mapping[str, Any]) -> bool:
        """Whether the condition holds for the given parameter values."""
        return _evaluate(self.data, values)

    def params(self) -> set[str]:
        """The parameter names the condition reads."""
        return _names(self.data)

    def to_json(self) -> Mapping[str, Any]:
        """The condition as JSON-serialisable data."""
        return self.data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Condition:
        """Rebuild a condition from :meth:`to_json`, checking its shape."""
        _names(data)
        return cls(data)


def _evaluate(data: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    if "all" in data:
        return all(_evaluate(d, values) for d in data["all"])
    if "any" in data:
        return any(_evaluate(d, values) for d in data["any"])
    if "not" in data:
        return not _evaluate(data["not"], values)
    value = values.get(data["param"])
    if data["op"] == "truthy":
        return bool(value)
    try:
        return bool(_OPS[data["op"]](value, data["value"]))
    except TypeError:
        return False


def _names(data: Mapping[str, Any]) -> set[str]:
    if not isinstance(data, Mapping):
        raise ValueError(f"malformed condition {data!r}")
    if "all" in data or "any" in data:
        parts = data.get("all", data.get("any"))
        if not isinstance(parts, (list, tuple)):
            raise ValueError(f"malformed condition {dict(data)!r}")
        return set().union(*(_names(d) for d in parts))
    if "not" in data:
        return _names(data["not"])
    if data.get("op") not in {*_OPS, "truthy"} or not isinstance(data.get("param"), str):
        raise ValueError(f"malformed condition {dict(data)!r}")
    if data["op"] != "truthy" and "value" not in data:
        raise ValueError(f"malformed condition {dict(data)!r}")
    return {data["param"]}


class _When:
    def __init__(self, param: str) -> None:
        self.param = param

    def _cond(self, op: str, value: Any) -> Condition:
        return Condition({"param": self.param, "op": op, "value": value})

    def __eq__(self, value: object) -> Condition:  # type: ignore[override]
        return self._cond("==", value)

    def __ne__(self, value: object) -> Condition:  # type: ignore[override]
        return self._cond("!=", value)

    def __lt__(self, value: Any) -> Condition:
        return self._cond("<", value)

    def __le__(self, value: Any) -> Condition:
        return self._cond("<=", value)

    def __gt__(self, value: Any) -> Condition:
        return self._cond(">", value)

    def __ge__(self, value: Any) -> Condition:
        return self._cond(">=", value)

    def is_in(self, values: Sequence[Any]) -> Condition:
        return self._cond("in", list(values))

    def is_set(self) -> Condition:
        return Condition({"param": self.param, "op": "truthy"})

    __hash__ = None  # type: ignore[assignment]


def when(param: str) -> _When:
    """Start a condition on a parameter: ``when("mode") == "random"``."""
    return _When(param)


@dataclass(frozen=True)
class Issue:
    """One validation problem, naming the parameter it concerns."""

    param: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"parameter {self.param!r}: {self.message}" if self.param else self.message

    def to_json(self) -> dict[str, str]:
        """The issue as a dict for forms and ``--json`` output."""
        return {"param": self.param, "message": self.message, "severity": self.severity}


class Param:
    """Base of all parameter types.

    Parameters
    ----------
    label
        Short name shown in forms (default: the attribute name).
    default
        The value when none is given; ``None`` makes the parameter required unless
        ``required=False``.
    help
        One or two sentences for tooltips and ``cryolab protocols``.
    unit
        Unit of the value, e.g. ``"Å"``, ``"kV"``, ``"px"``.
    section
        Form section the parameter is shown in.
    expert
        0 for everyone, 1 advanced, 2 expert (hidden behind the form's expert toggle).
    condition
        When the parameter applies; a parameter whose condition is false is not validated.
    required
        Whether a value must be given (default: when there is no default).
    """

    kind: ClassVar[str] = "param"

    def __init__(
        self,
        *,
        label: str = "",
        default: Any = None,
        help: str = "",
        unit: str = "",
        section: str = "Parameters",
        expert: int = 0,
        condition: Condition | None = None,
        required: bool | None = None,
    ) -> None:
        self.name = ""
        self.label = label
        self.default = default
        self.help = help
        self.unit = unit
        self.section = section
        self.expert = expert
        self.condition = condition
        self.required = default is None if required is None else required

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.label = self.label or name.replace("_", " ").capitalize()

    def applies(self, values: Mapping[str, Any]) -> bool:
        """Whether the parameter's condition holds for these values."""
        return self.condition is None or self.condition.evaluate(values)

    def check(self, value: Any) -> str | None:
        """Return what is wrong with a (non-missing) value, or ``None`` if it is fine."""
        return None

    def parse(self, text: str) -> Any:
        """Turn command-line text into a value of this parameter's type."""
        return text

    def normalise(self, value: Any) -> Any:
        """The value as stored with the run (e.g. paths made absolute); checked values only."""
        return value

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description for forms, templates and ``cryolab protocols``."""
        return {
            "name": self.name,
            "kind": self.kind,
            "label": self.label,
            "default": self.default,
            "help": self.help,
            "unit": self.unit,
            "section": self.section,
            "expert": self.expert,
            "required": self.required,
            "condition": None if self.condition is None else self.condition.to_json(),
            **self._extra(),
        }

    def _extra(self) -> dict[str, Any]:
        return {}


class _Number(Param):
    python_type: ClassVar[type] = float

    def __init__(self, *, min: float | None = None, max: float | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.min = min
        self.max = max

    def check(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected {self.kind}, got {type(value).__name__} {value!r}"
        if math.isnan(value):
            return "NaN is not a valid value"
        if self.python_type is int and not float(value).is_integer():
            return f"expected an integer, got {value!r}"
        if self.min is not None and value < self.min:
            return f"{value} is below the minimum {self.min}{self.unit and ' ' + self.unit}"
        if self.max is not None and value > self.max:
            return f"{value} is above the maximum {self.max}{self.unit and ' ' + self.unit}"
        return None

    def parse(self, text: str) -> Any:
        noun = "an integer" if self.python_type is int else "a number"
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"parameter {self.name!r}: {text!r} is not {noun}") from None
        if self.python_type is int:
            # neither truncate "3.5" silently nor let "inf" escape as an OverflowError
            if not number.is_integer():
                raise ValueError(f"parameter {self.name!r}: {text!r} is not {noun}")
            return int(number)
        return number

    def _extra(self) -> dict[str, Any]:
        return {"min": self.min, "max": self.max}


class IntParam(_Number):
    """An integer, optionally bounded by ``min``/``max``."""

    kind = "int"
    python_type = int


class FloatParam(_Number):
    """A real number, optionally bounded by ``min``/``max``."""

    kind = "float"
    python_type = float


class BoolParam(Param):
    """True or false."""

    kind = "bool"

    def check(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"

    def parse(self, text: str) -> bool:
        lowered = text.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"parameter {self.name!r}: {text!r} is not true/false")


class StrParam(Param):
    """Free text (``multiline`` for long text in forms)."""

    kind = "str"

    def __init__(self, *, multiline: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.multiline = multiline

    def check(self, value: Any) -> str | None:
        return None if isinstance(value, str) else f"expected text, got {type(value).__name__}"

    def _extra(self) -> dict[str, Any]:
        return {"multiline": self.multiline}


class ChoiceParam(Param):
    """One of a fixed list of values."""

    kind = "choice"

    def __init__(self, choices: Sequence[Any], **kw: Any) -> None:
        super().__init__(**kw)
        self.choices = list(choices)

    def check(self, value: Any) -> str | None:
        return None if value in self.choices else f"{value!r} is not one of {self.choices}"

    def parse(self, text: str) -> Any:
        for choice in self.choices:
            if str(choice) == text:
                return choice
        raise ValueError(f"parameter {self.name!r}: {text!r} is not one of {self.choices}")

    def _extra(self) -> dict[str, Any]:
        return {"choices": self.choices}


class PathParam(Param):
    """A file or folder path, or a glob pattern (``pattern=True``), checked to exist."""

    kind = "path"

    def __init__(self, *, must_exist: bool = True, pattern: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.must_exist = must_exist
        self.pattern = pattern

    def check(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return f"expected a path, got {value!r}"
        path = str(Path(value).expanduser())
        if self.pattern and glob.has_magic(path):
            if self.must_exist and not glob.glob(path):
                return f"no file matches {value!r}"
        elif self.must_exist and not Path(path).exists():
            return f"{value!r} does not exist"
        return None

    def normalise(self, value: Any) -> Any:
        """An absolute path, so the run's own process (elsewhere) finds the same files."""
        if isinstance(value, str) and value:
            return str(Path(value).expanduser().absolute())
        return value

    def _extra(self) -> dict[str, Any]:
        return {"must_exist": self.must_exist, "pattern": self.pattern}


class RangeParam(_Number):
    """A pair ``[low, high]`` with ``low <= high``, both within ``min``/``max``."""

    kind = "range"

    def check(self, value: Any) -> str | None:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            return f"expected [low, high], got {value!r}"
        for bound in value:
            problem = super().check(bound)
            if problem:
                return problem
        if value[0] > value[1]:
            return f"low {value[0]} is above high {value[1]}"
        return None

    def parse(self, text: str) -> list[float]:
        parts = text.replace(",", " ").replace(":", " ").split()
        if len(parts) != 2:
            raise ValueError(f"parameter {self.name!r}: {text!r} is not 'low,high'")
        # not super() here: zero-argument super() fails inside a comprehension before 3.12
        return [float(_Number.parse(self, p)) for p in parts]


class ListParam(Param):
    """A list of values of one parameter type (``item``), with optional length bounds."""

    kind = "list"

    def __init__(
        self, item: Param, *, min_items: int = 0, max_items: int | None = None, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.item = item
        self.min_items = min_items
        self.max_items = max_items

    def __set_name__(self, owner: type, name: str) -> None:
        super().__set_name__(owner, name)
        self.item.name = f"{name}[]"

    def check(self, value: Any) -> str | None:
        if not isinstance(value, (list, tuple)):
            return f"expected a list, got {type(value).__name__}"
        if len(value) < self.min_items:
            return f"needs at least {self.min_items} item(s), got {len(value)}"
        if self.max_items is not None and len(value) > self.max_items:
            return f"takes at most {self.max_items} item(s), got {len(value)}"
        for index, element in enumerate(value):
            problem = self.item.check(element)
            if problem:
                return f"item {index}: {problem}"
        return None

    def parse(self, text: str) -> list[Any]:
        stripped = text.strip()
        if stripped.startswith("["):
            parsed: list[Any] = json.loads(stripped)
            return parsed
        return [self.item.parse(p.strip()) for p in stripped.split(",") if p.strip()]

    def _extra(self) -> dict[str, Any]:
        return {
            "item": self.item.describe(),
            "min_items": self.min_items,
            "max_items": self.max_items,
        }


class InputParam(Param):
    """An input: the output of another run, given as ``"RUNID.output"`` or an output handle.

    Parameters
    ----------
    types
        Accepted set types (classes or registered type names); a subtype is accepted too.
    multiple
        Whether a list of outputs is taken (e.g. sets to merge).
    """

    kind = "input"

    def __init__(
        self, types: type | str | Sequence[type | str], *, multiple: bool = False, **kw: Any
    ) -> None:
        super().__init__(**kw)
        options: Sequence[type | str] = (
            types if isinstance(types, (list, tuple)) else [types]  # type: ignore[list-item]
        )
        self.types = [
            t if isinstance(t, str) else str(getattr(t, "type_name", t.__name__)) for t in options
        ]
        self.multiple = multiple

    def check(self, value: Any) -> str | None:
        refs = value if isinstance(value, list) else [value]
        if self.multiple and not isinstance(value, list):
            return "expected a list of outputs"
        if not self.multiple and isinstance(value, list):
            return "takes one output, got a list"
        if self.multiple and self.required and not refs:
            return "needs at least one output"
        for ref in refs:
            if not isinstance(ref, str) or not is_reference(ref):
                return f"expected an output such as '3.particles', got {ref!r}"
        return None

    def parse(self, text: str) -> Any:
        refs = [p.strip() for p in text.split(",") if p.strip()]
        return refs if self.multiple else (refs[0] if refs else "")

    def accepts(self, chain: Sequence[str]) -> bool:
        """Whether an output whose type chain is ``chain`` fits this input."""
        return any(t in chain for t in self.types)

    def _extra(self) -> dict[str, Any]:
        return {"types": self.types, "multiple": self.multiple}


def is_reference(text: str) -> bool:
    """Whether text looks like an output reference ``"RUNID.output"``."""
    run, _, output = text.partition(".")
    return run.isdigit() and output.isidentifier()


def split_reference(text: str) -> tuple[int, str]:
    """Split ``"12.particles"`` into ``(12, "particles")``."""
    run, _, output = text.partition(".")
    return int(run), output
