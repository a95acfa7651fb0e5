"""Reading and writing images of a model's input shape (MNIST's: 28x28 grey): PNG
(Pillow) and .npy."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..fileio import atomic_write_bytes, checked_path
from ..shapes import MNIST_SHAPE


class ImageError(ConfigError):
    """An image file that is missing, unreadable, or not of the model's input shape."""


def load_image(path: str | Path, shape=MNIST_SHAPE) -> np.ndarray:
    """An image of ``shape`` (height, width, channels) as float32 (H*W*C,) in [0, 1],
    channel-last, from a PNG (grey for one channel, RGB for three) or a .npy."""
    path = checked_path(path, "image", ImageError)
    h, w, c = shape
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ImageError(f"{path} is not a readable .npy file: {exc or 'empty'}") from None
        if not isinstance(arr, np.ndarray):  # an .npz archive under a .npy name
            arr.close()
            raise ImageError(f"{path} is an .npz archive, not a single .npy array")
        allowed = ((h, w, c), (h * w * c,)) + (((h, w),) if c == 1 else ())
        if arr.shape not in allowed:
            raise ImageError(f"{path} has shape {arr.shape}; expected one of {allowed}")
        if not np.issubdtype(arr.dtype, np.number):
            raise ImageError(f"{path} holds {arr.dtype}, not numbers")
        arr = arr.astype(np.float32).reshape(-1)
        if not np.isfinite(arr).all():
            raise ImageError(f"{path} has NaN or infinite pixels")
        if arr.min() < 0 or arr.max() > 1:
            raise ImageError(f"{path} has pixels outside [0, 1] "
                             f"(min {arr.min():.3g}, max {arr.max():.3g})")
        return arr
    from PIL import Image, UnidentifiedImageError

    if c not in (1, 3):
        raise ImageError(f"the model takes {c}-channel images; give them as .npy")
    try:
        with Image.open(path) as im:
            if im.size != (w, h):  # before decoding: a huge image is refused cheaply
                raise ImageError(f"{path} is {im.size[0]}x{im.size[1]} pixels; expected "
                                 f"{w}x{h}")
            im.load()
            mode = im.mode
            if c == 3:
                arr = np.asarray(im.convert("RGB"))
            else:
                if mode in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "HSV", "LAB"):
                    rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
                    if np.abs(np.diff(rgb, axis=2)).max() > 0:
                        raise ImageError(f"{path} is a colour image; a grey (single-channel) "
                                         f"{w}x{h} image is needed")
                arr = np.asarray(im.convert("I;16") if mode == "I;16" else im.convert("L"))
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        raise ImageError(f"{path} is not a readable image: {exc}") from None
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    return (arr.astype(np.float32) / np.float32(scale)).reshape(-1)


def png_bytes(image: np.ndarray, scale: int = 1, shape=MNIST_SHAPE) -> bytes:
    """PNG of a flat image of ``shape``, or any 2-D (grey) or 3-D (RGB) array, in [0, 1]
    (values outside are clipped), upscaled by nearest neighbour as the paper's figures were."""
    from PIL import Image

    img = np.asarray(image, np.float64)
    if img.ndim == 1:
        h, w, c = shape
        img = img.reshape(h, w) if c == 1 else img.reshape(h, w, c)
    img = np.clip(img, 0, 1)
    pil = Image.fromarray(np.round(img * 255).astype(np.uint8), mode="L" if img.ndim == 2
                          else "RGB")
    if scale > 1:
        pil = pil.resize((img.shape[1] * scale, img.shape[0] * scale),
                         Image.Resampling.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def save_png(path: str | Path, image: np.ndarray, scale: int = 1, *, fsync: bool = True,
             shape=MNIST_SHAPE) -> None:
    atomic_write_bytes(path, png_bytes(image, scale, shape), fsync=fsync)


def save_npy(path: str | Path, array: np.ndarray, *, fsync: bool = True) -> None:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue(), fsync=fsync)
