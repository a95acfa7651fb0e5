"""A user's own dataset as one ``.npz`` file (docs/data.md).

Keys: ``x_train``, ``y_train``, ``x_test``, ``y_test``; optional ``class_names``
(strings, or UTF-8 bytes) and ``shape`` ((height, width, channels), required for flat
images that do not form one square, and for 4-D images whose layout is ambiguous).
Images are (N, H, W), (N, H, W, C), channels-first (N, C, H, W) with C of 1, 3 or 4 (as
PyTorch saves them; transposed, and said in ``Dataset.notes``) or flat (N, D); uint8
(0..255) or float in [0, 1]. Labels are integers (or bools) 0..K-1.

The file is read as the zip it is: each member the dataset uses has its NPY header read
and checked (dtype, shape, the bytes it must hold, the limits below) before any of its
data is inflated, the labels before the images, and no member is read past the size the
zip and its header declare. Nothing is unpickled.
"""

from __future__ import annotations

import io
import math
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from tokenize import TokenError

import numpy as np

from ..errors import DataError
from ..fileio import checked_path, file_problem, sha256_of, shown
from .dataset import MAX_CLASSES, Dataset

try:
    from lzma import LZMAError
except ImportError:  # a Python built without lzma: zipfile then refuses such members
    LZMAError = OSError

MAX_INPUTS = 1 << 20  # pixels per image; a dense first layer on more is not sensible here
MAX_VALUES = 1 << 30  # image values, train and test: 4 GiB once float32, the most we hold
MAX_INFLATED = 4 << 30  # bytes the members used inflate to, all together: one float32 copy
MAX_HEADER = 10_000  # bytes of an NPY header: NumPy's own limit
SMALL_CHANNELS = (1, 3, 4)  # a 4-D array's axis of this size may be its channels
KEYS = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL = ("class_names", "shape")
NPY_MAGIC = b"\x93NUMPY"
_CHUNK = 1 << 22
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError,
                zlib.error, LZMAError)  # RuntimeError: encrypted or unknown compression
_HEADER_ERRORS = (ValueError, SyntaxError, TypeError, RecursionError, TokenError)  # NumPy's


@dataclass(frozen=True)
class _Member:
    """One NPY member of the zip, as its header describes it."""

    key: str
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int  # bytes of magic and header before the data

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def load_npz(path: str | Path) -> Dataset:
    """Read and check a dataset ``.npz`` (see the module docstring).

    Example::

        np.savez("mine.npz", x_train=xt, y_train=yt, x_test=xv, y_test=yv,
                 class_names=np.array(["cat", "dog"]))
        data = na.load_dataset("mine.npz")
    """
    path = checked_path(path, "dataset", DataError)
    problem = file_problem(path)
    if problem:  # a folder, a FIFO (never opened) or nothing at all
        raise DataError(f"dataset file {shown(path)} {problem}")
    try:
        digest = sha256_of(path)
        with open(path, "rb") as f:
            if f.read(len(NPY_MAGIC)) == NPY_MAGIC:
                raise DataError(f"{path} is a single .npy array, not an .npz of x_train, "
                                "y_train, x_test, y_test")
        with zipfile.ZipFile(path) as zf:
            return _load(path, zf, digest)
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise DataError(f"{path} is not a readable .npz file: {str(exc)[:200]}") from None


def _load(path: Path, zf: zipfile.ZipFile, digest: str) -> Dataset:
    """Headers first, then the labels, then the images: a file that is refused is refused
    before its images are inflated."""
    heads = _headers(path, zf)
    x, xt = heads["x_train"], heads["x_test"]
    shape, first = _shape(path, x.shape, _declared(path, zf, heads.get("shape")))
    _check_images(path, heads, shape)
    train_y, test_y = (_labels(path, zf, heads[k], n) for k, n in
                       (("y_train", x.shape[0]), ("y_test", xt.shape[0])))
    k = int(max(train_y.max(), test_y.max())) + 1
    names = _class_names(path, zf, heads.get("class_names"), k)
    train_x, test_x = (_images(path, _read(path, zf, m), m.key, shape, first) for m in (x, xt))
    h, w, c = shape
    notes = (f"{path.name}: images {x.shape} taken as channels-first (N, channels, height, "
             f"width) and transposed: {h}x{w} images of {c} channels",) if first else ()
    return Dataset(train_x, train_y, test_x, test_y, sources={"file": str(path)},
                   name=path.name, shape=shape, class_names=names, sha256=digest,
                   spec=str(path.resolve()), notes=notes)


