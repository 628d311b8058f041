"""Image I/O: real MRC files of EMDB, EPU and cryoDRGN, written files in every mode, TIFF
movies, truncated and foreign files, locations and thumbnails."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pytest
import tifffile

from cryolab.core.errors import CryolabError
from cryolab.em import imageio
from cryolab.em.imageio import (
    ImageError,
    format_location,
    parse_location,
    read_header,
    read_image,
    read_images,
    thumbnail,
    write_mrc,
    write_stack,
)

Real = Callable[[str], Path]
EMD_3197 = "mrcfile_ccpem/EMD-3197.map"
EMD_3197_GZ = "mrcfile_ccpem/emd_3197.map.gz"
EMD_3001 = "mrcfile_ccpem/EMD-3001.map"
EPU_FEI2 = "mrcfile_ccpem/epu2.9_example.mrc.gz"
EPU_FEI1 = "mrcfile_ccpem/fei-extended.mrc.gz"
RELION31 = "cryodrgn/relion31.mrcs"
RIBO = "cryodrgn/ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs"


def mrcfile_data(path: Path) -> np.ndarray[Any, Any]:
    """The whole data block as mrcfile reads it (permissive: cryoDRGN files lack the id)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with mrcfile.open(path, permissive=True) as mrc:
            return np.array(mrc.data)


@pytest.fixture(scope="module")
def big_files() -> dict[str, Any]:
    """Per-module cache: each large gzipped EPU file is decompressed once for all tests."""
    return {}


@pytest.fixture
def epu(real: Real, big_files: dict[str, Any]) -> dict[str, Any]:
    """EPU 2.9 micrograph (FEI2 extended header): header, our image, mrcfile's image."""
    return _load(real(EPU_FEI2), big_files)


@pytest.fixture
def fei1(real: Real, big_files: dict[str, Any]) -> dict[str, Any]:
    """EPU micrograph with an FEI1 extended header: header, our image, mrcfile's image."""
    return _load(real(EPU_FEI1), big_files)


def _load(path: Path, cache: dict[str, Any]) -> dict[str, Any]:
    if str(path) not in cache:
        cache[str(path)] = {
            "path": path,
            "header": read_header(path),
            "image": read_image(path),
            "mrcfile": mrcfile_data(path),
        }
    return cache[str(path)]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- real files


def test_emd_3197_is_a_20_cubed_volume(real: Real) -> None:
    path = real(EMD_3197)
    header = read_header(path)
    assert (header.nx, header.ny, header.nz) == (20, 20, 20)
    assert header.kind == "volume" and header.is_volume and not header.is_stack
    assert header.n_images == 1 and header.item_shape == (20, 20, 20)
    assert header.mode == 2 and header.dtype == np.float32
    assert header.voxel_size == pytest.approx(11.4)
    assert header.voxel_size_xyz == pytest.approx((11.4, 11.4, 11.4))
    assert header.data_offset == 1024 and header.ext_type == "" and header.compression is None
    volume = read_image(path)
    assert volume.shape == (20, 20, 20) and volume.dtype == np.float32
    np.testing.assert_array_equal(volume, mrcfile_data(path))
    np.testing.assert_array_equal(read_image(path, None), volume)


def test_emd_3001_crystallographic_volume(real: Real) -> None:
    path = real(EMD_3001)
    header = read_header(path)
    assert header.ispg == 4 and header.kind == "volume"
    assert (header.nx, header.ny, header.nz, header.mz) == (73, 43, 25, 72)
    assert header.ext_bytes == 160 and header.data_offset == 1024 + 160
    assert header.voxel_size_xyz == pytest.approx((17.93 / 40, 4.71 / 12, 33.03 / 72))
    np.testing.assert_array_equal(read_image(path), mrcfile_data(path))


def test_gzipped_map_reads_like_the_plain_one(real: Real) -> None:
    plain, packed = real(EMD_3197), real(EMD_3197_GZ)
    header = read_header(packed)
    assert header.compression == "gzip"
    assert (header.nx, header.ny, header.nz, header.kind) == (20, 20, 20, "volume")
    assert header.voxel_size == pytest.approx(11.4)
    np.testing.assert_array_equal(read_image(packed), read_image(plain))
    np.testing.assert_array_equal(read_image(packed), mrcfile_data(packed))


