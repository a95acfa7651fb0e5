"""A study's spec (``SPEC.toml``): the networks to train or import, and which to compare.

The keys are the options of ``neuronatlas train``, written as on the command line::

    dataset = "fashion-mnist"
    sizes = "784,256,128,10"
    activation = ["relu", "gelu"]     # an array makes the key an axis
    seed = [0, 1, 2]
    epochs = 1
    fine-tune-epochs = 0

The networks are the product of the axes (here 2 x 3 = 6), in the order the keys are
written, each named by its values on the axes (``activation=gelu,seed=1``). Besides:
``import = ["a.onnx", "b.safetensors"]`` adds models as they are (a table
``{path = ..., activation = ...}`` for a state_dict that does not record its
activations); ``snapshots = K`` keeps K snapshots of every trained network over its
training; ``compare = "seed"`` pairs the networks that differ only along that axis
(default: every pair with the same input); ``preset = "paper"`` the method of every
neuron's picture (and of its filmstrip over the snapshots; default ``readable``, the
atlas's tiles); ``atlas = true`` builds every network's atlas too, linked from the page.
Parsing is pure: nothing is read but the spec's own text and nothing is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..data import NAMED
from ..errors import ConfigError, NeuronatlasError
from ..fileio import MISSING, file_problem, shown
from ..vis.presets import PRESETS

#: ``neuronatlas train``'s options as spec keys, and the TrainConfig field of each
TRAIN_KEYS = {f.name.replace("_", "-"): f.name for f in dataclasses.fields(TrainConfig)}
OTHER_TRAIN_KEYS = ("dataset", "quick")
STUDY_KEYS = ("import", "snapshots", "preset", "compare", "atlas")
KEYS = (*TRAIN_KEYS, *OTHER_TRAIN_KEYS, *STUDY_KEYS)
DEFAULT_PRESET = "readable"  # the atlas's tiles
MAX_NETWORKS = 10_000  # a product of axes beyond this is a typing mistake, not a study


class SpecError(ConfigError):
    """A study spec that cannot be run as written; the message names the key."""


@dataclass(frozen=True)
class NetworkSpec:
    """One network of the study: trained from ``config`` on ``dataset``, or imported from
    ``source`` (then ``config`` is None)."""

    name: str  # its run folder under the study's folder
    axes: dict[str, Any]  # its value on each axis (empty for an import)
    dataset: str  # a dataset name or a .npz path
    config: TrainConfig | None = None
    source: Path | None = None  # an imported model file
    activation: str | None = None  # for an imported state_dict that does not record it
    snapshots: int = 0


@dataclass(frozen=True)
class StudySpec:
    """What :func:`parse_spec` makes of a spec."""

    networks: tuple[NetworkSpec, ...]
    axes: tuple[str, ...]  # the keys written as arrays, in order
    compare: str | None
    preset: str  # the pictures' method (a name of vis.presets.PRESETS)
    text_sha256: str  # of the spec as written: a study folder belongs to one spec
    atlas: bool = False  # build every network's atlas (linked from the study page)
    settings: dict = field(default_factory=dict, compare=False)  # the parsed document


def load_spec(path: str | Path) -> StudySpec:
    """Read and parse ``SPEC.toml`` (paths in it are relative to its folder)."""
    path = Path(path)
    why = file_problem(path)
    if why is not None:
        raise SpecError(f"study spec {shown(path)} " + ("not found" if why == MISSING else why))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the study spec {shown(path)}: {exc}") from None
    return parse_spec(text, base=path.parent)


def parse_spec(text: str, *, base: Path = Path(".")) -> StudySpec:
    """The :class:`StudySpec` of a spec's TOML ``text``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"the study spec is not valid TOML: {exc}") from None
    unknown = [k for k in doc if k not in KEYS]
    if unknown:
        raise SpecError(f"unknown key {unknown[0]!r} in the study spec{_did_you_mean(unknown[0])}"
                        f"; the keys are {', '.join(KEYS)}")
    axes = tuple(k for k, v in doc.items() if isinstance(v, list) and k not in STUDY_KEYS)
    for k in axes:
        if not doc[k]:
            raise SpecError(f"{k} = [] is an empty axis: give it at least one value")
    compare = _scalar(doc, "compare", str)
    if compare is not None and compare not in axes:
        raise SpecError(f"compare = {compare!r} names no axis of the study; its axes are "
                        f"{', '.join(axes) or 'none (no key is an array)'}")
    preset = _scalar(doc, "preset", str)
    if preset is not None and preset not in PRESETS:
        raise SpecError(f"preset = {preset!r} is none of {', '.join(PRESETS)}")
    snapshots = _scalar(doc, "snapshots", int) or 0
    if snapshots and snapshots < 2:
        raise SpecError(f"snapshots = {snapshots}: keep at least 2 (the initial weights and "
                        "the end)")
    trained = _trained(doc, axes, snapshots, base)
    imported = _imported(doc, base)
    networks = (*trained, *imported)
    names = [n.name for n in networks]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise SpecError(f"two networks of the study are both named {dup!r}")
    return StudySpec(networks, axes, compare, preset or DEFAULT_PRESET,
                     hashlib.sha256(text.encode()).hexdigest(),
                     bool(_scalar(doc, "atlas", bool)), doc)


