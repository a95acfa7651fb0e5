"""``neuronatlas reproduce``: the paper end to end, stage by stage, reusing what exists.

Stages: the model (trained with the paper's schedule, reused, resumed from its
checkpoint, or taken from ``--model``), its test accuracy, the analysis (dead neurons,
dataset examples, clusters, layer claims), the data of each of Figures 1-7
(``figures/data/figN.npz``, see :mod:`experiments`), the figures themselves
(``figures/figN.png`` and ``.pdf``), the atlas, and ``report.md`` + ``report.html``:
every figure beside the paper's caption and a table of the paper's numbers against
this run's. Each stage is skipped when its record matches the model and settings, so a
rerun only redoes what changed and rewrites no file when nothing did. The seconds a
stage took when it was computed are kept in ``reproduce.json`` and shown in the report.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import experiments as E
from . import paper
from .analysis.activations import model_sha256
from .analysis.claims import markdown as claims_markdown
from .analysis.examples import load_examples
from .analysis.run import AnalysisResult, analyze
from .config import TrainConfig, VisConfig
from .data import Dataset, check_fits, load_dataset
from .errors import RunFolderError
from .evaluate import evaluate, save_evaluation
from .fileio import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_npz,
    atomic_write_text,
    ensure_dir,
)
from .nn.mlp import MLP, PAPER_SIZES
from .runs import analysed_k, check_owner, locks_run, run_dataset
from .stages import Log, Progress, Stages, file_sha256
from .train import CHECKPOINT, Reporter, train
from .vis.visualize import visualize

FIGURE_STYLE = 1  # bump when figures.py draws differently: every figure is redrawn
NAMES = [f"fig{k}" for k in range(1, 8)]


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
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check_owner(run: Path, config: TrainConfig) -> None:
    """A run folder trained (or being trained) with another schedule is not ours to reuse."""
    try:
        saved = json.loads((run / "config.json").read_text())["train"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    keys = ("sizes", "epochs", "fine_tune_epochs", "lr", "fine_tune_lr", "batch_size")
    mine = config.to_dict()
    if not isinstance(saved, dict):
        raise RunFolderError(f"{run}/config.json is not a neuronatlas run config; use another "
                             "--run")
    if any(saved.get(k) != mine[k] for k in keys if k in saved):
        theirs = f"{saved.get('epochs')} + {saved.get('fine_tune_epochs')} epochs"
        raise RunFolderError(
            f"{run} belongs to another training config ({theirs}, config.json); "
            f"this call asks for {config.epochs} + {config.fine_tune_epochs}: use another --run")


def _data_for(model: MLP, data_spec, data_dir, log: Log) -> Dataset:
    """A Dataset given as such (checked to fit), or the one named or recorded."""
    if isinstance(data_spec, Dataset):
        check_fits(model, data_spec)
        return data_spec
    return run_dataset(model, data_spec, data_dir, log=log)


def obtain_model(run: Path, data_spec: str | Dataset | None, data_dir, *, quick: bool,
                 model_path: Path | None, activation, reporter: Reporter | None, log: Log,
                 data_log: Log) -> tuple[MLP, Dataset, str]:
    """The run's model and its dataset: a given model, the run's own (whatever network
    and data it was trained on), resumed from a checkpoint, or the paper's trained now."""
    if model_path is not None:
        model = MLP.load(model_path, activation=activation)
        if (run / "model.safetensors").is_file():
            try:
                check_owner(run, model)
            except RunFolderError:
                raise RunFolderError(f"{run} holds another model (model.safetensors); give "
                                     f"--model {model_path} a run folder of its own (--run)"
                                     ) from None
        return model, _data_for(model, data_spec, data_dir, data_log), (
            f"loaded from {model_path}")
    config = TrainConfig.quick() if quick else TrainConfig()
    if (run / "model.safetensors").is_file():  # whatever network and data it holds ...
        if quick:  # ... unless --quick asks for the quick schedule's model
            _check_owner(run, config)
        model = MLP.load(run / "model.safetensors", activation=activation)
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
    if (run / "metrics.jsonl").is_file() and not resume:
        raise RunFolderError(f"{run} has metrics but neither a model nor a checkpoint; "
                             "use another --run or remove it")
    log("resuming the interrupted training" if resume else
        f"training ({config.total_epochs} epochs)")
    result = train(data, None if resume else config, run, resume=resume, reporter=reporter)
    if not result.completed:
        raise KeyboardInterrupt
    return result.model, data, "resumed and finished" if resume else "trained now"


