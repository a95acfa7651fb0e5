"""Every neuron's pictures under each method the atlas shows, rendered once per model and
kept in the run's keyed store: the atlas reads them and renders nothing.

The tiles are the ``readable`` preset's, with ``diverse``'s K pictures per neuron as a
strip in the panel. The analysis renders every neuron with the paper's VisConfig (its
statistics are the paper's); the panel shows that picture as the first variant, and
the same method under other regularisers beside it (the paper's Figures 3 and 5 vary
TV and L1). Each is one batched :func:`visualize` call over all neurons, kept in
``RUN/atlas-cache/<config id>.npz`` with the model's hash and the targets as its key;
a file from another model, other targets or a damaged one is rendered again. Layer 1
also keeps its exact optimum over the image box (:func:`layer1_optimum`) and how far
the tiles reach towards it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import VisConfig
from .errors import RunFolderError
from .fileio import ensure_dir
from .layout import GALLERY, LAYER1_EXACT
from .nn.mlp import MLP, model_sha256
from .runs import locks_run
from .stages import Progress, read_keyed, write_keyed
from .vis.exact import layer1_optimum
from .vis.presets import PRESETS
from .vis.prototypes import data_prototypes, prototype_settings
from .vis.store import config_id
from .vis.visualize import PICTURES_VERSION, visualize

VARIANTS: tuple[VisConfig, ...] = (
    VisConfig(tv=0.0, l1=0.0, revive=True),  # no regulariser: plain ascent, clipped to [0, 1]
    VisConfig(tv=0.016, l1=0.0016, revive=True),  # weak: a quarter of the default TV
    VisConfig(tv=0.256, l1=0.0256, revive=True),  # strong: the largest TV of Figure 3
)
FIELDS = ("images", "activation", "next_index", "next_activation", "ratio", "top3_classes",
          "top3_probs")
DIVERSE_FIELDS = ("diverse_images", "diverse_activation")
EXACT_FIELDS = ("exact_images", "exact_activation", "exact_reached")
TILES = VisConfig.preset("readable")  # the overview's pictures
DIVERSE = VisConfig.preset("diverse")  # the panel's strip


def label(config: VisConfig) -> str:
    """How the page names a method, e.g. ``TV 0.016, L1 0.0016`` or ``readable preset``."""
    for name in PRESETS:
        if name != "paper" and config == VisConfig.preset(name):
            return f"{name} preset"
    paper = "paper's method, " if config.is_paper_method else ""
    if not config.tv and not config.l1:
        return f"{paper}no regularisation"
    return f"{paper}TV {config.tv:g}, L1 {config.l1:g}"


@dataclass
class Gallery:
    """The pictures of every target (one row each, in the targets' order)."""

    tiles: dict[str, np.ndarray]  # TILES's, with the targets
    diverse: dict[str, np.ndarray]  # DIVERSE's K pictures per neuron
    variants: list[dict[str, np.ndarray]]  # one per VARIANTS
    exact: dict[str, np.ndarray] | None  # layer 1's exact optimum (None: layer 1 is the output)


@locks_run("render the pictures of")
def render_gallery(run_dir: str | Path, model: MLP, targets: np.ndarray, data,
                   progress: Progress | None = None) -> None:
    """Render whatever picture of the gallery is missing or stale in ``run_dir``'s store;
    ``data`` gives the prototypes the readable pictures start from (and is in the key)."""
    folder = ensure_dir(Path(run_dir) / GALLERY)
    key = _key(model, targets, data)
    for config in (TILES, DIVERSE, *VARIANTS):
        path = folder / f"{config_id(config)}.npz"
        if read_keyed(path, key, _fields(config)) is None:
            write_keyed(path, key, _render(model, targets, config, progress, data))
    if model.n_layers > 1 and read_keyed(folder / LAYER1_EXACT, key, EXACT_FIELDS) is None:
        tiles = read_keyed(folder / f"{config_id(TILES)}.npz", key, ("images",))
        write_keyed(folder / LAYER1_EXACT, key, _exact(model, targets, tiles["images"]))


def read_gallery(run_dir: str | Path, model: MLP, targets: np.ndarray, data) -> Gallery:
    """The gallery of ``model`` from the store; one that is missing or was made for another
    model, other targets or other data is a :class:`RunFolderError` (render it first)."""
    folder, key = Path(run_dir) / GALLERY, _key(model, targets, data)

    def read(name: str, fields) -> dict[str, np.ndarray]:
        arrays = read_keyed(folder / name, key, fields)
        if arrays is None:
            raise RunFolderError(f"{folder / name} is missing or was made for another model, "
                                 f"other targets or another dataset: build the atlas with "
                                 f"neuronatlas atlas --run {run_dir}")
        return arrays

    tiles = {"targets": targets, **read(f"{config_id(TILES)}.npz", FIELDS)}
    diverse = read(f"{config_id(DIVERSE)}.npz", FIELDS + DIVERSE_FIELDS)
    variants = [read(f"{config_id(c)}.npz", FIELDS) for c in VARIANTS]
    exact = read(LAYER1_EXACT, EXACT_FIELDS) if model.n_layers > 1 else None
    return Gallery(tiles, diverse, variants, exact)


def _key(model: MLP, targets: np.ndarray, data) -> dict[str, np.ndarray]:
    """What every picture depends on: the model, the targets, and for the readable ones the
    dataset and the settings of its prototypes, and the version of the code that drew them."""
    return {"model_sha256": np.array(model_sha256(model)), "targets": targets,
            "dataset_sha256": np.array(data.identity["sha256"]),
            "prototypes": np.array(prototype_settings()),
            "pictures_version": np.array(PICTURES_VERSION)}


def _render(model: MLP, targets: np.ndarray, config: VisConfig,
            progress: Progress | None, data=None) -> dict[str, np.ndarray]:
    stage = f"variant: {label(config)}"
    cb = None
    if progress:
        def cb(step, _acts):
            progress(stage, step + 1, config.steps)
    prototypes = data_prototypes(data) if config.init == "prototype" else None
    res = visualize(model, [tuple(int(v) for v in t) for t in targets], config, callback=cb,
                    prototypes=prototypes)
    return {name: np.asarray(getattr(res, name)) for name in _fields(config)}


def _fields(config: VisConfig) -> tuple[str, ...]:
    return FIELDS + (DIVERSE_FIELDS if config.diversity > 1 else ())


def _exact(model: MLP, targets: np.ndarray, images: np.ndarray) -> dict[str, np.ndarray]:
    """Layer 1's exact optimum, and where each tile's pre-activation lies between the
    smallest (0) and the largest (1) the image box allows."""
    best = layer1_optimum(model)
    rows = np.flatnonzero(targets[:, 0] == 1)
    rows = rows[np.argsort(targets[rows, 1], kind="stable")]
    W, b = model.weights[0].astype(np.float64), model.biases[0]
    z = np.einsum("ij,ij->i", images[rows].astype(np.float64), W) + b  # (n1,)
    return {"exact_images": best.images, "exact_activation": best.activation,
            "exact_reached": best.reached(z)}
