"""``import.micrographs``: import micrograph files with their acquisition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryolab.core.protocol import Output
from cryolab.em.imageio import ImageHeader
from cryolab.em.objects import SetOfMicrographs
from cryolab.protocols.imports.images import ImportImages


class ImportMicrographs(ImportImages):
    """Import micrographs (motion-corrected images); each file is one micrograph."""

    name = "import.micrographs"
    deterministic = True
    label = "Import micrographs"
    output_name = "micrographs"
    outputs = {"micrographs": Output(SetOfMicrographs, help="The imported micrographs")}

    def row(self, path: str, header: ImageHeader) -> dict[str, Any]:
        if header.is_volume:
            raise ValueError(f"{path} holds a 3-D volume, not a micrograph")
        return {**super().row(path, header), "micrograph.name": Path(path).name.split(".")[0]}
