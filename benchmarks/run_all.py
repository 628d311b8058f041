"""Run every benchmark (each in its own process) and print a combined summary.

``make bench`` calls this. Results go to ``bench-results/`` (gitignored): ``sets.json``,
``engine.json``, ``star.json``, ``imageio.json``, ``kernels.json``, ``gallery.json`` and
``summary.json``.
Extra options are passed on::

    .venv/bin/python benchmarks/run_all.py [--rows N] [--repeats N] [--quick]

Exits non-zero when a benchmark misses a budget or fails to run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import benchcommon

HERE = Path(__file__).resolve().parent


def run(script: str, args: list[str]) -> tuple[int, float]:
    command = [sys.executable, str(HERE / script), *args]
    print(f"\n$ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    code = subprocess.run(command, check=False).returncode
    return code, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="rows of the set benchmark")
    parser.add_argument("--repeats", type=int, default=None, help="repeats of both benchmarks")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="100 k rows, 2 repeats, 5 launches, 1 run per executor: a smoke test",
    )
    parser.add_argument("--out-dir", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)

    sets_json = args.out_dir / "sets.json"
    engine_json = args.out_dir / "engine.json"
    star_json = args.out_dir / "star.json"
    imageio_json = args.out_dir / "imageio.json"
    kernels_json = args.out_dir / "kernels.json"
    gallery_json = args.out_dir / "gallery.json"
    sets_args = ["--out", str(sets_json)]
    engine_args = ["--out", str(engine_json)]
    star_args = ["--out", str(star_json)]
    imageio_args = ["--out", str(imageio_json)]
    kernels_args = ["--out", str(kernels_json)]
    gallery_args = ["--out", str(gallery_json)]
    if args.quick:
        sets_args += ["--rows", "100000", "--repeats", "2"]
        engine_args += ["--launches", "5", "--repeats", "1"]
        star_args += ["--quick"]
        imageio_args += ["--images", "5000", "--repeats", "2"]
        kernels_args += ["--quick"]
        gallery_args += ["--quick"]
    if args.rows is not None:
        sets_args += ["--rows", str(args.rows)]
    if args.repeats is not None:
        sets_args += ["--repeats", str(args.repeats)]
        engine_args += ["--repeats", str(args.repeats)]
        kernels_args += ["--repeats", str(args.repeats)]
        gallery_args += ["--repeats", str(args.repeats)]

    codes = {}
    for name, script, script_args, out in [
        ("sets", "bench_sets.py", sets_args, sets_json),
        ("engine", "bench_engine.py", engine_args, engine_json),
        ("star", "bench_star.py", star_args, star_json),
        ("imageio", "bench_imageio.py", imageio_args, imageio_json),
        ("kernels", "bench_kernels.py", kernels_args, kernels_json),
        ("gallery", "bench_gallery.py", gallery_args, gallery_json),
    ]:
        out.unlink(missing_ok=True)  # never summarise a stale result
        codes[name] = run(script, script_args)

    lines: list[dict[str, Any]] = []
    if sets_json.exists():
        sets = json.loads(sets_json.read_text(encoding="utf-8"))
        for row in sets["table"]:
            lines.append(
                {
                    "benchmark": f"sets ({sets['rows']:,} rows)",
                    "measure": row["operation"],
                    "median_s": row["cryolab_median"],
                    "budget_s": row["budget"],
                    "verdict": row["verdict"],
                    "vs": ", ".join(
                        f"{row[key]:.1f}x faster than {label}"
                        if row[key] >= 1
                        else f"{1 / row[key]:.1f}x slower than {label}"
                        for key, label in [
                            ("speedup_vs_sqlite", "SQLite"),
                            ("speedup_vs_starfile", "starfile/pandas"),
                        ]
                        if row[key]
                    ),
                }
            )
    if engine_json.exists():
        engine = json.loads(engine_json.read_text(encoding="utf-8"))
        for row in engine["table"]:
            lines.append(
                {
                    "benchmark": "engine",
                    "measure": row["measure"],
                    "median_s": row["median"],
                    "budget_s": row["budget"],
                    "verdict": row["verdict"],
                    "vs": "",
                }
            )
    if kernels_json.exists():
        for row in json.loads(kernels_json.read_text(encoding="utf-8"))["table"]:
            gpu = row["gpu_median"]
            lines.append(
                {
                    "benchmark": "kernels (numpy)",
                    "measure": row["kernel"],
                    "median_s": row["cpu_median"],
                    "budget_s": None,
                    "verdict": row["verdict"],
                    "vs": "GPU skipped"
                    if gpu is None
                    else f"cupy {gpu:.4f} s, {row['speedup']:.1f}x",
                }
            )

    if gallery_json.exists():
        gallery = json.loads(gallery_json.read_text(encoding="utf-8"))
        largest = str(gallery["sizes"][-1])
        for row in gallery["table"]:
            lines.append(
                {
                    "benchmark": f"gallery {int(largest):,}",
                    "measure": row["measure"],
                    "median_s": row["median"][largest],
                    "budget_s": row["budget"],
                    "verdict": row["verdict"],
                    "vs": f"{row['ratio_largest_to_smallest']:.2f}x the time at "
                    f"{gallery['sizes'][0]:,}",
                }
            )

    print("\n" + "=" * 100)
    print("SUMMARY")
    print(f"{'benchmark':<22} {'measure':<20} {'median s':>9} {'budget':>7}  {'verdict':<7} vs")
    print("-" * 100)
    for line in lines:
        budget = "—" if line["budget_s"] is None else f"{line['budget_s']:.2f}"
        print(
            f"{line['benchmark']:<22} {line['measure']:<20} {line['median_s']:>9.4f} "
            f"{budget:>7}  {line['verdict'] or '':<7} {line['vs']}"
        )
    failed = [f"{x['benchmark']}: {x['measure']}" for x in lines if x["verdict"] == "FAIL"]
    broken = [
        name
        for name, (code, _) in codes.items()
        if code not in (0, 1) or not (args.out_dir / f"{name}.json").exists()
    ]
    for name, (code, seconds) in codes.items():
        print(f"{name}: exit {code} after {seconds:.0f} s")
    summary = {
        "machine": benchcommon.machine_facts(),
        "source": benchcommon.source_state(),
        "quick": args.quick,
        "lines": lines,
        "failed": failed,
        "broken": broken,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    if broken:
        print(f"BROKEN: {', '.join(broken)} did not produce results")
    print(f"{'FAIL: ' + '; '.join(failed) if failed else 'all budgets PASS'}")
    return 2 if broken else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
