"""A run folder's own facts that several commands read: its model, its dataset, who owns
it, and its analysis k.

One run folder holds the artefacts of one model. A model given with ``--model`` and
no ``--run`` gets its own folder (``runs/<model name>``); a command that would write
one model's artefacts into a folder that belongs to another refuses with one line.
The dataset a model is evaluated, analysed and drawn on is the one it records (it was
trained or imported on it) unless the user names another.
"""

from __future__ import annotations

import fcntl
import functools
import inspect
import json
import os
import re
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .config import TrainConfig
from .data import NAMED, Dataset, check_fits, load_dataset
from .errors import DataError, ModelFileError, RunFolderError
from .fileio import MISSING, atomic_write_json, ensure_dir, file_problem, remove_stale_temps, shown
from .layout import CHECKPOINT, LOCK, OWNER, analysis_dir, model_file
from .nn.mlp import MLP, PAPER_SIZES, model_sha256

DEFAULT_K = 16  # dataset examples per neuron when the run has no analysis yet
RUNS = Path("runs")
PAPER_RUN = RUNS / "paper"
QUICK_RUN = RUNS / "quick"  # reproduce --quick: the full run's folder is not the quick one's


def model_name(path: Path) -> str:
    """``runs/<name>`` for a model file: its folder's name for ``.../model.safetensors``,
    else the file's stem; anything but letters, digits, ``.``, ``_`` and ``-`` becomes ``_``."""
    path = Path(path)
    stem = path.parent.resolve().name if path.stem == "model" else path.stem
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem) or "model"


def default_run(run_dir: Path | None, model: Path | None) -> Path:
    """The run folder a command uses: the one given, the model's own, or runs/paper."""
    if run_dir is not None:
        return run_dir
    return RUNS / model_name(model) if model is not None else PAPER_RUN


def train_run(config: TrainConfig, dataset: str) -> Path:
    """runs/paper for the paper's network on MNIST, else a name that says what it is."""
    if dataset == "mnist" and config.sizes == PAPER_SIZES and config.activation == "relu":
        return PAPER_RUN
    name = Path(dataset).stem if dataset not in NAMED else dataset
    act = config.activation.split(",")[0].replace(":", "")
    return RUNS / f"{name}-{act}-{'-'.join(map(str, config.sizes[1:-1])) or 'linear'}"


def model_path(run_dir: Path, model: Path | None = None) -> Path:
    """``model`` when given, else the run's ``model.safetensors``, which must exist; when
    it does not, the error says what will make it (train, resume, or another --run)."""
    if model is not None:
        _check_model_file(model, "model file")
        return model
    path = model_file(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist; {_make_one(run_dir)}, "
                             "or pass --model PATH")
    if not path.exists() and (run_dir / CHECKPOINT).is_file():
        raise ModelFileError(f"the training in {run_dir} was interrupted before its model was "
                             f"saved; continue it with neuronatlas train --run {run_dir} "
                             "--resume (or rerun the reproduce that started it)")
    if not path.exists():
        raise ModelFileError(f"no model at {path}; {_make_one(run_dir)}, or pass --model PATH")
    _check_model_file(path, "model")
    return path


def _make_one(run_dir: Path) -> str:
    """How to make the model of ``run_dir``."""
    if Path(run_dir) == PAPER_RUN:
        return "make it with neuronatlas reproduce (or neuronatlas train)"
    return f"train one with neuronatlas train --run {run_dir}"


def _check_model_file(path: Path, what: str) -> None:
    """A model path that exists but is no file (a folder, a device such as /dev/zero, a
    FIFO) is named for what it is, never read."""
    why = file_problem(path)
    if why == MISSING:
        raise ModelFileError(f"{what} not found: {shown(path)}")
    if why is not None:
        raise ModelFileError(f"{what} {shown(path)} {why}")


