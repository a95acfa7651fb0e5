"""Every neuron's activation on every image of the dataset, streamed to disk once and
reused.

``analysis/activations/`` holds ``L1.npy`` ... ``L{L}.npy`` (float32, (N, n_l), train
images first, then test) and ``meta.json``, written last: a folder without a
``meta.json``, or whose model or dataset hash differs, is rebuilt and never trusted.
The files are written with ordinary writes, batch by batch, after checking that the disk
has room for them (a full disk is one error line, not a crash inside a memory map);
readers memory-map them, so memory stays bounded by what a reader touches.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import Dataset
from ..errors import ConfigError, RunFolderError
from ..fileio import atomic_write_json, ensure_dir
from ..layout import analysis_dir
from ..nn.mlp import MLP, model_sha256

ProgressFn = Callable[[int, int], None]  # (done, total)


def dataset_rows(data: Dataset) -> tuple[int, int]:
    """(number of train images, total): rows [0, n_train) are train, the rest test."""
    return len(data.train_x), len(data.train_x) + len(data.test_x)


def dataset_labels(data: Dataset) -> np.ndarray:
    return np.concatenate([data.train_y, data.test_y])


def iter_batches(data: Dataset, batch: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, images) over train then test, without concatenating the two."""
    offset = 0
    for x in (data.train_x, data.test_x):
        for s in range(0, len(x), batch):
            yield offset + s, x[s : s + batch]
        offset += len(x)


@dataclass
class ActivationStore:
    """Every neuron's activation on every image: files in ``folder`` (memory-mapped when
    read), or ``arrays`` in memory (:func:`compute_activations`)."""

    folder: Path | None
    sizes: tuple[int, ...]
    n_images: int
    n_train: int
    model_sha256: str
    arrays: dict[int, np.ndarray] | None = None

    def layer(self, l: int) -> np.ndarray:
        """Read-only (n_images, n_l) array of layer l's activations."""
        if not isinstance(l, int) or not 1 <= l < len(self.sizes):
            raise ConfigError(f"layer {l} does not exist: layers are 1..{len(self.sizes) - 1}")
        if self.arrays is not None:
            view = self.arrays[l].view()
            view.flags.writeable = False
            return view
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


def open_store(folder: Path, model: MLP, data: Dataset) -> ActivationStore | None:
    """The cached store if it is complete and was built by this very model on this very
    dataset, else None."""
    n_images = dataset_rows(data)[1]
    meta = _read_meta(folder)
    if not meta or meta.get("model_sha256") != model_sha256(model):
        return None
    if meta.get("dataset_sha256") != data.identity["sha256"]:
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


def compute_activations(model: MLP, data: Dataset, *, batch: int = 2048,
                        progress: ProgressFn | None = None) -> ActivationStore:
    """The store in memory: the same numbers as :func:`build_store` writes (the same
    batches), nothing written."""
    n_train, n = dataset_rows(data)
    arrays = {l: np.empty((n, model.sizes[l]), np.float32) for l in range(1, len(model.sizes))}
    for start, x in iter_batches(data, batch):
        t = model.trace(np.asarray(x, np.float32))
        for l, out in arrays.items():
            out[start:start + len(x)] = t.a[l - 1]
        if progress:
            progress(start + len(x), n)
    return ActivationStore(None, model.sizes, n, n_train, model_sha256(model), arrays)


def build_store(folder: Path, model: MLP, data: Dataset, *, batch: int = 2048,
                progress: ProgressFn | None = None) -> ActivationStore:
    """Stream every image through the network and write each layer to ``L{l}.npy``."""
    n_train, n = dataset_rows(data)
    if folder.exists():
        shutil.rmtree(folder)  # stale or partial: never trusted
    ensure_dir(folder)
    need = 4 * n * sum(model.sizes[1:]) + (1 << 20)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise RunFolderError(f"cannot write the activation store in {folder}: it needs "
                             f"{need / 2**20:.0f} MiB and the disk has {free / 2**20:.0f} MiB "
                             "free")
    layers = range(1, len(model.sizes))
    try:
        files = {l: open(folder / f"L{l}.npy", "wb") for l in layers}
        try:
            for l, f in files.items():
                np.lib.format.write_array_header_1_0(f, {
                    "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                    "fortran_order": False, "shape": (n, model.sizes[l])})
            for start, x in iter_batches(data, batch):
                t = model.trace(np.asarray(x, np.float32))
                for l, f in files.items():
                    f.write(np.ascontiguousarray(t.a[l - 1], np.float32).tobytes())
                if progress:
                    progress(start + len(x), n)
        finally:
            for f in files.values():
                f.close()
    except OSError as exc:  # a full disk, a quota: one line, and no store is trusted
        shutil.rmtree(folder, ignore_errors=True)
        raise RunFolderError(f"cannot write the activation store in {folder}: "
                             f"{exc.strerror or exc}") from None
    sha = model_sha256(model)
    atomic_write_json(folder / "meta.json", {"model_sha256": sha, "n_images": n,
                                             "n_train": n_train, "sizes": list(model.sizes),
                                             "dataset_sha256": data.identity["sha256"]})
    return ActivationStore(folder, model.sizes, n, n_train, sha)


def activation_store(run_dir: str | Path, model: MLP, data: Dataset, *,
                     progress: ProgressFn | None = None) -> ActivationStore:
    """The run's activation store, rebuilt when missing, partial or from another model."""
    folder = analysis_dir(run_dir) / "activations"
    return open_store(folder, model, data) or build_store(folder, model, data, progress=progress)
