"""Reading and writing 28x28 grey images: PNG (Pillow) and .npy."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..fileio import atomic_write_bytes

SIDE = 28


class ImageError(ConfigError):
    """An image file that is missing, unreadable, not 28x28 or not grey."""


def load_image(path: str | Path) -> np.ndarray:
    """A 28x28 grey image as float32 (784,) in [0, 1], from a PNG (any bit depth) or .npy."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ImageError(f"{path} is not a readable .npy file: {exc or 'empty'}") from None
        if not isinstance(arr, np.ndarray):  # an .npz archive under a .npy name
            arr.close()
            raise ImageError(f"{path} is an .npz archive, not a single .npy array")
        if arr.shape not in ((SIDE, SIDE), (SIDE * SIDE,)):
            raise ImageError(f"{path} has shape {arr.shape}; expected (28, 28) or (784,)")
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

    try:
        with Image.open(path) as im:
            if im.size != (SIDE, SIDE):  # before decoding: a huge image is refused cheaply
                raise ImageError(f"{path} is {im.size[0]}x{im.size[1]} pixels; expected 28x28")
            im.load()
            mode = im.mode
            if mode in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "HSV", "LAB"):
                rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
                if np.abs(np.diff(rgb, axis=2)).max() > 0:
                    raise ImageError(f"{path} is a colour image; a grey (single-channel) "
                                     "28x28 image is needed")
            arr = np.asarray(im.convert("I;16") if mode == "I;16" else im.convert("L"))
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        raise ImageError(f"{path} is not a readable image: {exc}") from None
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    return (arr.astype(np.float32) / np.float32(scale)).reshape(-1)


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """PNG of a (784,) image, or any 2-D array, in [0, 1] (values outside are clipped),
    upscaled by nearest neighbour as the paper's figures were."""
    from PIL import Image

    img = np.asarray(image, np.float64)
    img = np.clip(img.reshape(SIDE, SIDE) if img.ndim == 1 else img, 0, 1)
    pil = Image.fromarray(np.round(img * 255).astype(np.uint8), mode="L")
    if scale > 1:
        pil = pil.resize((img.shape[1] * scale, img.shape[0] * scale),
                         Image.Resampling.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def save_png(path: str | Path, image: np.ndarray, scale: int = 1, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, png_bytes(image, scale), fsync=fsync)


def save_npy(path: str | Path, array: np.ndarray, *, fsync: bool = True) -> None:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue(), fsync=fsync)
