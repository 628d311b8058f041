"""Benchmark the heavy SPA kernels on numpy (``device="cpu"``) against CuPy (``device="gpu"``).

Kernels, default sizes (``--quick``: smaller, the CPU side in well under a minute on 2 cores):

* motion: ``align_frames`` + ``dose_weight`` of a 24-frame 1024² movie (quick: 12 x 512²);
* ctf: ``power_spectrum`` (512 px tiles) + ``fit_ctf`` of a 2048² micrograph (quick: 1024²);
* reconstruct: ``Reconstructor`` (pad 2, CTF) of 2000 images of box 128 (quick: 200 of 64);
* pick_template: ``pick_template`` (64 px template, 24 angles) on a 1024² micrograph (quick: 512²);
* pick_dog: ``pick_dog`` (40 px particles) on a 1024² micrograph (quick: 512²).

Each time is the median of ``--repeats`` runs. The GPU side runs only when
:func:`cryolab.em.xp.gpu_available`: one warm-up run (excluded), then the timed runs, each ended
by ``cupy.cuda.Device().synchronize()``. The speed-up is the CPU median over the GPU median of the
same run (goal >= 20x at the default sizes), and the two paths' results are compared (largest
difference relative to the largest CPU value, per output: <= 1e-3, the CTF angle <= 0.05).
Without a GPU the CPU side runs alone and the script says the GPU side was skipped (exit 0).

Usage::

    .venv/bin/python benchmarks/bench_kernels.py [--quick] [--repeats 3] [--only NAME ...]
        [--out bench-results/kernels.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import benchcommon
from cryolab.em import ctffit, motion, picking, simulate, xp
from cryolab.em.reconstruct import Reconstructor

GOAL = 20.0  # GPU speed-up over numpy, at the default sizes
AGREE = 1e-3  # largest relative difference accepted between the two paths, per output
TOLERANCE = {"angle": 0.05}  # fitted by Nelder-Mead to ~1 degree (of 30)
PIXEL = 1.0  # Å/px
Array = np.ndarray[Any, Any]
Outputs = dict[str, Array]
Kernel = Callable[[str], Outputs]


def _micrograph(rng: np.random.Generator, size: int, defocus: float = 15000.0) -> Array:
    """White noise through an astigmatic CTF, plus noise: rings and texture at all scales."""
    ctf = simulate.ctf_image((size, size), PIXEL, defocus + 500, defocus - 500, 30.0, bfactor=50)
    signal = simulate.apply_filter(rng.standard_normal((size, size)), ctf)
    return np.asarray(signal + 0.5 * rng.standard_normal((size, size)), dtype=np.float32)


def motion_kernel(rng: np.random.Generator, frames: int, size: int) -> Kernel:
    reference = _micrograph(rng, size)
    path = simulate.drift_trajectory(frames, 20.0, rng)
    movie = np.stack(
        [
            simulate.fourier_shift(reference, sx, sy) + 2.0 * rng.standard_normal((size, size))
            for sx, sy in path
        ]
    ).astype(np.float32)

    def run(device: str) -> Outputs:
        shifts = motion.align_frames(movie, pixel_size=PIXEL, device=device)
        total = motion.dose_weight(movie, 1.0, PIXEL, shifts=shifts, device=device)
        return {"shifts": shifts, "sum": total}

    return run


def ctf_kernel(rng: np.random.Generator, size: int) -> Kernel:
    image = _micrograph(rng, size)

    def run(device: str) -> Outputs:
        spectrum = ctffit.power_spectrum(image, box=512, device=device)
        fit = ctffit.fit_ctf(spectrum, PIXEL, device=device)
        return {
            "spectrum": spectrum,
            "defocus": np.array([fit.defocus_u, fit.defocus_v]),
            "angle": np.array([fit.defocus_angle]),
        }

    return run


def reconstruct_kernel(rng: np.random.Generator, images: int, box: int) -> Kernel:
    stack = rng.standard_normal((images, box, box)).astype(np.float32)
    rot, psi = rng.uniform(0, 360, (2, images))
    tilt = np.degrees(np.arccos(rng.uniform(-1, 1, images)))
    shift_x, shift_y = rng.uniform(-3, 3, (2, images))
    defocus = rng.uniform(10000, 30000, images)

    def run(device: str) -> Outputs:
        made = Reconstructor(box, PIXEL, pad=2, device=device)
        made.add(stack, rot, tilt, psi, shift_x, shift_y, defocus_u=defocus, defocus_v=defocus)
        return {"map": made.finish(wiener_constant=0.1)}

    return run


def _particles(rng: np.random.Generator, size: int, diameter: float) -> Array:
    """Dark discs of ``diameter`` px at random places in noise."""
    yy, xx = np.mgrid[:size, :size]
    image = rng.standard_normal((size, size))
    for x, y in rng.uniform(diameter, size - diameter, (size * size // 4000, 2)):
        image -= 1.5 * (np.hypot(xx - x, yy - y) <= diameter / 2)
    return image.astype(np.float32)


def pick_template_kernel(rng: np.random.Generator, size: int) -> Kernel:
    image = _particles(rng, size, 40.0)
    yy, xx = np.mgrid[:64, :64] - 32
    template = (np.hypot(xx, yy) <= 20).astype(np.float64)

    def run(device: str) -> Outputs:
        xy, scores, _ = picking.pick_template(image, template, threshold=0.2, device=device)
        return {"xy": xy, "scores": scores}

    return run


def pick_dog_kernel(rng: np.random.Generator, size: int) -> Kernel:
    image = _particles(rng, size, 40.0)

    def run(device: str) -> Outputs:
        xy, scores = picking.pick_dog(image, 40.0, device=device)
        return {"xy": xy, "scores": scores}

    return run


def kernels(quick: bool, seed: int) -> dict[str, tuple[str, Callable[[], Kernel]]]:
    """Name -> (size description, builder of the kernel with its data)."""
    rng = np.random.default_rng(seed)
    sizes = (12, 512, 1024, 200, 64, 512) if quick else (24, 1024, 2048, 2000, 128, 1024)
    frames, movie, micro, images, box, pick = sizes
    return {
        "motion": (f"{frames} x {movie}² movie", lambda: motion_kernel(rng, frames, movie)),
        "ctf": (f"{micro}² micrograph", lambda: ctf_kernel(rng, micro)),
        "reconstruct": (f"{images} x {box}², pad 2", lambda: reconstruct_kernel(rng, images, box)),
        "pick_template": (f"{pick}², 24 angles", lambda: pick_template_kernel(rng, pick)),
        "pick_dog": (f"{pick}²", lambda: pick_dog_kernel(rng, pick)),
    }


def measure(run: Kernel, device: str, repeats: int) -> tuple[list[float], Outputs]:
    """Times of ``repeats`` runs on ``device`` (GPU: after a warm-up, synchronised) and a result."""
    sync: Callable[[], None] = lambda: None  # noqa: E731
    result: Outputs | None = None
    if device == "gpu":
        cupy = xp.array_module("gpu")
        sync = cupy.cuda.Device().synchronize
        result = run(device)  # warm-up: CUDA context, FFT plans, kernel compilation
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = run(device)
        sync()
        times.append(time.perf_counter() - start)
        result = out if result is None else result
    assert result is not None
    return times, result


def difference(cpu: Outputs, gpu: Outputs) -> tuple[float, bool]:
    """Largest ``max|cpu - gpu| / max|cpu|`` over the outputs, and whether each is tolerated."""
    worst, agree = 0.0, True
    for name, a in cpu.items():
        b = xp.to_numpy(gpu[name])
        diff = float("inf")
        if a.shape == b.shape:
            scale = max(float(np.abs(a).max(initial=0.0)), 1e-12)
            diff = float(np.abs(a - b).max(initial=0.0)) / scale
        print(f"  {name}: max rel diff {diff:.2e} (cpu {a.shape}, gpu {b.shape})")
        worst, agree = max(worst, diff), agree and diff <= TOLERANCE.get(name, AGREE)
    return worst, agree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", default=None, help="run only these kernels")
    parser.add_argument("--out", type=Path, default=Path("bench-results/kernels.json"))
    args = parser.parse_args(argv)

    gpu = xp.gpu_available()
    if not gpu:
        print("GPU side SKIPPED: CuPy or a CUDA device is not available (numpy side only)")
    table = kernels(args.quick, args.seed)
    rows = []
    for name, (size, build) in table.items():
        if args.only and name not in args.only:
            continue
        run = build()
        print(f"{name} ({size}) ...", flush=True)
        cpu_times, cpu_result = measure(run, "cpu", args.repeats)
        row: dict[str, Any] = {"kernel": name, "size": size, "cpu_times": cpu_times}
        row["cpu_median"] = statistics.median(cpu_times)
        row |= dict.fromkeys(["gpu_median", "gpu_times", "speedup", "max_rel_diff", "agree"])
        row["verdict"] = None
        if gpu:
            gpu_times, gpu_result = measure(run, "gpu", args.repeats)
            diff, row["agree"] = difference(cpu_result, gpu_result)
            row["gpu_median"] = statistics.median(gpu_times)
            row["gpu_times"] = gpu_times
            row["speedup"] = row["cpu_median"] / row["gpu_median"]
            row["max_rel_diff"] = diff
            fast = "n/a" if args.quick else "PASS" if row["speedup"] >= GOAL else "FAIL"
            row["verdict"] = "FAIL" if not row["agree"] else fast
        rows.append(row)

    head = f"{'kernel':<14} {'size':<20} {'numpy s':>9} {'cupy s':>9} {'speed-up':>9} "
    print("\n" + head + f"{'max rel diff':>13}  verdict (goal >= {GOAL:g}x, diff <= {AGREE:g})")
    print("-" * (len(head) + 46))
    for row in rows:
        gpu_s = "skipped" if row["gpu_median"] is None else f"{row['gpu_median']:.4f}"
        speed = "" if row["speedup"] is None else f"{row['speedup']:.1f}x"
        rel = "" if row["max_rel_diff"] is None else f"{row['max_rel_diff']:.2e}"
        print(
            f"{row['kernel']:<14} {row['size']:<20} {row['cpu_median']:>9.4f} {gpu_s:>9} "
            f"{speed:>9} {rel:>13}  {row['verdict'] or ''}"
        )
    if not gpu:
        print("GPU side SKIPPED (no CuPy/GPU): run this on a GPU node for the speed-ups")
    failed = [row["kernel"] for row in rows if row["verdict"] == "FAIL"]
    cupy_version = xp.array_module("gpu").__version__ if gpu else None
    document = {
        "benchmark": "kernels",
        "quick": args.quick,
        "repeats": args.repeats,
        "gpu": gpu,
        "goal_speedup": GOAL,
        "agree_rel_diff": {"default": AGREE, **TOLERANCE},
        "machine": {**benchcommon.machine_facts(), "numpy": np.__version__, "cupy": cupy_version},
        "source": benchcommon.source_state(),
        "table": rows,
        "failed": failed,
    }
    return benchcommon.finish(args.out, document, rows, failed)


if __name__ == "__main__":
    sys.exit(main())
