"""Set folders on disk: immutable Arrow IPC segments and an atomically replaced manifest.

Layout of a set folder::

    manifest.json           type, state (open/closed), properties, ordered segment list
    seg-000001-1a2b3c4d.arrow   one appended batch (Arrow IPC file, memory-mapped on read)
    .lock                   taken (flock) by writers while they update the manifest

A writer first writes a whole segment under a temporary name and renames it, then replaces
the manifest (write to a temporary file, ``os.replace``). A reader reads the manifest, then the
segments it lists, so it only ever sees complete batches, from any process. Segments are
tagged with the step that wrote them, so a step that is re-run after a crash can discard its
earlier, unfinished batches first. Compaction rewrites many small segments into one. When a
run closes an output, its batches are put in the run's plan order, so the rows of a finished
run do not depend on which of its parallel steps ended first (``cryolab reproduce`` relies on it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from cryolab.core.errors import SetError
from cryolab.core.sets import Set, StreamState, as_table, set_type

MANIFEST = "manifest.json"
FORMAT = "cryolab.set"
FORMAT_VERSION = 1
COMPACT_AFTER = 64  # segments; readers stay fast with a bounded number of files
HISTORY_POINTS = 1000  # (time, rows) points kept in a manifest; thinned by half beyond


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        with open(folder / MANIFEST, encoding="utf-8") as handle:
            manifest: dict[str, Any] = json.load(handle)
    except FileNotFoundError:
        raise SetError(f"{folder} is not a set folder (no {MANIFEST})") from None
    except json.JSONDecodeError as exc:
        raise SetError(f"{folder / MANIFEST} is corrupt: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SetError(f"{folder / MANIFEST} is not a cryolab set manifest")
    if manifest.get("version", 0) > FORMAT_VERSION:
        raise SetError(
            f"{folder} was written by a newer cryolab (set format {manifest['version']})"
        )
    return manifest


def _write_json_atomically(path: Path, data: Mapping[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
    os.replace(temporary, path)


def _read_segment(path: Path) -> pa.Table:
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).read_all()


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Return the manifest of a set folder (type, state, properties, segments, rows)."""
    return _read_manifest(Path(path))


def read_set(path: str | Path, *, retries: int = 20) -> Set:
    """Read the committed batches of a set folder as a :class:`~cryolab.core.sets.Set`.

    Segments are memory-mapped, so reading is near-instant and the rows are paged in on use.
    A segment removed by a concurrent compaction makes the read start again from the new
    manifest.
    """
    return _as_set(*_read_segments(Path(path), retries=retries))


def _read_segments(folder: Path, *, retries: int = 20) -> tuple[dict[str, Any], list[pa.Table]]:
    """The manifest and its segments' tables, read consistently (retried across compaction)."""
    for _ in range(retries):
        manifest = _read_manifest(folder)
        try:
            tables = [_read_segment(folder / seg["file"]) for seg in manifest["segments"]]
        except FileNotFoundError:
            time.sleep(0.01)
            continue
        return manifest, tables
    raise SetError(f"{folder} kept changing while it was read")


def _as_set(manifest: Mapping[str, Any], tables: Sequence[pa.Table]) -> Set:
    # the most specific type this process knows (a plugin's type may not be installed here)
    known = [t for t in manifest["types"] if set_type(t).type_name == t]
    cls = set_type(known[0] if known else "Set")
    if tables:
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    elif manifest["schema_fields"]:
        table = _schema(manifest).empty_table()
    else:
        table = pa.schema([("uid", pa.uint64())]).empty_table()
    return cls(table, properties=manifest["properties"], state=manifest["state"])


def _schema(manifest: Mapping[str, Any]) -> pa.Schema:
    return pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(manifest["schema_fields"])))


def column_names(path: str | Path) -> list[str] | None:
    """The set's column names, read from its manifest; ``None`` before its first batch."""
    manifest = _read_manifest(Path(path))
    if manifest["schema_fields"] is None:
        return None
    return list(_schema(manifest).names)


