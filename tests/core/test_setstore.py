"""Set folders: segments, manifest, schema conformance, streaming readers, compaction."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cryolab.core import setstore
from cryolab.core.errors import SetError
from cryolab.core.sets import Set
from cryolab.core.setstore import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SetReader,
    SetWriter,
    read_manifest,
    read_set,
)


def segment_files(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("seg-*.arrow")}


def temporary_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def batch(start: int, count: int, **extra) -> dict[str, np.ndarray]:
    return {"n": np.arange(start, start + count, dtype=np.int64), **extra}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "set"


# -- create and open ----------------------------------------------------------------------


def test_create_writes_an_empty_open_manifest(folder: Path) -> None:
    SetWriter.create(folder, ["Particles", "Set"], properties={"apix": 1.0})
    manifest = read_manifest(folder)
    assert manifest == {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "types": ["Particles", "Set"],
        "state": "open",
        "properties": {"apix": 1.0},
        "segments": [],
        "rows": 0,
        "schema_fields": None,
    }
    assert temporary_files(folder) == []


def test_create_makes_parent_folders(tmp_path: Path) -> None:
    SetWriter.create(tmp_path / "a" / "b" / "set", ["Set"], state="closed")
    assert read_manifest(tmp_path / "a" / "b" / "set")["state"] == "closed"


def test_create_twice(folder: Path) -> None:
    first = SetWriter.create(folder, ["Set"])
    first.append(batch(0, 3))
    with pytest.raises(SetError, match="already exists"):
        SetWriter.create(folder, ["Set"])
    again = SetWriter.create(folder, ["Other"], exist_ok=True)
    assert again.path == folder
    assert read_manifest(folder)["types"] == ["Set"]  # untouched
    assert again.append(batch(3, 2)) == 5


def test_open_existing_and_missing(folder: Path, tmp_path: Path) -> None:
    SetWriter.create(folder, ["Set"])
    writer = SetWriter.open(folder)
    assert writer.append(batch(0, 4)) == 4
    with pytest.raises(SetError, match="not a set folder"):
        SetWriter.open(tmp_path / "nothing")


# -- append, close, reopen ----------------------------------------------------------------


def test_append_returns_rows_and_records_segments(folder: Path) -> None:
    writer = SetWriter.create(folder, ["Set"])
    assert writer.append(batch(0, 3), step="a") == 3
    assert writer.append(batch(3, 4)) == 7
    manifest = read_manifest(folder)
    assert manifest["rows"] == 7
    assert [(s["rows"], s["step"]) for s in manifest["segments"]] == [(3, "a"), (4, None)]
    assert {s["file"] for s in manifest["segments"]} == segment_files(folder)
    assert manifest["schema_fields"] is not None
    assert temporary_files(folder) == []
    s = read_set(folder)
    assert s.column("n").tolist() == list(range(7))
    assert s.state == "open"
    assert len(np.unique(s.uids)) == 7


def test_count_history_follows_appends_and_discards(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = SetWriter.create(folder, ["Set"])
    assert setstore.count_history(folder) == []
    clock = iter([100.0, 101.5, 103.0])
    monkeypatch.setattr(setstore.time, "time", lambda: next(clock))
    writer.append(batch(0, 3), step="a")
    writer.append(batch(3, 4), step="b")
    writer.discard_steps(["a"])
    assert setstore.count_history(folder) == [(100.0, 3), (101.5, 7), (103.0, 4)]


def test_count_history_is_thinned_but_keeps_the_latest(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(setstore, "HISTORY_POINTS", 8)
    writer = SetWriter.create(folder, ["Set"])
    for start in range(20):
        writer.append(batch(start, 1))
    history = setstore.count_history(folder)
    assert len(history) <= 8 and history[-1][1] == 20
    assert [n for _, n in history] == sorted(n for _, n in history)


def test_append_keeps_given_uids(folder: Path) -> None:
    source = Set({"n": [1, 2, 3]})
    writer = SetWriter.create(folder, ["Set"])
    writer.append(source)
    writer.append(pa.table({"n": [4], "uid": pa.array([42], pa.uint64())}))
    np.testing.assert_array_equal(read_set(folder).uids, [*source.uids.tolist(), 42])


def test_close_and_append_to_closed(folder: Path) -> None:
    writer = SetWriter.create(folder, ["Set"])
    writer.append(batch(0, 2))
    writer.close()
    assert read_manifest(folder)["state"] == "closed"
    before = segment_files(folder)
    with pytest.raises(SetError, match=f"{folder}.*closed"):
        writer.append(batch(2, 2))
    with pytest.raises(SetError, match="closed"):
        SetWriter.open(folder).append(batch(2, 2))
    assert segment_files(folder) == before
    assert read_manifest(folder)["rows"] == 2
    assert read_set(folder).state == "closed"


def test_closed_while_a_batch_was_written(folder: Path, monkeypatch) -> None:
    writer = SetWriter.create(folder, ["Set"])
    writer.append(batch(0, 2))
    real = setstore._read_manifest
    calls: list[int] = []

    def close_behind_the_writers_back(path: Path):
        manifest = real(path)
        if not calls:  # the writer's first look still sees an open set
            calls.append(1)
            setstore._write_json_atomically(path / MANIFEST, dict(manifest, state="closed"))
        return manifest

    monkeypatch.setattr(setstore, "_read_manifest", close_behind_the_writers_back)
    before = segment_files(folder)
    with pytest.raises(SetError, match="closed while a batch was written"):
        writer.append(batch(2, 2))
    assert segment_files(folder) == before  # the batch's segment is removed again
    assert real(folder)["rows"] == 2


def test_reopen(folder: Path) -> None:
    writer = SetWriter.create(folder, ["Set"], state="closed")
    with pytest.raises(SetError):
        writer.append(batch(0, 1))
    writer.reopen()
    assert read_manifest(folder)["state"] == "open"
    assert writer.append(batch(0, 1)) == 1
    writer.close()
    writer.reopen()
    assert writer.append(batch(1, 1)) == 2
    assert read_set(folder).column("n").tolist() == [0, 1]


def test_update_properties(folder: Path) -> None:
    writer = SetWriter.create(folder, ["Set"], properties={"apix": 1.0, "keep": "me"})
    writer.update_properties(apix=1.5, voltage=300)
    assert read_manifest(folder)["properties"] == {"apix": 1.5, "keep": "me", "voltage": 300}
    writer.append(batch(0, 1))
    writer.close()
    writer.update_properties(done=True)  # allowed on a closed set
    assert read_set(folder).properties == {"apix": 1.5, "keep": "me", "voltage": 300, "done": True}
    with pytest.raises(SetError, match="must be JSON data"):
        writer.update_properties(bad=object())
    assert "bad" not in read_manifest(folder)["properties"]


# -- schema conformance -------------------------------------------------------------------


@pytest.fixture
def typed(folder: Path) -> SetWriter:
    writer = SetWriter.create(folder, ["Set"])
    writer.append(
        {"n": np.array([1, 2], dtype=np.int64), "name": ["a", "b"], "x": np.array([0.5, 1.5])}
    )
    return writer


def test_missing_column_is_named(typed: SetWriter, folder: Path) -> None:
    with pytest.raises(SetError, match=r"unexpected: \[\], missing: \['name'\]") as caught:
        typed.append({"n": [3], "x": [1.0]})
    assert str(folder) in str(caught.value)


def test_extra_column_is_named(typed: SetWriter) -> None:
    with pytest.raises(SetError, match=r"unexpected: \['y', 'z'\], missing: \[\]"):
        typed.append({"n": [3], "name": ["c"], "x": [1.0], "z": [0], "y": [0]})


def test_missing_and_extra_columns(typed: SetWriter, folder: Path) -> None:
    with pytest.raises(SetError, match=r"unexpected: \['nn'\], missing: \['n'\]"):
        typed.append({"nn": [3], "name": ["c"], "x": [1.0]})
    assert read_manifest(folder)["rows"] == 2  # nothing was added
    assert len(segment_files(folder)) == 1


def test_castable_types_are_cast(typed: SetWriter, folder: Path) -> None:
    # other column order, narrower ints, ints for doubles, dictionary-encoded text
    typed.append(
        pa.table(
            {
                "x": pa.array([7, 8], pa.int32()),
                "name": pa.array(["c", "d"]).dictionary_encode(),
                "n": pa.array([3, 4], pa.int16()),
            }
        )
    )
    s = read_set(folder)
    assert s.schema == {"n": "int64", "name": "string", "x": "double", "uid": "uint64"}
    assert s.column("n").tolist() == [1, 2, 3, 4]
    assert s.column("x").tolist() == [0.5, 1.5, 7.0, 8.0]
    assert s.column("name").tolist() == ["a", "b", "c", "d"]


def test_uncastable_types_name_the_column(typed: SetWriter, folder: Path) -> None:
    with pytest.raises(SetError, match="column 'n'"):
        typed.append({"n": ["three"], "name": ["c"], "x": [1.0]})
    with pytest.raises(SetError, match="column 'n'"):
        typed.append({"n": [3.5], "name": ["c"], "x": [1.0]})
    assert read_manifest(folder)["rows"] == 2


# -- reading ------------------------------------------------------------------------------


def test_read_set_on_a_non_set_folder(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(SetError, match="not a set folder") as caught:
        read_set(tmp_path / "plain")
    assert str(tmp_path / "plain") in str(caught.value)
    with pytest.raises(SetError, match="not a set folder"):
        read_set(tmp_path / "missing")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"format": "cryolab.set", "vers', "corrupt"),
        ("", "corrupt"),
        ("not json", "corrupt"),
        ('{"format": "something else", "version": 1}', "not a cryolab set manifest"),
        ("[1, 2, 3]", "not a cryolab set manifest"),  # valid JSON, but no object
        ('"cryolab.set"', "not a cryolab set manifest"),
    ],
)
def test_read_set_on_a_corrupt_manifest(folder: Path, content: str, message: str) -> None:
    folder.mkdir()
    (folder / MANIFEST).write_text(content)
    with pytest.raises(SetError, match=message) as caught:
        read_set(folder)
    assert str(folder / MANIFEST) in str(caught.value)
    with pytest.raises(SetError):
        SetWriter.open(folder)


def test_read_set_from_a_newer_cryolab(folder: Path) -> None:
    SetWriter.create(folder, ["Set"])
    manifest = read_manifest(folder)
    (folder / MANIFEST).write_text(json.dumps(dict(manifest, version=FORMAT_VERSION + 1)))
    with pytest.raises(SetError, match=f"{folder}.*newer cryolab"):
        read_set(folder)


def test_read_set_with_a_missing_segment(folder: Path) -> None:
    writer = SetWriter.create(folder, ["Set"])
    writer.append(batch(0, 2))
    writer.append(batch(2, 2))
    (folder / read_manifest(folder)["segments"][1]["file"]).unlink()
    with pytest.raises(SetError, match=f"{folder} kept changing"):
        read_set(folder, retries=3)


def test_read_empty_set(folder: Path) -> None:
    SetWriter.create(folder, ["Set"], properties={"apix": 2.0})
    s = read_set(folder)
    assert len(s) == 0
    assert s.columns == ["uid"]
    assert s.schema == {"uid": "uint64"}
    assert s.state == "open"
    assert s.properties == {"apix": 2.0}


def test_read_emptied_set_keeps_its_columns(folder: Path) -> None:
    writer = SetWriter.create(folder, ["Set"])
    writer.append({"n": [1, 2], "name": ["a", "b"]}, step="s1")
    assert writer.discard_steps(["s1"]) == 2
    s = read_set(folder)
    assert len(s) == 0
    assert s.schema == {"n": "int64", "name": "string", "uid": "uint64"}
    # the schema still applies to new batches
    with pytest.raises(SetError, match="missing"):
        writer.append({"n": [3]})


def test_read_set_type(folder: Path) -> None:
    class SetStoreTestType(Set):
        pass

    SetWriter.create(folder, ["SetStoreTestType", "Set"]).append(batch(0, 1))
    assert type(read_set(folder)) is SetStoreTestType
    SetWriter.create(folder.with_name("other"), ["UnknownPluginType"]).append(batch(0, 1))
    assert type(read_set(folder.with_name("other"))) is Set


# -- streaming readers --------------------------------------------------------------------


def test_reader_poll_returns_only_new_rows(folder: Path) -> None:
    writer = SetWriter.create(folder, ["Set"])
    reader = SetReader(folder)
    first = reader.poll()
    assert len(first) == 0
    assert first.state == "open"
    writer.append(batch(0, 3))
    got = reader.poll()
    assert got.column("n").tolist() == [0, 1, 2]
    assert reader.seen == 3
    assert len(reader.poll()) == 0
    writer.append(batch(3, 2))
    writer.append(batch(5, 1))
    got = reader.poll()
    assert got.column("n").tolist() == [3, 4, 5]
    np.testing.assert_array_equal(got.uids, read_set(folder).uids[3:])
    assert got.state == "open"
    assert reader.state == "open"
    writer.close()
    assert reader.state == "closed"
    last = reader.poll()
    assert len(last) == 0
    assert last.state == "closed"


def test_reader_sees_every_row_once_across_compaction(folder: Path, monkeypatch) -> None:
    monkeypatch.setattr(setstore, "COMPACT_AFTER", 3)
    writer = SetWriter.create(folder, ["Set"])
    reader = SetReader(folder)
    seen: list[int] = []
    for start in range(0, 40, 4):
        writer.append(batch(start, 4))
        seen.extend(reader.poll().column("n").tolist())
    assert seen == list(range(40))


def test_closing_in_plan_order_lists_batches_step_by_step(folder: Path) -> None:
    writer = SetWriter.create(folder, ["Set"])
    # steps finishing out of order, one of them in two batches, and a batch of no step
    writer.append(batch(20, 2), step="s2")
    writer.append(batch(0, 2), step="s0")
    writer.append(batch(90, 1))
    writer.append(batch(22, 1), step="s2")
    writer.append(batch(10, 2), step="s1")
    writer.close(step_order=["s0", "s1", "s2"])
    assert read_set(folder).column("n").tolist() == [0, 1, 10, 11, 20, 21, 22, 90]
    assert read_manifest(folder)["state"] == "closed"


def test_reader_sees_every_row_once_when_closing_reorders(folder: Path) -> None:
    writer = SetWriter.create(folder, ["Set"])
    reader = SetReader(folder)
    writer.append(batch(20, 2), step="s2")
    seen = reader.poll().column("n").tolist()
    writer.append(batch(0, 2), step="s0")
    writer.append(batch(10, 2), step="s1")
    writer.close(step_order=["s0", "s1", "s2"])
    seen += reader.poll().column("n").tolist()
    assert sorted(seen) == [0, 1, 10, 11, 20, 21]
    assert len(reader.poll()) == 0
    assert reader.seen == 6


# -- discarding and compaction ------------------------------------------------------------


def test_discard_steps(folder: Path) -> None:
    writer = SetWriter.create(folder, ["Set"])
    writer.append(batch(0, 2), step="a")
    writer.append(batch(2, 3), step="b")
    writer.append(batch(5, 1))
    writer.append(batch(6, 4), step="a")
    files = {s["step"]: s["file"] for s in read_manifest(folder)["segments"]}
    assert writer.discard_steps(["a"]) == 6
    assert read_set(folder).column("n").tolist() == [2, 3, 4, 5]
    manifest = read_manifest(folder)
    assert manifest["rows"] == 4
    assert [s["step"] for s in manifest["segments"]] == ["b", None]
    assert segment_files(folder) == {s["file"] for s in manifest["segments"]}
    assert files["b"] in segment_files(folder)
    assert writer.discard_steps(["nothing"]) == 0
    assert writer.discard_steps([]) == 0
    assert writer.discard_steps(["b", "c"]) == 3
    assert read_set(folder).column("n").tolist() == [5]


def test_compact_groups_runs_of_the_same_step(folder: Path) -> None:
    writer = SetWriter.create(folder, ["Set"])
    steps = ["a", "a", "b", "b", "b", None, "a", "a"]
    for index, step in enumerate(steps):
        writer.append(batch(index * 3, 3), step=step)
    before = read_set(folder)
    old_files = segment_files(folder)
    writer.compact()
    manifest = read_manifest(folder)
    assert [(s["step"], s["rows"]) for s in manifest["segments"]] == [
        ("a", 6),
        ("b", 9),
        (None, 3),
        ("a", 6),
    ]
    assert manifest["rows"] == 24
    after = read_set(folder)
    assert after.to_arrow().equals(before.to_arrow())  # rows, order, uids, types
    assert after.column("n").tolist() == list(range(24))
    files = segment_files(folder)
    assert files == {s["file"] for s in manifest["segments"]}
    assert old_files & files == {manifest["segments"][2]["file"]}  # the single one is kept
    assert temporary_files(folder) == []
    # the step tags survive, so a step's batches can still be discarded
    assert writer.discard_steps(["a"]) == 12
    assert read_set(folder).column("n").tolist() == list(range(6, 18))


def test_compact_nothing_to_do(folder: Path) -> None:
    writer = SetWriter.create(folder, ["Set"])
    writer.compact()
    assert read_manifest(folder)["segments"] == []
    writer.append(batch(0, 2))
    files = segment_files(folder)
    writer.compact()
    assert segment_files(folder) == files


def test_automatic_compaction(folder: Path, monkeypatch) -> None:
    monkeypatch.setattr(setstore, "COMPACT_AFTER", 4)
    writer = SetWriter.create(folder, ["Set"])
    counts = []
    for index in range(13):
        writer.append(batch(index * 2, 2, name=np.array([f"r{index}"] * 2)))
        counts.append(len(read_manifest(folder)["segments"]))
    assert max(counts) == 4
    assert counts[:5] == [1, 2, 3, 4, 1]  # the fifth segment triggers a compaction
    assert len(segment_files(folder)) == counts[-1]
    s = read_set(folder)
    assert s.column("n").tolist() == list(range(26))
    assert s.column("name").tolist() == [f"r{k // 2}" for k in range(26)]
    assert len(np.unique(s.uids)) == 26


# -- a reader process and a writer process --------------------------------------------------

WRITER = r"""
import sys
import numpy as np
from cryolab.core.setstore import SetWriter

