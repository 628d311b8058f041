"""``spa.classify_3d``: 3-D classification by multi-reference projection matching."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from cryolab.core.params import FloatParam, InputParam, IntParam
from cryolab.core.protocol import Output, StepContext
from cryolab.core.sets import Set
from cryolab.em.fsc import low_pass
from cryolab.em.imageio import write_mrc
from cryolab.em.objects import SetOfClasses3D, SetOfParticles, SetOfVolumes
from cryolab.em.reconstruct import Reconstructor
from cryolab.protocols.citations import PENCZEK1994, SCHERES2012
from cryolab.protocols.spa.particle_io import particle_acquisition
from cryolab.protocols.spa.refinement import (
    ANY,
    IterativeRefinement,
    Pass,
    Poses,
    poses_table,
    read_reference,
)

SEARCH = "Search"


class Classify3D(IterativeRefinement):
    """Sort particles into ``classes`` 3-D classes by multi-reference projection matching.

    All classes start from the reference, low-passed to ``resolution``. In the first pass every
    particle is put in a random class (after finding its orientation against the reference),
    so the class maps start from different random halves of the data; in later passes each
    particle goes to the class, orientation and shift of best correlation. The search is
    global on an ``angular_step`` grid, or local around the input orientations when the
    particles have them (e.g. after ``spa.refine_3d``). Class maps are low-passed to
    ``resolution`` and masked each pass. Particles that match no class well (junk, false
    picks) tend to gather in a class of their own.
    """

    name = "spa.classify_3d"
    deterministic = True
    label = "3-D classification"
    reference = InputParam(SetOfVolumes, help="Starting map (e.g. from spa.initial_model).")
    classes = IntParam(default=3, min=1, max=50, help="Number of classes.")
    iterations = IntParam(default=6, min=1, max=200, help="Passes over the particles.")
    resolution = FloatParam(
        default=20.0, min=1, unit="Å", section=SEARCH, help="Resolution compared and kept."
    )
    angular_step = FloatParam(default=15.0, min=1, max=45, unit="°", section=SEARCH)
    max_shift = FloatParam(default=3.0, min=0, unit="px", section=SEARCH)
    outputs = {
        "classes": Output(SetOfClasses3D, help="One map per non-empty class"),
        "particles": Output(SetOfParticles, help="The particles with class_id and orientations"),
    }

    def allowed(
        self, particles: Set, rows: NDArray[np.int64], seed: int, iteration: int
    ) -> NDArray[np.int64]:
        if iteration > 0:
            return np.full(rows.size, ANY, dtype=np.int64)
        rng = np.random.default_rng([seed, 33])
        drawn: NDArray[np.int64] = rng.integers(0, int(self.values["classes"]), len(particles))
        return drawn[rows]

    def start_references(
        self, ctx: StepContext, particles: Set, size: int, pixel: float
    ) -> tuple[list[NDArray[np.float32]], dict[str, Any]]:
        classes = int(self.values["classes"])
        if classes > len(particles):
            raise ValueError(f"{classes} classes for {len(particles)} particles")
        volume = read_reference(ctx, size)
        reference = self._filtered(volume, pixel)
        return [reference.copy() for _ in range(classes)], {"local": "transform.rot" in particles}

    def search_pass(self, iteration: int, state: dict[str, Any]) -> Pass:
        has_poses = bool(state.get("local"))
        return Pass(
            resolution=float(self.values["resolution"]),
            global_search=not has_poses,
            angular_step=float(self.values["angular_step"]) / (2 if has_poses else 1),
            max_shift=float(self.values["max_shift"]) if not has_poses else 1.0,
            shift_step=1.0 if not has_poses else 0.5,
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
        sizes = np.bincount(poses.references, minlength=len(maps))
        ctx.log.info("pass %d: class sizes %s", iteration + 1, sizes.tolist())
        return [self._filtered(m, pixel) for m in maps], {**state, "sizes": sizes.tolist()}

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
        sizes = np.bincount(poses.references, minlength=len(maps))
        kept = [i for i in range(len(maps)) if sizes[i] > 0]
        files = []
        for index in kept:
            target = ctx.run_dir / f"class{index + 1:03d}.mrc"
            write_mrc(target, self._filtered(maps[index], pixel), voxel_size=pixel)
            files.append(str(target.resolve()))
        properties = {"sampling_rate": pixel, "acquisition": acquisition.to_dict()}
        ctx.update_properties("classes", **properties, symmetry="C1")
        ctx.append(
            "classes",
            {
                "image.path": files,
                "image.index": [1] * len(kept),
                "class_id": [i + 1 for i in kept],
                "class.size": [int(sizes[i]) for i in kept],
                "class.distribution": [float(sizes[i] / sizes.sum()) for i in kept],
                "class.resolution": [float(self.values["resolution"])] * len(kept),
            },
        )
        order = np.argsort(poses.rows)
        columns = {k: np.asarray(v)[order] for k, v in poses_table(particles, poses, pixel).items()}
        columns["class_id"] = (poses.references[order] + 1).astype(np.int64)
        columns["class.score"] = poses.scores[order]
        ctx.update_properties("particles", **particles.properties)
        ctx.append("particles", particles.with_columns(**columns).to_arrow())
        ctx.log.info("%d particles in classes of sizes %s", len(particles), sizes.tolist())

    def _filtered(self, volume: NDArray[np.float32], pixel: float) -> NDArray[np.float32]:
        return self.masked(low_pass(volume, pixel, float(self.values["resolution"])), pixel)

    citations = (*IterativeRefinement.citations, PENCZEK1994, SCHERES2012)

    def methods(self) -> str:
        return (
            f"Particles were sorted into {self.values['classes']} 3-D classes by multi-reference "
            f"projection matching [penczek1994ribosome] at {self.values['resolution']:g} Å "
            f"({self.values['iterations']} passes), the classes seeded, as in RELION "
            "[scheres2012relion], from random subsets of the particles aligned to one "
            "reference map."
        )
