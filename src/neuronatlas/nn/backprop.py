"""The batched backward pass of a network, seeded at any neuron or output: one row per
objective, every GEMM shared: the visualiser, adversarial examples and the claims' input
gradients take their gradients from here (training's step, :mod:`.sgd_step`, fuses the
weight update into its gradient's GEMM; both run each hidden layer through the one
kernel, :class:`.kernels.HiddenKernel`).

An objective is any record with ``terms`` (each with ``kind`` (:data:`TERM_KINDS`),
``layer``, ``index``, ``weight`` and the flags ``pre``, ``revive``), ``depth`` (the
deepest layer a term reaches) and ``target`` ((layer, index) reported as its
activation): :class:`neuronatlas.vis.Objective` builds them. Rows are sorted by depth, so
the rows that need layer l are a prefix ``[:n_l]`` of every buffer: the forward pass of
layer l is one GEMM over ``n_l`` rows, and the backward pass enters each row's gradient
at its own layer (Appendix item 2: dA_t/dI = f'(z_t) w_t f'(z^{k-1}) w^{k-1} ... f'(z^1)
w^1).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from . import functional as F
from .blas import GemmPlan
from .kernels import HiddenKernel
from .mlp import MLP

#: where a term enters the backward pass: a neuron's activation (or z), the mean of its
#: layer's other neurons, or an output's log SoftMax
TERM_KINDS = ("neuron", "others", "logprob")


class _Seeds:
    """Where one layer's objective terms enter the backward pass, as index arrays."""

    def __init__(self, layer: int, size: int, rows_terms, relu: bool = True):
        post, pre, oth, logp, rev = [], [], [], [], []
        for row, t in rows_terms:
            if t.kind == "neuron" and t.revive and not t.pre and not relu:
                rev.append((row, t.index, t.weight))
            elif t.kind == "neuron":  # for ReLU, reviving is climbing z (the same once z > 0)
                (pre if t.pre or t.revive else post).append((row, t.index, t.weight))
            elif t.kind == "others":
                oth.append((row, t.index, t.weight / max(size - 1, 1)))
            elif t.kind == "logprob":
                logp.append((row, t.index, t.weight))
            else:
                raise ConfigError(f"unknown objective term {t.kind!r}; terms are "
                                  f"{', '.join(TERM_KINDS)}")
        as_arrays = lambda xs: tuple(np.array(v) for v in zip(*xs)) if xs else None  # noqa: E731
        self.post, self.pre = as_arrays(post), as_arrays(pre)
        self.others, self.logprob = as_arrays(oth), as_arrays(logp)
        self.revive = as_arrays(rev)

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

    def add_pre(self, g: np.ndarray, y: np.ndarray, z: np.ndarray | None = None,
                act=None) -> None:
        """Terms on z_l: pre-activation neurons, reviving neurons (d/dz of z while z <= 0,
        of f(z) above) and log SoftMax (gradient e_i - y)."""
        if self.pre is not None:
            rows, cols, w = self.pre
            np.add.at(g, (rows, cols), w.astype(g.dtype))
        if self.revive is not None:
            rows, cols, w = self.revive
            zi, ai = z[rows, cols], y[rows, cols]
            coef = np.where(zi > 0, act.derivative(zi, ai), 1)
            np.add.at(g, (rows, cols), (w * coef).astype(g.dtype))
        if self.logprob is not None:
            rows, cols, w = self.logprob
            # w (e_i - y), with its i-th entry 1 - y_i as the sum of the other classes'
            # probabilities: 1 - y_i itself cancels to 0 or 6e-8 in float32 once y_i nears
            # 1, and a normalised step then follows rounding noise, not the objective
            y_rows = y[rows].astype(np.float64)
            k = np.arange(len(rows))
            rest = y_rows.copy()
            rest[k, cols] = 0
            delta = -w[:, None] * y_rows
            delta[k, cols] = w * rest.sum(axis=1)
            np.add.at(g, rows, delta.astype(g.dtype))


