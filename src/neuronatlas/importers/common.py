"""What every importer shares: the chain it found, the model built from it, the
identification of an element-wise function as one of the supported activations, and
the check that the imported model computes the source's logits.

An importer (PyTorch, ONNX) walks its source and produces a :class:`Chain`: the
Linears in order (weight (out, in), bias or None) and the activation between each two.
Dropout is dropped, BatchNorm1d in eval mode is folded into the Linear before it, a
Flatten before the first Linear is the input's flattening, an input normalisation
before it (``(x - mean) / std``, a scalar or one value per input) is folded into it, and
a SoftMax (or LogSoftmax) after the last Linear is the output SoftMax every neuronatlas
model has. Anything else is refused by name (:class:`ImportRefused`).

What an import can and cannot tell is also here: the test accuracy on the stated data,
and whether another activation fits those data clearly better than the stated one (a
state_dict does not record its activations), for the caller to report.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from ..nn.activations import KINDS, Activation
from ..nn.io import read_header
from ..nn.mlp import MLP

TOLERANCE = 1e-4  # largest |logit difference| accepted between source and import


class ImportRefused(ModelFileError):
    """The source is not a chain of Linear layers and supported activations (named in the
    message), or its import does not compute the source's logits. Example:
    ``na.from_torch(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), ...))`` raises
    ``ImportRefused("Sequential.0: Conv2d is not supported ...")``."""


@dataclass
class Chain:
    """Linears and the activation after each (None: nothing between two Linears yet)."""

    weights: list[np.ndarray] = field(default_factory=list)  # (out, in)
    biases: list[np.ndarray | None] = field(default_factory=list)
    activations: list[Activation | None] = field(default_factory=list)  # after Linear i
    notes: list[str] = field(default_factory=list)
    softmax_seen: str = ""  # "softmax" or "log_softmax" once the output SoftMax was seen
    # x -> scale * x + shift before the first Linear (an input normalisation), or None
    input_scale: np.ndarray | None = None
    input_shift: np.ndarray | None = None

    def add_linear(self, weight, bias, where: str) -> None:
        if self.softmax_seen:
            raise ImportRefused(f"{where}: a Linear after the SoftMax; the SoftMax must be last")
        w = self._float(weight, where)
        if w.ndim != 2:
            raise ImportRefused(f"{where}: weight of shape {w.shape} is not a matrix")
        if self.weights and self.weights[-1].shape[0] != w.shape[1]:
            raise ImportRefused(f"{where}: takes {w.shape[1]} inputs but the layer before "
                                f"gives {self.weights[-1].shape[0]}")
        if self.weights and self.activations[-1] is None:
            self.activations[-1] = Activation("identity")
        b = None if bias is None else self._float(bias, where).reshape(-1)
        if not self.weights and self.input_scale is not None:
            w, b = self._fold_input(w, b, where)
        self.weights.append(w)
        self.biases.append(b)
        self.activations.append(None)

    def add_input_affine(self, op: str, k, where: str, *, reverse: bool = False) -> None:
        """Before the first Linear: the input becomes ``x op k`` (``k op x`` if
        ``reverse``), op one of add, sub, mul, div, with ``k`` a number or an array of one
        value or one value per input; folded into the first Linear when it comes."""
        if self.weights:
            raise ImportRefused(f"{where}: arithmetic ({op}) after the first Linear is not "
                                "supported; only an input normalisation before it is folded")
        k = self._float(np.asarray(k, np.float64) if isinstance(k, (int, float)) else k, where)
        if k.size != 1 and k.reshape(-1).shape[0] != k.shape[-1]:
            raise ImportRefused(f"{where}: a normalisation tensor of shape {k.shape} (one "
                                "value per channel?) cannot be folded into the first Linear; "
                                "only a scalar or one value per input (shape (n,) or (1, n)) "
                                "can: normalise the flat input, or the data instead")
        k = k.reshape(()) if k.size == 1 else k.reshape(-1)
        scale = np.ones(()) if self.input_scale is None else self.input_scale
        shift = np.zeros(()) if self.input_shift is None else self.input_shift
        if op == "add":
            shift = shift + k
        elif op == "sub":
            scale, shift = (-scale, k - shift) if reverse else (scale, shift - k)
        elif op == "mul":
            scale, shift = scale * k, shift * k
        elif reverse:
            raise ImportRefused(f"{where}: dividing by the input is not linear; not supported")
        else:
            with np.errstate(divide="ignore", invalid="ignore"):  # refused when folded
                scale, shift = scale / k, shift / k
        self.input_scale, self.input_shift = scale, shift

    def _fold_input(self, w: np.ndarray, b, where: str):
        """W (scale x + shift) + b = (W * scale) x + (W shift + b)."""
        n = w.shape[1]
        for part in (self.input_scale, self.input_shift):
            if part.size not in (1, n):
                raise ImportRefused(f"{where}: the input normalisation has {part.size} values "
                                    f"but the first Linear takes {n} inputs")
        shift = np.broadcast_to(self.input_shift, (n,))
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite: refused below
            if b is not None or np.any(shift):  # a pure scaling leaves no bias where none was
                b = (np.zeros(w.shape[0]) if b is None else b) + w @ shift
            w = w * np.broadcast_to(self.input_scale, (n,))[None, :]
        if not (np.isfinite(w).all() and (b is None or np.isfinite(b).all())):
            raise ImportRefused(f"{where}: the input normalisation gives NaN or infinite "
                                "weights (a division by zero?)")
        self.notes.append(f"{where}: the input normalisation before it folded into the first "
                          "Linear")
        return w, b

    def add_activation(self, act: Activation, where: str) -> None:
        if not self.weights:
            raise ImportRefused(f"{where}: an activation before the first Linear is not part "
                                "of a dense network's layers")
        if self.activations[-1] is not None:
            raise ImportRefused(f"{where}: two activations in a row ({self.activations[-1].spec}"
                                f", then {act.spec}); one activation follows each Linear")
        self.activations[-1] = act

    def fold_batchnorm(self, mean, var, eps: float, gamma, beta, where: str) -> None:
        """y = (z - mean) / sqrt(var + eps) * gamma + beta folded into the last Linear."""
        if not self.weights or self.activations[-1] is not None:
            raise ImportRefused(f"{where}: BatchNorm1d can only be folded into the Linear "
                                "right before it")
        scale = self._float(gamma, where) / np.sqrt(self._float(var, where) + eps)
        w, b = self.weights[-1], self.biases[-1]
        b = np.zeros(w.shape[0], np.float64) if b is None else b
        self.weights[-1] = w * scale[:, None]
        self.biases[-1] = (b - self._float(mean, where)) * scale + self._float(beta, where)
        self.notes.append(f"{where}: BatchNorm1d folded into the Linear before it")

    def _float(self, a, where: str) -> np.ndarray:
        a = np.asarray(a)
        if a.dtype in (np.float16,) or str(a.dtype) == "bfloat16":
            self.notes.append(f"{where}: {a.dtype} converted to float32")
        if not np.issubdtype(a.dtype, np.floating):
            raise ImportRefused(f"{where}: parameters of dtype {a.dtype} are not floating point")
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ImportRefused(f"{where}: parameters hold NaN or infinite values")
        return a


def build_model(chain: Chain, source: str, *, input_shape=None, class_names=None) -> MLP:
    """The MLP of a finished chain (float32)."""
    if not chain.weights:
        raise ImportRefused(f"{source}: no Linear layer found")
    if chain.activations[-1] is not None:
        raise ImportRefused(f"{source}: an activation ({chain.activations[-1].spec}) follows the "
                            "last Linear; the output layer must be a Linear (then SoftMax)")
    weights = [w.astype(np.float32) for w in chain.weights]
    has_bias = tuple(b is not None for b in chain.biases)
    biases = [np.zeros(w.shape[0], np.float32) if b is None else b.astype(np.float32)
              for w, b in zip(chain.weights, chain.biases)]
    try:
        model = MLP(weights, biases, {}, tuple(chain.activations[:-1]), has_bias, input_shape,
                    class_names)
    except ModelFileError:
        raise
    except Exception as exc:  # a ConfigError from the model's own checks
        raise ImportRefused(f"{source}: {exc}") from None
    model.notes.extend(dict.fromkeys(chain.notes))
    return model


def identify_activation(f: Callable[[np.ndarray], np.ndarray], where: str) -> Activation:
    """The supported activation that the element-wise function ``f`` computes, found by
    evaluating it on probe points (so any decomposition of, e.g., GELU is recognised),
    with its parameter recovered from the values; :class:`ImportRefused` otherwise."""
    z = np.concatenate([np.linspace(-8, 8, 161), [-30.0, -3.3, -0.7, 0.3, 2.9, 25.0]])
    y = np.asarray(f(z.copy()), np.float64)
    if y.shape != z.shape or not np.isfinite(y).all():
        raise ImportRefused(f"{where}: an element-wise function that is not finite everywhere")
    neg = z < 0
    guesses = [Activation(name) for name, (default, _) in KINDS.items() if default is None]
    slope = _float32_value(np.median(y[neg] / z[neg]))
    if 0 <= slope < 1:
        guesses.append(Activation("leaky_relu", slope))
    alpha = _float32_value(y[np.argmin(z)] / np.expm1(z.min()))  # ELU: f(z) = alpha (e^z - 1)
    if alpha > 0:
        guesses.append(Activation("elu", alpha))
    f0 = float(y[np.argmin(np.abs(z))])  # softplus: f(0) = log 2 / beta
    if f0 > 0:
        guesses.append(Activation("softplus", _float32_value(np.log(2) / f0)))
    for act in guesses:
        if np.max(np.abs(act.forward(z) - y)) <= 1e-5 * (1 + np.abs(y)).max():
            return act
    raise ImportRefused(f"{where}: an element-wise function that is none of the supported "
                        f"activations ({', '.join(KINDS)})")


def hwc_columns(weight: np.ndarray, shape) -> np.ndarray:
    """The first layer of a network trained on images flattened channel-first (C, H, W),
    with its columns reordered to take them channel-last (H, W, C), as neuronatlas does."""
    h, w, c = shape
    if h * w * c != weight.shape[1]:
        raise ImportRefused(f"input shape {h}x{w}x{c} does not hold the first layer's "
                            f"{weight.shape[1]} inputs")
    order = np.arange(h * w * c).reshape(c, h, w).transpose(1, 2, 0).ravel()
    return weight[:, order]


def chw(x: np.ndarray, shape) -> np.ndarray:
    """Flat channel-last images (N, H*W*C) as channel-first arrays (N, C, H, W)."""
    h, w, c = shape
    return x.reshape(-1, h, w, c).transpose(0, 3, 1, 2)


WIDE = 64  # wide random inputs added to every check


def check_inputs_for(n_inputs: int, given=None) -> np.ndarray:
    """What an import is checked on: the given (real) inputs, or 256 uniform random
    images, then :data:`WIDE` wide random inputs (N(0, 3^2), beyond [0, 1]: a subtly
    different activation shows there)."""
    rng = np.random.default_rng(0)
    if given is not None and np.shape(given)[-1] != n_inputs:
        raise ImportRefused(f"the model takes {n_inputs} inputs but the images it is checked "
                            f"on have {np.shape(given)[-1]} values; choose the dataset it was "
                            "made for (--dataset)")
    base = (rng.random((256, n_inputs)) if given is None else
            np.asarray(given, np.float64).reshape(-1, n_inputs))
    return np.concatenate([base, 3 * rng.standard_normal((WIDE, n_inputs))])


def compare_outputs(model: MLP, out: np.ndarray, x: np.ndarray, softmax: str) -> float:
    """The source's outputs ``out`` on ``x`` (from :func:`check_inputs_for`) against the
    model's: logits, or for a source ending in its own (Log)SoftMax, log-probabilities."""
    if softmax:
        source = out if softmax == "log_softmax" else np.log(np.clip(out, 1e-300, 1))
        return logit_gap(model, source, x, log_probabilities=True)
    return logit_gap(model, out, x)


