"""Contrast transfer function: electron wavelength, phase aberration, and phase agreement.

Conventions (``docs/conventions.md``): defocus in Å with underfocus positive, ``defocus_u`` along
the axis at ``defocus_angle`` degrees from X, spatial frequency in 1/Å, Cs in mm, voltage in kV.
The CTF is ``-sin(chi)`` with::

    chi(s, a) = pi * lambda * z(a) * s**2 - pi / 2 * Cs * lambda**3 * s**4 + phase_shift + w
    z(a) = (du + dv) / 2 + (du - dv) / 2 * cos(2 * (a - angle))
    w = arcsin(amplitude_contrast)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å for an acceleration voltage in kV."""
    volts = voltage_kv * 1e3
    return float(12.2642598 / np.sqrt(volts * (1 + 0.97848e-6 * volts)))


def chi(
    frequency: Any,
    direction: Any,
    defocus_u: Any,
    defocus_v: Any,
    defocus_angle: Any,
    *,
    voltage: float,
    spherical_aberration: float,
    amplitude_contrast: float = 0.0,
    phase_shift: Any = 0.0,
) -> Array:
    """Phase aberration chi (radians); arguments broadcast like numpy arrays.

    Parameters
    ----------
    frequency
        Spatial frequency, 1/Å.
    direction
        Direction of the frequency vector, degrees from X.
    defocus_u, defocus_v, defocus_angle
        Defocus (Å) along the major and minor axes and the major axis angle (degrees).
    voltage, spherical_aberration, amplitude_contrast
        Acquisition: kV, mm, fraction.
    phase_shift
        Extra phase shift in degrees (phase plate).
    """
    lam = wavelength(voltage)
    cs = spherical_aberration * 1e7  # mm -> Å
    angle = np.deg2rad(np.asarray(direction, dtype=float) - np.asarray(defocus_angle, dtype=float))
    du = np.asarray(defocus_u, dtype=float)
    dv = np.asarray(defocus_v, dtype=float)
    z = 0.5 * (du + dv) + 0.5 * (du - dv) * np.cos(2 * angle)
    s2 = np.asarray(frequency, dtype=float) ** 2
    w = np.arcsin(np.clip(amplitude_contrast, 0.0, 0.999999))
    extra = np.deg2rad(np.asarray(phase_shift, dtype=float))
    result: Array = np.pi * lam * z * s2 - 0.5 * np.pi * cs * lam**3 * s2**2 + extra + w
    return result


def agreement_resolution(
    first: dict[str, Any],
    second: dict[str, Any],
    *,
    voltage: float,
    spherical_aberration: float,
    amplitude_contrast: float,
    nyquist: float,
    max_phase: float = 90.0,
    directions: int = 36,
    samples: int = 512,
) -> Array:
    """Per micrograph, the resolution (Å) up to which two CTF estimates' phases agree.

    Agreement is lost at the lowest frequency where, in any direction, the two phase
    aberrations differ by more than ``max_phase`` degrees (90° as in the usual CTF consensus).
    Estimates that agree up to Nyquist get ``1 / nyquist``.

    Parameters
    ----------
    first, second
        Columns ``ctf.defocus_u``, ``ctf.defocus_v``, ``ctf.defocus_angle`` and optionally
        ``ctf.phase_shift`` (arrays of the same length, one value per micrograph).
    nyquist
        Highest frequency to test, 1/Å (``1 / (2 * pixel size)``).
    """
    count = len(np.asarray(first["ctf.defocus_u"]))
    chunk = 128  # micrographs at a time: bounded memory for any number of micrographs
    if count > chunk:
        parts = [
            agreement_resolution(
                {k: np.asarray(v)[start : start + chunk] for k, v in first.items()},
                {k: np.asarray(v)[start : start + chunk] for k, v in second.items()},
                voltage=voltage,
                spherical_aberration=spherical_aberration,
                amplitude_contrast=amplitude_contrast,
                nyquist=nyquist,
                max_phase=max_phase,
                directions=directions,
                samples=samples,
            )
            for start in range(0, count, chunk)
        ]
        return np.concatenate(parts)
    frequency = np.linspace(0.0, nyquist, samples)[None, :, None]
    direction = np.linspace(0.0, 180.0, directions, endpoint=False)[None, None, :]

    def phase(ctf: dict[str, Any]) -> Array:
        def column(name: str, default: float = 0.0) -> Array:
            values = np.asarray(ctf.get(name, np.full(count, default)), dtype=float)
            return values[:, None, None]

        return chi(
            frequency,
            direction,
            column("ctf.defocus_u"),
            column("ctf.defocus_v"),
            column("ctf.defocus_angle"),
            voltage=voltage,
            spherical_aberration=spherical_aberration,
            amplitude_contrast=amplitude_contrast,
            phase_shift=column("ctf.phase_shift"),
        )

    difference = np.abs(phase(first) - phase(second)).max(axis=2)  # worst direction
    broken = difference > np.deg2rad(max_phase)
    first_bad = np.where(broken.any(axis=1), broken.argmax(axis=1), samples)
    shells = np.linspace(0.0, nyquist, samples)
    limit = np.where(first_bad < samples, shells[np.clip(first_bad, 0, samples - 1)], nyquist)
    with np.errstate(divide="ignore"):
        resolution: Array = np.where(limit > 0, 1.0 / np.maximum(limit, 1e-12), np.inf)
    return resolution
