"""``make demo`` / ``cryolab demo``: a small generic workflow on embedded defaults.

It writes two synthetic particle-like tables (positions, defocus, scores; a classification
result keyed by uid), then drives a project through the engine: import both, subset by a
condition, split into random halves, join the classification onto the subset, and merge the
halves back. Each step is a run in its own process; the summary checks the set algebra.
(The single-particle pipeline on simulated micrographs replaces this once the SPA protocols
exist.)
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cryolab.core.project import Project, open_project
from cryolab.core.sets import new_uids


def write_tables(folder: Path, rows: int, seed: int = 7) -> tuple[Path, Path]:
    """Write the synthetic particle table and a classification table keyed by its uids."""
    rng = np.random.default_rng(seed)
    uids = new_uids(rows, rng)
    defocus = rng.uniform(8_000, 35_000, rows)
    particles = pa.table(
        {
            "uid": uids,
            "micrograph_uid": rng.integers(1, 1 + max(1, rows // 200), rows).astype(np.uint64),
            "coordinate.x": rng.uniform(0, 4096, rows).astype(np.float32),
            "coordinate.y": rng.uniform(0, 4096, rows).astype(np.float32),
            "ctf.defocus_u": defocus,
            "ctf.defocus_v": defocus - rng.uniform(0, 800, rows),
            "ctf.defocus_angle": rng.uniform(-90, 90, rows),
            "score": rng.beta(2, 5, rows),
        }
    )
    chosen = rng.random(rows) < 0.8
    classes = pa.table(
        {
            "uid": uids[chosen],
            "class_id": rng.integers(1, 11, int(chosen.sum())).astype(np.int32),
            "class_score": rng.random(int(chosen.sum())),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "particles.parquet", folder / "classes.parquet"
    pq.write_table(particles, paths[0])
    pq.write_table(classes, paths[1])
    return paths


def main(path: str = "demo-project", rows: int = 200_000) -> int:
    """Run the demonstration workflow into the project folder ``path`` (recreated)."""
    folder = Path(path)
    if (folder / "project.sqlite").exists():
        shutil.rmtree(folder)
    elif folder.exists() and any(folder.iterdir()):
        print(f"{folder} exists and is not a cryolab project; choose another --path")
        return 2
    start = time.perf_counter()
    project = open_project(folder)
    particles_file, classes_file = write_tables(folder / "data", rows)
    print(f"cryolab demo: {rows} synthetic particles in {project.path}")

    particles = project.run("sets.import_table", files=str(particles_file), label="particles")
    classes = project.run("sets.import_table", files=str(classes_file), label="2-D classes")
    good = project.run(
        "sets.subset",
        source=particles.out.rows,
        where="ctf.defocus_u < 30000 and score > 0.15",
        label="good particles",
    )
    halves = project.run(
        "sets.split", source=good.out.subset, parts=2, seed=1, label="gold-standard halves"
    )
    project.run(
        "sets.join",
        source=good.out.subset,
        other=classes.out.rows,
        how="inner",
        label="classified good particles",
    )
    merged = project.run(
        "sets.merge", sets=[halves.out.part1, halves.out.part2], label="halves merged"
    )
    for run in project.runs():
        run.wait()
    _report(project, time.perf_counter() - start)
    subset = good.out.subset.load()
    back = merged.out.merged.load()
    assert set(back.uids) == set(subset.uids), "merging the halves must give the subset back"
    print(f"check: the merged halves hold exactly the {len(back)} uids of the subset")
    print(
        f"\nOpen it in Python or JupyterLab (make lab):\n"
        f"    import cryolab; project = cryolab.open_project({str(project.path)!r})\n"
        f"or from the shell: .venv/bin/cryolab graph {folder}"
    )
    return 0


def _report(project: Project, seconds: float) -> None:
    print(f"\n{'run':>4} {'protocol':20s} {'status':9s} {'time':>7}  outputs")
    for run in project.runs():
        row = project._run_row(run.id)
        took = (row["finished"] or 0) - (row["started"] or 0)
        outputs = ", ".join(f"{name}: {ref.count}" for name, ref in run.out.items())
        print(
            f"{run.id:>4} {run.protocol:20s} {run.status:9s} {took:6.2f}s  {outputs}  ({run.label})"
        )
    print(f"\n{len(project.runs())} runs, each in its own process, in {seconds:.1f} s")
