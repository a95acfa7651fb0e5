"""Every neuron's explanation kept in a run folder for the atlas: computed once per model,
dataset and set of pictures (:func:`.batch.explain_all`) into
``RUN/atlas-cache/explanations.npz``, whose key is the model's hash, the dataset's, the
hash of the pictures judged and :data:`VERSION`; a file with another key or a damaged one
is computed again, never read."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from ..analysis.activations import activation_store, dataset_labels
from ..data import Dataset
from ..errors import RunFolderError
from ..fileio import ensure_dir
from ..layout import EXPLANATIONS, GALLERY
from ..nn.mlp import MLP, model_sha256
from ..runs import locks_run
from ..stages import Log, Progress, read_keyed, write_keyed
from .batch import LayerExplanation, explain_all

VERSION = 1  # what the numbers mean: a file of another version is computed again


def layer_pictures(targets: np.ndarray, images: np.ndarray) -> dict[int, np.ndarray]:
    """Pictures given one row per (layer, neuron) target, split by layer, in neuron order
    (every neuron of a layer must be there)."""
    out = {}
    for l in np.unique(targets[:, 0]):
        rows = np.flatnonzero(targets[:, 0] == l)
        out[int(l)] = images[rows[np.argsort(targets[rows, 1], kind="stable")]]
    return out


def _key(model: MLP, data: Dataset, pictures: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    h = hashlib.sha256()
    for l in sorted(pictures):
        h.update(np.ascontiguousarray(pictures[l], np.float32).tobytes())
    return {"model_sha256": np.array(model_sha256(model)),
            "dataset_sha256": np.array(data.identity["sha256"]),
            "pictures_sha256": np.array(h.hexdigest()), "version": np.array(VERSION)}


def _names(model: MLP) -> list[str]:
    return [f"L{l}_{n}" for l in range(1, model.n_layers + 1) for n in LayerExplanation.names()]


@locks_run("explain the neurons of")
def explain_run(run_dir: str | Path, model: MLP, data: Dataset,
                pictures: dict[int, np.ndarray], progress: Progress | None = None,
                log: Log = lambda m: None) -> dict[int, LayerExplanation]:
    """Every neuron of ``model`` explained on ``data`` with ``pictures[l]`` (layer l's, in
    neuron order) as the pictures its trust numbers judge: read from the run's store, or
    computed (with the run's activation store) and kept there."""
    path = ensure_dir(Path(run_dir) / GALLERY) / EXPLANATIONS
    key = _key(model, data, pictures)
    got = read_keyed(path, key, _names(model))
    if got is None:
        t = time.perf_counter()
        store = activation_store(run_dir, model, data)
        cb = (lambda done, total: progress("explanations", done, total)) if progress else None
        result = explain_all(model, data, store.layer, pictures, dataset_labels(data), cb)
        write_keyed(path, key, {f"L{l}_{n}": getattr(e, n) for l, e in result.items()
                                for n in LayerExplanation.names()})
        log(f"explanations: every neuron explained in {time.perf_counter() - t:.1f} s")
        return result
    return _unpack(model, got)


def read_explanations(run_dir: str | Path, model: MLP, data: Dataset,
                      pictures: dict[int, np.ndarray]) -> dict[int, LayerExplanation]:
    """The explanations kept for exactly these model, data and pictures; a
    :class:`RunFolderError` when there are none (build the atlas first)."""
    path = Path(run_dir) / GALLERY / EXPLANATIONS
    got = read_keyed(path, _key(model, data, pictures), _names(model))
    if got is None:
        raise RunFolderError(f"{path} is missing or was made for another model, dataset or "
                             f"pictures: build the atlas with neuronatlas atlas --run {run_dir}")
    return _unpack(model, got)


def _unpack(model: MLP, arrays: dict[str, np.ndarray]) -> dict[int, LayerExplanation]:
    return {l: LayerExplanation(**{n: arrays[f"L{l}_{n}"] for n in LayerExplanation.names()})
            for l in range(1, model.n_layers + 1)}
