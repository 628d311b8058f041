"""``spa.reconstruct``: a 3-D map from particles with known orientations (direct Fourier inversion).

The particles are cut into ``parts`` contiguous blocks; each block is one step that streams its
images from their stacks (``batch_size`` at a time, never the whole set) into two partial
Fourier sums, one per half set, written to the step's folder. A last step merges the partial
sums and writes the map and its two half maps. Only the C1 symmetry is supported.

Half sets: a column ``half`` (1 or 2) or ``relion.rlnRandomSubset`` is used when present;
otherwise particles are assigned to halves at random, seeded by the run's seed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from cryolab.core.params import BoolParam, ChoiceParam, FloatParam, InputParam, IntParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set
from cryolab.em.imageio import write_mrc
from cryolab.em.objects import SetOfParticles, SetOfVolumes
from cryolab.em.reconstruct import Reconstructor
from cryolab.protocols.citations import PENCZEK2004
from cryolab.protocols.spa.particle_io import (
    batches,
    box_size,
    column,
    ctf_arguments,
    particle_acquisition,
    reconstructor,
)

ANGLES = ("transform.rot", "transform.tilt", "transform.psi")
HALF_COLUMNS = ("half", "relion.rlnRandomSubset")


def half_assignment(particles: Set, seed: int) -> NDArray[np.int64]:
    """1 or 2 for every particle: from a half-set column, or random (seeded) when none."""
    for name in HALF_COLUMNS:
        if name in particles:
            values = np.asarray(particles[name]).astype(np.int64)
            if not np.isin(values, (1, 2)).all():
                raise ValueError(f"column {name!r} must hold 1 or 2 for every particle")
            return values
    rng = np.random.default_rng([seed, 12])
    halves = np.ones(len(particles), dtype=np.int64)
    halves[rng.permutation(len(particles))[len(particles) // 2 :]] = 2
    return halves


class Reconstruct(Protocol):
    """Reconstruct a map from particles and their orientations by direct Fourier inversion.

    Images are centred by their shifts, optionally multiplied by their CTF (the weights then
    sum the CTF squared, a Wiener-type reconstruction), inserted into a twice-padded Fourier
    grid with trilinear gridding, and the grid is divided by its weights and corrected for the
    gridding kernel. Two half maps are made for gold-standard FSC. C1 symmetry only.
    """

    name = "spa.reconstruct"
    label = "3-D reconstruction"
    particles = InputParam(SetOfParticles, help="Particles with orientations (transform.*).")
    ctf_correction = BoolParam(default=True, help="Weight by the CTF (needs ctf.defocus_u/v).")
    wiener_constant = FloatParam(
        default=0.0,
        min=0,
        expert=1,
        help="Added to the summed CTF squared before dividing (regularises CTF zeros).",
    )
    parts = IntParam(default=4, min=1, help="Parallel steps the particles are split into.")
    batch_size = IntParam(
        default=256, min=1, expert=1, help="Images read and inserted at once (bounds memory)."
    )
    pad = IntParam(default=2, min=1, max=4, expert=1, help="Padding factor of the Fourier grid.")
    device = ChoiceParam(["auto", "cpu", "gpu"], default="auto", help="Where to compute.")
    outputs = {"volume": Output(SetOfVolumes, help="The map, with its two half maps")}

    def plan(self) -> Iterator[Step]:
        parts = int(self.values["parts"])
        ids = [f"insert-{index:04d}" for index in range(parts)]
        for index, step_id in enumerate(ids):
            yield Step(step_id, "insert", {"part": index, "parts": parts})
        yield Step("merge", "merge", {"steps": ids}, deps=tuple(ids))

    def insert(self, ctx: StepContext, part: int, parts: int) -> None:
        """Insert one block of the particles into two half-set partial sums."""
        particles: Set = ctx.input("particles")
        missing = [c for c in (*ANGLES, "image.path") if c not in particles]
        if missing:
            raise ValueError(f"the particles lack columns {missing}")
        halves = half_assignment(particles, ctx.seed)
        rows = np.array_split(np.arange(len(particles)), parts)[part]
        use_ctf = bool(self.values["ctf_correction"])
        if use_ctf and "ctf.defocus_u" not in particles:
            raise ValueError("ctf_correction needs ctf.defocus_u; switch it off or add CTFs")
        size = box_size(particles)
        makers = {
            half: reconstructor(
                particles, size, pad=int(self.values["pad"]), device=self.values["device"]
            )
            for half in (1, 2)
        }
        rot, tilt, psi = (column(particles, name) for name in ANGLES)
        shift_x, shift_y = (
            column(particles, "transform.shift_x"),
            column(particles, "transform.shift_y"),
        )
        for chosen, images in batches(particles, rows, int(self.values["batch_size"])):
            for half in (1, 2):
                here = halves[chosen] == half
                pick = chosen[here]
                if pick.size == 0:
                    continue
                ctf = ctf_arguments(particles, pick) if use_ctf else {}
                makers[half].add(
                    images[here],
                    rot[pick],
                    tilt[pick],
                    psi[pick],
                    shift_x[pick],
                    shift_y[pick],
                    **ctf,
                )
        for half, maker in makers.items():
            maker.save_partial(ctx.step_dir / f"half{half}.npz")
        ctx.log.info("inserted %d particles (part %d of %d)", len(rows), part + 1, parts)

    def merge(self, ctx: StepContext, steps: list[str]) -> None:
        """Sum the partial sums, and write the map and the half maps."""
        particles: Set = ctx.input("particles")
        pixel, acquisition = particle_acquisition(particles)
        wiener = float(self.values["wiener_constant"])
        device = self.values["device"]
        halves: dict[int, Reconstructor] = {}
        for step_id in steps:
            for half in (1, 2):
                part = Reconstructor.load_partial(
                    ctx.run_dir / "steps" / step_id / f"half{half}.npz", device=device
                )
                if half in halves:
                    halves[half].merge(part)
                else:
                    halves[half] = part
        files: dict[str, str] = {}
        for half in (1, 2):
            target = ctx.run_dir / f"half{half}.mrc"
            write_mrc(target, halves[half].finish(wiener), voxel_size=pixel)
            files[f"volume.half{half}"] = str(target.resolve())
        halves[1].merge(halves[2])
        target = ctx.run_dir / "volume.mrc"
        write_mrc(target, halves[1].finish(wiener), voxel_size=pixel)
        ctx.update_properties(
            "volume", sampling_rate=pixel, acquisition=acquisition.to_dict(), symmetry="C1"
        )
        ctx.append(
            "volume",
            {
                "image.path": [str(target.resolve())],
                "image.index": [1],
                **{k: [v] for k, v in files.items()},
                "volume.particles": [halves[1].count],
            },
        )
        ctx.log.info("reconstructed %d particles", halves[1].count)

    citations = (*Protocol.citations, PENCZEK2004)

    def methods(self) -> str:
        ctf = " with Wiener-type CTF weighting" if self.values["ctf_correction"] else ""
        return (
            "A map and two half maps were reconstructed by gridding-based direct Fourier "
            f"inversion [penczek2004gridding] (trilinear interpolation{ctf}, padding "
            f"factor {self.values['pad']}, C1)."
        )
