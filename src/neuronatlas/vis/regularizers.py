"""Image regularisers of the paper ("Visualiser"; Appendix items 4 and 5), batched.

Images are rows of ``(R, H*W*C)``: an image of height H, width W and C channels,
flattened channel-last (row-major H x W x C; MNIST's is 28 x 28 x 1, ``(R, 784)``).
Each regulariser returns its value per row and its gradient with respect to the image;
total variation runs over each channel separately.
"""

from __future__ import annotations

import numpy as np

SIDE = 28  # an MNIST image is SIDE x SIDE pixels
MNIST_SHAPE = (SIDE, SIDE, 1)


def image_view(u: np.ndarray, shape=MNIST_SHAPE) -> np.ndarray:
    """Rows (R, H*W*C) as images: (R, H, W) for one channel, else (R, H, W, C); axes 1 and
    2 are always the image's rows and columns."""
    h, w, c = shape
    return u.reshape(-1, h, w) if c == 1 else u.reshape(-1, h, w, c)


def _diffs(u: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour differences of the zero-padded image (Appendix item 5).

    ``dv[:, a, b] = u[a, b] - u[a-1, b]`` for a = 0..H and ``dh[:, a, b] = u[a, b] - u[a, b-1]``
    for b = 0..W, with u = 0 outside the image (``numpy.pad`` with zeros), per channel.
    """
    img = image_view(u, shape)
    pad = np.pad(img, ((0, 0), (1, 1), (1, 1)) + ((0, 0),) * (img.ndim - 3))
    dv = pad[:, 1:, 1:-1] - pad[:, :-1, 1:-1]  # (R, H+1, W[, C])
    dh = pad[:, 1:-1, 1:] - pad[:, 1:-1, :-1]  # (R, H, W+1[, C])
    return dv, dh


def tv_value(u: np.ndarray, shape=MNIST_SHAPE) -> np.ndarray:
    """Anisotropic total variation, zero-padded: sum |u_{i+1,j} - u_{i,j}| + |u_{i,j+1} - u_{i,j}|
    over every pair of neighbours including the one-pixel zero border, per row (R,)."""
    dv, dh = _diffs(u, shape)
    return np.abs(dv).reshape(len(dv), -1).sum(axis=1) + np.abs(dh).reshape(len(dh), -1).sum(
        axis=1)


def tv_grad(u: np.ndarray, shape=MNIST_SHAPE) -> np.ndarray:
    """dTV/du (Appendix 4-5): sgn(u - up) - sgn(down - u) + sgn(u - left) - sgn(right - u)."""
    dv, dh = _diffs(u, shape)
    sv, sh = np.sign(dv), np.sign(dh)
    g = sv[:, :-1, :] - sv[:, 1:, :] + sh[:, :, :-1] - sh[:, :, 1:]
    return g.reshape(u.shape)


def l1_value(u: np.ndarray) -> np.ndarray:
    """L1(I) = sum |I_i| per row (the paper's LASSO term)."""
    return np.abs(u).sum(axis=-1)


def l1_grad(u: np.ndarray) -> np.ndarray:
    """L1'(I) = sgn(I)."""
    return np.sign(u)
