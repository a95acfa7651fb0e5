"""``neuronatlas reproduce``: the paper end to end, stage by stage, reusing what exists.

Stages: the model (trained with the paper's schedule, reused, resumed from its
checkpoint, or taken from ``--model``), its test accuracy, the analysis (dead neurons,
dataset examples, clusters, layer claims), the data of each of Figures 1-7
(``figures/data/figN.npz``), the figures themselves (``figures/figN.png`` and ``.pdf``;
each figure's whole definition is one module, :mod:`.figures.fig3` for Figure 3), the
atlas, the readability benchmark, and ``report.md`` + ``report.html`` (written by
:mod:`.report`): every figure beside the paper's caption and a table of the paper's
numbers against this run's. Each stage is skipped when its record matches the model and
settings, so a rerun only redoes what changed and rewrites no file when nothing did. The
seconds a stage took when it was computed are kept in ``reproduce.json`` and shown in the
report.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .analysis.activations import model_sha256
from .analysis.run import AnalysisResult, analyze_run
from .config import TrainConfig, VisConfig
from .data import Dataset, check_fits, load_dataset
from .errors import RunFolderError
from .evaluate import evaluate, save_evaluation
from .figures import FIGURES, figure_bytes
from .figures.common import DATA_VERSION
from .figures.drawing import STYLE
from .fileio import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_npz,
    atomic_write_text,
    ensure_dir,
)
from .layout import CHECKPOINT, CONFIG, METRICS, VISUALIZATIONS, evaluation_file, model_file
from .nn.mlp import MLP
from .report import RunFacts, report_html, report_markdown
from .runs import RunLock, analysed_k, check_owner, locks_run, run_dataset
from .stages import Log, Progress, Stages, file_sha256
from .train import Reporter, train
from .vis.visualize import visualize


@dataclass
class Context:
    """What every stage of one reproduce call shares."""

    run: Path
    model: MLP
    data: Dataset
    stages: Stages
    times: dict  # reproduce.json: {"stages": {name: {"seconds", "note"}}}
    log: Log

    def computed(self, name: str, seconds: float, note: str = "") -> None:
        self.times["stages"][name] = {"seconds": round(seconds, 1), "note": note}


def _read_metrics(run: Path) -> list[dict]:
    path = run / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check_owner(run: Path, config: TrainConfig) -> None:
    """A run folder trained (or being trained) with another schedule is not ours to reuse."""
    try:
        saved = json.loads((run / CONFIG).read_text())["train"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    keys = ("sizes", "epochs", "fine_tune_epochs", "lr", "fine_tune_lr", "batch_size")
    mine = config.to_dict()
    if not isinstance(saved, dict):
        raise RunFolderError(f"{run}/config.json is not a neuronatlas run config; use another "
                             "--run")
    differ = [k for k in keys if k in saved and saved[k] != mine[k]]
    if differ:
        def shown(v) -> str:
            return ",".join(map(str, v)) if isinstance(v, list | tuple) else str(v)[:40]

        what = "; ".join(f"{k} {shown(saved[k])} there, {shown(mine[k])} asked" for k in differ)
        raise RunFolderError(f"{run} belongs to another training config (config.json: {what})"
                             "; use another --run")


def _data_for(model: MLP, data_spec, data_dir, log: Log) -> Dataset:
    """A Dataset given as such (checked to fit), or the one named or recorded."""
    if isinstance(data_spec, Dataset):
        check_fits(model, data_spec)
        return data_spec
    return run_dataset(model, data_spec, data_dir, log=log)


def obtain_model(run: Path, data_spec: str | Dataset | None, data_dir, *, quick: bool,
                 model_path: Path | None, activation, reporter: Reporter | None, log: Log,
                 data_log: Log, lock: RunLock | None = None) -> tuple[MLP, Dataset, str]:
    """The run's model and its dataset: a given model, the run's own (whatever network
    and data it was trained on), resumed from a checkpoint, or the paper's trained now."""
    if model_path is not None:
        model = MLP.load(model_path, activation=activation)
        if model_file(run).is_file():
            try:
                check_owner(run, model)
            except RunFolderError:
                raise RunFolderError(f"{run} holds another model (model.safetensors); give "
                                     f"--model {model_path} a run folder of its own (--run)"
                                     ) from None
        return model, _data_for(model, data_spec, data_dir, data_log), (
            f"loaded from {model_path}")
    config = TrainConfig.quick() if quick else TrainConfig()
    if model_file(run).is_file():  # whatever network and data it holds ...
        if quick:  # ... unless --quick asks for the quick schedule's model
            _check_owner(run, config)
        model = MLP.load(model_file(run), activation=activation)
        return model, _data_for(model, data_spec, data_dir, data_log), (
            "reused from the run folder")
    _check_owner(run, config)
    data = (data_spec if isinstance(data_spec, Dataset)
            else load_dataset(data_spec or "mnist", data_dir, log=data_log))
    if data.name != "mnist":
        raise RunFolderError(f"reproduce trains the paper's network on MNIST; to use "
                             f"{data.name}, train a model on it first (neuronatlas train "
                             "--dataset ...) and reproduce on its run folder")
    resume = (run / CHECKPOINT).is_file()
    if (run / METRICS).is_file() and not resume:
        raise RunFolderError(f"{run} has metrics but neither a model nor a checkpoint; "
                             "use another --run or remove it")
    log("resuming the interrupted training" if resume else
        f"training ({config.total_epochs} epochs)")
    result = train(data, None if resume else config, run, resume=resume, reporter=reporter,
                   lock=lock)
    if not result.completed:
        raise KeyboardInterrupt
    return result.model, data, "resumed and finished" if resume else "trained now"


