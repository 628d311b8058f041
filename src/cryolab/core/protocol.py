"""Protocols: declared parameters, inputs and outputs, validation, and a plan of steps.

A protocol subclass declares :mod:`~cryolab.core.params` as class attributes, its outputs in
``outputs`` (so the run graph exists before anything runs), and implements :meth:`Protocol.plan`
to yield :class:`Step` records. A step names a method of the protocol and its JSON arguments;
executors call ``getattr(protocol, step.func)(ctx, **step.args)`` in a worker process with a
:class:`StepContext` giving the inputs, the output writers and a private scratch folder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cryolab.core.errors import ParameterError
from cryolab.core.params import InputParam, Issue, Param

if TYPE_CHECKING:
    from cryolab.core.sets import Set
    from cryolab.core.setstore import SetWriter


_STEP_LOG = logging.getLogger("cryolab.step")

CRYOLAB_BIBTEX = """@software{cryolab,
  title = {cryolab: a Jupyter-native workflow engine for cryo-electron microscopy},
  author = {{cryolab developers}},
  year = {2026},
  note = {Workflow engine design after Scipion (de la Rosa-Trevin et al. 2016, Conesa et al. 2023)}
}"""


class _StepLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes a step's messages with its id (one logger for all steps, not one each)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['step'] if self.extra else '?'}] {msg}", kwargs


@dataclass(frozen=True)
class Output:
    """A declared output set.

    Parameters
    ----------
    type
        The set type (class or registered name) of the output.
    like
        Instead of ``type``: the name of an input parameter whose type the output takes
        (a subset of particles is particles).
    help
        What the output holds.
    """

    type: type | str | None = None
    like: str | None = None
    help: str = ""

    def type_name(self) -> str | None:
        """The declared type's registered name, if given as ``type``."""
        if self.type is None:
            return None
        return self.type if isinstance(self.type, str) else str(self.type.type_name)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Step:
    """One unit of work of a run: a protocol method and its JSON arguments.

    Parameters
    ----------
    id
        Unique within the run; used to resume and to tag the batches the step writes.
    func
        Name of the protocol method to call.
    args
        JSON-serialisable keyword arguments.
    deps
        Ids of the steps that must finish first.
    threads
        Cores the step uses; executors run ``cores // threads`` steps at once.
    """

    id: str
    func: str
    args: Mapping[str, Any] = field(default_factory=dict)
    deps: tuple[str, ...] = ()
    threads: int = 1

    def to_json(self) -> dict[str, Any]:
        """The step as a JSON-serialisable dict."""
        return {
            "id": self.id,
            "func": self.func,
            "args": dict(self.args),
            "deps": list(self.deps),
            "threads": self.threads,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Step:
        """Rebuild a step from :meth:`to_json`."""
        return cls(
            id=data["id"],
            func=data["func"],
            args=data.get("args", {}),
            deps=tuple(data.get("deps", ())),
            threads=int(data.get("threads", 1)),
        )


class StepContext:
    """What a step sees while it runs.

    Parameters
    ----------
    step
        The step being executed.
    params
        All parameter values of the run (inputs as ``"RUNID.output"`` references).
    load_input
        Loads the set(s) given to an input parameter.
    open_output
        Opens the writer of a declared output.
    run_dir
        The run's folder.
    seed
        The run's seed; :attr:`rng` is seeded from it and the step id.
    """

    def __init__(
        self,
        step: Step,
        params: Mapping[str, Any],
        load_input: Callable[[str], Set | list[Set]],
        open_output: Callable[[str], SetWriter],
        run_dir: Path,
        seed: int,
    ) -> None:
        self.step = step
        self.params = params
        self._load_input = load_input
        self._open_output = open_output
        self.run_dir = run_dir
        self.seed = seed
        self.log = _StepLog(_STEP_LOG, {"step": step.id})
        self._cache: dict[str, Any] = {}

    @property
    def step_dir(self) -> Path:
        """A scratch folder private to this step (emptied if the step is re-run)."""
        path = self.run_dir / "steps" / self.step.id
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def rng(self) -> np.random.Generator:
        """A random generator seeded by the run seed and the step id (reproducible)."""
        if "rng" not in self._cache:
            words = [self.seed, *(ord(c) for c in self.step.id)]
            self._cache["rng"] = np.random.default_rng(words)
        generator: np.random.Generator = self._cache["rng"]
        return generator

    def input(self, name: str) -> Any:
        """The set (or list of sets) given to input parameter ``name``."""
        if name not in self._cache:
            self._cache[name] = self._load_input(name)
        return self._cache[name]

    def append(self, output: str, rows: Any) -> int:
        """Append rows to a declared output, tagged with this step; returns the new size."""
        return self._open_output(output).append(rows, step=self.step.id)

    def update_properties(self, output: str, **properties: Any) -> None:
        """Set properties of a declared output set (e.g. its sampling rate)."""
        self._open_output(output).update_properties(**properties)


class Protocol:
    """Base class of every protocol.

    Subclasses set ``name`` (``"package.action"``), declare parameters as class attributes and
    outputs in ``outputs``, and implement :meth:`plan` and the step methods it names.

    ``deterministic`` declares that, given the run's seed and inputs, the outputs are
    bit-reproducible on the same machine (row order and newly drawn uids aside):
    ``cryolab reproduce`` then compares them value by value within small float tolerances;
    protocols that do not declare it (the default) are compared statistically.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    outputs: ClassVar[Mapping[str, Output]] = {}
    citations: ClassVar[tuple[str, ...]] = (CRYOLAB_BIBTEX,)
    deterministic: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        given = dict(params or {})
        declared = self.params()
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise ParameterError(
                [
                    Issue(n, f"{self.name} has no such parameter; it has {sorted(declared)}")
                    for n in unknown
                ]
            )
        self.values: dict[str, Any] = {
            name: given.get(name, _copy_default(p.default)) for name, p in declared.items()
        }

    @classmethod
    def params(cls) -> dict[str, Param]:
        """The declared parameters, in declaration order (base classes first)."""
        found: dict[str, Param] = {}
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if isinstance(value, Param):
                    found[key] = value
        return found

    @classmethod
    def inputs(cls) -> dict[str, InputParam]:
        """The declared input parameters."""
        return {k: p for k, p in cls.params().items() if isinstance(p, InputParam)}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """JSON description: name, label, help, parameters, outputs (for forms and the CLI)."""
        return {
            "name": cls.name,
            "label": cls.label or cls.name,
            "help": (cls.__doc__ or "").strip(),
            "params": [p.describe() for p in cls.params().values()],
            "outputs": {
                k: {"type": o.type_name(), "like": o.like, "help": o.help}
                for k, o in cls.outputs.items()
            },
            "deterministic": cls.deterministic,
        }

    def applicable(self) -> dict[str, Param]:
        """The parameters whose conditions hold for the current values."""
        return {n: p for n, p in self.params().items() if p.applies(self.values)}

    def validate(self) -> list[Issue]:
        """Check every applicable parameter; return the issues (empty when all is well)."""
        issues: list[Issue] = []
        for name, param in self.applicable().items():
            value = self.values.get(name)
            if value is None or (isinstance(value, (str, list)) and not value and param.required):
                if param.required:
                    issues.append(Issue(name, "a value is required"))
                continue
            problem = param.check(value)
            if problem:
                issues.append(Issue(name, problem))
        if not issues:
            issues.extend(self.check())
        return issues

    def check(self) -> list[Issue]:
        """Protocol-specific checks across parameters; called when each one is valid alone."""
        return []

    def check_inputs(self, columns: Mapping[str, list[str]]) -> list[Issue]:
        """Checks against the inputs that exist already, before launch.

        ``columns`` maps an input parameter to the column names of the set it names, for the
        single-set inputs whose set has rows written (others are absent: the run checks them
        when it reads them). A condition naming a column that is not there is the usual use.
        """
        return []

    def declared_outputs(self) -> dict[str, Output]:
        """The outputs this run will have, given its parameter values."""
        return dict(self.outputs)

    def plan(self) -> Iterable[Step]:
        """Yield the steps of the run. Fast and free of side effects."""
        raise NotImplementedError(f"{type(self).__name__} does not implement plan()")

    def summary(self, output_sizes: Mapping[str, int] | None = None) -> str:
        """One or two lines on what the run does (and, when given, what it produced)."""
        text = f"{self.label or self.name}"
        if output_sizes:
            text += ": " + ", ".join(f"{k}: {v} items" for k, v in output_sizes.items())
        return text

    def program_versions(self) -> dict[str, str]:
        """The versions of the external programs this protocol wraps, for its runs' provenance.

        Called once per run, in the run process. Protocols wrapping programs override it, e.g.
        to return ``{"relion": "5.0.0"}``; the default wraps none.
        """
        return {}

    def methods(self) -> str:
        """A methods paragraph for reports, citing :attr:`citations` with ``[key]`` markers."""
        return f"The {self.label or self.name} protocol of cryolab was used."

    def cited(self) -> list[str]:
        """The keys of the :attr:`citations` that apply to this run's values (default: all).

        A report cites each of them in the run's methods sentence (where the text has no
        ``[key]`` marker, after it). A protocol whose citations depend on a choice, such as
        a picking method, narrows them here.
        """
        return self.citation_keys()

    @classmethod
    def bibtex(cls) -> str:
        """The protocol's citations as one BibTeX text (entries separated by blank lines)."""
        for entry in cls.citations:
            if not entry.lstrip().startswith("@") or entry.count("{") != entry.count("}"):
                raise ValueError(f"{cls.name}: citation is not a BibTeX entry: {entry[:60]!r}")
        return "\n\n".join(entry.strip() for entry in cls.citations)

    @classmethod
    def citation_keys(cls) -> list[str]:
        """The BibTeX keys of the citations, e.g. ``["cryolab"]``, for methods text."""
        return [entry.split("{", 1)[1].split(",", 1)[0].strip() for entry in cls.citations]


def _copy_default(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
