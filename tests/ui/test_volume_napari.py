"""``view()`` with napari on a real (virtual) display: the window and its inline screenshot.

Xvfb and Qt's X libraries come from ``make display``; without them the test skips, except
under CI, where it fails.
"""

from __future__ import annotations

import ctypes.util
import io
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import pytest

from cryolab.ui.volume import NapariView, view


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """A private Xvfb display (``DISPLAY`` is set for the module's tests)."""
    if shutil.which("Xvfb") is None or ctypes.util.find_library("xcb-icccm") is None:
        if os.environ.get("CI"):
            pytest.fail("Xvfb or Qt's X libraries are missing: `make display` installs them")
        pytest.skip("Xvfb or Qt's X libraries are missing (make display installs them)")
    pytest.importorskip("napari")
    number = 90 + os.getpid() % 100
    server = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISPLAY", f":{number}")
        patch.delenv("WAYLAND_DISPLAY", raising=False)
        patch.setenv("QT_QPA_PLATFORM", "xcb")
        yield f":{number}"
    server.terminate()
    server.wait(10)


def test_napari_opens_the_map_and_shows_a_screenshot_inline(display: str) -> None:
    from PIL import Image

    z, y, x = np.meshgrid(*(np.arange(32) - 16,) * 3, indexing="ij")
    blob = np.exp(-((x - 4) ** 2 + y**2 + z**2) / 30.0).astype(np.float32)
    shown = view(blob, pixel_size=2.0, title="blob")  # auto: napari and a display are there
    assert isinstance(shown, NapariView)
    try:
        assert shown.layer.data.shape == (32, 32, 32)
        assert tuple(shown.layer.scale) == (2.0, 2.0, 2.0)
        picture = Image.open(io.BytesIO(shown._repr_png_()))
        pixels = np.asarray(picture.convert("L"))
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert pixels.max() > 100  # the blob's projection is drawn, not a black canvas
    finally:
        shown.viewer.close()
