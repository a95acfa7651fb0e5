"""Transforms applied to the image before the network sees it: the clip derivative
(the clip itself is ``np.clip``), the paper's 1-pixel jitter, jitter of up to k pixels,
and small rotations and rescalings by bilinear resampling (the transformation robustness
of Olah et al., Distill 2017; lucent's ``transform.jitter``, ``random_scale``,
``random_rotate``).

Each forward transform has its backward (the adjoint applied to a gradient) beside it.
Pixels moved in from beyond the canvas are 0, as in the paper's zero padding.
"""

from __future__ import annotations

import numpy as np

from ..shapes import MNIST_SHAPE
from .regularizers import image_view


def clip_inside(x: np.ndarray, out: np.ndarray | None = None,
                scratch: np.ndarray | None = None) -> np.ndarray:
    """Where the clip's derivative is 1: 0 < x < 1 (Appendix item 3), as booleans; ``out``
    and ``scratch`` (bool, x's shape) let the renderer reuse its buffers."""
    out = np.greater(x, 0, out=out)
    out &= np.less(x, 1, out=scratch)
    return out


def clip_derivative(x: np.ndarray) -> np.ndarray:
    """f'(x) = 1 for 0 < x < 1, else 0 (Appendix item 3), as x's dtype."""
    return clip_inside(x).astype(x.dtype)


#: The eight 1-pixel translations "along either or both axes" (rows, columns).
SHIFTS = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)])


def translate(x: np.ndarray, shifts: np.ndarray, shape=MNIST_SHAPE) -> np.ndarray:
    """Translate each row's image by its integer (dy, dx), filling with 0 (the paper's
    jitter uses shifts in {-1, 0, 1}^2; ``jitter_px`` up to k pixels)."""
    img = image_view(x, shape)
    h, w = shape[:2]
    k = int(np.abs(shifts).max(initial=0))
    pad = np.pad(img, ((0, 0), (k, k), (k, k)) + ((0, 0),) * (img.ndim - 3))
    out = np.empty_like(img)
    for dy, dx in np.unique(shifts, axis=0):
        rows = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
        # out[a, b] = img[a - dy, b - dx]
        out[rows] = pad[rows, k - dy : k - dy + h, k - dx : k - dx + w]
    return out.reshape(x.shape)


def translate_backward(g: np.ndarray, shifts: np.ndarray, shape=MNIST_SHAPE) -> np.ndarray:
    """Adjoint of :func:`translate`: move the gradient back by (-dy, -dx)."""
    return translate(g, -shifts, shape)


class Resample:
    """Bilinear resampling of each row's image about its centre: output pixel q samples
    the input at c + A_r (q - c), A_r = R(-angle_r) / scale_r (the image is rotated by
    ``angle_r`` degrees and magnified by ``scale_r``); samples beyond the canvas are 0.
    Built once per step for a batch; :meth:`forward` is a gather of four weighted
    corners, :meth:`backward` its adjoint, a scatter-add."""

    def __init__(self, scales: np.ndarray, angles: np.ndarray, shape, dtype=np.float64):
        h, w = shape[:2]
        rows = len(scales)
        qy, qx = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2,
                             indexing="ij")
        t = np.deg2rad(np.asarray(angles, np.float64))[:, None, None]
        s = np.asarray(scales, np.float64)[:, None, None]
        cos, sin = np.cos(t) / s, np.sin(t) / s
        sy = cos * qy - sin * qx + (h - 1) / 2  # (R, H, W) source coordinates
        sx = sin * qy + cos * qx + (w - 1) / 2
        y0, x0 = np.floor(sy), np.floor(sx)
        fy, fx = sy - y0, sx - x0
        idx, wts = [], []
        base = (np.arange(rows) * (h * w))[:, None, None]
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                yy, xx = y0 + dy, x0 + dx
                inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
                idx.append(np.where(inside, base + yy * w + xx, 0).astype(np.int64))
                wts.append(np.where(inside, wy * wx, 0.0))
        # one pixel's channels share its weights: index pixels, then expand over channels
        self.idx = np.stack(idx).reshape(4, rows, h * w)
        self.wts = np.stack(wts).reshape(4, rows, h * w, 1).astype(dtype)
        self.shape, self.rows = shape, rows

    def forward(self, x: np.ndarray) -> np.ndarray:
        c = self.shape[2]
        px = x.reshape(-1, c)  # (R*H*W, C)
        out = sum(self.wts[k] * px[self.idx[k]] for k in range(4))
        return out.reshape(x.shape)

    def backward(self, g: np.ndarray) -> np.ndarray:
        c = self.shape[2]
        gp = g.reshape(self.rows, -1, c)
        out = np.zeros((self.rows * gp.shape[1], c), np.float64)
        for k in range(4):
            for ch in range(c):
                out[:, ch] += np.bincount(self.idx[k].ravel(),
                                          (self.wts[k][..., 0] * gp[..., ch]).ravel(),
                                          minlength=len(out))
        return out.reshape(g.shape).astype(g.dtype, copy=False)
