"""Prototypes of a training set, the start of the ``readable`` pictures (``init="prototype"``).

The prototypes are the :data:`K` centres of k-means (Lloyd's algorithm, :data:`ITERS`
rounds from K training images drawn with a fixed seed) over the *whole* training set: a
global statistic, a mixture model of the data, that knows nothing of any one neuron. A
neuron's picture starts at the prototypes on which its objective is highest (z for a hidden
neuron, the log-probability for an output) and is then optimised with a tie to it (feature
accentuation, Hamblin et al. 2024), so it shows what in a typical digit drives the neuron,
in a form the network and people read as a digit. Measured on the paper's network
(docs/vis_quality.md): the network reads such pictures as the class of the neuron's top
images far more often than pictures grown from a blank canvas.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ..errors import ConfigError
from ..nn import functional as F

K = 512  # prototypes: 256 put 83-88% of tuned neurons' pictures in their class, 512 85-96%
ITERS = 15  # Lloyd rounds: the assignments have all but settled
SEED = 0
BLEND = 9  # a start blends the target's 9 best prototypes: one prototype's pictures
# lost the two-choice test to the neuron's top 9 images (0.86 / 0.88 / 0.87 against 0.89 /
# 0.93 / 0.89 in layers 3 / 5 / 7 of the tuning neurons), the mean of 9 won it (0.90 / 0.94
# / 0.91); 3 and 5 fell between
TEMPERATURE = 0.5  # the blend's weights: exp((z_j - z_best) / (0.5 * std of z over all
# prototypes)), so the best prototypes count most. Tuned on a second network (seed 1, every
# neuron of layers 1-7): against the plain mean, class agreement rose by 0-5 points in each
# layer (layers 1-7: 82 / 86 / 87 / 86 / 89 / 96 / 93% against 77 / 81 / 83 / 86 / 87 / 96 /
# 93%) and the two-choice test stayed above the natural references'; 0.4 read alike with a
# thinner two-choice margin, 1.0 fell halfway back to the mean
VERSION = 1  # of the algorithm: a cached file of another version is computed again
_MEMO: dict[tuple[str, int], np.ndarray] = {}  # per process: (dataset sha256, K) -> centres


def kmeans(images: np.ndarray, k: int = K, iters: int = ITERS, seed: int = SEED,
           chunk: int = 8192) -> np.ndarray:
    """(k, D) float32 centres of ``images`` (N, D) by Lloyd's algorithm from k distinct
    images drawn with ``seed``; a centre that loses every image keeps its place."""
    x = np.asarray(images, np.float32)
    n = len(x)
    if not 1 <= k <= n:
        raise ConfigError(f"{k} prototypes need at least {k} training images, got {n}")
    c = x[np.sort(np.random.default_rng(seed).choice(n, k, replace=False))].copy()
    for _ in range(iters):
        label = np.empty(n, np.int64)
        c2 = np.einsum("kd,kd->k", c, c)
        for s in range(0, n, chunk):  # squared distance, without the constant |x|^2
            d = c2[None, :] - 2 * (x[s:s + chunk] @ c.T)  # (B,D)@(D,k) -> (B,k)
            label[s:s + chunk] = d.argmin(axis=1)
        counts = np.bincount(label, minlength=k)
        member = sparse.csr_matrix((np.ones(n, np.float64), (label, np.arange(n))),
                                   shape=(k, n))
        sums = member @ x  # (k,N)@(N,D) -> (k,D): each centre's images summed
        moved = counts > 0
        c[moved] = (sums[moved] / counts[moved, None]).astype(np.float32)
    return c


def prototype_settings() -> str:
    """Every setting the prototypes and their blends depend on, as one text (for keys)."""
    return (f"k={K} iters={ITERS} seed={SEED} blend={BLEND} temperature={TEMPERATURE} "
            f"version={VERSION}")


def data_prototypes(data, k: int = K) -> np.ndarray:
    """The ``k`` prototypes of ``data``'s training images (a Dataset; one per image when it
    has fewer than ``k``, which are then the images themselves): computed once (about 7 s
    for MNIST) and kept in the data cache as ``prototypes/<dataset sha256>-k<k>.npz``,
    keyed by the dataset's content hash and every setting of :func:`kmeans` (a file with
    another key, or a damaged one, is computed again); in memory for the process."""
    return image_prototypes(data.train_x, data.identity["sha256"], k)


def image_prototypes(images: np.ndarray, sha: str, k: int = K) -> np.ndarray:
    """:func:`data_prototypes` of training ``images`` whose content hash is ``sha``."""
    from ..data.fetch import default_cache_dir
    from ..stages import read_keyed, write_keyed

    k = min(k, len(images))
    if (sha, k) in _MEMO:
        return _MEMO[(sha, k)]
    key = {"dataset_sha256": np.array(sha), "k": np.array(k), "iters": np.array(ITERS),
           "seed": np.array(SEED), "version": np.array(VERSION)}
    path = default_cache_dir() / "prototypes" / f"{sha[:16]}-k{k}.npz"
    got = read_keyed(path, key, ("centres",))
    centres = None if got is None else got["centres"]
    shape = (k, images.shape[1])
    if centres is None or centres.shape != shape or not np.isfinite(centres).all():
        centres = kmeans(images, k)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_keyed(path, key, {"centres": centres})
        except OSError:
            pass  # a read-only cache: computed again next time, never wrong
    _MEMO[(sha, k)] = centres
    return centres


def best_prototypes(model, targets, prototypes: np.ndarray, k: int = 1,
                    blend: int = BLEND, temperature: float = TEMPERATURE) -> np.ndarray:
    """For each (layer, neuron) target, ``k`` starts, best first: start j blends the
    prototypes ranked j*blend .. (j+1)*blend - 1 by the target's pre-activation z (its
    log-probability for an output), each weighted by exp((z - z_first) / (temperature * s))
    with s the std of the target's z over every prototype (equal weights where z does not
    vary); with fewer than k*blend prototypes, blends of as many as there are for each of
    the k. (T, k, D)."""
    p = np.asarray(prototypes, model.dtype)
    if p.ndim != 2 or p.shape[1] != model.sizes[0] or not np.isfinite(p).all():
        raise ConfigError(f"prototypes must be finite (k, {model.sizes[0]}) images, got "
                          f"shape {p.shape}")
    if len(p) < k:
        raise ConfigError(f"{k} pictures per neuron need at least {k} prototypes, got "
                          f"{len(p)}")
    if not temperature > 0:
        raise ConfigError(f"the blend's temperature must be > 0, got {temperature}")
    blend = min(blend, len(p) // k)
    # z in float64: the weights are smooth in z, so float32's GEMM rounding, which differs
    # with the BLAS's thread count (a Dask worker has one thread), would reach the start's
    # last bits; float64's 1e-16 almost never changes a float32 pixel
    m64 = model if model.dtype == np.float64 else model.astype(np.float64)
    z = m64.activations(p.astype(np.float64), pre=True)
    z[model.n_layers] = F.log_softmax(z[model.n_layers])  # an output: its log-probability
    zt = np.stack([z[l][:, i] for l, i in targets])  # (T, P)
    ranked = np.argsort(-zt, axis=1, kind="stable")[:, :k * blend]
    scale = temperature * zt.std(axis=1)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, np.inf)  # flat z: equal weights
    zr = np.take_along_axis(zt, ranked, axis=1).reshape(len(targets), k, blend)
    w = np.exp((zr - zr[:, :, :1]) / scale[:, None, None])
    w /= w.sum(axis=2, keepdims=True)
    chosen = p[ranked].reshape(len(targets), k, blend, -1)
    starts = np.zeros(chosen.shape[:2] + chosen.shape[3:])
    for j in range(blend):  # one fixed order of sums: a start never depends on its batch
        starts += w[:, :, j, None] * chosen[:, :, j]
    return starts.astype(model.dtype)
