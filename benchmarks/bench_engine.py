"""Benchmark the engine's overhead: run launch latency and a run of 10 000 trivial steps.

(a) launch latency: from the ``project.run(...)`` call until the run's status in the project
    database is ``running`` (polled every 1 ms), median over ``--launches`` launches (one
    extra warm-up launch is reported apart). The run's own ``started`` timestamp is reported
    beside it as a cross-check.
(b) engine overhead: wall time from ``project.run(...)`` until the status is ``finished`` for a
    run of ``--steps`` steps whose method does nothing, with the ``sync`` and ``local``
    executors; the database timestamps split it into launch, planning, steps and closing.

The benchmark protocols live in ``bench_plugin.py`` and are found through ``CRYOLAB_PLUGINS``
(no installation); ``PYTHONPATH`` is extended so run processes import them too.

Usage::

    .venv/bin/python benchmarks/bench_engine.py [--launches 10] [--steps 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchcommon

BENCH_DIR = Path(__file__).resolve().parent
PLUGIN = "bench=bench_plugin:plugin"
ENDED = ("finished", "failed", "aborted")
# runner.main under cProfile; not `-m cProfile -m cryolab.core.runner`, under which the step
# function (runner._work, a __main__ attribute there) cannot be pickled for worker processes
PROFILED_RUNNER = (
    "import cProfile, sys; from cryolab.core import runner; "
    "cProfile.run('runner.main(sys.argv[2:])', sys.argv[1])"
)
BUDGETS = {"launch latency": 0.5, "10k steps sync": 5.0, "10k steps local": 5.0}


def use_bench_plugin() -> None:
    """Make ``bench_plugin`` importable here and in run processes, and register it."""
    plugins = [p for p in os.environ.get("CRYOLAB_PLUGINS", "").split(",") if p.strip()]
    if PLUGIN not in plugins:
        plugins.append(PLUGIN)
    os.environ["CRYOLAB_PLUGINS"] = ",".join(plugins)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(BENCH_DIR) not in paths:
        paths.insert(0, str(BENCH_DIR))
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    from cryolab.core.plugins import registry

    registry.refresh()
    registry.get("bench.trivial")  # fail early if the plugin cannot be loaded


def status_of(db: sqlite3.Connection, run_id: int) -> str:
    return str(db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0])


def wait_for(
    db: sqlite3.Connection, run_id: int, wanted: tuple[str, ...], timeout: float, poll: float
) -> str:
    deadline = time.monotonic() + timeout
    while (status := status_of(db, run_id)) not in wanted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {status} after {timeout} s")
        time.sleep(poll)
    return status


def stats(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "all": values,
    }


# -- (a) launch latency --------------------------------------------------------------------
def bench_launch(root: Path, launches: int, hold: float) -> dict[str, Any]:
    from cryolab.core.project import Project

    project = Project.create(root / "launch")
    samples: list[dict[str, float]] = []
    for _ in range(launches + 1):  # the first one is a warm-up
        wall = time.time()
        start = time.perf_counter()
        run = project.run("bench.hold", seconds=hold)
        returned = time.perf_counter() - start
        status = wait_for(project.db, run.id, ("running", *ENDED), 30.0, 0.001)
        running = time.perf_counter() - start
        if status != "running":
            raise RuntimeError(
                f"run {run.id} went {status} before it was seen running; log:\n{run.log()}"
            )
        wait_for(project.db, run.id, ENDED, 60.0, 0.01)
        row = project.db.execute(
            "SELECT status, started FROM runs WHERE id = ?", (run.id,)
        ).fetchone()
        if row["status"] != "finished":
            raise RuntimeError(f"run {run.id} {row['status']}: {run.error}\n{run.log()}")
        samples.append(
            {"returned": returned, "running": running, "started_stamp": row["started"] - wall}
        )
    project.close()
    warm = samples[1:]
    return {
        "launches": launches,
        "warmup": samples[0],
        "running": stats([s["running"] for s in warm]),
        "returned": stats([s["returned"] for s in warm]),
        "started_stamp": stats([s["started_stamp"] for s in warm]),
    }


# -- (b) many trivial steps ----------------------------------------------------------------
def bench_steps(
    root: Path, executor: str, steps: int, repeats: int, timeout: float
) -> dict[str, Any]:
    from cryolab.core.project import Project

    walls: list[float] = []
    phases: list[dict[str, float]] = []
    for repeat in range(repeats):
        project = Project.create(root / f"steps-{executor}-{repeat}")
        wall = time.time()
        start = time.perf_counter()
        run = project.run("bench.trivial", steps=steps, executor=executor)
        try:
            status = wait_for(project.db, run.id, ENDED, timeout, 0.005)
        except TimeoutError:
            run.abort()
            raise
        walls.append(time.perf_counter() - start)
        if status != "finished":
            raise RuntimeError(f"run {run.id} {status}: {run.error}\n{run.log(tail=30)}")
        db = project.db
        row = db.execute("SELECT started, finished FROM runs WHERE id = ?", (run.id,)).fetchone()
        planned = db.execute(
            "SELECT time FROM events WHERE run_id = ? AND kind = 'planned'", (run.id,)
        ).fetchone()[0]
        first, last, done = db.execute(
            "SELECT min(started), max(finished), sum(status = 'done') FROM steps WHERE run_id = ?",
            (run.id,),
        ).fetchone()
        if done != steps:
            raise RuntimeError(f"run {run.id}: {done} of {steps} steps done")
        phases.append(
            {
                "launch_to_running": row["started"] - wall,
                "planning": planned - row["started"],
                "planned_to_first_step": first - planned,
                "steps": last - first,
                "closing": row["finished"] - last,
                "per_step_ms": 1000 * (last - first) / steps,
            }
        )
        project.close()
        print(f"  {executor}: {walls[-1]:.2f} s", flush=True)
    return {
        "executor": executor,
        "steps": steps,
        "wall": stats(walls),
        "phases": {k: statistics.median(p[k] for p in phases) for k in phases[0]},
        "phases_all": phases,
    }


# -- profiling -----------------------------------------------------------------------------
def top_functions(path: Path, count: int) -> list[dict[str, Any]]:
    return benchcommon.top_functions(pstats.Stats(str(path)), count)


def cumulative(path: Path, names: list[str]) -> dict[str, float]:
    """Cumulative seconds of functions whose ``file:function`` ends like one of ``names``."""
    raw = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    found: dict[str, float] = {}
    for (file, _line, fn), value in raw.items():
        key = f"{Path(file).name}:{fn}"
        if any(key.endswith(n) for n in names):
            found[key] = max(found.get(key, 0.0), value[3])
    return found


def profile_engine(root: Path, steps: int, out_dir: Path) -> dict[str, Any]:
    """Profile a run process per executor (``runner.main`` under cProfile, in a process of its
    own), ``project.run`` itself, and the start-up of a run process."""
    from cryolab.core.project import Project

    out_dir = out_dir.resolve()  # the run processes work in the project folder
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    watched = [
        "runner.py:main",
        "runner.py:_execute",
        "executors.py:execute",
        "executors.py:check_plan",
        "runner.py:started",
        "runner.py:finished",
        "runner.py:_work",
        "execution.py:execute_step",
        "protocol.py:plan",
        "thread.py:wait",
        "threading.py:wait",
        "process.py:submit",
        "process.py:_start_executor_manager_thread",
        "process.py:shutdown",
        "_base.py:wait",
        "connection.py:send_bytes",
        "sqlite3:execute",
    ]
    for executor in ("sync", "local"):
        project = Project.create(root / f"profile-{executor}")
        run = project.save("bench.trivial", steps=steps, executor=executor)
        file = out_dir / f"runner-{executor}.prof"
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", PROFILED_RUNNER, str(file), str(project.path), str(run.id)],
            check=True,
            cwd=project.path,
        )
        wall = time.perf_counter() - start
        if run.status != "finished":
            raise RuntimeError(f"profiled run {run.id} {run.status}: {run.error}")
        project.close()
        report[f"runner {executor}"] = {
            "wall": wall,
            "prof": str(file),
            "top_self": top_functions(file, 15),
            "cumulative": cumulative(file, watched),
        }

    # the parent's side of a launch: validation, insertion, Popen
    project = Project.create(root / "profile-launch")
    profiler = cProfile.Profile()
    profiler.enable()
    runs = [project.run("bench.hold", seconds=0.0) for _ in range(10)]
    profiler.disable()
    for run in runs:
        wait_for(project.db, run.id, ENDED, 60.0, 0.01)
    file = out_dir / "project-run.prof"
    profiler.dump_stats(str(file))
    report["project.run x10"] = {
        "prof": str(file),
        "top_self": top_functions(file, 12),
        "cumulative": cumulative(
            file,
            [
                "project.py:save",
                "project.py:launch",
                "subprocess.py:__init__",
                "runner.py:process_start_time",
            ],
        ),
    }
    project.close()

    # the run process's start-up: interpreter, imports up to the first database write
    startup = {}
    for label, code in [
        ("python -c pass", "pass"),
        ("import cryolab.core.database", "import cryolab.core.database"),
        ("import cryolab.core.runner", "import cryolab.core.runner"),
    ]:
        times = []
        for _ in range(7):
            begin = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - begin)
        startup[label] = statistics.median(times)
    imports = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import cryolab.core.runner"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr.splitlines()
    report["startup"] = startup
    report["importtime_runner_top"] = sorted(
        (
            line
            for line in imports
            if line.startswith("import time:")
            and "|" in line
            and line.split("|")[1].strip().isdigit()
        ),
        key=lambda line: -int(line.split("|")[1]),
    )[:8]
    return report


def print_profile(report: dict[str, Any]) -> None:
    for key, value in report.items():
        if key == "startup":
            print("\nrun process start-up (median of 7):")
            for label, seconds in value.items():
                print(f"  {seconds * 1000:8.1f} ms  {label}")
            continue
        if key == "importtime_runner_top":
            print("\nslowest imports of `import cryolab.core.runner` (µs self | cumulative):")
            for line in value:
                print(f"  {line}")
            continue
        wall = f" (wall {value['wall']:.2f} s)" if "wall" in value else ""
        print(f"\nprofile: {key}{wall}, {value['prof']}")
        print("  cumulative:")
        for name, seconds in sorted(value["cumulative"].items(), key=lambda kv: -kv[1]):
            print(f"    {seconds:8.3f} s  {name}")
        print("  most self time:")
        for entry in value["top_self"]:
            print(
                f"    {entry['share']:6.1%} {entry['tottime']:8.3f} s self "
                f"{entry['cumtime']:8.3f} s cum {entry['calls']:>8} calls  {entry['function']}"
            )


# -- report --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--launches", type=int, default=10)
    parser.add_argument(
        "--hold", type=float, default=0.3, help="seconds the launch-latency run's step sleeps"
    )
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs of --steps per executor")
    parser.add_argument(
        "--executors", nargs="+", default=["sync", "local"], choices=["sync", "local"]
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds before a many-steps run is aborted"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/engine.json"))
    parser.add_argument("--tmp", type=Path, default=None)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="also profile run processes and project.run; .prof files go to DIR",
    )
    args = parser.parse_args(argv)
    if args.launches < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("--launches, --steps and --repeats must be positive")

    use_bench_plugin()
    root = Path(tempfile.mkdtemp(prefix="cryolab-bench-engine-", dir=args.tmp))
    results: dict[str, Any] = {}
    try:
        print(f"(a) launch latency, {args.launches} launches (+1 warm-up) in {root}", flush=True)
        results["launch"] = bench_launch(root, args.launches, args.hold)
        for executor in args.executors:
            print(
                f"(b) {args.steps} trivial steps, executor {executor}, {args.repeats} runs",
                flush=True,
            )
            results[f"steps {executor}"] = bench_steps(
                root, executor, args.steps, args.repeats, args.timeout
            )
        profile = None
        if args.profile is not None:
            print("profiling ...", flush=True)
            profile = profile_engine(root, args.steps, args.profile)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    label = f"{args.steps // 1000}k" if args.steps % 1000 == 0 else str(args.steps)
    rows: list[tuple[str, dict[str, Any], float | None]] = [
        ("launch latency", results["launch"]["running"], BUDGETS["launch latency"])
    ]
    for executor in args.executors:
        # the budget is for 10 000 steps; other step counts get no verdict
        budget = BUDGETS[f"10k steps {executor}"] if args.steps == 10_000 else None
        rows.append((f"{label} steps {executor}", results[f"steps {executor}"]["wall"], budget))
    print(f"\n{'measure':<22} {'median s':>9} {'min s':>8} {'max s':>8} {'budget':>7}  verdict")
    print("-" * 66)
    table = []
    for name, values, budget in rows:
        verdict = "n/a" if budget is None else "PASS" if values["median"] <= budget else "FAIL"
        print(
            f"{name:<22} {values['median']:>9.3f} {values['min']:>8.3f} {values['max']:>8.3f} "
            f"{'—' if budget is None else f'{budget:.2f}':>7}  {verdict}"
        )
        table.append(
            {
                "measure": name,
                "median": values["median"],
                "min": values["min"],
                "max": values["max"],
                "budget": budget,
                "verdict": verdict,
            }
        )
    launch = results["launch"]
    print(
        f"\nlaunch: project.run returns after {launch['returned']['median'] * 1000:.1f} ms "
        f"(median); the run records 'started' {launch['started_stamp']['median'] * 1000:.1f} "
        f"ms after the call; warm-up launch {launch['warmup']['running'] * 1000:.1f} ms"
    )
    for executor in args.executors:
        phases = results[f"steps {executor}"]["phases"]
        print(
            f"{executor} phases (median s): "
            + ", ".join(
                f"{k} {v:.3f}" if k != "per_step_ms" else f"per step {v:.3f} ms"
                for k, v in phases.items()
            )
        )
    if profile is not None:
        print_profile(profile)

    failed = [t["measure"] for t in table if t["verdict"] == "FAIL"]
    document = {
        "benchmark": "engine",
        "machine": benchcommon.machine_facts(),
        "source": benchcommon.source_state(),
        "steps": args.steps,
        "repeats": args.repeats,
        "launches": args.launches,
        "hold": args.hold,
        "budgets": BUDGETS,
        "table": table,
        "results": results,
        "failed": failed,
        "profile": profile,
    }
    return benchcommon.finish(args.out, document, table, failed)


if __name__ == "__main__":
    sys.exit(main())
