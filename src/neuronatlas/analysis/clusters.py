"""Co-activating clusters: neurons of one layer whose activations rise and fall together.

The paper: "the activation of some nodes in the hidden layers seemed to consistently
correlate together in clusters, such that if any of them were optimised for, all the
nodes in the cluster would activate somewhat". Both halves are measured:

* over the dataset: the Pearson correlation of every pair of neurons of a layer over
  all images, then average-linkage hierarchical clustering (scipy) on the distance
  1 - r, cut at ``THRESHOLD`` (members of a cluster correlate at r >= 0.5 on average);
  neurons that never vary (silent on data) take no part;
* under optimisation: for each neuron's visualisation, the other neurons of its layer
  that reach at least ``RISE`` of the target's activation ("co-risers").
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from .activations import ActivationStore

THRESHOLD = 0.5  # cut the dendrogram at distance 1 - r = 0.5
METHOD = "average"
RISE = 0.5  # a co-riser reaches half the target's activation on the target's image


def correlation(acts: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation (n, n) of the columns of ``acts`` (N, n), streamed over rows,
    and a mask of the columns that vary at all."""
    N, n = acts.shape
    s = np.zeros(n)
    gram = np.zeros((n, n))
    for r in range(0, N, chunk):
        block = np.asarray(acts[r : r + chunk], np.float64)
        s += block.sum(axis=0)
        gram += block.T @ block  # (n,B)@(B,n) -> (n,n)
    mean = s / N
    cov = gram / N - np.outer(mean, mean)
    var = np.clip(np.diag(cov), 0, None)
    alive = var > 1e-12
    std = np.sqrt(np.where(alive, var, 1.0))
    corr = cov / np.outer(std, std)
    corr[~alive] = 0
    corr[:, ~alive] = 0
    np.fill_diagonal(corr, 1.0)
    return np.clip(corr, -1, 1), alive


def cluster_layer(acts: np.ndarray, threshold: float = THRESHOLD) -> list[list[int]]:
    """Clusters of two or more neurons, largest first (members sorted)."""
    corr, alive = correlation(acts)
    idx = np.flatnonzero(alive)
    if len(idx) < 2:
        return []
    dist = 1.0 - corr[np.ix_(idx, idx)]
    np.fill_diagonal(dist, 0.0)
    dist = (dist + dist.T) / 2
    labels = fcluster(linkage(squareform(dist, checks=False), method=METHOD),
                      t=threshold, criterion="distance")
    groups = [sorted(int(i) for i in idx[labels == c]) for c in np.unique(labels)]
    groups = [g for g in groups if len(g) > 1]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def clusters(store: ActivationStore, threshold: float = THRESHOLD) -> dict[int, list[list[int]]]:
    return {l: cluster_layer(store.layer(l), threshold) for l in store.hidden_layers}


def co_risers(layer_acts: np.ndarray, targets: np.ndarray, rise: float = RISE
              ) -> list[list[int]]:
    """For row r (the visualisation of neuron ``targets[r]``), the other neurons whose
    activation is at least ``rise`` times the target's, most active first."""
    out = []
    for row, t in zip(layer_acts, targets):
        level = row[t] * rise
        others = np.flatnonzero((row >= level) & (row > 0))
        others = others[others != t]
        out.append([int(i) for i in others[np.argsort(-row[others], kind="stable")]])
    return out
