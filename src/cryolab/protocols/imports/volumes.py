"""``import.volumes``: import 3-D maps, with optional half maps and mask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryolab.core.params import Issue, PathParam
from cryolab.core.protocol import Output
from cryolab.em.imageio import ImageHeader
from cryolab.em.objects import SetOfVolumes
from cryolab.protocols.imports.images import ImportImages


class ImportVolumes(ImportImages):
    """Import volumes (3-D maps); each file is one volume. Half maps and a mask may be given
    for a single volume."""

    name = "import.volumes"
    deterministic = True
    label = "Import volumes"
    output_name = "volumes"
    half1 = PathParam(default=None, required=False, help="First half map (one volume only).")
    half2 = PathParam(default=None, required=False, help="Second half map.")
    mask = PathParam(default=None, required=False, help="Mask of the volume.")
    outputs = {"volumes": Output(SetOfVolumes, help="The imported volumes")}

    def check(self) -> list[Issue]:
        issues = super().check()
        extras = [n for n in ("half1", "half2", "mask") if self.values[n]]
        if extras and len(self.matched()) != 1:
            issues.append(Issue(extras[0], "half maps and masks need exactly one volume file"))
        if bool(self.values["half1"]) != bool(self.values["half2"]):
            issues.append(
                Issue(
                    "half2" if self.values["half1"] else "half1", "give both half maps or neither"
                )
            )
        return issues

    def row(self, path: str, header: ImageHeader) -> dict[str, Any]:
        if not header.is_volume:
            raise ValueError(
                f"{path} is not a 3-D volume ({header.kind}, {header.nx}x{header.ny}x{header.nz})"
            )
        row = {**super().row(path, header), "image.depth": header.nz}
        for name in ("half1", "half2", "mask"):
            value = self.values[name]
            if value:
                self.checked_header(value)
                row[f"volume.{name}"] = str(Path(value).resolve())
        return row
