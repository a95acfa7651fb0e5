"""The paper's training loop: SGD on shuffled batches, the two-phase schedule, the
EMA of the loss, per-epoch metrics and checkpoints, bit-exact resume. The step itself
(forward, SoftMax + cross-entropy, backward and update on one batch) is
:class:`~neuronatlas.nn.sgd_step.SGDStep`; the checkpoint format is :mod:`.checkpoint`.

Reproducibility: one ``numpy.random.Generator`` seeded from ``config.seed`` draws
the initial weights and then one permutation per epoch. A checkpoint stores the
generator's state *at the start of the current epoch* and how many batches of it
are done, so resuming redraws the same permutation and continues with the same
bits, whether the run stopped at an epoch boundary or on Ctrl-C mid-epoch.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .checkpoint import TrainState, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import Dataset
from .errors import (
    CheckpointError,
    ConfigError,
    NeuronatlasError,
    RunFolderError,
    TrainingDivergedError,
)
from .fileio import (
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    ensure_dir,
)
from .layout import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    MODEL,
    REPLACED,
    SNAPSHOTS,
    model_file,
    snapshot_file,
)
from .nn.mlp import MLP
from .nn.sgd_step import SGDStep
from .reprs import short_repr
from .runs import locks_run


@dataclass
class TrainResult:
    """What :func:`train` returns: the model, where training stands, the per-epoch metrics
    and whether it ran to the end. Example::

        res = na.train(data, na.TrainConfig.quick())
        res.model, res.metrics[-1]["test_accuracy"], res.completed
    """

    model: MLP
    state: TrainState
    metrics: list[dict]
    completed: bool  # False when stopped early (Ctrl-C or ``stop_after``)
    snapshots: list[Snapshot] = field(default_factory=list)  # ``snapshots=K``, in step order

    __repr__ = short_repr  # arrays by their shape, not their numbers


@dataclass
class Snapshot:
    """The network as it was after ``step`` SGD steps (0: its initial weights)."""

    step: int
    epoch: float  # steps / steps per epoch: 2.5 is half-way through the third epoch
    model: MLP

    __repr__ = short_repr


def snapshot_steps(k: int, total_steps: int) -> tuple[int, ...]:
    """``k`` steps evenly spaced from 0 (the initial weights) to ``total_steps`` (the end),
    both included; fewer when the run has fewer steps than that."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ConfigError(f"snapshots must be an integer >= 2 (the initial weights and the "
                          f"end, with evenly spaced steps between), got {k!r}")
    return tuple(sorted({round(i * total_steps / (k - 1)) for i in range(k)}))


def _snapshot_taker(k: int, total_steps: int, steps_per_epoch: int, run: Path | None
                    ) -> tuple[Callable[[MLP, int], None], list[Snapshot]]:
    """(``take(model, step)``, the list it fills): a copy of the model at each of the
    ``k`` steps (written to RUN/snapshots/ too when there is a run folder); a no-op at
    every other step."""
    wanted = frozenset(snapshot_steps(k, total_steps)) if k else frozenset()
    kept: list[Snapshot] = []

    def take(model: MLP, step: int) -> None:
        if step not in wanted or not all(np.isfinite(p).all() for p in model.weights):
            return  # (non-finite weights: the epoch's end reports the divergence)
        copy = model.copy()  # its metadata: what it is, never what the model was loaded from
        copy.metadata = {"snapshot_step": str(step), "snapshots": str(k)}
        kept.append(Snapshot(step, step / steps_per_epoch, copy))
        if run is not None:
            copy.save(snapshot_file(run, step))
    return take, kept


