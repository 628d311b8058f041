"""The exception hierarchy of cryolab.

Every error a user can cause derives from :class:`CryolabError`, so scripts and notebooks can
catch one type. Messages name the thing at fault (the parameter, the file, the run).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryolab.core.params import Issue


class CryolabError(Exception):
    """Base class of every error raised on purpose by cryolab."""


class ProjectError(CryolabError):
    """The project folder or its database cannot be used as asked."""


class ProtocolNotFoundError(CryolabError, KeyError):
    """No registered protocol has the requested name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "protocol not found"


class RunNotFoundError(ProjectError, KeyError):
    """No run with the requested id exists in the project."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "run not found"


class ParameterError(CryolabError, ValueError):
    """One or more parameter values are invalid.

    Parameters
    ----------
    issues
        The validation issues, each naming its parameter.
    """

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        text = "; ".join(str(issue) for issue in self.issues) or "invalid parameters"
        super().__init__(text)


class ExpressionError(CryolabError, ValueError):
    """A condition expression is malformed or names an unknown column."""


class SetError(CryolabError):
    """A set cannot be read, written or combined as asked."""


class GraphError(CryolabError):
    """The run graph would become inconsistent (a cycle, a dangling input, a used run)."""


class TemplateError(CryolabError, ValueError):
    """A workflow template is malformed or cannot be imported."""


class PluginError(CryolabError):
    """A plugin could not be loaded."""


class StepError(CryolabError):
    """A step of a run failed.

    Parameters
    ----------
    step_id
        The id of the failed step.
    message
        What went wrong.
    """

    def __init__(self, step_id: str, message: str) -> None:
        self.step_id = step_id
        super().__init__(f"step {step_id!r} failed: {message}")


class RunFailedError(CryolabError):
    """A run ended in the failed or aborted state while it was waited on."""
