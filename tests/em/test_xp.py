"""The numpy/CuPy switch (GPU tests are marked and skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from cryolab.core.errors import CryolabError
from cryolab.em import xp


def test_cpu_is_numpy() -> None:
    assert xp.array_module("cpu") is np
    assert xp.device_name("cpu") == "cpu"
    assert xp.to_numpy([1, 2]).tolist() == [1, 2]


def test_auto_falls_back_to_numpy_without_a_gpu() -> None:
    if xp.gpu_available():
        pytest.skip("a GPU is present")
    assert xp.array_module("auto") is np
    with pytest.raises(CryolabError, match="CuPy or a CUDA device is not available"):
        xp.array_module("gpu")


def test_unknown_device() -> None:
    with pytest.raises(CryolabError, match="device must be"):
        xp.array_module("tpu")


@pytest.mark.gpu
def test_gpu_round_trip() -> None:
    if not xp.gpu_available():
        pytest.skip("no GPU")
    cupy = xp.array_module("gpu")
    assert xp.to_numpy(cupy.arange(3)).tolist() == [0, 1, 2]
