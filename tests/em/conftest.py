"""Fixtures for the EM tests: the real files of ../shared/data/real, skipped when absent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


@pytest.fixture
def real() -> Callable[[str], Path]:
    """``real("cryodrgn/relion31.star")``: the path of a real file, or skip the test."""

    def find(relative: str) -> Path:
        path = REAL / relative
        if not path.exists():
            pytest.skip(f"real test file {relative} is not available ({REAL})")
        return path

    return find
