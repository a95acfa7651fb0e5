"""Transforms applied to the image before the network sees it: the clip derivative
(the clip itself is ``np.clip``) and jitter.

Each forward transform has its backward (the adjoint applied to a gradient) beside it.
"""

from __future__ import annotations

import numpy as np

from .regularizers import MNIST_SHAPE, image_view


def clip_derivative(x: np.ndarray) -> np.ndarray:
    """f'(x) = 1 for 0 < x < 1, else 0 (Appendix item 3), as x's dtype."""
    return ((x > 0) & (x < 1)).astype(x.dtype)


#: The eight 1-pixel translations "along either or both axes" (rows, columns).
SHIFTS = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)])


def translate(x: np.ndarray, shifts: np.ndarray, shape=MNIST_SHAPE) -> np.ndarray:
    """Translate each row's image by its (dy, dx) in {-1, 0, 1}^2, filling with 0."""
    img = image_view(x, shape)
    h, w = shape[:2]
    pad = np.pad(img, ((0, 0), (1, 1), (1, 1)) + ((0, 0),) * (img.ndim - 3))
    out = np.empty_like(img)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            rows = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
            if rows.size:
                # out[a, b] = img[a - dy, b - dx]
                out[rows] = pad[rows, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]
    return out.reshape(x.shape)


def translate_backward(g: np.ndarray, shifts: np.ndarray, shape=MNIST_SHAPE) -> np.ndarray:
    """Adjoint of :func:`translate`: move the gradient back by (-dy, -dx)."""
    return translate(g, -shifts, shape)
