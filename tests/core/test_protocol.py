"""Protocol declarations: parameters, validation, outputs, plan, description, citations."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cryolab.core.errors import ParameterError
from cryolab.core.params import ChoiceParam, FloatParam, InputParam, IntParam, StrParam, when
from cryolab.core.protocol import CRYOLAB_BIBTEX, Output, Protocol, Step
from cryolab.core.sets import Set


class Demo(Protocol):
    """Cuts a set."""

    name = "demo.cut"
    source = InputParam(Set, label="Input")
    mode = ChoiceParam(["threshold", "top"], default="threshold", section="Selection")
    threshold = FloatParam(
        default=0.5, min=0, max=1, unit="Å", condition=when("mode") == "threshold"
    )
    count = IntParam(default=None, min=1, condition=when("mode") == "top")
    note = StrParam(default="", required=False, expert=1)
    outputs = {"kept": Output(like="source")}
    citations = (
        CRYOLAB_BIBTEX,
        "@article{scheres2012, title={RELION}, author={Scheres, S.}, year={2012}}",
    )

    def check(self) -> list:  # type: ignore[type-arg]
        from cryolab.core.params import Issue

        if self.values["note"] == "forbidden":
            return [Issue("note", "this note is not allowed")]
        return []

    def plan(self) -> Iterator[Step]:
        yield Step("a", "work", {"x": 1})
        yield Step("b", "work", {"x": 2}, deps=("a",), threads=2)


def test_parameters_in_declaration_order_with_defaults() -> None:
    assert list(Demo.params()) == ["source", "mode", "threshold", "count", "note"]
    assert list(Demo.inputs()) == ["source"]
    protocol = Demo({"source": "1.rows"})
    assert protocol.values["threshold"] == 0.5 and protocol.values["mode"] == "threshold"


def test_unknown_parameters_are_refused_by_name() -> None:
    with pytest.raises(ParameterError, match=r"'thresold': demo\.cut has no such parameter"):
        Demo({"thresold": 1})


def test_validation_follows_conditions() -> None:
    assert Demo({"source": "1.rows"}).validate() == []
    # count only applies in "top" mode, where it is required
    issues = Demo({"source": "1.rows", "mode": "top"}).validate()
    assert [str(i) for i in issues] == ["parameter 'count': a value is required"]
    issues = Demo({"source": "1.rows", "threshold": 3.0}).validate()
    assert [str(i) for i in issues] == ["parameter 'threshold': 3.0 is above the maximum 1 Å"]
    assert Demo({"source": "1.rows", "mode": "top", "threshold": 3.0, "count": 2}).validate() == []
    assert [str(i) for i in Demo({}).validate()] == ["parameter 'source': a value is required"]


def test_protocol_checks_run_after_each_value_is_valid() -> None:
    issues = Demo({"source": "1.rows", "note": "forbidden"}).validate()
    assert [i.to_json() for i in issues] == [
        {"param": "note", "message": "this note is not allowed", "severity": "error"}
    ]


def test_describe_is_json_for_forms() -> None:
    described = json.loads(json.dumps(Demo.describe()))
    assert described["name"] == "demo.cut" and described["help"] == "Cuts a set."
    threshold = next(p for p in described["params"] if p["name"] == "threshold")
    assert threshold["unit"] == "Å" and threshold["min"] == 0 and threshold["max"] == 1
    assert threshold["condition"] == {"param": "mode", "op": "==", "value": "threshold"}
    assert next(p for p in described["params"] if p["name"] == "note")["expert"] == 1
    assert described["outputs"] == {"kept": {"type": None, "like": "source", "help": ""}}


def test_plan_is_serialisable_steps() -> None:
    steps = list(Demo({"source": "1.rows"}).plan())
    round_trip = [Step.from_json(json.loads(json.dumps(s.to_json()))) for s in steps]
    assert round_trip == steps
    assert steps[1].deps == ("a",) and steps[1].threads == 2


def test_summary_methods_and_citations() -> None:
    protocol = Demo({"source": "1.rows"})
    assert protocol.summary({"kept": 12}) == "demo.cut: kept: 12 items"
    assert "demo.cut" in protocol.methods()
    text = Demo.bibtex()
    assert text.startswith("@software{cryolab,") and "@article{scheres2012" in text
    assert Demo.citation_keys() == ["cryolab", "scheres2012"]


def test_a_malformed_citation_is_reported() -> None:
    class Broken(Demo):
        citations = ("Scheres 2012, RELION",)

    with pytest.raises(ValueError, match="not a BibTeX entry"):
        Broken.bibtex()


def test_builtin_protocols_declare_valid_citations_and_outputs() -> None:
    from cryolab.core.plugins import registry

    builtin = [n for n, e in registry.protocols().items() if e.plugin == "builtin"]
    assert {"sets.subset", "sets.merge", "sets.split", "sets.join"} <= set(builtin)
    for name in builtin:
        cls = registry.get(name)
        assert cls.bibtex().startswith("@"), name
        assert cls.__doc__, f"{name} has no help text"
