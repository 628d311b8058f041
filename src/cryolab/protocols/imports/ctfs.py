"""``import.ctfs``: import CTF estimations (CTFFIND ``_ctf.txt`` files) for micrographs."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

from cryolab.core.params import InputParam, PathParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set, new_uids
from cryolab.em.formats.ctffind import read_ctffind
from cryolab.em.objects import SetOfCTFs, SetOfMicrographs
from cryolab.protocols.imports.matching import MicrographIndex, chunks

FILES_PER_STEP = 500


class ImportCtfs(Protocol):
    """Import CTF estimations made elsewhere: one CTFFIND ``_ctf.txt`` per micrograph, matched
    to the micrographs by name (``mic_0012_ctf.txt`` belongs to ``mic_0012``)."""

    name = "import.ctfs"
    label = "Import CTFs"
    files = PathParam(pattern=True, help="CTFFIND output files, e.g. ctffind/*_ctf.txt.")
    micrographs = InputParam(SetOfMicrographs, help="The micrographs the estimations are of.")
    outputs = {"ctfs": Output(SetOfCTFs, help="One CTF per matched micrograph")}

    def plan(self) -> Iterator[Step]:
        matched = sorted(glob.glob(str(Path(self.values["files"]).expanduser())))
        if not matched:
            raise FileNotFoundError(f"no file matches {self.values['files']!r}")
        for index, paths in enumerate(chunks(matched, FILES_PER_STEP)):
            yield Step(f"read-{index:05d}", "read_files", {"paths": paths})

    def read_files(self, ctx: StepContext, paths: list[str]) -> None:
        """Read some estimation files and append their CTFs."""
        micrographs: Set = ctx.input("micrographs")
        index = MicrographIndex(micrographs)
        pieces = []
        for path in paths:
            ctfs = read_ctffind(path)
            if len(ctfs) != 1:
                raise ValueError(
                    f"{path} holds {len(ctfs)} estimations; expected one per micrograph file"
                )
            uid = index.uid_of(path)
            pieces.append(
                ctfs.with_columns(
                    micrograph_uid=[uid],
                    uid=new_uids(1, ctx.rng),
                    **{"ctf.file": [str(Path(path).resolve())]},
                )
            )
        merged = pieces[0].union(*pieces[1:])
        properties = dict(micrographs.properties)
        properties.update({k: v for k, v in pieces[0].properties.items() if k != "ctffind"})
        ctx.update_properties("ctfs", **properties)
        ctx.append("ctfs", merged)