def test_epu_fei2_micrograph(epu: dict[str, Any]) -> None:
    header = epu["header"]
    assert (header.nx, header.ny, header.nz) == (4096, 4096, 1)
    assert header.kind == "image" and header.n_images == 1
    assert header.mode == 6 and header.dtype == np.uint16
    assert header.ext_type == "FEI2" and header.ext_bytes == 909312
    assert header.data_offset == 1024 + 909312
    assert header.voxel_size == pytest.approx(0.6666, abs=1e-4)
    assert header.compression == "gzip"
    image = epu["image"]
    assert image.shape == (4096, 4096) and image.dtype == np.uint16
    np.testing.assert_array_equal(image, epu["mrcfile"])


def test_epu_fei1_micrograph(fei1: dict[str, Any]) -> None:
    header = fei1["header"]
    assert (header.nx, header.ny, header.nz) == (3710, 3838, 1)
    assert header.ext_type == "FEI1" and header.ext_bytes == 786432
    assert header.mode == 6 and header.voxel_size == pytest.approx(0.8538, abs=1e-4)
    image = fei1["image"]
    assert image.shape == (3838, 3710) and image.dtype == np.uint16
    np.testing.assert_array_equal(image, fei1["mrcfile"])


def test_single_image_has_only_index_1(epu: dict[str, Any]) -> None:
    with pytest.raises(ImageError, match=r"index 2 is out of range.*holds 1 image") as info:
        read_image(epu["path"], 2)
    assert str(epu["path"]) in str(info.value)


def test_cryodrgn_stack_needs_permissive(real: Real) -> None:
    path = real(RELION31)
    with pytest.raises(ImageError, match="permissive=True") as info:
        read_header(path)
    assert str(path) in str(info.value) and "MAP" in str(info.value)
    assert "stack, 5 x 256x256, mode 2" in str(info.value)
    with pytest.raises(ImageError, match="permissive=True"):
        read_image(path, 2)
    header = read_header(path, permissive=True)
    assert header.kind == "stack" and header.n_images == 5 and header.item_shape == (256, 256)
    assert header.dtype == np.float32 and header.byte_order == "<"
    expected = mrcfile_data(path)
    for index in (1, 3, 5):
        image = read_image(path, index, permissive=True)
        assert image.shape == (256, 256)
        np.testing.assert_array_equal(image, expected[index - 1])
    np.testing.assert_array_equal(read_image(path, None, permissive=True), expected)


def test_particle_stack_random_access(real: Real) -> None:
    path = real(RIBO)
    header = read_header(path, permissive=True)
    assert (header.nx, header.ny, header.n_images) == (64, 64, 220)
    expected = mrcfile_data(path)
    assert expected.shape == (220, 64, 64)
    for index in (1, 2, 77, 219, 220):
        np.testing.assert_array_equal(read_image(path, index, permissive=True), expected[index - 1])
    indices = np.random.default_rng(7).integers(1, 221, size=100)
    images = read_images(path, indices, permissive=True)
    assert images.shape == (100, 64, 64) and images.flags.writeable
    np.testing.assert_array_equal(images, expected[indices - 1])
    # runs of neighbours, repeats and any order
    for chosen in ([3, 4, 5, 10, 11, 220], [220, 1, 1, 2, 2], [5]):
        got = read_images(path, chosen, permissive=True)
        np.testing.assert_array_equal(got, expected[np.array(chosen) - 1])
    assert read_images(path, [], permissive=True).shape == (0, 64, 64)


@pytest.mark.parametrize("index", [0, -1, 221])
def test_index_out_of_range_names_index_and_count(real: Real, index: int) -> None:
    path = real(RIBO)
    with pytest.raises(ImageError, match=rf"index {index} is out of range.*220") as info:
        read_image(path, index, permissive=True)
    assert str(path) in str(info.value)
    with pytest.raises(ImageError, match=rf"index {index}"):
        read_images(path, [1, index], permissive=True)


