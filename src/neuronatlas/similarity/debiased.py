"""Debiased linear CKA, from the unbiased estimator of HSIC (Song, Smola, Gretton, Bedo &
Borgwardt, JMLR 2012), and a permutation test of it.

Linear CKA is biased upwards when the images are few beside the neurons (two random
layers of 1,000 neurons on 100 images have a CKA far from 0); the unbiased HSIC with
linear kernels K = XX^T, L = YY^T (diagonals zeroed: K~, L~) is

    HSIC_u = [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3))

and debiased CKA = HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L)). Every term has a
feature-space form (tr(KL) = ||X^T Y||_F^2, K1 = X X^T 1, diag K = the rows' squared
norms), so no n x n matrix is made. The permutation test shuffles the images of one layer
against the other: the p-value is the share of shuffles whose debiased CKA is at least the
observed one (counting the observed, so it is never 0).
"""

from __future__ import annotations

import numpy as np

N_PERMUTATIONS = 100
PERMUTATION_IMAGES = 1000  # the test's images: the first this many


def debiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased linear CKA of activations ``x`` (n, p) and ``y`` (n, q); NaN when either
    layer is constant, its unbiased HSIC is not positive, or n < 4."""
    if len(x) < 4:  # the estimator divides by n - 3
        return float("nan")
    # centred first (the estimator is shift-invariant; centring keeps its terms small)
    x = np.asarray(x, np.float64) - np.mean(x, axis=0, dtype=np.float64)
    y = np.asarray(y, np.float64) - np.mean(y, axis=0, dtype=np.float64)
    if not np.any(x) or not np.any(y):  # a constant layer
        return float("nan")
    kx, ky = _kernel_terms(x), _kernel_terms(y)
    xy = x.T @ y  # (p,n)@(n,q) -> (p,q)
    hxy = _hsic(np.sum(xy * xy), kx, ky, len(x))
    hxx = _hsic(kx["tr"], kx, kx, len(x))
    hyy = _hsic(ky["tr"], ky, ky, len(x))
    return float(hxy / np.sqrt(hxx * hyy)) if hxx > 0 and hyy > 0 else float("nan")


def _kernel_terms(x: np.ndarray) -> dict:
    """What the estimator needs of K = XX^T: diag K, K~1, 1'K~1 and tr(KK)."""
    diag = np.einsum("ij,ij->i", x, x)  # (n,)
    ones = x @ x.sum(axis=0) - diag  # K~1: (n,p)@(p,) -> (n,)
    gram = x.T @ x  # (p,n)@(n,p) -> (p,p)
    return {"diag": diag, "row": ones, "sum": float(ones.sum()), "tr": float(np.sum(gram * gram))}


def _hsic(tr_kl: float, k: dict, l: dict, n: int) -> float:
    tr = tr_kl - float(k["diag"] @ l["diag"])  # tr(K~L~)
    return (tr + k["sum"] * l["sum"] / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * float(k["row"] @ l["row"])) / (n * (n - 3))


def permutation_p(x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                  n_permutations: int = N_PERMUTATIONS,
                  images: int = PERMUTATION_IMAGES) -> tuple[float, float]:
    """(debiased CKA on the first ``images`` images, its permutation p-value)."""
    x, y = np.asarray(x[:images], np.float64), np.asarray(y[:images], np.float64)
    observed = debiased_cka(x, y)
    if not np.isfinite(observed):
        return observed, float("nan")
    hits = sum(debiased_cka(x, y[rng.permutation(len(y))]) >= observed
               for _ in range(n_permutations))
    return observed, (1 + hits) / (1 + n_permutations)
