"""RELION postprocess FSC curves and model.star files as EM sets.

Import these from :mod:`cryolab.em.relion`.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa

from cryolab.em.objects import FSC, SetOfClasses2D, SetOfClasses3D
from cryolab.em.relion import (
    Source,
    _blocks,
    _image_names,
    _make_set,
)
from cryolab.em.star import StarError, block, column_as

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|nan|inf)", re.I)


def _value(text: Any) -> Any:
    """A key-value STAR value as an int, float or string (JSON-friendly)."""
    if not isinstance(text, str):
        return text
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if _NUMBER.fullmatch(text):
        number = float(text)
        return number if np.isfinite(number) else text
    return text


def read_postprocess_fsc(source: Source, *, seed: int | None = None) -> FSC:
    """The FSC curve of a RELION ``postprocess.star`` file.

    One row per shell: ``fsc.frequency`` (``rlnResolution``, 1/Å) and ``fsc.value``
    (``rlnFourierShellCorrelationCorrected``); the other FSC labels as ``relion.*``. The
    ``data_general`` values are properties ``relion.<label>`` (numbers as numbers), and
    ``resolution`` is ``rlnFinalResolution`` (Å). Other blocks (``data_guinier``) are left to
    :func:`~cryolab.em.star.read_star`.
    """
    blocks, file = _blocks(source)
    table = block(blocks, "fsc", file)
    columns: dict[str, Any] = {}
    for label in table.column_names:
        if label == "rlnResolution":
            columns["fsc.frequency"] = column_as(table, label, pa.float64())
        elif label == "rlnFourierShellCorrelationCorrected":
            columns["fsc.value"] = column_as(table, label, pa.float64())
        else:
            columns["relion." + label] = table.column(label)
    if "fsc.frequency" not in columns or "fsc.value" not in columns:
        raise StarError(
            "data_fsc needs rlnResolution and rlnFourierShellCorrelationCorrected", file=file
        )
    general = blocks.get("general") or {}
    properties = {f"relion.{k}": _value(v) for k, v in general.items()}
    if isinstance(properties.get("relion.rlnFinalResolution"), (int, float)):
        properties["resolution"] = float(properties["relion.rlnFinalResolution"])
    result = _make_set(FSC, columns, properties, seed)
    assert isinstance(result, FSC)
    return result


def read_model_star(source: Source, *, seed: int | None = None) -> dict[str, Any]:
    """A RELION ``model.star`` (Class2D/Class3D/Refine3D) as Python objects.

    Returns
    -------
    dict
        ``general``: ``data_model_general`` as a dict (numbers as numbers); ``classes``: a
        :class:`~cryolab.em.objects.SetOfClasses3D` (or 2D, after
        ``rlnReferenceDimensionality``) with one row per ``data_model_classes`` row:
        ``image.path``/``image.index`` from ``rlnReferenceImage``, ``class_id`` (1-based row
        number, as RELION numbers classes), ``class.distribution``, ``class.resolution``
        (``rlnEstimatedResolution``, when present) and the rest as ``relion.*``, with the
        property ``sampling_rate`` (``rlnPixelSize``); ``class_spectra``: class id to its
        ``data_model_class_<n>`` table; ``blocks``: every other block as read.
    """
    blocks, file = _blocks(source)
    general_block = block(blocks, "model_general", file)
    general = {k: _value(v) for k, v in general_block.items()}
    table = block(blocks, "model_classes", file)
    columns: dict[str, Any] = {"class_id": pa.array(np.arange(1, table.num_rows + 1))}
    for label in table.column_names:
        if label == "rlnReferenceImage":
            columns.update(_image_names(table, label))
            columns.pop("digits", None)
        elif label == "rlnClassDistribution":
            columns["class.distribution"] = column_as(table, label, pa.float64())
        elif label == "rlnEstimatedResolution":
            columns["class.resolution"] = column_as(table, label, pa.float64())
        else:
            columns["relion." + label] = table.column(label)
    properties: dict[str, Any] = {}
    if isinstance(general.get("rlnPixelSize"), (int, float)):
        properties["sampling_rate"] = float(general["rlnPixelSize"])
    kind = SetOfClasses3D if general.get("rlnReferenceDimensionality") == 3 else SetOfClasses2D
    classes = _make_set(kind, columns, properties, seed)
    spectra = {}
    rest = {}
    for name, content in blocks.items():
        match = re.fullmatch(r"model_class_(\d+)", name)
        if match:
            spectra[int(match.group(1))] = content
        elif name not in ("model_general", "model_classes"):
            rest[name] = content
    return {"general": general, "classes": classes, "class_spectra": spectra, "blocks": rest}