def run_model(run_dir: Path, model: Path | None = None, *, activation=None, input_shape=None
              ) -> tuple[MLP, Path]:
    """The model of the run (or ``model``, which must then be the run's own model if it
    has one); ``activation`` and ``input_shape`` for files that do not record theirs."""
    path = model_path(run_dir, model)
    net = MLP.load(path, activation=activation, input_shape=input_shape)
    if model is not None:
        check_owner(run_dir, net)
    return net, path


def open_model(path: str | Path, *, activation=None) -> MLP:
    """The model at ``path``: a run folder's (its ``model.safetensors``) or a model file
    (``activation`` for one that does not record its activations)."""
    path = Path(path)
    if path.is_dir():
        return run_model(path, activation=activation)[0]
    return MLP.load(model_path(path.parent, path), activation=activation)


def shared_dataset(models: list[MLP], dataset: str | None = None, data_dir=None, *,
                   log=None) -> Dataset:
    """The data several models are compared on: ``dataset`` when named, else the one
    they all record (models made on different data need it named: never one of them
    picked behind the user's back); it must fit every model."""
    if dataset is None:
        recorded = {m.metadata.get("dataset_sha256") or m.metadata.get("dataset_path")
                    or m.metadata.get("dataset") for m in models}
        if len(recorded) > 1:
            names = sorted({str(m.metadata.get("dataset", "unknown"))[:40] for m in models})
            raise DataError(f"the networks were made on different data ({', '.join(names)}): "
                            "name the images to compare them on with --dataset")
    data = run_dataset(models[0], dataset, data_dir, log=log)
    for m in models[1:]:
        check_fits(m, data)
    return data


