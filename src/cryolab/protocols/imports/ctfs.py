"""``import.ctfs``: import CTF estimations (CTFFIND ``_ctf.txt``, RELION STAR) for micrographs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cryolab.core.params import InputParam, PathParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set, new_uids
from cryolab.em.formats.ctffind import read_ctffind
from cryolab.em.objects import SetOfCTFs, SetOfMicrographs
from cryolab.protocols.imports.matching import MicrographIndex, file_steps

FILES_PER_STEP = 500


class ImportCtfs(Protocol):
    """Import CTF estimations made elsewhere, matched to the micrographs by name: CTFFIND
    ``_ctf.txt`` files (``mic_0012_ctf.txt`` belongs to ``mic_0012``) or RELION CTF STAR files
    (each row's ``rlnMicrographName``)."""

    name = "import.ctfs"
    deterministic = True
    label = "Import CTFs"
    files = PathParam(
        pattern=True, help="CTFFIND output files (ctffind/*_ctf.txt) or RELION CTF STAR files."
    )
    micrographs = InputParam(SetOfMicrographs, help="The micrographs the estimations are of.")
    outputs = {"ctfs": Output(SetOfCTFs, help="One CTF per matched micrograph")}

    def methods(self) -> str:
        return (
            "CTF estimations made elsewhere (CTFFIND text or RELION STAR files) were imported "
            "and matched to the micrographs by name."
        )

    def plan(self) -> Iterator[Step]:
        return file_steps(self.values["files"], FILES_PER_STEP)

    def read_files(self, ctx: StepContext, paths: list[str]) -> None:
        """Read some estimation files and append their CTFs."""
        micrographs: Set = ctx.input("micrographs")
        index = MicrographIndex(micrographs)
        pieces = []
        for path in paths:
            if path.endswith(".star"):
                pieces.append(_relion_ctfs(path, index, ctx))
                continue
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


def _relion_ctfs(path: str, index: MicrographIndex, ctx: StepContext) -> Set:
    """The CTFs of a RELION STAR file, linked to the project's micrographs by name."""
    from cryolab.em.relion_micrographs import star_to_ctfs

    ctfs, micrographs = star_to_ctfs(path, seed=int(ctx.rng.integers(2**31)))
    names = (
        micrographs["micrograph.name"]
        if "micrograph.name" in micrographs
        else micrographs["image.path"]
    )
    by_uid = dict(zip(micrographs.uids.tolist(), [str(n) for n in names], strict=True))
    owners = [index.uid_of(by_uid[int(uid)]) for uid in ctfs["micrograph_uid"]]
    return ctfs.with_columns(micrograph_uid=np.asarray(owners, dtype=np.uint64))
