"""Protocol forms, tested without a kernel: browser edits and clicks are simulated as comm
messages (DummyComm), and runs are real runs of a project in a temporary folder."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cryolab
from cryolab.core.errors import ParameterError
from cryolab.core.plugins import registry
from cryolab.core.project import Project
from cryolab.ui.form import ProtocolForm, form


def browser_update(widget: ProtocolForm, **state: Any) -> None:
    """The browser sets synced traits (``model.set`` + ``save_changes``)."""
    data = {"method": "update", "state": state, "buffer_paths": []}
    widget._handle_msg({"content": {"data": data}, "buffers": []})


def browser_send(widget: ProtocolForm, **content: Any) -> None:
    """The browser sends a custom message (``model.send``)."""
    data = {"method": "custom", "content": content}
    widget._handle_msg({"content": {"data": data}, "buffers": []})


def edit(widget: ProtocolForm, name: str, value: Any) -> None:
    browser_send(widget, action="edit", name=name, value=value)


def field(widget: ProtocolForm, name: str) -> dict[str, Any]:
    return next(f for f in widget.fields if f["name"] == name)


def issue(widget: ProtocolForm, name: str) -> str:
    return next((i["message"] for i in widget.issues if i["param"] == name), "")


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "table.csv"
    path.write_text("value\n1\n2\n3\n")
    return path


def test_import_cryolab_stays_free_of_widgets() -> None:
    code = "import sys, cryolab; assert 'ipywidgets' not in sys.modules and cryolab.form"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert cryolab.form is form


def test_front_end_module_and_styles_are_synced(project: Project) -> None:
    state = form("sets.import_table", project).get_state()
    assert "export default" in state["_esm"] and "render" in state["_esm"]
    assert ".cryolab-form" in state["_css"]


def test_fields_come_from_the_protocol_with_sections_units_and_expert_toggle(
    project: Project,
) -> None:
    widget = form("simulate.spa", project)
    assert widget.spec["name"] == "simulate.spa"
    assert widget.spec["sections"][0] == "Parameters" and len(widget.spec["sections"]) == 2
    voltage = field(widget, "voltage")
    assert voltage["unit"] == "kV" and voltage["section"] == widget.spec["sections"][1]
    assert voltage["editor"] == "number" and voltage["text"] == "300"
    assert field(widget, "defocus")["text"] == "10000, 25000"
    assert field(widget, "contamination")["checked"] is True
    assert field(widget, "shape")["choices"][field(widget, "shape")["index"]] == "elongated"
    assert field(widget, "snr")["help"].startswith("Per-frame SNR")
    assert not field(widget, "bfactor")["shown"] and field(widget, "bfactor")["applies"]
    browser_update(widget, expert=True)
    assert field(widget, "bfactor")["shown"] and field(widget, "noise")["shown"]
    browser_update(widget, expert=False)
    assert not field(widget, "bfactor")["shown"]
    # text is read by the parameter's own parser, as on the command line
    edit(widget, "defocus", "12000 : 20000")
    assert widget.values["defocus"] == [12000.0, 20000.0] and not widget.issues


def test_a_condition_hides_and_shows_fields_as_the_user_edits(project: Project) -> None:
    widget = form("sets.subset", project)
    assert field(widget, "where")["shown"] and not field(widget, "uids_from")["shown"]
    choices = field(widget, "mode")["choices"]
    edit(widget, "mode", choices.index("uids"))
    assert widget.values["mode"] == "uids"
    assert not field(widget, "where")["shown"] and field(widget, "uids_from")["shown"]
    assert issue(widget, "uids_from") == "a value is required" and not issue(widget, "where")


def test_input_pickers_list_only_compatible_outputs_with_counts(
    project: Project, table: Path
) -> None:
    rows = project.run("sets.import_table", files=str(table)).wait(60)
    ctfs = project.save(
        "external.job", program="x", job="ctf", output_names=["ctfs"], output_types=["SetOfCTFs"]
    )
    consensus = form("consensus.ctf", project)
    assert [o["ref"] for o in field(consensus, "ctfs")["options"]] == [str(ctfs.out.ctfs)]
    assert field(consensus, "ctfs")["options"][0]["status"] == "saved"
    subset = form("sets.subset", project)
    options = field(subset, "source")["options"]
    assert [o["ref"] for o in options] == [str(ctfs.out.ctfs), str(rows.out.rows)]
    assert options[1]["count"] == 3 and "3 items" in options[1]["label"]
    edit(subset, "source", str(rows.out.rows))
    assert field(subset, "source")["selected"] == [str(rows.out.rows)]
    assert not issue(subset, "source")
    # an output that is not compatible is refused by the engine's own check
    edit(consensus, "ctfs", str(rows.out.rows))
    assert "this input takes ['SetOfCTFs']" in issue(consensus, "ctfs")
    # outputs of runs created later are listed after a refresh
    later = project.save("sets.subset", source=rows.out.rows, where="value > 1")
    browser_send(subset, action="refresh")
    assert field(subset, "source")["options"][0]["ref"] == str(later.out.subset)
    assert field(subset, "source")["options"][0]["status"] == "saved"


def test_an_invalid_value_shows_the_engines_message_and_run_is_refused(
    project: Project, tmp_path: Path
) -> None:
    widget = form("test.count", project)
    edit(widget, "steps", "0")
    with pytest.raises(ParameterError) as refused:
        project.validate(registry.get("test.count"), {"steps": 0})
    assert issue(widget, "steps") == refused.value.issues[0].message
    assert not widget.actions["run"]["enabled"] and not widget.actions["schedule"]["enabled"]
    edit(widget, "steps", "many")
    assert issue(widget, "steps") == "'many' is not an integer"
    browser_send(widget, action="run")
    assert project.runs() == [] and widget.message.startswith("not launched:")
    assert widget.run_state == {}
    missing = form("sets.import_table", project, {"files": str(tmp_path / "none*.csv")})
    assert issue(missing, "files") == f"no file matches {str(tmp_path / 'none*.csv')!r}"
    assert missing.schedule() is None and project.runs() == []


def test_run_launches_a_real_run_and_follows_it_to_finished(
    project: Project, table: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    widget = form("sets.import_table", project)
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(widget.comm, "send", lambda data=None, **kw: sent.append(data))
    edit(widget, "files", str(table))
    browser_update(widget, run_label="my table")
    assert widget.actions["run"]["enabled"]
    browser_send(widget, action="run")
    (run,) = project.runs()
    assert run.label == "my table" and widget.current_run is not None
    assert widget.run_state["id"] == run.id and widget.message == f"run {run.id} launched"
    wait_for(lambda: widget.run_state["status"] == "finished")
    state = widget.run_state
    assert state["done"] == state["total"] == 1 and state["ended"]
    assert "imported 3 rows" in state["log"] and state["outputs"][0]["count"] == 3
    pushed = [d["state"]["run_state"] for d in sent if "run_state" in d.get("state", {})]
    assert pushed[-1]["status"] == "finished"
    # a second click does not launch again; "Edit a copy" does
    browser_send(widget, action="run")
    assert len(project.runs()) == 1
    browser_send(widget, action="copy")
    assert widget.run_state == {} and widget.current_run is None
    browser_send(widget, action="run")
    assert len(project.runs()) == 2
    widget.close()


def test_schedule_launches_a_run_that_waits_for_its_inputs(project: Project) -> None:
    upstream = project.save("test.count", steps=3)
    widget = form("test.sum", project, {"source": upstream.out.numbers})
    assert not widget.issues and not widget.actions["run"]["enabled"]
    assert "1.numbers has not finished" in widget.actions["run"]["reason"]
    browser_send(widget, action="run")
    assert len(project.runs()) == 1 and "schedule the run" in widget.message
    browser_send(widget, action="schedule")
    scheduled = widget.current_run
    assert scheduled is not None and widget.message == f"run {scheduled.id} scheduled"
    wait_for(lambda: widget.run_state["status"] == "scheduled")
    upstream.launch()
    wait_for(lambda: widget.run_state["status"] == "finished")
    assert scheduled.out.total.load()["value"].tolist() == [sum(range(30))]


def test_run_form_is_a_prefilled_copy(project: Project, table: Path) -> None:
    rows = project.run("sets.import_table", files=str(table)).wait(60)
    original = project.run(
        "sets.subset", label="big", source=rows.out.rows, where="value > 1"
    ).wait(60)
    copy = original.form()
    assert isinstance(copy, ProtocolForm)
    assert copy.values == original.params and copy.run_label == "big"
    assert field(copy, "where")["text"] == "value > 1"
    assert field(copy, "source")["selected"] == [str(rows.out.rows)]
    edit(copy, "where", "value > 2")
    new = copy.launch()
    assert new is not None and new.id != original.id
    assert new.wait(60).params["where"] == "value > 2"
    assert original.params["where"] == "value > 1"
    assert len(new.out.subset) == 1


def test_a_hidden_input_adds_no_edge(project: Project, table: Path) -> None:
    rows = project.run("sets.import_table", files=str(table)).wait(60)
    widget = form("sets.subset", project, {"source": rows.out.rows, "where": "value > 0"})
    choices = field(widget, "mode")["choices"]
    edit(widget, "mode", choices.index("uids"))
    widget.set(uids_from=rows.out.rows)  # an output handle, from Python
    edit(widget, "mode", choices.index("condition"))
    assert widget.values["uids_from"] == str(rows.out.rows)
    run = widget.launch()
    assert run is not None and run.params["uids_from"] is None
    edges = project.run_graph()["edges"]
    assert [e["param"] for e in edges if e["target"] == run.id] == ["source"]
