"""The in-place kernel of a hidden layer, written once: its activation over the
pre-activation z (keeping what the backward pass needs) and that backward pass.

The training step (:mod:`.sgd_step`) and the batched backward engine
(:mod:`.backprop`) run every hidden layer through :class:`HiddenKernel`;
:meth:`MLP.trace` / :meth:`MLP.backward` are the allocating reference path the tests
hold both to. Appendix item 1: ReLU'(z) = 1 for z > 0, else 0, so a ReLU layer keeps a
mask of a > 0; any other activation keeps f'(z), computed with f(z) (they share their
costly part: GELU's Phi, SiLU's sigma).
"""

from __future__ import annotations

import numpy as np

from .activations import Activation


class HiddenKernel:
    """f and f' of one hidden layer on (rows, n) buffers allocated once.

    ``forward(a)`` turns the pre-activation held in ``a`` into f(z) in place;
    ``backward(g, a)`` then turns dL/da in ``g`` into dL/dz in place. ``keep_z`` also
    keeps z itself (a reviving objective needs it where f is not ReLU).
    """

    def __init__(self, act: Activation, rows: int, n: int, dtype, keep_z: bool = False):
        self.act, self.relu = act, act.is_relu
        self.deriv = None if self.relu else np.empty((rows, n), dtype)  # f'(z)
        self.mask = np.empty((rows, n), bool) if self.relu else None  # ReLU'(z) = [a > 0]
        self.z = np.empty((rows, n), dtype) if keep_z and not self.relu else None

    def forward(self, a: np.ndarray) -> None:
        """``a`` (z on entry) becomes f(z); f'(z) (or z) is kept for :meth:`backward`."""
        if self.relu:
            np.maximum(a, 0, out=a)
            return
        if self.z is not None:
            np.copyto(self.z, a)
        self.act.forward_and_derivative_into(a, a, self.deriv)

    def backward(self, g: np.ndarray, a: np.ndarray) -> None:
        """``g`` (dL/da on entry) becomes dL/dz = dL/da * f'(z); ``a`` is f(z)."""
        if self.relu:
            np.greater(a, 0, out=self.mask)
            g *= self.mask
        else:
            g *= self.deriv
