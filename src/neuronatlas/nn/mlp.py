"""The multi-layer perceptron: Linear layers with an element-wise activation after each
hidden one and a SoftMax output. The paper's network is all ReLU.

Layers are numbered as in docs/format.md: 1..L-1 hidden, L the output (SoftMax); 0 is
the input. Weights are stored in PyTorch's ``nn.Linear`` layout ``(out, in)`` so that
the model file loads into ``torch.nn.Sequential`` unchanged. Besides its arrays a model
knows its hidden activations, which Linears have a bias, the shape of its input image
(height, width, channels; pixels flattened channel-last) and its class names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModelFileError, ModelOverflowError
from ..shapes import check_input_shape, default_input_shape
from . import functional as F
from . import io as model_file
from .activations import RELU, Activation, parse_activations

#: The paper's architecture: 784 inputs, seven hidden ReLU layers, 10 SoftMax outputs.
#: Example: ``na.MLP.init(na.PAPER_SIZES, rng=np.random.default_rng(0))``.
PAPER_SIZES: tuple[int, ...] = (784, 1250, 1000, 750, 500, 250, 100, 32, 10)


def kaiming_normal(fan_out: int, fan_in: int, rng: np.random.Generator) -> np.ndarray:
    """He et al. (2015) initialisation for ReLU: N(0, 2 / fan_in), float64 (out, in)."""
    return rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / fan_in)


def model_sha256(model: MLP) -> str:
    """The identity of a model: the hash of its sizes, weights and biases, and of whatever
    it computes differently from the paper's network (activations, missing biases, input
    shape); the paper's ReLU networks keep the hash they always had."""
    h = hashlib.sha256(",".join(map(str, model.sizes)).encode())
    for w, b in zip(model.weights, model.biases):
        h.update(np.ascontiguousarray(w, np.float32).tobytes())
        h.update(np.ascontiguousarray(b, np.float32).tobytes())
    extra = []
    if not model.all_relu:
        extra.append("activations=" + ",".join(a.spec for a in model.activation_fns))
    if not all(model.has_bias):
        extra.append("bias=" + ",".join(str(int(b)) for b in model.has_bias))
    if model.input_shape != default_input_shape(model.sizes[0]):
        extra.append("input_shape=" + ",".join(map(str, model.input_shape)))
    if extra:
        h.update(("|" + "|".join(extra)).encode())
    return h.hexdigest()


@dataclass
class Trace:
    """What a forward pass keeps for the backward pass: input, pre-activations z_l
    and activations a_l (the hidden activation, SoftMax for the last)."""

    x: np.ndarray
    z: list[np.ndarray]
    a: list[np.ndarray]


