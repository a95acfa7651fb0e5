"""The similarity of two sets of neuron activations over the same images: every
neuron's Pearson correlation with every other's, and linear CKA.

Linear CKA (Kornblith, Norouzi, Lee & Hinton, ICML 2019) of activations X (n x p) and
Y (n x q), columns centred: CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F).
Both measures need only the centred cross-products X^T Y, X^T X and Y^T Y, which
:func:`cross_products` accumulates over blocks of images (float32 GEMMs, summed in
float64), so memory is the activations and the products, never an n x n Gram matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 2048  # images per GEMM


@dataclass
class CrossProducts:
    """Centred products of two networks' hidden layers over the same n images.

    ``xy[i][j]`` is X_i^T Y_j for layer i of A and layer j of B (float64), ``xx[i]`` and
    ``yy[j]`` each layer's own X_i^T X_i; the diagonals are n times the variances.
    """

    n: int
    xy: list[list[np.ndarray]]
    xx: list[np.ndarray]
    yy: list[np.ndarray]


def cross_products(a_layers: list[np.ndarray], b_layers: list[np.ndarray],
                   block: int = BLOCK, same_depth: bool = False) -> CrossProducts:
    """:class:`CrossProducts` of ``a_layers`` (each (n, p_i)) and ``b_layers`` ((n, q_j)).
    Columns are centred on their float64 means; each block of images is one float32 GEMM
    per pair, added into float64 sums. ``same_depth``: only the pairs i == j (the others
    are left at zero), for a comparison that needs no CKA matrix."""
    n = len(a_layers[0])
    mean_a = [x.mean(axis=0, dtype=np.float64) for x in a_layers]
    mean_b = [y.mean(axis=0, dtype=np.float64) for y in b_layers]
    xy = [[np.zeros((x.shape[1], y.shape[1])) for y in b_layers] for x in a_layers]
    xx = [np.zeros((x.shape[1],) * 2) for x in a_layers]
    yy = [np.zeros((y.shape[1],) * 2) for y in b_layers]
    for s in range(0, n, block):
        xs = [(x[s:s + block] - m).astype(np.float32) for x, m in zip(a_layers, mean_a)]
        ys = [(y[s:s + block] - m).astype(np.float32) for y, m in zip(b_layers, mean_b)]
        for i, x in enumerate(xs):
            xx[i] += x.T @ x  # (p,b)@(b,p) -> (p,p)
            for j, y in enumerate(ys):
                if i == j or not same_depth:
                    xy[i][j] += x.T @ y  # (p,b)@(b,q) -> (p,q)
        for j, y in enumerate(ys):
            yy[j] += y.T @ y
    return CrossProducts(n, xy, xx, yy)


def correlation(xy: np.ndarray, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Pearson correlations (p, q) from centred products; NaN in the rows and columns of
    a constant neuron (zero variance: no correlation)."""
    va, vb = np.diag(xx).copy(), np.diag(yy).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        r = xy / np.sqrt(np.outer(va, vb))
    r[va <= 0] = np.nan
    r[:, vb <= 0] = np.nan
    return np.clip(r, -1.0, 1.0)


def linear_cka(xy: np.ndarray, xx: np.ndarray, yy: np.ndarray) -> float:
    """Linear CKA from centred products; NaN when either layer is constant."""
    den = np.linalg.norm(xx) * np.linalg.norm(yy)
    # at most 1 (Cauchy-Schwarz): a layer against itself rounds to 1 + 1e-8, shown as 1
    return min(float(np.sum(xy * xy) / den), 1.0) if den > 0 else float("nan")


def cka_matrix(products: CrossProducts) -> np.ndarray:
    """Linear CKA of every hidden layer of A (rows) against every one of B (columns)."""
    return np.array([[linear_cka(products.xy[i][j], products.xx[i], products.yy[j])
                      for j in range(len(products.yy))] for i in range(len(products.xx))])
