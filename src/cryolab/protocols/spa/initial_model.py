"""``spa.initial_model``: a first 3-D map from particles without orientations."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from cryolab.core.params import FloatParam, IntParam, Issue
from cryolab.core.protocol import Output, StepContext
from cryolab.core.sets import Set
from cryolab.em.fsc import low_pass
from cryolab.em.geometry import euler_to_matrix
from cryolab.em.imageio import write_mrc
from cryolab.em.objects import SetOfVolumes
from cryolab.em.reconstruct import Reconstructor
from cryolab.protocols.citations import PENCZEK1994
from cryolab.protocols.spa.particle_io import batches, particle_acquisition, reconstructor
from cryolab.protocols.spa.refinement import IterativeRefinement, Pass, Poses

SEARCH = "Search"


def centred(volume: NDArray[np.float32]) -> NDArray[np.float32]:
    """The map moved (whole voxels) so that its positive density's centre of mass is central."""
    weights = np.clip(volume, 0, None)
    if weights.sum() <= 0:
        return volume
    size = volume.shape[0]
    grid = np.arange(size)
    centre = [
        float((weights.sum(axis=tuple(a for a in range(3) if a != axis)) * grid).sum())
        / float(weights.sum())
        for axis in range(3)
    ]
    moves = [round(size // 2 - c) for c in centre]
    return np.roll(volume, moves, axis=(0, 1, 2))


class InitialModel(IterativeRefinement):
    """Build a first map ab initio by iterative projection matching from random orientations.

    A random subset of the particles (``max_particles``) is given random orientations and
    reconstructed (a smooth blob with the particles' radial profile). Each pass then finds every
    particle's best orientation (a global search over a uniform grid of ``angular_step``) and
    shift against the current map, and reconstructs with the CTFs; the map is low-passed,
    made non-negative (protein density is positive; clipping the negative density that wrong
    orientations leave behind improved the demo's maps, ``docs/validation.md``), masked and
    centred. The resolution compared rises from ``start_resolution`` to
    ``resolution`` over the passes, so the first passes settle the overall shape. The map's hand
    is arbitrary (a projection cannot tell a map from its mirror image).

    It needs particles whose low-resolution envelope tells their orientation: on a nearly
    round, nearly mirror-symmetric particle the first passes lose the orientations and the run
    settles in a self-consistent wrong map (``docs/validation.md``).

    The result depends on the random start. The volume's ``score`` property (the particles' mean
    correlation with the final map) ranks runs of different seeds with the same settings: on the
    demo data the best-scoring map was the one closest to the truth, so run a few seeds and keep
    the best-scoring map (``make demo`` does).
    """

    name = "spa.initial_model"
    deterministic = True
    label = "Initial 3-D model"
    iterations = IntParam(default=12, min=1, max=200, help="Passes over the particles.")
    max_particles = IntParam(
        default=1500, min=10, help="Random subset of the particles used (all if fewer)."
    )
    start_resolution = FloatParam(
        default=40.0, min=1, unit="Å", section=SEARCH, help="Resolution of the first pass."
    )
    resolution = FloatParam(
        default=16.0, min=1, unit="Å", section=SEARCH, help="Resolution of the last pass."
    )
    angular_step = FloatParam(default=15.0, min=2, max=45, unit="°", section=SEARCH, expert=1)
    max_shift = FloatParam(default=3.0, min=0, unit="px", section=SEARCH)
    outputs = {"volume": Output(SetOfVolumes, help="The initial map (low-pass filtered)")}

    def check(self) -> list[Issue]:
        if self.values["resolution"] > self.values["start_resolution"]:
            return [Issue("resolution", "must not be coarser than start_resolution")]
        return []

    def selected_rows(self, particles: Set, seed: int, iteration: int) -> NDArray[np.int64]:
        """The same random subset of ``max_particles`` in every pass."""
        count = len(particles)
        keep = min(count, int(self.values["max_particles"]))
        chosen = np.random.default_rng([seed, 31]).permutation(count)[:keep]
        return np.sort(chosen).astype(np.int64)

    def start_references(
        self, ctx: StepContext, particles: Set, size: int, pixel: float
    ) -> tuple[list[NDArray[np.float32]], dict[str, Any]]:
        rows = self.selected_rows(particles, ctx.seed, 0)
        rng = np.random.default_rng([ctx.seed, 32])
        count = rows.size
        matrices = euler_to_matrix(
            rng.uniform(0, 360, count),
            np.degrees(np.arccos(rng.uniform(-1, 1, count))),
            rng.uniform(0, 360, count),
        )
        poses = Poses(rows, matrices, np.zeros((count, 2)), np.zeros(count), np.zeros(count, int))
        search = self.search_pass(0, {})
        maker = self._maker(particles, size, pixel, search)
        self._insert_all(maker, particles, poses, pixel, int(self.values["batch_size"]))
        volume = maker.finish(wiener_constant=self.wiener(maker))
        return [self._filtered(volume, pixel, search.resolution)], {}

    def search_pass(self, iteration: int, state: dict[str, Any]) -> Pass:
        total = max(1, int(self.values["iterations"]) - 1)
        first, last = float(self.values["start_resolution"]), float(self.values["resolution"])
        resolution = first + (last - first) * min(iteration, total) / total
        return Pass(
            resolution=resolution,
            global_search=True,
            angular_step=float(self.values["angular_step"]),
            max_shift=float(self.values["max_shift"]),
            shift_step=1.0,
        )

    def merged(
        self,
        ctx: StepContext,
        iteration: int,
        maps: list[NDArray[np.float32]],
        state: dict[str, Any],
        poses: Poses,
        pixel: float,
    ) -> tuple[list[NDArray[np.float32]], dict[str, Any]]:
        search = self.search_pass(iteration, state)
        score = float(poses.scores.mean())
        ctx.log.info("pass %d: %.1f A, mean score %.4f", iteration + 1, search.resolution, score)
        return [self._filtered(maps[0], pixel, search.resolution)], {"score": score}

    def write_outputs(
        self,
        ctx: StepContext,
        sums: list[Reconstructor],
        maps: list[NDArray[np.float32]],
        state: dict[str, Any],
        poses: Poses,
    ) -> None:
        particles: Set = ctx.input("particles")
        pixel, acquisition = particle_acquisition(particles)
        resolution = float(self.values["resolution"])
        volume = self._filtered(maps[0], pixel, resolution)
        target = ctx.run_dir / "initial_model.mrc"
        write_mrc(target, volume, voxel_size=pixel)
        ctx.update_properties(
            "volume",
            sampling_rate=pixel,
            acquisition=acquisition.to_dict(),
            symmetry="C1",
            resolution=resolution,
            score=float(poses.scores.mean()),
        )
        ctx.append(
            "volume",
            {
                "image.path": [str(target.resolve())],
                "image.index": [1],
                "volume.particles": [sums[0].count],
            },
        )

    def _filtered(self, volume: NDArray[np.float32], pixel: float, resolution: float) -> Any:
        return centred(self.masked(np.clip(low_pass(volume, pixel, resolution), 0, None), pixel))

    def _maker(self, particles: Set, size: int, pixel: float, search: Pass) -> Reconstructor:
        return reconstructor(
            particles,
            size,
            pad=2,
            device=str(self.values["device"]),
            max_radius=self.insert_radius(search, size, pixel),
        )

    def _insert_all(
        self, maker: Reconstructor, particles: Set, poses: Poses, pixel: float, batch: int
    ) -> None:
        position = {int(r): i for i, r in enumerate(poses.rows)}
        for chosen, images in batches(particles, poses.rows, batch):
            at = np.array([position[int(r)] for r in chosen])
            self._insert(maker, images, poses, at, pixel, particles, chosen)

    citations = (*IterativeRefinement.citations, PENCZEK1994)

    def methods(self) -> str:
        return (
            "An initial model was built ab initio from "
            f"up to {self.values['max_particles']} particles by iterative projection matching "
            f"[penczek1994ribosome] ({self.values['iterations']} passes of global orientation "
            f"search on a {self.values['angular_step']:g}° grid) from random orientations, the "
            f"resolution rising from {self.values['start_resolution']:g} to "
            f"{self.values['resolution']:g} Å."
        )