def _did_you_mean(key: str) -> str:
    near = key.replace("_", "-")
    return f" (did you mean {near!r}?)" if near != key and near in KEYS else ""


def _scalar(doc: dict, key: str, kind: type):
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise SpecError(f"{key} must be a single {kind.__name__}, got {value!r}")
    return value


def _trained(doc: dict, axes: tuple[str, ...], snapshots: int, base: Path
             ) -> list[NetworkSpec]:
    """Every network of the product of the axes (none when only imports are given)."""
    given = [k for k in doc if k in TRAIN_KEYS or k in OTHER_TRAIN_KEYS]
    if not given and "import" in doc:
        return []
    count = 1
    for k in axes:
        count *= len(doc[k])
    if count > MAX_NETWORKS:
        raise SpecError(f"the axes make {count:,} networks, more than {MAX_NETWORKS:,}")
    out = []
    for values in itertools.product(*(doc[k] for k in axes)):
        point = dict(zip(axes, values))
        settings = {k: point.get(k, doc[k]) for k in given}
        name = _name(point)
        dataset = settings.pop("dataset", "mnist")
        if not isinstance(dataset, str):
            raise SpecError(f"{name}: dataset must be a name or a path, got {dataset!r}")
        out.append(NetworkSpec(name, point, _data_path(dataset, base), _config(name, settings),
                               snapshots=snapshots))
    return out


def _data_path(dataset: str, base: Path) -> str:
    """A dataset's name as it is, a path made absolute from the spec's folder (a worker in
    another folder finds it, and the task's key does not change with the current folder)."""
    if dataset in NAMED:
        return dataset
    path = Path(dataset)
    return str((path if path.is_absolute() else base / path).absolute())


def _config(name: str, settings: dict) -> TrainConfig:
    """The TrainConfig of one network, each value checked by TrainConfig itself."""
    quick = settings.pop("quick", False)
    if not isinstance(quick, bool):
        raise SpecError(f"{name}: quick must be true or false, got {quick!r}")
    fields = {}
    for key, value in settings.items():
        if key == "sizes":
            value = _sizes(name, value)
        if isinstance(value, list | dict):
            raise SpecError(f"{name}: {key} must be one value, got {value!r}")
        fields[TRAIN_KEYS[key]] = value
    try:
        return TrainConfig.quick(**fields) if quick else TrainConfig(**fields)
    except NeuronatlasError as exc:
        raise SpecError(f"{name}: {exc}") from None


def _sizes(name: str, value) -> tuple[int, ...]:
    """``"784,256,10"`` as written on the command line."""
    if not isinstance(value, str) or not re.fullmatch(r"\s*\d+(\s*,\s*\d+)+\s*", value):
        raise SpecError(f"{name}: sizes is written as on the command line, e.g. "
                        f"\"784,256,10\" (an array of such strings is an axis), got {value!r}")
    return tuple(int(s) for s in value.split(","))


def _name(point: dict[str, Any]) -> str:
    """``activation=gelu,seed=1``: the network's values on the axes, as a folder name."""
    if not point:
        return "net"
    parts = []
    for k, v in point.items():
        text = str(v).lower() if isinstance(v, bool) else str(v)
        if k == "dataset":
            text = Path(text).stem
        # only what a folder name cannot hold is replaced ("1e+30" stays itself)
        parts.append(f"{k}={re.sub(r'[^A-Za-z0-9._:+-]', '_', text.replace(',', '-'))}")
    return ",".join(parts)


def _imported(doc: dict, base: Path) -> list[NetworkSpec]:
    entries = doc.get("import", [])
    if not isinstance(entries, list):
        raise SpecError("import must be an array of model files, e.g. import = [\"a.onnx\"]")
    dataset = doc.get("dataset", "mnist")
    if entries and not isinstance(dataset, str):
        raise SpecError("imported models are checked on the study's one dataset: with import, "
                        f"dataset must be a single name or path, got {dataset!r}")
    dataset = _data_path(dataset, base) if isinstance(dataset, str) else dataset
    out = []
    for entry in entries:
        activation = None
        if isinstance(entry, dict):
            extra = sorted(set(entry) - {"path", "activation"})
            if extra or not isinstance(entry.get("path"), str):
                raise SpecError(f"an import table has a path (and an activation), got {entry!r}")
            activation = entry.get("activation")
            if activation is not None and not isinstance(activation, str):
                raise SpecError(f"an import's activation is a name such as \"gelu\", got "
                                f"{activation!r}")
            entry = entry["path"]
        if not isinstance(entry, str):
            raise SpecError(f"an import is a model file's path, got {entry!r}")
        path = ((base / entry) if not Path(entry).is_absolute() else Path(entry)).absolute()
        why = file_problem(path)
        if why is not None:
            raise SpecError(f"import {shown(path)} " + ("not found" if why == MISSING else why))
        name = "import=" + re.sub(r"[^A-Za-z0-9._-]", "_", path.stem)
        out.append(NetworkSpec(name, {}, dataset, source=path, activation=activation))
    return out
