"""``model.safetensors``: save and validated load (docs/format.md).

Tensor names are those of ``torch.nn.Sequential(Linear, act, Linear, act, ..., Linear)``:
layer l's weight is ``f"{2 * (l - 1)}.weight"`` with shape (out, in), its bias
``f"{2 * (l - 1)}.bias"`` (absent for a bias-free Linear). The metadata says everything
else needed to compute the model: the activation after each hidden Linear, which
Linears have a bias, the input shape and the class names (see :func:`model_metadata`).

A file saved by PyTorch (``safetensors.torch.save_file(net.state_dict(), path)``) has
no such metadata: its sizes and biases are read off the tensors, but its activations
must be stated by the caller, since a state_dict does not say which activation follows
each Linear; they are never guessed. Files written before activations were recorded
say ``hidden_activation = relu`` and are read as exactly that.

The file is parsed here rather than by the ``safetensors`` package so that every
check (a regular file, header size, duplicate names, offsets, tensor count, dtype, the
tensors tiling the data exactly with no overlap, gap or trailing byte) runs on the header
alone, against the file's size, before the data are read or anything is allocated, and
float16 / bfloat16 tensors can be read (they are converted to float32, with a note; a
float64 beyond float32's range is refused, never turned into an infinity).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol

import numpy as np
from safetensors.numpy import save

from ..errors import ConfigError, ModelFileError
from ..fileio import MISSING, atomic_write_bytes, file_problem, open_regular, shown
from .activations import Activation, parse_activations


class SavedModel(Protocol):
    """What the format writes of a model (:class:`~neuronatlas.nn.mlp.MLP` has it): the
    format needs only these attributes, and the model builds on this module."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    has_bias: tuple[bool, ...]
    activation_fns: tuple[Activation, ...]
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    metadata: dict[str, str]

    @property
    def sizes(self) -> tuple[int, ...]: ...

FORMAT = "neuronatlas.mlp/1"
_KEY = re.compile(r"^(0|[1-9][0-9]{0,5})\.(weight|bias)$")  # canonical ASCII indices only
_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "BF16": None}
_ITEMSIZE = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2}
MAX_HEADER = 16 * 2**20  # bytes of JSON header; a 1000-layer model needs a few hundred KB
MAX_LAYERS = 1000


def _short(text: str, limit: int = 200) -> str:
    """An error line cut to a sane length."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: the metadata keys the format itself writes; the rest is the model's own
_OWN_KEYS = ("format", "sizes", "hidden_activation", "activations", "output_activation", "bias",
             "input_shape", "class_names")


def model_metadata(model: SavedModel, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The model's own facts as string metadata, then its ``metadata`` and ``extra``."""
    acts = [a.spec for a in model.activation_fns]
    meta = {
        "format": FORMAT,
        "sizes": ",".join(map(str, model.sizes)),
        "hidden_activation": (acts[0] if len(set(acts)) == 1 else
                              "per-layer" if acts else "none"),
        "activations": ",".join(acts),
        "output_activation": "softmax",
        "bias": ",".join(str(int(b)) for b in model.has_bias),
        "input_shape": ",".join(map(str, model.input_shape)),
        "class_names": json.dumps(list(model.class_names)),
    }
    meta.update({k: v for k, v in model.metadata.items() if k not in _OWN_KEYS})
    meta.update(extra or {})
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def _canonical_header(raw: bytes) -> bytes:
    """Rewrite the JSON header with sorted keys: safetensors writes its metadata in hash
    order, which differs between processes, and the same model must give the same bytes."""
    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8 : 8 + n]), sort_keys=True, separators=(",", ":"))
    header = header.encode() + b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + raw[8 + n :]