def test_non_integer_index_is_refused(real: Real) -> None:
    with pytest.raises(ImageError, match="not an integer"):
        read_image(real(RIBO), 1.5, permissive=True)  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="integers"):
        read_images(real(RIBO), [1.0, 2.0], permissive=True)


# --------------------------------------------------------------------------- bad files


def test_truncated_stack(real: Real, tmp_path: Path) -> None:
    path = tmp_path / "cut.mrcs"
    data = real(RIBO).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for read in (
        lambda: read_header(path, permissive=True),
        lambda: read_image(path, 1, permissive=True),
        lambda: read_images(path, [1, 2], permissive=True),
    ):
        with pytest.raises(ImageError, match="truncated") as info:
            read()
        assert str(path) in str(info.value)
        assert f"only {len(data) // 2}" in str(info.value)


def test_truncated_header(real: Real, tmp_path: Path) -> None:
    path = tmp_path / "stub.mrc"
    path.write_bytes(real(EMD_3197).read_bytes()[:500])
    with pytest.raises(ImageError, match=r"truncated.*too short for an MRC header") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_truncated_volume_data(real: Real, tmp_path: Path) -> None:
    path = tmp_path / "cut.map"
    path.write_bytes(real(EMD_3197).read_bytes()[:-4])
    with pytest.raises(ImageError, match="truncated") as info:
        read_image(path)
    assert isinstance(info.value, CryolabError) and str(path) in str(info.value)


def test_truncated_gzip_file(real: Real, tmp_path: Path) -> None:
    path = tmp_path / "cut.map.gz"
    data = real(EMD_3197_GZ).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert read_header(path).compression == "gzip"  # the header is still there
    with pytest.raises(ImageError, match="truncated") as info:
        read_image(path)
    assert str(path) in str(info.value)
    path.write_bytes(data[:100])  # not even the header
    with pytest.raises(ImageError, match="truncated") as info:
        read_header(path)
    assert str(path) in str(info.value)
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 200)
    with pytest.raises(ImageError, match="gzip data is corrupt"):
        read_image(path)


def test_foreign_and_missing_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.mrc"
    text.write_text("not an image\n" * 200, encoding="utf-8")
    with pytest.raises(ImageError, match=r"not an MRC file: no map id .* unknown MRC mode") as info:
        read_image(text)
    assert str(text) in str(info.value) and "permissive" not in str(info.value)
    with pytest.raises(ImageError, match="MRC mode"):
        read_image(text, permissive=True)
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "absent.mrcs", 3)
    with pytest.raises(ImageError, match="folder"):
        read_header(tmp_path)


def test_unsupported_mode_is_named(tmp_path: Path) -> None:
    path = write_mrc(tmp_path / "c.mrc", np.zeros((4, 4), np.int16))
    _patch(path, 12, 3)  # mode 3: complex int16
    with pytest.raises(ImageError, match=r"mode 3 \(complex int16\) is not supported"):
        read_header(path)


# --------------------------------------------------------------------------- written files


