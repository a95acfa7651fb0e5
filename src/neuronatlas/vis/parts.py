"""The visualiser built from parts, like lucent's optvis: a parametrisation
(:mod:`.params`), transforms before the network (:mod:`.transforms`), the objective
(:mod:`.objectives`, through the batched :class:`~neuronatlas.nn.backprop.Backprop`), regularisers
(:mod:`.regularizers`) and an optimiser (:mod:`.optimizers`). One step, for every row::

    x = image(p)                       # the parametrisation
    u = clip(x)                        # [0, 1], Appendix item 3
    v = T_step(u)                      # jitter / scale / rotate, drawn per row and step
    g = dObjective/dv                  # the renderer's backward pass
    g = clip'(x) * T_step^T(g)         # back through the transforms and the clip
    g = g / rms(g)                     # with ``normalize``: every row's objective at one scale
    g -= sum_r w_r dR_r(x)             # regularisers of x: they bypass the clip derivative
    p = optimiser(p, image'(p)^T g)    # ascent or Adam
    every n steps: x = blur(x)

The paper's rules are kept exactly: the clip derivative on the objective's gradient, the
regularisers computed on x and not multiplied by it (unless ``reg_through_clip``), or
projection (``project``, pixels only). When only the paper's parts are in use, the fused
:class:`~.update.AscentUpdate` runs instead (bit for bit the paper's renderer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import VisConfig
from . import regularizers as R
from .optimizers import make_optimizer
from .params import make_param
from .transforms import Resample, clip_inside, translate, translate_backward


@dataclass
class RowDraws:
    """Each row's random draws for the whole run, made up front from the row's own
    generator so that a row gets the same bits alone or in any batch."""

    shifts: np.ndarray | None = None  # (R, steps, 2) integer translations (jitter_px)
    scales: np.ndarray | None = None  # (R, steps) magnification factors
    angles: np.ndarray | None = None  # (R, steps) rotations in degrees
    phases: np.ndarray | None = None  # (R, H, W//2+1, C) maco's start phases

    @classmethod
    def draw(cls, config: VisConfig, rngs, shape) -> RowDraws:
        """Draws for every row from its generator (in this order: shifts, scales,
        angles, phases; each only when its part is on)."""
        k, s, steps = config.jitter_px, config.zoom, config.steps
        cols = {"shifts": [], "scales": [], "angles": [], "phases": []}
        for rng in rngs:
            if k:
                cols["shifts"].append(rng.integers(-k, k + 1, (steps, 2)))
            if s:
                cols["scales"].append(rng.uniform(1 - s, 1 + s, steps))
            if config.rotate:
                cols["angles"].append(rng.uniform(-config.rotate, config.rotate, steps))
            if config.param == "maco":
                cols["phases"].append(rng.uniform(-np.pi, np.pi,
                                                  (shape[0], shape[1] // 2 + 1, shape[2])))
        return cls(**{name: np.stack(v) if v else None for name, v in cols.items()})

    def take(self, rows: np.ndarray) -> RowDraws:
        return RowDraws(*(None if a is None else a[rows] for a in
                          (self.shifts, self.scales, self.angles, self.phases)))


class Regularizers:
    """The regularisers' summed gradient: tv dTV^beta + l1 sgn + l2 2x + tie 2(x - x0)
    + diversity_weight d(mean similarity) (see :mod:`.regularizers` for each)."""

    def __init__(self, config: VisConfig, shape, start: np.ndarray,
                 groups: np.ndarray | None):
        self.c, self.shape, self.start = config, shape, start
        self.groups = groups  # row order that puts each neuron's K images together

    def active(self) -> bool:
        c = self.c
        return bool(c.tv or c.l1 or c.l2 or c.tie or c.diversity_weight)

    def grad(self, x: np.ndarray) -> np.ndarray:
        c = self.c
        g = np.zeros_like(x)
        if c.tv:
            g += c.tv * R.tv_grad(x, self.shape, c.tv_beta)
        if c.l1:
            g += c.l1 * R.l1_grad(x)
        if c.l2:
            g += c.l2 * R.l2_grad(x)
        if c.tie:
            g += c.tie * R.tie_grad(x, self.start)
        if c.diversity_weight:
            # a penalty: descend the similarity of each neuron's K images
            gd = R.diversity_grad(x[self.groups], c.diversity)
            g[self.groups] += c.diversity_weight * gd
        return g


class Transforms:
    """The per-step transforms of every row: integer jitter, then scale and rotation."""

    def __init__(self, draws: RowDraws, shape, dtype):
        self.draws, self.shape, self.dtype = draws, shape, dtype
        self.on = draws.shifts is not None or draws.scales is not None or \
            draws.angles is not None
        self._resample = None

    def forward(self, u: np.ndarray, step: int) -> np.ndarray:
        d = self.draws
        v = translate(u, d.shifts[:, step], self.shape) if d.shifts is not None else u
        if d.scales is not None or d.angles is not None:
            rows = len(u)
            scales = d.scales[:, step] if d.scales is not None else np.ones(rows)
            angles = d.angles[:, step] if d.angles is not None else np.zeros(rows)
            self._resample = Resample(scales, angles, self.shape, self.dtype)
            v = self._resample.forward(v)
        return v

    def backward(self, g: np.ndarray, step: int) -> np.ndarray:
        if self._resample is not None:
            g = self._resample.backward(g)
        if self.draws.shifts is not None:
            g = translate_backward(g, self.draws.shifts[:, step], self.shape)
        return g


def render_parts(renderer, config: VisConfig, x0: np.ndarray, draws: RowDraws,
                 inverse: np.ndarray, groups: np.ndarray | None, magnitude, callback,
                 snapshot) -> np.ndarray:
    """The loop of the module docstring on rows already in the renderer's order;
    returns the raw (unclipped) images x, in the same order."""
    shape, dtype = renderer.model.input_shape, renderer.model.dtype
    param = make_param(config.param, x0, shape, decay=config.decay, magnitude=magnitude,
                       random_phase=draws.phases)
    opt = make_optimizer(config.optimizer, param.p, config.lr)
    regs = Regularizers(config, shape, x0, groups)
    tf = Transforms(draws, shape, dtype)
    clip_grad = config.clip and not config.project
    for step in range(config.steps):
        x = param.image()
        u = np.clip(x, 0.0, 1.0) if config.clip else x
        renderer.forward(tf.forward(u, step) if tf.on else u)
        if snapshot is not None:
            snapshot(step, u[inverse])
        if callback is not None and callback(step, renderer.target_activations()[inverse]):
            break
        g = renderer.backward()
        g = tf.backward(g, step) if tf.on else g.copy()
        inside = clip_inside(x) if clip_grad else None
        if clip_grad:  # the clip derivative (Appendix item 3)
            g *= inside
        if config.normalize:  # unit RMS per row: the regularisers' weights mean the same
            g /= np.sqrt((g * g).mean(axis=1, keepdims=True)) + 1e-12  # for every neuron
        if regs.active():  # on x, bypassing the clip derivative unless reg_through_clip
            r = regs.grad(u if config.reg_through_clip else x)
            if config.reg_through_clip and clip_grad:
                r *= inside
            g -= r
        opt.step(param.p, param.backward(g))
        if config.project:
            np.clip(param.p, 0, 1, out=param.p)
        if config.blur_every and (step + 1) % config.blur_every == 0:
            param.set_image(R.blur(param.image(), config.blur_sigma, shape))
    return param.image()
