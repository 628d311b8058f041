"""Typed parameters: check, parse, describe; conditions as data; validation issues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cryolab.core.errors import ParameterError
from cryolab.core.params import (
    BoolParam,
    ChoiceParam,
    Condition,
    FloatParam,
    InputParam,
    IntParam,
    Issue,
    ListParam,
    Param,
    PathParam,
    RangeParam,
    StrParam,
    is_reference,
    split_reference,
    when,
)
from cryolab.core.sets import Set


class ParamTestSet(Set):
    type_name = "ParamTestSet"


class Declared:
    """Parameters declared as class attributes, so that they get their names."""

    box = IntParam(default=64, min=16, max=1024, unit="px", help="Box size")
    apix = FloatParam(default=1.0, min=0.1, max=10.0, unit="Å")
    count = IntParam()
    ratio = FloatParam(min=0.0)
    flag = BoolParam(default=False)
    mode = ChoiceParam(["random", "sorted", 3], default="random")
    title = StrParam(default="", multiline=True)
    movies = PathParam(pattern=True)
    output_dir = PathParam(must_exist=False, required=False)
    resolution = RangeParam(default=[2.0, 10.0], min=0.0, max=50.0, unit="Å")
    classes = ListParam(IntParam(min=0), min_items=1, max_items=3)
    names = ListParam(StrParam())
    source = InputParam(ParamTestSet, label="Input set")
    sources = InputParam(["ParamTestSet", Set], multiple=True)
    optional_sources = InputParam(Set, multiple=True, required=False)
    conditional = FloatParam(
        default=1.0, condition=when("mode") == "sorted", expert=2, section="Advanced"
    )


# -- the base class -----------------------------------------------------------------------


def test_set_name_and_default_label() -> None:
    assert Declared.box.name == "box"
    assert Declared.box.label == "Box"
    assert Declared.output_dir.label == "Output dir"
    assert Declared.source.label == "Input set"  # an explicit label is kept


def test_required_follows_default() -> None:
    assert Declared.count.required is True
    assert Declared.box.required is False
    assert Declared.output_dir.required is False  # explicit required=False without default
    assert Param(default=None, required=False).required is False
    assert Param(default=3, required=True).required is True


def test_base_param_accepts_anything() -> None:
    param = Param()
    assert param.check(object()) is None
    assert param.parse("text") == "text"


def test_applies_follows_condition() -> None:
    assert Declared.box.applies({}) is True
    assert Declared.conditional.applies({"mode": "sorted"}) is True
    assert Declared.conditional.applies({"mode": "random"}) is False
    assert Declared.conditional.applies({}) is False


def test_describe_is_complete_and_json() -> None:
    described = Declared.box.describe()
    assert described == {
        "name": "box",
        "kind": "int",
        "label": "Box",
        "default": 64,
        "help": "Box size",
        "unit": "px",
        "section": "Parameters",
        "expert": 0,
        "required": False,
        "condition": None,
        "min": 16,
        "max": 1024,
    }
    conditional = Declared.conditional.describe()
    assert conditional["condition"] == {"param": "mode", "op": "==", "value": "sorted"}
    assert conditional["expert"] == 2
    assert conditional["section"] == "Advanced"
    for param in vars(Declared).values():
        if isinstance(param, Param):
            described = param.describe()
            assert json.loads(json.dumps(described)) == described
            assert described["name"] == param.name


# -- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [16, 64, 1024, 100.0])
def test_int_check_accepts(value) -> None:
    assert Declared.box.check(value) is None


def test_int_check_bounds_name_the_unit() -> None:
    assert Declared.box.check(8) == "8 is below the minimum 16 px"
    assert Declared.box.check(2048) == "2048 is above the maximum 1024 px"


def test_float_check_bounds_name_the_unit() -> None:
    assert Declared.apix.check(0.05) == "0.05 is below the minimum 0.1 Å"
    assert Declared.apix.check(12.5) == "12.5 is above the maximum 10.0 Å"
    assert Declared.apix.check(0.1) is None
    assert Declared.apix.check(10) is None


def test_bound_messages_without_unit() -> None:
    assert Declared.ratio.check(-1.0) == "-1.0 is below the minimum 0.0"
    assert Declared.ratio.check(1e9) is None  # no maximum


@pytest.mark.parametrize("value", ["64", None, [64], True, False])
def test_int_check_rejects_non_numbers(value) -> None:
    problem = Declared.box.check(value)
    assert problem is not None
    assert "expected int" in problem


def test_int_check_rejects_fractions() -> None:
    assert Declared.box.check(64.5) == "expected an integer, got 64.5"


def test_float_check_rejects_bool_and_text() -> None:
    assert Declared.apix.check(True) == "expected float, got bool True"
    assert Declared.apix.check("1.0") == "expected float, got str '1.0'"


def test_int_parse() -> None:
    assert Declared.box.parse("128") == 128
    assert isinstance(Declared.box.parse("128"), int)
    assert Declared.box.parse("1e3") == 1000
    assert Declared.box.parse(" 7 ") == 7
    assert Declared.box.parse("-3") == -3


@pytest.mark.parametrize("text", ["abc", "", "12px", "nan"])
def test_int_parse_rejects_text(text) -> None:
    with pytest.raises(ValueError, match=r"parameter 'box'.*is not an integer"):
        Declared.box.parse(text)


@pytest.mark.parametrize("text", ["3.5", "inf", "-inf", "1e-3"])
def test_int_parse_rejects_non_integers(text) -> None:
    # "3.5" used to be truncated to 3 silently and "inf" raised OverflowError
    with pytest.raises(ValueError, match=r"parameter 'box'.*is not an integer"):
        Declared.box.parse(text)


def test_float_parse() -> None:
    assert Declared.apix.parse("1.5") == 1.5
    assert isinstance(Declared.apix.parse("2"), float)
    assert Declared.apix.parse("1e-3") == 0.001
    with pytest.raises(ValueError, match=r"parameter 'apix'.*is not a number"):
        Declared.apix.parse("one")


def test_number_describe_has_bounds() -> None:
    described = Declared.apix.describe()
    assert (described["kind"], described["min"], described["max"]) == ("float", 0.1, 10.0)
    assert described["unit"] == "Å"


# -- bool, str, choice --------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "true", "True", "YES", "on", " yes "])
def test_bool_parse_true(text) -> None:
    assert Declared.flag.parse(text) is True


@pytest.mark.parametrize("text", ["0", "false", "FALSE", "no", "off"])
def test_bool_parse_false(text) -> None:
    assert Declared.flag.parse(text) is False


@pytest.mark.parametrize("text", ["", "maybe", "2", "y"])
def test_bool_parse_rejects(text) -> None:
    with pytest.raises(ValueError, match=r"parameter 'flag'.*true/false"):
        Declared.flag.parse(text)


def test_bool_check() -> None:
    assert Declared.flag.check(True) is None
    assert Declared.flag.check(False) is None
    assert Declared.flag.check(1) == "expected true or false, got 1"
    assert Declared.flag.check("true") is not None


def test_str_param() -> None:
    assert Declared.title.check("hello") is None
    assert Declared.title.check(3) == "expected text, got int"
    assert Declared.title.parse("a b") == "a b"
    assert Declared.title.describe()["multiline"] is True
    assert StrParam().describe()["multiline"] is False


def test_choice_check() -> None:
    assert Declared.mode.check("random") is None
    assert Declared.mode.check(3) is None
    problem = Declared.mode.check("other")
    assert problem == "'other' is not one of ['random', 'sorted', 3]"


def test_choice_parse_returns_the_choice_itself() -> None:
    assert Declared.mode.parse("sorted") == "sorted"
    assert Declared.mode.parse("3") == 3  # the int choice, not the text
    with pytest.raises(ValueError, match=r"parameter 'mode'.*'4' is not one of"):
        Declared.mode.parse("4")


def test_choice_describe() -> None:
    assert Declared.mode.describe()["choices"] == ["random", "sorted", 3]
    assert Declared.mode.describe()["kind"] == "choice"


# -- paths --------------------------------------------------------------------------------


def test_path_existing_and_missing(tmp_path: Path) -> None:
    existing = tmp_path / "movie_001.tif"
    existing.write_text("x")
    param = PathParam()
    assert param.check(str(existing)) is None
    assert param.check(str(tmp_path)) is None  # folders too
    missing = str(tmp_path / "nope.tif")
    assert param.check(missing) == f"{missing!r} does not exist"


def test_path_not_required_to_exist(tmp_path: Path) -> None:
    assert Declared.output_dir.check(str(tmp_path / "later")) is None


@pytest.mark.parametrize("value", ["", None, 3, Path("/tmp")])
def test_path_rejects_non_text(value) -> None:
    assert PathParam().check(value) == f"expected a path, got {value!r}"


def test_path_glob_pattern(tmp_path: Path) -> None:
    for index in range(3):
        (tmp_path / f"movie_{index:03d}.tif").write_text("x")
    assert Declared.movies.check(str(tmp_path / "movie_*.tif")) is None
    assert Declared.movies.check(str(tmp_path / "movie_00[0-2].tif")) is None
    pattern = str(tmp_path / "*.mrc")
    assert Declared.movies.check(pattern) == f"no file matches {pattern!r}"
    # a plain path with pattern=True is checked for existence
    plain = str(tmp_path / "movie_009.tif")
    assert Declared.movies.check(plain) == f"{plain!r} does not exist"


def test_path_glob_without_pattern_flag_is_literal(tmp_path: Path) -> None:
    (tmp_path / "a.tif").write_text("x")
    # without pattern=True the star is part of the file name, which does not exist
    assert PathParam().check(str(tmp_path / "*.tif")) is not None


def test_path_pattern_not_required_to_exist(tmp_path: Path) -> None:
    param = PathParam(pattern=True, must_exist=False)
    assert param.check(str(tmp_path / "*.nothing")) is None


def test_path_expands_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data.star").write_text("x")
    assert PathParam().check("~/data.star") is None
    assert PathParam().check("~/other.star") is not None


def test_path_describe() -> None:
    described = Declared.movies.describe()
    assert (described["must_exist"], described["pattern"]) == (True, True)
    described = Declared.output_dir.describe()
    assert (described["must_exist"], described["pattern"]) == (False, False)


# -- ranges -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [[2.0, 10.0], (0, 50), [5, 5]])
def test_range_check_accepts(value) -> None:
    assert Declared.resolution.check(value) is None


def test_range_low_above_high() -> None:
    assert Declared.resolution.check([10.0, 2.0]) == "low 10.0 is above high 2.0"


def test_range_bounds_and_shape() -> None:
    assert Declared.resolution.check([-1.0, 5.0]) == "-1.0 is below the minimum 0.0 Å"
    assert Declared.resolution.check([1.0, 60.0]) == "60.0 is above the maximum 50.0 Å"
    assert Declared.resolution.check([1.0]) == "expected [low, high], got [1.0]"
    assert Declared.resolution.check([1, 2, 3]) is not None
    assert Declared.resolution.check("1,2") is not None
    assert Declared.resolution.check([1.0, "2"]) is not None


@pytest.mark.parametrize("text", ["2,10", "2 10", "2:10", " 2 , 10 ", "2.0,1e1"])
def test_range_parse(text) -> None:
    # RangeParam.parse used zero-argument super() inside a list comprehension, which fails
    # with a TypeError before Python 3.12
    parsed = Declared.resolution.parse(text)
    assert parsed == [2.0, 10.0]
    assert all(isinstance(v, float) for v in parsed)


@pytest.mark.parametrize("text", ["2", "1,2,3", "", "a,b"])
def test_range_parse_rejects(text) -> None:
    with pytest.raises(ValueError, match="parameter 'resolution'"):
        Declared.resolution.parse(text)


def test_range_describe() -> None:
    described = Declared.resolution.describe()
    assert described["kind"] == "range"
    assert described["default"] == [2.0, 10.0]
    assert (described["min"], described["max"]) == (0.0, 50.0)


# -- lists --------------------------------------------------------------------------------


def test_list_check() -> None:
    assert Declared.classes.check([1, 2]) is None
    assert Declared.classes.check((0,)) is None
    assert Declared.classes.check([]) == "needs at least 1 item(s), got 0"
    assert Declared.classes.check([1, 2, 3, 4]) == "takes at most 3 item(s), got 4"
    assert Declared.classes.check([1, -2]) == "item 1: -2 is below the minimum 0"
    assert Declared.classes.check([1, "x"]) == "item 1: expected int, got str 'x'"
    assert Declared.classes.check("1,2") == "expected a list, got str"


def test_list_without_bounds() -> None:
    assert Declared.names.check([]) is None
    assert Declared.names.check(["a"] * 100) is None
    assert Declared.names.check(["a", 3]) == "item 1: expected text, got int"


def test_list_parse() -> None:
    assert Declared.classes.parse("1,2, 3") == [1, 2, 3]
    assert Declared.classes.parse("1,,2,") == [1, 2]
    assert Declared.classes.parse("[4, 5]") == [4, 5]
    assert Declared.classes.parse("") == []
    assert Declared.names.parse("a, b") == ["a", "b"]
    with pytest.raises(ValueError, match=r"parameter 'classes\[\]'"):
        Declared.classes.parse("1,x")


def test_list_parse_strips_items_before_parsing_them() -> None:
    # the spaces after the commas used to reach the item: " sorted" is not a choice
    choices = ListParam(ChoiceParam(["random", "sorted"]))
    assert choices.parse("random, sorted") == ["random", "sorted"]
    flags = ListParam(BoolParam())
    assert flags.parse("yes, no") == [True, False]


def test_list_parse_malformed_json() -> None:
    with pytest.raises(ValueError):
        Declared.classes.parse("[1, 2")


def test_list_item_gets_a_name() -> None:
    assert Declared.classes.item.name == "classes[]"


def test_list_describe() -> None:
    described = Declared.classes.describe()
    assert described["kind"] == "list"
    assert (described["min_items"], described["max_items"]) == (1, 3)
    assert described["item"]["kind"] == "int"
    assert described["item"]["min"] == 0
    assert described["item"]["name"] == "classes[]"


# -- inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3.particles", True),
        ("12.micrographs_ctf", True),
        ("0.x", True),
        ("particles", False),
        ("a.particles", False),
        ("3.", False),
        (".particles", False),
        ("3.par ticles", False),
        ("3.1particles", False),
        ("3.particles.more", False),
        ("-3.particles", False),
        ("", False),
    ],
)
def test_is_reference(text, expected) -> None:
    assert is_reference(text) is expected


def test_split_reference() -> None:
    assert split_reference("12.particles") == (12, "particles")


def test_input_single() -> None:
    assert Declared.source.check("3.particles") is None
    assert Declared.source.check(["3.particles"]) == "takes one output, got a list"
    assert Declared.source.check("particles") == (
        "expected an output such as '3.particles', got 'particles'"
    )
    assert Declared.source.check(3) is not None
    assert Declared.source.parse(" 4.out ") == "4.out"
    assert Declared.source.parse("4.out, 5.out") == "4.out"
    assert Declared.source.parse("") == ""


def test_input_multiple() -> None:
    assert Declared.sources.check(["1.a", "2.b"]) is None
    assert Declared.sources.check("1.a") == "expected a list of outputs"
    assert Declared.sources.check([]) == "needs at least one output"
    assert Declared.sources.check(["1.a", "b"]) == (
        "expected an output such as '3.particles', got 'b'"
    )
    assert Declared.optional_sources.check([]) is None
    assert Declared.sources.parse("1.a, 2.b,,") == ["1.a", "2.b"]
    assert Declared.sources.parse("") == []


def test_input_types_and_accepts() -> None:
    assert Declared.source.types == ["ParamTestSet"]
    assert Declared.sources.types == ["ParamTestSet", "Set"]
    assert Declared.source.accepts(["ParamTestSet", "Set"]) is True
    assert Declared.source.accepts(ParamTestSet.type_chain()) is True
    assert Declared.source.accepts(["Set"]) is False
    assert Declared.optional_sources.accepts(ParamTestSet.type_chain()) is True  # a subtype


def test_input_describe() -> None:
    described = Declared.sources.describe()
    assert described["kind"] == "input"
    assert described["types"] == ["ParamTestSet", "Set"]
    assert described["multiple"] is True


# -- conditions ---------------------------------------------------------------------------


def test_when_builds_data() -> None:
    assert (when("mode") == "x").to_json() == {"param": "mode", "op": "==", "value": "x"}
    assert (when("mode") != "x").to_json() == {"param": "mode", "op": "!=", "value": "x"}
    assert (when("n") < 3).to_json()["op"] == "<"
    assert (when("n") <= 3).to_json()["op"] == "<="
    assert (when("n") > 3).to_json()["op"] == ">"
    assert (when("n") >= 3).to_json()["op"] == ">="
    assert when("n").is_in((1, 2)).to_json() == {"param": "n", "op": "in", "value": [1, 2]}
    assert when("n").is_set().to_json() == {"param": "n", "op": "truthy"}


def test_when_is_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(when("mode"))


@pytest.mark.parametrize(
    ("condition", "values", "expected"),
    [
        (when("mode") == "x", {"mode": "x"}, True),
        (when("mode") == "x", {"mode": "y"}, False),
        (when("mode") == "x", {}, False),
        (when("mode") != "x", {"mode": "y"}, True),
        (when("n") < 3, {"n": 2}, True),
        (when("n") < 3, {"n": 3}, False),
        (when("n") <= 3, {"n": 3}, True),
        (when("n") > 3, {"n": 4}, True),
        (when("n") >= 3, {"n": 2}, False),
        (when("n") < 3, {}, False),  # None < 3 is a TypeError: false, not an exception
        (when("n") < 3, {"n": "a"}, False),
        (when("n").is_in([1, 2]), {"n": 2}, True),
        (when("n").is_in([1, 2]), {"n": 5}, False),
        (when("n").is_set(), {"n": "x"}, True),
        (when("n").is_set(), {"n": ""}, False),
        (when("n").is_set(), {"n": 0}, False),
        (when("n").is_set(), {}, False),
    ],
)
def test_evaluate(condition: Condition, values, expected) -> None:
    assert condition.evaluate(values) is expected


def test_combinations() -> None:
    both = (when("mode") == "x") & (when("n") > 3)
    either = (when("mode") == "x") | (when("n") > 3)
    negated = ~(when("mode") == "x")
    assert both.to_json() == {
        "all": [{"param": "mode", "op": "==", "value": "x"}, {"param": "n", "op": ">", "value": 3}]
    }
    assert either.to_json()["any"][1] == {"param": "n", "op": ">", "value": 3}
    assert negated.to_json() == {"not": {"param": "mode", "op": "==", "value": "x"}}
    table = [
        ({"mode": "x", "n": 4}, True, True, False),
        ({"mode": "x", "n": 1}, False, True, False),
        ({"mode": "y", "n": 4}, False, True, True),
        ({"mode": "y", "n": 1}, False, False, True),
    ]
    for values, all_, any_, not_ in table:
        assert both.evaluate(values) is all_
        assert either.evaluate(values) is any_
        assert negated.evaluate(values) is not_


def test_nested_combinations_and_params() -> None:
    nested = ~((when("a") == 1) & ((when("b").is_in([1, 2])) | when("c").is_set()))
    assert nested.params() == {"a", "b", "c"}
    assert nested.evaluate({"a": 1, "b": 2}) is False
    assert nested.evaluate({"a": 1, "b": 3}) is True
    assert nested.evaluate({"a": 1, "b": 3, "c": "yes"}) is False
    assert nested.evaluate({"a": 2, "b": 2}) is True


def test_json_round_trip() -> None:
    condition = ((when("mode") == "sorted") | (when("n") >= 2.5)) & ~when("tags").is_in(["a"])
    text = json.dumps(condition.to_json())
    rebuilt = Condition.from_json(json.loads(text))
    assert rebuilt == condition
    assert rebuilt.params() == {"mode", "n", "tags"}
    for values in ({"mode": "sorted", "tags": "b"}, {"n": 3, "tags": "a"}, {}, {"n": 1}):
        assert rebuilt.evaluate(values) is condition.evaluate(values)


def test_from_json_keeps_valid_data() -> None:
    data = {"any": [{"param": "a", "op": "truthy"}, {"param": "b", "op": "not in", "value": [1]}]}
    assert Condition.from_json(data).to_json() == data
    assert Condition.from_json({"all": []}).evaluate({}) is True


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"param": "a"},
        {"param": "a", "op": "~=", "value": 1},
        {"param": 3, "op": "==", "value": 1},
        {"op": "==", "value": 1},
        {"param": "a", "op": "=="},  # no value to compare with
        {"all": [{"param": "a", "op": "bad", "value": 1}]},
        {"any": [{"param": "a", "op": "==", "value": 1}, {"nonsense": True}]},
        {"not": {"param": "a"}},
        {"all": ["a"]},
        {"all": "a"},
        {"any": 3},
        {"not": 5},
        {"not": [1]},
        [{"param": "a", "op": "==", "value": 1}],
        "a == 1",
    ],
)
def test_from_json_malformed(data) -> None:
    with pytest.raises(ValueError, match="malformed condition"):
        Condition.from_json(data)


# -- issues -------------------------------------------------------------------------------


def test_issue_names_the_parameter() -> None:
    issue = Issue("box", "8 is below the minimum 16 px")
    assert str(issue) == "parameter 'box': 8 is below the minimum 16 px"
    assert issue.severity == "error"
    assert issue.to_json() == {
        "param": "box",
        "message": "8 is below the minimum 16 px",
        "severity": "error",
    }


def test_issue_without_parameter() -> None:
    assert str(Issue("", "inputs do not fit", "warning")) == "inputs do not fit"
    assert Issue("", "x", "warning").to_json()["severity"] == "warning"


def test_parameter_error_lists_issues() -> None:
    error = ParameterError([Issue("box", "too small"), Issue("apix", "too big")])
    assert str(error) == "parameter 'box': too small; parameter 'apix': too big"
    assert [i.param for i in error.issues] == ["box", "apix"]
    assert isinstance(error, ValueError)
    assert str(ParameterError([])) == "invalid parameters"


def test_nan_is_refused_by_number_parameters() -> None:
    from cryolab.core.params import FloatParam

    param = FloatParam(default=1.0, min=0, max=10)
    assert param.check(float("nan")) == "NaN is not a valid value"
