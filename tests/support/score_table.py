"""The small table the engine and front-end tests import: one column ``score``, 0.0 to 0.9."""

from __future__ import annotations

from pathlib import Path


def write_scores(folder: Path, name: str = "t.csv") -> Path:
    """Write the ten scores 0.0, 0.1, ..., 0.9 as a CSV file in ``folder``; return its path."""
    path = folder / name
    path.write_text("score\n" + "\n".join(str(i / 10) for i in range(10)) + "\n")
    return path
