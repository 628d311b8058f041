"""Iterative projection matching, the engine of ``spa.initial_model``, ``spa.classify_3d`` and
``spa.refine_3d``.

A run is a chain of passes. Each pass is ``parts`` align steps over disjoint blocks of the
particles (run in parallel by the executor) and a merge step:

- an **align** step reads its particles stack by stack (``batch_size`` at a time), compares
  them with the current references (:mod:`cryolab.em.align3d`: a global search over a uniform
  rotation grid, or a local search around each particle's previous pose), writes the best pose
  of each particle (``poses.npz``) and inserts the particles into one partial Fourier sum per
  reference (``partial-J.npz``);
- the **merge** step sums the partials into maps, and the protocol turns them into the next
  references (low-pass, FSC between half maps, masks) written as ``reference-J.mrc`` with a
  ``state.json`` (resolution, reference count, pass statistics) in its step folder. The last
  merge writes the run's outputs.

A first ``start`` step writes the first references. The three protocols differ only in their
hooks: how the first references are made, which references a particle may be compared with
(its own half for gold-standard refinement, any class for 3-D classification) and what a
merge does with the maps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cryolab.core.params import BoolParam, ChoiceParam, FloatParam, InputParam, IntParam
from cryolab.core.protocol import Protocol, Step, StepContext
from cryolab.core.sets import Set
from cryolab.em.align3d import global_search, local_rotations, local_search, shift_grid
from cryolab.em.fsc import soft_mask
from cryolab.em.geometry import euler_to_matrix, matrix_to_euler
from cryolab.em.imageio import read_image, write_mrc
from cryolab.em.objects import SetOfParticles
from cryolab.em.projector import FourierPoints, Projector, ctf_values, image_coefficients
from cryolab.em.reconstruct import Reconstructor
from cryolab.em.volalign import rotation_grid
from cryolab.em.xp import array_module, to_numpy
from cryolab.protocols.spa.particle_io import (
    batches,
    box_size,
    column,
    ctf_arguments,
    is_inverted,
    particle_acquisition,
    reconstructor,
)

ANGLES = ("transform.rot", "transform.tilt", "transform.psi")
SHIFTS = ("transform.shift_x", "transform.shift_y")
CANDIDATES = 5
"""Poses per particle a global search keeps for local refinement."""
ANY = -1
"""``allowed`` value of a particle that may match any reference."""

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Pass:
    """What one pass searches.

    ``resolution`` (Å) limits the frequencies compared; a ``global_search`` tries a uniform
    rotation grid of ``angular_step`` degrees, otherwise rotations within about one step of the
    previous pose; shifts (px) are tried on a grid of ``shift_step`` within ``max_shift`` (of the
    box centre in a global search, of the previous shift in a local one).
    """

    resolution: float
    global_search: bool
    angular_step: float
    max_shift: float
    shift_step: float


@dataclass
class Poses:
    """Poses of a block of particles: rows of the input set, matrices, shifts (px), scores and
    the reference each was matched with."""

    rows: NDArray[np.int64]
    matrices: FloatArray
    shifts: FloatArray
    scores: FloatArray
    references: NDArray[np.int64]

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {k: np.asarray(v) for k, v in self.__dict__.items()}
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> Poses:
        with np.load(path) as stored:
            return cls(**{k: stored[k] for k in stored.files})


class IterativeRefinement(Protocol):
    """Base of the projection-matching protocols (not a protocol of its own)."""

    particles = InputParam(SetOfParticles, help="Particles (contrast inverted: protein bright).")
    iterations = IntParam(default=10, min=1, max=200, help="Passes over the particles.")
    mask_diameter = FloatParam(
        default=None,
        required=False,
        min=1,
        unit="Å",
        help="Diameter of the soft spherical mask on the references (default 90% of the box).",
    )
    max_shift = FloatParam(default=4.0, min=0, unit="px", help="Largest shift searched.")
    ctf_correction = BoolParam(default=True, help="Compare and reconstruct with the CTFs.")
    parts = IntParam(default=2, min=1, max=256, help="Parallel steps per pass.")
    batch_size = IntParam(default=256, min=1, expert=1, help="Images read at once.")
    device = ChoiceParam(["auto", "cpu", "gpu"], default="auto", help="Where to compute.")

    # ---- hooks -------------------------------------------------------------------------

    def selected_rows(self, particles: Set, seed: int, iteration: int) -> NDArray[np.int64]:
        """Rows of the input pass ``iteration`` works on (all, in order, by default)."""
        return np.arange(len(particles), dtype=np.int64)

    def start_references(
        self, ctx: StepContext, particles: Set, size: int, pixel: float
    ) -> tuple[list[NDArray[np.float32]], dict[str, Any]]:
        """The first references and the first state."""
        raise NotImplementedError

    def search_pass(self, iteration: int, state: dict[str, Any]) -> Pass:
        """What pass ``iteration`` searches, given the state of the previous merge."""
        raise NotImplementedError

    def allowed(
        self, particles: Set, rows: NDArray[np.int64], seed: int, iteration: int
    ) -> NDArray[np.int64]:
        """Per particle the one reference it is compared with, or :data:`ANY`."""
        return np.full(rows.size, ANY, dtype=np.int64)

    def insert_radius(self, search: Pass, size: int, pixel: float) -> float | None:
        """Highest frequency (Fourier px) put into the maps; ``None``: up to Nyquist."""
        return min(size / 2, 1.5 * size * pixel / search.resolution)

    def merged(
        self,
        ctx: StepContext,
        iteration: int,
        maps: list[NDArray[np.float32]],
        state: dict[str, Any],
        poses: Poses,
        pixel: float,
    ) -> tuple[list[NDArray[np.float32]], dict[str, Any]]:
        """The next references and state from the maps of a pass (``pixel``: Å/px)."""
        raise NotImplementedError

    def write_outputs(
        self,
        ctx: StepContext,
        sums: list[Reconstructor],
        maps: list[NDArray[np.float32]],
        state: dict[str, Any],
        poses: Poses,
    ) -> None:
        """Write the run's outputs after the last pass (``sums``: the pass's Fourier sums)."""
        raise NotImplementedError

    # ---- the steps -------------------------------------------------------------------

    def plan(self) -> Iterator[Step]:
        parts = int(self.values["parts"])
        yield Step("start", "start", {})
        previous = "start"
        for iteration in range(int(self.values["iterations"])):
            ids = [f"align-{iteration:03d}-{part:03d}" for part in range(parts)]
            for part, step_id in enumerate(ids):
                arguments = {"iteration": iteration, "part": part, "previous": previous}
                yield Step(step_id, "align", arguments, deps=(previous,))
            merge = f"merge-{iteration:03d}"
            arguments = {"iteration": iteration, "steps": ids, "previous": previous}
            yield Step(merge, "merge", arguments, deps=tuple(ids))
            previous = merge

    def start(self, ctx: StepContext) -> None:
        """Check the input and write the first references."""
        particles: Set = ctx.input("particles")
        if len(particles) == 0:
            raise ValueError("the input particle set is empty")
        if self.values["ctf_correction"] and "ctf.defocus_u" not in particles:
            raise ValueError(
                "ctf_correction needs the column ctf.defocus_u: estimate CTFs and extract with "
                "them, or switch ctf_correction off"
            )
        pixel, _ = particle_acquisition(particles)
        size = box_size(particles)
        references, state = self.start_references(ctx, particles, size, pixel)
        self._save_references(ctx.step_dir, references, state)

    def align(self, ctx: StepContext, iteration: int, part: int, previous: str) -> None:
        """Align one block of particles to the references and insert it into partial maps."""
        particles: Set = ctx.input("particles")
        rows = np.array_split(
            self.selected_rows(particles, ctx.seed, iteration), int(self.values["parts"])
        )[part]
        references, state = self._load_references(ctx.run_dir / "steps" / previous)
        pixel, acquisition = particle_acquisition(particles)
        size = box_size(particles)
        search = self.search_pass(iteration, state)
        device = str(self.values["device"])
        xp = array_module(device)
        points = FourierPoints.make(size, size * pixel / search.resolution)
        projectors = [Projector(r, device=device) for r in references]
        allowed = self.allowed(particles, rows, ctx.seed, iteration)
        prior = self._prior(ctx, particles, rows, iteration, part)
        grid = rotation_grid(search.angular_step) if search.global_search else None
        slices = [p.slices(grid, points) for p in projectors] if grid is not None else []
        radius = self.insert_radius(search, size, pixel)
        makers = [
            reconstructor(particles, size, pad=2, device=device, max_radius=radius)
            for _ in references
        ]
        found = Poses(
            rows,
            np.zeros((rows.size, 3, 3)),
            np.zeros((rows.size, 2)),
            np.zeros(rows.size),
            np.zeros(rows.size, dtype=np.int64),
        )
        position = {int(r): i for i, r in enumerate(rows)}
        inverted = is_inverted(particles)
        use_ctf = bool(self.values["ctf_correction"])
        for chosen, images in batches(particles, rows, int(self.values["batch_size"])):
            at = np.array([position[int(r)] for r in chosen])
            coefficients = image_coefficients(images, points, xp)
            if use_ctf:
                ctf_columns = ctf_arguments(particles, chosen)
                ctf = xp.asarray(
                    ctf_values(
                        points,
                        pixel,
                        ctf_columns["defocus_u"],
                        ctf_columns["defocus_v"],
                        ctf_columns["defocus_angle"],
                        ctf_columns["phase_shift"],
                        voltage=acquisition.voltage,
                        spherical_aberration=acquisition.spherical_aberration,
                        amplitude_contrast=acquisition.amplitude_contrast,
                        inverted=inverted,
                    )
                )
            else:
                ctf = xp.ones(coefficients.shape, dtype=xp.float32)
            if grid is not None:
                self._global(
                    found,
                    at,
                    coefficients,
                    ctf,
                    projectors,
                    slices,
                    grid,
                    points,
                    search,
                    allowed,
                    xp,
                )
            else:
                self._local(
                    found, at, coefficients, ctf, projectors, points, search, prior, allowed
                )
            for index, maker in enumerate(makers):
                take = found.references[at] == index
                if take.any():
                    self._insert(
                        maker, images[take], found, at[take], pixel, particles, chosen[take]
                    )
        found.save(ctx.step_dir / "poses.npz")
        for index, maker in enumerate(makers):
            maker.save_partial(ctx.step_dir / f"partial-{index}.npz")
        ctx.log.info(
            "pass %d part %d: %d particles at %.1f A, mean score %.4f",
            iteration + 1,
            part + 1,
            rows.size,
            search.resolution,
            float(found.scores.mean()) if rows.size else 0.0,
        )

    def merge(self, ctx: StepContext, iteration: int, steps: list[str], previous: str) -> None:
        """Sum the partial maps, make the next references; after the last pass, the outputs."""
        _, state = self._load_references(ctx.run_dir / "steps" / previous)
        folders = [ctx.run_dir / "steps" / s for s in steps]
        poses = _concatenate([Poses.load(f / "poses.npz") for f in folders])
        totals: list[Reconstructor] = []
        for index in range(int(state["references"])):
            total: Reconstructor | None = None
            for folder in folders:
                part = Reconstructor.load_partial(
                    folder / f"partial-{index}.npz", device=self.values["device"]
                )
                if total is None:
                    total = part
                else:
                    total.merge(part)
            assert total is not None
            totals.append(total)
        maps = [t.finish(wiener_constant=self.wiener(t)) for t in totals]
        pixel, _ = particle_acquisition(ctx.input("particles"))
        references, state = self.merged(ctx, iteration, maps, state, poses, pixel)
        self._save_references(ctx.step_dir, references, state)
        if iteration == int(self.values["iterations"]) - 1:
            self.write_outputs(ctx, totals, maps, state, poses)

    # ---- helpers --------------------------------------------------------------------

    @staticmethod
    def wiener(maker: Reconstructor) -> float:
        """A small regulariser of the CTF-squared sums (about a tenth of their typical value at
        Nyquist), which keeps rarely sampled frequencies from blowing up."""
        return 0.001 * max(1, maker.count)

    def mask_radius(self, size: int, pixel: float) -> float:
        """The mask radius in pixels."""
        diameter = self.values["mask_diameter"]
        return 0.45 * size if diameter is None else min(0.5 * diameter / pixel, 0.5 * size)

    def masked(self, volume: NDArray[np.float32], pixel: float) -> NDArray[np.float32]:
        """The map under the soft spherical mask (``mask_diameter``; 3 px raised-cosine edge)."""
        size = volume.shape[0]
        result: NDArray[np.float32] = (
            volume * soft_mask(size, self.mask_radius(size, pixel), 3.0)
        ).astype(np.float32)
        return result

    @staticmethod
    def _save_references(
        folder: Path, references: list[NDArray[np.float32]], state: dict[str, Any]
    ) -> None:
        for index, volume in enumerate(references):
            write_mrc(folder / f"reference-{index}.mrc", volume.astype(np.float32))
        state = {**state, "references": len(references)}
        (folder / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")

    @staticmethod
    def _load_references(folder: Path) -> tuple[list[NDArray[np.float32]], dict[str, Any]]:
        state: dict[str, Any] = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        references = [
            read_image(folder / f"reference-{i}.mrc", 1).astype(np.float32)
            for i in range(int(state["references"]))
        ]
        return references, state

    def _prior(
        self, ctx: StepContext, particles: Set, rows: NDArray[np.int64], iteration: int, part: int
    ) -> Poses | None:
        """The previous pass's poses of these rows, or the input's, or none."""
        if iteration > 0:
            return Poses.load(
                ctx.run_dir / "steps" / f"align-{iteration - 1:03d}-{part:03d}" / "poses.npz"
            )
        if not all(name in particles for name in ANGLES):
            return None
        pixel, _ = particle_acquisition(particles)
        angles = [column(particles, name)[rows] for name in ANGLES]
        shifts = np.stack([column(particles, name)[rows] / pixel for name in SHIFTS], axis=1)
        return Poses(
            rows, euler_to_matrix(*angles), shifts, np.zeros(rows.size), np.zeros(rows.size, int)
        )

    def _global(
        self,
        found: Poses,
        at: NDArray[np.int64],
        coefficients: Any,
        ctf: Any,
        projectors: list[Projector],
        slices: list[Any],
        grid: FloatArray,
        points: FourierPoints,
        search: Pass,
        allowed: NDArray[np.int64],
        xp: Any,
    ) -> None:
        """A global search keeping the best ``CANDIDATES`` poses of each particle, each then
        refined by a local search half a grid step around it (which rescues particles whose
        true pose fell between grid points and ranked second or third)."""
        shifts = shift_grid(search.max_shift, search.shift_step)
        count = grid.shape[0]
        for choice in np.unique(allowed[at]):
            take = np.nonzero(allowed[at] == choice)[0]
            refs = xp.concatenate(slices) if choice == ANY else slices[int(choice)]
            best, shift, _ = global_search(
                coefficients[take], ctf[take], refs, points, shifts, keep=CANDIDATES, xp=xp
            )
            best, shift = to_numpy(best), to_numpy(shift)
            owner = best // count if choice == ANY else np.full(best.shape, int(choice))
            scores = np.full(best.shape, -np.inf)
            matrices = np.zeros((*best.shape, 3, 3))
            centres = np.zeros((*best.shape, 2))
            for index, projector in enumerate(projectors):
                mine = np.nonzero(owner == index)
                if mine[0].size == 0:
                    continue
                matrix, centre, score = local_search(
                    coefficients[take[mine[0]]],
                    ctf[take[mine[0]]],
                    projector,
                    points,
                    grid[best[mine] % count],
                    shifts[shift[mine]],
                    local_rotations(search.angular_step / 2),
                    shift_grid(search.shift_step, search.shift_step / 2),
                )
                matrices[mine], centres[mine] = to_numpy(matrix), to_numpy(centre)
                scores[mine] = to_numpy(score)
            winner = scores.argmax(axis=1)
            rows = np.arange(take.size)
            target = at[take]
            found.matrices[target] = matrices[rows, winner]
            found.shifts[target] = centres[rows, winner]
            found.scores[target] = scores[rows, winner]
            found.references[target] = owner[rows, winner]

    @staticmethod
    def _local(
        found: Poses,
        at: NDArray[np.int64],
        coefficients: Any,
        ctf: Any,
        projectors: list[Projector],
        points: FourierPoints,
        search: Pass,
        prior: Poses | None,
        allowed: NDArray[np.int64],
    ) -> None:
        if prior is None:
            raise ValueError("a local search needs the particles' previous orientations")
        rows = found.rows[at]
        where = np.searchsorted(prior.rows, rows, sorter=np.argsort(prior.rows))
        where = np.argsort(prior.rows)[where]
        matrices, centres = prior.matrices[where], prior.shifts[where]
        perturbations = local_rotations(search.angular_step)
        offsets = shift_grid(search.max_shift, search.shift_step)
        best = np.full(at.size, -np.inf)
        for index, projector in enumerate(projectors):
            take = np.nonzero((allowed[at] == ANY) | (allowed[at] == index))[0]
            if take.size == 0:
                continue
            matrix, shift, score = local_search(
                coefficients[take],
                ctf[take],
                projector,
                points,
                matrices[take],
                centres[take],
                perturbations,
                offsets,
            )
            score = to_numpy(score)
            better = score > best[take]
            target = at[take[better]]
            found.matrices[target] = to_numpy(matrix)[better]
            found.shifts[target] = to_numpy(shift)[better]
            found.scores[target] = score[better]
            found.references[target] = index
            best[take[better]] = score[better]

    def _insert(
        self,
        maker: Reconstructor,
        images: NDArray[np.float32],
        found: Poses,
        at: NDArray[np.int64],
        pixel: float,
        particles: Set,
        rows: NDArray[np.int64],
    ) -> None:
        euler = matrix_to_euler(found.matrices[at])
        ctf = ctf_arguments(particles, rows) if self.values["ctf_correction"] else {}
        maker.add(
            images,
            euler.rot,
            euler.tilt,
            euler.psi,
            found.shifts[at, 0] * pixel,
            found.shifts[at, 1] * pixel,
            **ctf,
        )


def read_reference(ctx: StepContext, size: int) -> NDArray[np.float32]:
    """The first map of the run's ``reference`` input, checked against the particles' box."""
    volumes: Set = ctx.input("reference")
    if len(volumes) == 0:
        raise ValueError("the reference volume set is empty")
    volume = read_image(str(volumes["image.path"][0]), 1).astype(np.float32)
    if volume.shape != (size, size, size):
        raise ValueError(f"the reference is {volume.shape} voxels but the particles' box is {size}")
    return volume


def _concatenate(parts: list[Poses]) -> Poses:
    return Poses(
        *(np.concatenate([getattr(p, name) for p in parts]) for name in Poses.__dataclass_fields__)
    )


def poses_table(particles: Set, poses: Poses, pixel: float) -> dict[str, Any]:
    """Output columns of the refined poses, in the order of ``poses.rows``."""
    euler = matrix_to_euler(poses.matrices)
    return {
        "transform.rot": euler.rot,
        "transform.tilt": euler.tilt,
        "transform.psi": euler.psi,
        "transform.shift_x": poses.shifts[:, 0] * pixel,
        "transform.shift_y": poses.shifts[:, 1] * pixel,
    }
