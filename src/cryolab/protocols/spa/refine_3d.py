"""``spa.refine_3d``: gold-standard 3-D refinement by projection matching."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from cryolab.core.params import BoolParam, FloatParam, InputParam, IntParam
from cryolab.core.protocol import Output, StepContext
from cryolab.core.sets import Set
from cryolab.em.fsc import fsc, low_pass, resolution
from cryolab.em.imageio import write_mrc
from cryolab.em.objects import FSC, SetOfParticles, SetOfVolumes
from cryolab.em.reconstruct import Reconstructor
from cryolab.protocols.citations import (
    HENDERSON2012,
    PENCZEK1994,
    ROSENTHAL2003,
    SCHERES2012_OVERFITTING,
)
from cryolab.protocols.spa.particle_io import particle_acquisition
from cryolab.protocols.spa.reconstruct import half_assignment
from cryolab.protocols.spa.refinement import (
    IterativeRefinement,
    Pass,
    Poses,
    poses_table,
    read_reference,
)

SEARCH = "Search"
FINEST_STEP = 1.0
"""Finest angular step (degrees) the local searches go down to."""
REACH = 0.5
"""The next pass compares frequencies up to the current resolution times this."""


class Refine3D(IterativeRefinement):
    """Refine orientations and a map with gold-standard half sets.

    The particles are split into two halves (a ``half`` or ``relion.rlnRandomSubset`` column,
    else at random), each refined against its own reference from the same low-passed start, so
    the two half maps never share noise and their Fourier shell correlation (FSC) is an honest
    resolution estimate. The first pass searches all orientations on an ``angular_step`` grid
    (unless ``local_only``); later passes search locally, halving the step each pass down to
    about the angle that the current resolution can tell apart. Each pass compares
    frequencies up to the half maps' FSC = 0.143 resolution of the pass before, and the next
    references are the half maps filtered by their FSC (``sqrt(2 FSC / (1 + FSC))``), made
    non-negative (protein density is positive) and masked.
    The final map is reconstructed from all particles; its half maps and FSC are outputs.
    """

    name = "spa.refine_3d"
    deterministic = True
    label = "3-D refinement (gold-standard)"
    reference = InputParam(SetOfVolumes, help="Starting map (e.g. from spa.initial_model).")
    iterations = IntParam(default=8, min=1, max=200, help="Passes over the particles.")
    initial_resolution = FloatParam(
        default=20.0, min=1, unit="Å", section=SEARCH, help="Low-pass of the starting map."
    )
    angular_step = FloatParam(
        default=15.0, min=1, max=45, unit="°", section=SEARCH, help="Step of the first search."
    )
    global_passes = IntParam(
        default=2,
        min=1,
        section=SEARCH,
        expert=1,
        help="Passes that search all orientations before the local searches begin.",
    )
    local_only = BoolParam(
        default=False,
        section=SEARCH,
        help="Start from the particles' orientations (transform.*) with a local search.",
    )
    max_shift = FloatParam(default=4.0, min=0, unit="px", section=SEARCH)
    outputs = {
        "volume": Output(SetOfVolumes, help="The refined map with its two half maps"),
        "particles": Output(SetOfParticles, help="The particles with refined orientations"),
        "fsc": Output(FSC, help="FSC between the half maps (unmasked)"),
    }

    def allowed(
        self, particles: Set, rows: NDArray[np.int64], seed: int, iteration: int
    ) -> NDArray[np.int64]:
        result: NDArray[np.int64] = half_assignment(particles, seed)[rows] - 1
        return result

    def start_references(
        self, ctx: StepContext, particles: Set, size: int, pixel: float
    ) -> tuple[list[NDArray[np.float32]], dict[str, Any]]:
        volume = read_reference(ctx, size)
        if self.values["local_only"] and "transform.rot" not in particles:
            raise ValueError("local_only needs particles with orientations (transform.rot, ...)")
        start = float(self.values["initial_resolution"])
        reference = self.masked(low_pass(volume, pixel, start), pixel)
        return [reference, reference.copy()], {"resolution": start, "angular_step": None}

    def search_pass(self, iteration: int, state: dict[str, Any]) -> Pass:
        step = state.get("angular_step")
        first = iteration < int(self.values["global_passes"]) and not self.values["local_only"]
        if first or step is None:
            step = float(self.values["angular_step"])
        return Pass(
            resolution=float(state["resolution"]),
            global_search=first,
            angular_step=float(step),
            max_shift=float(self.values["max_shift"]) if first else 1.5,
            shift_step=1.0 if first else 0.5,
        )

    def insert_radius(self, search: Pass, size: int, pixel: float) -> float | None:
        return None  # the half maps' FSC needs every frequency

    def merged(
        self,
        ctx: StepContext,
        iteration: int,
        maps: list[NDArray[np.float32]],
        state: dict[str, Any],
        poses: Poses,
        pixel: float,
    ) -> tuple[list[NDArray[np.float32]], dict[str, Any]]:
        size = maps[0].shape[0]
        frequency, values = fsc(self.masked(maps[0], pixel), self.masked(maps[1], pixel), pixel)
        found = resolution(frequency, values, 0.143)
        search = self.search_pass(iteration, state)
        # the finest step worth searching: half the angle of a resolution element at the radius
        useful = max(
            FINEST_STEP, np.degrees(found / (2 * np.pi * self.mask_radius(size, pixel) * pixel))
        )
        step = max(useful, search.angular_step / 2 if not search.global_search else 7.5)
        weight = np.sqrt(np.clip(2 * values / (1 + values), 0, 1))
        references = [
            self.masked(np.clip(self._weighted(m, weight, pixel), 0, None), pixel) for m in maps
        ]
        ctx.log.info(
            "pass %d: half-map FSC 0.143 at %.2f A, next angular step %.2f deg, mean score %.4f",
            iteration + 1,
            found,
            step,
            float(poses.scores.mean()),
        )
        return references, {
            # compare a little beyond the current resolution, so the next pass can improve on it
            "resolution": float(max(REACH * found, 2 * pixel)),
            "angular_step": float(step),
            "fsc": [float(v) for v in values],
        }

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
        files = {}
        for index, half in enumerate(maps, start=1):
            target = ctx.run_dir / f"half{index}.mrc"
            write_mrc(target, half, voxel_size=pixel)
            files[f"volume.half{index}"] = [str(target.resolve())]
        whole = sums[0]
        whole.merge(sums[1])
        target = ctx.run_dir / "volume.mrc"
        write_mrc(target, whole.finish(wiener_constant=self.wiener(whole)), voxel_size=pixel)
        frequency, values = fsc(self.masked(maps[0], pixel), self.masked(maps[1], pixel), pixel)
        at_0143 = resolution(frequency, values, 0.143)
        properties = {"sampling_rate": pixel, "acquisition": acquisition.to_dict()}
        ctx.update_properties("volume", **properties, symmetry="C1", resolution=at_0143)
        ctx.append(
            "volume",
            {
                "image.path": [str(target.resolve())],
                "image.index": [1],
                **files,
                "volume.particles": [whole.count],
            },
        )
        ctx.update_properties(
            "fsc",
            sampling_rate=pixel,
            resolution=at_0143,
            **{"resolution_0.5": resolution(frequency, values, 0.5)},
        )
        ctx.append("fsc", {"fsc.frequency": frequency, "fsc.value": values})
        order = np.argsort(poses.rows)
        refined = {k: np.asarray(v)[order] for k, v in poses_table(particles, poses, pixel).items()}
        refined["half"] = (poses.references[order] + 1).astype(np.int64)
        refined["refine.score"] = poses.scores[order]
        ctx.update_properties("particles", **particles.properties)
        ctx.append("particles", particles.with_columns(**refined).to_arrow())
        ctx.log.info("refined %d particles: %.2f A at FSC 0.143", whole.count, at_0143)

    @staticmethod
    def _weighted(volume: NDArray[np.float32], weight: Any, pixel: float) -> NDArray[np.float32]:
        """The map with each shell multiplied by its weight (a per-shell filter)."""
        size = volume.shape[0]
        k = np.fft.fftfreq(size)
        radius = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)
        shells = np.minimum(np.round(radius * size).astype(int), len(weight) - 1)
        spectrum = np.fft.fftn(volume) * np.asarray(weight)[shells]
        spectrum[radius > 0.5] = 0
        return np.fft.ifftn(spectrum).real.astype(np.float32)

    citations = (
        *IterativeRefinement.citations,
        PENCZEK1994,
        SCHERES2012_OVERFITTING,
        HENDERSON2012,
        ROSENTHAL2003,
    )

    def methods(self) -> str:
        v = self.values
        search = (
            "local searches only"
            if v["local_only"]
            else f"{v['global_passes']} global passes on a {v['angular_step']:g}° grid, then "
            "local searches"
        )
        return (
            "Orientations were refined by projection matching [penczek1994ribosome] against "
            "two independently refined half maps (gold standard "
            f"[scheres2012overfitting, henderson2012validation]; {v['iterations']} passes, "
            f"{search}, starting at {v['initial_resolution']:g} Å), the references filtered "
            "by the half-map FSC; the resolution was read where the FSC fell below 0.143 "
            "[rosenthal2003optimal]."
        )
