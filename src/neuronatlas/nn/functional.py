"""Pure forward/backward pairs of the network's building blocks.

Each op's backward sits right under its forward (micrograd style). Nothing here
keeps state or allocates beyond its result; the training step in
:mod:`neuronatlas.nn.sgd_step` does the same maths in place and is tested against
these functions.

Shapes: ``B`` batch, ``I`` inputs, ``O`` outputs, ``K`` classes. ``dLdX`` is the
gradient of the scalar loss ``L`` with respect to ``X``. Formulas cite the
paper's Appendix, item 1.
"""

from __future__ import annotations

import numpy as np


# --- linear ---------------------------------------------------------------------------
def linear_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z = x W^T + b with W in PyTorch layout (O, I)."""
    return x @ W.T + b  # (B,I)@(I,O) -> (B,O)


def linear_backward(
    dLdZ: np.ndarray, x: np.ndarray, W: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dLdX, dLdW, dLdb) of z = x W^T + b."""
    dLdX = dLdZ @ W  # (B,O)@(O,I) -> (B,I)
    dLdW = dLdZ.T @ x  # (O,B)@(B,I) -> (O,I)
    dLdb = dLdZ.sum(axis=0)  # (O,)
    return dLdX, dLdW, dLdb


# --- ReLU (Appendix 1: ReLU'(x) = 1 for x > 0, else 0) ----------------------------------
def relu_forward(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def relu_backward(dLdA: np.ndarray, z: np.ndarray) -> np.ndarray:
    return dLdA * (z > 0)


# --- SoftMax (Appendix 1, with the max subtracted for numerical stability) -------------
def softmax_forward(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_into(z: np.ndarray) -> np.ndarray:
    """:func:`softmax_forward` in place over the last axis of ``z`` (same values)."""
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def softmax_backward(dLdY: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Vector-Jacobian product with J = diag(y) - y y^T (Appendix 1, J_SoftMax).

    dY_k/dz_t = y_t (1 - y_t) for k = t and -y_k y_t otherwise, so
    dLdZ = J^T dLdY = y * (dLdY - <dLdY, y>).
    """
    return softmax_backward_into(np.array(dLdY, dtype=np.result_type(dLdY, y)), y)


def softmax_backward_into(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """:func:`softmax_backward` in place: ``g`` (dLdY) becomes dLdZ (the renderer's form)."""
    g -= (g * y).sum(axis=-1, keepdims=True)
    g *= y
    return g


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log SoftMax(z) = z - max - log sum exp(z - max), exact for very negative logits."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


# --- mean cross-entropy (Appendix 1: CE = log sum exp z - z_t) -------------------------
def cross_entropy_forward(z: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the batch of -log SoftMax(z)_label, computed from the logits z."""
    logp = log_softmax(z)
    return float(-logp[np.arange(len(labels)), labels].mean())


def softmax_cross_entropy_backward(y: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """dL/dz of the *mean* CE through the SoftMax: (y - t) / B (Appendix 1)."""
    dLdZ = y.copy()
    dLdZ[np.arange(len(labels)), labels] -= 1
    return dLdZ / len(labels)