@dataclass
class MLP:
    """A dense network: ``weights[l-1]`` (out, in) and ``biases[l-1]`` (out,) of layer l,
    ``activation_fns[l-1]`` after hidden layer l (default: ReLU, the paper's), ``has_bias[l-1]``
    (a bias-free Linear keeps a zero bias that training leaves at zero), the input image's
    ``input_shape`` (height, width, channels; default: the one square image the input
    size allows) and ``class_names`` (default "0", "1", ...).

    Example::

        model = MLP.init((784, 128, 10), rng=np.random.default_rng(0), activation="gelu")
        model.activations(x)   # {1: (N, 128), 2: (N, 10)}
    """

    weights: list[np.ndarray]  # weights[l-1] is layer l's (out, in) matrix
    biases: list[np.ndarray]  # biases[l-1] is layer l's (out,) vector
    metadata: dict[str, str] = field(default_factory=dict)
    activation_fns: tuple[Activation, ...] | None = None  # one per hidden layer
    has_bias: tuple[bool, ...] | None = None  # one per layer
    input_shape: tuple[int, int, int] | None = None  # (height, width, channels)
    class_names: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list, compare=False)  # e.g. dtype conversions

    def __post_init__(self):
        if not self.weights or len(self.weights) != len(self.biases):
            raise ConfigError("a model needs at least one layer and one bias per weight matrix")
        sizes = self.sizes
        if min(sizes) < 1:
            raise ConfigError(f"every layer needs at least one neuron, got sizes {sizes}")
        for l, (w, b) in enumerate(zip(self.weights, self.biases), start=1):
            if w.ndim != 2 or b.shape != (w.shape[0],) or (l > 1 and w.shape[1] != sizes[l - 1]):
                raise ConfigError(f"layer {l}: weight {w.shape} and bias {b.shape} do not "
                                  f"chain with sizes {sizes}")
        n_hidden = len(self.weights) - 1
        self.activation_fns = ((RELU,) * n_hidden if self.activation_fns is None
                               else parse_activations(self.activation_fns, n_hidden))
        self.has_bias = ((True,) * len(self.weights) if self.has_bias is None
                         else tuple(bool(v) for v in self.has_bias))
        if len(self.has_bias) != len(self.weights):
            raise ConfigError(f"has_bias names {len(self.has_bias)} layers, the model has "
                              f"{len(self.weights)}")
        if self.input_shape is None:
            self.input_shape = default_input_shape(sizes[0])
        self.input_shape = check_input_shape(self.input_shape, sizes[0])
        if self.class_names is None:
            self.class_names = tuple(str(k) for k in range(sizes[-1]))
        self.class_names = tuple(str(c) for c in self.class_names)
        if len(self.class_names) != sizes[-1]:
            raise ConfigError(f"{len(self.class_names)} class names for {sizes[-1]} outputs")

    # --- construction ----------------------------------------------------------------
    @classmethod
    def init(cls, sizes=PAPER_SIZES, *, rng: np.random.Generator, dtype=np.float32,
             activation="relu", bias: bool = True, input_shape=None,
             class_names=None) -> MLP:
        """Kaiming-normal weights, zero biases; the same rng gives the same bits.
        ``activation``: one name for every hidden layer or one per hidden layer."""
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ConfigError(f"sizes must be at least two positive integers, got {sizes}")
        weights = [kaiming_normal(o, i, rng).astype(dtype) for i, o in zip(sizes, sizes[1:])]
        biases = [np.zeros(o, dtype=dtype) for o in sizes[1:]]
        return cls(weights, biases, {}, parse_activations(activation, len(sizes) - 2),
                   (bool(bias),) * (len(sizes) - 1), input_shape, class_names)

    @classmethod
    def load(cls, path: str | Path, *, activation=None, input_shape=None,
             class_names=None) -> MLP:
        """Load and validate a ``model.safetensors`` (docs/format.md). A file that does not
        record its activations (e.g. saved by PyTorch) needs ``activation``: one name for
        every hidden layer or one per layer; it is never guessed."""
        parts = model_file.read_model(path, activation=activation, input_shape=input_shape,
                                      class_names=class_names)
        return cls.from_parts(parts, str(path))

    @classmethod
    def from_parts(cls, parts: model_file.ModelParts, source: str = "model") -> MLP:
        """The model a checked file describes; a fact that does not fit the rest (e.g. an
        input shape that does not hold the inputs) is a :class:`ModelFileError`."""
        try:
            return cls(**parts._asdict())
        except ConfigError as exc:
            raise ModelFileError(f"{source}: {exc}") from None

    def save(self, path: str | Path, metadata: dict[str, str] | None = None) -> None:
        """Write the model as safetensors (docs/format.md), atomically; ``metadata`` adds
        string entries to the header."""
        model_file.write_model(self, path, metadata)

    def _like(self, weights, biases) -> MLP:
        return MLP(weights, biases, dict(self.metadata), self.activation_fns, self.has_bias,
                   self.input_shape, self.class_names)

    def copy(self) -> MLP:
        """A deep copy: the same numbers in new arrays."""
        return self._like([w.copy() for w in self.weights], [b.copy() for b in self.biases])

    def astype(self, dtype) -> MLP:
        """The same model with its weights and biases in ``dtype`` (e.g. float64)."""
        return self._like([w.astype(dtype) for w in self.weights],
                          [b.astype(dtype) for b in self.biases])

    def __repr__(self) -> str:
        acts = sorted({a.spec for a in self.activation_fns})
        h, w, c = self.input_shape
        return (f"MLP({'-'.join(map(str, self.sizes))}, {'/'.join(acts) or 'no hidden layer'}, "
                f"input {h}x{w}x{c}, dataset {self.metadata.get('dataset', 'unknown')}, "
                f"sha256 {model_sha256(self)[:12]})")

    # --- shape facts -----------------------------------------------------------------
    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.weights[0].shape[1], *(w.shape[0] for w in self.weights))

    @property
    def n_layers(self) -> int:
        """L: the number of weight layers; layer L is the output layer."""
        return len(self.weights)

    @property
    def dtype(self) -> np.dtype:
        return self.weights[0].dtype

    def activation(self, layer: int) -> Activation:
        """The activation after hidden layer ``layer`` (1..L-1)."""
        return self.activation_fns[layer - 1]

    @property
    def all_relu(self) -> bool:
        return all(a.is_relu for a in self.activation_fns)

    # --- forward -----------------------------------------------------------------------
    def check_input(self, x) -> np.ndarray:
        """``x`` as (N, n_inputs) rows in the model's dtype, from one flat image, rows, or
        a batch of (N, H, W[, C]) images; another size is a ConfigError naming both."""
        x = np.asarray(x, dtype=self.dtype)
        x = x.reshape(1, -1) if x.ndim == 1 else x.reshape(len(x), -1) if x.ndim > 2 else x
        if x.shape[1] != self.sizes[0]:
            h, w, c = self.input_shape
            raise ConfigError(f"the model takes images of {self.sizes[0]} values ({h}x{w}x{c}); "
                              f"got rows of {x.shape[1]}")
        return x

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits (the output layer's pre-activation), like ``nn.Sequential``."""
        a = self.check_input(x)
        for l, (W, b) in enumerate(zip(self.weights, self.biases), start=1):
            z = F.linear_forward(a, W, b)
            a = self.activation_fns[l - 1].forward(z) if l < self.n_layers else z
        return a

    def trace(self, x: np.ndarray) -> Trace:
        """Forward pass keeping every z_l and a_l (index l-1 for layer l)."""
        zs, acts, a = [], [], x
        for l, (W, b) in enumerate(zip(self.weights, self.biases), start=1):
            z = F.linear_forward(a, W, b)
            a = (self.activation_fns[l - 1].forward(z) if l < self.n_layers
                 else F.softmax_forward(z))
            zs.append(z)
            acts.append(a)
        return Trace(x, zs, acts)

    def activations(
        self, x: np.ndarray, *, pre: bool = False, batch_size: int = 4096
    ) -> dict[int, np.ndarray]:
        """``{1: (N, 1250), ..., L: (N, 10)}``: activations / SoftMax outputs, or z if ``pre``."""
        x = self.check_input(x)
        out = {l: np.empty((len(x), n), self.dtype) for l, n in enumerate(self.sizes) if l}
        for s in range(0, len(x), batch_size):
            if pre:
                t = self.trace(x[s : s + batch_size])
                for l in out:
                    out[l][s : s + batch_size] = t.z[l - 1]
                continue
            # the same operations as trace's, written into the result in place (no z, no
            # copies): bit for bit the same, half the time on the paper's network
            a = x[s : s + batch_size]
            for l, (W, b) in enumerate(zip(self.weights, self.biases), start=1):
                z = out[l][s : s + batch_size]
                np.matmul(a, W.T, out=z)
                z += b
                if l == self.n_layers:
                    z[...] = F.softmax_forward(z)
                elif self.activation_fns[l - 1].is_relu:
                    np.maximum(z, 0, out=z)
                else:
                    z[...] = self.activation_fns[l - 1].forward(z)
                a = z
        return out

    def predict_proba(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """SoftMax probabilities (N, classes), evaluated in batches."""
        x = self.check_input(x)
        parts = [F.softmax_forward(self.finite_logits(x[s : s + batch_size]))
                 for s in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.empty((0, self.sizes[-1]), self.dtype)

    def finite_logits(self, x: np.ndarray) -> np.ndarray:
        """:meth:`forward`, or :class:`ModelOverflowError` when a logit is NaN or infinite
        (finite weights can overflow float32 in their products): a prediction is never
        made of them."""
        with np.errstate(over="ignore", invalid="ignore"):
            z = self.forward(x)
        bad = int(len(z) - np.isfinite(z).all(axis=1).sum())
        if bad:
            raise ModelOverflowError(
                f"the model's outputs are NaN or infinite on {bad} of {len(z)} images (one "
                "batch): its weights overflow float32 in the forward pass (no accuracy is "
                "given)")
        return z

    def predict(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """The most probable class of each row of ``x``, (N,)."""
        return self.predict_proba(x, batch_size).argmax(axis=1)

    # --- backward ----------------------------------------------------------------------
    def backward(
        self, trace: Trace, dLdZout: np.ndarray
    ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        """Backpropagate dL/dz of the output layer: (dLdW per layer, dLdb per layer, dLdX)."""
        dWs, dbs = [None] * self.n_layers, [None] * self.n_layers
        dLdZ = dLdZout
        for i in range(self.n_layers - 1, -1, -1):
            a_prev = trace.a[i - 1] if i else trace.x
            dLdA, dWs[i], dbs[i] = F.linear_backward(dLdZ, a_prev, self.weights[i])
            if i:
                dLdZ = self.activation_fns[i - 1].backward(dLdA, trace.z[i - 1], trace.a[i - 1])
        return dWs, dbs, dLdA

    def loss_and_grads(
        self, x: np.ndarray, labels: np.ndarray
    ) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """Mean cross-entropy and its parameter gradients (the reference path)."""
        t = self.trace(x)
        loss = F.cross_entropy_forward(t.z[-1], labels)
        dWs, dbs, _ = self.backward(t, F.softmax_cross_entropy_backward(t.a[-1], labels))
        return loss, dWs, dbs
