"""Image regularisers of the paper ("Visualiser"; Appendix items 4 and 5), batched.

Images are rows of ``(R, H*W*C)``: an image of height H, width W and C channels,
flattened channel-last (row-major H x W x C; MNIST's is 28 x 28 x 1, ``(R, 784)``).
Each regulariser returns its value per row and its gradient with respect to the image;
total variation runs over each channel separately. Beyond the paper: TV with
an exponent beta (Mahendran & Vedaldi, IJCV 2016), L2 decay, the tie of feature
accentuation, the diversity penalty (lucent's ``objectives.diversity``, on the images
themselves) and the Gaussian blur applied every few steps (Yosinski et al. 2015).
"""

from __future__ import annotations

import numpy as np

from ..shapes import MNIST_SHAPE


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


def tv_value(u: np.ndarray, shape=MNIST_SHAPE, beta: float = 1.0) -> np.ndarray:
    """Anisotropic total variation, zero-padded: sum |u_{i+1,j} - u_{i,j}|^beta +
    |u_{i,j+1} - u_{i,j}|^beta over every pair of neighbours including the one-pixel zero
    border, per row (R,). beta = 1 is the paper's (Appendix items 4-5)."""
    dv, dh = _diffs(u, shape)
    return (np.abs(dv) ** beta).reshape(len(dv), -1).sum(axis=1) + (
        np.abs(dh) ** beta).reshape(len(dh), -1).sum(axis=1)


def tv_grad(u: np.ndarray, shape=MNIST_SHAPE, beta: float = 1.0) -> np.ndarray:
    """dTV/du. beta = 1 (Appendix 4-5): sgn(u - up) - sgn(down - u) + sgn(u - left) -
    sgn(right - u); for beta > 1 each sgn(d) becomes beta |d|^(beta-1) sgn(d)."""
    dv, dh = _diffs(u, shape)
    if beta == 1.0:
        sv, sh = np.sign(dv), np.sign(dh)
    elif beta == 2.0:  # beta |d| sgn(d) = 2 d
        sv, sh = 2 * dv, 2 * dh
    else:
        sv = beta * np.abs(dv) ** (beta - 1) * np.sign(dv)
        sh = beta * np.abs(dh) ** (beta - 1) * np.sign(dh)
    g = sv[:, :-1, :] - sv[:, 1:, :] + sh[:, :, :-1] - sh[:, :, 1:]
    return g.reshape(u.shape)


class SignScratch:
    """Buffers for a branch-free sgn: np.sign branches on every element and is slow
    (several times) on arrays whose signs are mixed, as neighbour differences are."""

    def __init__(self, shape):
        self.pos = np.empty(shape, bool)
        self.neg = np.empty(shape, bool)
        self.out = np.empty(shape, np.int8)

    def __call__(self, d: np.ndarray) -> np.ndarray:
        """sgn(d) as int8 in {-1, 0, 1} (0 for d == 0), exactly like np.sign."""
        np.greater(d, 0, out=self.pos)
        np.less(d, 0, out=self.neg)
        return np.subtract(self.pos.view(np.int8), self.neg.view(np.int8), out=self.out)


def tv_grad_into(u: np.ndarray, out: np.ndarray, diff_v: np.ndarray, diff_h: np.ndarray,
                 sign_v: SignScratch, sign_h: SignScratch, shape=MNIST_SHAPE) -> None:
    """``out = dTV/du`` (Appendix 4-5, zero padding), equal to :func:`tv_grad` with beta 1 (the
    fast in-place form the paper's renderer runs: one branch-free sign array per direction);
    ``diff_v`` (R, H-1, W[, C]) and ``diff_h`` (R, H, W-1[, C]) are scratch."""
    img, g = image_view(u, shape), image_view(out, shape)
    # interior neighbour differences, one sign array per direction: sgn(u[a+1] - u[a])
    sv = sign_v(np.subtract(img[:, 1:, :], img[:, :-1, :], out=diff_v))
    sh = sign_h(np.subtract(img[:, :, 1:], img[:, :, :-1], out=diff_h))
    # each pixel: sgn(u - up) - sgn(down - u) + sgn(u - left) - sgn(right - u)
    np.negative(sv, out=g[:, :-1, :])
    g[:, -1, :] = 0
    g[:, 1:, :] += sv
    g[:, :, :-1] -= sh
    g[:, :, 1:] += sh
    # the zero border: the first/last row and column also differ from 0
    g[:, 0, :] += np.sign(img[:, 0, :])
    g[:, -1, :] += np.sign(img[:, -1, :])
    g[:, :, 0] += np.sign(img[:, :, 0])
    g[:, :, -1] += np.sign(img[:, :, -1])


