"""``spa.motion_correct``: global frame alignment, dose weighting and summing of movies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cryolab.core.params import BoolParam, ChoiceParam, FloatParam, InputParam, IntParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set, new_uids
from cryolab.em.imageio import read_image, write_mrc
from cryolab.em.motion import align_frames, dose_weight, sum_frames
from cryolab.em.objects import Acquisition, SetOfMicrographs, SetOfMovies
from cryolab.protocols.citations import GRANT2015

ADVANCED = "Advanced"


def fourier_bin(image: NDArray[Any], factor: int) -> NDArray[np.float32]:
    """Downsample an image by an integer factor by cropping its Fourier transform."""
    if factor == 1:
        return np.asarray(image, dtype=np.float32)
    ny, nx = image.shape
    my, mx = (ny // factor) // 2 * 2, (nx // factor) // 2 * 2
    spectrum = np.fft.fftshift(np.fft.fft2(image))
    cy, cx = ny // 2, nx // 2
    cropped = spectrum[cy - my // 2 : cy + my // 2, cx - mx // 2 : cx + mx // 2]
    binned = np.fft.ifft2(np.fft.ifftshift(cropped)).real * (my * mx) / (ny * nx)
    return binned.astype(np.float32)


class MotionCorrect(Protocol):
    """Align the frames of each movie globally and write their (dose-weighted) sum.

    Each frame is aligned to the sum of the other frames by cross-correlation with sub-pixel
    peak refinement, iterated until the shifts settle. With ``dose_weighting`` the aligned
    frames are weighted by the critical-exposure model of Grant & Grigorieff (2015), which
    needs the movies' ``dose_per_frame``. Movies are shared among ``parallel`` steps.
    """

    name = "spa.motion_correct"
    deterministic = True
    label = "Motion correction"
    movies = InputParam(SetOfMovies, label="Movies")
    device = ChoiceParam(["auto", "cpu", "gpu"], default="auto", help="Where to compute.")
    dose_weighting = BoolParam(default=True, help="Weight frames by their accumulated dose.")
    bfactor = FloatParam(
        default=500.0, min=0.0, unit="Å²", help="Low-pass B-factor used for the alignment."
    )
    max_shift = FloatParam(
        default=40.0, min=1.0, unit="px", help="Largest shift searched between rounds."
    )
    iterations = IntParam(default=10, min=1, max=100, help="Most alignment rounds.")
    smoothing = FloatParam(
        default=0.0,
        min=0.0,
        unit="frames",
        section=ADVANCED,
        expert=1,
        help="Gaussian smoothing of the trajectory (0: none).",
    )
    binning = IntParam(
        default=1, min=1, max=8, section=ADVANCED, help="Fourier binning of the output sums."
    )
    parallel = IntParam(default=4, min=1, max=1024, help="Steps the movies are shared among.")
    outputs = {
        "micrographs": Output(SetOfMicrographs, help="Aligned sums, one per movie"),
        "shifts": Output(Set, help="Per-frame shifts: movie_uid, frame, shift_x, shift_y (px)"),
    }
    citations = (*Protocol.citations, GRANT2015)

    def plan(self) -> Iterator[Step]:
        shards = int(self.values["parallel"])
        for shard in range(shards):
            yield Step(f"align-{shard:04d}", "align", {"shard": shard, "shards": shards})

    def align(self, ctx: StepContext, shard: int, shards: int) -> None:
        """Align the movies ``shard``, ``shard + shards``, ... and write their sums."""
        movies: Set = ctx.input("movies")
        if len(movies) == 0:
            raise ValueError("the input movies set is empty: there is nothing to process")
        acquisition = _acquisition(movies)
        size = acquisition.sampling_rate
        factor = int(self.values["binning"])
        dose = acquisition.dose_per_frame
        if self.values["dose_weighting"] and not dose:
            raise ValueError(
                "dose weighting needs the movies' dose_per_frame (e/A^2 per frame); import "
                "the movies with it, or switch dose_weighting off"
            )
        permissive = bool(movies.properties.get("permissive", False))
        folder = ctx.run_dir / "micrographs"
        folder.mkdir(parents=True, exist_ok=True)
        device = str(self.values["device"])
        rows: dict[str, list[Any]] = {"image.path": [], "micrograph.name": [], "movie_uid": []}
        shift_rows: dict[str, list[Any]] = {"movie_uid": [], "frame": [], "x": [], "y": []}
        indices = list(range(shard, len(movies), shards))
        for index in indices:
            movie = movies[index]
            frames = np.asarray(read_image(movie.path, None, permissive), dtype=np.float32)
            if frames.ndim != 3 or frames.shape[0] < 2:
                raise ValueError(
                    f"{movie.path}: a movie needs 2 or more frames, not {frames.shape}"
                )
            shifts = align_frames(
                frames,
                iterations=int(self.values["iterations"]),
                bfactor=float(self.values["bfactor"]),
                max_shift=float(self.values["max_shift"]),
                pixel_size=size,
                smooth=float(self.values["smoothing"]),
                device=device,
            )
            if self.values["dose_weighting"]:
                total = dose_weight(
                    frames,
                    float(dose or 0.0),
                    size,
                    acquisition.voltage,
                    shifts=shifts,
                    device=device,
                )
            else:
                total = sum_frames(frames, shifts, device)
            name = movie.path.name.split(".")[0]
            path = folder / f"{index:06d}_{name}.mrc"
            write_mrc(path, fourier_bin(total, factor), voxel_size=size * factor)
            uid = int(movies.uids[index])
            rows["image.path"].append(str(path))
            rows["micrograph.name"].append(name)
            rows["movie_uid"].append(uid)
            shift_rows["movie_uid"].extend([uid] * len(shifts))
            shift_rows["frame"].extend(range(1, len(shifts) + 1))
            shift_rows["x"].extend(shifts[:, 0].tolist())
            shift_rows["y"].extend(shifts[:, 1].tolist())
            ctx.log.info(
                "%s: %d frames, largest shift %.2f px",
                name,
                len(shifts),
                float(np.hypot(shifts[:, 0], shifts[:, 1]).max()),
            )
        acquisition.sampling_rate = size * factor
        properties = {"sampling_rate": size * factor, "acquisition": acquisition.to_dict()}
        ctx.update_properties("micrographs", **properties)
        ctx.update_properties("shifts", sampling_rate=size)
        if not indices:
            return
        ctx.append(
            "micrographs",
            {
                **rows,
                "image.index": [1] * len(indices),
                "movie_uid": np.asarray(rows["movie_uid"], dtype=np.uint64),
                "uid": new_uids(len(indices), ctx.rng),
            },
        )
        ctx.append(
            "shifts",
            {
                "movie_uid": np.asarray(shift_rows["movie_uid"], dtype=np.uint64),
                "frame": np.asarray(shift_rows["frame"], dtype=np.int64),
                "shift_x": np.asarray(shift_rows["x"], dtype=np.float64),
                "shift_y": np.asarray(shift_rows["y"], dtype=np.float64),
                "uid": new_uids(len(shift_rows["frame"]), ctx.rng),
            },
        )

    def methods(self) -> str:
        v = self.values
        text = (
            "Movie frames were aligned globally, as in Unblur [grant2015dose], by iterative "
            "cross-correlation of each frame with the sum of the others, filtered with a "
            f"B-factor of {v['bfactor']:g} Å² ({v['iterations']} iterations at most, shifts up "
            f"to {v['max_shift']:g} px)"
        )
        if v["binning"] > 1:
            text += f", the sums binned by {v['binning']} by Fourier cropping"
        if v["dose_weighting"]:
            text += ", and the aligned frames were dose-weighted with the critical-exposure "
            text += "model of the same work"
        return text + "."


def _acquisition(movies: Set) -> Acquisition:
    data: dict[str, Any] = dict(movies.properties.get("acquisition") or {})
    acquisition = Acquisition.from_dict(data)
    sampling = movies.properties.get("sampling_rate") or data.get("sampling_rate")
    if not sampling or not float(sampling) > 0:
        raise ValueError("the movies have no sampling_rate property (pixel size in A/px)")
    acquisition.sampling_rate = float(sampling)
    return acquisition
