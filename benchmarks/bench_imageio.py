"""Benchmark random image reads from a large MRC stack: cryolab's positional reads vs mmap.

Writes a float32 stack of ``--images`` images of ``--size`` x ``--size`` pixels (50 000 x 64 x 64
by default, 820 MB; the reference case of ``docs/notes/perf-baselines.md`` is 200 000 images,
3.3 GB) in a temporary folder, deletes it afterwards, and measures reading ``--reads`` random
images (the same random indices for every method within a repeat, fresh ones per repeat), each
as the median (and min) of ``--repeats`` repeats:

* cold: the stack's pages are first dropped from the page cache
  (``posix_fadvise(POSIX_FADV_DONTNEED)`` on the file, after an fsync), so every image comes
  from the disk: ``imageio.read_images``; a loop of ``imageio.read_image`` (one header read per
  image, as ``ImageItem.read`` does); ``mrcfile.mmap`` + fancy indexing (the default mmap);
  the same after ``madvise(MADV_RANDOM)``; a bare ``os.pread`` loop (the floor);
* warm: ``read_images`` and mrcfile mmap again, with the pages in the cache (CPU overhead);
* thumbnails: ``imageio.thumbnail`` of the images read, to uint8.

Usage::

    .venv/bin/python benchmarks/bench_imageio.py [--images 50000] [--size 64] [--reads 100]
        [--repeats 5] [--tmp DIR] [--out bench-results/imageio.json]

Cold timings are meaningless on tmpfs (a warning is printed); use ``--tmp`` on a real disk.
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np

import benchcommon
from cryolab.em import imageio

# measure -> budget in seconds for BUDGET_READS reads (the perf-baselines target)
BUDGET_READS = 100
BUDGETS = {"read_images (cold)": 0.020}
CHUNK_BYTES = 64 << 20


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from /proc/mounts; "" if unknown)."""
    best, kind = "", ""
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def write_stack(path: Path, count: int, size: int, seed: int = 0) -> float:
    """Write a float32 stack of noise images chunk by chunk; return the seconds it took."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with mrcfile.new_mmap(path, shape=(count, size, size), mrc_mode=2, overwrite=True) as mrc:
            mrc.set_image_stack()
            mrc.voxel_size = 1.0
            per_chunk = max(1, CHUNK_BYTES // (size * size * 4))
            for first in range(0, count, per_chunk):
                last = min(count, first + per_chunk)
                mrc.data[first:last] = rng.standard_normal((last - first, size, size), np.float32)
    benchcommon.sync(path)
    return time.perf_counter() - start


# -- the readers (each returns an (n, size, size) array) --------------------------------------
def read_cryolab(path: Path, indices: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return imageio.read_images(path, indices)


def read_cryolab_loop(path: Path, indices: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.stack([imageio.read_image(path, int(i)) for i in indices])


def read_mrcfile_mmap(path: Path, indices: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    with mrcfile.mmap(path, mode="r") as mrc:
        return np.array(mrc.data[indices - 1])


def read_mrcfile_mmap_random(path: Path, indices: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    with mrcfile.mmap(path, mode="r") as mrc:
        mapped = getattr(mrc.data, "_mmap", None)  # numpy.memmap keeps its mmap here
        if mapped is not None and hasattr(mmap, "MADV_RANDOM"):
            mapped.madvise(mmap.MADV_RANDOM)
        return np.array(mrc.data[indices - 1])


def read_pread_floor(path: Path, indices: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    header = imageio.read_header(path)
    item, offset = header.item_bytes, int(header.data_offset or 0)
    fd = os.open(path, os.O_RDONLY)
    try:
        return np.stack(
            [
                np.frombuffer(os.pread(fd, item, offset + (int(i) - 1) * item), np.float32)
                for i in indices
            ]
        ).reshape(len(indices), header.ny, header.nx)
    finally:
        os.close(fd)


COLD: dict[str, Callable[[Path, np.ndarray[Any, Any]], np.ndarray[Any, Any]]] = {
    "read_images (cold)": read_cryolab,
    "read_image loop (cold)": read_cryolab_loop,
    "mrcfile mmap (cold)": read_mrcfile_mmap,
    "mmap + MADV_RANDOM (cold)": read_mrcfile_mmap_random,
    "os.pread loop (cold)": read_pread_floor,
}
WARM = {
    "read_images (warm)": read_cryolab,
    "mrcfile mmap (warm)": read_mrcfile_mmap,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=50_000, help="images in the stack")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--reads", type=int, default=100, help="random images per read")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the stack")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench-results/imageio.json"))
    args = parser.parse_args(argv)
    if min(args.images, args.size, args.reads, args.repeats) < 1:
        parser.error("--images, --size, --reads and --repeats must be positive")
    if not hasattr(os, "posix_fadvise"):
        print("os.posix_fadvise is not available here: cannot measure cold reads")
        return 2

    folder = Path(tempfile.mkdtemp(prefix="cryolab-bench-imageio-", dir=args.tmp))
    fs = filesystem_type(folder.resolve())
    if fs in ("tmpfs", "ramfs"):
        print(f"WARNING: {folder} is on {fs}: the (cold) rows are not cold")
    path = folder / "stack.mrcs"
    stack_mb = args.images * args.size * args.size * 4 / 1e6
    times: dict[str, list[float]] = {name: [] for name in [*COLD, *WARM, "thumbnails"]}
    header_times: list[float] = []
    try:
        print(
            f"writing {args.images:,} x {args.size}x{args.size} float32 ({stack_mb:,.0f} MB) "
            f"in {folder} ({fs or 'unknown filesystem'}) ...",
            flush=True,
        )
        written = write_stack(path, args.images, args.size, args.seed)
        print(f"written in {written:.1f} s", flush=True)
        rng = np.random.default_rng(args.seed + 1)
        for repeat in range(args.repeats):
            indices = rng.choice(np.arange(1, args.images + 1), size=args.reads, replace=False)
            reference = None
            for name, reader in COLD.items():
                benchcommon.drop_cache(path)
                start = time.perf_counter()
                images = reader(path, indices)
                times[name].append(time.perf_counter() - start)
                if reference is None:
                    reference = images
                elif not np.array_equal(images, reference):
                    raise SystemExit(f"{name} read other images than read_images")
            for name, reader in WARM.items():
                reader(path, indices)  # make sure the pages are cached
                start = time.perf_counter()
                reader(path, indices)
                times[name].append(time.perf_counter() - start)
            assert reference is not None
            start = time.perf_counter()
            for image in reference:
                imageio.thumbnail(image)
            times["thumbnails"].append(time.perf_counter() - start)
            for _ in range(20):
                start = time.perf_counter()
                imageio.read_header(path)
                header_times.append(time.perf_counter() - start)
            print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    mmap_cold = statistics.median(times["mrcfile mmap (cold)"])
    head = f"{'measure':<28} {'median ms':>10} {'min ms':>8} {'vs mmap':>8} {'budget':>7}  verdict"
    print(f"\n{args.reads} random images of {args.size}x{args.size} from {args.images:,}")
    print(head)
    print("-" * len(head))
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        budget = BUDGETS.get(name)
        if budget is None:
            verdict = ""
        elif args.reads != BUDGET_READS or args.size != 64:
            verdict = "n/a"
        else:
            verdict = "PASS" if median <= budget else "FAIL"
        speedup = mmap_cold / median if "(cold)" in name else None
        print(
            f"{name:<28} {median * 1e3:>10.2f} {min(values) * 1e3:>8.2f} "
            f"{'' if speedup is None else f'{speedup:.1f}x':>8} "
            f"{'' if budget is None else f'{budget * 1e3:.0f} ms':>7}  {verdict}"
        )
        rows.append(
            {
                "measure": name,
                "median": median,
                "min": min(values),
                "times": values,
                "speedup_vs_mmap_cold": speedup,
                "budget": budget,
                "verdict": verdict or None,
            }
        )
    header_median = statistics.median(header_times)
    print(f"read_header: {header_median * 1e6:.0f} us (median of {len(header_times)})")
    print(
        "vs mmap: the cold mrcfile mmap median over this row's median. thumbnails: "
        f"{args.reads} images to uint8 (warm, from memory)."
    )
    failed = [row["measure"] for row in rows if row["verdict"] == "FAIL"]
    document = {
        "benchmark": "imageio",
        "images": args.images,
        "size": args.size,
        "reads": args.reads,
        "repeats": args.repeats,
        "stack_MB": stack_mb,
        "write_s": written,
        "tmp": str(folder.parent),
        "filesystem": fs,
        "machine": {
            **benchcommon.machine_facts(),
            "numpy": np.__version__,
            "mrcfile": mrcfile.__version__,
        },
        "source": benchcommon.source_state(),
        "read_header_median_s": header_median,
        "table": rows,
        "budgets": BUDGETS,
        "failed": failed,
    }
    return benchcommon.finish(args.out, document, rows, failed)


if __name__ == "__main__":
    sys.exit(main())