def l1_value(u: np.ndarray) -> np.ndarray:
    """L1(I) = sum |I_i| per row (the paper's LASSO term)."""
    return np.abs(u).sum(axis=-1)


def l1_grad(u: np.ndarray) -> np.ndarray:
    """L1'(I) = sgn(I)."""
    return np.sign(u)


def l2_value(u: np.ndarray) -> np.ndarray:
    """L2(I) = sum I_i^2 per row (weight decay of the image)."""
    return (u * u).sum(axis=-1)


def l2_grad(u: np.ndarray) -> np.ndarray:
    return 2 * u


def tie_value(u: np.ndarray, start: np.ndarray) -> np.ndarray:
    """|I - I0|^2 per row: feature accentuation's pull towards its real start image."""
    d = u - start
    return (d * d).sum(axis=-1)


def tie_grad(u: np.ndarray, start: np.ndarray) -> np.ndarray:
    return 2 * (u - start)


def _unit_rows(u: np.ndarray, k: int):
    """Rows grouped (T, K, D), centred (their mean pixel removed), their norms and units."""
    v = u.reshape(-1, k, u.shape[-1])
    v = v - v.mean(axis=-1, keepdims=True)
    norm = np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
    return v, norm, v / norm


def diversity_value(u: np.ndarray, k: int) -> np.ndarray:
    """Each row's mean cosine similarity (of centred images, i.e. Pearson correlation) to
    the other K-1 images of its neuron; rows are grouped K at a time, (R,)."""
    _, _, n = _unit_rows(u, k)
    sims = n @ n.transpose(0, 2, 1)  # (T, K, K)
    return ((sims.sum(axis=-1) - 1) / (k - 1)).reshape(-1)


def diversity_grad(u: np.ndarray, k: int) -> np.ndarray:
    """Gradient of the sum over rows of :func:`diversity_value` (each pair counted from
    both of its rows): for row i, 2/(K-1) sum_j (n_j - s_ij n_i) / |v_i|, centred."""
    _, norm, n = _unit_rows(u, k)
    sims = n @ n.transpose(0, 2, 1)
    others = n.sum(axis=1, keepdims=True) - n  # sum over j != i of n_j
    s_other = sims.sum(axis=-1, keepdims=True) - 1  # sum over j != i of s_ij
    g = 2.0 / (k - 1) * (others - s_other * n) / norm
    g -= g.mean(axis=-1, keepdims=True)  # the centring's adjoint
    return g.reshape(u.shape)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian of standard deviation ``sigma``, radius ceil(3 sigma)."""
    r = max(int(np.ceil(3 * sigma)), 1)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return k / k.sum()


def blur(u: np.ndarray, sigma: float, shape=MNIST_SHAPE) -> np.ndarray:
    """Separable Gaussian blur of each row's image with zero padding (ink near the border
    fades), per channel. A step applied every few iterations, not a gradient."""
    k = gaussian_kernel(sigma)
    r = len(k) // 2
    img = u.reshape(-1, *shape)
    pad = np.pad(img, ((0, 0), (r, r), (0, 0), (0, 0)))
    out = sum(k[i] * pad[:, i:i + shape[0]] for i in range(len(k)))
    pad = np.pad(out, ((0, 0), (0, 0), (r, r), (0, 0)))
    out = sum(k[i] * pad[:, :, i:i + shape[1]] for i in range(len(k)))
    return out.reshape(u.shape).astype(u.dtype, copy=False)
