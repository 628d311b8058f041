"""``cryolab export-relion PATH RUN.output -o FILE.star``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import database_dump
from cryolab.cli import main
from cryolab.core.project import Project
from cryolab.em.relion import star_to_particles


def test_export_imported_particles_round_trip(
    project: Project,
    real,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    star = real("cryodrgn/relion31.star")
    run = project.run("import.particles", files=str(star), root=str(star.parent)).wait(60)
    out = tmp_path / "exported.star"
    assert main(["export-relion", str(project.path), f"{run.id}.particles", "-o", str(out)]) == 0
    assert "wrote 5 particles" in capsys.readouterr().out
    original = star_to_particles(star, root=star.parent)
    again = star_to_particles(out, root=star.parent)
    for column in ("ctf.defocus_u", "transform.rot", "transform.shift_x", "coordinate.x"):
        np.testing.assert_allclose(again[column], original[column], rtol=0, atol=1e-9)
    assert again["image.index"].tolist() == original["image.index"].tolist()


def test_export_errors_are_one_line(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "t.csv"
    table.write_text("a\n1\n")
    run = project.run("sets.import_table", files=str(table)).wait(60)
    before = database_dump(project)
    out = str(tmp_path / "x.star")
    assert main(["export-relion", str(project.path), f"{run.id}.rows", "-o", out]) == 2
    assert "is a Set; particles or micrographs can be exported" in capsys.readouterr().err
    assert main(["export-relion", str(project.path), f"{run.id}.nope", "-o", out]) == 2
    assert "has no output 'nope'" in capsys.readouterr().err
    assert main(["export-relion", str(project.path), "particles", "-o", out]) == 2
    assert "expected e.g. 12.particles" in capsys.readouterr().err
    assert database_dump(project) == before
