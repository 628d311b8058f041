"""``import.particles``: import particles from a RELION STAR, a cryoSPARC ``.cs`` or stacks."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cryolab.core.params import FloatParam, Issue, PathParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set, new_uids
from cryolab.em.objects import Acquisition, SetOfParticles
from cryolab.protocols.imports.images import (
    AMPLITUDE_CONTRAST,
    PERMISSIVE,
    SPHERICAL_ABERRATION,
    TRUST_HEADER,
    VOLTAGE,
    checked_header,
)

STACKS = (".mrcs", ".mrc", ".st")
ACQUISITION = "Acquisition (stacks)"


class ImportParticles(Protocol):
    """Import particles with their metadata from a RELION STAR file (3.0 to 5) or a cryoSPARC
    ``.cs`` file, or bare images from MRC stacks (one particle per image, with the acquisition
    given here). Metadata columns the formats hold beyond ours are carried along."""

    name = "import.particles"
    deterministic = True
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
    voltage = VOLTAGE
    spherical_aberration = SPHERICAL_ABERRATION
    amplitude_contrast = AMPLITUDE_CONTRAST
    trust_header = TRUST_HEADER
    permissive = PERMISSIVE
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

    def methods(self) -> str:
        kinds = {Path(f).suffix for f in self.matched()}
        source = (
            "a RELION STAR file"
            if ".star" in kinds
            else "a cryoSPARC .cs file"
            if ".cs" in kinds
            else "MRC stacks"
        )
        return f"Particles and their metadata were imported from {source}."

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
        stated = self.values["sampling_rate"]
        header = checked_header(
            path,
            sampling_rate=stated,
            permissive=self.values["permissive"],
            trust_header=self.values["trust_header"],
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