def _float32_value(p) -> float:
    """A parameter recovered from values, as the shortest decimal a float32 holds (ONNX
    stores attributes as float32: LeakyRelu's 0.1 comes back as 0.10000000149...)."""
    return float(str(np.float32(p))) if np.isfinite(p) else float("nan")


def logit_gap(model: MLP, source: np.ndarray, x: np.ndarray, *,
              log_probabilities: bool = False) -> float:
    """Largest |difference| between the source's logits (or log-probabilities, for a source
    that ends in its own SoftMax) and the imported model's on the images of ``x`` (all but
    its last :data:`WIDE` rows), recorded in the model's notes; :class:`ImportRefused` when
    it is above :data:`TOLERANCE`, or when on the wide random rows the difference relative
    to the row's largest logit is (a float32 source there is exact to ~1e-7 of that)."""
    ours = model.astype(np.float64).forward(np.asarray(x, np.float64))
    if log_probabilities:
        ours = ours - ours.max(axis=1, keepdims=True)
        ours = ours - np.log(np.exp(ours).sum(axis=1, keepdims=True))
    what = "log-probabilities" if log_probabilities else "logits"
    source = np.asarray(source, np.float64)
    diff = np.abs(ours - source).max(axis=1)
    images, wide = diff[:-WIDE], diff[-WIDE:] / (1 + np.abs(source[-WIDE:]).max(axis=1))
    gap, rel = float(images.max()), float(wide.max())
    if not (gap <= TOLERANCE and rel <= TOLERANCE):
        raise ImportRefused(f"the imported model's {what} differ from the source's by {gap:.3g} "
                            f"on {len(images)} images and by {rel:.3g} relative on {WIDE} wide "
                            f"random inputs (more than {TOLERANCE:g}); the source computes "
                            "something the import does not")
    model.notes.append(f"{what} equal the source's within {gap:.2g} on {len(images)} images "
                       f"(and within {rel:.1g} relative on {WIDE} wide random inputs)")
    return gap


