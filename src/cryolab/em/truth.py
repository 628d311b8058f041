"""Comparisons of SPA results with the ground truth of ``simulate.spa``.

Used by ``make demo`` (:mod:`cryolab.demo`); the thresholds are those of
``docs/validation.md``. Results on micrographs are linked to the truth through the micrograph's
``movie_uid`` (the truth's ``micrograph_uid`` is the movie's uid).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cryolab.core.sets import Set
from cryolab.em.fsc import fsc_to_reference, resolution
from cryolab.em.picking import match_picks
from cryolab.em.volalign import align_volume


def movie_of(micrographs: Set) -> dict[int, int]:
    """``micrograph uid -> movie uid`` of motion-corrected micrographs."""
    return dict(zip(micrographs.uids.tolist(), micrographs["movie_uid"].tolist(), strict=True))


def motion_error(found: Set, truth: Set) -> float:
    """RMS distance (px) between estimated and true per-frame shifts, both centred per movie."""
    merged = found.to_pandas().merge(
        truth.to_pandas(), on=["movie_uid", "frame"], suffixes=("", "_true")
    )
    for name in ("shift_x", "shift_y", "shift_x_true", "shift_y_true"):
        merged[name] -= merged.groupby("movie_uid")[name].transform("mean")
    error = (merged.shift_x - merged.shift_x_true) ** 2 + (
        merged.shift_y - merged.shift_y_true
    ) ** 2
    return float(np.sqrt(error.mean()))


def ctf_error(found: Set, truth: Set, to_movie: dict[int, int]) -> float:
    """Median absolute error (Å) of the mean defocus."""
    estimated = found.to_pandas()
    estimated["movie_uid"] = estimated.micrograph_uid.map(to_movie)
    true = truth.to_pandas().rename(columns={"micrograph_uid": "movie_uid"})
    joined = estimated.merge(true, on="movie_uid", suffixes=("", "_true"))
    mean = (joined["ctf.defocus_u"] + joined["ctf.defocus_v"]) / 2
    true_mean = (joined["ctf.defocus_u_true"] + joined["ctf.defocus_v_true"]) / 2
    return float(np.median(np.abs(mean - true_mean)))


def picking_f1(found: Set, truth: Set, to_movie: dict[int, int], radius: float) -> list[float]:
    """Picking F1 per micrograph, a pick matching a true centre within ``radius`` px."""
    picks = found.to_pandas()
    picks["movie_uid"] = picks.micrograph_uid.map(to_movie)
    true = truth.to_pandas()
    scores = []
    for movie, group in picks.groupby("movie_uid"):
        expected = true[true.micrograph_uid == movie]
        columns = ["coordinate.x", "coordinate.y"]
        scores.append(
            float(match_picks(group[columns].to_numpy(), expected[columns].to_numpy(), radius)[2])
        )
    return scores


def map_against_truth(
    volume: ArrayLike, truth: ArrayLike, pixel_size: float, mask_diameter: float
) -> dict[str, Any]:
    """Align a map to the true map (hand and orientation) and measure their FSC.

    Returns the alignment's ``mirrored`` flag and ``correlation``, the masked FSC curve
    (``frequency``, ``fsc``), the resolution where it falls below 0.5 (``resolution_0.5``) and
    the lowest FSC up to half Nyquist (``fsc_min_to_half_nyquist``).
    """
    aligned = align_volume(volume, truth, pixel_size=pixel_size)
    frequency, values = fsc_to_reference(aligned.volume, truth, pixel_size, mask_diameter)
    half_nyquist = 0.25 / pixel_size
    return {
        "mirrored": aligned.mirrored,
        "correlation": aligned.correlation,
        "frequency": frequency.tolist(),
        "fsc": values.tolist(),
        "resolution_0.5": resolution(frequency, values, 0.5),
        "fsc_min_to_half_nyquist": float(
            values[(frequency > 0) & (frequency <= half_nyquist)].min()
        ),
    }
