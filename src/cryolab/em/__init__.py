"""The cryo-EM domain: object model, geometry conventions, image I/O and format converters.

Users' scripts rely on these names (add, never rename): :func:`read_star`, :func:`write_star`,
:func:`read_cs`, :func:`write_cs`, :func:`read_scipion_set`. Converters are imported on first
use so ``import cryolab.em`` stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from cryolab.em.objects import (
    FSC,
    Acquisition,
    EMSet,
    Field,
    ImageItem,
    SetOfClasses2D,
    SetOfClasses3D,
    SetOfCoordinates,
    SetOfCTFs,
    SetOfImages,
    SetOfMicrographs,
    SetOfMovies,
    SetOfParticles,
    SetOfTiltSeries,
    SetOfTomograms,
    SetOfVolumes,
)

_LAZY = {
    "read_star": "cryolab.em.star",
    "write_star": "cryolab.em.star",
    "read_cs": "cryolab.em.cryosparc",
    "write_cs": "cryolab.em.cryosparc",
    "read_scipion_set": "cryolab.em.scipion",
}

__all__ = [
    "FSC",
    "Acquisition",
    "EMSet",
    "Field",
    "ImageItem",
    "SetOfCTFs",
    "SetOfClasses2D",
    "SetOfClasses3D",
    "SetOfCoordinates",
    "SetOfImages",
    "SetOfMicrographs",
    "SetOfMovies",
    "SetOfParticles",
    "SetOfTiltSeries",
    "SetOfTomograms",
    "SetOfVolumes",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cryolab.em' has no attribute {name!r}")
