"""``na.analyze(model, data)``: every analysis of a network, in memory, writing nothing.

Each stage is a plain function of the model, the data and the stages before it; the run
folder's ``analyze`` (:mod:`.run`) caches the same functions' results as files. Stages,
in order: the activations of every neuron on every image, dead neurons, dataset
examples, the visualisation of every neuron, clusters, and the paper's per-layer claims.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import VisConfig
from ..data import Dataset, check_fits
from ..errors import ConfigError
from ..nn.mlp import MLP
from ..reprs import short_repr
from ..vis.visualize import visualize
from . import claims as C
from .activations import ActivationStore, compute_activations
from .clusters import METHOD, RISE, THRESHOLD, clusters, co_risers
from .dead import RESTARTS, dead_neurons
from .examples import LayerExamples, check_k, dataset_examples, examples_summary

Progress = Callable[[str, int, int], None]  # (stage, done, total)

# the visualisations the claims are measured on: the paper's method, plus revive (a neuron
# the near-zero start leaves inactive would otherwise keep a blank image and skew them)
VIS_CONFIG = VisConfig(revive=True)
GRADIENT_IMAGES = 4  # top dataset images per neuron for its input-gradient map
VIS_ARRAYS = ("targets", "images", "activation", "next_index", "next_activation", "ratio",
              "top3_classes", "top3_probs")

#: each stage's settings: a cached result counts only under the same ones
SETTINGS = {
    "dead": {"restarts": RESTARTS},
    "visualizations": VIS_CONFIG.to_dict(),
}


def settings(stage: str, k: int) -> dict:
    """The settings a stage's result depends on (besides the model and the data)."""
    if stage == "examples":
        return {"k": k}
    if stage == "clusters":
        return {"threshold": THRESHOLD, "method": METHOD, "rise": RISE, "k": k,
                "visualizations": VIS_CONFIG.to_dict()}
    if stage == "layers":
        return {"k": k, "gradient_images": GRADIENT_IMAGES, "claims": C.VERSION,
                "visualizations": VIS_CONFIG.to_dict()}
    return SETTINGS[stage]


@dataclass
class Analysis:
    """What :func:`analyze` returns. ``dead``, ``clusters`` and ``layers`` are the
    JSON-ready records a run folder keeps (``dead.json``, ...); ``examples`` the
    per-layer top images and averages, ``examples_summary`` their JSON record;
    ``visualizations`` one row per neuron (``targets``, ``images``, ``ratio``, ...)."""

    k: int
    dead: dict
    examples: dict[int, LayerExamples]
    examples_summary: dict
    visualizations: dict[str, np.ndarray]
    clusters: dict
    layers: dict

    __repr__ = short_repr


def analyze(model: MLP, data: Dataset, *, k: int = 16, progress: Progress | None = None
            ) -> Analysis:
    """Every stage of the analysis of ``model`` on ``data`` (all its images), in memory;
    nothing is written. Example::

        an = na.analyze(model, data, k=16)
        an.dead["total_dead"], an.layers["claims"][0]["verdict"]
    """
    check_analysable(model, data, k)
    store = compute_activations(model, data, progress=_stage(progress, "activations"))
    dead = dead_stage(model, store)
    examples = examples_stage(model, data, store, k, progress)
    summary = {"k": k, "n_train": store.n_train, "images": store.n_images,
               "layers": examples_summary(examples)}
    vis = visualizations_stage(model, progress)
    groups = clusters_stage(model, store, vis, summary)
    layers = layers_stage(model, data, vis, dead, summary, groups, examples)
    return Analysis(k, dead, examples, summary, vis, groups, layers)


def check_analysable(model: MLP, data: Dataset, k: int) -> None:
    """The model can be analysed on ``data`` with ``k`` examples, or one clear error."""
    if not isinstance(model, MLP):  # analyze(run_dir, model, data) is analyze_run's call
        raise ConfigError(f"analyze takes (model, data), got a {type(model).__name__} first; "
                          "to keep the stages in a run folder use "
                          "neuronatlas.analysis.analyze_run(run_dir, model, data)")
    check_fits(model, data)
    check_k(k, len(data.train_x) + len(data.test_x))
    if len(model.sizes) < 3:
        raise ConfigError("the model has no hidden layer: there is nothing to analyse")