@locks_run("reproduce")
def reproduce(run_dir: str | Path, *, dataset: str | Dataset | None = None, data_dir=None,
              quick: bool = False, model_path: Path | None = None, activation=None,
              reporter: Reporter | None = None, log: Log = lambda m: None,
              progress: Progress | None = None, atlas: bool = True,
              data_log: Log = lambda m: None) -> Path:
    """Train or reuse the model, analyse it, draw Figures 1-7, build the atlas and write
    the report; returns the path of ``report.md``. ``dataset`` defaults to the one the
    model was made for (MNIST for the paper's network trained here)."""
    run = ensure_dir(run_dir)
    model, data, how = obtain_model(run, dataset, data_dir, quick=quick, model_path=model_path,
                                    activation=activation, reporter=reporter, log=log,
                                    data_log=data_log)
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
    eval_path = run / "evaluation-test.json"
    before = file_sha256(eval_path)
    save_evaluation(run, ev, str(model_path or run / "model.safetensors"), data.identity)
    if file_sha256(eval_path) != before:
        ctx.computed("evaluate", time.perf_counter() - t, f"{ev.n} test images")

    result = analyze(run, model, data, k=analysed_k(run), log=log, progress=progress)
    for name, seconds in result.seconds.items():
        if name not in result.reused:
            ctx.computed(f"analysis: {name}", seconds)
        elif f"analysis: {name}" not in times["stages"]:  # computed by `analyze` before
            recorded = _recorded_seconds(result.folder / f"{name}.json")
            if recorded is not None:
                ctx.computed(f"analysis: {name}", recorded, "by neuronatlas analyze")

    with np.load(result.folder / "visualizations.npz") as z:  # ranks neurons for Figs 1, 6, 7
        ranking = (z["targets"], z["ratio"], z["activation"])
    fig_data = {name: _figure_data(ctx, name, result, ranking) for name in NAMES}
    for name in NAMES:
        _draw(ctx, name, fig_data[name])
    if atlas:
        _atlas(ctx, progress)
    readable = _readability(ctx, progress)
    _save_times(run, times)

    doc = _report_markdown(ctx, how, ev.accuracy, metrics, result, fig_data, readable)
    atomic_write_text(run / "report.md", doc)
    atomic_write_text(run / "report.html", _html(doc))
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
def _figure_inputs(ctx: Context, name: str, ranking: tuple[np.ndarray, ...]) -> dict:
    """The chosen neurons a figure depends on (part of its cache key); ``ranking``: the
    analysis' visualisations (targets, ratio, activation)."""
    spec = E.SPECS[name]
    if name not in ("fig1", "fig6", "fig7"):
        return {}
    targets, ratio, act = ranking

    def pick(layer: int, n: int) -> list[int]:
        return E.most_selective(targets, ratio, act, E.hidden_layer(ctx.model, layer), n)

    if name == "fig1":
        layers = dict.fromkeys(E.hidden_layer(ctx.model, l) for l in spec["hidden_layers"])
        return {"hidden": [[l, i] for l in layers for i in pick(l, 1)]}
    return {"chosen": [pick(s["layer"], spec["per_set"]) for s in spec["sets"]]}


def _compute_figure(ctx: Context, name: str, inputs: dict, analysis: AnalysisResult) -> dict:
    spec, m = E.SPECS[name], ctx.model
    if name == "fig1":
        return E.fig1_data(m, spec, inputs["hidden"])
    if name == "fig2":
        return E.fig2_data(m, ctx.data, spec)
    if name == "fig3":
        means = load_examples(analysis.folder / "examples.npz")[m.n_layers].mean_p99
        return E.fig3_data(m, spec, means)
    if name in ("fig4", "fig5"):
        return E.grid_data(m, spec)
    return E.selected_data(m, spec, inputs["chosen"])


