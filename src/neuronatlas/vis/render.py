"""The batched activation-maximisation loop: one image row per target, every GEMM shared.

Rows are sorted by the deepest layer their objective reaches, so the rows that need
layer l are a prefix ``[:n_l]`` of every buffer: the forward pass of layer l is one
GEMM over ``n_l`` rows, and the backward pass enters each row's gradient at its own
layer (Appendix item 2: dA_t/dI = f'(z_t) w_t f'(z^{k-1}) w^{k-1} ... f'(z^1) w^1).
Nothing here does I/O; ``callback(step, activation)`` sees each step's target
activations (in the caller's row order) and may return True to stop early;
``snapshot(step, images)``, just before it, sees the images those activations belong to.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..config import VisConfig
from ..nn.blas import GemmPlan
from ..nn.mlp import MLP
from .objectives import Objective
from .transforms import SHIFTS, translate, translate_backward
from .update import AscentUpdate

StepCallback = Callable[[int, np.ndarray], "bool | None"]
SnapshotCallback = Callable[[int, np.ndarray], None]


class _Seeds:
    """Where one layer's objective terms enter the backward pass, as index arrays."""

    def __init__(self, layer: int, size: int, rows_terms):
        post, pre, oth, logp = [], [], [], []
        for row, t in rows_terms:
            if t.kind == "neuron":
                (pre if t.pre else post).append((row, t.index, t.weight))
            elif t.kind == "others":
                oth.append((row, t.index, t.weight / max(size - 1, 1)))
            else:
                logp.append((row, t.index, t.weight))
        as_arrays = lambda xs: tuple(np.array(v) for v in zip(*xs)) if xs else None  # noqa: E731
        self.post, self.pre = as_arrays(post), as_arrays(pre)
        self.others, self.logprob = as_arrays(oth), as_arrays(logp)

    def add_post(self, g: np.ndarray) -> None:
        """Terms on the activation a_l (before the nonlinearity's derivative)."""
        if self.post is not None:
            rows, cols, w = self.post
            np.add.at(g, (rows, cols), w.astype(g.dtype))
        if self.others is not None:
            rows, cols, w = self.others
            # weight * mean of the others: each neuron but the excluded one gets w/(n-1)
            np.add.at(g, rows, w[:, None].astype(g.dtype))
            np.subtract.at(g, (rows, cols), w.astype(g.dtype))

    def add_pre(self, g: np.ndarray, y: np.ndarray) -> None:
        """Terms on z_l: pre-activation neurons and log SoftMax (gradient e_i - y)."""
        if self.pre is not None:
            rows, cols, w = self.pre
            np.add.at(g, (rows, cols), w.astype(g.dtype))
        if self.logprob is not None:
            rows, cols, w = self.logprob
            np.subtract.at(g, rows, (w[:, None] * y[rows]).astype(g.dtype))
            np.add.at(g, (rows, cols), w.astype(g.dtype))


