"""When do a network's neurons take their final form? At each snapshot of its training,
every neuron's Pearson correlation with its own final self over the images, and each
layer's linear CKA to its final self (Raghu et al., NeurIPS 2017, SVCCA, found layers
settle bottom-up). A neuron has formed from the first snapshot after which its
correlation with its final self stays at least :data:`FORMED`."""

from __future__ import annotations

import numpy as np

from ..jsonnum import float_or_none, floats_to_json
from ..nn.mlp import MLP
from .comparison import hidden_activations
from .measures import correlation, cross_products, linear_cka

FORMED = 0.9


def formation_of(snapshots: list[MLP], final: MLP, images: np.ndarray) -> dict:
    """For ``snapshots`` (in step order) against ``final``: ``self_corr[l][s][i]`` (NaN
    where neuron i is constant at snapshot s or at the end), ``cka_to_final[l][s]``,
    ``formed_at[l][i]`` (the index of the snapshot from which neuron i stays at or above
    FORMED, before the end; None: never) and ``formed_median[l]`` over the neurons that
    formed."""
    x = final.check_input(images)
    end = hidden_activations(final, x)
    self_corr = [[] for _ in end]
    cka = [[] for _ in end]
    for snap in snapshots:
        p = cross_products(hidden_activations(snap, x), end, same_depth=True)
        for l in range(len(end)):
            c = correlation(p.xy[l][l], p.xx[l], p.yy[l])
            self_corr[l].append(np.diag(c))
            cka[l].append(linear_cka(p.xy[l][l], p.xx[l], p.yy[l]))
    # the last snapshot is usually the final model itself, where every live neuron has
    # r = 1: it is left out, so that "formed" means formed before the end
    last_is_final = bool(snapshots) and all(
        np.array_equal(a, b) for a, b in zip(snapshots[-1].weights + snapshots[-1].biases,
                                             final.weights + final.biases))
    formed, median = [], []
    for l in range(len(end)):
        r = np.array(self_corr[l])[: len(snapshots) - last_is_final]  # (snapshots, n)
        ok = np.nan_to_num(r, nan=-2) >= FORMED
        if not len(ok):  # nothing before the end
            formed.append([None] * r.shape[1] if r.ndim == 2 else [])
            median.append(None)
            continue
        # stays formed: every later snapshot is too (a suffix of True)
        suffix = np.flip(np.logical_and.accumulate(np.flip(ok, axis=0), axis=0), axis=0)
        first = np.where(suffix.any(axis=0), suffix.argmax(axis=0), -1)
        formed.append([int(f) if f >= 0 else None for f in first])
        done = first[first >= 0]
        median.append(float(np.median(done)) if done.size else None)
    return {"self_corr": [[floats_to_json(v) for v in layer] for layer in self_corr],
            "cka_to_final": [[float_or_none(v) for v in layer] for layer in cka],
            "formed_at": formed, "formed_median": median}