def _stage(progress: Progress | None, name: str):
    return (lambda done, total: progress(name, done, total)) if progress else None


def dead_stage(model: MLP, store: ActivationStore) -> dict:
    """Dead neurons: silent on every image, then not revived by optimisation."""
    return dead_neurons(model, store).to_dict()


def examples_stage(model: MLP, data: Dataset, store: ActivationStore, k: int,
                   progress: Progress | None = None) -> dict[int, LayerExamples]:
    """Every neuron's top-k images and its averages."""
    floors = {l: model.activation(l).floor for l in store.hidden_layers}
    return dataset_examples(store, data, k, progress=_stage(progress, "examples"),
                            floors=floors)


def visualizations_stage(model: MLP, progress: Progress | None = None
                         ) -> dict[str, np.ndarray]:
    """Every neuron visualised with :data:`VIS_CONFIG`, as arrays (:data:`VIS_ARRAYS`)."""
    targets = [(l, i) for l in range(1, len(model.sizes)) for i in range(model.sizes[l])]
    cb = _stage(progress, "visualise")
    res = visualize(model, targets, VIS_CONFIG,
                    callback=(lambda step, _a: cb(step + 1, VIS_CONFIG.steps)) if cb else None)
    return {"targets": np.array(res.targets), "images": res.images,
            "activation": res.activation, "next_index": res.next_index,
            "next_activation": res.next_activation, "ratio": res.ratio,
            "top3_classes": res.top3_classes, "top3_probs": res.top3_probs}


def clusters_stage(model: MLP, store: ActivationStore, vis: dict[str, np.ndarray],
                   examples: dict) -> dict:
    """Co-activating groups over the dataset, and co-risers under optimisation."""
    groups = clusters(store)
    acts = model.activations(vis["images"])
    rising = {}
    for l in store.hidden_layers:
        rows = np.flatnonzero(vis["targets"][:, 0] == l)
        lists = co_risers(acts[l][rows], vis["targets"][rows, 1])
        rising[str(l)] = {"count": [len(x) for x in lists], "top": [x[:10] for x in lists]}
    preferred = examples["layers"]
    return {"layers": {str(l): g for l, g in groups.items()},
            "preferred_classes": {str(l): [[preferred[str(l)]["preferred_class"][i]
                                            for i in g] for g in gs]
                                  for l, gs in groups.items()},
            "co_risers": rising}


def layers_stage(model: MLP, data: Dataset, vis: dict[str, np.ndarray], dead: dict,
                 examples: dict, cl: dict, ex: dict[int, LayerExamples]) -> dict:
    """Per-layer statistics and the paper's claims checked on them."""
    probs = model.predict_proba(vis["images"])
    top1, ent = probs.max(axis=1), C.entropy(probs)
    eff_vis = C.effective_pixels(vis["images"])
    table = []
    for l in range(1, len(model.sizes) - 1):
        rows = np.flatnonzero(vis["targets"][:, 0] == l)
        targets = [(l, int(i)) for i in vis["targets"][rows, 1]]
        top_imgs = data.rows(ex[l].index[:, :GRADIENT_IMAGES])  # (n, m, D)
        grads = C.gradient_maps(model, targets, top_imgs)
        ratio = vis["ratio"][rows]
        d = dead["layers"][str(l)]
        table.append({
            "layer": l, "size": model.sizes[l], "dead": d["count"],
            "silent": len(d["silent_on_data"]), "clusters": len(cl["layers"][str(l)]),
            "eff_pixels_vis": float(np.median(eff_vis[rows])),
            "eff_pixels_grad": float(np.median(C.effective_pixels(grads))),
            "top1_prob": float(np.median(top1[rows])),
            "output_entropy": float(np.median(ent[rows])),
            "ratio_median": float(np.median(ratio)),
            "ratio_quartiles": [float(q) for q in np.percentile(ratio, [25, 75])],
            "ratio_above_1": float(np.mean(ratio > 1)),
            "co_risers_median": float(np.median(cl["co_risers"][str(l)]["count"])),
            "purity": float(np.mean(examples["layers"][str(l)]["purity"])),
        })
    return {"table": table, "claims": C.verdicts(table)}