class Backprop:
    """Buffers and GEMM plans for one batch of objectives on one model.

    A row whose objective is one hidden neuron (``neuron(l, i)``, the usual case) needs
    from its own layer l only neuron i: z_i = a_{l-1} . W_l[i] + b_i forward, and
    d obj/d a_{l-1} = w f'(z_i) W_l[i] backward (Appendix item 2's last factor for one
    node). Such "single" rows sit at the end of their depth group and skip layer l's
    GEMMs: ``m[l]`` rows go through them, rows ``m[l]:n[l]`` use their weight row alone,
    which takes about a third of the FLOPs out of visualising a whole network.
    """

    def __init__(self, model: MLP, objectives: list):
        self.model = model
        L = model.n_layers
        depth = np.array([o.depth for o in objectives])
        single = np.array([_single(o, L) for o in objectives], dtype=bool)
        self.order = np.lexsort((single, -depth))  # deepest first; single rows last in a depth
        self.depth = depth[self.order]
        self.top = int(self.depth.max())
        R_ = len(objectives)
        # n[l]: rows whose objective reaches layer l (a prefix, rows sorted by depth);
        # m[l] <= n[l]: those of them that need all of layer l (the GEMM rows)
        self.n = [R_] + [int((self.depth >= l).sum()) for l in range(1, self.top + 1)]
        single = single[self.order]
        self.m = [R_] + [self.n[l] - int((single & (self.depth == l)).sum())
                         for l in range(1, self.top + 1)]
        dt, sizes = model.dtype, model.sizes
        self.a = [np.empty((self.n[l], sizes[l]), dt) for l in range(self.top + 1)]
        self.g = [np.empty((self.n[l], sizes[l]), dt) for l in range(self.top + 1)]
        W, m = model.weights, self.m
        self.fwd = [None] + [GemmPlan(self.a[l - 1][: m[l]], W[l - 1], self.a[l][: m[l]],
                                      trans_b=True) for l in range(1, self.top + 1)]
        self.bwd = [None] + [GemmPlan(self.g[l][: m[l]], W[l - 1], self.g[l - 1][: m[l]])
                             for l in range(1, self.top + 1)]  # (m,out)@(out,in) -> (m,in)
        rows_objs = list(enumerate(objectives[i] for i in self.order))
        by_layer: dict[int, list] = {}
        for row, obj in rows_objs:
            if row < m[obj.depth]:
                for t in obj.terms:
                    by_layer.setdefault(t.layer, []).append((row, t))
        self.seeds = {l: _Seeds(l, sizes[l], terms, l >= L or model.activation(l).is_relu)
                      for l, terms in by_layer.items()}
        # hidden[l]: the activation of hidden layer l over its m[l] GEMM rows (keeping z
        # where a reviving objective needs it)
        self.hidden = [None] + [
            HiddenKernel(model.activation(l), m[l], sizes[l], dt,
                         keep_z=l in self.seeds and self.seeds[l].revive is not None)
            if l < L else None for l in range(1, self.top + 1)]
        self.singles = {l: _Single(l, [(row, obj.terms[0]) for row, obj in rows_objs
                                       if obj.depth == l and row >= m[l]], model)
                        for l in range(1, self.top + 1) if m[l] < self.n[l]}
        targets = np.array([obj.target for _, obj in rows_objs])
        self.t_layer, self.t_index = targets[:, 0], targets[:, 1]

    def forward(self, x: np.ndarray) -> None:
        """Activations of every needed layer for network input x (rows in sorted order);
        ``x`` may be ``self.a[0]`` itself, filled in place by the caller. Single rows
        get only their target's activation at their own layer."""
        if x is not self.a[0]:
            self.a[0][...] = x
        L, b = self.model.n_layers, self.model.biases
        for l in range(1, self.top + 1):
            self.fwd[l]()  # a_l = a_{l-1} @ W_l.T: (m,in)@(in,out) -> (m,out)
            a = self.a[l][: self.m[l]]
            a += b[l - 1]
            if l < L:
                self.hidden[l].forward(a)  # f(z) in place, f'(z) kept
            else:
                F.softmax_into(a)
            if l in self.singles:
                self.singles[l].forward(self.a[l - 1], self.a[l])

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
            m = self.m[l]
            g, a = self.g[l][:m], self.a[l][:m]
            above = self.n[l + 1] if l < self.top else 0
            g[above:m] = 0  # rows whose objective starts at this layer
            seeds = self.seeds.get(l)
            if seeds is not None:
                seeds.add_post(g)
            if l < L:
                self.hidden[l].backward(g, a)  # dL/dz = dL/da * f'(z)
            else:  # SoftMax Jacobian (Appendix item 1): dz = y * (g - <g, y>)
                F.softmax_backward_into(g, a)
            if seeds is not None:
                hidden = self.hidden[l] if l < L else None
                seeds.add_pre(g, a, hidden and hidden.z, hidden and hidden.act)
            self.bwd[l]()  # g_{l-1} = g_l @ W_l: (m,out)@(out,in) -> (m,in)
            if l in self.singles:
                self.singles[l].backward(self.g[l - 1])
        return self.g[0]


def _single(obj, L: int) -> bool:
    """One term, on one hidden neuron: the row can skip its own layer's GEMMs."""
    return len(obj.terms) == 1 and obj.terms[0].kind == "neuron" and obj.terms[0].layer < L


class _Single:
    """The rows of layer l whose objective is ``w * neuron(l, i)`` (post- or
    pre-activation): their weight rows W_l[i] and biases b_i, gathered once."""

    def __init__(self, layer: int, rows_terms, model: MLP):
        rows = np.array([row for row, _ in rows_terms])
        self.lo, self.hi = int(rows[0]), int(rows[-1]) + 1  # contiguous, by construction
        self.rows = rows
        self.index = np.array([t.index for _, t in rows_terms])
        self.W = np.ascontiguousarray(model.weights[layer - 1][self.index])  # (k, in)
        self.b = model.biases[layer - 1][self.index]
        dt = model.dtype
        self.weight = np.array([t.weight for _, t in rows_terms], dt)
        self.pre = np.array([t.pre for _, t in rows_terms], dtype=bool)
        self.revive = np.array([t.revive for _, t in rows_terms], dtype=bool)
        self.coef = np.empty(len(rows), dt)
        self.act = model.activation(layer)

    def forward(self, a_in: np.ndarray, a_out: np.ndarray) -> None:
        """z_i = a_{l-1} . W_l[i] + b_i for each row; f(z_i) into a_out[row, i]."""
        z = np.einsum("ij,ij->i", a_in[self.lo:self.hi], self.W) + self.b  # (k,)
        a = self.act.forward(z)
        a_out[self.rows, self.index] = a
        # d obj / d z_i: the weight, times f'(z) unless the objective is z itself (pre, or
        # revive while z <= 0)
        climb_z = self.pre | (self.revive & (z <= 0))
        np.multiply(self.weight, np.where(climb_z, 1, self.act.derivative(z, a)), out=self.coef)

    def backward(self, g_in: np.ndarray) -> None:
        """d obj / d a_{l-1} = coef * W_l[i] for each row."""
        np.multiply(self.W, self.coef[:, None], out=g_in[self.lo:self.hi])