path, batches = sys.argv[1], int(sys.argv[2])
writer = SetWriter.open(path)
for number in range(batches):
    writer.append({"batch": np.full(10, number, dtype=np.int64),
                   "row": np.arange(10, dtype=np.int64)})
writer.close()
"""

READER = r"""
import json, sys, time, traceback
import numpy as np
from cryolab.core.setstore import SetReader, read_manifest, read_set

path, report_path, ready_path, limit = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
report = {"polls": 0, "totals": [], "snapshot_totals": [], "segment_drops": 0,
          "max_segments": 0, "closed": False, "error": None}


def check_whole_batches(batches, rows, where):
    count = len(batches)
    if count % 10:
        raise AssertionError(f"{where}: {count} rows are not whole batches of 10")
    whole = count // 10
    if whole and np.bincount(batches, minlength=whole).tolist() != [10] * whole:
        raise AssertionError(f"{where}: a batch number is not present exactly 10 times")
    if not np.array_equal(batches, np.repeat(np.arange(whole), 10)):
        raise AssertionError(f"{where}: batches out of order")
    if not np.array_equal(rows, np.tile(np.arange(10), whole)):
        raise AssertionError(f"{where}: rows of a batch out of order")


try:
    reader = SetReader(path)
    batches = np.zeros(0, dtype=np.int64)
    rows = np.zeros(0, dtype=np.int64)
    uids = np.zeros(0, dtype=np.uint64)
    last_total = last_snapshot = last_segments = 0
    deadline = time.monotonic() + limit
    with open(ready_path, "w") as ready:
        ready.write("polling")
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("the set was not closed in time")
        new = reader.poll()
        report["polls"] += 1
        batches = np.concatenate([batches, new["batch"]]) if len(new) else batches
        rows = np.concatenate([rows, new["row"]]) if len(new) else rows
        uids = np.concatenate([uids, new.uids]) if len(new) else uids
        total = reader.seen
        if total < last_total or total != len(batches):
            raise AssertionError(f"the row count went from {last_total} to {total}")
        check_whole_batches(batches, rows, "polled rows")
        if total != last_total:
            report["totals"].append(total)
        last_total = total
        # a full read of the folder too: complete, growing, the same uids for the same rows
        snapshot = read_set(path)
        if len(snapshot) < last_snapshot or len(snapshot) < total:
            raise AssertionError(f"a snapshot shrank to {len(snapshot)} rows")
        if len(snapshot) != last_snapshot:
            report["snapshot_totals"].append(len(snapshot))
        last_snapshot = len(snapshot)
        if "batch" in snapshot:  # an empty set has no columns before its first batch
            check_whole_batches(snapshot["batch"], snapshot["row"], "snapshot")
        elif len(snapshot):
            raise AssertionError("rows without their columns")
        if not np.array_equal(snapshot.uids[:total], uids):
            raise AssertionError("uids changed")
        if len(np.unique(snapshot.uids)) != len(snapshot):
            raise AssertionError("duplicate uids")
        segments = len(read_manifest(path)["segments"])
        report["segment_drops"] += segments < last_segments
        report["max_segments"] = max(report["max_segments"], segments)
        last_segments = segments
        if new.state == "closed":
            report["closed"] = True
            break
