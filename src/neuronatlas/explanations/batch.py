"""Every neuron of a network explained at once, for the atlas: the numbers of
:func:`.neuron.explain` for all neurons of a layer in a few batched passes (float32, as
the atlas shows them; :func:`.neuron.explain` is the readable float64 form, and the tests
hold the two together).

Per layer of n neurons, with K top images each (rows ``(neuron, image)``, n*K of them):

* the incoming contributions: the K images' mean activations of the layer below, times
  the weight rows (Appendix item 1: z = W a + b), the :data:`INCOMING` largest kept;
* the filter: one backward pass of the n*K rows from z down to the pixels (Appendix
  item 2), averaged over each neuron's K images;
* the output votes: one forward-mode pass of the n*K rows from the neuron's activation
  up to the logits (the tangent e_i through W and f'(z) of every layer above);
* the ablation: for each neuron, the images of the fixed test set on which it is not 0,
  run on from its layer with it set to 0 (a rank-one change of the next pre-activation);
  an image on which it is already 0 changes nothing, so it is not run again.

The functions take arrays (the activation store's layers, the pictures) and return
arrays; :mod:`.store` keeps them in the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ..analysis.examples import top_k
from ..data import Dataset
from ..nn import functional as F
from ..nn.mlp import MLP
from ..vis import quality as Q
from .neuron import ABLATION_IMAGES, TOP_CLASSES, K, log_softmax_on

INCOMING = 8  # sources per neuron the atlas keeps (the largest |contribution| first)
ROWS = 4096  # (neuron, image) rows per batch


@dataclass
class LayerExplanation:
    """One layer's explanations, one row per neuron (the names of docs/explain.md)."""

    images: np.ndarray  # (n, K) int64: top images, rows into train-then-test
    incoming_index: np.ndarray  # (n, INCOMING) int64: sources (neurons below, or pixels)
    incoming_weight: np.ndarray  # (n, INCOMING) float32
    incoming_contribution: np.ndarray  # (n, INCOMING) float32
    bias: np.ndarray  # (n,) float32
    mean_pre_activation: np.ndarray  # (n,) float32: all contributions plus the bias
    filter: np.ndarray  # (n, D) float32
    effect: np.ndarray  # (n, C) float32 (NaN for the output layer)
    ablation: np.ndarray  # (n, C) float32 (NaN for the output layer)
    accuracy_change: np.ndarray  # (n,) float32 (NaN for the output layer)
    classes: np.ndarray  # (n, C) int64: classes of the top TOP_CLASSES images
    selectivity: np.ndarray  # (n,) float32
    sparsity: np.ndarray  # (n,) float32
    picture_activation: np.ndarray  # (n,) float32
    reach: np.ndarray  # (n,) float32 (NaN: never active on the training set)
    two_choice: np.ndarray  # (n,) float32 (NaN: no clear strong test images)
    class_agreement: np.ndarray  # (n,) float32: 1 or 0
    picture_class: np.ndarray  # (n,) int64: the class the network reads the picture as

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def explain_layer(model: MLP, l: int, data: Dataset, acts: np.ndarray, below: np.ndarray,
                  labels: np.ndarray, pictures: np.ndarray, ablation_acts: np.ndarray,
                  seed: int = 0) -> LayerExplanation:
    """Layer ``l``'s explanations. ``acts``: its activations on every image (train then
    test, (N, n)); ``below``: the layer below's (the pixels for layer 1, which are not
    needed: pass None); ``labels``: every image's class; ``pictures`` (n, D): each neuron's
    picture; ``ablation_acts``: its activations on the first ABLATION_IMAGES test images."""
    n_train = len(data.train_x)
    n_classes = model.sizes[-1]
    k = min(max(K, TOP_CLASSES), len(acts))
    top = np.concatenate([top_k(np.ascontiguousarray(acts[:, s:s + 256]), k)[0]
                          for s in range(0, acts.shape[1], 256)])  # columns in chunks
    images = top[:, :K]
    classes = np.zeros((len(top), n_classes), np.int64)
    np.add.at(classes, (np.repeat(np.arange(len(top)), min(TOP_CLASSES, top.shape[1])),
                        labels[top[:, :TOP_CLASSES]].ravel()), 1)
    floor = model.activation_fns[l - 1].floor if l < model.n_layers else 0.0
    inc = _incoming(model, l, data, images, below)
    flt, effect = _gradients(model, l, data, images)
    if l < model.n_layers:
        n = len(ablation_acts)
        abl, acc = _ablation(model, l, ablation_acts, data.test_y[:n])
    else:
        effect = abl = np.full((len(top), n_classes), np.nan, np.float32)
        acc = np.full(len(top), np.nan, np.float32)
    trust = _trust(model, l, pictures, acts[:n_train].max(axis=0), classes.argmax(axis=1),
                   acts[n_train:], data.test_x, seed)
    return LayerExplanation(images=images, **inc, filter=flt, effect=effect, ablation=abl,
                            accuracy_change=acc, classes=classes,
                            selectivity=(classes.max(1) / classes.sum(1)).astype(np.float32),
                            sparsity=_share_above(acts, floor), **trust)


