"""What every importer shares: the chain it found, the model built from it, the
identification of an element-wise function as one of the supported activations, and
the check that the imported model computes the source's logits.

An importer (PyTorch, ONNX) walks its source and produces a :class:`Chain`: the
Linears in order (weight (out, in), bias or None) and the activation between each two.
Dropout is dropped, BatchNorm1d in eval mode is folded into the Linear before it, a
Flatten before the first Linear is the input's flattening, and a SoftMax (or
LogSoftmax) after the last Linear is the output SoftMax every neuronatlas model has.
Anything else is refused by name (:class:`ImportRefused`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import ModelFileError
from ..nn.activations import KINDS, Activation
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
        self.weights.append(w)
        self.biases.append(None if bias is None else self._float(bias, where).reshape(-1))
        self.activations.append(None)

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
