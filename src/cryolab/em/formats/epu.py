"""EPU micrograph metadata (the ``FoilHole_..._Data_....xml`` file next to each movie).

EPU (Thermo Fisher) writes one XML file per exposure: a ``MicroscopeImage`` element (namespace
``http://schemas.datacontract.org/2004/07/Fei.SharedObjects``) with, among others,

- ``microscopeData/gun/AccelerationVoltage`` (volts),
- ``SpatialScale/pixelSize/x/numericValue`` (metres per pixel),
- ``microscopeData/optics/TemMagnification/NominalMagnification``,
- ``microscopeData/acquisition/camera/ExposureTime`` (seconds), ``Binning``,
  ``CameraSpecificInput`` (key/value pairs such as ``SuperResolutionFactor`` and
  ``FractionationSettings/NumberOffractions``),
- ``CustomData`` key/value pairs (``Dose`` in electrons per square metre, ``AppliedDefocus``
  in metres, ``DetectorCommercialName`` ...),
- ``microscopeData/core/ApplicationSoftwareVersion``, ``microscopeData/acquisition/
  acquisitionDateTime``.

:func:`read_epu_xml` returns an :class:`~cryolab.em.objects.Acquisition`. EPU does not record
the spherical aberration or the amplitude contrast: they keep the Acquisition defaults (say so
where it matters). Every value of the file is kept, as text, in ``extra["epu"]`` (keys are
element paths below ``MicroscopeImage``; key/value pairs appear under their key).

This parser follows the EPU 3.x file structure as published; it is validated only on a
synthetic sample written for the tests (no EPU XML is among the project's real test files).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from cryolab.em.formats import FormatError
from cryolab.em.objects import Acquisition

__all__ = ["read_epu_xml"]

_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
_ROOT = "MicroscopeImage"
_PAIR = "KeyValueOfstringanyType"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _flatten(element: ET.Element, prefix: str, out: dict[str, str | None]) -> None:
    """Leaf values by path; key/value pair lists are keyed by their keys."""
    for child in element:
        name = _local(child.tag)
        if name == _PAIR:
            key_element = next((c for c in child if _local(c.tag) == "Key"), None)
            value_element = next((c for c in child if _local(c.tag) == "Value"), None)
            if key_element is None or value_element is None:
                continue
            path = f"{prefix}{(key_element.text or '').strip()}"
            _leaf_or_tree(value_element, path, out)
            continue
        _leaf_or_tree(child, f"{prefix}{name}", out)


def _leaf_or_tree(element: ET.Element, path: str, out: dict[str, str | None]) -> None:
    if len(element):
        _flatten(element, path + "/", out)
        return
    key = path
    count = 2
    while key in out:
        key = f"{path}#{count}"
        count += 1
    nil = element.get(_NIL) == "true"
    out[key] = None if nil else (element.text or "").strip()


def _float(values: dict[str, str | None], *paths: str) -> float | None:
    for path in paths:
        text = values.get(path)
        if text:
            try:
                return float(text)
            except ValueError:
                continue
    return None


def _find(values: dict[str, str | None], suffix: str) -> str | None:
    """The first path that ends with ``suffix`` (for values EPU versions put elsewhere)."""
    return next((k for k in values if k == suffix or k.endswith("/" + suffix)), None)


def read_epu_xml(path: str | Path) -> Acquisition:
    """Read an EPU micrograph XML file into an :class:`~cryolab.em.objects.Acquisition`.

    Mapping (units converted): ``AccelerationVoltage`` V -> ``voltage`` kV; ``pixelSize/x``
    m -> ``sampling_rate`` Å/px; ``NominalMagnification`` -> ``magnification``;
    ``CustomData/Dose`` e/m² divided by the number of fractions -> ``dose_per_frame`` e/Å².
    ``extra`` holds ``total_dose`` (e/Å²), ``frames``, ``exposure_time`` (s), ``binning``,
    ``super_resolution_factor``, ``detector``, ``applied_defocus`` (Å, underfocus positive),
    ``acquired_at``, ``software``, ``pixel_size_y`` (when it differs from x), and ``epu``
    (every value of the file, as text).

    Raises
    ------
    FormatError
        The file is not XML, its root is not ``MicroscopeImage``, or it has no acceleration
        voltage or pixel size.
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise FormatError(path, f"not XML: {exc}", line=line) from None
    if _local(root.tag) != _ROOT:
        raise FormatError(path, f"the root element is {_local(root.tag)!r}, not {_ROOT!r}")
    values: dict[str, str | None] = {}
    _flatten(root, "", values)
    voltage_path = "microscopeData/gun/AccelerationVoltage"
    voltage = _float(values, voltage_path, _find(values, "AccelerationVoltage") or voltage_path)
    if voltage is None:
        raise FormatError(path, "no AccelerationVoltage value", field=voltage_path)
    pixel_x = _float(values, "SpatialScale/pixelSize/x/numericValue")
    if pixel_x is None:
        raise FormatError(
            path, "no pixel size value", field="SpatialScale/pixelSize/x/numericValue"
        )
    pixel_y = _float(values, "SpatialScale/pixelSize/y/numericValue")
    extra: dict[str, Any] = {"source": "EPU", "file": str(path)}
    frames_path = _find(values, "FractionationSettings/NumberOffractions")
    frames = _float(values, frames_path) if frames_path else None
    dose = _float(values, "CustomData/Dose")
    total_dose = None if dose is None else dose * 1e-20  # e/m² -> e/Å²
    if total_dose is not None:
        extra["total_dose"] = total_dose
    if frames:
        extra["frames"] = int(frames)
    exposure = _float(values, "microscopeData/acquisition/camera/ExposureTime")
    if exposure is not None:
        extra["exposure_time"] = exposure
    binning = _float(values, "microscopeData/acquisition/camera/Binning/x")
    if binning is not None:
        extra["binning"] = int(binning)
    super_resolution = _find(values, "CameraSpecificInput/SuperResolutionFactor")
    if super_resolution and _float(values, super_resolution) is not None:
        extra["super_resolution_factor"] = _float(values, super_resolution)
    detector = values.get("CustomData/DetectorCommercialName")
    if detector:
        extra["detector"] = detector
    defocus = _float(values, "CustomData/AppliedDefocus")
    if defocus is not None:
        extra["applied_defocus"] = -defocus * 1e10  # m, negative = underfocus -> Å, positive
    when = values.get("microscopeData/acquisition/acquisitionDateTime")
    if when:
        extra["acquired_at"] = when
    software = " ".join(
        v
        for v in (
            values.get("microscopeData/core/ApplicationSoftware"),
            values.get("microscopeData/core/ApplicationSoftwareVersion"),
        )
        if v
    )
    if software:
        extra["software"] = software
    if pixel_y is not None and pixel_y != pixel_x:
        extra["pixel_size_y"] = pixel_y * 1e10
    extra["epu"] = values
    magnification = _float(values, "microscopeData/optics/TemMagnification/NominalMagnification")
    return Acquisition(
        voltage=voltage / 1000.0,
        sampling_rate=pixel_x * 1e10,
        magnification=magnification,
        dose_per_frame=None if total_dose is None or not frames else total_dose / frames,
        extra=extra,
    )
