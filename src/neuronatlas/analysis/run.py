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
from ..reprs import short_repr
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

    __repr__ = short_repr  # arrays by their shape, not their numbers


@locks_run("analyze")
def analyze(run_dir: str | Path, model: MLP, data: Dataset, *, k: int = 16,
            progress: Callable[[str, int, int], None] | None = None,
            log: Log = lambda m: None) -> AnalysisResult:
    """Activations over all images, dead neurons, dataset examples, visualisations of
    every neuron, clusters, and the per-layer claims (see each module), each a stage
    that a rerun skips when its record matches."""
    check_k(k, len(data.train_x) + len(data.test_x))
    if len(model.sizes) < 3:
        raise ConfigError("the model has no hidden layer: there is nothing to analyse")
    a = _Analysis(ensure_dir(Path(run_dir) / "analysis"), model, data, k, progress,
                  Stages(model_sha256(model), log, data.identity["sha256"]))
    store = a.activations()
    dead = a.dead(store)
    examples = a.examples(store)
    vis = a.visualizations()
    groups = a.clusters(store, vis, examples)
    layers = a.layers(vis, dead, examples, groups)
    return AnalysisResult(a.folder, dead, examples, groups, layers, a.stages.seconds,
                          a.stages.reused)


# the visualisations the claims are measured on: the paper's method, plus revive (a neuron
# the near-zero start leaves inactive would otherwise keep a blank image and skew them)
VIS_CONFIG = VisConfig(revive=True)


@dataclass
class _Analysis:
    """The stages of one analysis, in order; each method is one stage."""

    folder: Path
    model: MLP
    data: Dataset
    k: int
    progress: Callable[[str, int, int], None] | None
    stages: Stages

    def _progress(self, name: str):
        return (lambda done, total: self.progress(name, done, total)) if self.progress else None

    def activations(self):
        """Every neuron's activation on every image (a memory-mapped store)."""
        t = time.perf_counter()
        store = open_store(self.folder / "activations", self.model, self.data)
        if store is None:
            store = build_store(self.folder / "activations", self.model, self.data,
                                progress=self._progress("activations"))
        else:
            self.stages.reused.append("activations")
        self.stages.seconds["activations"] = time.perf_counter() - t
        return store

    def dead(self, store) -> dict:
        return self.stages.run(
            "dead", self.folder / "dead.json", {"restarts": RESTARTS},
            lambda: dead_neurons(self.model, store).to_dict(),
            message="dead neurons: checking every hidden neuron on the data, then by "
                    "optimisation")

    def examples(self, store) -> dict:
        path = self.folder / "examples.npz"

        def compute():
            floors = {l: self.model.activation(l).floor for l in store.hidden_layers}
            per_layer = dataset_examples(store, self.data, self.k,
                                         progress=self._progress("examples"), floors=floors)
            return {"k": self.k, "n_train": store.n_train, "images": store.n_images,
                    "layers": save_examples(path, per_layer)}

        return self.stages.run("examples", self.folder / "examples.json", {"k": self.k},
                               compute, arrays=path,
                               message=f"dataset examples: top-{self.k} images and averages "
                                       "of every neuron")

    def visualizations(self) -> dict[str, np.ndarray]:
        path, model = self.folder / "visualizations.npz", self.model

        def compute():
            targets = [(l, i) for l in range(1, len(model.sizes)) for i in range(model.sizes[l])]
            cb = self._progress("visualise")
            res = visualize(model, targets, VIS_CONFIG,
                            callback=(lambda step, _a: cb(step + 1, VIS_CONFIG.steps))
                            if cb else None)
            atomic_write_npz(path, targets=np.array(res.targets), images=res.images,
                             activation=res.activation, next_index=res.next_index,
                             next_activation=res.next_activation, ratio=res.ratio,
                             top3_classes=res.top3_classes, top3_probs=res.top3_probs)
            return {}

        self.stages.run("visualizations", self.folder / "visualizations.json",
                        VIS_CONFIG.to_dict(), compute, arrays=path,
                        message="visualising every neuron (the default VisConfig, with revive)")
        with np.load(path) as z:
            return {name: z[name] for name in z.files}

    def clusters(self, store, vis: dict[str, np.ndarray], examples: dict) -> dict:
        model = self.model

        def compute():
            groups = clusters(store)
            acts = model.activations(vis["images"])
            rising = {}
            for l in store.hidden_layers:
                rows = np.flatnonzero(vis["targets"][:, 0] == l)
                lists = co_risers(acts[l][rows], vis["targets"][rows, 1])
                rising[str(l)] = {"count": [len(x) for x in lists],
                                  "top": [x[:10] for x in lists]}
            preferred = examples["layers"]
            return {"layers": {str(l): g for l, g in groups.items()},
                    "preferred_classes": {str(l): [[preferred[str(l)]["preferred_class"][i]
                                                    for i in g] for g in gs]
                                          for l, gs in groups.items()},
                    "co_risers": rising}

        return self.stages.run(
            "clusters", self.folder / "clusters.json",
            {"threshold": THRESHOLD, "method": METHOD, "rise": RISE, "k": self.k,
             "visualizations": VIS_CONFIG.to_dict()}, compute,
            message="clusters: correlations over the dataset, co-risers under optimisation")

    def layers(self, vis, dead: dict, examples: dict, groups: dict) -> dict:
        def compute():
            doc = _layer_claims(self.model, self.data, vis, dead, examples, groups,
                                self.folder / "examples.npz")
            atomic_write_text(self.folder / "layers.md", C.markdown(doc["table"],
                                                                    doc["claims"]))
            return doc

        return self.stages.run("layers", self.folder / "layers.json",
                               {"k": self.k, "gradient_images": GRADIENT_IMAGES,
                                "claims": C.VERSION, "visualizations": VIS_CONFIG.to_dict()},
                               compute, message="layer statistics and the paper's claims")


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
