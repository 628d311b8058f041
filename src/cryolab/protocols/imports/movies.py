"""``import.movies``: import movie files (MRC, TIFF) with their acquisition."""

from __future__ import annotations

from typing import Any

from cryolab.core.protocol import Output
from cryolab.em.imageio import ImageHeader
from cryolab.em.objects import SetOfMovies
from cryolab.protocols.imports.images import ImportImages


class ImportMovies(ImportImages):
    """Import movies (stacks of frames); each file is one movie."""

    name = "import.movies"
    deterministic = True
    label = "Import movies"
    output_name = "movies"
    outputs = {"movies": Output(SetOfMovies, help="The imported movies")}

    def row(self, path: str, header: ImageHeader) -> dict[str, Any]:
        return {**super().row(path, header), "movie.frames": header.n_images}