def model_to_bytes(model: SavedModel, metadata: dict[str, str] | None = None) -> bytes:
    tensors = {}
    for i, (W, b) in enumerate(zip(model.weights, model.biases)):
        tensors[f"{2 * i}.weight"] = np.ascontiguousarray(W, dtype=np.float32)
        if model.has_bias[i]:
            tensors[f"{2 * i}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
    return _canonical_header(save(tensors, metadata=model_metadata(model, metadata)))


def write_model(model: SavedModel, path: str | os.PathLike, metadata: dict[str, str] | None = None):
    """Write a model atomically as float32 safetensors with the contract's metadata."""
    atomic_write_bytes(Path(path), model_to_bytes(model, metadata))


# --- reading ------------------------------------------------------------------------------
class _DuplicateKey(Exception):
    """A JSON object names a key twice (json.loads would keep the last one silently)."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _read_header(f: BinaryIO, size: int, source: str) -> tuple[dict, int]:
    """The JSON header and its length, read alone: its claimed length is checked against
    the file's size before it is read, and nothing of the data is read here."""
    head = f.read(8)
    n = int.from_bytes(head, "little") if len(head) == 8 else -1
    fits = 2 <= n <= min(MAX_HEADER, size - 8)
    blob = f.read(n) if fits else b""
    header = None
    if fits and len(blob) == n and blob[:1] == b"{":
        try:
            header = json.loads(blob, object_pairs_hook=_unique_keys)
        except _DuplicateKey as exc:
            raise ModelFileError(f"{source}: the safetensors header names "
                                 f"{_short(repr(exc.key), 60)} twice") from None
        except (ValueError, UnicodeDecodeError, RecursionError):
            header = None
    if header is None and (head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
                           or head[:4] == b"PK\x03\x04"):
        raise ModelFileError(
            f"{source} is a pickle or zip file (e.g. from torch.save), not safetensors; it is "
            "not unpickled, since that can run code. Import the live module with "
            "na.from_torch(module), or save its state_dict with "
            "safetensors.torch.save_file(module.state_dict(), path)")
    if header is None:
        why = ("too short" if n < 0 else f"its header claims {n} bytes" if not fits
               else "its header is not JSON")
        raise ModelFileError(f"{source} is not a readable safetensors file ({size} bytes): "
                             f"{why}")
    if not isinstance(header, dict):
        raise ModelFileError(f"{source}: the safetensors header is not a JSON object")
    return header, n


class _Entry(NamedTuple):
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


def _entry(name: str, info, source: str, size: int, data_len: int) -> _Entry:
    """One tensor's header entry, checked: plain non-negative integers (never booleans),
    a floating-point dtype, and offsets inside the data that fit its shape."""
    where = f"{source}: tensor {_short(repr(name), 60)}"
    try:
        dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
        shape = tuple(shape)
        ok = all(type(v) is int and v >= 0 for v in (*shape, start, end))
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok or len(shape) > 8 or not isinstance(dtype, str):
        raise ModelFileError(f"{where} has an unreadable entry in the header")
    if dtype not in _DTYPES:
        raise ModelFileError(f"{where} is {_short(str(dtype), 20)}; floating-point tensors "
                             "(F32, F64, F16, BF16) are expected")
    if not start <= end <= data_len:
        raise ModelFileError(f"{source} is not a readable safetensors file ({size} bytes)"
                             f": tensor {_short(repr(name), 60)} lies outside the data")
    need = math.prod(shape) * _ITEMSIZE[dtype]
    if end - start != need:
        raise ModelFileError(f"{where} has {end - start} bytes in the file; its shape and "
                             f"dtype need {need}")
    return _Entry(name, dtype, shape, start, end)


def _check_layout(entries: list[_Entry], data_len: int, source: str) -> None:
    """The tensors tile the data exactly, as the safetensors format requires: back to
    back from its first byte to its last, no overlap, no gap, no trailing bytes."""
    pos, last = 0, None
    for e in sorted(entries, key=lambda e: (e.start, e.end)):
        if e.start < pos:
            raise ModelFileError(f"{source}: tensors {_short(repr(last), 60)} and "
                                 f"{_short(repr(e.name), 60)} overlap in the data")
        if e.start > pos:
            raise ModelFileError(f"{source}: {e.start - pos} unused bytes before tensor "
                                 f"{_short(repr(e.name), 60)} (a gap in the data)")
        pos, last = e.end, e.name
    if pos != data_len:
        raise ModelFileError(f"{source} has {data_len - pos} trailing bytes after its last "
                             "tensor")


def _memory_bytes() -> int | None:
    """This machine's physical memory, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _check_memory(entries: list[_Entry], data_len: int, source: str) -> None:
    """Refuse, before reading, a file whose data and float32 copies cannot fit in memory."""
    need = data_len + sum(4 * math.prod(e.shape) for e in entries)
    have = _memory_bytes()
    if have is not None and need > have:
        raise ModelFileError(f"{source}: its tensors need {need / 2**30:.1f} GiB, more than "
                             f"this machine's {have / 2**30:.1f} GiB of memory")


def _read_data(f: BinaryIO, data_len: int, source: str) -> memoryview:
    """Exactly the ``data_len`` bytes the header declares (the file's size was checked)."""
    data = memoryview(bytearray(data_len))
    got = 0
    while got < data_len:
        k = f.readinto(data[got:])
        if not k:
            raise ModelFileError(f"{source} became shorter while it was read ({got} of "
                                 f"{data_len} data bytes)")
        got += k
    return data


def _array(buf: memoryview, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "BF16":  # the top half of a float32
        arr = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        arr = np.frombuffer(buf, np.dtype(_DTYPES[dtype]).newbyteorder("<"))
    return arr.reshape(shape)


def _decode(f: BinaryIO, size: int, source: str
            ) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """Parse an open safetensors file of ``size`` bytes: (tensors, metadata, notes). The
    header and every offset are checked against the file's size before the data are read,
    and only the bytes the header declares are read."""
    header, n = _read_header(f, size, source)
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ModelFileError(f"{source}: the safetensors metadata is not a map of strings")
    if len(header) > 2 * MAX_LAYERS:
        raise ModelFileError(f"{source} holds {len(header)} tensors; a model of at most "
                             f"{MAX_LAYERS} layers has at most {2 * MAX_LAYERS}")
    data_len = size - 8 - n
    entries = [_entry(name, info, source, size, data_len) for name, info in header.items()]
    _check_layout(entries, data_len, source)
    _check_memory(entries, data_len, source)
    data = _read_data(f, data_len, source)
    tensors = {e.name: _array(data[e.start : e.end], e.dtype, e.shape) for e in entries}
    converted = sorted({e.dtype for e in entries} & {"F16", "BF16"})
    return tensors, meta, [f"{dtype} tensors converted to float32" for dtype in converted]


def read_safetensors(path: str | os.PathLike
                     ) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """Tensors, metadata and notes of a safetensors file, or :class:`ModelFileError`
    (also for a path that is not a regular file, or a name no file can have)."""
    source, problem = shown(path), file_problem(path)
    if problem == MISSING:
        raise ModelFileError(f"model file not found: {source}")
    if problem:
        raise ModelFileError(f"model file {source} {problem}")
    if Path(os.fsdecode(path)).suffix.lower() == ".onnx":
        raise ModelFileError(f"{source} is an ONNX file: bring it in first with neuronatlas "
                             f"import {source} --dataset NAME")
    f, size = open_regular(path, ModelFileError)
    try:
        with f:
            return _decode(f, size, source)
    except OSError as exc:
        raise ModelFileError(f"cannot read {source}: {exc.strerror or exc}") from None


def read_header(path: str | os.PathLike) -> dict:
    """A safetensors file's JSON header alone (its tensors' entries and ``__metadata__``),
    read and checked as :func:`read_safetensors` reads it; :class:`ModelFileError`
    otherwise. Nothing of the data is read."""
    f, size = open_regular(path, ModelFileError)
    try:
        with f:
            return _read_header(f, size, shown(path))[0]
    except OSError as exc:
        raise ModelFileError(f"cannot read {shown(path)}: {exc.strerror or exc}") from None


def sequential_names(tensors: dict) -> dict:
    """A PyTorch ``nn.Sequential`` state_dict whose Linears sit at other indices (a Dropout
    or an activation module between them shifts them: 0, 3, 5, ...) renamed to this
    format's 0, 2, 4, ...: the Linears in the order of their indices. Names that are not
    ``<index>.weight`` / ``<index>.bias`` are left for the checks to refuse."""
    parsed = [(k, _KEY.match(k)) for k in tensors]
    if not tensors or not all(m for _, m in parsed):
        return tensors
    order = sorted({int(m.group(1)) for _, m in parsed})
    slot = {index: 2 * i for i, index in enumerate(order)}
    return {f"{slot[int(m.group(1))]}.{m.group(2)}": tensors[k] for k, m in parsed}


def _layer_count(tensors: dict[str, np.ndarray], source: str) -> int:
    """How many Linears the names describe: weights 0, 2, ..., 2(n-1), nothing else."""
    unknown = sorted(k for k in tensors if not _KEY.match(k) or int(k.split(".")[0]) % 2)
    if unknown:
        shown = ", ".join(_short(repr(k), 40) for k in unknown[:5])
        raise ModelFileError(
            f"{source}: unexpected tensor names {shown}{' ...' if len(unknown) > 5 else ''}; "
            "expected nn.Sequential names '0.weight', '0.bias', '2.weight', ...")
    if not tensors:
        raise ModelFileError(f"{source}: holds no tensors")
    indices = sorted({int(k.split(".")[0]) // 2 for k in tensors})
    weights = {int(k.split(".")[0]) // 2 for k in tensors if k.endswith(".weight")}
    missing = [f"{2 * i}.weight" for i in range(indices[-1] + 1) if i not in weights]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        raise ModelFileError(f"{source}: missing tensor(s) [{shown}"
                             f"{', ...' if len(missing) > 5 else ''}]")
    return indices[-1] + 1


def _recorded_activations(meta: dict[str, str], n_hidden: int, source: str):
    """The activations the file records, or None when it records none."""
    if n_hidden == 0:
        return ()
    try:
        if "activations" in meta:
            return parse_activations(meta["activations"], n_hidden)
        if "hidden_activation" in meta:  # files written before per-layer activations
            return parse_activations(meta["hidden_activation"], n_hidden)
    except ConfigError as exc:
        raise ModelFileError(f"{source}: {exc}") from None
    return None


class ModelParts(NamedTuple):
    """A model file's contents, checked: the arguments of :class:`~neuronatlas.nn.mlp.MLP`
    by name (``MLP(**parts._asdict())``), so that this module needs nothing of the model."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    metadata: dict[str, str]  # the entries that are not the format's own
    activation_fns: tuple[Activation, ...]
    has_bias: tuple[bool, ...]
    input_shape: tuple[int, ...] | None
    class_names: list[str] | None
    notes: list[str]


def parts_from_tensors(tensors: dict[str, np.ndarray], metadata: dict[str, str],
                       source: str = "model", *, activation=None, input_shape=None,
                       class_names=None, notes: list[str] | None = None) -> ModelParts:
    """Check names, shapes, finiteness and metadata (dtypes were checked when the file was
    read, :func:`read_safetensors`). ``activation`` (one name, or
    one per hidden layer) is required when the file records none."""
    _check_format(metadata, source)
    if "format" not in metadata:  # saved by PyTorch: Linears may sit at any indices
        tensors = sequential_names(tensors)
    n_layers = _layer_count(tensors, source)
    bias = _bias_layout(tensors, metadata, n_layers, source)
    sizes = _sizes(tensors, metadata, n_layers, source)
    weights, biases = _arrays(tensors, sizes, bias, source)
    acts = _activations(metadata, n_layers - 1, activation, source)
    shape = _meta_list(metadata, "input_shape", source) if "input_shape" in metadata else None
    if shape is not None and input_shape is not None and tuple(input_shape) != shape:
        raise ModelFileError(f"{source} records input shape {'x'.join(map(str, shape))}, but "
                             f"{'x'.join(map(str, input_shape))} was given; leave it out")
    names = class_names
    if names is None and "class_names" in metadata:
        names = _meta_json_list(metadata, "class_names", source)
    own = {k: v for k, v in metadata.items() if k not in _OWN_KEYS}
    return ModelParts(weights, biases, own, acts, bias,
                      input_shape if input_shape is not None else shape, names,
                      list(notes or []))


def _check_format(metadata: dict[str, str], source: str) -> None:
    if metadata.get("format", FORMAT) != FORMAT:
        raise ModelFileError(f"{source}: format {_short(metadata['format'], 40)!r}, expected "
                             f"{FORMAT!r}")
    if metadata.get("output_activation", "softmax") != "softmax":
        raise ModelFileError(f"{source}: output_activation is "
                             f"{_short(metadata['output_activation'], 40)!r}, only 'softmax' "
                             "works")


def _bias_layout(tensors: dict, metadata: dict[str, str], n_layers: int,
                 source: str) -> tuple[bool, ...]:
    """Which Linears have a bias: as recorded, else as the tensors say."""
    present = tuple(f"{2 * i}.bias" in tensors for i in range(n_layers))
    if "bias" not in metadata:
        return present
    recorded = tuple(v.strip() == "1" for v in metadata["bias"].split(","))
    if len(recorded) != n_layers:
        raise ModelFileError(f"{source}: metadata bias names {len(recorded)} layers, the "
                             f"tensors have {n_layers}")
    missing = [f"{2 * i}.bias" for i in range(n_layers) if recorded[i] and not present[i]]
    if missing:
        raise ModelFileError(f"{source}: missing tensor(s) {missing}")
    extra = [f"{2 * i}.bias" for i in range(n_layers) if present[i] and not recorded[i]]
    if extra:
        raise ModelFileError(f"{source}: tensor {extra[0]!r} is present but the metadata says "
                             "its layer has no bias")
    return recorded


def _sizes(tensors: dict, metadata: dict[str, str], n_layers: int,
           source: str) -> tuple[int, ...]:
    """The layer sizes, input first: as recorded, else read off the weights' shapes."""
    if "sizes" in metadata:
        sizes = _meta_list(metadata, "sizes", source)
        if len(sizes) != n_layers + 1:
            raise ModelFileError(
                f"{source}: metadata sizes has {len(sizes) - 1} layers, the tensors have "
                f"{n_layers}")
    else:
        shapes = [tensors[f"{2 * i}.weight"].shape for i in range(n_layers)]
        sizes = (shapes[0][1] if len(shapes[0]) == 2 else -1,)
        sizes += tuple(s[0] if len(s) == 2 else -1 for s in shapes)
    if min(sizes) < 1:
        raise ModelFileError(f"{source}: every layer needs at least one neuron, got sizes "
                             f"{','.join(map(str, sizes))}")
    return sizes


def _arrays(tensors: dict, sizes: tuple[int, ...], bias: tuple[bool, ...], source: str
            ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each layer's float32 weight and bias (zeros for a bias-free Linear), every shape
    checked against ``sizes`` and every value finite."""
    weights, biases = [], []
    for i in range(len(sizes) - 1):
        for kind, shape in (("weight", (sizes[i + 1], sizes[i])), ("bias", (sizes[i + 1],))):
            if kind == "bias" and not bias[i]:
                biases.append(np.zeros(sizes[i + 1], np.float32))
                continue
            name = f"{2 * i}.{kind}"
            t = tensors[name]
            if t.shape != shape:
                raise ModelFileError(
                    f"{source}: tensor {name!r} has shape {t.shape}, expected {shape} "
                    f"for sizes {_short(','.join(map(str, sizes)), 80)}")
            (weights if kind == "weight" else biases).append(_float32(t, name, source))
    return weights, biases


def _float32(t: np.ndarray, name: str, source: str) -> np.ndarray:
    """``t`` as float32, every value finite before and after the cast: a float64 beyond
    float32's range would become infinite in it (and every output NaN)."""
    bad = int(np.size(t) - np.count_nonzero(np.isfinite(t)))
    if bad:
        raise ModelFileError(f"{source}: tensor {name!r} has {bad} NaN or infinite values")
    with np.errstate(over="ignore"):
        out = t.astype(np.float32)
    wide = t.dtype.kind == "f" and t.dtype.itemsize > 4  # float32 and float16 always fit
    big = int(np.size(out) - np.count_nonzero(np.isfinite(out))) if wide else 0
    if big:
        limit = float(np.finfo(np.float32).max)
        raise ModelFileError(f"{source}: tensor {name!r} has {big} values beyond float32's "
                             f"range (|x| > {limit:.4g}); the model is computed in float32")
    return out


def _activations(metadata: dict[str, str], n_hidden: int, activation, source: str
                 ) -> tuple[Activation, ...]:
    """The hidden activations: as recorded, or as given when the file records none; both
    given and recorded must agree, and none at all is an error (never a guess)."""
    recorded = _recorded_activations(metadata, n_hidden, source)
    try:
        given = None if activation is None else parse_activations(activation, n_hidden)
    except ConfigError as exc:
        raise ModelFileError(f"{source}: {exc}") from None
    if recorded is not None and given is not None and recorded != given:
        raise ModelFileError(
            f"{source} records activations {','.join(a.spec for a in recorded)}, but "
            f"{','.join(a.spec for a in given)} was given; leave the activation out")
    acts = recorded if recorded is not None else given
    if acts is None and n_hidden:
        raise ModelFileError(
            f"{source} does not record its activations (a file saved by PyTorch?): state "
            "them with --activation NAME (API: MLP.load(path, activation=NAME)), one name for "
            "every hidden layer or a comma-separated list with one per layer; they are "
            "never guessed")
    return acts or ()


def _meta_list(metadata: dict[str, str], key: str, source: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in metadata[key].split(","))
    except ValueError:
        raise ModelFileError(f"{source}: metadata {key} {_short(metadata[key], 60)!r} "
                             "unreadable") from None


def _meta_json_list(metadata: dict[str, str], key: str, source: str) -> list[str]:
    try:
        value = json.loads(metadata[key])
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ModelFileError(f"{source}: metadata {key} is not a JSON list of strings")
    return value


def read_model(path: str | os.PathLike, *, activation=None, input_shape=None,
               class_names=None) -> ModelParts:
    """Read and check a model file (see the module docstring); ``MLP.load`` builds on it."""
    tensors, metadata, notes = read_safetensors(path)
    return parts_from_tensors(tensors, metadata, source=str(path), activation=activation,
                              input_shape=input_shape, class_names=class_names, notes=notes)
