"""The shared part of importing image files: the files, the acquisition, header checks."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from cryolab.core.params import BoolParam, FloatParam, Issue, PathParam
from cryolab.core.protocol import Protocol, Step, StepContext
from cryolab.core.sets import new_uids
from cryolab.em.imageio import ImageError, ImageHeader, read_header
from cryolab.em.objects import Acquisition

FILES_PER_STEP = 200
PIXEL_TOLERANCE = 0.01  # relative difference between header and parameter still accepted
ACQUISITION = "Acquisition"


# Shared by every import protocol that asks for the optics (one declaration, one meaning).
VOLTAGE = FloatParam(default=300.0, min=20, max=1000, unit="kV", section=ACQUISITION)
SPHERICAL_ABERRATION = FloatParam(default=2.7, min=0, max=20, unit="mm", section=ACQUISITION)
AMPLITUDE_CONTRAST = FloatParam(default=0.1, min=0, max=0.99, section=ACQUISITION)
TRUST_HEADER = BoolParam(
    default=False, expert=1, help="Accept files whose header pixel size differs from the value."
)
PERMISSIVE = BoolParam(
    default=False,
    expert=1,
    help="Read MRC files that lack the map id (e.g. re-written stacks).",
)


def checked_header(
    path: str, *, sampling_rate: float, permissive: bool, trust_header: bool = False
) -> ImageHeader:
    """A file's header, refusing unreadable files and a pixel size that disagrees.

    A header pixel size of 0 or 1 counts as unset (TIFF files and many writers leave it so).
    """
    try:
        header = read_header(path, permissive=permissive)
    except ImageError as exc:
        raise ValueError(f"cannot import {path}: {exc.message}") from None
    found = header.voxel_size
    unset = found in (0.0, 1.0)
    if (
        not unset
        and not trust_header
        and abs(found - sampling_rate) > PIXEL_TOLERANCE * sampling_rate
    ):
        raise ValueError(
            f"{path}: its header says {found:g} Å/px but sampling_rate is "
            f"{sampling_rate:g} Å/px; correct the value, or set trust_header"
        )
    return header


class ImportImages(Protocol):
    """Base of the protocols that import one item per image file."""

    output_name: ClassVar[str] = "images"
    files = PathParam(pattern=True, help="A file or glob pattern, e.g. raw/*.tif.")
    sampling_rate = FloatParam(
        default=None,
        min=1e-3,
        unit="Å/px",
        section=ACQUISITION,
        help="Pixel size of the files' images.",
    )
    voltage = VOLTAGE
    spherical_aberration = SPHERICAL_ABERRATION
    amplitude_contrast = AMPLITUDE_CONTRAST
    dose_per_frame = FloatParam(
        default=None, required=False, min=0, unit="e/Å²", section=ACQUISITION
    )
    gain = PathParam(
        default=None, required=False, section=ACQUISITION, help="Gain reference image."
    )
    defects = PathParam(
        default=None,
        required=False,
        section=ACQUISITION,
        expert=1,
        help="Camera defects file or map.",
    )
    trust_header = TRUST_HEADER
    permissive = PERMISSIVE

    def matched(self) -> list[str]:
        """The files the pattern matches, sorted."""
        return sorted(glob.glob(str(Path(self.values["files"]).expanduser())))

    def acquisition(self) -> Acquisition:
        """The acquisition given by the parameters."""
        return Acquisition(
            voltage=self.values["voltage"],
            spherical_aberration=self.values["spherical_aberration"],
            amplitude_contrast=self.values["amplitude_contrast"],
            sampling_rate=self.values["sampling_rate"],
            dose_per_frame=self.values["dose_per_frame"],
            gain=self.values["gain"],
            defects=self.values["defects"],
        )

    def check(self) -> list[Issue]:
        return [Issue("", problem) for problem in self.acquisition().check()]

    def plan(self) -> Iterator[Step]:
        matched = self.matched()
        if not matched:
            raise FileNotFoundError(f"no file matches {self.values['files']!r}")
        for start in range(0, len(matched), FILES_PER_STEP):
            yield Step(
                f"read-{start // FILES_PER_STEP:05d}",
                "read_files",
                {"paths": matched[start : start + FILES_PER_STEP]},
            )

    def read_files(self, ctx: StepContext, paths: list[str]) -> None:
        """Read the headers of some files, check them and append one row per file."""
        rows: dict[str, list[Any]] = {}
        for path in paths:
            header = self.checked_header(path)
            for key, value in self.row(path, header).items():
                rows.setdefault(key, []).append(value)
        rows["uid"] = list(new_uids(len(paths), ctx.rng))
        ctx.update_properties(
            self.output_name,
            sampling_rate=self.values["sampling_rate"],
            acquisition=self.acquisition().to_dict(),
            permissive=self.values["permissive"],
        )
        ctx.append(self.output_name, rows)
        ctx.log.info("imported %d files", len(paths))

    def checked_header(self, path: str) -> ImageHeader:
        """The file's header, checked against this run's values (see :func:`checked_header`)."""
        return checked_header(
            path,
            sampling_rate=self.values["sampling_rate"],
            permissive=self.values["permissive"],
            trust_header=self.values["trust_header"],
        )

    def row(self, path: str, header: ImageHeader) -> dict[str, Any]:
        """The columns of the item for one file."""
        return {
            "image.path": str(Path(path).resolve()),
            "image.index": 1,
            "image.width": header.nx,
            "image.height": header.ny,
        }

    def methods(self) -> str:
        return (
            f"{len(self.matched())} files were imported with a pixel size of "
            f"{self.values['sampling_rate']:g} Å/px, {self.values['voltage']:g} kV, "
            f"Cs {self.values['spherical_aberration']:g} mm."
        )
