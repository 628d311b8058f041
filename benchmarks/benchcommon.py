"""Helpers shared by the benchmark scripts: machine facts, source state, profile summaries."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import pstats
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def sync(path: Path) -> None:
    """Write the file's dirty pages to disk (dirty pages cannot be dropped from the cache)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drop_cache(path: Path) -> None:
    """Drop the file's pages from the page cache, so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def machine_facts() -> dict[str, Any]:
    """CPU count and model, memory, Python and platform."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, IndexError), open("/proc/meminfo", encoding="utf-8") as f:
        memory = f.readline().split(":", 1)[1].strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "loadavg_at_end": os.getloadavg(),  # other work on the machine makes timings noisy
    }


def source_state() -> dict[str, Any]:
    """Which cryolab code was measured: its location, the commit, and uncommitted changes.

    Uses read-only git commands (``--no-optional-locks``: the index is not refreshed).
    """
    import cryolab

    location = Path(cryolab.__file__).resolve().parent
    state: dict[str, Any] = {"cryolab": str(location), "version": cryolab.__version__}
    if not location.is_relative_to(ROOT):
        state["note"] = "cryolab imported from outside this checkout"
        return state

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        state["commit"] = git("rev-parse", "HEAD").strip()
        diff = git("diff", "HEAD", "--", "src")
        state["dirty_files"] = git("diff", "HEAD", "--name-only", "--", "src").split()
        state["diff_sha256"] = hashlib.sha256(diff.encode()).hexdigest()[:16] if diff else None
    return state


def top_functions(stats: pstats.Stats, count: int) -> list[dict[str, Any]]:
    """The functions with the most own time, with their share of the profiled total."""
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    rows = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:count]
    return [
        {
            "function": f"{Path(f).name}:{line}({fn})",
            "tottime": v[2],
            "cumtime": v[3],
            "calls": v[1],
            "share": v[2] / total,
        }
        for (f, line, fn), v in rows
    ]


def verdict_line(rows: list[dict[str, Any]], failed: list[str]) -> str:
    """One line saying whether every budget passed."""
    if failed:
        return "FAIL: " + ", ".join(failed)
    if any(r["verdict"] == "PASS" for r in rows):
        return "all budgets PASS"
    return "no verdicts (the budgets are for the default sizes)"


def finish(
    out: Path, document: dict[str, Any], rows: list[dict[str, Any]], failed: list[str]
) -> int:
    """Write the results document, print the verdict and return the exit code."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1), encoding="utf-8")
    print(f"\n{verdict_line(rows, failed)}; results in {out}")
    return 1 if failed else 0
