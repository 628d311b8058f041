"""Image I/O: MRC/MRCS files in the modes real files use, TIFF movies, locations and thumbnails.

Images are located as in RELION, ``index@path`` with a 1-based index (:func:`parse_location`,
:func:`format_location`). The readers work by index:

- :func:`read_header` describes a file (:class:`ImageHeader`): dimensions, mode and dtype,
  voxel size in Å, what the file holds (image, stack, volume, volume stack), the extended
  header type (``'FEI1'``, ``'FEI2'``, ...) and the byte offset of the data block;
- :func:`read_image` reads one item (an image of a stack, a frame of a movie, a volume) and
  :func:`read_images` many items of one file. Uncompressed MRC files are read with positional
  reads of just the bytes of the items asked for (no memory map, no full read): random access
  to particles of a large stack stays fast when the file is not in the page cache;
- :func:`write_mrc` and :func:`write_stack` write MRC files through ``mrcfile``;
- :func:`thumbnail` turns an image into a small ``uint8`` picture for display.

MRC modes read: 0 (int8), 1 (int16), 2 (float32), 4 (complex64), 6 (uint16), 12 (float16) and
101 (4-bit unsigned, unpacked to uint8). Gzip- and bzip2-compressed MRC files (``.mrc.gz``) are
read by decompressing the stream up to the items asked for. TIFF files (movies, micrographs)
are read page by page with ``tifffile``; index *k* is the *k*-th page.

The header fields are decoded with ``mrcfile``'s header layout (``mrcfile.dtypes``); the
byte order comes from the machine stamp (or, when the stamp is unknown or contradicts the mode
field, from the byte order in which the mode is a valid one). Files whose header lacks the map
id ``'MAP '`` (stacks written by cryoDRGN, for instance) are refused unless
``permissive=True``. Arrays come back in the machine's byte order, axes as stored in the file:
``(ny, nx)`` for an image, ``(nz, ny, nx)`` for a stack or a volume (``mapc``/``mapr``/``maps``
are not applied, as in ``mrcfile``).

Every failure a file can cause raises :class:`ImageError`, whose message names the file and
says what is wrong.
"""

from __future__ import annotations

import bz2
import gzip
import io
import math
import operator
import os
import stat
import warnings
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cryolab.core.errors import CryolabError

__all__ = [
    "ImageError",
    "ImageHeader",
    "format_location",
    "parse_location",
    "read_header",
    "read_image",
    "read_images",
    "thumbnail",
    "write_mrc",
    "write_stack",
]

PathLike = str | os.PathLike[str]
Kind = Literal["image", "stack", "volume", "volume_stack"]

HEADER_BYTES = 1024
MAP_ID = b"MAP"
# mode -> numpy type of the stored values (mode 101 is 4-bit, unpacked to uint8)
MODE_DTYPES: dict[int, type[np.generic]] = {
    0: np.int8,
    1: np.int16,
    2: np.float32,
    4: np.complex64,
    6: np.uint16,
    12: np.float16,
    101: np.uint8,
}
MODE_NAMES = {
    0: "int8",
    1: "int16",
    2: "float32",
    3: "complex int16",
    4: "complex64",
    6: "uint16",
    12: "float16",
    101: "4-bit",
}
WRITABLE_DTYPES = ("int8", "int16", "uint16", "float16", "float32", "complex64")
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
TIFF_SUFFIXES = (".tif", ".tiff", ".eer")
MAP_SUFFIXES = (".map", ".ccp4")


class ImageError(CryolabError):
    """An image file cannot be read or written as asked.

    Parameters
    ----------
    path
        The file (or the location text) at fault; the message starts with it.
    message
        What is wrong.
    """

    def __init__(self, path: PathLike, message: str) -> None:
        self.path = str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")