def _share_above(acts: np.ndarray, floor: float, chunk: int = 256) -> np.ndarray:
    """Each column's share of values above ``floor``, a block of columns at a time."""
    return np.concatenate([np.mean(acts[:, s:s + chunk] > floor, axis=0)
                           for s in range(0, acts.shape[1], chunk)]).astype(np.float32)


def _incoming(model: MLP, l: int, data: Dataset, images: np.ndarray,
              below: np.ndarray | None) -> dict[str, np.ndarray]:
    """Each neuron's mean input over its images times its weights, the largest kept."""
    W, b = model.weights[l - 1], model.biases[l - 1]
    n = len(images)
    mean_in = np.empty((n, W.shape[1]), np.float64)
    for s in range(0, n, 256):
        rows = images[s:s + 256]
        src = data.rows(rows) if l == 1 else below[rows.ravel()].reshape(*rows.shape, -1)
        mean_in[s:s + 256] = src.astype(np.float64).mean(axis=1)
    contrib = W.astype(np.float64) * mean_in  # (n, in)
    m = min(INCOMING, W.shape[1])
    order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :m]
    take = lambda a: np.take_along_axis(a, order, axis=1).astype(np.float32)  # noqa: E731
    return {"incoming_index": order.astype(np.int64), "incoming_weight": take(W),
            "incoming_contribution": take(contrib), "bias": b.astype(np.float32),
            "mean_pre_activation": (contrib.sum(axis=1) + b).astype(np.float32)}


