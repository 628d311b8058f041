"""Validate the SPA protocols implemented so far against the simulator's ground truth.

Runs, each as a run of one project: ``simulate.spa`` -> ``spa.motion_correct`` ->
``spa.ctf_estimate`` -> ``spa.pick`` -> ``spa.extract``, then compares with the truth: RMS error of
the per-frame shifts, median |mean defocus error|, picking F1 (match radius a quarter box).
Usage: ``.venv/bin/python benchmarks/validate_spa.py [--micrographs 4] [--out DIR]``.
Figures and thresholds are recorded in ``docs/validation.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import cryolab as cl
from cryolab.em.picking import match_picks

BOX = 64


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--micrographs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench-results/validate_spa.json"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    project = cl.open_project(Path(tempfile.mkdtemp(prefix="cryolab-validate-")) / "project")
    sim = project.run(
        "simulate.spa",
        micrographs=args.micrographs,
        size=512,
        box=BOX,
        particles_per_micrograph=40,
        frames=16,
        pixel_size=2.0,
        seed=1,
    ).wait()
    motion = project.run("spa.motion_correct", movies=sim.out.movies).wait()
    ctf = project.run(
        "spa.ctf_estimate", micrographs=motion.out.micrographs, defocus_range=[5000, 30000]
    ).wait()
    pick = project.run("spa.pick", micrographs=motion.out.micrographs, particle_diameter=80).wait()
    extract = project.run(
        "spa.extract",
        micrographs=motion.out.micrographs,
        coordinates=pick.out.coordinates,
        ctfs=ctf.out.ctfs,
        box=BOX,
    ).wait()
    micrographs = motion.out.micrographs.load()
    to_movie = dict(zip(micrographs.uids.tolist(), micrographs["movie_uid"].tolist(), strict=True))
    results: dict[str, Any] = {
        "motion_rms_px": motion_error(motion.out.shifts.load(), sim.out.true_drift.load()),
        "ctf_median_defocus_error_A": ctf_error(
            ctf.out.ctfs.load(), sim.out.true_ctfs.load(), to_movie
        ),
        "picking_f1": picking_f1(
            pick.out.coordinates.load(), sim.out.true_coordinates.load(), to_movie
        ),
        "particles_extracted": extract.out.particles.count,
        "seconds": round(time.perf_counter() - start, 1),
        "project": str(project.path),
    }
    print(json.dumps(results, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


def motion_error(found: Any, truth: Any) -> float:
    """RMS distance between estimated and true per-frame shifts (both centred per movie)."""
    merged = found.to_pandas().merge(
        truth.to_pandas(), on=["movie_uid", "frame"], suffixes=("", "_true")
    )
    for column in ("shift_x", "shift_y", "shift_x_true", "shift_y_true"):
        merged[column] -= merged.groupby("movie_uid")[column].transform("mean")
    error = (merged.shift_x - merged.shift_x_true) ** 2 + (
        merged.shift_y - merged.shift_y_true
    ) ** 2
    return float(np.sqrt(error.mean()))


def ctf_error(found: Any, truth: Any, to_movie: dict[int, int]) -> float:
    """Median absolute error of the mean defocus, in Å."""
    estimated = found.to_pandas()
    estimated["movie_uid"] = estimated.micrograph_uid.map(to_movie)
    true = truth.to_pandas().rename(columns={"micrograph_uid": "movie_uid"})
    joined = estimated.merge(true, on="movie_uid", suffixes=("", "_true"))
    mean = (joined["ctf.defocus_u"] + joined["ctf.defocus_v"]) / 2
    true_mean = (joined["ctf.defocus_u_true"] + joined["ctf.defocus_v_true"]) / 2
    return float(np.median(np.abs(mean - true_mean)))


def picking_f1(found: Any, truth: Any, to_movie: dict[int, int]) -> list[float]:
    """F1 per micrograph, matching within a quarter box."""
    picks = found.to_pandas()
    picks["movie_uid"] = picks.micrograph_uid.map(to_movie)
    true = truth.to_pandas()
    scores = []
    for movie, group in picks.groupby("movie_uid"):
        expected = true[true.micrograph_uid == movie]
        scores.append(
            round(
                match_picks(
                    group[["coordinate.x", "coordinate.y"]].to_numpy(),
                    expected[["coordinate.x", "coordinate.y"]].to_numpy(),
                    BOX / 4,
                )[2],
                3,
            )
        )
    return scores


if __name__ == "__main__":
    sys.exit(main())
