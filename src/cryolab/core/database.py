"""The project database: ``project.sqlite`` in WAL mode, with a schema version and migrations.

It holds small, transactional metadata only: runs, their parameters (JSON), statuses, steps,
the edges of the run graph, declared outputs and events. Set rows live in set folders (see
:mod:`cryolab.core.setstore`). This module imports nothing heavy, so a run process can mark
itself running within milliseconds of starting.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryolab.core.errors import ProjectError

DB_NAME = "project.sqlite"
SCHEMA_VERSION = 1

# Each migration takes the database from version i to i + 1. Add new ones at the end; never
# edit a released one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        protocol TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        comment TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        params TEXT NOT NULL,
        folder TEXT NOT NULL,
        seed INTEGER NOT NULL,
        executor TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        started REAL,
        finished REAL,
        pid INTEGER,
        pid_start TEXT,
        host TEXT,
        error TEXT,
        origin TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE edges (
        src_run INTEGER NOT NULL REFERENCES runs(id),
        src_output TEXT NOT NULL,
        dst_run INTEGER NOT NULL REFERENCES runs(id),
        dst_param TEXT NOT NULL,
        position INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX edges_src ON edges(src_run);
    CREATE INDEX edges_dst ON edges(dst_run);
    CREATE TABLE outputs (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        name TEXT NOT NULL,
        types TEXT NOT NULL,
        path TEXT NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    CREATE TABLE steps (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        position INTEGER NOT NULL,
        step_id TEXT NOT NULL,
        spec TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        started REAL,
        finished REAL,
        error TEXT,
        PRIMARY KEY (run_id, step_id)
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time REAL NOT NULL,
        run_id INTEGER,
        kind TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    );
    """,
]


def connect(folder: Path) -> sqlite3.Connection:
    """Open the project database of ``folder``, migrating it to the current schema."""
    path = folder / DB_NAME
    if not path.exists():
        raise ProjectError(f"{folder} is not a cryolab project (no {DB_NAME})")
    connection = _open(path)
    migrate(connection, path)
    return connection


def create(folder: Path) -> sqlite3.Connection:
    """Create the database of a new project folder."""
    connection = _open(folder / DB_NAME)
    migrate(connection, folder / DB_NAME)
    return connection


def _open(path: Path) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(
            path, timeout=60, isolation_level=None, check_same_thread=False
        )
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as exc:
        raise ProjectError(f"cannot open {path}: {exc}") from None
    return connection


def schema_version(connection: sqlite3.Connection) -> int:
    """The schema version stored in the database (0 for an empty database)."""
    try:
        row = connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0]) if row else 0


def migrate(connection: sqlite3.Connection, path: Path) -> None:
    """Apply the migrations the database lacks, each in its own transaction."""
    try:
        current = schema_version(connection)
    except sqlite3.DatabaseError as exc:
        raise ProjectError(f"{path} is not a readable project database: {exc}") from None
    if current > SCHEMA_VERSION:
        raise ProjectError(
            f"{path} has schema version {current}, newer than this cryolab ({SCHEMA_VERSION}); "
            "upgrade cryolab"
        )
    for version in range(current, SCHEMA_VERSION):
        with transaction(connection):
            if schema_version(connection) != version:  # another process migrated meanwhile
                continue
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(version + 1),),
            )


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction (``BEGIN IMMEDIATE``): all or nothing."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def add_event(connection: sqlite3.Connection, run_id: int | None, kind: str, **data: Any) -> None:
    """Record an event (status change, step done, ...) for observers such as the UI."""
    connection.execute(
        "INSERT INTO events(time, run_id, kind, data) VALUES (?, ?, ?, ?)",
        (time.time(), run_id, kind, json.dumps(data)),
    )


def set_status(
    connection: sqlite3.Connection,
    run_id: int,
    status: str,
    *,
    only_from: tuple[str, ...] | None = None,
    **fields: Any,
) -> bool:
    """Change a run's status (and other columns) and record the event, in one transaction.

    With ``only_from``, the change is made only while the run's status is one of those (checked
    in the same statement, so a run that ends meanwhile keeps its final status). Returns
    whether the status was changed.
    """
    columns = ", ".join(f"{k} = ?" for k in fields)
    condition = ""
    if only_from is not None:
        condition = f" AND status IN ({', '.join('?' * len(only_from))})"
    with transaction(connection):
        cursor = connection.execute(
            f"UPDATE runs SET status = ?{', ' + columns if columns else ''} WHERE id = ?"
            + condition,
            (status, *fields.values(), run_id, *(only_from or ())),
        )
        if cursor.rowcount == 0:
            return False
        add_event(connection, run_id, "status", status=status)
    return True
