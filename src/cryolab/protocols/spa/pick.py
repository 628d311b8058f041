"""``spa.pick``: find particles on micrographs, template-free (DoG) or by template matching."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from cryolab.core.params import (
    BoolParam,
    ChoiceParam,
    FloatParam,
    InputParam,
    IntParam,
    Issue,
    when,
)
from cryolab.core.protocol import Output, Protocol, Step, StepContext
from cryolab.core.sets import Set, new_uids
from cryolab.em.objects import SetOfClasses2D, SetOfCoordinates, SetOfImages, SetOfMicrographs
from cryolab.em.picking import pick_dog, pick_template
from cryolab.protocols.citations import ROSEMAN2003, VOSS2009

ADVANCED = "Advanced"


def pixel_size(micrographs: Set) -> float:
    """The micrographs' pixel size (Å/px) from the set's properties; an error if unknown."""
    value = micrographs.properties.get("sampling_rate")
    if value is None:
        value = (micrographs.properties.get("acquisition") or {}).get("sampling_rate")
    if value is None or not float(value) > 0:
        raise ValueError("the micrographs have no sampling_rate property (pixel size in Å/px)")
    return float(value)


def require_items(data: Set, what: str) -> None:
    """Refuse an empty input set with a clear message."""
    if len(data) == 0:
        raise ValueError(f"the input {what} set is empty: there is nothing to process")


class Pick(Protocol):
    """Pick particles on each micrograph.

    ``dog``: a difference-of-Gaussians band-pass matched to the particle diameter, maxima above
    ``threshold`` robust sigmas, contamination and line-like features rejected. ``template``:
    normalised cross-correlation with the templates turned by in-plane rotations in steps of
    ``angular_step``. Raw micrographs (dark protein) are the default; set ``dark_particles``
    off for contrast-inverted ones. Micrographs are shared among ``parallel`` steps.
    """

    name = "spa.pick"
    deterministic = True
    label = "Particle picking"
    micrographs = InputParam(SetOfMicrographs, label="Micrographs")
    method = ChoiceParam(["dog", "template"], default="dog", help="Template-free or templates.")
    particle_diameter = FloatParam(default=None, min=1.0, unit="Å", help="Particle diameter.")
    threshold = FloatParam(
        default=4.0,
        min=0.0,
        help="Lowest DoG response kept, in robust sigmas of the response.",
        condition=when("method") == "dog",
    )
    templates = InputParam(
        [SetOfClasses2D, SetOfImages],
        default=None,
        required=False,
        help="Template images (e.g. 2-D class averages), particles bright.",
        condition=when("method") == "template",
    )
    min_correlation = FloatParam(
        default=0.15,
        min=-1.0,
        max=1.0,
        help="Lowest normalised cross-correlation kept.",
        condition=when("method") == "template",
    )
    angular_step = FloatParam(
        default=15.0, min=1.0, max=180.0, unit="deg", condition=when("method") == "template"
    )
    min_distance = FloatParam(
        default=None,
        required=False,
        min=0.0,
        unit="Å",
        help="Closest two picks may be (default: the particle diameter).",
    )
    max_per_micrograph = IntParam(
        default=None, required=False, min=1, help="Keep at most this many picks per micrograph."
    )
    dark_particles = BoolParam(default=True, help="Protein is dark (raw, not inverted, images).")
    device = ChoiceParam(["auto", "cpu", "gpu"], default="auto", section=ADVANCED)
    parallel = IntParam(
        default=4, min=1, max=1000, section=ADVANCED, help="Steps the micrographs are shared by."
    )
    outputs = {"coordinates": Output(SetOfCoordinates, help="Picked positions with scores")}

    def check(self) -> list[Issue]:
        if self.values["method"] == "template" and not self.values.get("templates"):
            return [Issue("templates", "template matching needs templates")]
        return []

    def plan(self) -> Iterator[Step]:
        shards = int(self.values["parallel"])
        for shard in range(shards):
            yield Step(f"pick-{shard:04d}", "pick", {"shard": shard, "shards": shards})

    def load_templates(self, ctx: StepContext, size: float) -> NDArray[np.float64]:
        """The templates as a stack, resampled to the micrographs' pixel size."""
        source: Set = ctx.input("templates")
        require_items(source, "templates")
        images = [np.asarray(item.read(), dtype=np.float64) for item in source]
        own = source.properties.get("sampling_rate")
        if own is not None and abs(float(own) - size) > 1e-3 * size:
            images = [ndimage.zoom(image, float(own) / size, order=1) for image in images]
        box = min(min(image.shape) for image in images)
        box -= box % 2
        return np.stack([_centre_crop(image, box) for image in images])

    def pick(self, ctx: StepContext, shard: int, shards: int) -> None:
        """Pick the micrographs ``shard``, ``shard + shards``, ... and append their picks."""
        micrographs: Set = ctx.input("micrographs")
        require_items(micrographs, "micrographs")
        size = pixel_size(micrographs)
        diameter = float(self.values["particle_diameter"]) / size
        given = self.values["min_distance"]
        distance = diameter if given is None else float(given) / size
        templates = None
        if self.values["method"] == "template":
            templates = self.load_templates(ctx, size)
        uids = micrographs.uids
        columns: dict[str, list[NDArray[Any]]] = {"mic": [], "x": [], "y": [], "score": []}
        for index in range(shard, len(micrographs), shards):
            item = micrographs[index]
            image = item.read()
            if image.ndim == 3:
                image = image[0]
            if templates is None:
                points, scores = pick_dog(
                    image,
                    diameter,
                    self.values["threshold"],
                    distance,
                    count=self.values["max_per_micrograph"],
                    dark_particles=self.values["dark_particles"],
                    device=self.values["device"],
                )
            else:
                angles = np.arange(0.0, 360.0, float(self.values["angular_step"]))
                points, scores, _ = pick_template(
                    image,
                    templates,
                    angles.tolist(),
                    self.values["min_correlation"],
                    distance,
                    count=self.values["max_per_micrograph"],
                    dark_particles=self.values["dark_particles"],
                    device=self.values["device"],
                )
            columns["mic"].append(np.full(len(points), uids[index], dtype=np.uint64))
            columns["x"].append(points[:, 0])
            columns["y"].append(points[:, 1])
            columns["score"].append(scores)
            ctx.log.info("%s: %d picks", item.path.name, len(points))
        ctx.update_properties(
            "coordinates",
            sampling_rate=size,
            acquisition=micrographs.properties.get("acquisition"),
            particle_diameter=float(self.values["particle_diameter"]),
        )
        count = sum(len(x) for x in columns["x"])
        if count == 0:
            return
        ctx.append(
            "coordinates",
            {
                "uid": new_uids(count, ctx.rng),
                "micrograph_uid": np.concatenate(columns["mic"]),
                "coordinate.x": np.concatenate(columns["x"]),
                "coordinate.y": np.concatenate(columns["y"]),
                "coordinate.score": np.concatenate(columns["score"]),
            },
        )

    citations = (*Protocol.citations, VOSS2009, ROSEMAN2003)

    def cited(self) -> list[str]:
        """The picking method's paper: DoG picking or fast local correlation."""
        used = "voss2009dogpicker" if self.values["method"] == "dog" else "roseman2003findem"
        return ["cryolab", used]

    def methods(self) -> str:
        how = (
            "a difference-of-Gaussians filter matched to the particle size "
            f"[voss2009dogpicker] (responses above {self.values['threshold']:g} robust sigmas)"
            if self.values["method"] == "dog"
            else "locally normalised cross-correlation with in-plane rotated templates "
            f"every {self.values['angular_step']:g}° [roseman2003findem] (minimum correlation "
            f"{self.values['min_correlation']:g})"
        )
        return (
            f"Particles of {self.values['particle_diameter']:g} Å diameter were picked with {how}."
        )


def _centre_crop(image: NDArray[np.float64], box: int) -> NDArray[np.float64]:
    ny, nx = image.shape
    y0, x0 = ny // 2 - box // 2, nx // 2 - box // 2
    return image[y0 : y0 + box, x0 : x0 + box]
