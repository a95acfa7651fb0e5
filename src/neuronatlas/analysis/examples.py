"""Dataset examples: for every neuron, the MNIST images that drive it most.

Per neuron: the top-k images over both splits (row indices into train-then-test and
their activations), the class histogram of those k, the average of the k images,
and the average of every image at or above the neuron's 99th percentile (the paper's
Figure 3 shows "the average of all MNIST images which highly activate that node").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import Dataset
from ..errors import ConfigError
from ..fileio import atomic_write_npz
from .activations import ActivationStore, dataset_labels


@dataclass
class LayerExamples:
    index: np.ndarray  # (n, k) int64 rows into train-then-test, most active first
    activation: np.ndarray  # (n, k) float32
    histogram: np.ndarray  # (n, classes) int64: classes of the top-k
    mean_topk: np.ndarray  # (n, n_inputs) float32
    mean_p99: np.ndarray  # (n, n_inputs) float32: images at or above the 99th percentile (and > 0)
    count_p99: np.ndarray  # (n,) int64
    p99: np.ndarray  # (n,) float32

    @property
    def preferred_class(self) -> np.ndarray:
        return self.histogram.argmax(axis=1)

    @property
    def purity(self) -> np.ndarray:
        """Share of the top-k that belong to the most common class."""
        return self.histogram.max(axis=1) / self.index.shape[1]


def check_k(k: int, n_images: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_images:
        raise ConfigError(f"k must be an integer in 1..{n_images}, got {k!r}")


def top_k(acts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the k largest values of every column of ``acts`` (N, m), most active
    first, and those values: two (m, k) arrays."""
    N = len(acts)
    top = np.argpartition(acts, N - k, axis=0)[N - k :]  # (k, m), unordered
    vals = np.take_along_axis(acts, top, axis=0)
    order = np.argsort(-vals, axis=0, kind="stable")
    top = np.take_along_axis(top, order, axis=0).T  # (m, k)
    return top, np.take_along_axis(acts, top.T, axis=0).T


def layer_examples(acts: np.ndarray, data: Dataset, labels: np.ndarray, k: int,
                   classes: int, chunk: int = 256, floor: float = 0.0) -> LayerExamples:
    """Top-k and averages for every column of ``acts`` (N, n; rows are train-then-test
    images of ``data``), processed in column chunks."""
    N, n = acts.shape
    check_k(k, N)
    D = data.n_inputs
    n_train = len(data.train_x)
    out = LayerExamples(np.empty((n, k), np.int64), np.empty((n, k), np.float32),
                        np.zeros((n, classes), np.int64), np.empty((n, D), np.float32),
                        np.zeros((n, D), np.float32), np.zeros(n, np.int64),
                        np.empty(n, np.float32))
    for c0 in range(0, n, chunk):
        c1 = min(c0 + chunk, n)
        sub = np.ascontiguousarray(acts[:, c0:c1])  # (N, m)
        top, out.activation[c0:c1] = top_k(sub, k)
        out.index[c0:c1] = top
        rows = np.repeat(np.arange(c1 - c0), k)
        np.add.at(out.histogram[c0:c1], (rows, labels[top].reshape(-1)), 1)
        out.mean_topk[c0:c1] = data.rows(top).mean(axis=1)
        p99 = np.percentile(sub, 99, axis=0).astype(np.float32)
        out.p99[c0:c1] = p99
        # at or above the 99th percentile (>=: SoftMax saturates at 1), but not at the floor
        # of the activation (a ReLU neuron at 0 on more than 99% of images has p99 = 0)
        high = ((sub >= p99) & (sub != floor)).astype(np.float32)  # (N, m)
        count = high.sum(axis=0)
        out.count_p99[c0:c1] = count.astype(np.int64)
        # (m,N)@(N,D) -> (m,D), over the two splits without concatenating them
        sums = high[:n_train].T @ data.train_x + high[n_train:].T @ data.test_x
        nz = count > 0
        out.mean_p99[c0:c1][nz] = sums[nz] / count[nz, None]
    return out


def dataset_examples(store: ActivationStore, data: Dataset, k: int = 16,
                     progress=None, floors: dict[int, float] | None = None
                     ) -> dict[int, LayerExamples]:
    """Every layer's examples (layers 1..L), one layer in memory at a time; ``floors[l]``
    is f(0) of hidden layer l's activation (0: ReLU's, and the SoftMax's)."""
    floors = floors or {}
    check_k(k, store.n_images)
    labels = dataset_labels(data)
    classes = store.sizes[-1]
    out = {}
    for l in store.layers:
        out[l] = layer_examples(np.asarray(store.layer(l)), data, labels, k, classes,
                                floor=floors.get(l, 0.0))
        if progress:
            progress(l, len(store.sizes) - 1)
    return out


def save_examples(path: Path, examples: dict[int, LayerExamples]) -> dict:
    """``examples.npz`` (arrays, compressed) and the JSON-ready per-neuron summary."""
    arrays = {f"L{l}_{name}": getattr(ex, name) for l, ex in examples.items()
              for name in ("index", "activation", "histogram", "mean_topk", "mean_p99",
                           "count_p99", "p99")}
    atomic_write_npz(path, **arrays)
    return examples_summary(examples)


def examples_summary(examples: dict[int, LayerExamples]) -> dict:
    """The JSON-ready per-neuron summary: preferred class, purity, top activation."""
    return {str(l): {"preferred_class": ex.preferred_class.tolist(),
                     "purity": np.round(ex.purity, 4).tolist(),
                     "top_activation": np.round(ex.activation[:, 0].astype(float), 5).tolist()}
            for l, ex in examples.items()}


PURE = 0.9  # a neuron whose top-k is at least this share of one class is "pure"


def purity_by_layer(summary: dict) -> dict[str, tuple[float, int, int]]:
    """Per layer of an :func:`examples_summary` (``layers`` of the examples stage): the
    mean class purity of the neurons' top-k, how many neurons reach :data:`PURE`, and how
    many there are."""
    out = {}
    for layer, d in summary.items():
        p = np.asarray(d["purity"], np.float64)
        out[layer] = (float(p.mean()), int((p >= PURE).sum()), int(p.size))
    return out


def load_examples(path: Path) -> dict[int, LayerExamples]:
    with np.load(path) as z:
        layers = sorted({int(key.split("_")[0][1:]) for key in z.files})
        return {l: LayerExamples(*(z[f"L{l}_{name}"] for name in (
            "index", "activation", "histogram", "mean_topk", "mean_p99", "count_p99", "p99")))
            for l in layers}
