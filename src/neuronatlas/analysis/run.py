"""``neuronatlas analyze``: the analysis stages of a run folder, each resumable (the
computations are :mod:`.pipeline`'s; this module keeps their results as files).

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

from ..data import Dataset
from ..errors import RunFolderError
from ..fileio import atomic_write_npz, atomic_write_text, ensure_dir
from ..layout import EXAMPLES, VISUALIZATIONS, analysis_dir
from ..nn.mlp import MLP
from ..reprs import short_repr
from ..runs import locks_run
from ..stages import Log, Stages
from . import claims as C
from . import pipeline as P
from .activations import build_store, model_sha256, open_store
from .examples import load_examples, save_examples


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
def analyze_run(run_dir: str | Path, model: MLP, data: Dataset, *, k: int = 16,
                progress: Callable[[str, int, int], None] | None = None,
                log: Log = lambda m: None) -> AnalysisResult:
    """:func:`~neuronatlas.analysis.pipeline.analyze` with every stage kept in
    ``RUN/analysis/``: a rerun skips a stage whose record matches the model, the data
    and the stage's settings."""
    P.check_analysable(model, data, k)
    a = _Analysis(ensure_dir(analysis_dir(run_dir)), model, data, k, progress,
                  Stages(model_sha256(model), log, data.identity["sha256"]))
    store = a.activations()
    dead = a.dead(store)
    examples = a.examples(store)
    vis = a.visualizations()
    groups = a.clusters(store, vis, examples)
    layers = a.layers(vis, dead, examples, groups)
    return AnalysisResult(a.folder, dead, examples, groups, layers, a.stages.seconds,
                          a.stages.reused)


#: the stages kept as records: (name, record file, arrays file)
RECORDS = (("dead", "dead.json", None), ("examples", "examples.json", EXAMPLES),
           ("visualizations", "visualizations.json", VISUALIZATIONS),
           ("clusters", "clusters.json", None), ("layers", "layers.json", None))


def load_analysis(run_dir: str | Path, model: MLP, data: Dataset, *, k: int) -> AnalysisResult:
    """The analysis kept in ``run_dir`` for this model, data and k, read and never
    computed: a stage that is missing or stale is a :class:`RunFolderError` naming it."""
    folder = analysis_dir(run_dir)
    stages = Stages(model_sha256(model), lambda m: None, data.identity["sha256"])
    docs = {}
    for name, record, arrays in RECORDS:
        doc = stages.cached(folder / record, P.settings(name, k),
                            None if arrays is None else folder / arrays)
        if doc is None:
            raise RunFolderError(f"the analysis of {run_dir} has no current {name} stage for "
                                 f"this model, dataset and k={k}: run neuronatlas analyze "
                                 f"--run {run_dir} --k {k}")
        docs[name] = doc
    docs.pop("visualizations")  # its arrays are the result: RUN/analysis/visualizations.npz
    return AnalysisResult(folder, **docs, reused=[name for name, _, _ in RECORDS])


@dataclass
class _Analysis:
    """The stages of one analysis in a run folder, in order; each method is one stage,
    its computation the pipeline's and its result a file."""

    folder: Path
    model: MLP
    data: Dataset
    k: int
    progress: Callable[[str, int, int], None] | None
    stages: Stages

    def activations(self):
        """Every neuron's activation on every image (a memory-mapped store)."""
        t = time.perf_counter()
        store = open_store(self.folder / "activations", self.model, self.data)
        if store is None:
            store = build_store(self.folder / "activations", self.model, self.data,
                                progress=P._stage(self.progress, "activations"))
        else:
            self.stages.reused.append("activations")
        self.stages.seconds["activations"] = time.perf_counter() - t
        return store

    def dead(self, store) -> dict:
        return self.stages.run(
            "dead", self.folder / "dead.json", P.settings("dead", self.k),
            lambda: P.dead_stage(self.model, store),
            message="dead neurons: checking every hidden neuron on the data, then by "
                    "optimisation")

    def examples(self, store) -> dict:
        path = self.folder / EXAMPLES

        def compute():
            per_layer = P.examples_stage(self.model, self.data, store, self.k, self.progress)
            return {"k": self.k, "n_train": store.n_train, "images": store.n_images,
                    "layers": save_examples(path, per_layer)}

        return self.stages.run("examples", self.folder / "examples.json",
                               P.settings("examples", self.k), compute, arrays=path,
                               message=f"dataset examples: top-{self.k} images and averages "
                                       "of every neuron")

    def visualizations(self) -> dict[str, np.ndarray]:
        path = self.folder / VISUALIZATIONS

        def compute():
            atomic_write_npz(path, **P.visualizations_stage(self.model, self.progress))
            return {}

        self.stages.run("visualizations", self.folder / "visualizations.json",
                        P.settings("visualizations", self.k), compute, arrays=path,
                        message="visualising every neuron (the default VisConfig, with revive)")
        with np.load(path) as z:
            return {name: z[name] for name in z.files}

    def clusters(self, store, vis: dict[str, np.ndarray], examples: dict) -> dict:
        return self.stages.run(
            "clusters", self.folder / "clusters.json", P.settings("clusters", self.k),
            lambda: P.clusters_stage(self.model, store, vis, examples),
            message="clusters: correlations over the dataset, co-risers under optimisation")

    def layers(self, vis, dead: dict, examples: dict, groups: dict) -> dict:
        def compute():
            doc = P.layers_stage(self.model, self.data, vis, dead, examples, groups,
                                 load_examples(self.folder / EXAMPLES))
            atomic_write_text(self.folder / "layers.md", C.markdown(doc["table"],
                                                                    doc["claims"]))
            return doc

        return self.stages.run("layers", self.folder / "layers.json",
                               P.settings("layers", self.k), compute,
                               message="layer statistics and the paper's claims")
