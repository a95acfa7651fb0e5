"""How far to trust a visualisation: the readability measures (docs/vis_quality.md), each a
function of images and numbers (``benchmarks/vis_quality.py`` runs them per method and
layer; the report shows its table).

* :func:`transfer`: do models that never saw the visualised network read an output
  neuron's picture as its class? (hits and the mean probability of the class)
* :func:`reached`: the activation a picture reaches, against the neuron's dataset maximum.
* :func:`highfreq_share` and :func:`total_variation`: artefacts (the checkerboard).
* :func:`stability`: how alike the pictures from different seeds are.
* :func:`two_choice`: a machine version of the two-choice test of Borowski et al. (ICLR
  2021): given a strongly and a moderately activating held-out image, does similarity to
  the picture pick the strong one?
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .display import stretch as stretch_one
from .regularizers import tv_value

#: max(|fy|, |fx|) above which a frequency counts as "highest": the outer band of the
#: spectrum, where a 1-pixel checkerboard (|f| = 0.5 on an axis) puts its energy
HIGH_FREQUENCY = 0.35


def stretch(images: np.ndarray) -> np.ndarray:
    """Each image mapped linearly from its own [min, max] to [0, 1] (as the atlas and the
    PNGs show them); a constant image becomes 0."""
    return np.stack([stretch_one(x)[0] for x in np.asarray(images, np.float64)])


def transfer(judges: Sequence[Callable[[np.ndarray], np.ndarray]], images: np.ndarray,
             classes: np.ndarray) -> list[dict]:
    """For each judge (images (N, D) -> probabilities (N, n_classes)): how many of the
    contrast-stretched ``images`` it reads as their ``classes``, and the mean probability
    it gives those classes."""
    x = stretch(images)
    classes = np.asarray(classes)
    out = []
    for judge in judges:
        p = judge(x)
        out.append({"hits": int((p.argmax(axis=1) == classes).sum()), "of": len(classes),
                    "probability": float(p[np.arange(len(classes)), classes].mean())})
    return out


def reached(activation: np.ndarray, data_max: np.ndarray) -> dict:
    """The activation reached as a fraction of the neuron's dataset maximum: the median
    fraction and the share of neurons at or above the maximum (neurons silent on all of
    the data are left out)."""
    a, m = np.asarray(activation, np.float64), np.asarray(data_max, np.float64)
    live = m > 0
    frac = a[live] / m[live]
    return {"median_fraction": float(np.median(frac)) if frac.size else float("nan"),
            "share_at_max": float(np.mean(frac >= 1)) if frac.size else float("nan"),
            "neurons": int(live.sum())}


def highfreq_share(images: np.ndarray, shape) -> np.ndarray:
    """Per image, the share of its spectral energy (mean removed) in the outer band
    max(|fy|, |fx|) > :data:`HIGH_FREQUENCY`: near 0 for strokes, high for a checkerboard."""
    x = np.asarray(images, np.float64).reshape(-1, *shape)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.rfft2(x, axes=(1, 2))) ** 2
    h, w = shape[:2]
    fy = np.abs(np.fft.fftfreq(h))[:, None]
    fx = np.abs(np.fft.rfftfreq(w))[None, :]
    cols = np.full(w // 2 + 1, 2.0)  # the half spectrum: mirrored columns count twice
    cols[0] = 1.0
    if w % 2 == 0:
        cols[-1] = 1.0
    power = power * cols[None, None, :, None]
    high = (np.maximum(fy, fx) > HIGH_FREQUENCY)[None, :, :, None]
    total = power.sum(axis=(1, 2, 3))
    return np.divide((power * high).sum(axis=(1, 2, 3)), total, out=np.zeros_like(total),
                     where=total > 0)


def total_variation(images: np.ndarray, shape) -> np.ndarray:
    """The paper's total variation (zero-padded, beta = 1) of each image."""
    return tv_value(np.asarray(images, np.float64), shape)


def _centred_units(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def mean_correlation(images: np.ndarray) -> float:
    """Mean Pearson correlation over every pair of ``images`` (K, D); a pair where either
    image is constant counts as 1 when both are equal, else 0."""
    x = np.asarray(images, np.float64)
    k = len(x)
    if k < 2:
        return 1.0
    u = _centred_units(x)
    sims = u @ u.T
    flat = np.ptp(x, axis=1) == 0
    for i in range(k):
        for j in range(k):
            if flat[i] or flat[j]:
                sims[i, j] = float(np.array_equal(x[i], x[j]))
    return float((sims.sum() - np.trace(sims)) / (k * (k - 1)))


def stability(images_by_seed: np.ndarray) -> np.ndarray:
    """(S, T, D) images of T neurons from S seeds -> each neuron's mean correlation."""
    x = np.asarray(images_by_seed)
    return np.array([mean_correlation(x[:, t]) for t in range(x.shape[1])])


def correlate(queries: np.ndarray, images: np.ndarray) -> np.ndarray:
    """Pearson correlation of each query (T, D) with each image (..., D): (T, ...)."""
    q, u = _centred_units(queries), _centred_units(images)
    return np.einsum("td,t...d->t...", q, u) if u.ndim == 3 else q @ u.T


def two_choice_pairs(acts: np.ndarray, rng: np.random.Generator, pairs: int = 100,
                     top: float = 0.05, middle: tuple[float, float] = (0.4, 0.6)):
    """For each neuron (column of ``acts``, its activations on held-out images): ``pairs``
    (strong, middle) image indices, strong from its top ``top`` share, middle from the
    ``middle`` quantile band. Neurons whose bands overlap (constant, e.g. silent) get -1."""
    n_img, n = acts.shape
    order = np.argsort(acts, axis=0, kind="stable")
    n_top = max(round(top * n_img), 1)
    lo, hi = int(middle[0] * n_img), int(middle[1] * n_img)
    strong = np.full((n, pairs), -1)
    mid = np.full((n, pairs), -1)
    for j in range(n):
        top_idx, mid_idx = order[-n_top:, j], order[lo:hi, j]
        if acts[top_idx, j].min() <= acts[mid_idx, j].max():
            continue  # no clear stronger image: the question has no answer
        strong[j] = rng.choice(top_idx, pairs)
        mid[j] = rng.choice(mid_idx, pairs)
    return strong, mid


def two_choice(queries: np.ndarray, test_images: np.ndarray, strong: np.ndarray,
               mid: np.ndarray) -> np.ndarray:
    """Per neuron, the share of pairs where the strong image is more similar (Pearson) to
    the neuron's query than the middle one; ``queries`` (T, D) or (T, Q, D), whose mean
    similarity counts (the "natural" condition queries with the top-9 dataset images).
    NaN for neurons without pairs."""
    q = np.asarray(queries, np.float64)
    if q.ndim == 2:
        q = q[:, None, :]
    qu = _centred_units(q)  # (T, Q, D)
    test = _centred_units(test_images)  # (N, D)
    out = np.full(len(q), np.nan)
    for t in range(len(q)):
        if strong[t, 0] < 0:
            continue
        s = (test[strong[t]] @ qu[t].T).mean(axis=1)  # mean similarity to the queries
        m = (test[mid[t]] @ qu[t].T).mean(axis=1)
        out[t] = np.mean(s > m) + 0.5 * np.mean(s == m)
    return out
