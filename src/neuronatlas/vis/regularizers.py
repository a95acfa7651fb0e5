"""Image regularisers of the paper ("Visualiser"; Appendix items 4 and 5), batched.

Images are rows of ``(R, 784)`` (row-major 28x28). Each regulariser returns its
value per row and its gradient with respect to the image.
"""

from __future__ import annotations

import numpy as np

SIDE = 28


def _diffs(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour differences of the zero-padded image (Appendix item 5).

    ``dv[:, a, b] = u[a, b] - u[a-1, b]`` for a = 0..28 and ``dh[:, a, b] = u[a, b] - u[a, b-1]``
    for b = 0..28, with u = 0 outside the 28x28 image (``numpy.pad`` with zeros).
    """
    img = u.reshape(-1, SIDE, SIDE)
    pad = np.pad(img, ((0, 0), (1, 1), (1, 1)))
    dv = pad[:, 1:, 1:-1] - pad[:, :-1, 1:-1]  # (R, 29, 28)
    dh = pad[:, 1:-1, 1:] - pad[:, 1:-1, :-1]  # (R, 28, 29)
    return dv, dh


def tv_value(u: np.ndarray) -> np.ndarray:
    """Anisotropic total variation, zero-padded: sum |u_{i+1,j} - u_{i,j}| + |u_{i,j+1} - u_{i,j}|
    over every pair of neighbours including the one-pixel zero border, per row (R,)."""
    dv, dh = _diffs(u)
    return np.abs(dv).sum(axis=(1, 2)) + np.abs(dh).sum(axis=(1, 2))


def tv_grad(u: np.ndarray) -> np.ndarray:
    """dTV/du (Appendix 4-5): sgn(u - up) - sgn(down - u) + sgn(u - left) - sgn(right - u)."""
    dv, dh = _diffs(u)
    sv, sh = np.sign(dv), np.sign(dh)
    g = sv[:, :-1, :] - sv[:, 1:, :] + sh[:, :, :-1] - sh[:, :, 1:]
    return g.reshape(u.shape)


def l1_value(u: np.ndarray) -> np.ndarray:
    """L1(I) = sum |I_i| per row (the paper's LASSO term)."""
    return np.abs(u).sum(axis=-1)


def l1_grad(u: np.ndarray) -> np.ndarray:
    """L1'(I) = sgn(I)."""
    return np.sign(u)
