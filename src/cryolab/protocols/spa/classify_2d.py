"""``spa.classify_2d``: reference-free 2-D alignment and classification of particles.

The numerics are in :mod:`cryolab.em.classify2d`. Steps: ``align-II-PP`` aligns block ``PP``
of the particles (``parts`` disjoint blocks, streamed ``batch_size`` images at a time) against
the averages of pass ``II - 1`` and writes its partial class sums and per-particle assignment
to its step folder; ``merge-II`` adds the partial sums into new averages (``references.npz``).
Pass 0 assigns classes and angles at random. The last merge writes the outputs: the class
averages as one MRC stack in the run folder and the particles with their class and pose.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cryolab.core.params import BoolParam, ChoiceParam, FloatParam, InputParam, IntParam, Issue
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set
from cryolab.em.classify2d import (
    PartialSums,
    Settings,
    Templates,
    align,
    ctf_grid,
    load_sums,
    merge_sums,
    schedule,
)
from cryolab.em.imageio import write_stack
from cryolab.em.objects import SetOfClasses2D, SetOfParticles
from cryolab.em.xp import array_module
from cryolab.protocols.citations import SCHERES2012
from cryolab.protocols.spa.particle_io import (
    CTF_COLUMNS,
    batches,
    box_size,
    column,
    is_inverted,
    particle_acquisition,
)
from cryolab.protocols.spa.pick import require_items

CITATION = SCHERES2012


class Classify2D(Protocol):
    """Reference-free 2-D classification: class averages and per-particle class and pose.

    Particles (protein bright, background normalised) are compared in Fourier space, below an
    annealed resolution limit, with every class average at every in-plane angle and integer
    shift, by CTF-weighted normalised cross-correlation; each goes to its best match and the
    averages are rebuilt as Wiener-type CTF-corrected means, centred and masked. The first
    pass groups particles at random. ``class.resolution`` is the 0.143 crossing of the Fourier
    ring correlation between the averages of two random halves of a class (optimistic: the
    halves share one reference).
    """

    name = "spa.classify_2d"
    deterministic = True
    label = "2-D classification"
    particles = InputParam(SetOfParticles, help="Particles (contrast inverted: protein bright).")
    classes = IntParam(default=10, min=1, help="Number of classes.")
    iterations = IntParam(default=12, min=1, help="Alignment passes after the random start.")
    mask_diameter = FloatParam(
        default=None, required=False, min=1, unit="Å", help="Soft circular mask; 90 % of the box."
    )
    max_shift = IntParam(default=3, min=0, unit="px", help="Largest shift searched per pass.")
    angular_step = FloatParam(
        default=6.0, min=0.5, max=90, unit="deg", expert=1, help="In-plane angle sampling."
    )
    resolution = FloatParam(
        default=8.0,
        min=0.1,
        unit="Å",
        expert=1,
        help="Final resolution limit of the search (at least 2.5 px), reached by annealing.",
    )
    ctf_correction = BoolParam(default=True, help="Weight by the CTF (needs ctf.defocus_u).")
    parts = IntParam(default=2, min=1, help="Parallel alignment steps per pass.")
    batch_size = IntParam(
        default=256, min=1, expert=1, help="Images read and aligned at once (bounds memory)."
    )
    device = ChoiceParam(["auto", "cpu", "gpu"], default="auto", help="Where to compute.")
    outputs = {
        "classes": Output(SetOfClasses2D, help="Class averages (non-empty classes)"),
        "particles": Output(SetOfParticles, help="The particles with class_id and 2-D pose"),
    }
    citations = (*Protocol.citations, CITATION)

    def check(self) -> list[Issue]:
        issues = []
        if self.values["classes"] > 500:
            issues.append(Issue("classes", "more than 500 classes is not supported"))
        if (360.0 / self.values["angular_step"]) * self.values["classes"] > 60000:
            issues.append(Issue("angular_step", "too fine for this many classes (memory)"))
        return issues

    def plan(self) -> Iterator[Step]:
        parts, passes = int(self.values["parts"]), int(self.values["iterations"]) + 1
        previous: tuple[str, ...] = ()
        for number in range(passes):
            ids = tuple(f"align-{number:02d}-{part:02d}" for part in range(parts))
            for part, step_id in enumerate(ids):
                yield Step(step_id, "align", {"number": number, "part": part}, deps=previous)
            merge = f"merge-{number:02d}"
            yield Step(merge, "merge", {"number": number, "steps": list(ids)}, deps=ids)
            previous = (merge,)

    def _settings(self, particles: Set) -> Settings:
        require_items(particles, "particles")
        if "image.path" not in particles:
            raise ValueError("the particles lack the column image.path")
        if self.values["classes"] > len(particles):
            raise ValueError(
                f"{self.values['classes']} classes for {len(particles)} particles: "
                "ask for at most as many classes as particles"
            )
        use_ctf = bool(self.values["ctf_correction"])
        if use_ctf and "ctf.defocus_u" not in particles:
            raise ValueError(
                "ctf_correction needs the column ctf.defocus_u; switch it off or add CTFs"
            )
        pixel, acquisition = particle_acquisition(particles)
        return Settings(
            size=box_size(particles),
            pixel_size=pixel,
            classes=int(self.values["classes"]),
            angular_step=float(self.values["angular_step"]),
            max_shift=int(self.values["max_shift"]),
            mask_diameter=self.values["mask_diameter"],
            ctf=use_ctf,
            inverted=is_inverted(particles),
            voltage=acquisition.voltage,
            spherical_aberration=acquisition.spherical_aberration,
            amplitude_contrast=acquisition.amplitude_contrast,
        )

    def align(self, ctx: StepContext, number: int, part: int) -> None:
        """Align one block of particles to the previous averages and sum it into classes."""
        particles: Set = ctx.input("particles")
        settings = self._settings(particles)
        xp = array_module(self.values["device"])
        templates = None
        if number > 0:
            limit = self._limits(settings)[number - 1]
            with np.load(self._references(ctx, number - 1)) as data:
                templates = Templates(data["averages"], settings, limit, xp)
        rows = np.array_split(np.arange(len(particles)), int(self.values["parts"]))[part]
        halves = np.random.default_rng([ctx.seed, 2]).permutation(len(particles)) % 2 + 1
        ctf = {name.split(".")[1]: column(particles, name) for name in CTF_COLUMNS}
        rng = np.random.default_rng([ctx.seed, number, part])
        sums = PartialSums(settings, xp)
        found: dict[str, list[Any]] = {"rows": []}
        batch = int(self.values["batch_size"])
        for chosen, images in batches(particles, rows, batch):
            grids = ctf_grid(settings, {k: v[chosen] for k, v in ctf.items()}, xp)
            result, spectra = align(xp.asarray(images), grids, templates, settings, rng, xp)
            sums.add(spectra, grids, result, halves[chosen])
            found["rows"].append(chosen)
            for name, values in vars(result).items():
                found.setdefault(name, []).append(values)
        sums.save(ctx.step_dir / "sums.npz")
        np.savez(
            ctx.step_dir / "assignment.npz", **{k: np.concatenate(v) for k, v in found.items()}
        )
        mean = float(np.concatenate(found["score"]).mean()) if found["score"] else 0.0
        ctx.log.info(
            "pass %d: aligned %d particles (part %d), mean score %.3f",
            number,
            len(rows),
            part + 1,
            mean,
        )

    def merge(self, ctx: StepContext, number: int, steps: list[str]) -> None:
        """Add the partial sums into new averages; the last pass writes the outputs."""
        particles: Set = ctx.input("particles")
        settings = self._settings(particles)
        final = number == int(self.values["iterations"])
        folders = [ctx.run_dir / "steps" / step_id for step_id in steps]
        numerator, weight, counts = load_sums([folder / "sums.npz" for folder in folders])
        references = merge_sums(numerator, weight, counts, settings, final=final)
        np.savez(ctx.step_dir / "references.npz", averages=references.averages)
        sizes = references.counts
        ctx.log.info(
            "pass %d: class sizes %s, median class resolution %.1f A",
            number,
            sizes.tolist(),
            float(np.median(references.resolutions[sizes > 0])),
        )
        if final:
            self._write(ctx, particles, settings, references, folders)

    def _write(
        self,
        ctx: StepContext,
        particles: Set,
        settings: Settings,
        references: Any,
        folders: list[Path],
    ) -> None:
        pixel, acquisition = particle_acquisition(particles)
        kept = np.flatnonzero(references.counts > 0)
        stack = write_stack(
            ctx.run_dir / "classes.mrcs", references.averages[kept].astype(np.float32), pixel
        )
        total = float(references.counts.sum())
        ctx.update_properties(
            "classes",
            sampling_rate=pixel,
            acquisition=acquisition.to_dict(),
            box_size=settings.size,
        )
        ctx.append(
            "classes",
            {
                "image.path": [str(stack.resolve())] * len(kept),
                "image.index": np.arange(1, len(kept) + 1, dtype=np.int64),
                "class_id": kept.astype(np.int64) + 1,
                "class.size": references.counts[kept].astype(np.int64),
                "class.distribution": references.counts[kept] / total,
                "class.resolution": references.resolutions[kept],
            },
        )
        assignment: dict[str, list[Any]] = {}
        for folder in folders:
            with np.load(folder / "assignment.npz") as data:
                for name in data.files:
                    assignment.setdefault(name, []).append(data[name])
        joined = {k: np.concatenate(v) for k, v in assignment.items()}
        order = np.argsort(joined["rows"])
        ctx.update_properties("particles", **particles.properties)
        ctx.append(
            "particles",
            particles.with_columns(
                **{
                    "class_id": joined["classes"][order] + 1,
                    "transform.psi": joined["psi"][order],
                    "transform.shift_x": joined["shift_x"][order] * pixel,
                    "transform.shift_y": joined["shift_y"][order] * pixel,
                    "class.score": joined["score"][order],
                }
            ),
        )
        ctx.log.info(
            "%d particles in %d classes (%d empty classes left out)",
            len(particles),
            len(kept),
            settings.classes - len(kept),
        )

    def _limits(self, settings: Settings) -> list[float]:
        return schedule(int(self.values["iterations"]), settings, float(self.values["resolution"]))

    @staticmethod
    def _references(ctx: StepContext, number: int) -> Path:
        return ctx.run_dir / "steps" / f"merge-{number:02d}" / "references.npz"

    def summary(self, output_sizes: Mapping[str, int] | None = None) -> str:
        text = f"{self.label}: {self.values['classes']} classes, {self.values['iterations']} passes"
        if output_sizes:
            text += ", " + ", ".join(f"{k}: {v} items" for k, v in output_sizes.items())
        return text

    def methods(self) -> str:
        ctf = "CTF-weighted " if self.values["ctf_correction"] else ""
        return (
            f"Particles were classified into {self.values['classes']} 2-D classes without "
            f"references by {self.values['iterations']} passes of hard-assignment "
            f"{ctf}normalised cross-correlation alignment over in-plane angles every "
            f"{self.values['angular_step']:g}° and shifts up to {self.values['max_shift']} px, "
            f"annealing the resolution limit to {self.values['resolution']:g} Å, with "
            "Wiener-filtered class averages as in RELION's model [scheres2012relion]."
        )
