"""``import.coordinates``: import coordinates (EMAN .box/.json, RELION .star) per micrograph."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from cryolab.core.params import InputParam, Issue, PathParam
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set, new_uids
from cryolab.em.formats.eman import read_box, read_eman_json
from cryolab.em.objects import SetOfCoordinates, SetOfMicrographs
from cryolab.protocols.imports.matching import MicrographIndex, file_steps, matched_files

FILES_PER_STEP = 500


def read_relion_coordinates(path: str, *, micrograph_uid: int) -> Set:
    """A RELION coordinate file (``mic_0012_autopick.star``) on the given micrograph."""
    from cryolab.em.relion_micrographs import star_to_coordinates

    coordinates = star_to_coordinates(path)
    return coordinates.with_columns(
        micrograph_uid=np.full(len(coordinates), micrograph_uid, dtype=np.uint64)
    )


READERS: dict[str, Callable[..., Set]] = {
    ".box": read_box,
    ".json": read_eman_json,
    ".star": read_relion_coordinates,
}


class ImportCoordinates(Protocol):
    """Import picked coordinates: one file per micrograph, matched to the micrographs by name
    (``mic_0012.box`` belongs to ``mic_0012``); positions are box centres in pixels."""

    name = "import.coordinates"
    deterministic = True
    label = "Import coordinates"
    files = PathParam(
        pattern=True, help="Coordinate files: EMAN .box, EMAN2 .json or RELION .star."
    )
    micrographs = InputParam(SetOfMicrographs, help="The micrographs the coordinates are on.")
    outputs = {"coordinates": Output(SetOfCoordinates, help="The imported positions")}

    def matched(self) -> list[str]:
        """The files the pattern matches, sorted."""
        return matched_files(self.values["files"])

    def check(self) -> list[Issue]:
        unknown = sorted({Path(f).suffix for f in self.matched()} - set(READERS))
        if unknown:
            return [
                Issue(
                    "files",
                    f"unsupported coordinate file type(s) {unknown}; supported: {sorted(READERS)}",
                )
            ]
        return []

    def methods(self) -> str:
        return (
            f"Particle coordinates were imported from {len(self.matched())} file(s) and "
            "matched to the micrographs by name."
        )

    def plan(self) -> Iterator[Step]:
        return file_steps(self.values["files"], FILES_PER_STEP)

    def read_files(self, ctx: StepContext, paths: list[str]) -> None:
        """Read some coordinate files and append their positions."""
        micrographs: Set = ctx.input("micrographs")
        index = MicrographIndex(micrographs)
        pieces = []
        for path in paths:
            coordinates = READERS[Path(path).suffix](path, micrograph_uid=int(index.uid_of(path)))
            pieces.append(coordinates.with_columns(uid=new_uids(len(coordinates), ctx.rng)))
        merged = pieces[0].union(*pieces[1:])
        ctx.update_properties("coordinates", **micrographs.properties)
        ctx.append("coordinates", merged)
