"""Sprite sheets: many 28x28 tiles in one PNG, shown one at a time with CSS
``background-position``. Pure functions from arrays to pixels, and one PNG encoder."""

from __future__ import annotations

import io

import numpy as np

SIDE = 28  # an MNIST tile is 28x28 pixels
COLS = 32  # tiles per sprite row: a sheet is 896 pixels wide


def contrast(images: np.ndarray) -> np.ndarray:
    """(n, 784) -> (n, 784) in [0, 1], each row scaled to its own maximum: visualisations
    are faint (pixels of a few hundredths) and would look black unscaled. Rows with no
    positive pixel stay black."""
    x = np.clip(np.asarray(images, np.float32), 0, None)
    peak = x.max(axis=1, keepdims=True)
    return np.divide(x, peak, out=np.zeros_like(x), where=peak > 0)


def diverging(weights: np.ndarray) -> np.ndarray:
    """(n, 784) signed weights -> (n, 784, 3) in [0, 1]: each row scaled by its largest
    magnitude; positive weights orange, negative blue, zero black (the page is dark)."""
    w = np.asarray(weights, np.float32)
    peak = np.abs(w).max(axis=1, keepdims=True)
    s = np.divide(w, peak, out=np.zeros_like(w), where=peak > 0)
    pos, neg = np.clip(s, 0, 1)[..., None], np.clip(-s, 0, 1)[..., None]
    return pos * np.array([1.0, 0.6, 0.15]) + neg * np.array([0.25, 0.6, 1.0])


def sheet(tiles: np.ndarray, cols: int = COLS) -> np.ndarray:
    """(n, 784) or (n, 784, C) in [0, 1] -> one uint8 image (rows*28, cols*28[, C]), tile i
    at row i // cols, column i % cols; the last row is padded with black tiles."""
    n = len(tiles)
    rows = max(1, -(-n // cols))
    chan = tiles.shape[2:]  # () for grey, (3,) for colour
    padded = np.zeros((rows * cols, SIDE * SIDE, *chan), np.float32)
    padded[:n] = tiles
    grid = padded.reshape(rows, cols, SIDE, SIDE, *chan).swapaxes(1, 2)
    grid = grid.reshape(rows * SIDE, cols * SIDE, *chan)
    return np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8)


def png(pixels: np.ndarray) -> bytes:
    """PNG of a uint8 (H, W) grey or (H, W, 3) colour image; the same array always gives
    the same bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()
