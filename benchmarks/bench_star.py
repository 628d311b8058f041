"""Benchmark cryolab's STAR import/export against ``starfile`` on a 1 M-particle RELION 3.1 file.

Builds a RELION 3.1 particles STAR file (``data_optics`` + ``data_particles``, 25 labels:
coordinates, CTF, angles, shifts in Å, class, likelihood statistics, ``rlnImageName`` and
``rlnMicrographName``; values with 6 decimals as RELION writes them) in a temporary folder, in
two layouts: aligned columns as RELION writes them, and single spaces as ``starfile`` (and
cryolab) write them. Then, in the same run, each as the median (and min) of ``--repeats``
repeats, alternating the two programs:

* import: ``read_star`` + ``star_to_particles`` (the set) against ``starfile.read`` (the
  DataFrames), for both layouts;
* export: ``particles_to_star`` (from the set) against ``starfile.write`` (from starfile's
  DataFrames of the same file).

Checks: the tables ``read_star`` gives equal starfile's DataFrames (values and types); the set
built from them equals the set built from starfile's DataFrames (same seed); both exported files
read back to the original tables (RELION's layout rounds values beyond 1e5 to 7 digits, so
only the single-spaced file is compared with the generated values). The goal is 2x faster
than starfile both ways.

Usage::

    .venv/bin/python benchmarks/bench_star.py [--rows 1000000] [--repeats 3] [--out PATH]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import starfile

import benchcommon
from cryolab.em.relion import particles_to_star, star_to_particles
from cryolab.em.star import read_star, write_star

GOAL = 2.0
MICROGRAPHS = 5000


def make_blocks(rows: int, seed: int = 0) -> dict[str, pa.Table]:
    """A RELION 3.1 particles file's blocks; floats rounded to 6 decimals like RELION's."""
    rng = np.random.default_rng(seed)
    micrograph = rng.integers(0, MICROGRAPHS, rows)
    per_micrograph = np.zeros(rows, np.int64)
    order = np.argsort(micrograph, kind="stable")
    starts = np.searchsorted(micrograph[order], micrograph[order])
    per_micrograph[order] = np.arange(rows) - starts + 1

    def decimals(values: np.ndarray) -> np.ndarray:
        return np.round(values, 6)

    defocus = rng.uniform(5000, 30000, rows)
    names = pa.array(
        [f"MotionCorr/job002/Movies/FoilHole_{m:06d}_fractions.mrc" for m in range(MICROGRAPHS)]
    )
    stacks = pa.array(
        [f"Extract/job007/Movies/FoilHole_{m:06d}_fractions.mrcs" for m in range(MICROGRAPHS)]
    )
    index = pa.array(micrograph)
    image_names = pa.compute.binary_join_element_wise(
        pa.compute.utf8_lpad(pa.array(per_micrograph).cast(pa.string()), 6, "0"),
        stacks.take(index),
        "@",
    )
    particles = {
        "rlnCoordinateX": np.round(rng.uniform(0, 4096, rows)),
        "rlnCoordinateY": np.round(rng.uniform(0, 4096, rows)),
        "rlnAutopickFigureOfMerit": decimals(rng.normal(size=rows)),
        "rlnClassNumber": rng.integers(1, 51, rows),
        "rlnAnglePsi": decimals(rng.uniform(-180, 180, rows)),
        "rlnImageName": image_names,
        "rlnMicrographName": names.take(index),
        "rlnOpticsGroup": np.ones(rows, np.int64),
        "rlnDefocusU": decimals(defocus),
        "rlnDefocusV": decimals(defocus - rng.uniform(0, 500, rows)),
        "rlnDefocusAngle": decimals(rng.uniform(-180, 180, rows)),
        "rlnCtfBfactor": np.zeros(rows),
        "rlnCtfScalefactor": np.ones(rows),
        "rlnPhaseShift": np.zeros(rows),
        "rlnCtfMaxResolution": decimals(rng.uniform(3, 8, rows)),
        "rlnCtfFigureOfMerit": decimals(rng.uniform(0, 0.3, rows)),
        "rlnAngleRot": decimals(rng.uniform(-180, 180, rows)),
        "rlnAngleTilt": decimals(rng.uniform(0, 180, rows)),
        "rlnOriginXAngst": decimals(rng.normal(0, 3, rows)),
        "rlnOriginYAngst": decimals(rng.normal(0, 3, rows)),
        "rlnNormCorrection": decimals(rng.uniform(0.8, 1.2, rows)),
        "rlnLogLikeliContribution": decimals(rng.normal(2.5e5, 1e3, rows)),
        "rlnMaxValueProbDistribution": decimals(rng.uniform(0, 1, rows)),
        "rlnNrOfSignificantSamples": rng.integers(1, 500, rows),
        "rlnRandomSubset": rng.integers(1, 3, rows),
    }
    optics = pa.table(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnAmplitudeContrast": [0.1],
            "rlnSphericalAberration": [2.7],
            "rlnVoltage": [300.0],
            "rlnImagePixelSize": [1.06],
            "rlnMicrographOriginalPixelSize": [0.885],
            "rlnImageSize": [256],
            "rlnImageDimensionality": [2],
        }
    )
    return {"optics": optics, "particles": pa.table(particles)}


def relion_text(column: pa.ChunkedArray) -> pa.Array:
    """Values as RELION writes them: right-aligned in 12 characters, floats with 6 decimals
    (``%12.6f``, or ``%12.6e`` beyond 1e5 and below 1e-3), integers ``%12d``, text as is."""
    if pa.types.is_floating(column.type):
        return pa.array(
            [
                f"{v:12.6e}" if (abs(v) > 1e5 or 0 < abs(v) < 1e-3) else f"{v:12.6f}"
                for v in column.to_pylist()
            ]
        )
    if pa.types.is_integer(column.type):
        return pa.array([f"{v:12d}" for v in column.to_pylist()])
    return column.combine_chunks().cast(pa.string())


def write_relion_layout(path: Path, blocks: dict[str, pa.Table]) -> Path:
    """A STAR file laid out the way RELION 3.1 writes one (``# version 30001``, ``#n`` labels,
    aligned values, a blank after each value)."""
    with open(path, "wb") as handle:
        for name, table in blocks.items():
            labels = "".join(f"_{n} #{i} \n" for i, n in enumerate(table.column_names, 1))
            handle.write(f"\n# version 30001\n\ndata_{name}\n\nloop_ \n{labels}".encode())
            columns = [relion_text(table.column(n)) for n in table.column_names]
            rows = pa.compute.binary_join_element_wise(*columns, pa.scalar(""), " ")
            text = pa.compute.binary_join_element_wise(rows, pa.scalar(""), "\n")
            handle.write("".join(text.to_pylist()).encode())
            handle.write(b" \n")
    return path


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def same_tables(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return list(a) == list(b) and all(
        a[name].equals(b[name]) and a[name].schema.types == b[name].schema.types for name in a
    )


def from_starfile(frames: dict[str, Any]) -> dict[str, pa.Table]:
    return {
        name: pa.Table.from_pandas(frame, preserve_index=False) for name, frame in frames.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-results/star.json"))
    parser.add_argument("--quick", action="store_true", help="100 k rows, 2 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeats = 100_000, 2

    results: list[dict[str, Any]] = []
    checks: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="bench-star-") as folder:
        base = Path(folder)
        blocks = make_blocks(args.rows)
        files = {
            "RELION layout (aligned)": write_relion_layout(base / "relion.star", blocks),
            "single spaces (starfile/cryolab)": write_star(
                base / "plain.star", blocks, version=30001
            ),
        }
        sizes = {name: path.stat().st_size for name, path in files.items()}
        print(
            f"{args.rows} particles; files: "
            + ", ".join(f"{n}: {s / 1e6:.0f} MB" for n, s in sizes.items())
        )

        frames: dict[str, Any] = {}
        particles = None
        for layout, path in files.items():
            ours_times, theirs_times = [], []
            for _ in range(args.repeats):
                elapsed, made = timed(
                    lambda p=path: star_to_particles(read_star(p), seed=0, root=folder)
                )
                ours_times.append(elapsed)
                elapsed, frames = timed(lambda p=path: starfile.read(p, always_dict=True))
                theirs_times.append(elapsed)
            particles = made
            theirs_tables = from_starfile(frames)
            checks[f"import {layout}: read_star tables == starfile DataFrames"] = same_tables(
                read_star(path), theirs_tables
            )
            reference = star_to_particles(theirs_tables, seed=0, root=folder)
            checks[f"import {layout}: set == set from starfile DataFrames"] = (
                made.to_arrow().equals(reference.to_arrow())
                and made.properties == reference.properties
            )
            if layout.startswith("single"):  # RELION's %12.6e rounds large values
                checks[f"import {layout}: tables == generated blocks"] = same_tables(
                    read_star(path), blocks
                )
            results.append(row(f"import, {layout}", ours_times, theirs_times))

        assert particles is not None
        ours_times, theirs_times = [], []
        for _ in range(args.repeats):
            elapsed, _ = timed(lambda: particles_to_star(particles, base / "ours.star"))
            ours_times.append(elapsed)
            elapsed, _ = timed(lambda: starfile.write(frames, base / "theirs.star"))
            theirs_times.append(elapsed)
        checks["export: particles_to_star file reads back to the original tables"] = same_tables(
            read_star(base / "ours.star"), blocks
        )
        checks["export: starfile.write file reads back to the original tables"] = same_tables(
            read_star(base / "theirs.star"), blocks
        )
        results.append(
            row("export (particles_to_star vs starfile.write)", ours_times, theirs_times)
        )

    facts = benchcommon.machine_facts()
    cpu = f"{facts['nproc']} cores ({facts['cpu_model']})"
    print(f"\nmachine: {cpu}, {facts['memory']}, Python {facts['python']}")
    print("\n| operation | cryolab | starfile | ratio | goal |")
    print("|---|---:|---:|---:|---|")
    failed = []
    for result in results:
        verdict = "PASS" if result["ratio"] >= GOAL else "FAIL"
        result["verdict"] = verdict
        if verdict == "FAIL":
            failed.append(result["operation"])
        print(
            f"| {result['operation']} | {result['ours_median']:.2f} s | "
            f"{result['theirs_median']:.2f} s | {result['ratio']:.1f}x | >= {GOAL:.0f}x {verdict} |"
        )
    print("\nchecks:")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
        if not ok:
            failed.append(name)
    document = {
        "benchmark": "star",
        "rows": args.rows,
        "repeats": args.repeats,
        "file_sizes": sizes,
        "results": results,
        "checks": checks,
        "machine": facts,
        "source": benchcommon.source_state(),
        "versions": {
            "starfile": _version("starfile"),
            "pyarrow": pa.__version__,
            "numpy": np.__version__,
        },
    }
    return benchcommon.finish(args.out, document, results, failed)


def row(operation: str, ours: list[float], theirs: list[float]) -> dict[str, Any]:
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    return {
        "operation": operation,
        "ours": ours,
        "theirs": theirs,
        "ours_median": ours_median,
        "theirs_median": theirs_median,
        "ratio": theirs_median / ours_median,
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    sys.exit(main())