def _patch(path: Path, offset: int, value: int, order: str = "<") -> None:
    """Overwrite one 4-byte integer header word."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(np.array(value, dtype=f"{order}i4").tobytes())


@pytest.mark.parametrize(
    ("dtype", "mode"),
    [
        (np.int8, 0),
        (np.int16, 1),
        (np.float32, 2),
        (np.complex64, 4),
        (np.uint16, 6),
        (np.float16, 12),
    ],
)
def test_modes_round_trip(tmp_path: Path, dtype: type[np.generic], mode: int) -> None:
    rng = np.random.default_rng(mode)
    stack = (rng.standard_normal((7, 12, 10)) * 100).astype(dtype)
    if dtype is np.uint16:
        stack = rng.integers(0, 65535, (7, 12, 10)).astype(dtype)
    path = write_stack(tmp_path / "s.mrcs", stack, voxel_size=1.5)
    header = read_header(path)
    assert header.mode == mode and header.dtype == dtype and header.kind == "stack"
    assert header.voxel_size == pytest.approx(1.5) and header.n_images == 7
    for index in (1, 4, 7):
        image = read_image(path, index)
        assert image.dtype == dtype
        np.testing.assert_array_equal(image, stack[index - 1])
    np.testing.assert_array_equal(read_images(path, [7, 2]), stack[[6, 1]])
    np.testing.assert_array_equal(read_image(path, None), mrcfile_data(path))


def test_float16_round_trip_single_image_and_volume(tmp_path: Path) -> None:
    image = np.linspace(-3, 3, 48 * 40, dtype=np.float16).reshape(48, 40)
    path = write_mrc(tmp_path / "half.mrc", image, voxel_size=0.83)
    header = read_header(path)
    assert (header.mode, header.kind, header.item_shape) == (12, "image", (48, 40))
    np.testing.assert_array_equal(read_image(path), image)
    volume = np.arange(4 * 5 * 6, dtype=np.float16).reshape(4, 5, 6)
    path = write_mrc(tmp_path / "half_volume.mrc", volume, voxel_size=(1.0, 2.0, 3.0))
    header = read_header(path)
    assert header.kind == "volume" and header.voxel_size_xyz == pytest.approx((1, 2, 3))
    np.testing.assert_array_equal(read_image(path), volume)


def test_float64_is_stored_as_float32_and_bad_dtypes_refused(tmp_path: Path) -> None:
    path = write_mrc(tmp_path / "d.mrc", np.ones((3, 3)))
    assert read_header(path).mode == 2
    with pytest.raises(ImageError, match="int64"):
        write_mrc(tmp_path / "i.mrc", np.ones((3, 3), np.int64))
    with pytest.raises(ImageError, match="differ in shape"):
        write_stack(tmp_path / "x.mrcs", [np.zeros((2, 2)), np.zeros((3, 3))])
    assert not list(tmp_path.glob(".*tmp"))


def test_write_stack_from_list_and_gzip(tmp_path: Path) -> None:
    images = [np.full((6, 5), i, np.float32) for i in range(3)]
    path = write_stack(tmp_path / "s.mrcs.gz", images, voxel_size=2.0)
    header = read_header(path)
    assert header.compression == "gzip" and header.kind == "stack" and header.n_images == 3
    np.testing.assert_array_equal(read_images(path, [3, 1]), np.stack([images[2], images[0]]))
    single = write_stack(tmp_path / "one.mrcs", [images[1]])
    assert read_header(single).kind == "stack"
    np.testing.assert_array_equal(read_image(single, 1), images[1])


def test_big_endian_file(tmp_path: Path) -> None:
    stack = np.arange(3 * 4 * 5, dtype=">f4").reshape(3, 4, 5)
    path = write_stack(tmp_path / "be.mrcs", stack)
    header = read_header(path)
    assert header.byte_order == ">" and header.dtype == np.float32
    image = read_image(path, 2)
    assert image.dtype.isnative
    np.testing.assert_array_equal(image, stack[1])


def test_zero_machine_stamp_with_map_id_reads(tmp_path: Path) -> None:
    stack = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    path = write_stack(tmp_path / "z.mrcs", stack)
    _patch(path, 212, 0)
    np.testing.assert_array_equal(read_image(path, 2), stack[1])


def test_volume_stack(tmp_path: Path) -> None:
    volumes = np.arange(3 * 4 * 5 * 6, dtype=np.float32).reshape(3, 4, 5, 6)
    path = write_mrc(tmp_path / "vs.mrc", volumes)
    header = read_header(path)
    assert header.kind == "volume_stack" and header.is_volume and header.is_stack
    assert header.n_images == 3 and header.item_shape == (4, 5, 6)
    np.testing.assert_array_equal(read_image(path, 2), volumes[1])
    np.testing.assert_array_equal(read_images(path, [3, 1]), volumes[[2, 0]])
    assert read_image(path, None).shape == (3, 4, 5, 6)


@pytest.mark.parametrize(("name", "kind"), [("v.map", "volume"), ("v.mrc", "stack")])
def test_space_group_0_volume_named_map(tmp_path: Path, name: str, kind: str) -> None:
    volume = np.zeros((4, 5, 6), np.float32)
    path = write_mrc(tmp_path / name, volume)
    _patch(path, 88, 0)  # ispg 0, mz = nz: old writers' volumes
    assert read_header(path).kind == kind


def test_4_bit_mode_101(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 16, size=(2, 3, 5), dtype=np.uint8)  # nx = 5: rows padded
    padded = np.zeros((2, 3, 6), np.uint8)
    padded[..., :5] = pixels
    packed = (padded[..., 0::2] | (padded[..., 1::2] << 4)).astype(np.uint8)
    path = write_stack(tmp_path / "four.mrcs", packed.view(np.int8))
    _patch(path, 0, 5)  # nx
    _patch(path, 12, 101)  # mode
    _patch(path, 28, 5)  # mx
    header = read_header(path)
    assert header.mode == 101 and header.item_shape == (3, 5) and header.item_bytes == 9
    image = read_image(path, 2)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, pixels[1])
    np.testing.assert_array_equal(read_image(path, None), pixels)


def test_image_items_read_their_images(tmp_path: Path) -> None:
    from cryolab.em.objects import SetOfParticles

    stack = np.arange(4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8)
    write_stack(tmp_path / "particles.mrcs", stack)
    particles = SetOfParticles(
        {"image.path": ["particles.mrcs"] * 3, "image.index": [3, 1, 4]},
        properties={"root": str(tmp_path)},
    )
    got = [item.read() for item in particles]
    np.testing.assert_array_equal(np.stack(got), stack[[2, 0, 3]])


# --------------------------------------------------------------------------- TIFF


def test_tiff_movie_frame_by_frame(tmp_path: Path) -> None:
    frames = np.random.default_rng(3).integers(0, 4000, (6, 32, 48)).astype(np.uint16)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, frames, photometric="minisblack")
    header = read_header(path)
    assert header.format == "tiff" and header.kind == "stack" and header.is_stack
    assert (header.nx, header.ny, header.n_images) == (48, 32, 6)
    assert header.dtype == np.uint16 and header.mode is None
    for index in range(1, 7):
        np.testing.assert_array_equal(read_image(path, index), frames[index - 1])
    np.testing.assert_array_equal(read_image(path, None), frames)
    np.testing.assert_array_equal(read_images(path, [6, 2, 2]), frames[[5, 1, 1]])
    with pytest.raises(ImageError, match=r"index 7 is out of range.*6"):
        read_image(path, 7)


def test_tiff_compressed_and_single_page(tmp_path: Path) -> None:
    frames = np.arange(3 * 16 * 16, dtype=np.float32).reshape(3, 16, 16)
    path = tmp_path / "movie.tiff"
    tifffile.imwrite(path, frames, compression="zlib", photometric="minisblack")
    assert read_header(path).n_images == 3
    np.testing.assert_array_equal(read_image(path, 3), frames[2])
    single = tmp_path / "micrograph.tif"
    tifffile.imwrite(single, frames[0])
    header = read_header(single)
    assert header.kind == "image" and header.n_images == 1
    np.testing.assert_array_equal(read_image(single), frames[0])


def test_tiff_rgb_page_shape(tmp_path: Path) -> None:
    rgb = np.zeros((3, 16, 24), np.uint8)  # tifffile stores this as one planar RGB page
    path = tmp_path / "rgb.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tifffile.imwrite(path, rgb)
    header = read_header(path)
    assert (header.nx, header.ny, header.n_images) == (24, 16, 1)
    assert read_image(path).shape == header.item_shape


def test_file_named_tiff_that_is_not(tmp_path: Path) -> None:
    path = tmp_path / "fake.tif"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(ImageError, match="not a TIFF file") as info:
        read_image(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- thumbnails


def test_thumbnail_fits_and_uses_full_range() -> None:
    image = np.random.default_rng(0).standard_normal((300, 200)).astype(np.float32)
    thumb = thumbnail(image, size=128)
    assert thumb.dtype == np.uint8 and thumb.ndim == 2
    assert max(thumb.shape) <= 128 and thumb.shape == (100, 66)
    assert thumb.min() == 0 and thumb.max() == 255
    assert thumbnail(image, size=50).shape == (50, 33)


def test_thumbnail_of_small_image_keeps_its_size() -> None:
    image = np.arange(400, dtype=np.float32).reshape(20, 20)
    thumb = thumbnail(image)
    assert thumb.shape == (20, 20) and thumb.min() == 0 and thumb.max() == 255


@pytest.mark.parametrize("dtype", [np.float16, np.uint16, np.int8, np.float32])
def test_thumbnail_dtypes_and_constant_images(dtype: type[np.generic]) -> None:
    ramp = np.arange(64 * 64).reshape(64, 64) % 100
    thumb = thumbnail(ramp.astype(dtype), size=32)
    assert thumb.dtype == np.uint8 and thumb.shape == (32, 32)
    assert thumb.min() == 0 and thumb.max() == 255
    constant = thumbnail(np.full((40, 30), 7, dtype=dtype))
    assert constant.shape == (40, 30) and np.all(constant == 128)


def test_thumbnail_is_nan_safe() -> None:
    image = np.random.default_rng(2).standard_normal((256, 256)).astype(np.float32)
    image[:8, :8] = np.nan
    image[100, 100] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        thumb = thumbnail(image, size=32)
        assert thumb.shape == (32, 32) and thumb[0, 0] == 0
        assert thumb.max() == 255
        assert np.all(thumbnail(np.full((10, 10), np.nan)) == 0)
        mostly_nan = np.full((10, 10), np.nan)
        mostly_nan[3, 3] = 1.0
        assert thumbnail(mostly_nan)[3, 3] == 128


def test_thumbnail_of_real_micrograph(epu: dict[str, Any]) -> None:
    thumb = thumbnail(epu["image"], size=128)
    assert thumb.shape == (128, 128) and thumb.dtype == np.uint8
    assert thumb.min() == 0 and thumb.max() == 255


def test_thumbnail_of_movie_and_bad_input() -> None:
    movie = np.random.default_rng(4).random((5, 64, 64))
    assert thumbnail(movie, size=32).shape == (32, 32)
    with pytest.raises(ValueError, match="2-D"):
        thumbnail(np.zeros(5))


# --------------------------------------------------------------------------- locations


def test_parse_location() -> None:
    assert parse_location("12@Particles/stack.mrcs") == (12, "Particles/stack.mrcs")
    assert parse_location("000012@Particles/stack.mrcs") == (12, "Particles/stack.mrcs")
    assert parse_location("Particles/stack.mrcs") == (1, "Particles/stack.mrcs")
    assert parse_location(Path("/data/a.mrc")) == (1, "/data/a.mrc")
    assert parse_location("/home/me@lab/a.mrcs") == (1, "/home/me@lab/a.mrcs")
    assert parse_location("3@/home/me@lab/a.mrcs") == (3, "/home/me@lab/a.mrcs")
    with pytest.raises(ImageError, match="start at 1"):
        parse_location("0@a.mrcs")
    with pytest.raises(ImageError, match="no file path"):
        parse_location("5@")
    with pytest.raises(ImageError):
        parse_location("")


def test_format_location_round_trips() -> None:
    assert format_location(12, "Particles/stack.mrcs") == "000012@Particles/stack.mrcs"
    assert format_location(12, Path("a.mrcs"), width=0) == "12@a.mrcs"
    assert format_location(1234567, "a.mrcs") == "1234567@a.mrcs"
    for index, path in [(1, "a.mrcs"), (99, "x/y z.mrcs"), (123456, "/abs/s.mrcs")]:
        assert parse_location(format_location(index, path)) == (index, path)
        assert parse_location(format_location(index, path, width=0)) == (index, path)
    for text in ["000012@Particles/stack.mrcs", "000001@b.mrcs"]:
        assert format_location(*parse_location(text)) == text
    with pytest.raises(ImageError):
        format_location(0, "a.mrcs")


def test_module_exports() -> None:
    assert set(imageio.__all__) >= {"read_image", "read_images", "ImageError", "thumbnail"}
    assert issubclass(ImageError, CryolabError)
