"""The cryo-EM object model: typed sets with agreed column names, units and item views.

Every EM set is a columnar :class:`~cryolab.core.sets.Set`; its type says what a row is and
:attr:`EMSet.fields` documents the columns converters read and write (``docs/formats.md`` maps
them to RELION, cryoSPARC, Scipion, ...). Columns not listed are carried along untouched.

Conventions (see ``docs/conventions.md``):

- lengths in Å, pixel sizes in Å/px, angles in degrees, voltage in kV, Cs in mm, dose in e/Å²;
- ``image.path`` + ``image.index`` locate an image (``index@path``, 1-based like RELION);
- ``micrograph_uid`` links particles, coordinates and CTFs to their micrograph's ``uid``;
- ``transform.rot/tilt/psi`` are ZYZ Euler angles and ``transform.shift_x/y`` are shifts in Å,
  both in RELION 3.1's convention (the internal one);
- the acquisition is a set property (``acquisition``: :class:`Acquisition` as a dict), and
  ``sampling_rate`` (Å/px) is a set property of every image set.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from cryolab.core.figures import Figure
from cryolab.core.sets import Item, Set
from cryolab.em import report_figures


@dataclass(frozen=True)
class Field:
    """A documented column of an EM set."""

    name: str
    dtype: str
    unit: str = ""
    help: str = ""


@dataclass
class Acquisition:
    """Microscope and detector settings shared by a set's images.

    Stored as the set property ``acquisition`` (``asdict``); per-optics-group values, when a
    set has several groups, are in the property ``optics_groups`` (a list of such dicts with a
    ``name``) and rows point to them with the column ``optics_group`` (1-based).
    """

    voltage: float = 300.0  # kV
    spherical_aberration: float = 2.7  # mm
    amplitude_contrast: float = 0.1
    sampling_rate: float = 1.0  # Å/px of the images in the set
    dose_per_frame: float | None = None  # e/Å²
    magnification: float | None = None
    gain: str | None = None  # path of the gain reference
    defects: str | None = None  # path of the defects file or map
    extra: dict[str, Any] = field(default_factory=dict)  # other keys of the source, kept

    def to_dict(self) -> dict[str, Any]:
        """The acquisition as JSON data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Acquisition:
        """Rebuild from :meth:`to_dict`; unknown keys go to ``extra``."""
        known = {
            k: v
            for k, v in data.items()
            if k in cls.__dataclass_fields__ and k != "extra" and v is not None
        }
        extra = dict(data.get("extra", {}))
        extra.update({k: v for k, v in data.items() if k not in cls.__dataclass_fields__})
        return cls(**known, extra=extra)

    def check(self) -> list[str]:
        """Problems with the values (empty when plausible)."""
        problems = []
        if not 20 <= self.voltage <= 1000:
            problems.append(f"voltage {self.voltage} kV is not plausible (20 to 1000)")
        if not 0 <= self.spherical_aberration <= 20:
            problems.append(f"Cs {self.spherical_aberration} mm is not plausible (0 to 20)")
        if not 0 <= self.amplitude_contrast < 1:
            problems.append(f"amplitude contrast {self.amplitude_contrast} is not in [0, 1)")
        if not self.sampling_rate > 0:
            problems.append(f"sampling rate {self.sampling_rate} Å/px must be positive")
        return problems


IMAGE_FIELDS = (
    Field("image.path", "string", help="File holding the image (MRC, MRCS, TIFF, ...)"),
    Field("image.index", "int64", help="1-based position in a stack (index@path); 1 if alone"),
)
CTF_FIELDS = (
    Field("ctf.defocus_u", "float64", "Å", "Defocus along the major axis (underfocus > 0)"),
    Field("ctf.defocus_v", "float64", "Å", "Defocus along the minor axis"),
    Field("ctf.defocus_angle", "float64", "deg", "Angle of the major axis from X"),
    Field("ctf.phase_shift", "float64", "deg", "Additional phase shift (phase plate)"),
    Field("ctf.resolution", "float64", "Å", "Resolution to which the fit is reliable"),
    Field("ctf.score", "float64", "", "Fit score (cross-correlation) of the estimation"),
)
COORDINATE_FIELDS = (
    Field("micrograph_uid", "uint64", help="uid of the micrograph"),
    Field("coordinate.x", "float64", "px", "Centre X in micrograph pixels"),
    Field("coordinate.y", "float64", "px", "Centre Y in micrograph pixels"),
)
TRANSFORM_FIELDS = (
    Field("transform.rot", "float64", "deg", "First Euler angle (ZYZ, RELION convention)"),
    Field("transform.tilt", "float64", "deg", "Second Euler angle"),
    Field("transform.psi", "float64", "deg", "Third Euler angle"),
    Field("transform.shift_x", "float64", "Å", "Origin X offset (RELION rlnOriginXAngst)"),
    Field("transform.shift_y", "float64", "Å", "Origin Y offset (RELION rlnOriginYAngst)"),
)


