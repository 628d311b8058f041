"""Matching per-micrograph files (CTF fits, coordinate files) to the micrographs of a set."""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from cryolab.core.protocol import Step
from cryolab.core.sets import Set


class MicrographIndex:
    """Finds the micrograph a file belongs to: the longest micrograph name its name starts with.

    ``mic_0012_ctf.txt``, ``mic_0012.box`` and ``mic_0012_autopick.star`` all belong to the
    micrograph named ``mic_0012`` (``micrograph.name``, else the file name of ``image.path``).
    """

    def __init__(self, micrographs: Set) -> None:
        if "micrograph.name" in micrographs:
            names = [str(n) for n in micrographs["micrograph.name"]]
        else:
            names = [Path(str(p)).name.split(".")[0] for p in micrographs["image.path"]]
        self.uids = micrographs.uids
        self.by_name = {name: index for index, name in enumerate(names)}
        self.names = sorted(self.by_name, key=len, reverse=True)

    def uid_of(self, path: str) -> np.uint64:
        """The uid of the micrograph of ``path``; ValueError naming the file if none fits."""
        stem = Path(path).name
        for name in self.names:
            if stem.startswith(name) and (len(stem) == len(name) or not stem[len(name)].isalnum()):
                return np.uint64(self.uids[self.by_name[name]])
        examples = ", ".join(self.names[:3])
        raise ValueError(f"{path} matches no micrograph name (names such as {examples})")


def chunks(paths: Sequence[str], size: int) -> list[list[str]]:
    """Cut a list of files into steps of at most ``size`` files."""
    return [list(paths[start : start + size]) for start in range(0, len(paths), size)]


def matched_files(pattern: str) -> list[str]:
    """The files a path or glob pattern matches, sorted."""
    return sorted(glob.glob(str(Path(pattern).expanduser())))


def file_steps(pattern: str, size: int, func: str = "read_files") -> Iterator[Step]:
    """Steps reading the matched files, ``size`` files each; no match is an error."""
    matched = matched_files(pattern)
    if not matched:
        raise FileNotFoundError(f"no file matches {pattern!r}")
    for index, paths in enumerate(chunks(matched, size)):
        yield Step(f"read-{index:05d}", func, {"paths": paths})