def _earlier_snapshots(run: Path, k: int, steps_per_epoch: int, before: int
                       ) -> list[Snapshot]:
    """The snapshots a resumed run took before step ``before`` (in RUN/snapshots/), so that
    its result holds them all; snapshots taken with another K (or none asked now) are
    refused: the folder would hold a mixture of two spacings, silently."""
    folder = run / SNAPSHOTS
    files = sorted(folder.glob("step-*.safetensors")) if folder.is_dir() else []
    found = []
    for path in files:
        snap = MLP.load(path)
        if snap.metadata.get("snapshots") != str(k):
            had = snap.metadata.get("snapshots", "another number of")
            raise ConfigError(f"{folder} holds snapshots of this run taken with snapshots="
                              f"{had}; resume with the same (--snapshots {had}), or start "
                              "again with --overwrite")
        step = int(snap.metadata["snapshot_step"])
        if step < before:
            found.append(Snapshot(step, step / steps_per_epoch, snap))
    return sorted(found, key=lambda s: s.step)


class Reporter(Protocol):
    """What the loop tells a progress display; all methods are optional no-ops."""

    def start(self, total_steps: int, done_steps: int, steps_per_epoch: int) -> None: ...
    def advance(self, steps: int, ema_loss: float, lr: float) -> None: ...
    def epoch_end(self, record: dict) -> None: ...
    def close(self) -> None: ...


class _Silent:
    def start(self, total_steps, done_steps, steps_per_epoch): pass
    def advance(self, steps, ema_loss, lr): pass
    def epoch_end(self, record): pass
    def close(self): pass


def accuracy(model: MLP, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(model.predict(x) == y))