class Renderer:
    """Buffers and GEMM plans for one batch of objectives on one model."""

    def __init__(self, model: MLP, objectives: list[Objective]):
        self.model = model
        depth = np.array([o.depth for o in objectives])
        self.order = np.argsort(-depth, kind="stable")
        self.depth = depth[self.order]
        self.top = int(self.depth.max())
        R_ = len(objectives)
        # n[l]: rows whose objective reaches layer l (a prefix, rows sorted by depth)
        self.n = [R_] + [int((self.depth >= l).sum()) for l in range(1, self.top + 1)]
        dt, sizes = model.dtype, model.sizes
        self.a = [np.empty((self.n[l], sizes[l]), dt) for l in range(self.top + 1)]
        self.g = [np.empty((self.n[l], sizes[l]), dt) for l in range(self.top + 1)]
        self.mask = [np.empty((self.n[l], sizes[l]), bool) for l in range(self.top + 1)]
        W = model.weights
        self.fwd = [None] + [GemmPlan(self.a[l - 1][: self.n[l]], W[l - 1], self.a[l],
                                      trans_b=True) for l in range(1, self.top + 1)]
        self.bwd = [None] + [GemmPlan(self.g[l], W[l - 1], self.g[l - 1][: self.n[l]])
                             for l in range(1, self.top + 1)]  # (n,out)@(out,in) -> (n,in)
        by_layer: dict[int, list] = {}
        for row, obj in enumerate(objectives[i] for i in self.order):
            for t in obj.terms:
                by_layer.setdefault(t.layer, []).append((row, t))
        self.seeds = {l: _Seeds(l, sizes[l], terms) for l, terms in by_layer.items()}
        targets = np.array([obj.target for obj in (objectives[i] for i in self.order)])
        self.t_layer, self.t_index = targets[:, 0], targets[:, 1]

    def forward(self, x: np.ndarray) -> None:
        """Activations of every needed layer for network input x (rows in sorted order);
        ``x`` may be ``self.a[0]`` itself, filled in place by the caller."""
        if x is not self.a[0]:
            self.a[0][...] = x
        L, b = self.model.n_layers, self.model.biases
        for l in range(1, self.top + 1):
            self.fwd[l]()
            a = self.a[l]
            a += b[l - 1]
            if l < L:
                np.maximum(a, 0, out=a)
            else:  # SoftMax with the max subtracted (Appendix item 1)
                a -= a.max(axis=1, keepdims=True)
                np.exp(a, out=a)
                a /= a.sum(axis=1, keepdims=True)

    def target_activations(self) -> np.ndarray:
        out = np.empty(len(self.t_layer), self.model.dtype)
        for l in range(1, self.top + 1):
            rows = np.flatnonzero(self.t_layer == l)
            out[rows] = self.a[l][rows, self.t_index[rows]]
        return out

    def backward(self) -> np.ndarray:
        """dObjective/dinput (rows in sorted order), after a :meth:`forward`."""
        L = self.model.n_layers
        for l in range(self.top, 0, -1):
            g, a, n = self.g[l], self.a[l], self.n[l]
            above = self.n[l + 1] if l < self.top else 0
            g[above:n] = 0  # rows whose objective starts at this layer
            seeds = self.seeds.get(l)
            if seeds is not None:
                seeds.add_post(g)
            if l < L:  # ReLU'(z) = [a > 0]
                np.greater(a, 0, out=self.mask[l])
                g *= self.mask[l]
            else:  # SoftMax Jacobian (Appendix item 1): dz = y * (g - <g, y>)
                g -= (g * a).sum(axis=1, keepdims=True)
                g *= a
            if seeds is not None:
                seeds.add_pre(g, a)
            self.bwd[l]()
        return self.g[0]


def render(
    model: MLP,
    objectives: list[Objective],
    config: VisConfig,
    x0: np.ndarray,
    shift_index: np.ndarray | None = None,
    callback: StepCallback | None = None,
    snapshot: SnapshotCallback | None = None,
) -> np.ndarray:
    """Gradient ascent from ``x0`` (R, 784); returns the raw (unclipped) images.

    ``shift_index`` (R, steps) picks each row's jitter translation per step (indices
    into :data:`SHIFTS`); it is required when ``config.jitter`` is on. ``snapshot``
    gets a copy of each step's (R, 784) images (clipped when ``config.clip``, before
    the jitter shift) in the caller's row order, for live displays; it costs a copy.
    """
    r = Renderer(model, objectives)
    order = r.order
    x = np.array(x0[order], dtype=model.dtype)
    shifts = None if shift_index is None else SHIFTS[shift_index[order]]  # (R, steps, 2)
    update = AscentUpdate(len(x), config, model.dtype)
    # u = clip(x): without jitter it is the network input itself, written in place
    u = (np.empty_like(x) if config.jitter else r.a[0]) if config.clip else x
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    for step in range(config.steps):
        if config.clip:  # (a no-op after the first step when projecting)
            np.clip(x, 0.0, 1.0, out=u)
        inp = translate(u, shifts[:, step]) if config.jitter else u
        r.forward(inp)
        if snapshot is not None:
            snapshot(step, u[inverse])
        if callback is not None and callback(step, r.target_activations()[inverse]):
            break
        grad = r.backward()
        if config.jitter:
            grad = translate_backward(grad, shifts[:, step])
        # x += lr * (grad * clip'(x) - tv dTV - l1 sgn): the regularisers are computed on x
        # and, by default, NOT multiplied by the clip derivative ("Visualiser": the
        # serendipitous oversight that keeps pixels beyond the bounds dynamic);
        # reg_through_clip differentiates those of the clipped image instead.
        update(x, grad, u)
    return x[inverse]