class ImageItem(Item):
    """An item that is an image in a file: ``item.path``, ``item.index``, ``item.read()``."""

    @property
    def path(self) -> Path:
        """The image file (relative paths are relative to the set's ``root`` property)."""
        text = str(self["image.path"])
        root = self._set.properties.get("root")
        return Path(root, text) if root and not Path(text).is_absolute() else Path(text)

    @property
    def index(self) -> int:
        """1-based position of the image in its file (1 when the file holds one image)."""
        value = self["image.index"] if "image.index" in self._set else None
        return 1 if value is None else int(value)

    def read(self) -> NDArray[Any]:
        """The image (or movie frame, or volume) as a numpy array.

        Files lacking the MRC map id are read when the set's ``permissive`` property is true.
        """
        from cryolab.em import imageio

        permissive = bool(self._set.properties.get("permissive", False))
        return np.asarray(imageio.read_image(self.path, self.index, permissive=permissive))


class VolumeItem(ImageItem):
    """A map of a :class:`SetOfVolumes`: ``read()`` it, or ``view()`` it in a notebook."""

    def view(self, **options: Any) -> Any:
        """Show the map: napari where a display exists, else a browser slicer.

        The notebook front end (``cryolab.ui.volume.view``, which takes ``options``) is
        imported by name, on demand: the domain layer never imports the optional UI layer.
        """
        front = importlib.import_module("cryolab.ui.volume")
        size = self._set.properties.get("sampling_rate")
        return front.view(self.read(), pixel_size=size, title=self.path.name, **options)


class EMSet(Set):
    """Base of the cryo-EM set types."""

    #: The documented columns of the set type (what converters read and write).
    fields: ClassVar[tuple[Field, ...]] = ()

    @property
    def acquisition(self) -> Acquisition | None:
        """The set's acquisition, if recorded."""
        data = self.properties.get("acquisition")
        return Acquisition.from_dict(data) if data else None

    @property
    def sampling_rate(self) -> float | None:
        """Pixel size of the set's images in Å/px, if recorded."""
        value = self.properties.get("sampling_rate")
        return None if value is None else float(value)


class SetOfImages(EMSet):
    """Items that are images in files."""

    item_label = "image"
    item_class = ImageItem
    fields: ClassVar[tuple[Field, ...]] = IMAGE_FIELDS


class SetOfMovies(SetOfImages):
    """Movies: stacks of frames recorded by the detector."""

    item_label = "movie"
    fields = (*IMAGE_FIELDS, Field("movie.frames", "int64", help="Number of frames"))


class SetOfMicrographs(SetOfImages):
    """Micrographs: motion-corrected (summed) images."""

    item_label = "micrograph"
    fields = (*IMAGE_FIELDS, Field("micrograph.name", "string", help="Name used to match files"))


class SetOfCTFs(EMSet):
    """CTF estimations, one per micrograph."""

    item_label = "CTF"
    fields = (Field("micrograph_uid", "uint64", help="uid of the micrograph"), *CTF_FIELDS)

    def report_figures(self) -> list[Figure]:
        """Defocus and CTF fit resolution per micrograph (:func:`report_figures.ctf`)."""
        return report_figures.ctf(self)


class SetOfCoordinates(EMSet):
    """Picked particle positions on micrographs."""

    item_label = "coordinate"
    fields = (*COORDINATE_FIELDS, Field("coordinate.score", "float64", help="Picking score"))


