"""Where visualisations and adversarial examples go in a run folder (docs/format.md).

``vis/<config-id>/`` holds one folder per VisConfig (``config.json`` says which),
with ``L7N1.png`` (upscaled, contrast-stretched to the image's own range: visualisations
are faint), ``L7N1.npy`` (the raw image, float32) and ``L7N1.json`` (config, activation,
ratio, top-3, and the range the PNG was stretched from) per neuron; with diversity also
``L7N1_diverse.npy`` (K, D) and ``L7N1_diverse.png`` (the K images side by side). Every
file is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..config import VisConfig
from ..fileio import atomic_write_json, ensure_dir
from ..runs import locks_run
from ..shapes import MNIST_SHAPE
from .adversarial import AdversarialResult
from .display import stretch
from .images import save_npy, save_png
from .visualize import VisResult


def config_id(config: VisConfig) -> str:
    blob = json.dumps(config.to_dict(), sort_keys=True).encode()
    return "cfg-" + hashlib.sha256(blob).hexdigest()[:10]


def neuron_name(layer: int, index: int) -> str:
    return f"L{layer}N{index}"


@locks_run("save visualisations in")
def save_vis(run_dir: str | Path, result: VisResult, *, scale: int = 8,
             progress=None, model_sha256: str | None = None) -> Path:
    """Write every target's files; ``progress(done, total)`` after each. The folder's
    ``config.json`` records the config and the hash of the model the images belong to."""
    folder = ensure_dir(Path(run_dir) / "vis" / config_id(result.config))
    atomic_write_json(folder / "config.json", {**result.config.to_dict(),
                                               "model_sha256": model_sha256})
    for i, (layer, index) in enumerate(result.targets):
        stem = folder / neuron_name(layer, index)
        # atomic renames, one flush at the end: an fsync per file costs minutes for --all
        save_npy(stem.with_suffix(".npy"), result.images[i].astype(np.float32), fsync=False)
        shown, lo, hi = stretch(result.images[i].astype(np.float64))
        save_png(stem.with_suffix(".png"), shown, scale, fsync=False, shape=result.input_shape)
        atomic_write_json(stem.with_suffix(".json"), {**result.record(i),
                                                      "png_range": [lo, hi]}, fsync=False)
        if result.diverse_images is not None:  # the K images side by side, each stretched
            k = result.diverse_images[i].astype(np.float64)
            save_npy(folder / f"{stem.name}_diverse.npy", k.astype(np.float32), fsync=False)
            save_png(folder / f"{stem.name}_diverse.png", _strip(k, result.input_shape), scale,
                     fsync=False)
        if progress is not None:
            progress(i + 1, len(result.targets))
    os.sync()
    return folder


def _strip(images: np.ndarray, shape) -> np.ndarray:
    """Images (K, D) side by side, each stretched to its own range, 1-pixel grey gaps."""
    h, w, c = shape
    tiles = [stretch(x)[0].reshape((h, w) if c == 1 else (h, w, c)) for x in images]
    gap = np.full((h, 1) if c == 1 else (h, 1, c), 0.5)
    return np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1)


def save_adversarial(run_dir: str | Path, index: int, res: AdversarialResult,
                     shape=MNIST_SHAPE) -> list[Path]:
    folder = ensure_dir(Path(run_dir) / "adversarial")
    stem = folder / f"mnist{index}_to{res.target}"
    h, w, c = shape
    as_image = lambda x: x.reshape(h, w) if c == 1 else x.reshape(h, w, c)  # noqa: E731
    gap = np.full((h, 2) if c == 1 else (h, 2, c), 0.5)
    pair = np.concatenate([as_image(res.original), gap, as_image(res.image)], axis=1)
    save_npy(stem.with_suffix(".npy"), res.image.astype(np.float32))
    save_png(stem.with_suffix(".png"), res.image, 8, shape=shape)
    save_png(folder / f"{stem.name}_pair.png", pair, 8)
    atomic_write_json(stem.with_suffix(".json"), {"index": index, **res.to_dict()})
    return [stem.with_suffix(".npy"), stem.with_suffix(".png"), folder / f"{stem.name}_pair.png"]