def _figure_data(ctx: Context, name: str, analysis: AnalysisResult,
                 ranking: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    folder = ctx.run / "figures" / "data"
    arrays = folder / f"{name}.npz"
    inputs = _figure_inputs(ctx, name, ranking)

    def compute() -> dict:
        atomic_write_npz(arrays, **_compute_figure(ctx, name, inputs, analysis))
        return {}

    settings = {"spec": E.SPECS[name], "version": E.DATA_VERSION,
                "vis_defaults": VisConfig().to_dict(), **inputs}
    doc = ctx.stages.run(name, folder / f"{name}.json", settings, compute, arrays=arrays,
                         message=f"{name}: computing its data")
    if name not in ctx.stages.reused:
        ctx.computed(f"{name} data", doc["seconds"])
    with np.load(arrays) as z:
        return {k: z[k] for k in z.files}


def _draw(ctx: Context, name: str, arrays: dict[str, np.ndarray]) -> None:
    """figures/figN.png and .pdf, redrawn only when their data or the style changed."""
    from .figures import FIGURES, figure_bytes

    folder = ctx.run / "figures"
    png, pdf = folder / f"{name}.png", folder / f"{name}.pdf"
    look = {"shape": list(ctx.model.input_shape), "class_names": list(ctx.model.class_names),
            "dataset": "MNIST" if ctx.data.name == "mnist" else ctx.data.name}
    settings = {"data_sha256": file_sha256(folder / "data" / f"{name}.npz"),
                "style": FIGURE_STYLE, **look}
    record = folder / "data" / f"{name}-drawn.json"
    doc = ctx.stages.cached(record, settings, png)
    if doc is not None and doc.get("pdf_sha256") == file_sha256(pdf):
        return
    t = time.perf_counter()
    fig = FIGURES[name](**arrays, shape=ctx.model.input_shape,
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
    from .figures import fig_methods, figure_bytes
    from .judges import load_judges
    from .readability import benchmark, data_stats, pick_targets
    from .vis.presets import candidate_methods

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
            res = visualize(ctx.model, chosen, config)
            images.append(res.images)
            act.append(res.activation)
        natural = np.stack([ctx.data.train_x[stats.top9[l][i]].mean(axis=0) for l, i in chosen])
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
        fig = fig_methods(**{k: z[k] for k in z.files}, shape=ctx.model.input_shape,
                          dataset=ctx.data.name)
    atomic_write_bytes(png, figure_bytes(fig, "png"))
    return doc["benchmark"]


def _readability_markdown(out: dict) -> list[str]:
    from .readability import markdown as table

    def row(name: str, key: str, layer: int) -> float:
        return out["methods"][name]["layers"][str(layer)].get(key, float("nan"))

    hidden = [int(l) for l, r in out["methods"]["readable"]["layers"].items()
              if "two_choice" in r]
    tc = " / ".join(f"{100 * row('readable', 'two_choice', l):.0f}" for l in hidden)
    nat = " / ".join(f"{100 * row('readable', 'natural', l):.0f}" for l in hidden)
    pap = " / ".join(f"{100 * row('paper', 'two_choice', l):.0f}" for l in hidden)
    at = " / ".join(f"{100 * row('readable', 'at_train_max', l):.0f}" for l in hidden)
    return [
        "## Beyond the paper: readable visualisations", "",
        "The paper's method (`--preset paper`) beside the field's methods adapted to a dense "
        "network on grey images, measured per layer (`neuronatlas.readability`; the full "
        "run over every neuron is `benchmarks/vis_quality.py`, docs/vis_quality.md). "
        "*Two-choice*: of pairs of held-out test images, one from the neuron's top 5% and one "
        "from its 40-60% band, how often the one more similar (Pearson) to the picture is the "
        "stronger; *natural*: the same with the neuron's top-9 training images as the "
        "reference (people scored 82% with synthetic and 92% with natural references on conv "
        "nets, Borowski et al. 2021). *Reached*: activation as a share of the neuron's "
        "highest over all images; *at train max*: the share of neurons whose picture "
        "activates them at least as much as their strongest training image.", "",
        f"The `readable` preset (the atlas's tiles) in hidden layers {hidden[0]}-{hidden[-1]}: "
        f"two-choice {tc}% against natural {nat}% and the paper's method {pap}%; "
        f"{at}% of neurons at or above their training maximum.", "",
        "![the same neurons under each method](figures/methods.png)", "",
        table(out),
    ]


def _atlas(ctx: Context, progress) -> None:
    from .atlas.build import build_atlas

    t = time.perf_counter()
    manifest = ctx.run / "atlas" / "manifest.json"
    before = file_sha256(manifest)
    build_atlas(ctx.run, ctx.model, ctx.data, progress=progress, log=ctx.log)
    if file_sha256(manifest) != before:
        ctx.computed("atlas", time.perf_counter() - t)


# --- the report ----------------------------------------------------------------------
def _pct(p: float, digits: int = 2) -> str:
    return f"{100 * p:.{digits}f}%"


def _target(t) -> str:
    return f"{int(t[0])}:{int(t[1])}"


def _range(values, fmt: str = "{:.3f}") -> str:
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    return "n/a" if v.size == 0 else f"{fmt.format(v.min())}–{fmt.format(v.max())}"


def _numbers_table(ev_acc: float, metrics: list[dict], analysis: AnalysisResult,
                   fd: dict[str, dict], hidden: int, paper_setting: bool = True) -> list[str]:
    P = paper.NUMBERS
    ema = metrics[-1]["ema_loss"] if metrics else None
    f2 = fd["fig2"]
    reached = int((f2["steps_to_confidence"] >= 0).sum())
    target_p = f2["probs_adversarial"][np.arange(len(f2["targets"])), f2["targets"]]
    l2 = np.linalg.norm(f2["adversarials"].astype(np.float64) - f2["originals"], axis=1)
    ex = P["fig2_example"]
    pair = np.flatnonzero((f2["labels"] == ex["label"]) & (f2["targets"] == ex["target"]))
    dead = analysis.dead
    silent = sum(len(d["silent_on_data"]) for d in dead["layers"].values())
    f5 = fd["fig5"]["ratio"]
    rows = [
        ("test accuracy", _pct(P["test_accuracy"]), _pct(ev_acc)),
        ("final EMA of the training loss", f"≈ {P['final_ema_loss']}",
         f"{ema:.4f}" if ema is not None else "n/a (model not trained here)"),
        (f"adversarial examples (Fig. 2) reach confidence > {P['adversarial_confidence']}",
         "yes (\"over 0.99\")",
         f"{reached} of {len(f2['targets'])} pairs (target probability "
         f"{_range(target_p, '{:.4f}')}, L2 change {_range(l2, '{:.2f}')})"),
    ]
    if pair.size and paper_setting:
        i = int(pair[0])
        rows.append((f"Fig. 2 example: a {ex['label']}, then pushed to {ex['target']}",
                     f"{_pct(ex['original'], 4)} → {_pct(ex['adversarial'], 4)}",
                     f"{_pct(f2['probs_original'][i][ex['label']], 4)} → "
                     f"{_pct(f2['probs_adversarial'][i][ex['target']], 4)}"))
    rows += [
        ("output-neuron visualisations reach high activation (Fig. 3, 100 steps)",
         "high (not given)", _range(fd["fig3"]["activation"], "{:.3f}")),
        (f"Fig. 5: largest ratio of {_target(fd['fig5']['target'])} to the next-highest neuron",
         f"{P['fig5_max_ratio']}", f"{np.nanmax(np.where(np.isfinite(f5), f5, np.nan)):.2f}"),
        ("dead neurons", "\"a minority\"",
         f"{silent} of {hidden} hidden neurons silent on all {dead['images']} images; "
         f"{dead['total_dead']} "
         "also unreachable by optimisation"),
    ]
    if not paper_setting:
        return ["| quantity | this run |", "|---|---|"] + [f"| {a} | {c} |" for a, _, c in rows]
    lines = ["| quantity | paper | this run |", "|---|---|---|"]
    return lines + [f"| {a} | {b} | {c} |" for a, b, c in rows]


def _figure_notes(name: str, d: dict) -> str:
    """One line of this run's numbers under each figure."""
    if name == "fig1":
        return (f"Activations unclipped {_range(d['activation_raw'], '{:.3g}')}, clipped "
                f"{_range(d['activation_clipped'], '{:.3g}')}; pixel range unclipped "
                f"{_range(d['images_raw'], '{:.2f}')}, clipped "
                f"{_range(d['images_clipped'], '{:.2f}')}.")
    if name == "fig2":
        steps = d["steps_to_confidence"]
        reached = ", ".join(str(s) if s >= 0 else "not reached" for s in steps)
        return (f"Steps to > {E.SPECS['fig2']['confidence']}: {reached} "
                f"(test images {', '.join(map(str, d['index']))}).")
    if name == "fig3":
        return f"Activations {_range(d['activation'], '{:.4f}')}."
    if name == "fig4":
        return f"Activations {_range(d['activation'], '{:.4f}')}."
    if name == "fig5":
        return (f"Ratios {_range(d['ratio'], '{:.2f}')}, activations "
                f"{_range(d['activation'], '{:.3g}')}.")
    top1 = d["top3_probs"][:, 0]
    return (f"Ratios {_range(d['ratio'], '{:.2f}')}; top output probability "
            f"{_range(top1, '{:.2f}')}.")


def _settings_line(name: str) -> str:
    spec = E.SPECS[name]
    return "Settings: " + ", ".join(f"{k} {v}" for k, v in spec.items()) + "."


def _report_markdown(ctx: Context, how: str, ev_acc: float, metrics: list[dict],
                     analysis: AnalysisResult, fd: dict[str, dict], readable: dict) -> str:
    m = ctx.model
    if metrics:
        how = f"trained here ({len(metrics)} epochs, see metrics.jsonl)"
    elif how == "reused from the run folder":
        source = m.metadata.get("imported_from")
        how = (f"imported from {source}" if source else
               "taken from the run folder (not trained by this run)")
    data = ctx.data
    acts = "/".join(sorted({a.spec for a in m.activation_fns})) or "no hidden layer"
    # the paper's numbers are for a ReLU network on MNIST; other settings are not compared
    paper_setting = data.name == "mnist" and m.all_relu and m.sizes[0] == PAPER_SIZES[0] and (
        m.sizes[-1] == PAPER_SIZES[-1])
    title = ("# Reproduction of Auer, *Visualising the Hidden Neurons of a Non-convolutional "
             "DNN Trained on the MNIST Database*" if paper_setting else
             f"# Auer's experiments on a {'-'.join(map(str, m.sizes))} {acts} network "
             f"({data.name})")
    numbers = (["## The paper's numbers beside this run's", ""] if paper_setting else [
        "## This run's numbers", "",
        f"Skipped: the comparison with the paper's numbers, which are for its ReLU network on "
        f"MNIST (98.06% test accuracy, ...); this is a {acts} network on {data.name}.", ""])
    n_images = len(data.train_x) + len(data.test_x)
    lines = [
        title, "",
        f"Model: {'-'.join(map(str, m.sizes))}, {acts}, {how}; sha256 of its weights "
        f"`{ctx.stages.sha[:16]}`. Dataset: {data.name} ({n_images:,} images of "
        f"{'x'.join(map(str, data.shape))}, {data.n_classes} classes; sha256 "
        f"`{data.identity['sha256'][:16]}`).", "",
        *numbers,
        *_numbers_table(ev_acc, metrics, analysis, fd, sum(m.sizes[1:-1]), paper_setting), "",
        "## The paper's claims, layer by layer", "",
        f"Measured over all {n_images:,} {data.name} images and the visualisation of every "
        "neuron (analysis/; see `neuronatlas analyze`).", "",
        claims_markdown(analysis.layers["table"], analysis.layers["claims"]),
        "## Figures", "",
        "Each figure is redrawn by this run from `figures/data/figN.npz`; below it, the "
        "paper's caption, then this run's settings and numbers. The paper gives no "
        "learning rate for its visualisations: see `experiments.py` for each choice.", "",
    ]
    for k, name in enumerate(NAMES, 1):
        lines += [f"### Figure {k}", "", f"![Figure {k}](figures/{name}.png)", "",
                  f"> **Paper:** {paper.CAPTIONS[name]}", "",
                  f"**This run:** {_figure_notes(name, fd[name])} {_settings_line(name)}", ""]
    lines += [*_readability_markdown(readable), ""]
    lines += ["## Stages", "",
              "Seconds each stage took when it was last computed (a rerun reuses them).", "",
              "| stage | seconds | note |", "|---|---|---|"]
    for name, st in ctx.times["stages"].items():
        sec = "—" if st["seconds"] is None else f"{st['seconds']:.1f}"
        lines.append(f"| {name} | {sec} | {st.get('note', '')} |")
    return "\n".join(lines) + "\n"


def _html(markdown_text: str) -> str:
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>neuronatlas report</title><style>"
            "body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;"
            "padding:0 1em;color:#222}img{max-width:100%;border:1px solid #ddd}"
            "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}"
            "blockquote{color:#555;border-left:4px solid #ccc;margin:0;padding:0 1em}"
            "code{background:#f3f3f3;padding:0 3px}</style></head><body>\n"
            f"{body}\n</body></html>\n")