def _gradients(model: MLP, l: int, data: Dataset, images: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Each neuron's input filter (the mean dz/dx over its images; the weight row for
    layer 1) and output effect (the mean d logit / d a over its images; (n, C))."""
    L, dt = model.n_layers, model.dtype
    n, k = images.shape
    flt = np.zeros((n, model.sizes[0]), np.float64)
    effect = np.zeros((n, model.sizes[-1]), np.float64)
    per = max(1, ROWS // k)  # neurons per batch
    for s in range(0, n, per):
        idx = np.arange(s, min(s + per, n))
        who = np.repeat(idx, k)  # the neuron of each row
        t = model.trace(data.rows(images[idx].ravel()).astype(dt))
        if l > 1:  # dz/dx: from the weight row down (Appendix item 2)
            g = model.weights[l - 1][who]
            for m in range(l - 1, 0, -1):
                g = model.activation_fns[m - 1].backward(g, t.z[m - 1], t.a[m - 1])
                g = g @ model.weights[m - 1]  # (R,n_m)@(n_m,n_{m-1}) -> (R,n_{m-1})
            flt[idx] = g.reshape(len(idx), k, -1).mean(axis=1, dtype=np.float64)
        if l < L:  # d logit / d a_i, forward mode: the tangent e_i through the layers above
            v = model.weights[l][:, who].T  # (R, n_{l+1}): dz_{l+1}/da_i
            for m in range(l + 1, L):
                v = model.activation_fns[m - 1].backward(v, t.z[m - 1], t.a[m - 1])
                v = v @ model.weights[m].T  # (R,n_m)@(n_m,n_{m+1}) -> (R,n_{m+1})
            effect[idx] = v.reshape(len(idx), k, -1).mean(axis=1, dtype=np.float64)
    if l == 1:
        flt = model.weights[0].astype(np.float64)
    return flt.astype(np.float32), effect.astype(np.float32)


def _ablation(model: MLP, l: int, a: np.ndarray, labels: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """For each neuron of hidden layer l, with activations ``a`` (N, n) on N test images:
    the change of each class's mean log-probability and of the accuracy when it is 0."""
    N, n = a.shape
    a = np.asarray(a, model.dtype)
    W = model.weights[l]  # (n_{l+1}, n)
    z_next = F.linear_forward(a, W, model.biases[l])  # (N, n_{l+1})
    base = log_softmax_on(model, l + 1, z_next)  # (N, C)
    base_right = base.argmax(1) == labels
    d_logp = np.zeros((n, base.shape[1]), np.float64)
    d_right = np.zeros(n, np.int64)
    img, who = np.nonzero(a)  # the (image, neuron) pairs where setting it to 0 changes a
    for s in range(0, len(img), ROWS):
        i, j = img[s:s + ROWS], who[s:s + ROWS]
        z = z_next[i] - a[i, j, None] * W[:, j].T  # (R, n_{l+1}): without neuron j
        logp = log_softmax_on(model, l + 1, z)
        np.add.at(d_logp, j, logp - base[i])
        np.add.at(d_right, j, (logp.argmax(1) == labels[i]).astype(np.int64)
                  - base_right[i])
    return (d_logp / N).astype(np.float32), (d_right / N).astype(np.float32)


def _trust(model: MLP, l: int, pictures: np.ndarray, train_max: np.ndarray,
           top_class: np.ndarray, test_acts: np.ndarray, test_x: np.ndarray, seed: int
           ) -> dict[str, np.ndarray]:
    """The trust numbers of :func:`.neuron.trust`, for every neuron of layer l."""
    x = np.asarray(pictures, model.dtype)
    t = model.trace(x)
    n = len(x)
    got = t.a[l - 1][np.arange(n), np.arange(n)]  # picture i's activation of neuron i
    read = t.a[-1].argmax(axis=1)
    strong = np.full((n, 100), -1)
    mid = np.full((n, 100), -1)
    for i in range(n):  # each neuron's pairs from its own generator, as explain draws them
        strong[i:i + 1], mid[i:i + 1] = Q.two_choice_pairs(
            test_acts[:, [i]], np.random.default_rng([seed, l, i]))
    live = train_max > 0
    reach = np.divide(got, train_max, out=np.full(n, np.nan), where=live)
    return {"picture_activation": got.astype(np.float32), "reach": reach.astype(np.float32),
            "two_choice": Q.two_choice(x, test_x, strong, mid).astype(np.float32),
            "class_agreement": (read == top_class).astype(np.float32),
            "picture_class": read.astype(np.int64)}


def explain_all(model: MLP, data: Dataset, layer_acts, pictures: dict[int, np.ndarray],
                labels: np.ndarray, progress=None) -> dict[int, LayerExplanation]:
    """Every layer explained: ``layer_acts(l)`` gives layer l's activations on every
    image (train then test; the activation store's :meth:`layer`), ``pictures[l]`` the
    layer's pictures in neuron order."""
    n_train = len(data.train_x)
    n_abl = min(ABLATION_IMAGES, len(data.test_x))
    out = {}
    for l in range(1, model.n_layers + 1):
        acts = np.asarray(layer_acts(l))
        below = None if l == 1 else layer_acts(l - 1)
        out[l] = explain_layer(model, l, data, acts, below, labels, pictures[l],
                               acts[n_train:n_train + n_abl])
        if progress:
            progress(l, model.n_layers)
    return out
