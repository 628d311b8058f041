"""The array-module switch: numpy on the CPU, CuPy on a GPU, behind one ``device`` argument.

Protocols take ``device="auto" | "cpu" | "gpu"`` and write their kernels against the module
returned by :func:`array_module`, so the same code runs on both. CuPy is imported lazily and only
when asked for; ``"auto"`` picks the GPU when CuPy and a CUDA device are usable.
"""

from __future__ import annotations

from functools import cache
from types import ModuleType
from typing import Any, Literal

import numpy as np

from cryolab.core.errors import CryolabError

Device = Literal["auto", "cpu", "gpu"]


@cache
def gpu_available() -> bool:
    """Whether CuPy is installed and sees at least one CUDA device."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # no CuPy, no driver, no device: all mean "no GPU here"
        return False


def array_module(device: str = "auto") -> ModuleType:
    """numpy or cupy for ``device``; ``"gpu"`` without a usable GPU is an error."""
    if device not in ("auto", "cpu", "gpu"):
        raise CryolabError(f"device must be 'auto', 'cpu' or 'gpu', not {device!r}")
    if device == "cpu" or (device == "auto" and not gpu_available()):
        return np
    if not gpu_available():
        raise CryolabError(
            "device='gpu' was asked for but CuPy or a CUDA device is not "
            "available here (install cryolab[gpu] on a GPU node)"
        )
    import cupy

    module: ModuleType = cupy
    return module


def to_numpy(array: Any) -> np.ndarray[Any, Any]:
    """A numpy array from a numpy or CuPy array (copied from the GPU when needed)."""
    get = getattr(array, "get", None)
    return np.asarray(get() if callable(get) else array)


def device_name(device: str = "auto") -> str:
    """``"cpu"`` or ``"gpu"``: what :func:`array_module` resolves ``device`` to."""
    return "cpu" if array_module(device) is np else "gpu"