@dataclass(frozen=True)
class ImageHeader:
    """What an image file holds, as :func:`read_header` finds it.

    Attributes
    ----------
    path
        The file.
    format
        ``"mrc"`` or ``"tiff"``.
    nx, ny, nz
        Columns, rows and sections (for TIFF: pages) stored in the file.
    kind
        ``"image"`` (one 2-D image), ``"stack"`` (images, or movie frames, addressed by
        index), ``"volume"`` (one 3-D map) or ``"volume_stack"`` (3-D maps addressed by index).
    n_images
        How many items the file holds, so indices run from 1 to ``n_images``.
    item_shape
        The shape of one item as :func:`read_image` returns it.
    mode
        The MRC mode (``None`` for TIFF).
    dtype
        The numpy dtype :func:`read_image` returns (native byte order; ``uint8`` for mode 101).
    byte_order
        ``"<"`` or ``">"``: the byte order of the stored values.
    voxel_size
        The pixel (voxel) size along X in Å (``0.0`` when not recorded, as in TIFF files).
    voxel_size_xyz
        The voxel size along X, Y and Z in Å (cell size over sampling; ``0.0`` where unset).
    ispg, mz
        The MRC space group and sampling along Z, from which ``kind`` follows (0 for TIFF).
    ext_type
        The extended header type (``"FEI1"``, ``"FEI2"``, ``"SERI"``, ``"CCP4"``, ...), ``""``
        when not given.
    ext_bytes
        Size of the extended header (``nsymbt``).
    data_offset
        Byte offset of the data block, ``1024 + nsymbt`` (in the decompressed stream of a
        compressed file; ``None`` for TIFF).
    compression
        ``"gzip"``, ``"bzip2"`` or ``None``; compressed files cannot be read positionally.
    """

    path: Path
    format: Literal["mrc", "tiff"]
    nx: int
    ny: int
    nz: int
    kind: Kind
    n_images: int
    item_shape: tuple[int, ...]
    mode: int | None
    dtype: np.dtype[Any]
    byte_order: Literal["<", ">"]
    voxel_size: float
    voxel_size_xyz: tuple[float, float, float]
    ispg: int = 0
    mz: int = 0
    ext_type: str = ""
    ext_bytes: int = 0
    data_offset: int | None = None
    compression: Literal["gzip", "bzip2"] | None = None

    @property
    def is_volume(self) -> bool:
        """True when an item is a 3-D map (a volume or a volume of a volume stack)."""
        return self.kind in ("volume", "volume_stack")

    @property
    def is_stack(self) -> bool:
        """True when the file holds items addressed by index (images or volumes)."""
        return self.kind in ("stack", "volume_stack")

    @property
    def item_bytes(self) -> int:
        """Bytes one item takes in an MRC file (4-bit rows are padded to whole bytes)."""
        if self.mode == 101:
            row = (self.nx + 1) // 2
            return row * math.prod(self.item_shape[:-1])
        return math.prod(self.item_shape) * self.dtype.itemsize

    @property
    def data_bytes(self) -> int:
        """Bytes of the whole data block of an MRC file."""
        return self.item_bytes * self.n_images


# --------------------------------------------------------------------------- locations


def parse_location(location: PathLike) -> tuple[int, str]:
    """Split an image location ``index@path`` into its 1-based index and path.

    Parameters
    ----------
    location
        ``"12@Particles/stack.mrcs"`` (RELION writes zero-padded indices, ``"000012@..."``),
        or a bare path, which means index 1. An ``@`` that is not preceded by digits only is
        part of the path.

    Returns
    -------
    tuple of (int, str)
        The index and the path, e.g. ``(12, "Particles/stack.mrcs")``.

    Raises
    ------
    ImageError
        If the location is empty or its index is 0.
    """
    text = os.fspath(location).strip()
    head, sep, tail = text.partition("@")
    if sep and head.isascii() and head.isdigit():
        index, path = int(head), tail
        if index < 1:
            raise ImageError(text, "image indices start at 1 (index@path, as in RELION)")
    else:
        index, path = 1, text
    if not path:
        raise ImageError(text or "''", "the image location has no file path")
    return index, path


def format_location(index: int, path: PathLike, width: int = 6) -> str:
    """The location text ``index@path`` of an image.

    Parameters
    ----------
    index
        1-based position in the stack.
    path
        The stack file.
    width
        Zero-pad the index to this many digits (RELION writes 6); 0 for no padding.

    Returns
    -------
    str
        E.g. ``"000012@Particles/stack.mrcs"``; :func:`parse_location` gives back
        ``(index, path)``.
    """
    number = int(index)
    if number < 1:
        raise ImageError(os.fspath(path), f"image index {number} is not 1 or more")
    return f"{number:0{width}d}@{os.fspath(path)}"


# --------------------------------------------------------------------------- headers


