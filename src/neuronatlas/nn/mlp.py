"""The ReLU multi-layer perceptron of the paper, with a SoftMax output.

Layers are numbered as in DESIGN.md section 1: 1..L-1 hidden (ReLU), L the output
(SoftMax); 0 is the input. Weights are stored in PyTorch's ``nn.Linear`` layout
``(out, in)`` so that the model file loads into ``torch.nn.Sequential`` unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import functional as F

#: The paper's architecture: 784 inputs, seven hidden ReLU layers, 10 SoftMax outputs.
PAPER_SIZES: tuple[int, ...] = (784, 1250, 1000, 750, 500, 250, 100, 32, 10)


def kaiming_normal(fan_out: int, fan_in: int, rng: np.random.Generator) -> np.ndarray:
    """He et al. (2015) initialisation for ReLU: N(0, 2 / fan_in), float64 (out, in)."""
    return rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / fan_in)


@dataclass
class Trace:
    """What a forward pass keeps for the backward pass: input, pre-activations z_l
    and activations a_l (ReLU for hidden layers, SoftMax for the last)."""

    x: np.ndarray
    z: list[np.ndarray]
    a: list[np.ndarray]


@dataclass
class MLP:
    weights: list[np.ndarray]  # weights[l-1] is layer l's (out, in) matrix
    biases: list[np.ndarray]  # biases[l-1] is layer l's (out,) vector
    metadata: dict[str, str] = field(default_factory=dict)

    # --- construction ----------------------------------------------------------------
    @classmethod
    def init(cls, sizes=PAPER_SIZES, *, rng: np.random.Generator, dtype=np.float32) -> MLP:
        """Kaiming-normal weights, zero biases; the same rng gives the same bits."""
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must be at least two positive integers, got {sizes}")
        weights = [kaiming_normal(o, i, rng).astype(dtype) for i, o in zip(sizes, sizes[1:])]
        biases = [np.zeros(o, dtype=dtype) for o in sizes[1:]]
        return cls(weights, biases)

    @classmethod
    def load(cls, path: str | Path) -> MLP:
        """Load and validate a ``model.safetensors`` (DESIGN.md section 3)."""
        from .io import load_model

        return load_model(path)

    def save(self, path: str | Path, metadata: dict[str, str] | None = None) -> None:
        from .io import save_model

        save_model(self, path, metadata)

    def copy(self) -> MLP:
        return MLP([w.copy() for w in self.weights], [b.copy() for b in self.biases],
                   dict(self.metadata))

    def astype(self, dtype) -> MLP:
        return MLP([w.astype(dtype) for w in self.weights],
                   [b.astype(dtype) for b in self.biases], dict(self.metadata))

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

    # --- forward -----------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits (the output layer's pre-activation), like ``nn.Sequential``."""
        a = x
        for l, (W, b) in enumerate(zip(self.weights, self.biases), start=1):
            z = F.linear_forward(a, W, b)
            a = F.relu_forward(z) if l < self.n_layers else z
        return a

    def trace(self, x: np.ndarray) -> Trace:
        """Forward pass keeping every z_l and a_l (index l-1 for layer l)."""
        zs, acts, a = [], [], x
        for l, (W, b) in enumerate(zip(self.weights, self.biases), start=1):
            z = F.linear_forward(a, W, b)
            a = F.relu_forward(z) if l < self.n_layers else F.softmax_forward(z)
            zs.append(z)
            acts.append(a)
        return Trace(x, zs, acts)

    def activations(
        self, x: np.ndarray, *, pre: bool = False, batch_size: int = 4096
    ) -> dict[int, np.ndarray]:
        """``{1: (N, 1250), ..., L: (N, 10)}``: ReLU / SoftMax outputs, or z if ``pre``."""
        x = np.asarray(x, dtype=self.dtype)
        out = {l: np.empty((len(x), n), self.dtype) for l, n in enumerate(self.sizes) if l}
        for s in range(0, len(x), batch_size):
            t = self.trace(x[s : s + batch_size])
            for l in out:
                out[l][s : s + batch_size] = (t.z if pre else t.a)[l - 1]
        return out

    def predict_proba(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """SoftMax probabilities (N, classes), evaluated in batches."""
        x = np.asarray(x, dtype=self.dtype)
        parts = [F.softmax_forward(self.forward(x[s : s + batch_size]))
                 for s in range(0, len(x), batch_size)]
        return np.concatenate(parts) if parts else np.empty((0, self.sizes[-1]), self.dtype)

    def predict(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
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
                dLdZ = F.relu_backward(dLdA, trace.z[i - 1])
        return dWs, dbs, dLdA

    def loss_and_grads(
        self, x: np.ndarray, labels: np.ndarray
    ) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """Mean cross-entropy and its parameter gradients (the reference path)."""
        t = self.trace(x)
        loss = F.cross_entropy_forward(t.z[-1], labels)
        dWs, dbs, _ = self.backward(t, F.softmax_cross_entropy_backward(t.a[-1], labels))
        return loss, dWs, dbs
