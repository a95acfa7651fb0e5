"""Is a neuron universal across networks? The test of Gurnee et al. (TMLR 2024,
"Universal neurons in GPT2 language models"): a neuron counts when its mean best-match
correlation in the other networks exceeds, by more than 0.5, the same measure against a
randomly rotated copy of each other network's layer. The rotation keeps everything a
layer represents (linear CKA is unchanged by it) but not its basis, so the excess is what
the neurons themselves share beyond the subspace.

The rotated copy needs no new pass over the images: for centred activations Y and an
orthogonal Q, (YQ)^T X = Q^T Y^T X and (YQ)^T (YQ) = Q^T Y^T Y Q, so the null correlations
come from the same cross-products as the real ones. Only the live neurons are rotated
(a dead one stays dead), with a generator seeded from the pair, so the null is the same
on every machine.
"""

from __future__ import annotations

import numpy as np

from .measures import CrossProducts, correlation

UNIVERSAL_EXCESS = 0.5  # Gurnee et al.'s threshold
N_BOOT = 1000  # bootstrap resamples of the other networks, for the excess's interval


def random_rotation(k: int, rng: np.random.Generator) -> np.ndarray:
    """A (k, k) orthogonal matrix drawn uniformly (Haar): QR of a Gaussian, signs fixed."""
    q, r = np.linalg.qr(rng.standard_normal((k, k)))
    return q * np.sign(np.diag(r))


def best_matches(products: CrossProducts, rng: np.random.Generator) -> list[dict]:
    """Per depth, each neuron's best correlation with the other network, both ways and
    against the rotated copy: ``best_ab``, ``null_ab`` (A's neurons, shape (p,)) and
    ``best_ba``, ``null_ba`` (B's, (q,)); NaN for a dead neuron."""
    out = []
    for d in range(min(len(products.xx), len(products.yy))):
        xy, xx, yy = products.xy[d][d], products.xx[d], products.yy[d]
        corr = correlation(xy, xx, yy)
        null_ab = _null(xy, xx, yy, rng)  # B rotated
        null_ba = _null(xy.T, yy, xx, rng)  # A rotated
        live_a, live_b = np.diag(xx) > 0, np.diag(yy) > 0
        out.append({"best_ab": _row_max(corr, live_a), "best_ba": _row_max(corr.T, live_b),
                    "null_ab": _row_max(null_ab, live_a),
                    "null_ba": _row_max(null_ba, live_b)})
    return out


def _null(xy: np.ndarray, xx: np.ndarray, yy: np.ndarray, rng) -> np.ndarray:
    """Correlations of the rows' neurons with the columns' layer rotated among its live
    neurons."""
    live = np.diag(yy) > 0
    q = random_rotation(int(live.sum()), rng)
    xy_r = np.full_like(xy, 0.0)
    yy_r = np.zeros_like(yy)
    xy_r[:, live] = xy[:, live] @ q  # (p,k)@(k,k)
    yy_r[np.ix_(live, live)] = q.T @ yy[np.ix_(live, live)] @ q
    return correlation(xy_r, xx, yy_r)


def _row_max(corr: np.ndarray, live: np.ndarray) -> np.ndarray:
    """Each live row's largest correlation over the live columns (0 when the other layer
    has none: no partner); NaN for a dead row."""
    out = np.full(len(corr), np.nan)
    out[live] = 0.0
    has = live & ~np.all(np.isnan(corr), axis=1) if corr.shape[1] else np.zeros_like(live)
    out[has] = np.nanmax(corr[has], axis=1)
    return out


def universality(best: np.ndarray, null: np.ndarray, rng: np.random.Generator,
                 n_boot: int = N_BOOT) -> dict[str, np.ndarray]:
    """Per neuron of one network's layer, from its best-match correlations in each other
    network (``best``, (others, n)) and against their rotated copies (``null``): the mean
    of each, the excess, its 95% bootstrap interval over the other networks (NaN with one
    other network: nothing to resample), and whether
    the neuron is universal (excess > :data:`UNIVERSAL_EXCESS`; False for a dead one)."""
    best, null = np.asarray(best, np.float64), np.asarray(null, np.float64)
    diff = best - null  # (others, n)
    with np.errstate(invalid="ignore"):
        mean_best, mean_null = best.mean(axis=0), null.mean(axis=0)
        excess = diff.mean(axis=0)
        if len(diff) < 2:  # one other network: no spread to resample
            lo = hi = np.full(diff.shape[1], np.nan)
        else:
            boot = np.empty((n_boot, diff.shape[1]))
            for b in range(n_boot):  # one resample at a time: memory n, not n_boot x others x n
                boot[b] = diff[rng.integers(0, len(diff), len(diff))].mean(axis=0)
            lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    return {"best": mean_best, "null": mean_null, "excess": excess, "excess_lo": lo,
            "excess_hi": hi, "universal": np.nan_to_num(excess, nan=-1) > UNIVERSAL_EXCESS}


def pair_seed(key: str) -> np.random.Generator:
    """The generator of a pair's null, from the comparison task's key."""
    return np.random.default_rng(int(key.rsplit("-", 1)[-1][:16], 16))
