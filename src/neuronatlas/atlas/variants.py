"""Every neuron's pictures under each method the atlas shows, cached per model.

The tiles are the ``readable`` preset's, with ``diverse``'s K pictures per
neuron as a strip in the panel. The analysis renders every neuron with the paper's
VisConfig (its statistics are the paper's); the panel shows that picture as the first
variant, and the same method under other regularisers beside it (the paper's Figures 3
and 5 vary TV and L1). Each is one batched :func:`visualize` call over all neurons,
cached in ``RUN/atlas-cache/<config id>.npz`` with the model's hash; a cache from
another model, other targets or a damaged file is rendered again.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..config import VisConfig
from ..fileio import atomic_write_npz
from ..nn.mlp import MLP
from ..stages import Progress
from ..vis.store import config_id
from ..vis.visualize import visualize

VARIANTS: tuple[VisConfig, ...] = (
    VisConfig(tv=0.0, l1=0.0, revive=True),  # no regulariser: plain ascent, clipped to [0, 1]
    VisConfig(tv=0.016, l1=0.0016, revive=True),  # weak: a quarter of the default TV
    VisConfig(tv=0.256, l1=0.0256, revive=True),  # strong: the largest TV of Figure 3
)
FIELDS = ("images", "activation", "next_index", "next_activation", "ratio", "top3_classes",
          "top3_probs")
DIVERSE_FIELDS = ("diverse_images", "diverse_activation")
TILES = VisConfig.preset("readable")  # the overview's pictures
DIVERSE = VisConfig.preset("diverse")  # the panel's strip


def label(config: VisConfig) -> str:
    """How the page names a method, e.g. ``TV 0.016, L1 0.0016`` or ``readable preset``."""
    from ..vis.presets import PRESETS

    for name in PRESETS:
        if name != "paper" and config == VisConfig.preset(name):
            return f"{name} preset"
    paper = "paper's method, " if config.is_paper_method else ""
    if not config.tv and not config.l1:
        return f"{paper}no regularisation"
    return f"{paper}TV {config.tv:g}, L1 {config.l1:g}"


def variant(cache: Path, model: MLP, sha: str, targets: np.ndarray, config: VisConfig,
            progress: Progress | None = None) -> dict[str, np.ndarray]:
    """The variant's arrays (one row per target), from the cache or rendered now."""
    path = cache / f"{config_id(config)}.npz"
    arrays = _read(path, sha, targets, _fields(config))
    if arrays is None:
        arrays = _render(model, targets, config, progress)
        _write(path, sha, targets, arrays)
    return arrays


def _render(model: MLP, targets: np.ndarray, config: VisConfig,
            progress: Progress | None) -> dict[str, np.ndarray]:
    stage = f"variant: {label(config)}"
    cb = None
    if progress:
        def cb(step, _acts):
            progress(stage, step + 1, config.steps)
    res = visualize(model, [tuple(int(v) for v in t) for t in targets], config, callback=cb)
    return {name: np.asarray(getattr(res, name)) for name in _fields(config)}


def _fields(config: VisConfig) -> tuple[str, ...]:
    return FIELDS + (DIVERSE_FIELDS if config.diversity > 1 else ())


def _read(path: Path, sha: str, targets: np.ndarray, fields) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["model_sha256"]) != sha or not np.array_equal(z["targets"], targets):
                return None
            return {name: z[name] for name in fields}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _write(path: Path, sha: str, targets: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
    atomic_write_npz(path, model_sha256=np.array(sha), targets=targets, **arrays)