@contextmanager
def _deferred_sigint():
    """Turn Ctrl-C into a flag checked between steps, so a step is never cut in half."""
    flag = {"hit": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["hit"]:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        flag["hit"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def check_config_fits_data(config: TrainConfig, x: np.ndarray, y: np.ndarray) -> None:
    """The network's input and output sizes and the batch size must fit the data."""
    if config.sizes[0] != x.shape[1]:
        raise ConfigError(f"sizes start with {config.sizes[0]} inputs but the images have "
                          f"{x.shape[1]} pixels")
    if config.sizes[-1] < int(y.max()) + 1:
        raise ConfigError(f"sizes end with {config.sizes[-1]} outputs but the labels need "
                          f"{int(y.max()) + 1}")
    if config.batch_size > len(x):
        raise ConfigError(f"batch_size {config.batch_size} is larger than the {len(x)} "
                          "training images")


def check_memory(config: TrainConfig) -> None:
    """A network whose weights (float64 while they are drawn, then float32, a copy in the
    checkpoint writer, and the step's buffers) cannot fit in this machine's memory is one
    clear error before anything is allocated or replaced."""
    params = sum(i * o for i, o in zip(config.sizes, config.sizes[1:]))
    need = 12 * max(i * o for i, o in zip(config.sizes, config.sizes[1:])) + 8 * params
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > have:
        raise ConfigError(f"sizes {','.join(map(str, config.sizes))} make {params:,} weights, "
                          f"which need about {need / 2**30:.0f} GiB; this machine has "
                          f"{have / 2**30:.0f} GiB")


def dataset_metadata(data: Dataset) -> dict[str, str]:
    """What a model records of the data it was trained on: name, content hash, and the
    path of a user's file (so later commands load the same data)."""
    meta = {"dataset": data.name, "dataset_sha256": data.identity["sha256"]}
    if data.spec and data.spec != data.name:
        meta["dataset_path"] = data.spec
    return meta


def _check_checkpoint_data(model: MLP, data: Dataset, run: Path) -> None:
    recorded = model.metadata.get("dataset_sha256")
    if recorded and recorded != data.identity["sha256"]:
        raise CheckpointError(
            f"the checkpoint in {run} was trained on {model.metadata.get('dataset')} "
            f"(sha256 {recorded[:12]}...), not on {data.name} (sha256 "
            f"{data.identity['sha256'][:12]}...); resume with the same --dataset")


def _drop_metrics_after(path: Path, epoch: int) -> None:
    """Forget records of epochs the checkpoint does not hold (a kill between the two)."""
    if not path.is_file():
        return
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    keep = [l for l in lines if json.loads(l).get("epoch", 0) <= epoch]
    if len(keep) != len(lines):
        atomic_write_text(path, "".join(l + "\n" for l in keep))


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Create the run folder; refuse to clobber a previous run unless asked. With
    ``overwrite`` a finished run moves to ``RUN/replaced/`` and is deleted only once the
    new model is saved: a new run that fails (diverges, fills the disk) costs nothing."""
    ensure_dir(run_dir)
    existing = [p for p in (MODEL, CHECKPOINT, METRICS, SNAPSHOTS)
                if (run_dir / p).exists()]
    if resume or not existing:
        return
    if not overwrite:
        raise RunFolderError(
            f"{run_dir} already holds a run ({', '.join(existing)}); pass --resume to "
            "continue it, --overwrite to start again, or choose another --run"
        )
    if not model_file(run_dir).exists():  # an unfinished run: nothing to keep
        for p in existing:
            shutil.rmtree(run_dir / p) if p == SNAPSHOTS else (run_dir / p).unlink()
        return
    kept = run_dir / REPLACED
    if kept.exists():
        shutil.rmtree(kept)
    for p in [*existing, CONFIG]:
        if (run_dir / p).exists():
            ensure_dir((kept / p).parent)
            os.replace(run_dir / p, kept / p)


@locks_run("train in")
def train(data: Dataset, config: TrainConfig | None = None, run_dir: str | Path | None = None,
          *, model: MLP | None = None, resume: bool = False, overwrite: bool = False,
          stop_after: int | None = None, reporter: Reporter | None = None,
          should_stop: Callable[[TrainState], bool] | None = None, snapshots: int = 0
          ) -> TrainResult:
    """Train an MLP with ``config``'s schedule on ``data``; write the run folder if one
    is given (the model records the dataset). Example::

        res = na.train(na.load_dataset("fashion-mnist"),
                       na.TrainConfig(sizes=(784, 256, 10), activation="gelu"), "runs/f")

    ``model`` (optional) is trained in place instead of a fresh Kaiming-initialised
    one. ``config=None`` means the paper's config, or the checkpoint's when resuming.
    ``stop_after`` stops, resumably, once that many epochs are done; ``should_stop`` is
    asked after every step and acts like Ctrl-C.
    ``snapshots=K`` keeps K copies of the network (:func:`snapshot_steps`) in
    ``result.snapshots``, and in RUN/snapshots/ with a run folder (without one, nothing is
    written); a resumed run keeps those from where it resumed.
    """
    reporter = reporter or _Silent()
    run = Path(run_dir) if run_dir is not None else None
    if snapshots:  # before _start: a bad value must not cost a run it would replace
        snapshot_steps(snapshots, 1)
    model, state, config, rng = _start(data, config, run, model, resume=resume,
                                       overwrite=overwrite)
    x, y = data.train_x, data.train_y
    steps_per_epoch = len(x) // config.batch_size  # the last partial batch is dropped
    step = SGDStep(model, config.batch_size, config.lr_at(state.epoch), config.grad_scale)
    metrics: list[dict] = []
    last_epoch = config.total_epochs if stop_after is None else min(stop_after,
                                                                    config.total_epochs)
    reporter.start(config.total_epochs * steps_per_epoch,
                   state.epoch * steps_per_epoch + state.step_in_epoch, steps_per_epoch)
    take, kept = _snapshot_taker(snapshots, config.total_epochs * steps_per_epoch,
                                 steps_per_epoch, run)
    if resume and run is not None:
        kept[:0] = _earlier_snapshots(run, snapshots, steps_per_epoch, state.global_step)
    take(model, state.global_step)  # the initial weights (or where a resumed run stands)
    interrupted = False
    try:
        with _deferred_sigint() as sigint, _mention_replaced(run):
            stop = lambda: sigint["hit"] or (should_stop is not None  # noqa: E731
                                             and should_stop(state))
            while state.epoch < last_epoch and not interrupted:
                interrupted = _epoch(step, x, y, state, config, rng, reporter, stop, run,
                                     take)
                if not interrupted:
                    metrics.append(_end_epoch(model, data, state, config, rng, reporter, run))
            if interrupted and run is not None:
                save_checkpoint(run / CHECKPOINT, model, state, config)
    finally:
        reporter.close()
    completed = state.epoch == config.total_epochs
    if completed and run is not None:
        with _mention_replaced(run):
            _save_model(model, data, config, metrics, run)
        shutil.rmtree(run / REPLACED, ignore_errors=True)
    return TrainResult(model, state, metrics, completed, kept)


@contextmanager
def _mention_replaced(run: Path | None):
    """A run that fails after --overwrite says where the run it replaced is kept."""
    try:
        yield
    except NeuronatlasError as exc:
        if run is None or not model_file(run / REPLACED).exists():
            raise
        raise type(exc)(f"{exc}; the run --overwrite replaced is kept in {run / REPLACED}"
                        ) from None


REPORT_EVERY = 50  # steps between progress updates (and the EMA kept in the state)


def _start(data: Dataset, config: TrainConfig | None, run: Path | None, model: MLP | None,
           *, resume: bool, overwrite: bool):
    """The model, state, config and generator to train with: from the run's checkpoint
    (``resume``) or fresh. Everything is checked and allocated before an old run folder
    is replaced (a size that cannot be allocated must not cost it)."""
    if resume:
        if run is None:
            raise CheckpointError("resume needs a run folder")
        if not (run / CHECKPOINT).is_file():
            raise CheckpointError(f"--resume: no checkpoint in {run / CHECKPOINT}; run "
                                  "without --resume to start training")
        model, state, saved = load_checkpoint(run / CHECKPOINT)
        _check_checkpoint_data(model, data, run)
        config = config or saved
        if saved != config:
            diff = {k: (v, config.to_dict()[k]) for k, v in saved.to_dict().items()
                    if config.to_dict()[k] != v}
            raise CheckpointError(
                f"the checkpoint in {run} was written under another config "
                f"(checkpoint vs now: {diff}); resume with the same flags or use another --run"
            )
    else:
        config = config or TrainConfig()
        _check_given_model(model, config)
    check_config_fits_data(config, data.train_x, data.train_y)
    check_memory(config)
    rng = np.random.default_rng(config.seed)
    if resume:
        rng.bit_generator.state = state.rng_state
    else:  # the model first: a size that cannot be allocated must not cost the old run
        if model is None:
            names = data.class_names if len(data.class_names) == config.sizes[-1] else None
            model = MLP.init(config.sizes, rng=rng, activation=config.activation,
                             input_shape=data.shape if data.n_inputs == config.sizes[0] else None,
                             class_names=names)
        model.metadata.update(dataset_metadata(data))
        state = TrainState(rng_state=rng.bit_generator.state)
    # only now, with everything checked and allocated, may an old run be replaced
    if run is not None:
        prepare_run_dir(run, resume=resume, overwrite=overwrite)
        if resume:
            _drop_metrics_after(run / METRICS, state.epoch)
        atomic_write_json(run / CONFIG, {"train": config.to_dict(),
                                                "dataset": data.identity})
    return model, state, config, rng


def _check_given_model(model: MLP | None, config: TrainConfig) -> None:
    """A model passed in must have the config's sizes and activations."""
    if model is None:
        return
    if model.sizes != config.sizes:
        raise ConfigError(f"model sizes {model.sizes} differ from config {config.sizes}")
    acts = ",".join(a.spec for a in model.activation_fns)
    if TrainConfig(sizes=config.sizes, activation=acts).activation != config.activation:
        raise ConfigError(f"the model's activations ({acts}) differ from the config's "
                          f"({config.activation})")


def _epoch(step: SGDStep, x: np.ndarray, y: np.ndarray, state: TrainState,
           config: TrainConfig, rng: np.random.Generator, reporter: Reporter, stop,
           run: Path | None, take: Callable[[MLP, int], None]) -> bool:
    """The rest of the current epoch (from ``state.step_in_epoch``), in the epoch's own
    shuffle, ``take`` asked after every step for a snapshot; returns True when
    ``stop()`` interrupted it."""
    B, decay = config.batch_size, config.ema_decay
    lr = config.lr_at(state.epoch)
    step.set_lr(lr)
    rng.bit_generator.state = state.rng_state  # the epoch's shuffle, also when resuming
    perm = rng.permutation(len(x))
    t0 = time.perf_counter()
    ema, keep, pending = state.ema_raw, 1.0 - decay, 0
    interrupted = False
    for s in range(state.step_in_epoch, len(x) // B):
        with np.errstate(all="ignore"):  # a diverging step is reported once, just below
            loss = step(x[perm[s * B : (s + 1) * B]], y[perm[s * B : (s + 1) * B]])
        if not math.isfinite(loss):
            raise _diverged(f"loss became {loss} at epoch {state.epoch + 1}, step {s + 1}",
                            lr, run)
        ema = decay * ema + keep * loss  # the paper's moving average of the loss
        state.global_step += 1
        state.step_in_epoch = s + 1
        take(step.model, state.global_step)
        pending += 1
        if pending == REPORT_EVERY:
            state.ema_raw, pending = ema, 0
            reporter.advance(REPORT_EVERY, state.ema_loss(decay), lr)
        if stop():
            interrupted = True
            break
    state.ema_raw = ema
    reporter.advance(pending, state.ema_loss(decay), lr)
    state.epoch_seconds += time.perf_counter() - t0
    # a step's loss is taken before its update: the last update may have diverged unseen
    if not all(np.isfinite(p).all() for p in (*step.model.weights, *step.model.biases)):
        raise _diverged(f"the weights became NaN or infinite in epoch {state.epoch + 1}", lr,
                        run)
    return interrupted


def _diverged(what: str, lr: float, run: Path | None) -> TrainingDivergedError:
    """The error of a diverging run: what went non-finite, and what is kept."""
    kept = ("; the last good checkpoint is kept in " + str(run / CHECKPOINT)
            if run is not None and (run / CHECKPOINT).is_file()
            else "; no checkpoint was written yet")
    return TrainingDivergedError(f"{what} (lr {lr}){kept}; try a smaller learning rate")


def _end_epoch(model: MLP, data: Dataset, state: TrainState, config: TrainConfig,
               rng: np.random.Generator, reporter: Reporter, run: Path | None) -> dict:
    """The epoch's record (test accuracy measured now), the state moved to the next epoch,
    and in a run folder its checkpoint, then its line of metrics.jsonl."""
    record = {
        "epoch": state.epoch + 1,
        "lr": config.lr_at(state.epoch),
        "ema_loss": state.ema_loss(config.ema_decay),
        "test_accuracy": accuracy(model, data.test_x, data.test_y),
        "seconds": round(state.epoch_seconds, 3),
    }
    state.epoch += 1
    state.step_in_epoch = 0
    state.epoch_seconds = 0.0
    state.rng_state = rng.bit_generator.state
    reporter.epoch_end(record)
    if run is not None:  # checkpoint first: a record never outruns it
        save_checkpoint(run / CHECKPOINT, model, state, config)
        append_jsonl(run / METRICS, record)
    return record


def _save_model(model: MLP, data: Dataset, config: TrainConfig, metrics: list[dict],
                run: Path) -> None:
    """The trained model, recording its config and test accuracy."""
    test_acc = metrics[-1]["test_accuracy"] if metrics else accuracy(
        model, data.test_x, data.test_y)
    model.metadata.update(config=json.dumps(config.to_dict()), test_accuracy=f"{test_acc:.4f}")
    model.save(model_file(run))
