"""Fixtures for the EM tests: the real files of ../shared/data/real, skipped when absent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from cryolab.core.project import Project
from cryolab.core.runs import OutputRef
from cryolab.core.sets import Set
from cryolab.em.geometry import euler_to_matrix
from cryolab.em.simulate import apply_filter, ctf_image, fourier_shift, project

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


def projected_particles(
    volume: NDArray[np.float32], count: int, pixel: float, snr: float, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Particles projected from ``volume`` in real space: inverted contrast (protein bright),
    CTF, known shifts (the particle sits at ``-shift`` px) and Gaussian noise at ``snr``.

    Returns images ``(n, N, N)``, orientation matrices, shifts ``(n, 2)`` px and defocus (Å).
    """
    box = volume.shape[0]
    rng = np.random.default_rng(seed)
    rot, psi = rng.uniform(0, 360, count), rng.uniform(0, 360, count)
    tilt = np.degrees(np.arccos(rng.uniform(-1, 1, count)))
    shifts = rng.uniform(-2, 2, (count, 2))
    defocus = rng.uniform(8000, 20000, count)
    images = np.empty((count, box, box))
    for i in range(count):
        clean = project(volume, rot[i], tilt[i], psi[i])
        ctf = ctf_image((box, box), pixel, defocus[i], defocus[i], 0.0)
        images[i] = fourier_shift(-apply_filter(clean, ctf), -shifts[i, 0], -shifts[i, 1])
    images += rng.normal(scale=images.std() / np.sqrt(snr), size=images.shape)
    return images, euler_to_matrix(rot, tilt, psi), shifts, defocus


def imported(project: Project, name: str, data: Set) -> OutputRef:
    """``data`` as the output ``out`` of a finished ``external.job`` run of ``project``."""
    run = project.add_imported_run(
        "external.job",
        {"program": "test", "job": name, "output_names": ["out"], "output_types": [data.type_name]},
        {"out": data},
    )
    return run.out.out