def _headers(path: Path, zf: zipfile.ZipFile) -> dict[str, _Member]:
    """The members the dataset uses (named as ``np.load`` names them), their declared sizes
    capped before anything is inflated, and their NPY headers."""
    by_name = {info.filename: info for info in zf.infolist()}
    found = {}
    for key in KEYS + OPTIONAL:
        info = by_name.get(key, by_name.get(f"{key}.npy"))
        if info is not None:
            found[key] = info
    odd = [k for k, info in found.items()
           if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)]
    if odd:  # zipfile inflates bzip2 and lzma a whole chunk at a time, with no cap
        raise DataError(f"{path}: {odd[0]} is compressed with zip method "
                        f"{found[odd[0]].compress_type}; an .npz is stored or deflated (as "
                        "np.savez and np.savez_compressed write it)")
    missing = [k for k in KEYS if k not in found]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}; a dataset .npz holds "
                        "x_train, y_train, x_test, y_test (and optionally class_names, "
                        "shape)")
    total = sum(info.file_size for info in found.values())
    if total > MAX_INFLATED:
        raise DataError(f"{path}: its arrays inflate to {total / 2**30:.1f} GiB; at most "
                        f"{MAX_INFLATED / 2**30:g} GiB")
    return {key: _header(path, zf, key, info) for key, info in found.items()}


def _header(path: Path, zf: zipfile.ZipFile, key: str, info: zipfile.ZipInfo) -> _Member:
    with zf.open(info) as f:
        shape, fortran, dtype, offset = _parse_header(path, key, f)
    if dtype.hasobject:
        raise DataError(f"{path} is not a readable .npz file: {key} holds Python objects, "
                        "which are never unpickled")
    if dtype.itemsize == 0 or min(shape, default=0) < 0:
        raise DataError(f"{path}: {key} has an NPY header of shape {shape} and dtype {dtype}, "
                        "which no array has")
    member = _Member(key, info, shape, dtype, bool(fortran), offset)
    if offset + member.nbytes > info.file_size:
        raise DataError(f"{path}: {key}'s header describes {shape} of {dtype} "
                        f"({member.nbytes:,} bytes) but it holds "
                        f"{max(info.file_size - offset, 0):,}")
    return member


def _parse_header(path: Path, key: str, f) -> tuple:
    """(shape, fortran_order, dtype, data offset) of the NPY stream ``f``, its header's
    length checked before the header is read."""
    prefix = f.read(len(NPY_MAGIC) + 2)
    if len(prefix) < len(NPY_MAGIC) + 2 or not prefix.startswith(NPY_MAGIC):
        raise DataError(f"{path}: {key} is not an NPY array (as np.save writes them)")
    major = prefix[-2]
    if major not in (1, 2, 3):
        raise DataError(f"{path}: {key} is NPY format {major}.{prefix[-1]}, unknown to NumPy")
    width = 2 if major == 1 else 4
    raw = f.read(width)
    length = int.from_bytes(raw, "little")
    if len(raw) < width or length > MAX_HEADER:
        raise DataError(f"{path}: {key}'s NPY header is {length:,} bytes; at most "
                        f"{MAX_HEADER:,}")
    header = f.read(length)
    stream = io.BytesIO(prefix + raw + header)
    np.lib.format.read_magic(stream)
    read = (np.lib.format.read_array_header_1_0 if major == 1
            else np.lib.format.read_array_header_2_0)
    try:
        with warnings.catch_warnings():  # a damaged header's odd escapes: the error says it
            warnings.simplefilter("ignore")
            shape, fortran, dtype = read(stream)
    except _HEADER_ERRORS as exc:
        raise DataError(f"{path}: {key}'s NPY header is not one NumPy reads: "
                        f"{str(exc)[:120]}") from None
    return tuple(int(d) for d in shape), fortran, dtype, len(prefix) + width + length