# --- a state_dict's names, before it is read ------------------------------------------------
_SEQUENTIAL_KEY = re.compile(r"^[0-9]+\.(weight|bias)$")
_NORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")
_HOW = ("import the live module with na.from_torch(module) in Python, or export it to ONNX "
        "(torch.onnx.export) and import the .onnx file")


def _safetensors_header(path: Path) -> dict | None:
    """The JSON header of a safetensors file (:func:`~neuronatlas.nn.io.read_header`), or
    None when it cannot be read: loading it then says why."""
    try:
        return read_header(path)
    except ModelFileError:
        return None


def state_dict_metadata(path: str | Path) -> dict:
    """The metadata of a safetensors state_dict (``{}`` when it has none or cannot be read:
    loading it says why), after refusing one that is not an ``nn.Sequential``'s: a custom
    module's names (``fc1.weight``) or a normalisation layer's tensors say nothing of the
    order of the layers or of where the normalisation sits, so the way to import such a
    network (the live module, or ONNX) is named instead."""
    header = _safetensors_header(Path(path))
    if header is None:
        return {}
    meta = header.pop("__metadata__", None)
    meta = meta if isinstance(meta, dict) else {}
    if "format" in meta:  # written by neuronatlas: its names are the format's own
        return meta
    stats = [k for k in header if k.rsplit(".", 1)[-1] in _NORM_STATISTICS]
    flat = [k for k, v in header.items() if k.endswith(".weight") and isinstance(v, dict)
            and isinstance(v.get("shape"), list) and len(v["shape"]) == 1]
    other = [k for k in header if not _SEQUENTIAL_KEY.match(k)]
    if stats:
        raise ImportRefused(f"{path}: holds BatchNorm statistics ({_names(stats)}), and a "
                            "state_dict does not say where a BatchNorm sits; " + _HOW +
                            " (BatchNorm1d is folded into the Linear before it)")
    if flat:
        raise ImportRefused(f"{path}: tensor {flat[0]!r} is a 1-D weight, a normalisation "
                            "layer's (BatchNorm, LayerNorm), not a Linear's; " + _HOW)
    if other:
        raise ImportRefused(f"{path}: tensor names {_names(other)} are a custom module's "
                            "state_dict, not an nn.Sequential's ('0.weight', '2.weight', ...): "
                            "the order of its layers is not in the file; " + _HOW)
    return meta