def check_owner(run_dir: Path, model: MLP) -> None:
    """Refuse to mix: a folder whose model.safetensors (or owner.json) is another model's."""
    sha = model_sha256(model)
    own = model_file(run_dir)
    theirs = None
    if own.is_file():
        try:
            theirs = model_sha256(MLP.load(own))
        except ModelFileError:
            theirs = "unreadable"
    else:
        try:
            theirs = json.loads((run_dir / OWNER).read_text())["model_sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            theirs = None
    if theirs is not None and theirs != sha:
        raise RunFolderError(f"{run_dir} holds the artefacts of another model; give this "
                             "model a run folder of its own (--run DIR, or leave --run out)")


def claim(run_dir: Path, model: MLP) -> None:
    """Record which model the folder's artefacts belong to (after :func:`check_owner`)."""
    check_owner(run_dir, model)
    if not model_file(run_dir).is_file():
        atomic_write_json(run_dir / OWNER, {"model_sha256": model_sha256(model)})


def run_dataset(model: MLP, dataset: str | None = None, data_dir=None, *, log=None) -> Dataset:
    """The data to use with ``model``: ``dataset`` when the user names one, else the one
    the model records; either way it must fit the model (input size, classes)."""
    if dataset is None:
        recorded = model.metadata.get("dataset_path") or model.metadata.get("dataset")
        if not recorded:
            raise DataError("the model does not record the dataset it was made for: pass "
                            "--dataset mnist, fashion-mnist or PATH.npz")
        if recorded not in NAMED and not Path(recorded).is_file():
            raise DataError(f"the model was made on {recorded[:80]!r}, which is neither a "
                            "dataset name nor a file here: pass --dataset mnist, fashion-mnist "
                            "or PATH.npz")
        data = load_dataset(recorded, data_dir, log=log)
        sha = model.metadata.get("dataset_sha256")
        if sha and sha != data.identity["sha256"]:
            raise DataError(f"{recorded} is no longer the data the model was made from "
                            f"(sha256 {data.identity['sha256'][:12]}..., recorded "
                            f"{sha[:12]}...); pass --dataset to use it anyway")
    else:
        data = load_dataset(dataset, data_dir, log=log)
    check_fits(model, data)
    return data


@dataclass
class RunLock:
    """The proof that this caller holds a run folder's lock, handed down to the functions
    it calls (``lock=``) so that they write under it instead of taking it again: no
    process-global record of who holds what (two threads of one Dask worker are two
    writers, and the second is refused like any other)."""

    folder: Path  # resolved
    what: str
    held: bool = True  # False once the ``with`` block that took it has ended

    def covers(self, run_dir: str | Path) -> bool:
        return self.held and Path(run_dir).resolve() == self.folder


@contextmanager
def writing(run_dir: str | Path, what: str, held: RunLock | None = None):
    """Hold the run folder's lock while ``what`` writes into it; yields a :class:`RunLock`.
    A second writer (another process or thread: two ``analyze`` at once once saved a wrong
    analysis) is refused with one line naming the holder (the lock file says which process
    on which host, doing what, since when); readers never take it. ``held``: a lock the
    caller already holds on this folder (``reproduce`` runs ``analyze`` and ``atlas`` under
    its own), used as it is."""
    if held is not None:
        if not held.covers(run_dir):
            raise RunFolderError(f"the lock held on {held.folder} does not cover {run_dir}")
        yield held
        return
    made = not Path(run_dir).exists()
    folder = ensure_dir(run_dir)
    f = open(folder / LOCK, "a+b")  # read and written through its descriptor only
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderError(f"{folder} is being written by another neuronatlas command"
                                 f"{_holder(f)}; wait for it to finish before you {what} it, "
                                 "or use another --run") from None
        _say_holder(f, what)
        remove_stale_temps(folder)  # the half-writes of a writer that was killed
        lock = RunLock(folder.resolve(), what)
        try:
            yield lock
        finally:
            lock.held = False
            if made:  # refused or failed before writing anything: no empty folder left
                _remove_if_only_lock(folder)
            fcntl.flock(f, fcntl.LOCK_UN)
    finally:
        f.close()


def _remove_if_only_lock(folder: Path) -> None:
    """Remove a folder this command made when it holds nothing but its lock file."""
    try:
        if os.listdir(folder) == [LOCK]:
            os.unlink(folder / LOCK)
            os.rmdir(folder)
    except OSError:
        pass


def _say_holder(f, what: str) -> None:
    """Write who holds the lock into the lock file (best effort: a full disk must not stop
    the command that holds it)."""
    record = {"pid": os.getpid(), "host": socket.gethostname(), "doing": what,
              "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:  # unbuffered: nothing is left for close() to fail on
        os.ftruncate(f.fileno(), 0)
        os.pwrite(f.fileno(), (json.dumps(record) + "\n").encode(), 0)
    except OSError:
        pass


def _holder(f) -> str:
    """`` (process 123 on host h, doing analyze since ...)``, or nothing when unreadable."""
    try:
        rec = json.loads(os.pread(f.fileno(), 4096, 0))
        return (f" (process {int(rec['pid'])} on {str(rec['host'])[:64]}, "
                f"{str(rec['doing'])[:40]}, since {str(rec['since'])[:32]})")
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def locks_run(what: str, arg: str = "run_dir"):
    """Decorate a function that writes into the run folder named by its ``arg`` parameter
    (None: no folder, no lock) so that it holds :func:`writing`'s lock. The decorated
    function takes ``lock=``, a :class:`RunLock` its caller already holds on that folder;
    a function that declares a ``lock`` parameter itself receives the lock it runs under,
    to hand down to what it calls."""
    def decorate(fn):
        signature = inspect.signature(fn)
        hands_down = "lock" in signature.parameters

        @functools.wraps(fn)
        def locked(*args, lock: RunLock | None = None, **kwargs):
            run = signature.bind_partial(*args, **kwargs).arguments.get(arg)
            if run is None:
                return fn(*args, **kwargs)
            with writing(run, what, held=lock) as held:
                return fn(*args, **kwargs, **({"lock": held} if hands_down else {}))
        return locked
    return decorate


def analysed_k(run_dir: Path) -> int:
    """The k of the run's dataset examples, so that a later command reuses them."""
    try:
        k = json.loads((analysis_dir(run_dir) / "examples.json").read_text())["k"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_K
    return k if isinstance(k, int) and not isinstance(k, bool) and k > 0 else DEFAULT_K