class SetOfParticles(SetOfImages):
    """Particle images, with their origin, CTF, orientation and class."""

    item_label = "particle"
    fields = (
        *IMAGE_FIELDS,
        *COORDINATE_FIELDS,
        *CTF_FIELDS,
        *TRANSFORM_FIELDS,
        Field("class_id", "int64", help="Class assigned by a classification"),
        Field("optics_group", "int64", help="1-based optics group (property optics_groups)"),
    )


class SetOfVolumes(SetOfImages):
    """3-D maps, with optional half maps and mask."""

    item_label = "volume"
    item_class = VolumeItem
    fields = (
        *IMAGE_FIELDS,
        Field("volume.half1", "string", help="First half map"),
        Field("volume.half2", "string", help="Second half map"),
        Field("volume.mask", "string", help="Mask"),
    )

    def report_figures(self) -> list[Figure]:
        """Central slices of the maps (:func:`report_figures.volume_slices`)."""
        return report_figures.volume_slices(self)


class SetOfClasses2D(SetOfImages):
    """2-D classes: a representative image (class average) per class; members carry class_id."""

    item_label = "class"
    fields = (
        *IMAGE_FIELDS,
        Field("class_id", "int64", help="The class number members refer to"),
        Field("class.size", "int64", help="Number of member particles"),
        Field("class.distribution", "float64", help="Fraction of the particles in the class"),
        Field("class.resolution", "float64", "Å", "Estimated resolution of the class"),
    )

    def report_figures(self) -> list[Figure]:
        """The class averages in a grid (:func:`report_figures.class_averages`)."""
        return report_figures.class_averages(self)


class SetOfClasses3D(SetOfClasses2D):
    """3-D classes: a representative volume per class."""

    def report_figures(self) -> list[Figure]:
        """Central slices of the class maps (:func:`report_figures.volume_slices`)."""
        return report_figures.volume_slices(self, "class map")


class FSC(EMSet):
    """A Fourier shell correlation curve: one row per shell."""

    item_label = "shell"
    fields = (
        Field("fsc.frequency", "float64", "1/Å", "Spatial frequency of the shell"),
        Field("fsc.value", "float64", help="Correlation in the shell"),
    )

    def report_figures(self) -> list[Figure]:
        """The FSC curve with the 0.143 threshold (:func:`report_figures.fsc`)."""
        return report_figures.fsc(self)

    def resolution(self, threshold: float = 0.143) -> float:
        """The resolution (Å) where the curve first falls below ``threshold``."""
        frequency = self["fsc.frequency"]
        value = self["fsc.value"]
        below = np.flatnonzero((value < threshold) & (frequency > 0))
        if below.size == 0:
            return float(1 / frequency[-1])
        i = int(below[0])
        if i == 0:
            return float(1 / frequency[0]) if frequency[0] > 0 else float("inf")
        f0, f1, v0, v1 = frequency[i - 1], frequency[i], value[i - 1], value[i]
        crossing = f0 + (v0 - threshold) * (f1 - f0) / (v0 - v1) if v0 != v1 else f1
        return float(1 / crossing)


class SetOfTiltSeries(SetOfImages):
    """Tilt images of one or more tilt series: one row per tilt."""

    item_label = "tilt image"
    fields = (
        *IMAGE_FIELDS,
        Field("tilt_series.name", "string", help="Which tilt series the image belongs to"),
        Field("tilt.angle", "float64", "deg", "Tilt angle of the image"),
        Field("tilt.dose", "float64", "e/Å²", "Accumulated dose before the image"),
    )


class SetOfTomograms(SetOfImages):
    """Reconstructed tomograms."""

    item_label = "tomogram"
    fields = (*IMAGE_FIELDS, Field("tomogram.name", "string", help="Tilt series it comes from"))


EM_TYPES: tuple[type[EMSet], ...] = (
    SetOfImages,
    SetOfMovies,
    SetOfMicrographs,
    SetOfCTFs,
    SetOfCoordinates,
    SetOfParticles,
    SetOfVolumes,
    SetOfClasses2D,
    SetOfClasses3D,
    FSC,
    SetOfTiltSeries,
    SetOfTomograms,
)