def _names(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(repr(k[:40]) for k in sorted(keys)[:limit])
    return shown + (", ..." if len(keys) > limit else "")


# --- what the stated data say about an import ------------------------------------------------
FIT_IMAGES = 1000  # test images each candidate activation is tried on
LEAKY_SLOPES = (0.1, 0.2)  # LeakyReLU slopes tried beside the default 0.01
CLEARLY_POINTS = 0.02  # accuracy another activation must gain to fit clearly better ...
CLEARLY_NATS = 0.1  # ... or mean log-likelihood per image, at no loss of accuracy


@dataclass(frozen=True)
class Fit:
    """How well a model with these activations fits labelled images."""

    activation: str  # the spec, or one spec per hidden layer joined by commas
    accuracy: float
    log_likelihood: float  # mean log-probability of the true class


def fit_of(model: MLP, x: np.ndarray, y: np.ndarray) -> Fit:
    """The model's accuracy and mean log-likelihood on ``x``, ``y`` (float64)."""
    with np.errstate(over="ignore", invalid="ignore"):
        z = model.astype(np.float64).forward(np.asarray(x, np.float64))
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    y = np.asarray(y)
    specs = [a.spec for a in model.activation_fns]
    name = specs[0] if len(set(specs)) == 1 else ",".join(specs)
    if not np.isfinite(logp).all():  # an activation under which the logits overflow
        return Fit(name, 0.0, float("-inf"))
    return Fit(name, float(np.mean(z.argmax(axis=1) == y)),
               float(logp[np.arange(len(y)), y].mean()))


def candidate_activations() -> list[Activation]:
    """Every registered activation with its default parameter, and a few LeakyReLU slopes."""
    return ([Activation(name) for name in KINDS]
            + [Activation("leaky_relu", s) for s in LEAKY_SLOPES])


def activation_fit(model: MLP, x: np.ndarray, y: np.ndarray, *, n: int = FIT_IMAGES
                   ) -> tuple[Fit, Fit | None, list[Fit]]:
    """The fit of the model's (stated) activations on the first ``n`` images, the best
    other activation (the same after every hidden layer) when it fits them clearly better
    (:data:`CLEARLY_POINTS` more accuracy, or :data:`CLEARLY_NATS` more mean log-likelihood
    at no loss of accuracy), and the others that fit about as well as that one (within a
    point, and clearly better too). None and [] when none does, when the model has no
    hidden layer, or when even the best is near chance (then the data are in question)."""
    x, y = x[:n], y[:n]
    stated = fit_of(model, x, y)
    if model.n_layers < 2 or not len(y):
        return stated, None, []
    fits = []
    for act in candidate_activations():
        if all(a == act for a in model.activation_fns):
            continue
        other = MLP(model.weights, model.biases, {}, (act,) * (model.n_layers - 1),
                    model.has_bias, model.input_shape, model.class_names)
        fits.append(fit_of(other, x, y))
    fits.sort(key=lambda f: (f.accuracy, f.log_likelihood), reverse=True)
    better = [f for f in fits if f.accuracy > stated.accuracy + CLEARLY_POINTS or (
        f.accuracy >= stated.accuracy
        and f.log_likelihood > stated.log_likelihood + CLEARLY_NATS)]
    if not better or near_chance(better[0].accuracy, y, model.sizes[-1]):
        return stated, None, []
    best = better[0]
    return stated, best, [f for f in better[1:] if f.accuracy >= best.accuracy - 0.01]


def chance_level(y: np.ndarray, n_classes: int) -> float:
    """The accuracy of always answering the commonest class (at least 1 / classes)."""
    y = np.asarray(y)
    top = np.bincount(y, minlength=n_classes).max() / len(y) if len(y) else 0.0
    return max(float(top), 1.0 / max(n_classes, 1))


def near_chance(accuracy: float, y: np.ndarray, n_classes: int) -> bool:
    """Below twice the chance level (at most 10 points above it, for few classes)."""
    chance = chance_level(y, n_classes)
    return accuracy < min(2 * chance, chance + 0.1)


def import_warnings(model: MLP, data, *, activations_stated: bool
                    ) -> tuple[float | None, list[str]]:
    """The model's accuracy on ``data``'s test images (None without any), and what they say
    against the import: an accuracy near chance (the wrong dataset?) and, for activations
    that were stated rather than read (a state_dict), another that fits clearly better."""
    x, y, k = data.test_x, data.test_y, model.sizes[-1]
    if not len(y):
        return None, []
    accuracy = float(np.mean(model.predict(x) == y))
    warnings = []
    if near_chance(accuracy, y, k):
        warnings.append(f"the model's accuracy on {data.name}'s test images is "
                        f"{100 * accuracy:.1f}%, near chance ({100 * chance_level(y, k):.1f}% "
                        f"for {k} classes): is this the dataset it was trained on? (--dataset)")
    elif activations_stated:
        stated, best, close = activation_fit(model, x, y)
        if best is not None:
            n = min(FIT_IMAGES, len(y))
            also = (f" (or {', '.join(f.activation for f in close)}, which fit about as well)"
                    if close else "")
            warnings.append(
                f"with the stated activation {stated.activation} the model gets "
                f"{100 * stated.accuracy:.1f}% on the first {n} {data.name} test images, with "
                f"{best.activation} {100 * best.accuracy:.1f}% (mean log-likelihood "
                f"{stated.log_likelihood:.3f} vs {best.log_likelihood:.3f}): was it trained "
                f"with {best.activation}{also}? Then state that with --activation")
    return accuracy, warnings