class SetReader:
    """Follows a set folder that another process may be appending to.

    Each :meth:`poll` returns the rows committed since the previous call, as a set, so a
    streaming consumer processes every item exactly once. Rows are counted per step that wrote
    them, not by position, so neither compaction nor the step order a set takes when it closes
    (:meth:`SetWriter.close`) makes the reader skip or repeat rows.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.seen = 0
        self._seen_by_step: dict[str | None, int] = {}

    def poll(self) -> Set:
        """Return the rows appended since the last poll (possibly none)."""
        manifest, tables = _read_segments(self.path)
        counted: dict[str | None, int] = {}
        new_tables = []
        for segment, table in zip(manifest["segments"], tables, strict=True):
            step = segment.get("step")
            offset = counted.get(step, 0)
            counted[step] = offset + table.num_rows
            already = self._seen_by_step.get(step, 0)
            if offset + table.num_rows > already:
                new_tables.append(table.slice(max(0, already - offset)))
        self._seen_by_step = counted
        self.seen = sum(counted.values())
        return _as_set(manifest, new_tables)

    @property
    def state(self) -> StreamState:
        """The stream state in the manifest now."""
        state: StreamState = _read_manifest(self.path)["state"]
        return state


class SetWriter:
    """Appends batches to a set folder; safe to use from several processes at once.

    Use :meth:`create` for a new folder and :meth:`open` to keep appending to one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(
        cls,
        path: str | Path,
        types: Sequence[str],
        *,
        properties: Mapping[str, Any] | None = None,
        state: StreamState = "open",
        exist_ok: bool = False,
    ) -> SetWriter:
        """Create an empty set folder of the given type chain (most specific type first)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / MANIFEST).exists():
            if not exist_ok:
                raise SetError(f"a set already exists at {folder}")
            return cls(folder)
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "types": list(types),
            "state": state,
            "properties": dict(properties or {}),
            "segments": [],
            "rows": 0,
            "schema_fields": None,
        }
        _write_json_atomically(folder / MANIFEST, manifest)
        return cls(folder)

    @classmethod
    def open(cls, path: str | Path) -> SetWriter:
        """Keep appending to an existing set folder."""
        folder = Path(path)
        _read_manifest(folder)
        return cls(folder)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        with open(self.path / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                manifest = _read_manifest(self.path)
                yield manifest
                _write_json_atomically(self.path / MANIFEST, manifest)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, data: Set | pa.Table | Mapping[str, Any], *, step: str | None = None) -> int:
        """Append one batch and return the number of rows in the set afterwards.

        Parameters
        ----------
        data
            The rows; a ``uid`` column is added when missing.
        step
            The step that produced the batch (so an unfinished step's batches can be discarded).
        """
        table = as_table(data)
        manifest = _read_manifest(self.path)
        if manifest["state"] == "closed":
            raise SetError(f"the set at {self.path} is closed; it takes no more items")
        if manifest["schema_fields"] is not None:
            table = _conform(table, _schema(manifest), self.path)
        name = f"seg-{uuid.uuid4().hex[:16]}.arrow"
        temporary = self.path / f".{name}.tmp"
        with pa.OSFile(str(temporary), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
            out.write_table(table)
        os.replace(temporary, self.path / name)
        with self._locked() as current:
            if current["state"] == "closed":
                (self.path / name).unlink()
                raise SetError(f"the set at {self.path} was closed while a batch was written")
            if current["schema_fields"] is None:
                current["schema_fields"] = table.schema.serialize().to_pybytes().hex()
            current["segments"].append({"file": name, "rows": table.num_rows, "step": step})
            current["rows"] += table.num_rows
            _record_count(current)
            rows: int = current["rows"]
            many = len(current["segments"]) > COMPACT_AFTER
        if many:
            self.compact()
        return rows

    def update_properties(self, **properties: Any) -> None:
        """Set set-wide properties (JSON-serialisable values)."""
        try:
            json.dumps(properties)
        except (TypeError, ValueError) as exc:
            raise SetError(f"properties of {self.path} must be JSON data: {exc}") from None
        with self._locked() as manifest:
            manifest["properties"].update(properties)

    def close(self, step_order: Sequence[str] | None = None) -> None:
        """Mark the set closed: complete, no more appends.

        Parameters
        ----------
        step_order
            The step ids of the run in plan order: the batches are then listed step by step in
            that order (a stable sort; batches of other steps last), so the rows of a closed set
            come in the same order whichever parallel step finished first. Without it the
            batches stay in the order they were committed.
        """
        with self._locked() as manifest:
            if step_order is not None:
                position = {step: i for i, step in enumerate(step_order)}
                manifest["segments"].sort(
                    key=lambda segment: position.get(segment.get("step"), len(position))
                )
            manifest["state"] = "closed"

    def reopen(self) -> None:
        """Mark the set open again (a resumed run keeps appending)."""
        with self._locked() as manifest:
            manifest["state"] = "open"

    def discard_steps(self, steps: Sequence[str]) -> int:
        """Drop the batches written by the given steps; return how many rows were dropped."""
        wanted = set(steps)
        with self._locked() as manifest:
            kept = [s for s in manifest["segments"] if s.get("step") not in wanted]
            dropped = [s for s in manifest["segments"] if s.get("step") in wanted]
            manifest["segments"] = kept
            manifest["rows"] = sum(s["rows"] for s in kept)
            _record_count(manifest)
        for segment in dropped:
            (self.path / segment["file"]).unlink(missing_ok=True)
        return sum(s["rows"] for s in dropped)

    def compact(self) -> None:
        """Rewrite the segments of each run of same-step batches into one segment."""
        with open(self.path / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                manifest = _read_manifest(self.path)
                old = manifest["segments"]
                groups: list[list[dict[str, Any]]] = []
                for segment in old:
                    if groups and groups[-1][0].get("step") == segment.get("step"):
                        groups[-1].append(segment)
                    else:
                        groups.append([segment])
                new_segments = []
                for group in groups:
                    if len(group) == 1:
                        new_segments.append(group[0])
                        continue
                    table = pa.concat_tables([_read_segment(self.path / s["file"]) for s in group])
                    name = f"seg-{uuid.uuid4().hex[:16]}.arrow"
                    temporary = self.path / f".{name}.tmp"
                    with (
                        pa.OSFile(str(temporary), "wb") as sink,
                        pa.ipc.new_file(sink, table.schema) as out,
                    ):
                        out.write_table(table.combine_chunks())
                    os.replace(temporary, self.path / name)
                    new_segments.append(
                        {"file": name, "rows": table.num_rows, "step": group[0].get("step")}
                    )
                manifest["segments"] = new_segments
                _write_json_atomically(self.path / MANIFEST, manifest)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        kept = {s["file"] for s in new_segments}
        for segment in old:
            if segment["file"] not in kept:
                (self.path / segment["file"]).unlink(missing_ok=True)


def _record_count(manifest: dict[str, Any]) -> None:
    """Add ``(time, rows)`` to the manifest's count history, thinning it when it grows long."""
    history: list[list[float]] = manifest.setdefault("history", [])
    history.append([round(time.time(), 3), manifest["rows"]])
    if len(history) > HISTORY_POINTS:
        manifest["history"] = [*history[:-1:2], history[-1]]


def count_history(path: str | Path) -> list[tuple[float, int]]:
    """The set's item count after each append or discard, as ``(unix time, rows)``, oldest first.

    Kept in the manifest (at most :data:`HISTORY_POINTS` points, evenly thinned), so plots of a
    growing set need no extra file; sets written before the history existed have none.
    """
    return [(float(t), int(n)) for t, n in _read_manifest(Path(path)).get("history", [])]


def _conform(table: pa.Table, schema: pa.Schema, where: Path) -> pa.Table:
    """Cast a batch to the set's schema, or explain which column does not fit."""
    extra = set(table.column_names) - set(schema.names)
    missing = set(schema.names) - set(table.column_names)
    if extra or missing:
        raise SetError(
            f"a batch for {where} does not match the set's columns "
            f"(unexpected: {sorted(extra)}, missing: {sorted(missing)})"
        )
    table = table.select(schema.names)
    for field in schema:
        if table.schema.field(field.name).type != field.type:
            try:
                column = table.column(field.name).cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SetError(f"column {field.name!r} of a batch for {where}: {exc}") from None
            table = table.set_column(table.schema.get_field_index(field.name), field.name, column)
    return table
