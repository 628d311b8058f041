"""Condition strings: vectorised evaluation over columns, and nothing else is ever executed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest

from cryolab.core.errors import CryolabError, ExpressionError
from cryolab.core.expressions import evaluate, referenced_columns
from cryolab.core.sets import Set


class RecordingColumns(Mapping[str, np.ndarray]):
    """Columns that remember which names were looked up."""

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self._columns = columns
        self.looked_up: list[str] = []

    def __getitem__(self, name: str) -> np.ndarray:
        self.looked_up.append(name)
        return self._columns[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)


@pytest.fixture
def cols() -> dict[str, np.ndarray]:
    return {
        "x": np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
        "y": np.array([5, 4, 3, 2, 1]),
        "class_id": np.array([1, 2, 3, 4, 3]),
        "name": np.array(["a", "b", "c", "d", "e"]),
        "ctf.defocus_u": np.array([1.0e4, 2.0e4, 3.0e4, 4.0e4, 5.0e4]),
        "ctf.resolution": np.array([3.0, 4.5, 6.0, 2.5, 8.0]),
        "rln Defocus-U": np.array([10, 20, 30, 40, 50]),
        "score": np.array([0.1, np.nan, 0.3, -0.4, np.nan]),
    }


def mask(*values: int) -> np.ndarray:
    return np.array(values, dtype=bool)


# -- arithmetic and comparisons -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("x > 2", mask(0, 0, 1, 1, 1)),
        ("x >= 2", mask(0, 1, 1, 1, 1)),
        ("x < 2", mask(1, 0, 0, 0, 0)),
        ("x <= 2", mask(1, 1, 0, 0, 0)),
        ("x == 3", mask(0, 0, 1, 0, 0)),
        ("x != 3", mask(1, 1, 0, 1, 1)),
        ("x + y == 6", mask(1, 1, 1, 1, 1)),
        ("x - y > 0", mask(0, 0, 0, 1, 1)),
        ("x * 2 == 6", mask(0, 0, 1, 0, 0)),
        ("x / 2 == 1.5", mask(0, 0, 1, 0, 0)),
        ("x // 2 == 1", mask(0, 1, 1, 0, 0)),
        ("y % 2 == 0", mask(0, 1, 0, 1, 0)),
        ("x ** 2 > 10", mask(0, 0, 0, 1, 1)),
        ("-x < -3", mask(0, 0, 0, 1, 1)),
        ("+x > 4", mask(0, 0, 0, 0, 1)),
        ("x * y > x + y", mask(0, 1, 1, 1, 0)),
        ("(x + 1) * 2 > 8", mask(0, 0, 0, 1, 1)),
        ("x > y", mask(0, 0, 0, 1, 1)),
        ("name == 'c'", mask(0, 0, 1, 0, 0)),
        ('name != "c"', mask(1, 1, 0, 1, 1)),
        ("x > 1e0", mask(0, 1, 1, 1, 1)),
    ],
)
def test_arithmetic_and_comparisons(cols, expression, expected) -> None:
    result = evaluate(expression, cols)
    assert result.dtype == np.bool_
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 < x < 4", mask(0, 1, 1, 0, 0)),
        ("2 <= x <= 4", mask(0, 1, 1, 1, 0)),
        ("1 < x < y", mask(0, 1, 0, 0, 0)),
        ("0 < x < y + 1 < 10", mask(1, 1, 1, 0, 0)),
        ("5 > x > 1", mask(0, 1, 1, 1, 0)),
    ],
)
def test_chained_comparisons(cols, expression, expected) -> None:
    np.testing.assert_array_equal(evaluate(expression, cols), expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("x > 1 and y > 1", mask(0, 1, 1, 1, 0)),
        ("x < 2 or y < 2", mask(1, 0, 0, 0, 1)),
        ("not x > 2", mask(1, 1, 0, 0, 0)),
        ("not (x > 2 and y > 1)", mask(1, 1, 0, 0, 1)),
        ("x > 1 and y > 1 and class_id == 3", mask(0, 0, 1, 0, 0)),
        ("x == 1 or x == 3 or x == 5", mask(1, 0, 1, 0, 1)),
        ("x > 4 or x < 2 and y > 4", mask(1, 0, 0, 0, 1)),
        ("(x > 4 or x < 2) and y > 4", mask(1, 0, 0, 0, 0)),
        ("True and x > 4", mask(0, 0, 0, 0, 1)),
        ("False or x > 4", mask(0, 0, 0, 0, 1)),
        ("x > 1 and y", mask(0, 1, 1, 1, 1)),
    ],
)
def test_boolean_logic(cols, expression, expected) -> None:
    np.testing.assert_array_equal(evaluate(expression, cols), expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("class_id in [3, 4]", mask(0, 0, 1, 1, 1)),
        ("class_id not in [3, 4]", mask(1, 1, 0, 0, 0)),
        ("class_id in (1,)", mask(1, 0, 0, 0, 0)),
        ("class_id in []", mask(0, 0, 0, 0, 0)),
        ("name in ['a', 'e']", mask(1, 0, 0, 0, 1)),
        ("name not in ['a', 'e']", mask(0, 1, 1, 1, 0)),
        ("x > 1 and not (class_id in [3, 4])", mask(0, 1, 0, 0, 0)),
    ],
)
def test_membership(cols, expression, expected) -> None:
    np.testing.assert_array_equal(evaluate(expression, cols), expected)


def test_in_needs_a_list(cols) -> None:
    with pytest.raises(ExpressionError, match="needs a list"):
        evaluate("class_id in y", cols)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("abs(score) > 0.2", mask(0, 0, 1, 1, 0)),
        ("sqrt(x) == 2", mask(0, 0, 0, 1, 0)),
        ("isnan(score)", mask(0, 1, 0, 0, 1)),
        ("not isnan(score)", mask(1, 0, 1, 1, 0)),
        ("log(exp(x)) > 2.5", mask(0, 0, 1, 1, 1)),
        ("abs(x - 3) <= 1", mask(0, 1, 1, 1, 0)),
        ("sqrt(abs(-x)) > 1.5", mask(0, 0, 1, 1, 1)),
    ],
)
def test_functions(cols, expression, expected) -> None:
    np.testing.assert_array_equal(evaluate(expression, cols), expected)


def test_nan_compares_false(cols) -> None:
    np.testing.assert_array_equal(evaluate("score > -1", cols), mask(1, 0, 1, 1, 0))


# -- names --------------------------------------------------------------------------------


def test_dotted_names(cols) -> None:
    np.testing.assert_array_equal(evaluate("ctf.defocus_u > 2.5e4", cols), mask(0, 0, 1, 1, 1))
    np.testing.assert_array_equal(
        evaluate("ctf.resolution < 5 and ctf.defocus_u < 3e4", cols), mask(1, 1, 0, 0, 0)
    )


def test_backtick_quoted_names(cols) -> None:
    np.testing.assert_array_equal(evaluate("`rln Defocus-U` >= 30", cols), mask(0, 0, 1, 1, 1))
    np.testing.assert_array_equal(
        evaluate("`rln Defocus-U` > 10 and `ctf.resolution` < 5", cols), mask(0, 1, 0, 1, 0)
    )
    np.testing.assert_array_equal(evaluate("`x` == x", cols), mask(1, 1, 1, 1, 1))


def test_surrounding_whitespace_is_ignored(cols) -> None:
    np.testing.assert_array_equal(evaluate("   x > 4\n", cols), mask(0, 0, 0, 0, 1))


def test_unknown_column_is_named(cols) -> None:
    with pytest.raises(ExpressionError, match="unknown column 'defocus'"):
        evaluate("defocus > 1", cols)
    with pytest.raises(ExpressionError, match=r"unknown column 'ctf\.nope'"):
        evaluate("x > 1 and ctf.nope < 2", cols)
    with pytest.raises(ExpressionError, match="unknown column 'not here'"):
        evaluate("`not here` > 1", cols)


def test_errors_are_cryolab_errors(cols) -> None:
    with pytest.raises(CryolabError):
        evaluate("nope > 1", cols)
    with pytest.raises(ValueError):
        evaluate("nope > 1", cols)


def test_works_with_a_set() -> None:
    s = Set({"ctf.defocus_u": [1.0e4, 3.0e4], "name": ["a", "b"]})
    np.testing.assert_array_equal(evaluate("ctf.defocus_u > 2e4", s), mask(0, 1))
    np.testing.assert_array_equal(evaluate("name == 'a'", s), mask(1, 0))
    with pytest.raises(ExpressionError, match=r"unknown column 'ctf\.nope'"):
        evaluate("ctf.nope > 1", s)


# -- malformed and forbidden --------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    ["x >", "", "   ", "x > > 1", "(x > 1", "x = 1", "x > 1 and", "1 +* 2", "x > 'a"],
)
def test_malformed_syntax(cols, expression) -> None:
    with pytest.raises(ExpressionError, match="malformed"):
        evaluate(expression, cols)


@pytest.mark.parametrize("expression", ["x + 1", "x", "abs(x)", "name"])
def test_non_boolean_result_is_refused(cols, expression) -> None:
    with pytest.raises(ExpressionError, match="true/false"):
        evaluate(expression, cols)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').getcwd() == 1",
        "x > 1 and __import__('os')",
        "().__class__",
        "(x).__class__ == 1",
        "lambda: 1",
        "(lambda: x)() > 1",
        "x[0] > 1",
        "x[1:2] > 1",
        "eval('1') == 1",
        "open('f') == 1",
        "len(x) == 5",
        "abs(x, 1) > 1",
        "abs(x=1) > 1",
        "x.sum() > 1",
        "[i for i in x] == 1",
        "{1: 2} == 1",
        "{1} == 1",
        "x if True else y",
        "f'{x}' == 'a'",
        "None == x",
        "b'x' == x",
        "~x == 1",
        "x @ y > 1",
        "x << 1 > 1",
        "x is 1",
        "(y := 1) > 0",
    ],
)
def test_forbidden_constructs(cols, expression) -> None:
    with pytest.raises(ExpressionError):
        evaluate(expression, cols)


def test_forbidden_calls_are_never_executed(tmp_path: Path, cols) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    created = tmp_path / "created.txt"
    attempts = [
        f"__import__('os').remove({str(victim)!r})",
        f"x > 1 and __import__('os').remove({str(victim)!r})",
        f"open({str(created)!r}, 'w') == 1",
        f"abs(open({str(created)!r}, 'w')) > 1",
        f"(lambda: __import__('os').remove({str(victim)!r}))() == 1",
        f"[__import__('os').remove({str(victim)!r})][0] == 1",
    ]
    for expression in attempts:
        with pytest.raises(ExpressionError):
            evaluate(expression, cols)
    assert victim.read_text() == "keep me"
    assert not created.exists()


def test_only_the_named_columns_are_looked_up(cols) -> None:
    recording = RecordingColumns(cols)
    evaluate("x > 1 and ctf.resolution < 5", recording)
    assert sorted(recording.looked_up) == ["ctf.resolution", "x"]
    recording.looked_up.clear()
    with pytest.raises(ExpressionError):
        evaluate("__import__('os').system('true') == 0", recording)
    assert recording.looked_up == []


@pytest.mark.parametrize(
    "expression",
    [
        "name + 1 > 2",  # text plus a number
        "-name == 'a'",
        "sqrt(name) > 1",
        "isnan(name)",
        "x == [1, 2]",  # a list of the wrong length
        "name > 3",
        "class_id in [y, 99]",  # a column inside the list
    ],
)
def test_type_errors_become_expression_errors(cols, expression) -> None:
    # every error a user can cause is a CryolabError; numpy's own errors must not leak out
    with pytest.raises(ExpressionError, match="condition"):
        evaluate(expression, cols)


# -- referenced_columns ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("x > 1", {"x"}),
        ("x > 1 and y < 2 or x == 3", {"x", "y"}),
        ("ctf.defocus_u > 1e4", {"ctf.defocus_u"}),
        ("ctf.defocus_u > ctf.defocus_v", {"ctf.defocus_u", "ctf.defocus_v"}),
        ("a.b.c == 1", {"a.b.c"}),
        ("abs(score) > 0.2 and sqrt(x) < 3", {"score", "x"}),
        ("isnan(ctf.resolution)", {"ctf.resolution"}),
        ("`rln Defocus-U` > 1 and x < 2", {"rln Defocus-U", "x"}),
        ("`a` > 1 and `b c` < 2", {"a", "b c"}),
        ("class_id in [1, 2]", {"class_id"}),
        ("1 < 2", set()),
    ],
)
def test_referenced_columns(expression, expected) -> None:
    assert referenced_columns(expression) == expected


def test_referenced_columns_agree_with_evaluation(cols) -> None:
    expression = "ctf.resolution < 5 and `rln Defocus-U` > 10 and not isnan(score)"
    recording = RecordingColumns(cols)
    evaluate(expression, recording)
    assert referenced_columns(expression) == set(recording.looked_up)


def test_referenced_columns_malformed() -> None:
    with pytest.raises(ExpressionError, match="malformed"):
        referenced_columns("x >")


def test_an_unknown_column_suggests_and_lists_the_columns() -> None:
    s = Set({"score": [1.0], "ctf.defocus_u": [1.0]})
    with pytest.raises(
        ExpressionError, match=r"did you mean 'score'\? Columns: \['ctf\.defocus_u'"
    ):
        evaluate("scor > 1", s)
