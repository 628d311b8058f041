"""``simulate.spa``: simulated single-particle movies with their ground truth as sets.

The simulation is :mod:`cryolab.em.simulate` (conventions there and in
``docs/conventions.md``). One step makes the true map, then one step per micrograph (run in
parallel by the engine) writes its movie and appends its rows to every output.

Link key: the ground-truth CTFs, coordinates, particles and contamination carry
``micrograph_uid`` = the ``uid`` of their movie in ``movies``, and the drift carries
``movie_uid``. Motion correction keeps the movie's uid as each micrograph's ``movie_uid``, so
results on micrographs are compared with the truth through ``movie_uid``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cryolab.core.params import (
    BoolParam,
    ChoiceParam,
    FloatParam,
    IntParam,
    Issue,
    PathParam,
    RangeParam,
)
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set, new_uids
from cryolab.em.imageio import read_image, write_mrc, write_stack
from cryolab.em.objects import (
    Acquisition,
    SetOfCoordinates,
    SetOfCTFs,
    SetOfMovies,
    SetOfParticles,
    SetOfVolumes,
)
from cryolab.em.phantom import PHANTOM_DIAMETER, SHAPES
from cryolab.em.simulate import Settings, load_volume, simulate_micrograph

ACQUISITION = "Acquisition"
TRUTH_VOLUME = "true_volume.mrc"


class SimulateSpa(Protocol):
    """Simulate single-particle movies from a map, with the ground truth of every step.

    Each movie has its own defocus and astigmatism, a smooth sub-pixel drift, particles at known
    positions and orientations (uniform on the sphere), large contamination and small dense
    blobs that pickers may mistake for particles, an amorphous ice background (imaged with the
    same CTF, so the spectra show Thon rings) and Poisson noise at a per-frame SNR. The
    defaults (8 movies of 512 px at 2 A/px, 40 particles of box 64, 16 frames) keep a whole
    demonstration pipeline within minutes on two cores.
    """

    name = "simulate.spa"
    deterministic = True
    label = "Simulate single-particle data"
    micrographs = IntParam(default=8, min=1, help="Number of movies.")
    size = IntParam(default=512, min=64, unit="px", help="Edge of the square micrographs.")
    particles_per_micrograph = IntParam(
        default=40, min=0, help="Particles per micrograph (fewer if they do not fit)."
    )
    box = IntParam(
        default=64, min=16, unit="px", help="Box of the phantom and the particles (phantom only)."
    )
    diameter = FloatParam(
        default=PHANTOM_DIAMETER,
        min=1,
        unit="Å",
        help="Diameter of the phantom (when no volume is given): about 77 Å is a ~200 kDa "
        "protein, 150 Å a ~1 MDa complex.",
    )
    shape = ChoiceParam(
        list(SHAPES),
        default="elongated",
        help="Shape of the phantom: an elongated molecule, or a nearly round one (hard for "
        "ab-initio reconstruction; cryolab.em.phantom says why).",
    )
    frames = IntParam(default=16, min=1, help="Frames per movie.")
    pixel_size = FloatParam(default=2.0, min=0.1, unit="Å/px", section=ACQUISITION)
    voltage = FloatParam(default=300.0, min=20, max=1000, unit="kV", section=ACQUISITION)
    spherical_aberration = FloatParam(default=2.7, min=0, max=20, unit="mm", section=ACQUISITION)
    amplitude_contrast = FloatParam(default=0.1, min=0, max=0.99, section=ACQUISITION)
    dose_per_frame = FloatParam(default=2.5, min=0.01, unit="e/Å²", section=ACQUISITION)
    snr = FloatParam(
        default=0.0025,
        min=1e-6,
        help="Per-frame SNR over the particle boxes (0.0025 over 16 frames is about real data's "
        "0.001 over 40 frames).",
    )
    defocus = RangeParam(default=[10000.0, 25000.0], min=0, unit="Å", help="Mean defocus range.")
    astigmatism = RangeParam(
        default=[0.0, 800.0], min=0, unit="Å", help="Range of defocus_u - defocus_v."
    )
    drift = FloatParam(default=20.0, min=0, unit="Å", help="About the total drift path.")
    bfactor = FloatParam(default=40.0, min=0, unit="Å²", expert=1, help="CTF envelope B-factor.")
    dose_bfactor = FloatParam(
        default=0.0,
        min=0,
        unit="Å² per e/Å²",
        expert=1,
        help="Radiation damage: B-factor added per e/Å² of accumulated dose (0: none).",
    )
    contamination = BoolParam(default=True, help="Add contamination and small dense blobs.")
    ice = FloatParam(
        default=1.0,
        min=0,
        help="Contrast of the amorphous ice background (also CTF-modulated, it makes the Thon "
        "rings): its standard deviation over that of the particle signal (0: no ice).",
    )
    noise = ChoiceParam(["poisson", "gaussian"], default="poisson", expert=1)
    volume = PathParam(
        default=None,
        required=False,
        help="Map to project (cubic, at pixel_size; its edge is the box). Default: the phantom.",
    )
    device = ChoiceParam(["auto", "cpu", "gpu"], default="auto", expert=1)
    outputs = {
        "movies": Output(SetOfMovies, help="The simulated movies (MRC stacks)"),
        "true_volume": Output(SetOfVolumes, help="The map the particles were projected from"),
        "true_ctfs": Output(SetOfCTFs, help="True CTF per movie (micrograph_uid = movie uid)"),
        "true_coordinates": Output(SetOfCoordinates, help="True particle centres (px)"),
        "true_particles": Output(
            SetOfParticles, help="True positions, orientations and CTFs of the particles"
        ),
        "true_drift": Output(Set, help="Per movie and frame (1-based), the drift in px"),
        "true_contamination": Output(
            Set, help="Contamination and small blobs: centre, radius (px) and kind"
        ),
    }

    def settings(self, box: int | None = None) -> Settings:
        """The simulation settings of the parameters (``box`` of the map when given)."""
        v = self.values
        return Settings(
            size=v["size"],
            particles=v["particles_per_micrograph"],
            box=box or v["box"],
            diameter=v["diameter"],
            shape=v["shape"],
            frames=v["frames"],
            pixel_size=v["pixel_size"],
            voltage=v["voltage"],
            spherical_aberration=v["spherical_aberration"],
            amplitude_contrast=v["amplitude_contrast"],
            dose_per_frame=v["dose_per_frame"],
            snr=v["snr"],
            defocus_range=(float(v["defocus"][0]), float(v["defocus"][1])),
            astigmatism=(float(v["astigmatism"][0]), float(v["astigmatism"][1])),
            drift=v["drift"],
            bfactor=v["bfactor"],
            dose_bfactor=v["dose_bfactor"],
            contamination=v["contamination"],
            ice=v["ice"],
            noise=v["noise"],
            device=v["device"],
        )

    def acquisition(self) -> Acquisition:
        """The acquisition of the simulated movies."""
        v = self.values
        return Acquisition(
            voltage=v["voltage"],
            spherical_aberration=v["spherical_aberration"],
            amplitude_contrast=v["amplitude_contrast"],
            sampling_rate=v["pixel_size"],
            dose_per_frame=v["dose_per_frame"],
        )

    def check(self) -> list[Issue]:
        v = self.values
        issues = [Issue("", problem) for problem in self.acquisition().check()]
        if not v["volume"] and v["diameter"] / v["pixel_size"] > 0.9 * v["box"]:
            issues.append(Issue("box", f"the {v['diameter']:g} Å phantom does not fit in this box"))
        if v["size"] < 2 * v["box"]:
            issues.append(Issue("size", "micrographs must be at least two boxes wide"))
        if v["defocus"][0] <= v["astigmatism"][1] / 2:
            issues.append(Issue("astigmatism", "astigmatism would make a defocus negative"))
        return issues

    def plan(self) -> Iterator[Step]:
        yield Step("volume", "make_volume")
        for index in range(self.values["micrographs"]):
            yield Step(f"micrograph-{index:05d}", "make_micrograph", {"index": index}, ("volume",))

    def _properties(self, **extra: Any) -> dict[str, Any]:
        return {
            "sampling_rate": self.values["pixel_size"],
            "acquisition": self.acquisition().to_dict(),
            **extra,
        }

    def make_volume(self, ctx: StepContext) -> None:
        """Write the true map (the phantom or the given volume) and its one-row set."""
        volume = load_volume(self.values["volume"], self.settings())
        path = write_mrc(ctx.run_dir.resolve() / TRUTH_VOLUME, volume, self.values["pixel_size"])
        ctx.update_properties("true_volume", **self._properties())
        ctx.append(
            "true_volume",
            {
                "uid": list(new_uids(1, ctx.rng)),
                "image.path": [str(path)],
                "image.index": [1],
                "volume.source": [self.values["volume"] or "phantom"],
            },
        )
        ctx.log.info("true map: %d^3 voxels", volume.shape[0])

    def make_micrograph(self, ctx: StepContext, index: int) -> None:
        """Simulate movie ``index`` and append its rows to every output."""
        volume = np.asarray(read_image(ctx.run_dir.resolve() / TRUTH_VOLUME), dtype=np.float32)
        settings = self.settings(box=volume.shape[0])
        movie_uid = int(new_uids(1, ctx.rng)[0])
        result = simulate_micrograph(volume, settings, ctx.rng)
        folder = ctx.run_dir.resolve() / "movies"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"movie_{index:05d}"
        path = write_stack(folder / f"{name}.mrcs", result.frames, settings.pixel_size)
        truth = result.truth
        self._append(ctx, "movies", self._properties(), self._movie_row(path, name, movie_uid))
        self._append(
            ctx,
            "true_ctfs",
            self._properties(),
            {
                "uid": new_uids(1, ctx.rng),
                "micrograph_uid": [movie_uid],
                "ctf.defocus_u": [truth.defocus_u],
                "ctf.defocus_v": [truth.defocus_v],
                "ctf.defocus_angle": [truth.defocus_angle],
                "ctf.phase_shift": [0.0],
            },
        )
        count = len(truth.particles["x"])
        links = {"micrograph_uid": np.full(count, movie_uid, dtype=np.uint64)}
        position = {"coordinate.x": truth.particles["x"], "coordinate.y": truth.particles["y"]}
        box = {"box_size": settings.box}
        self._append(
            ctx,
            "true_coordinates",
            self._properties(**box),
            {"uid": new_uids(count, ctx.rng), **links, **position},
        )
        particles = {
            "uid": new_uids(count, ctx.rng),
            **links,
            **position,
            "transform.rot": truth.particles["rot"],
            "transform.tilt": truth.particles["tilt"],
            "transform.psi": truth.particles["psi"],
            "transform.shift_x": np.zeros(count),
            "transform.shift_y": np.zeros(count),
            "ctf.defocus_u": np.full(count, truth.defocus_u),
            "ctf.defocus_v": np.full(count, truth.defocus_v),
            "ctf.defocus_angle": np.full(count, truth.defocus_angle),
            "ctf.phase_shift": np.zeros(count),
        }
        self._append(ctx, "true_particles", self._properties(**box), particles)
        frames = len(truth.drift)
        drift = {
            "uid": new_uids(frames, ctx.rng),
            "movie_uid": np.full(frames, movie_uid, dtype=np.uint64),
            "frame": np.arange(1, frames + 1),
            "shift_x": truth.drift[:, 0],
            "shift_y": truth.drift[:, 1],
        }
        self._append(ctx, "true_drift", {"unit": "px"}, drift)
        spots = len(truth.contamination["x"])
        contamination = {
            "uid": new_uids(spots, ctx.rng),
            "micrograph_uid": np.full(spots, movie_uid, dtype=np.uint64),
            "coordinate.x": truth.contamination["x"],
            "coordinate.y": truth.contamination["y"],
            "contamination.radius": truth.contamination["radius"],
            "contamination.kind": [str(kind) for kind in truth.contamination["kind"]],
        }
        self._append(ctx, "true_contamination", {"unit": "px"}, contamination)
        ctx.log.info("movie %s: %d particles, %d contamination spots", name, count, spots)

    def _movie_row(self, path: Path, name: str, uid: int) -> dict[str, Any]:
        v = self.values
        return {
            "uid": [uid],
            "image.path": [str(path)],
            "image.index": [1],
            "image.width": [v["size"]],
            "image.height": [v["size"]],
            "movie.frames": [v["frames"]],
            "movie.name": [name],
        }

    @staticmethod
    def _append(
        ctx: StepContext, output: str, properties: dict[str, Any], rows: dict[str, Any]
    ) -> None:
        ctx.update_properties(output, ground_truth=True, **properties)
        ctx.append(output, rows)

    def methods(self) -> str:
        v = self.values
        return (
            f"{v['micrographs']} movies of {v['frames']} frames ({v['size']} px at "
            f"{v['pixel_size']:g} Å/px, {v['dose_per_frame']:g} e/Å² per frame) with "
            f"{v['particles_per_micrograph']} particles each were simulated by real-space "
            f"projection of {'the given map' if v['volume'] else 'a synthetic phantom'}, "
            f"CTF modulation ({v['voltage']:g} kV, Cs {v['spherical_aberration']:g} mm, defocus "
            f"{v['defocus'][0]:g} to {v['defocus'][1]:g} Å) of particles and an amorphous ice "
            f"background (contrast {v['ice']:g}), smooth drift and Poisson noise "
            f"at a per-frame SNR of {v['snr']:g}."
        )
