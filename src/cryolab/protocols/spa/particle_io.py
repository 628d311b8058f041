"""Reading particle sets for the SPA protocols: columns with defaults, image paths, batches.

Particles are read stack by stack, ``batch`` images at a time, so no protocol ever holds a
whole particle set in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cryolab.core.sets import Set
from cryolab.em.imageio import read_header, read_images
from cryolab.em.objects import Acquisition
from cryolab.em.reconstruct import Reconstructor

CTF_COLUMNS = ("ctf.defocus_u", "ctf.defocus_v", "ctf.defocus_angle", "ctf.phase_shift")


def column(particles: Set, name: str, default: float = 0.0) -> NDArray[Any]:
    """A column as numpy; ``default`` everywhere when absent (``defocus_v`` falls back to
    ``defocus_u``)."""
    if name in particles:
        return np.asarray(particles[name])
    if name == "ctf.defocus_v" and "ctf.defocus_u" in particles:
        return np.asarray(particles["ctf.defocus_u"])
    return np.full(len(particles), default)


def image_paths(particles: Set) -> NDArray[Any]:
    """The stack path of every particle (relative paths resolved against the ``root`` property)."""
    root = particles.properties.get("root")
    return np.array(
        [
            str(Path(root, p)) if root and not Path(str(p)).is_absolute() else str(p)
            for p in particles["image.path"]
        ]
    )


def box_size(particles: Set) -> int:
    """The (square) box of the particle images, from the first stack's header."""
    first = image_paths(particles)[0]
    header = read_header(first, permissive=bool(particles.properties.get("permissive")))
    if header.nx != header.ny:
        raise ValueError(f"{first}: images must be square, not {header.nx}x{header.ny}")
    return int(header.nx)


def particle_acquisition(particles: Set) -> tuple[float, Acquisition]:
    """The pixel size (Å/px) and acquisition of a particle set."""
    acquisition = getattr(particles, "acquisition", None) or Acquisition()
    pixel = particles.properties.get("sampling_rate") or acquisition.sampling_rate
    if not pixel:
        raise ValueError("the particles have no sampling_rate (pixel size)")
    return float(pixel), acquisition


def is_inverted(particles: Set) -> bool:
    """Whether the images have protein bright (the ``inverted`` property; RELION's default)."""
    return bool(particles.properties.get("inverted", True))


def batches(
    particles: Set, rows: NDArray[np.int64], batch: int
) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]:
    """``(rows, images)`` for the given rows, stack by stack, at most ``batch`` at a time."""
    paths = image_paths(particles)
    index = column(particles, "image.index", 1).astype(np.int64)
    permissive = bool(particles.properties.get("permissive", False))
    for path in np.unique(paths[rows]):
        here = rows[paths[rows] == path]
        for start in range(0, len(here), batch):
            chosen = here[start : start + batch]
            yield chosen, read_images(path, index[chosen], permissive=permissive)


def ctf_arguments(particles: Set, rows: NDArray[np.int64]) -> dict[str, NDArray[Any]]:
    """The CTF keyword arguments of :meth:`Reconstructor.add` for ``rows``."""
    return {
        "defocus_u": column(particles, "ctf.defocus_u")[rows],
        "defocus_v": column(particles, "ctf.defocus_v")[rows],
        "defocus_angle": column(particles, "ctf.defocus_angle")[rows],
        "phase_shift": column(particles, "ctf.phase_shift")[rows],
    }


def reconstructor(
    particles: Set, size: int, *, pad: int, device: str, max_radius: float | None = None
) -> Reconstructor:
    """A :class:`Reconstructor` for the particles' pixel size, acquisition and contrast."""
    pixel, acquisition = particle_acquisition(particles)
    return Reconstructor(
        size,
        pixel,
        pad=pad,
        device=device,
        voltage=acquisition.voltage,
        spherical_aberration=acquisition.spherical_aberration,
        amplitude_contrast=acquisition.amplitude_contrast,
        inverted=is_inverted(particles),
        max_radius=max_radius,
    )