def _read(path: Path, zf: zipfile.ZipFile, m: _Member) -> np.ndarray:
    """The member's array: exactly the bytes its header declares, in chunks, then on to
    the member's declared end (where zipfile checks its CRC); never more."""
    data = np.empty(m.nbytes, np.uint8)
    with zf.open(m.info) as f:
        f.read(m.offset)
        got = 0
        while got < m.nbytes:
            block = f.read(min(_CHUNK, m.nbytes - got))
            if not block:
                raise DataError(f"{path}: {m.key} ends after {got:,} of its {m.nbytes:,} "
                                "bytes")
            data[got:got + len(block)] = np.frombuffer(block, np.uint8)
            got += len(block)
        while f.read(_CHUNK):
            pass
    array = data.view(m.dtype)
    return array.reshape(m.shape[::-1]).T if m.fortran else array.reshape(m.shape)


def _declared(path: Path, zf: zipfile.ZipFile, m: _Member | None):
    """The ``shape`` entry as three ints, or None."""
    if m is None:
        return None
    if m.dtype.kind not in "iuf" or math.prod(m.shape) > 64:
        raise DataError(f"{path}: shape must be three integers (height, width, channels), "
                        f"got an array {m.shape} of {m.dtype}")
    values = _read(path, zf, m).ravel()
    if values.size != 3 or values.dtype.kind not in "iu":
        raise DataError(f"{path}: shape must be three integers (height, width, channels), "
                        f"got {values.tolist()[:5]}")
    return tuple(int(v) for v in values)


def _shape(path: Path, xs: tuple[int, ...], declared) -> tuple[tuple[int, int, int], bool]:
    """(height, width, channels) of x_train's images (``xs`` its shape), and whether they
    are stored channels-first."""
    dims = xs[1:]
    if len(dims) not in (1, 2, 3):
        raise DataError(f"{path}: x_train has shape {xs}; images are (N, H, W), "
                        "(N, H, W, C), (N, C, H, W) or flat (N, D)")
    if math.prod(dims) == 0:
        raise DataError(f"{path}: x_train's images have no pixels (shape {xs})")
    if declared is not None:
        return _declared_layout(path, xs, declared)
    if len(dims) == 1:
        side = math.isqrt(dims[0])
        if side * side != dims[0]:
            raise DataError(f"{path}: flat images of {dims[0]} values need a declared "
                            "'shape' (height, width, channels)")
        return (side, side, 1), False  # flat square images: grey, as MNIST's
    if len(dims) == 2:
        return (*dims, 1), False
    return _layout_4d(path, xs)


def _layout_4d(path: Path, xs: tuple[int, ...]) -> tuple[tuple[int, int, int], bool]:
    """(N, A, B, C) without a ``shape`` entry: channels-first when A alone can be channels,
    channels-last when A cannot, refused when both A and C can."""
    a, b, c = xs[1:]
    if a not in SMALL_CHANNELS:
        return (a, b, c), False
    if c not in SMALL_CHANNELS:
        return (b, c, a), True
    if a == b == c == 1:
        return (1, 1, 1), False
    if a == b == c:
        raise DataError(_same_both_ways(path, xs))
    raise DataError(f"{path}: x_train is {xs}: {a}x{b} images of {c} channels (N, H, W, C) "
                    f"or {b}x{c} images of {a} channels (N, C, H, W)? add a 'shape' entry "
                    "[height, width, channels] to say which")


def _same_both_ways(path: Path, xs: tuple[int, ...]) -> str:
    a = xs[1]
    return (f"{path}: x_train is {xs}: (N, H, W, C) and (N, C, H, W) are the same shape "
            f"here, with the values in other orders; store them flat (N, {a ** 3}) in "
            f"(height, width, channels) order with a 'shape' entry [{a}, {a}, {a}]")


