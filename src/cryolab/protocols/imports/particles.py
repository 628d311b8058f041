"""``import.particles``: import particles from a RELION STAR, a cryoSPARC ``.cs`` or stacks."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cryolab.core.params import BoolParam, FloatParam, Issue, PathParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set, new_uids
from cryolab.em.imageio import ImageError, read_header
from cryolab.em.objects import Acquisition, SetOfParticles

STACKS = (".mrcs", ".mrc", ".st")
ACQUISITION = "Acquisition (stacks)"


class ImportParticles(Protocol):
    """Import particles with their metadata from a RELION STAR file (3.0 to 5) or a cryoSPARC
    ``.cs`` file, or bare images from MRC stacks (one particle per image, with the acquisition
    given here). Metadata columns the formats hold beyond ours are carried along."""

    name = "import.particles"
    label = "Import particles"
    files = PathParam(pattern=True, help="A .star or .cs file, or MRC stacks (pattern).")
    root = PathParam(
        default=None,
        required=False,
        help="Folder the image paths in the file are relative to (RELION: the "
        "project folder); found automatically when not given.",
    )
    sampling_rate = FloatParam(
        default=None,
        required=False,
        min=1e-3,
        unit="Å/px",
        section=ACQUISITION,
        help="Pixel size: needed for stacks and RELION 3.0 files.",
    )
    voltage = FloatParam(default=300.0, min=20, max=1000, unit="kV", section=ACQUISITION)
    spherical_aberration = FloatParam(default=2.7, min=0, max=20, unit="mm", section=ACQUISITION)
    amplitude_contrast = FloatParam(default=0.1, min=0, max=0.99, section=ACQUISITION)
    permissive = BoolParam(
        default=False,
        expert=1,
        help="Read MRC stacks that lack the map id (e.g. re-written stacks).",
    )
    outputs = {"particles": Output(SetOfParticles, help="The imported particles")}

    def matched(self) -> list[str]:
        """The files the pattern matches, sorted."""
        return sorted(glob.glob(str(Path(self.values["files"]).expanduser())))

    def check(self) -> list[Issue]:
        kinds = {_kind(path) for path in self.matched()}
        if None in kinds:
            return [Issue("files", "use .star, .cs or MRC stack files (.mrcs, .mrc, .st)")]
        if len(kinds) > 1:
            return [Issue("files", f"give files of one kind, not {sorted(map(str, kinds))}")]
        if kinds == {"stack"} and not self.values["sampling_rate"]:
            return [Issue("sampling_rate", "a value is required to import stacks")]
        return []

    def plan(self) -> Iterator[Step]:
        matched = self.matched()
        if not matched:
            raise FileNotFoundError(f"no file matches {self.values['files']!r}")
        for index, path in enumerate(matched):
            yield Step(f"read-{index:05d}", "read_file", {"path": path})

    def read_file(self, ctx: StepContext, path: str) -> None:
        """Read one file and append its particles."""
        kind = _kind(path)
        root = self.values["root"]
        if kind == "star":
            from cryolab.em.relion import star_to_particles

            particles: Set = star_to_particles(
                path,
                root=root,
                seed=int(ctx.rng.integers(2**31)),
                sampling_rate=self.values["sampling_rate"],
            )
        elif kind == "cs":
            from cryolab.em.cryosparc import cs_to_particles

            particles = cs_to_particles(path, root=root)
        else:
            particles = self._stack(ctx, path)
        ctx.update_properties("particles", **particles.properties)
        ctx.append("particles", particles)
        ctx.log.info("imported %d particles from %s", len(particles), path)

    def _stack(self, ctx: StepContext, path: str) -> SetOfParticles:
        try:
            header = read_header(path, permissive=self.values["permissive"])
        except ImageError as exc:
            raise ValueError(f"cannot import {path}: {exc.message}") from None
        stated = self.values["sampling_rate"]
        if header.voxel_size not in (0.0, 1.0) and abs(header.voxel_size - stated) > 0.01 * stated:
            raise ValueError(
                f"{path}: its header says {header.voxel_size:g} Å/px but "
                f"sampling_rate is {stated:g} Å/px"
            )
        count = header.n_images
        acquisition = Acquisition(
            voltage=self.values["voltage"],
            spherical_aberration=self.values["spherical_aberration"],
            amplitude_contrast=self.values["amplitude_contrast"],
            sampling_rate=stated,
        )
        return SetOfParticles(
            {
                "uid": new_uids(count, ctx.rng),
                "image.path": [str(Path(path).resolve())] * count,
                "image.index": np.arange(1, count + 1),
            },
            properties={
                "sampling_rate": stated,
                "acquisition": acquisition.to_dict(),
                "permissive": self.values["permissive"],
            },
        )


def _kind(path: str) -> str | None:
    suffix = Path(path).suffix.lower()
    if suffix == ".star":
        return "star"
    if suffix == ".cs":
        return "cs"
    return "stack" if suffix in STACKS else None
