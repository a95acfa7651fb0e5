"""Sprite sheets: many tiles (images of the model's input shape, 28x28 grey for MNIST) in
one PNG, shown one at a time with CSS ``background-position``. Pure functions from arrays
to pixels, and one PNG encoder. A tile is a flat row of H*W*C values, channel-last."""

from __future__ import annotations

import io

import numpy as np

from ..shapes import MNIST_SHAPE

COLS = 32  # tiles per sprite row: a sheet of MNIST tiles is 896 pixels wide


def contrast(images: np.ndarray) -> np.ndarray:
    """(n, D) -> (n, D) in [0, 1], each row scaled to its own maximum: visualisations
    are faint (pixels of a few hundredths) and would look black unscaled. Rows with no
    positive pixel stay black."""
    x = np.clip(np.asarray(images, np.float32), 0, None)
    peak = x.max(axis=1, keepdims=True)
    return np.divide(x, peak, out=np.zeros_like(x), where=peak > 0)


def diverging(weights: np.ndarray, shape=MNIST_SHAPE) -> tuple[np.ndarray, tuple]:
    """(n, D) signed weights -> ((n, H*W*3) in [0, 1], (H, W, 3)): each row scaled by its
    largest magnitude. Grey inputs: positive weights orange, negative blue, zero black (the
    page is dark); colour inputs: each channel's weight as its colour, 0 mid-grey."""
    w = np.asarray(weights, np.float32)
    peak = np.abs(w).max(axis=1, keepdims=True)
    s = np.divide(w, peak, out=np.zeros_like(w), where=peak > 0)
    h, wd, c = shape
    if c == 3:
        return 0.5 + 0.5 * s, shape
    pos, neg = np.clip(s, 0, 1)[..., None], np.clip(-s, 0, 1)[..., None]
    rgb = pos * np.array([1.0, 0.6, 0.15]) + neg * np.array([0.25, 0.6, 1.0])
    return rgb.reshape(len(w), -1), (h, wd, 3)


def side_by_side(weights: np.ndarray, pictures: np.ndarray, shape=MNIST_SHAPE
                 ) -> tuple[np.ndarray, tuple]:
    """(n, D) signed weights and (n, D) pictures in [0, 1] -> ((n, H*2W*3), (H, 2W, 3)):
    each row's :func:`diverging` weight image on the left, its picture on the right."""
    h, w, c = shape
    left, _ = diverging(weights, shape)
    right = np.asarray(pictures, np.float32).reshape(len(pictures), h, w, c)
    if c == 1:
        right = np.repeat(right, 3, axis=3)
    both = np.concatenate([left.reshape(len(left), h, w, 3), right], axis=2)
    return both.reshape(len(both), -1), (h, 2 * w, 3)


def sheet(tiles: np.ndarray, shape=MNIST_SHAPE, cols: int = COLS) -> np.ndarray:
    """(n, H*W*C) in [0, 1] -> one uint8 image (rows*H, cols*W[, C]), tile i at row
    i // cols, column i % cols; the last row is padded with black tiles. C is 1 (grey)
    or 3 (colour)."""
    h, w, c = shape
    n = len(tiles)
    rows = max(1, -(-n // cols))
    chan = (c,) if c > 1 else ()
    padded = np.zeros((rows * cols, h, w, *chan), np.float32)
    padded[:n] = np.asarray(tiles, np.float32).reshape(n, h, w, *chan)
    grid = padded.reshape(rows, cols, h, w, *chan).swapaxes(1, 2)
    grid = grid.reshape(rows * h, cols * w, *chan)
    return np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8)


def png(pixels: np.ndarray) -> bytes:
    """PNG of a uint8 (H, W) grey or (H, W, 3) colour image; the same array always gives
    the same bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()
