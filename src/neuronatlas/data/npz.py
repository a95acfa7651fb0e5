"""A user's own dataset as one ``.npz`` file (docs/data.md).

Keys: ``x_train``, ``y_train``, ``x_test``, ``y_test``; optional ``class_names``
(strings) and ``shape`` ((height, width, channels), required for flat images that do
not form one square). Images are (N, H, W), (N, H, W, C) or flat (N, D); uint8 (0..255)
or float in [0, 1]. Labels are integers 0..K-1. Nothing is unpickled.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..fileio import sha256_of
from .dataset import MAX_CLASSES, Dataset

MAX_INPUTS = 1 << 20  # pixels per image; a dense first layer on more is not sensible here


def load_npz(path: str | Path) -> Dataset:
    """Read and check a dataset ``.npz`` (see the module docstring).

    Example::

        np.savez("mine.npz", x_train=xt, y_train=yt, x_test=xv, y_test=yv,
                 class_names=np.array(["cat", "dog"]))
        data = na.load_dataset("mine.npz")
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file not found: {path}")
    try:
        digest = sha256_of(path)
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise DataError(f"{path} is a single .npy array, not an .npz of x_train, "
                                "y_train, x_test, y_test")
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)}; a dataset .npz holds "
                                "x_train, y_train, x_test, y_test (and optionally class_names, "
                                "shape)")
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            names = z["class_names"] if "class_names" in z.files else None
            shape = z["shape"] if "shape" in z.files else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{path} is not a readable .npz file: {str(exc)[:200]}") from None
    shape = _shape(path, arrays["x_train"], shape)
    if arrays["x_test"].shape[1:] != arrays["x_train"].shape[1:]:
        raise DataError(f"{path}: x_test's images are {arrays['x_test'].shape[1:]} but "
                        f"x_train's are {arrays['x_train'].shape[1:]}")
    train_x, test_x = (_images(path, arrays[k], k, shape) for k in ("x_train", "x_test"))
    train_y, test_y = (_labels(path, arrays[k], k, n) for k, n in
                       (("y_train", len(train_x)), ("y_test", len(test_x))))
    k = int(max(train_y.max(initial=0), test_y.max(initial=0))) + 1
    if k > MAX_CLASSES:
        raise DataError(f"{path}: labels go up to {k - 1}; at most {MAX_CLASSES} classes")
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(f"{path}: class_names must be a 1-D array of strings")
        names = tuple(str(n) for n in names)
        if len(names) < k:
            raise DataError(f"{path}: {len(names)} class names but labels go up to {k - 1}")
    return Dataset(train_x, train_y, test_x, test_y, sources={"file": str(path)},
                   name=path.name, shape=shape, class_names=names, sha256=digest,
                   spec=str(path.resolve()))


def _shape(path: Path, x: np.ndarray, declared) -> tuple[int, int, int]:
    if x.ndim == 3:
        found = (x.shape[1], x.shape[2], 1)
    elif x.ndim == 4:
        found = x.shape[1:]
    elif x.ndim == 2:
        found = None
    else:
        raise DataError(f"{path}: x_train has shape {x.shape}; images are (N, H, W), "
                        "(N, H, W, C) or flat (N, D)")
    if declared is not None:
        values = np.asarray(declared).ravel()
        if values.size != 3 or values.dtype.kind not in "iu":
            raise DataError(f"{path}: shape must be three integers (height, width, channels), "
                            f"got {values.tolist()[:5]}")
        h, w, c = (int(v) for v in values)
        if min(h, w, c) < 1 or h * w * c != int(np.prod(x.shape[1:])) or (
                found is not None and tuple(found) != (h, w, c)):
            raise DataError(f"{path}: declared shape {h}x{w}x{c} does not match x_train's "
                            f"{x.shape[1:]}")
        return h, w, c
    if found is None:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise DataError(f"{path}: flat images of {x.shape[1]} values need a declared "
                            "'shape' (height, width, channels)")
        found = (side, side, 1)  # flat square images: grey, as MNIST's
    return tuple(int(v) for v in found)


def _images(path: Path, x: np.ndarray, key: str, shape) -> np.ndarray:
    n = int(np.prod(shape))
    if x.ndim < 2 or int(np.prod(x.shape[1:])) != n:
        raise DataError(f"{path}: {key} has shape {x.shape}, not images of {shape}")
    if n > MAX_INPUTS:
        raise DataError(f"{path}: images of {n} values are more than {MAX_INPUTS}")
    if x.dtype == np.uint8:  # one float32 array, no temporary of its size
        return np.divide(x.reshape(len(x), n), np.float32(255), dtype=np.float32)
    if x.dtype.kind != "f":
        raise DataError(f"{path}: {key} is {x.dtype}; images are uint8 or float in [0, 1]")
    flat = x.reshape(len(x), n).astype(np.float32)
    if not np.isfinite(flat).all():
        raise DataError(f"{path}: {key} has NaN or infinite pixels")
    if flat.size and (flat.min() < 0 or flat.max() > 1):
        raise DataError(f"{path}: {key} has pixels outside [0, 1] (min {flat.min():.3g}, max "
                        f"{flat.max():.3g}); scale them, or store uint8")
    return flat


def _labels(path: Path, y: np.ndarray, key: str, n: int) -> np.ndarray:
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{path}: {key} has shape {y.shape}, expected ({n},)")
    if y.dtype.kind not in "iu":
        raise DataError(f"{path}: {key} is {y.dtype}; labels are integers 0..K-1")
    if n and y.min() < 0:
        raise DataError(f"{path}: {key} has negative labels")
    if n == 0:
        raise DataError(f"{path}: {key} is empty")
    return y.astype(np.int64)
