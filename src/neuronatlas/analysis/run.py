"""``neuronatlas analyze``: the analysis stages of a run folder, each resumable.

Every stage writes its result atomically with the model's hash and its settings;
a rerun skips a stage whose result matches both, and redoes one that does not
(another model, another k, a half-written file), never trusting a stale cache.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..data import MNIST
from ..fileio import atomic_write_json, ensure_dir
from ..nn.mlp import MLP
from .activations import activation_store, model_sha256
from .dead import dead_neurons
from .examples import check_k, dataset_examples, save_examples

Log = Callable[[str], None]


@dataclass
class AnalysisResult:
    folder: Path
    dead: dict
    examples: dict
    seconds: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)


def _cached(path: Path, sha: str, settings: dict) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if doc.get("model_sha256") != sha or doc.get("settings") != settings:
        return None
    return doc


def analyze(run_dir: str | Path, model: MLP, data: MNIST, *, k: int = 16,
            progress: Callable[[str, int, int], None] | None = None,
            log: Log = lambda m: None) -> AnalysisResult:
    """Activations over all images, dead neurons, dataset examples (see each module)."""
    check_k(k, len(data.train_x) + len(data.test_x))
    folder = ensure_dir(Path(run_dir) / "analysis")
    sha = model_sha256(model)
    seconds, reused = {}, []

    def stage_progress(name):
        return (lambda done, total: progress(name, done, total)) if progress else None

    t = time.perf_counter()
    store = activation_store(run_dir, model, data, progress=stage_progress("activations"))
    seconds["activations"] = time.perf_counter() - t

    t = time.perf_counter()
    dead_path = folder / "dead.json"
    settings = {"restarts": 4}
    dead = _cached(dead_path, sha, settings)
    if dead is None:
        log("dead neurons: checking every hidden neuron on the data, then by optimisation")
        dead = {**dead_neurons(model, store).to_dict(), "model_sha256": sha,
                "settings": settings}
        atomic_write_json(dead_path, dead)
    else:
        reused.append("dead")
    seconds["dead"] = time.perf_counter() - t

    t = time.perf_counter()
    ex_path, ex_json = folder / "examples.npz", folder / "examples.json"
    settings = {"k": k}
    examples = _cached(ex_json, sha, settings) if ex_path.is_file() else None
    if examples is None:
        log(f"dataset examples: top-{k} images and averages of every neuron")
        per_layer = dataset_examples(store, data, k, progress=stage_progress("examples"))
        summary = save_examples(ex_path, per_layer)
        examples = {"model_sha256": sha, "settings": settings, "k": k,
                    "n_train": store.n_train, "images": store.n_images,
                    "arrays": ex_path.name, "layers": summary}
        atomic_write_json(ex_json, examples)
    else:
        reused.append("examples")
    seconds["examples"] = time.perf_counter() - t
    return AnalysisResult(folder, dead, examples, seconds, reused)