@locks_run("reproduce")
def reproduce(run_dir: str | Path, *, dataset: str | Dataset | None = None, data_dir=None,
              quick: bool = False, model_path: Path | None = None, activation=None,
              reporter: Reporter | None = None, log: Log = lambda m: None,
              progress: Progress | None = None, atlas: bool = True, readability: bool = True,
              data_log: Log = lambda m: None, lock: RunLock | None = None) -> Path:
    """Train or reuse the model, analyse it, draw Figures 1-7, build the atlas, run the
    readability benchmark (``readability=False`` skips it: minutes on a large network) and
    write the report; returns the path of ``report.md``. ``dataset`` defaults to the one
    the model was made for (MNIST for the paper's network trained here)."""
    run = ensure_dir(run_dir)
    model, data, how = obtain_model(run, dataset, data_dir, quick=quick, model_path=model_path,
                                    activation=activation, reporter=reporter, log=log,
                                    data_log=data_log, lock=lock)
    times = _load_times(run)
    ctx = Context(run, model, data, Stages(model_sha256(model), log, data.identity["sha256"]),
                  times, log)
    metrics = _read_metrics(run) if model_path is None else []  # another model's otherwise
    if metrics:
        ctx.computed("model", sum(m["seconds"] for m in metrics),
                     f"trained here: {len(metrics)} epochs")
    elif model_path is not None:
        ctx.times["stages"]["model"] = {"seconds": None, "note": how}

    t = time.perf_counter()
    ev = evaluate(model, data.test_x, data.test_y, "test")
    eval_path = evaluation_file(run, "test")
    before = file_sha256(eval_path)
    save_evaluation(run, ev, str(model_path or model_file(run)), data.identity)
    if file_sha256(eval_path) != before:
        ctx.computed("evaluate", time.perf_counter() - t, f"{ev.n} test images")

    result = analyze_run(run, model, data, k=analysed_k(run), log=log, progress=progress,
                         lock=lock)
    _analysis_times(ctx, result)

    with np.load(result.folder / VISUALIZATIONS) as z:  # ranks neurons for Figs 1, 6, 7
        ranking = (z["targets"], z["ratio"], z["activation"])
    fig_data = {}
    for i, name in enumerate(FIGURES):  # a bar: Figure 2's data alone can take minutes
        if progress:
            progress("figures", i, len(FIGURES))
        fig_data[name] = _figure_data(ctx, name, result, ranking)
        _draw(ctx, name, fig_data[name])
    if progress:
        progress("figures", len(FIGURES), len(FIGURES))
    if atlas:
        _atlas(ctx, progress, lock)
    readable = _readability(ctx, progress) if readability else None
    _save_times(run, times)

    facts = RunFacts(model, data, ctx.stages.sha, times["stages"])
    doc = report_markdown(facts, how, ev.accuracy, metrics, result, fig_data, readable)
    atomic_write_text(run / "report.md", doc)
    atomic_write_text(run / "report.html", report_html(doc))
    return run / "report.md"


