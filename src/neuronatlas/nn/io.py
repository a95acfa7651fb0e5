"""``model.safetensors``: save and validated load (DESIGN.md section 3).

Tensor names are those of ``torch.nn.Sequential(Linear, ReLU, ..., Linear)``:
layer l's weight is ``f"{2 * (l - 1)}.weight"`` with shape (out, in). A file saved
by PyTorch with ``safetensors.torch.save_file(net.state_dict(), path)`` and no
metadata is accepted: the sizes are read off the tensors.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from ..errors import ModelFileError
from ..fileio import atomic_write_bytes
from .mlp import MLP

FORMAT = "neuronatlas.mlp/1"
_KEY = re.compile(r"^(\d+)\.(weight|bias)$")
_FLOAT_DTYPES = (np.float32, np.float64)


def tensor_names(n_layers: int) -> list[str]:
    return [f"{2 * i}.{kind}" for i in range(n_layers) for kind in ("weight", "bias")]


def model_metadata(model: MLP, extra: dict[str, str] | None = None) -> dict[str, str]:
    meta = {
        "format": FORMAT,
        "sizes": ",".join(map(str, model.sizes)),
        "hidden_activation": "relu",
        "output_activation": "softmax",
        "dataset": "mnist",
    }
    meta.update(model.metadata)
    meta.update(extra or {})
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def _canonical_header(raw: bytes) -> bytes:
    """Rewrite the JSON header with sorted keys: safetensors writes its metadata in hash
    order, which differs between processes, and the same model must give the same bytes."""
    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8 : 8 + n]), sort_keys=True, separators=(",", ":"))
    header = header.encode() + b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + raw[8 + n :]


def model_to_bytes(model: MLP, metadata: dict[str, str] | None = None) -> bytes:
    tensors = {}
    for i, (W, b) in enumerate(zip(model.weights, model.biases)):
        tensors[f"{2 * i}.weight"] = np.ascontiguousarray(W, dtype=np.float32)
        tensors[f"{2 * i}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
    return _canonical_header(save(tensors, metadata=model_metadata(model, metadata)))


def save_model(model: MLP, path: str | os.PathLike, metadata: dict[str, str] | None = None):
    """Write the model atomically as float32 safetensors with the contract's metadata."""
    atomic_write_bytes(Path(path), model_to_bytes(model, metadata))


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and metadata of a safetensors file, or :class:`ModelFileError` saying why not."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        tensors = load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        metadata = json.loads(raw[8 : 8 + header_len]).get("__metadata__") or {}
    except KeyError as exc:  # a dtype NumPy has no type for, e.g. BF16
        raise ModelFileError(f"{path}: tensors of dtype {exc} cannot be read; save float32"
                             ) from None
    except (SafetensorError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ModelFileError(
            f"{path} is not a readable safetensors file ({len(raw)} bytes): {exc}"
        ) from None
    return tensors, metadata


def model_from_tensors(
    tensors: dict[str, np.ndarray], metadata: dict[str, str], source: str = "model"
) -> MLP:
    """Check names, shapes, dtypes, finiteness and metadata; build the MLP."""
    if metadata.get("format", FORMAT) != FORMAT:
        raise ModelFileError(f"{source}: format {metadata['format']!r}, expected {FORMAT!r}")
    for key, value in (("hidden_activation", "relu"), ("output_activation", "softmax")):
        if metadata.get(key, value) != value:
            raise ModelFileError(f"{source}: {key} is {metadata[key]!r}, only {value!r} works")
    unknown = sorted(k for k in tensors if not _KEY.match(k) or int(k.split(".")[0]) % 2)
    if unknown:
        raise ModelFileError(
            f"{source}: unexpected tensor names {unknown}; expected nn.Sequential names "
            "'0.weight', '0.bias', '2.weight', ..."
        )
    if not tensors:
        raise ModelFileError(f"{source}: holds no tensors")
    n_layers = max(int(k.split(".")[0]) for k in tensors) // 2 + 1
    missing = [k for k in tensor_names(n_layers) if k not in tensors]
    if missing:
        raise ModelFileError(f"{source}: missing tensor(s) {missing}")
    if "sizes" in metadata:
        try:
            sizes = tuple(int(s) for s in metadata["sizes"].split(","))
        except ValueError:
            raise ModelFileError(
                f"{source}: metadata sizes {metadata['sizes']!r} unreadable") from None
        if len(sizes) != n_layers + 1:
            raise ModelFileError(
                f"{source}: metadata sizes {sizes} has {len(sizes) - 1} layers, "
                f"the tensors have {n_layers}"
            )
    else:
        w0 = tensors["0.weight"]
        sizes = (w0.shape[1] if w0.ndim == 2 else -1,)
        sizes += tuple(tensors[f"{2 * i}.bias"].shape[0] if tensors[f"{2 * i}.bias"].ndim == 1
                       else -1 for i in range(n_layers))
    weights, biases = [], []
    for i in range(n_layers):
        for kind, shape in (("weight", (sizes[i + 1], sizes[i])), ("bias", (sizes[i + 1],))):
            name, t = f"{2 * i}.{kind}", tensors[f"{2 * i}.{kind}"]
            if t.shape != shape:
                raise ModelFileError(
                    f"{source}: tensor {name!r} has shape {t.shape}, expected {shape} "
                    f"for sizes {','.join(map(str, sizes))}"
                )
            if t.dtype not in _FLOAT_DTYPES:
                raise ModelFileError(f"{source}: tensor {name!r} is {t.dtype}, expected float32")
            bad = int(np.size(t) - np.count_nonzero(np.isfinite(t)))
            if bad:
                raise ModelFileError(f"{source}: tensor {name!r} has {bad} NaN or infinite values")
            (weights if kind == "weight" else biases).append(t.astype(np.float32))
    return MLP(weights, biases, dict(metadata))


def check_mnist_sizes(model: MLP, source: str = "model") -> MLP:
    """An MNIST model maps 784 pixels to 10 classes; anything else is refused by name."""
    if model.sizes[0] != 784 or model.sizes[-1] != 10:
        raise ModelFileError(f"{source} maps {model.sizes[0]} inputs to {model.sizes[-1]} "
                             "outputs; an MNIST model has 784 inputs and 10 outputs")
    return model


def load_model(path: str | os.PathLike) -> MLP:
    tensors, metadata = read_safetensors(path)
    return model_from_tensors(tensors, metadata, source=str(path))