except BaseException:
    report["error"] = traceback.format_exc()
with open(report_path, "w") as handle:
    json.dump(report, handle)
"""


def test_reader_process_polling_while_writer_process_appends(tmp_path: Path) -> None:
    """A reader process polling an open set while a writer appends 1 000 batches sees
    complete, monotonically growing data and never fails."""
    batches = 1000
    folder = tmp_path / "stream"
    SetWriter.create(folder, ["Set"])
    report_path, ready_path = tmp_path / "report.json", tmp_path / "ready"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(folder), str(report_path), str(ready_path), "90"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    writer = None
    try:
        deadline = time.monotonic() + 30
        while not ready_path.exists():
            assert reader.poll() is None, reader.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the reader did not start"
            time.sleep(0.02)
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder), str(batches)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        writer_output, _ = writer.communicate(timeout=100)
        assert writer.returncode == 0, writer_output.decode()
        reader_output, _ = reader.communicate(timeout=100)
        assert reader.returncode == 0, reader_output.decode()
    finally:
        for process in (reader, writer):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    report = json.loads(report_path.read_text())
    assert report["error"] is None, report["error"]
    assert report["closed"] is True
    assert report["totals"][-1] == batches * 10
    assert report["totals"] == sorted(report["totals"])
    assert all(total % 10 == 0 for total in report["totals"] + report["snapshot_totals"])
    # it followed the stream: more than one state between empty and complete
    intermediate = [t for t in report["totals"] if 0 < t < batches * 10]
    assert len(intermediate) > 1, report["totals"]
    # compaction happened under the reader's eyes
    assert report["segment_drops"] >= 1
    assert report["max_segments"] <= setstore.COMPACT_AFTER + 1

    final = read_set(folder)
    assert final.state == "closed"
    assert len(final) == batches * 10
    np.testing.assert_array_equal(final["batch"], np.repeat(np.arange(batches), 10))
    np.testing.assert_array_equal(final["row"], np.tile(np.arange(10), batches))
    manifest = read_manifest(folder)
    assert manifest["rows"] == batches * 10
    assert len(manifest["segments"]) <= setstore.COMPACT_AFTER
    assert segment_files(folder) == {s["file"] for s in manifest["segments"]}
    assert temporary_files(folder) == []
