"""Every neuron's activation on every MNIST image, streamed to disk once and reused.

``analysis/activations/`` holds ``L1.npy`` ... ``L{L}.npy`` (float32, (70000, n_l),
train images first, then test) and ``meta.json``, written last: a folder without a
``meta.json``, or whose ``model_sha256`` differs from the model's, is rebuilt and
never trusted. The arrays are memory-mapped, so memory stays bounded by one batch
while building and by what a reader touches while reading.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import MNIST
from ..errors import ConfigError
from ..fileio import atomic_write_json, ensure_dir
from ..nn.mlp import MLP

ProgressFn = Callable[[int, int], None]  # (done, total)


def model_sha256(model: MLP) -> str:
    """Hash of the weights and biases (not the metadata): the identity of a model."""
    h = hashlib.sha256(",".join(map(str, model.sizes)).encode())
    for w, b in zip(model.weights, model.biases):
        h.update(np.ascontiguousarray(w, np.float32).tobytes())
        h.update(np.ascontiguousarray(b, np.float32).tobytes())
    return h.hexdigest()


def dataset_rows(data: MNIST) -> tuple[int, int]:
    """(number of train images, total): rows [0, n_train) are train, the rest test."""
    return len(data.train_x), len(data.train_x) + len(data.test_x)


def dataset_labels(data: MNIST) -> np.ndarray:
    return np.concatenate([data.train_y, data.test_y])


def iter_batches(data: MNIST, batch: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, images) over train then test, without concatenating the two."""
    offset = 0
    for x in (data.train_x, data.test_x):
        for s in range(0, len(x), batch):
            yield offset + s, x[s : s + batch]
        offset += len(x)


@dataclass
class ActivationStore:
    folder: Path
    sizes: tuple[int, ...]
    n_images: int
    n_train: int
    model_sha256: str

    def layer(self, l: int) -> np.ndarray:
        """Read-only memory map (n_images, n_l) of layer l's activations."""
        if not isinstance(l, int) or not 1 <= l < len(self.sizes):
            raise ConfigError(f"layer {l} does not exist: layers are 1..{len(self.sizes) - 1}")
        return np.load(self.folder / f"L{l}.npy", mmap_mode="r")

    @property
    def hidden_layers(self) -> range:
        return range(1, len(self.sizes) - 1)

    @property
    def layers(self) -> range:
        return range(1, len(self.sizes))


def _read_meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def open_store(folder: Path, model: MLP, n_images: int) -> ActivationStore | None:
    """The cached store if it is complete and was built by this very model, else None."""
    meta = _read_meta(folder)
    if not meta or meta.get("model_sha256") != model_sha256(model):
        return None
    if meta.get("n_images") != n_images or tuple(meta.get("sizes", ())) != model.sizes:
        return None
    for l in range(1, len(model.sizes)):
        try:
            arr = np.load(folder / f"L{l}.npy", mmap_mode="r")
        except (OSError, ValueError):
            return None
        if arr.shape != (n_images, model.sizes[l]) or arr.dtype != np.float32:
            return None
    return ActivationStore(folder, model.sizes, n_images, meta["n_train"], meta["model_sha256"])


def build_store(folder: Path, model: MLP, data: MNIST, *, batch: int = 2048,
                progress: ProgressFn | None = None) -> ActivationStore:
    """Stream every image through the network and write each layer to ``L{l}.npy``."""
    n_train, n = dataset_rows(data)
    if folder.exists():
        shutil.rmtree(folder)  # stale or partial: never trusted
    ensure_dir(folder)
    maps = {l: np.lib.format.open_memmap(folder / f"L{l}.npy", mode="w+", dtype=np.float32,
                                         shape=(n, model.sizes[l]))
            for l in range(1, len(model.sizes))}
    for start, x in iter_batches(data, batch):
        t = model.trace(np.asarray(x, np.float32))
        for l, m in maps.items():
            m[start : start + len(x)] = t.a[l - 1]
        if progress:
            progress(start + len(x), n)
    for m in maps.values():
        m.flush()
    del maps
    sha = model_sha256(model)
    atomic_write_json(folder / "meta.json", {"model_sha256": sha, "n_images": n,
                                             "n_train": n_train, "sizes": list(model.sizes)})
    return ActivationStore(folder, model.sizes, n, n_train, sha)


def activation_store(run_dir: str | Path, model: MLP, data: MNIST, *,
                     progress: ProgressFn | None = None) -> ActivationStore:
    """The run's activation store, rebuilt when missing, partial or from another model."""
    folder = Path(run_dir) / "analysis" / "activations"
    _, n = dataset_rows(data)
    return open_store(folder, model, n) or build_store(folder, model, data, progress=progress)