def _declared_layout(path: Path, xs: tuple[int, ...], declared) -> tuple[tuple, bool]:
    """The images as the ``shape`` entry (height, width, channels) says: a 4-D array is
    (N, H, W, C) or, when it is (N, C, H, W), channels-first."""
    h, w, c = declared
    dims = xs[1:]
    last, first = dims == (h, w, c), dims == (c, h, w)
    if min(h, w, c) < 1 or h * w * c != math.prod(dims) or (
            len(dims) == 2 and dims != (h, w)) or (len(dims) == 3 and not (last or first)):
        raise DataError(f"{path}: declared shape {h}x{w}x{c} does not match x_train's "
                        f"{dims}")
    if len(dims) == 3 and last and first and c > 1:
        raise DataError(_same_both_ways(path, xs))
    return (h, w, c), len(dims) == 3 and first and not last


def _check_images(path: Path, heads: dict[str, _Member], shape) -> None:
    """What the headers tell of the images, before any is read."""
    x, xt = heads["x_train"], heads["x_test"]
    if xt.shape[1:] != x.shape[1:]:
        raise DataError(f"{path}: x_test's images are {xt.shape[1:]} but x_train's are "
                        f"{x.shape[1:]}")
    n = math.prod(shape)
    if n > MAX_INPUTS:
        raise DataError(f"{path}: images of {n} values are more than {MAX_INPUTS}")
    total = (x.shape[0] + xt.shape[0]) * n
    if total > MAX_VALUES:
        raise DataError(f"{path}: {x.shape[0] + xt.shape[0]:,} images of {n:,} values are "
                        f"{total:,} values; at most {MAX_VALUES:,}")
    for m in (x, xt):
        if m.dtype != np.uint8 and m.dtype.kind != "f":
            raise DataError(f"{path}: {m.key} is {m.dtype}; images are uint8 or float in "
                            "[0, 1]")


def _images(path: Path, x: np.ndarray, key: str, shape, first: bool) -> np.ndarray:
    """float32 (N, H*W*C), channel-last, in [0, 1]; one float32 array, no temporary of
    its size."""
    h, w, c = shape
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise DataError(f"{path}: {key} has NaN or infinite pixels")
        if x.min() < 0 or x.max() > 1:
            raise DataError(f"{path}: {key} has pixels outside [0, 1] (min {x.min():.3g}, "
                            f"max {x.max():.3g}); scale them, or store uint8")
    hwc = x.transpose(0, 2, 3, 1) if first else x.reshape(len(x), h, w, c)
    out = np.empty((len(x), h, w, c), np.float32)
    if x.dtype == np.uint8:
        np.divide(hwc, np.float32(255), out=out)
    else:
        out[...] = hwc
    return out.reshape(len(x), h * w * c)


def _labels(path: Path, zf: zipfile.ZipFile, m: _Member, n: int) -> np.ndarray:
    """int64 labels, their range checked in the dtype they are stored in (a uint64 label
    past int64 would wrap to a negative one in the cast)."""
    if len(m.shape) != 1 or m.shape[0] != n:
        raise DataError(f"{path}: {m.key} has shape {m.shape}, expected ({n},)")
    if m.dtype.kind not in "iub":
        raise DataError(f"{path}: {m.key} is {m.dtype}; labels are integers 0..K-1")
    if n == 0:
        raise DataError(f"{path}: {m.key} is empty")
    y = _read(path, zf, m)
    if y.dtype.kind == "b":
        return y.astype(np.int64)  # False, True: classes 0 and 1
    low, high = int(y.min()), int(y.max())
    if low < 0:
        raise DataError(f"{path}: {m.key} has negative labels")
    if high >= MAX_CLASSES:
        raise DataError(f"{path}: {m.key}'s labels go up to {high}; at most {MAX_CLASSES} "
                        "classes")
    return y.astype(np.int64)


def _class_names(path: Path, zf: zipfile.ZipFile, m: _Member | None, k: int):
    """The class names as str (bytes decoded as UTF-8), at least one per label."""
    if m is None:
        return None
    if len(m.shape) != 1 or m.dtype.kind not in "US":
        raise DataError(f"{path}: class_names must be a 1-D array of strings")
    if m.shape[0] < k:
        raise DataError(f"{path}: {m.shape[0]} class names but labels go up to {k - 1}")
    names = []
    for name in _read(path, zf, m):
        try:
            names.append(name.decode("utf-8") if isinstance(name, bytes) else str(name))
        except UnicodeDecodeError:
            raise DataError(f"{path}: class name {name[:40]!r} is not UTF-8 text") from None
    return tuple(names)
