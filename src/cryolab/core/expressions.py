"""Vectorised evaluation of condition strings over columns, without ``eval``.

A condition such as ``"ctf.resolution < 5 and not (class_id in [3, 4])"`` is parsed with
:mod:`ast` and evaluated by walking a whitelist of node types; names resolve to columns of a
set (dotted names are allowed), so no Python code from the string is ever executed.
"""

from __future__ import annotations

import ast
import difflib
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cryolab.core.errors import ExpressionError

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.FloorDiv: operator.floordiv,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": np.abs,
    "sqrt": np.sqrt,
    "log": np.log,
    "exp": np.exp,
    "isnan": np.isnan,
}
# Dotted column names ("ctf.defocus_u") parse as attribute chains; a name may also be quoted
# with backticks when it is not a Python identifier: `rlnDefocusU`.
_BACKTICK = re.compile(r"`([^`]+)`")


def evaluate(expression: str, columns: Mapping[str, Any]) -> NDArray[Any]:
    """Evaluate a condition over columns and return the boolean mask.

    Parameters
    ----------
    expression
        The condition, e.g. ``"defocus_u > 1e4 and score >= 0.2"``. Operators: comparisons
        (chained too), ``and``/``or``/``not``, ``+ - * / // % **``, ``in [..]``, and the
        functions ``abs``, ``sqrt``, ``log``, ``exp``, ``isnan``.
    columns
        Column name to array (or anything indexable by name, such as a set).

    Returns
    -------
    numpy.ndarray
        A boolean array with one value per row.

    Raises
    ------
    ExpressionError
        If the expression is malformed, uses a forbidden construct or names an unknown column.
    """
    names: dict[str, str] = {}

    def _quote(match: re.Match[str]) -> str:
        key = f"__col{len(names)}"
        names[key] = match.group(1)
        return key

    source = _BACKTICK.sub(_quote, expression.strip())
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"malformed condition {expression!r}: {exc.msg}") from None
    try:
        result = _Evaluator(expression, columns, names).visit(tree.body)
    except ExpressionError:
        raise
    except (TypeError, ValueError) as exc:
        # numpy refuses e.g. text + number or a list of the wrong length: a user error
        raise ExpressionError(f"condition {expression!r} cannot be evaluated: {exc}") from None
    mask = np.asarray(result)
    if mask.dtype != np.bool_:
        raise ExpressionError(f"condition {expression!r} does not give true/false per row")
    return mask


def unknown_column(name: str, known: Iterable[str]) -> str:
    """The message for a condition naming a column that is not there: the closest name, if
    any, and the columns there are."""
    columns = sorted(known)
    close = difflib.get_close_matches(name, columns, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = columns if len(columns) <= 30 else [*columns[:30], "..."]
    return f"unknown column {name!r}{hint} Columns: {listed}"


def referenced_columns(expression: str) -> set[str]:
    """Return the column names an expression refers to (for validation before a run)."""
    names: set[str] = set(_BACKTICK.findall(expression))
    source = _BACKTICK.sub("__quoted", expression.strip())
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"malformed condition {expression!r}: {exc.msg}") from None
    # the inner parts of a dotted name ("ctf" in "ctf.defocus_u") are not columns themselves
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if id(node) in inner:
            continue
        dotted = _dotted_name(node)
        if dotted is not None and dotted != "__quoted" and not _is_function_name(tree, node):
            names.add(dotted)
    return names


def _is_function_name(tree: ast.AST, node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and n.func is node for n in ast.walk(tree))


def _dotted_name(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


class _Evaluator:
    def __init__(self, text: str, columns: Mapping[str, Any], quoted: dict[str, str]) -> None:
        self.text = text
        self.columns = columns
        self.quoted = quoted

    def fail(self, what: str) -> ExpressionError:
        return ExpressionError(f"condition {self.text!r}: {what}")

    def column(self, name: str) -> Any:
        name = self.quoted.get(name, name)
        try:
            return np.asarray(self.columns[name])
        except KeyError:
            names = getattr(self.columns, "columns", None)  # a Set lists its names here
            known = names if isinstance(names, list) else list(map(str, self.columns))
            raise self.fail(unknown_column(name, known)) from None

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.BoolOp):
            values = [np.asarray(self.visit(v), dtype=bool) for v in node.values]
            combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = values[0]
            for value in values[1:]:
                out = combine(out, value)
            return out
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand)
            if isinstance(node.op, ast.Not):
                return np.logical_not(operand)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return operand
            raise self.fail("unsupported unary operator")
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.BinOp):
            op = _BINARY.get(type(node.op))
            if op is None:
                raise self.fail("unsupported operator")
            return op(self.visit(node.left), self.visit(node.right))
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.visit(e) for e in node.elts]
        if isinstance(node, ast.Call):
            name = _dotted_name(node.func)
            if name not in _FUNCTIONS or node.keywords or len(node.args) != 1:
                raise self.fail(f"unknown function {name!r}")
            return _FUNCTIONS[name](self.visit(node.args[0]))
        dotted = _dotted_name(node)
        if dotted is not None:
            if dotted in ("True", "False"):
                return dotted == "True"
            return self.column(dotted)
        raise self.fail(f"unsupported construct {type(node).__name__}")

    def _compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        out: Any = None
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.visit(right_node)
            if isinstance(op_node, (ast.In, ast.NotIn)):
                if not isinstance(right, list):
                    raise self.fail("'in' needs a list, e.g. class_id in [1, 2]")
                part = np.isin(left, np.asarray(right))
                if isinstance(op_node, ast.NotIn):
                    part = np.logical_not(part)
            else:
                op = _COMPARE.get(type(op_node))
                if op is None:
                    raise self.fail("unsupported comparison")
                try:
                    part = op(left, right)
                except TypeError as exc:
                    raise self.fail(f"cannot compare: {exc}") from None
            out = part if out is None else np.logical_and(out, part)
            left = right
        return out