def _open_fd(path: Path) -> int:
    """A read-only file descriptor of the file; ImageError if it cannot be opened."""
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as err:
        raise ImageError(path, "no such file") from err
    except IsADirectoryError as err:
        raise ImageError(path, "is a folder, not an image file") from err
    except OSError as err:
        raise ImageError(path, f"cannot be opened: {err.strerror or err}") from err


def _compression(magic: bytes) -> Literal["gzip", "bzip2"] | None:
    if magic.startswith(b"\x1f\x8b"):
        return "gzip"
    if magic.startswith(b"BZh"):
        return "bzip2"
    return None


def _open_stream(path: Path, compression: str) -> io.BufferedIOBase:
    if compression == "gzip":
        return gzip.open(path, "rb")
    return bz2.open(path, "rb")


def _stream_errors() -> tuple[type[BaseException], ...]:
    return (EOFError, OSError, zlib.error, ValueError)


def _stream_failure(path: Path, compression: str, err: BaseException) -> ImageError:
    if isinstance(err, EOFError):
        return ImageError(path, f"file is truncated: the {compression} stream ends early ({err})")
    return ImageError(path, f"the {compression} data is corrupt: {err}")


def _plain_suffix(path: Path) -> str:
    """The file's suffix without a compression suffix (``x.map.gz`` -> ``.map``)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2"):
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def read_header(path: PathLike, permissive: bool = False) -> ImageHeader:
    """Describe an MRC or TIFF file without reading its data.

    Parameters
    ----------
    path
        An MRC file (``.mrc``, ``.mrcs``, ``.map``, ...; gzip- or bzip2-compressed too) or a
        TIFF file (recognised by its first bytes, whatever its name).
    permissive
        Accept MRC files whose header lacks the map id ``'MAP '`` (stacks written by
        cryoDRGN, for instance). The rest of the header must still make sense.

    Returns
    -------
    ImageHeader
        Dimensions, kind, number of items, mode and dtype, voxel size, extended header type
        and the offset of the data block.

    Raises
    ------
    ImageError
        If the file is missing, is not an MRC or TIFF file, uses an unsupported mode, has a
        header that contradicts itself, or is shorter than its header says (truncated).

    Notes
    -----
    The kind follows the space group ``ispg`` as in MRC2014: 0 is an image (``nz == 1``) or
    a stack of images, 401 to 630 a stack of volumes of ``mz`` sections, any other value a
    volume. As an exception, a ``.map``/``.ccp4`` file with ``ispg == 0`` and ``mz == nz > 1``
    is a volume (that name is never used for stacks).
    """
    path = Path(path)
    fd = _open_fd(path)
    try:
        return _header_from_fd(path, fd, permissive)
    finally:
        os.close(fd)


def _header_from_fd(path: Path, fd: int, permissive: bool) -> ImageHeader:
    """:func:`read_header` on an open file (one ``fstat`` and one 1024-byte ``pread``)."""
    try:
        status = os.fstat(fd)
        if stat.S_ISDIR(status.st_mode):
            raise ImageError(path, "is a folder, not an image file")
        raw = os.pread(fd, HEADER_BYTES, 0)
    except OSError as err:
        raise ImageError(path, f"cannot be read: {err.strerror or err}") from err
    if raw[:4] in TIFF_MAGIC:
        return _tiff_header(path)
    compression = _compression(raw[:4])
    if compression is not None:
        try:
            with _open_stream(path, compression) as stream:
                raw = stream.read(HEADER_BYTES)
        except _stream_errors() as err:
            raise _stream_failure(path, compression, err) from err
    if len(raw) < HEADER_BYTES:
        if _plain_suffix(path) in TIFF_SUFFIXES:
            raise ImageError(path, "is not a TIFF file (no TIFF signature)")
        raise ImageError(
            path,
            f"file is truncated: too short for an MRC header ({len(raw)} bytes, "
            f"{HEADER_BYTES} needed)",
        )
    size = status.st_size if compression is None else None
    return _mrc_header(path, raw, size, compression, permissive)


def _mrc_header(
    path: Path,
    raw: bytes,
    size: int | None,
    compression: Literal["gzip", "bzip2"] | None,
    permissive: bool,
) -> ImageHeader:
    from mrcfile.dtypes import HEADER_DTYPE
    from mrcfile.utils import byte_order_from_machine_stamp

    if raw[208:211] != MAP_ID and not permissive:
        if _plain_suffix(path) in TIFF_SUFFIXES:
            raise ImageError(path, "is not a TIFF file (no TIFF signature)")
        try:  # is the rest of the header sound? then say how to read the file anyway
            found = _mrc_header(path, raw, size, compression, permissive=True)
        except ImageError as err:
            raise ImageError(
                path, f"not an MRC file: no map id 'MAP ' in the header, and {err.message}"
            ) from None
        raise ImageError(
            path,
            "the header lacks the MRC map id 'MAP ' (some programs, e.g. cryoDRGN, write "
            f"stacks without it) but is otherwise sound ({found.kind}, "
            f"{found.n_images} x {'x'.join(map(str, found.item_shape))}, mode {found.mode}): "
            "if you trust the file, read it with permissive=True",
        )
    modes = {
        order: int.from_bytes(raw[12:16], "little" if order == "<" else "big", signed=True)
        for order in ("<", ">")
    }
    try:
        stamped: str | None = byte_order_from_machine_stamp(raw[212:216])
    except ValueError:
        stamped = None
    # the mode must be a known one in the byte order used; a wrong or missing stamp is
    # overruled by the mode field (as mrcfile does in permissive mode)
    order: Literal["<", ">"] | None = None
    for candidate in (stamped, "<", ">"):
        if candidate in ("<", ">") and modes[candidate] in MODE_DTYPES:
            order = "<" if candidate == "<" else ">"
            break
    if order is None:
        mode = modes[stamped if stamped in ("<", ">") else "<"]
        if mode in MODE_NAMES:
            raise ImageError(path, f"MRC mode {mode} ({MODE_NAMES[mode]}) is not supported")
        supported = ", ".join(str(m) for m in MODE_DTYPES)
        raise ImageError(path, f"unknown MRC mode {mode} (supported: {supported})")
    fields = np.frombuffer(raw, dtype=HEADER_DTYPE.newbyteorder(order), count=1)[0]
    nx, ny, nz = int(fields["nx"]), int(fields["ny"]), int(fields["nz"])
    mode, ispg = modes[order], int(fields["ispg"])
    mx, my, mz = int(fields["mx"]), int(fields["my"]), int(fields["mz"])
    nsymbt = int(fields["nsymbt"])
    if min(nx, ny, nz) < 1:
        raise ImageError(path, f"the header gives an empty size nx={nx}, ny={ny}, nz={nz}")
    if nsymbt < 0:
        raise ImageError(path, f"the header gives a negative extended header size {nsymbt}")

    if 401 <= ispg <= 630:
        if mz < 1 or nz % mz:
            if not permissive:
                raise ImageError(
                    path,
                    f"volume stack (ispg={ispg}) whose nz={nz} is not a multiple of mz={mz}; "
                    "read it with permissive=True to take it as one volume",
                )
            kind: Kind = "volume"
        else:
            kind = "volume_stack" if nz > mz else "volume"
    elif ispg != 0 or (nz > 1 and mz == nz and _plain_suffix(path) in MAP_SUFFIXES):
        kind = "volume"
    else:
        kind = "stack" if nz > 1 or _plain_suffix(path) == ".mrcs" else "image"
    item_shape: tuple[int, ...]
    if kind == "volume_stack":
        n_images, item_shape = nz // mz, (mz, ny, nx)
    elif kind == "volume":
        n_images, item_shape = 1, (nz, ny, nx)
    else:
        n_images, item_shape = nz, (ny, nx)

    cella = fields["cella"]
    # the cell is stored as float32: take its shortest decimal form (17.93, not 17.9300003)
    spacing = tuple(
        float(str(cella[axis])) / m if m > 0 else 0.0
        for axis, m in (("x", mx), ("y", my), ("z", mz))
    )
    ext = bytes(fields["exttyp"]).rstrip(b"\x00 ")
    ext_type = ext.decode("ascii") if ext.isascii() and ext.decode("ascii").isprintable() else ""
    header = ImageHeader(
        path=path,
        format="mrc",
        nx=nx,
        ny=ny,
        nz=nz,
        kind=kind,
        n_images=n_images,
        item_shape=item_shape,
        mode=mode,
        dtype=np.dtype(MODE_DTYPES[mode]),
        byte_order=order,
        voxel_size=spacing[0],
        voxel_size_xyz=(spacing[0], spacing[1], spacing[2]),
        ispg=ispg,
        mz=mz,
        ext_type=ext_type,
        ext_bytes=nsymbt,
        data_offset=HEADER_BYTES + nsymbt,
        compression=compression,
    )
    if size is not None:
        needed = HEADER_BYTES + nsymbt + header.data_bytes
        if size < needed:
            raise ImageError(
                path,
                f"file is truncated: {_describe(header)} need {needed} "
                f"bytes but the file has only {size}",
            )
    return header


def _describe(header: ImageHeader) -> str:
    mode = f"mode {header.mode} ({MODE_NAMES.get(header.mode or 0, '?')})"
    return (
        f"the header's {header.nz} section(s) of {header.nx}x{header.ny} {mode} after a "
        f"{header.ext_bytes}-byte extended header"
    )


def _tiff_header(path: Path) -> ImageHeader:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            count = len(tif.pages)
            first = tif.pages.first
            shape, dtype = tuple(int(n) for n in first.shape), np.dtype(first.dtype)
            nx, ny = int(first.imagewidth), int(first.imagelength)
    except _tiff_errors() as err:
        raise ImageError(path, f"cannot be read as TIFF: {err}") from err
    if len(shape) < 2:
        raise ImageError(path, f"the first TIFF page has shape {shape}, not an image")
    return ImageHeader(
        path=path,
        format="tiff",
        nx=nx,
        ny=ny,
        nz=count,
        kind="stack" if count > 1 else "image",
        n_images=count,
        item_shape=shape,
        mode=None,
        dtype=dtype.newbyteorder("="),
        byte_order="<" if dtype.byteorder in ("<", "|", "=") else ">",
        voxel_size=0.0,
        voxel_size_xyz=(0.0, 0.0, 0.0),
    )


def _tiff_errors() -> tuple[type[BaseException], ...]:
    import tifffile

    return (tifffile.TiffFileError, ValueError, OSError, KeyError, IndexError, TypeError)


# --------------------------------------------------------------------------- reading


def _check_indices(header: ImageHeader, indices: NDArray[np.int64]) -> None:
    if indices.size == 0:
        return
    if indices.size == 1:
        bad = indices if not 1 <= int(indices[0]) <= header.n_images else indices[:0]
    else:
        bad = indices[(indices < 1) | (indices > header.n_images)]
    if bad.size:
        what = {"volume": "volume", "volume_stack": "volume"}.get(header.kind, "image")
        raise ImageError(
            header.path,
            f"index {int(bad[0])} is out of range: the file holds {header.n_images} "
            f"{what}(s), indices 1 to {header.n_images}",
        )


def _as_index_array(path: Path, indices: Iterable[int] | NDArray[Any]) -> NDArray[np.int64]:
    values = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices))
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    if values.dtype.kind not in "iu" or values.ndim != 1:
        raise ImageError(path, "indices must be a 1-D sequence of integers (1-based)")
    return values.astype(np.int64, copy=False)


def read_image(path: PathLike, index: int | None = 1, permissive: bool = False) -> NDArray[Any]:
    """Read one item of an image file: an image, a movie frame or a volume.

    Parameters
    ----------
    path
        An MRC/MRCS file (compressed too) or a TIFF file; see :func:`read_header`.
    index
        1-based position of the item, as in RELION's ``index@stack``: the image of a stack,
        the frame of a movie (MRC sections or TIFF pages), the volume of a volume stack. A
        single image or volume has index 1 only. ``None`` reads the whole file: all images
        or frames as a 3-D array, a volume stack as a 4-D array.
    permissive
        Accept MRC files without the map id; see :func:`read_header`.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` for an image or frame, ``(nz, ny, nx)`` for a volume, in the dtype of the
        file's mode (native byte order; mode 101 unpacked to uint8). The array is writable
        and owns its memory.

    Raises
    ------
    ImageError
        If the index is out of range or the file cannot be read (see :func:`read_header`).

    Notes
    -----
    An item of an uncompressed MRC file is read with one positional read (``pread``) of its
    bytes at ``data_offset + (index - 1) * item_bytes``.
    """
    path = Path(path)
    if index is None:
        numbers = None
    else:
        try:
            numbers = np.array([operator.index(index)], dtype=np.int64)
        except TypeError as err:
            raise ImageError(path, f"index {index!r} is not an integer") from err
    fd = _open_fd(path)
    try:
        header = _header_from_fd(path, fd, permissive)
        if numbers is not None:
            item: NDArray[Any] = _read_items(header, numbers, fd)[0]
            return item
        whole = _read_items(header, np.arange(1, header.n_images + 1, dtype=np.int64), fd)
        return whole[0] if header.kind in ("image", "volume") else whole
    finally:
        os.close(fd)


def read_images(
    path: PathLike, indices: Iterable[int] | NDArray[Any], permissive: bool = False
) -> NDArray[Any]:
    """Read many items of one file, in the order given.

    Parameters
    ----------
    path
        An MRC/MRCS file (compressed too) or a TIFF file; see :func:`read_header`.
    indices
        1-based positions; repeats are allowed.
    permissive
        Accept MRC files without the map id; see :func:`read_header`.

    Returns
    -------
    numpy.ndarray
        ``(len(indices), ny, nx)`` for images (``(len(indices), nz, ny, nx)`` for volumes).

    Raises
    ------
    ImageError
        If an index is out of range or the file cannot be read.

    Notes
    -----
    Uncompressed MRC files are read through one file descriptor with positional reads in
    ascending offset order, one read per run of consecutive indices, straight into the
    result (read-ahead is switched off with ``posix_fadvise(RANDOM)`` where available).
    """
    path = Path(path)
    numbers = _as_index_array(path, indices)
    fd = _open_fd(path)
    try:
        return _read_items(_header_from_fd(path, fd, permissive), numbers, fd)
    finally:
        os.close(fd)


def _read_items(header: ImageHeader, indices: NDArray[np.int64], fd: int) -> NDArray[Any]:
    """Items at the 1-based indices; ``fd`` is the file opened read-only."""
    _check_indices(header, indices)
    if header.format == "tiff":
        return _read_tiff(header, indices)
    if indices.size == 1:
        unique, inverse = indices, None
    else:
        unique, inverse = np.unique(indices, return_inverse=True)
    if header.compression is None:
        raw = _pread_items(header, unique, fd)
    else:
        raw = _stream_items(header, unique)
    items = _decode(header, raw)
    if inverse is None or (unique.size == indices.size and np.array_equal(unique, indices)):
        return items
    return items[inverse.reshape(-1)]


def _decode(header: ImageHeader, raw: NDArray[np.uint8]) -> NDArray[Any]:
    """Interpret the raw bytes of items (one row each) as arrays of the item shape."""
    count = raw.shape[0]
    if header.mode == 101:
        rows = raw.reshape(count, *header.item_shape[:-1], (header.nx + 1) // 2)
        unpacked = np.empty((*rows.shape[:-1], rows.shape[-1] * 2), dtype=np.uint8)
        np.bitwise_and(rows, 0x0F, out=unpacked[..., 0::2])  # first pixel: low 4 bits
        np.right_shift(rows, 4, out=unpacked[..., 1::2])
        return np.ascontiguousarray(unpacked[..., : header.nx])
    stored = header.dtype.newbyteorder(header.byte_order)
    values = raw.view(stored).reshape(count, *header.item_shape)
    if not stored.isnative:
        values.byteswap(inplace=True)
        values = values.view(stored.newbyteorder("="))
    return values


def _pread_items(header: ImageHeader, unique: NDArray[np.int64], fd: int) -> NDArray[np.uint8]:
    """Positional reads of the items (sorted, unique) straight into one buffer."""
    item = header.item_bytes
    offset0 = int(header.data_offset or 0)
    buffer = np.empty((unique.size, item), dtype=np.uint8)
    if unique.size == 0:
        return buffer
    # runs of consecutive indices become single reads
    if unique.size == 1:
        starts, ends = [0], [1]
    else:
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        starts = [0, *breaks.tolist()]
        ends = [*breaks.tolist(), unique.size]
    if len(starts) > 1 and hasattr(os, "posix_fadvise"):
        # scattered items: read-ahead would only read bytes that are not asked for
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    view = buffer.data.cast("B")
    for start, end in zip(starts, ends, strict=True):
        offset = offset0 + (int(unique[start]) - 1) * item
        _pread_into(fd, view[start * item : end * item], offset, header)
    return buffer


def _pread_into(fd: int, view: memoryview, offset: int, header: ImageHeader) -> None:
    done, total = 0, len(view)
    while done < total:
        try:
            if hasattr(os, "preadv"):
                got = os.preadv(fd, [view[done:]], offset + done)
            else:  # pragma: no cover - platforms without preadv
                chunk = os.pread(fd, total - done, offset + done)
                got = len(chunk)
                view[done : done + got] = chunk
        except OSError as err:
            raise ImageError(header.path, f"read error: {err.strerror or err}") from err
        if got == 0:
            raise ImageError(
                header.path,
                f"file is truncated: no data at byte {offset + done} "
                f"({_describe(header)} end at byte {header.data_offset} + "
                f"{header.data_bytes})",
            )
        done += got


def _stream_items(header: ImageHeader, unique: NDArray[np.int64]) -> NDArray[np.uint8]:
    """Read items of a compressed file by decompressing forward (indices sorted)."""
    item = header.item_bytes
    buffer = np.empty((unique.size, item), dtype=np.uint8)
    compression = header.compression or "gzip"
    try:
        with _open_stream(header.path, compression) as stream:
            for row, index in enumerate(unique.tolist()):
                offset = int(header.data_offset or 0) + (index - 1) * item
                stream.seek(offset, io.SEEK_SET)
                view = buffer[row].data.cast("B")
                done = 0
                while done < item:
                    got = stream.readinto(view[done:])
                    if not got:
                        raise ImageError(
                            header.path,
                            f"file is truncated: the {compression} data ends at byte "
                            f"{offset + done} of {header.data_offset} + {header.data_bytes} "
                            f"({_describe(header)})",
                        )
                    done += got
    except ImageError:
        raise
    except _stream_errors() as err:
        raise _stream_failure(header.path, compression, err) from err
    return buffer


def _read_tiff(header: ImageHeader, indices: NDArray[np.int64]) -> NDArray[Any]:
    import tifffile

    out = np.empty((indices.size, *header.item_shape), dtype=header.dtype)
    try:
        with tifffile.TiffFile(header.path) as tif:
            for row, index in enumerate(indices.tolist()):
                page = np.asarray(tif.pages[index - 1].asarray())
                if page.shape != header.item_shape:
                    raise ImageError(
                        header.path,
                        f"TIFF page {index} has shape {page.shape}, the first one "
                        f"{header.item_shape}",
                    )
                out[row] = page
    except ImageError:
        raise
    except _tiff_errors() as err:
        raise ImageError(header.path, f"cannot decode TIFF data: {err}") from err
    return out


# --------------------------------------------------------------------------- writing


def write_mrc(
    path: PathLike,
    data: ArrayLike,
    voxel_size: float | Sequence[float] = 1.0,
    stack: bool = False,
) -> Path:
    """Write an array as an MRC file (through ``mrcfile``), replacing the file atomically.

    Parameters
    ----------
    path
        The file; a name ending in ``.gz`` or ``.bz2`` writes a compressed file.
    data
        2-D (one image), 3-D (a volume, or a stack with ``stack=True``) or 4-D (a stack of
        volumes). dtypes: int8, int16, uint16, float16 (mode 12), float32, complex64;
        float64 is stored as float32.
    voxel_size
        Pixel size in Å, or ``(x, y, z)``.
    stack
        Store 3-D data as a stack of images (``ispg = 0``, ``mz = 1``) rather than a volume
        (``ispg = 1``); a 2-D array becomes a stack of one image.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ImageError
        If the data cannot be stored in an MRC file.
    """
    import mrcfile

    path = Path(path)
    array = np.asarray(data)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    if array.dtype.newbyteorder("=").name not in WRITABLE_DTYPES:
        raise ImageError(
            path,
            f"cannot store dtype {array.dtype} in an MRC file "
            f"(use one of {', '.join(WRITABLE_DTYPES)})",
        )
    if stack and array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim not in (2, 3, 4) or 0 in array.shape:
        raise ImageError(path, f"cannot store an array of shape {array.shape} as MRC data")
    name = path.name.lower()
    compression = "gzip" if name.endswith(".gz") else "bzip2" if name.endswith(".bz2") else None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with mrcfile.new(temporary, overwrite=True, compression=compression) as mrc:
                if array.ndim == 3 and stack:
                    mrc.header.ispg = 0
                mrc.set_data(np.ascontiguousarray(array))
                mrc.voxel_size = voxel_size
        os.replace(temporary, path)
    except (OSError, ValueError) as err:
        temporary.unlink(missing_ok=True)
        raise ImageError(path, f"cannot write MRC file: {err}") from err
    return path


def write_stack(
    path: PathLike,
    images: ArrayLike | Iterable[ArrayLike],
    voxel_size: float | Sequence[float] = 1.0,
) -> Path:
    """Write 2-D images of one shape as an MRC stack (``.mrcs``).

    Parameters
    ----------
    path
        The stack file.
    images
        A 3-D array ``(n, ny, nx)`` or an iterable of 2-D arrays of one shape.
    voxel_size
        Pixel size in Å.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    if isinstance(images, np.ndarray):
        array = images
    else:
        arrays = [np.asarray(image) for image in images]  # type: ignore[union-attr]
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ImageError(Path(path), f"the images differ in shape: {sorted(shapes)}")
        if not arrays or arrays[0].ndim != 2:
            raise ImageError(Path(path), "a stack needs one or more 2-D images")
        array = np.stack(arrays)
    if array.ndim != 3:
        raise ImageError(Path(path), f"a stack needs 2-D images, not shape {array.shape}")
    return write_mrc(path, array, voxel_size, stack=True)


# --------------------------------------------------------------------------- thumbnails


def thumbnail(
    image: ArrayLike, size: int = 128, percentiles: tuple[float, float] = (0.5, 99.5)
) -> NDArray[np.uint8]:
    """A small 8-bit picture of an image for display.

    Parameters
    ----------
    image
        A 2-D image of any real dtype (uint16 and float16 included; complex values are taken
        by modulus). A 3-D array (movie, volume) is shown as its mean along the first axis.
    size
        The result is at most ``size`` pixels along each side: the image is binned by the
        smallest integer factor that fits (block means; edge rows and columns that do not fill
        a block are dropped). Smaller images are not enlarged.
    percentiles
        Values at or below the lower percentile become 0, at or above the upper one 255,
        linearly in between.

    Returns
    -------
    numpy.ndarray
        ``uint8``, 2-D. A constant image is mid-grey (128); NaN and infinite pixels are 0.
    """
    array = np.asarray(image)
    if np.iscomplexobj(array):
        array = np.abs(array)
    if array.ndim == 3:
        array = array.astype(np.float32).mean(axis=0)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"thumbnail needs a 2-D image, not an array of shape {array.shape}")
    if size < 1:
        raise ValueError(f"thumbnail size must be positive, not {size}")
    values = array.astype(np.float32, copy=False)
    finite = np.isfinite(values)
    all_finite = bool(finite.all())
    factor = max(1, math.ceil(max(values.shape) / size))
    if factor > 1:
        ny, nx = values.shape[0] // factor, values.shape[1] // factor
        if ny == 0 or nx == 0:  # very elongated image: pad the short axis
            ny, nx = max(ny, 1), max(nx, 1)
            padded = np.full((ny * factor, nx * factor), np.nan, dtype=np.float32)
            cut = values[: ny * factor, : nx * factor]
            padded[: cut.shape[0], : cut.shape[1]] = cut
            values, finite, all_finite = padded, np.isfinite(padded), False
        blocks = values[: ny * factor, : nx * factor].reshape(ny, factor, nx, factor)
        if all_finite:
            values = blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
        else:
            good = finite[: ny * factor, : nx * factor].reshape(ny, factor, nx, factor)
            sums = np.where(good, blocks, 0).sum(axis=(1, 3), dtype=np.float64)
            counts = good.sum(axis=(1, 3))
            with np.errstate(invalid="ignore", divide="ignore"):
                values = (sums / counts).astype(np.float32)
        finite = np.isfinite(values)
        all_finite = bool(finite.all())
    good_values = values.ravel() if all_finite else values[finite]
    if good_values.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = _percentile_range(good_values, percentiles)
    if not high > low:
        low, high = float(good_values.min()), float(good_values.max())
    if not high > low:
        return np.where(finite, np.uint8(128), np.uint8(0))
    scaled = (values - np.float32(low)) * np.float32(255.0 / (high - low))
    if not all_finite:
        scaled[~finite] = 0
    np.clip(scaled, 0, 255, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint8)


def _percentile_range(
    values: NDArray[np.float32], percentiles: tuple[float, float]
) -> tuple[float, float]:
    """The two percentiles (nearest rank) of finite values; large inputs are subsampled."""
    if values.size > 16384:
        values = values[:: values.size // 8192]
    last = values.size - 1
    ranks = [min(last, max(0, round(p / 100 * last))) for p in percentiles]
    # one selection per rank: numpy's multi-rank partition is several times slower
    low, high = (float(np.partition(values, rank)[rank]) for rank in ranks)
    return low, high