# --- stage times ---------------------------------------------------------------------
def _load_times(run: Path) -> dict:
    try:
        doc = json.loads((run / "reproduce.json").read_text())
        if isinstance(doc, dict) and isinstance(doc.get("stages"), dict):
            return doc
    except (OSError, ValueError):
        pass
    return {"stages": {}}


def _recorded_seconds(record: Path) -> float | None:
    try:
        seconds = json.loads(record.read_text()).get("seconds")
    except (OSError, ValueError, AttributeError):
        return None
    return float(seconds) if isinstance(seconds, (int, float)) else None


def _save_times(run: Path, times: dict) -> None:
    atomic_write_json(run / "reproduce.json", times)


# --- figures -------------------------------------------------------------------------
def _figure_data(ctx: Context, name: str, analysis: AnalysisResult,
                 ranking: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    folder = ctx.run / "figures" / "data"
    arrays = folder / f"{name}.npz"
    figure = FIGURES[name]
    inputs = figure.inputs(ctx.model, ranking)

    def compute() -> dict:
        atomic_write_npz(arrays, **figure.compute(ctx.model, ctx.data, analysis.folder, inputs))
        return {}

    settings = {"spec": figure.spec, "version": DATA_VERSION,
                "vis_defaults": VisConfig().to_dict(), **inputs}
    doc = ctx.stages.run(name, folder / f"{name}.json", settings, compute, arrays=arrays,
                         message=f"{name}: computing its data")
    if name not in ctx.stages.reused:
        ctx.computed(f"{name} data", doc["seconds"])
    with np.load(arrays) as z:
        return {k: z[k] for k in z.files}


def _draw(ctx: Context, name: str, arrays: dict[str, np.ndarray]) -> None:
    """figures/figN.png and .pdf, redrawn only when their data or the style changed."""
    folder = ctx.run / "figures"
    png, pdf = folder / f"{name}.png", folder / f"{name}.pdf"
    look = {"shape": list(ctx.model.input_shape), "class_names": list(ctx.model.class_names),
            "dataset": "MNIST" if ctx.data.name == "mnist" else ctx.data.name}
    settings = {"data_sha256": file_sha256(folder / "data" / f"{name}.npz"),
                "style": STYLE, **look}
    record = folder / "data" / f"{name}-drawn.json"
    doc = ctx.stages.cached(record, settings, png)
    if doc is not None and doc.get("pdf_sha256") == file_sha256(pdf):
        return
    t = time.perf_counter()
    fig = FIGURES[name].draw(**arrays, shape=ctx.model.input_shape,
                             class_names=ctx.model.class_names, dataset=look["dataset"])
    atomic_write_bytes(pdf, figure_bytes(fig, "pdf"))
    atomic_write_bytes(png, figure_bytes(fig, "png"))
    atomic_write_json(record, {"model_sha256": ctx.stages.sha,
                               "dataset_sha256": ctx.stages.data_sha, "settings": settings,
                               "arrays": png.name, "arrays_sha256": file_sha256(png),
                               "pdf_sha256": file_sha256(pdf)})
    ctx.computed(f"{name} drawn", time.perf_counter() - t)


# --- beyond the paper: readable visualisations ---------------------------------------
READABILITY_PER_LAYER = 64  # neurons per hidden layer (all of the output); the docs' run
READABILITY_SEEDS = 3  # has every neuron and 5 seeds (benchmarks/vis_quality.py)
METHOD_FIGURE_PER_LAYER = 1  # neurons of each layer in the methods figure


def _readability(ctx: Context, progress) -> dict:
    """The readability benchmark on a sample of neurons (cached as a stage), and the
    figure of the same neurons under each method (figures/methods.png)."""
    from .figures.methods import draw_methods
    from .judges import load_judges
    from .readability import benchmark, candidate_methods, data_stats, pick_targets

    methods = candidate_methods()
    folder = ensure_dir(ctx.run / "readability")
    arrays = folder / "methods.npz"

    def compute() -> dict:
        judges = load_judges(ctx.data, log=ctx.log)
        out = benchmark(ctx.model, ctx.data, methods, judges,
                        per_layer=READABILITY_PER_LAYER, seeds=READABILITY_SEEDS,
                        accentuate=VisConfig.preset("accentuate"), log=ctx.log)
        stats = data_stats(ctx.model, ctx.data)
        chosen = pick_targets(ctx.model.sizes, METHOD_FIGURE_PER_LAYER, seed=1)
        chosen = [t for t in chosen if t[0] < ctx.model.n_layers] + [
            (ctx.model.n_layers, 0), (ctx.model.n_layers, 1)]
        images, act = [], []
        for config in methods.values():
            res = visualize(ctx.model, chosen, config, magnitude=stats.magnitude,
                            prototypes=stats.prototypes)
            images.append(res.images)
            act.append(res.activation)
        natural = np.stack([ctx.data.train_x[stats.top9(l)[i]].mean(axis=0) for l, i in chosen])
        atomic_write_npz(arrays, methods=np.array(list(methods)), targets=np.array(chosen),
                         images=np.stack(images), activation=np.stack(act), natural=natural)
        return {"benchmark": out}

    settings = {"methods": {k: v.to_dict() for k, v in methods.items()},
                "accentuate": VisConfig.preset("accentuate").to_dict(),
                "per_layer": READABILITY_PER_LAYER, "seeds": READABILITY_SEEDS,
                "figure_per_layer": METHOD_FIGURE_PER_LAYER}
    doc = ctx.stages.run("readability", folder / "readability.json", settings, compute,
                         arrays=arrays, message="beyond the paper: the readability benchmark")
    if "readability" not in ctx.stages.reused:
        ctx.computed("readability benchmark", doc["seconds"],
                     f"{doc['benchmark']['targets']} neurons, {len(methods)} methods")
    png = ctx.run / "figures" / "methods.png"
    with np.load(arrays) as z:
        fig = draw_methods(**{k: z[k] for k in z.files}, shape=ctx.model.input_shape,
                          dataset=ctx.data.name)
    atomic_write_bytes(png, figure_bytes(fig, "png"))
    return doc["benchmark"]


def _analysis_times(ctx: Context, result: AnalysisResult) -> None:
    """Each analysis stage's seconds: this run's, or those recorded when ``analyze``
    computed it before."""
    for name, seconds in result.seconds.items():
        if name not in result.reused:
            ctx.computed(f"analysis: {name}", seconds)
        elif f"analysis: {name}" not in ctx.times["stages"]:
            recorded = _recorded_seconds(result.folder / f"{name}.json")
            if recorded is not None:
                ctx.computed(f"analysis: {name}", recorded, "by neuronatlas analyze")


def _atlas(ctx: Context, progress, lock: RunLock) -> None:
    from .make_atlas import build_atlas

    t = time.perf_counter()
    manifest = ctx.run / "atlas" / "manifest.json"
    before = file_sha256(manifest)
    build_atlas(ctx.run, ctx.model, ctx.data, progress=progress, log=ctx.log, lock=lock)
    if file_sha256(manifest) != before:
        ctx.computed("atlas", time.perf_counter() - t)
