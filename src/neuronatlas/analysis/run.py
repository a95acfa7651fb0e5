"""``neuronatlas analyze``: the analysis stages of a run folder, each resumable.

Every stage writes its result atomically with the model's hash and its settings;
a rerun skips a stage whose result matches both, and redoes one that does not
(another model, another k, a half-written file), never trusting a stale cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import VisConfig
from ..data import Dataset
from ..errors import ConfigError
from ..fileio import atomic_write_npz, atomic_write_text, ensure_dir
from ..nn.mlp import MLP
from ..runs import locks_run
from ..stages import Log, Stages
from ..vis.visualize import visualize
from . import claims as C
from .activations import build_store, model_sha256, open_store
from .clusters import METHOD, RISE, THRESHOLD, clusters, co_risers
from .dead import RESTARTS, dead_neurons
from .examples import check_k, dataset_examples, load_examples, save_examples


@dataclass
class AnalysisResult:
    folder: Path
    dead: dict
    examples: dict
    clusters: dict
    layers: dict
    seconds: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)


@locks_run("analyze")
def analyze(run_dir: str | Path, model: MLP, data: Dataset, *, k: int = 16,
            progress: Callable[[str, int, int], None] | None = None,
            log: Log = lambda m: None) -> AnalysisResult:
    """Activations over all images, dead neurons, dataset examples, visualisations of
    every neuron, clusters, and the per-layer claims (see each module)."""
    check_k(k, len(data.train_x) + len(data.test_x))
    if len(model.sizes) < 3:
        raise ConfigError("the model has no hidden layer: there is nothing to analyse")
    folder = ensure_dir(Path(run_dir) / "analysis")
    stages = Stages(model_sha256(model), log, data.identity["sha256"])

    def stage_progress(name):
        return (lambda done, total: progress(name, done, total)) if progress else None

    t = time.perf_counter()
    store = open_store(folder / "activations", model, data)
    if store is None:
        store = build_store(folder / "activations", model, data,
                            progress=stage_progress("activations"))
    else:
        stages.reused.append("activations")
    stages.seconds["activations"] = time.perf_counter() - t

    dead = stages.run(
        "dead", folder / "dead.json", {"restarts": RESTARTS},
        lambda: dead_neurons(model, store).to_dict(),
        message="dead neurons: checking every hidden neuron on the data, then by optimisation")

    ex_path = folder / "examples.npz"

    def compute_examples():
        floors = {l: model.activation(l).floor for l in store.hidden_layers}
        per_layer = dataset_examples(store, data, k, progress=stage_progress("examples"),
                                     floors=floors)
        return {"k": k, "n_train": store.n_train, "images": store.n_images,
                "layers": save_examples(ex_path, per_layer)}

    examples = stages.run("examples", folder / "examples.json", {"k": k}, compute_examples,
                          arrays=ex_path,
                          message=f"dataset examples: top-{k} images and averages of every neuron")

    # the defaults, plus revive: a neuron the near-zero start leaves inactive would
    # otherwise keep a blank image and skew every statistic below
    vis_config = VisConfig(revive=True)
    vis_path = folder / "visualizations.npz"

    def compute_visualizations():
        targets = [(l, i) for l in range(1, len(model.sizes)) for i in range(model.sizes[l])]
        cb = stage_progress("visualise")
        res = visualize(model, targets, vis_config,
                        callback=(lambda step, _a: cb(step + 1, vis_config.steps)) if cb else None)
        atomic_write_npz(vis_path, targets=np.array(res.targets), images=res.images,
                  activation=res.activation, next_index=res.next_index,
                  next_activation=res.next_activation, ratio=res.ratio,
                  top3_classes=res.top3_classes, top3_probs=res.top3_probs)
        return {}

    stages.run("visualizations", folder / "visualizations.json", vis_config.to_dict(),
               compute_visualizations, arrays=vis_path,
               message="visualising every neuron (the default VisConfig, with revive)")
    with np.load(vis_path) as z:
        vis = {name: z[name] for name in z.files}

    def compute_clusters():
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

    cl = stages.run("clusters", folder / "clusters.json",
                    {"threshold": THRESHOLD, "method": METHOD, "rise": RISE, "k": k,
                     "visualizations": vis_config.to_dict()}, compute_clusters,
                    message="clusters: correlations over the dataset, co-risers under "
                            "optimisation")

    def compute_layers():
        doc = _layer_claims(model, data, vis, dead, examples, cl, ex_path)
        atomic_write_text(folder / "layers.md", C.markdown(doc["table"], doc["claims"]))
        return doc

    layers = stages.run("layers", folder / "layers.json",
                        {"k": k, "gradient_images": GRADIENT_IMAGES, "claims": C.VERSION,
                         "visualizations": vis_config.to_dict()}, compute_layers,
                        message="layer statistics and the paper's claims")
    return AnalysisResult(folder, dead, examples, cl, layers, stages.seconds, stages.reused)


GRADIENT_IMAGES = 4  # top dataset images per neuron for its input-gradient map


def _layer_claims(model, data, vis, dead, examples, cl, ex_path: Path) -> dict:
    ex = load_examples(ex_path)
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
