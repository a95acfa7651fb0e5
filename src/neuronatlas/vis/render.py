"""The batched activation-maximisation loop: one image row per target, every GEMM shared
(the forward and backward passes are :class:`~neuronatlas.nn.backprop.Backprop`'s).
Nothing here does I/O; ``callback(step, activation)`` sees each step's target
activations (in the caller's row order) and may return True to stop early;
``snapshot(step, images)``, just before it, sees the images those activations belong to.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..config import VisConfig
from ..nn.backprop import Backprop
from ..nn.mlp import MLP
from .objectives import Objective
from .parts import RowDraws, render_parts
from .transforms import SHIFTS, translate, translate_backward
from .update import AscentUpdate

StepCallback = Callable[[int, np.ndarray], "bool | None"]
SnapshotCallback = Callable[[int, np.ndarray], None]


def render(
    model: MLP,
    objectives: list[Objective],
    config: VisConfig,
    x0: np.ndarray,
    shift_index: np.ndarray | None = None,
    callback: StepCallback | None = None,
    snapshot: SnapshotCallback | None = None,
    *,
    draws: RowDraws | None = None,
    magnitude: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient ascent from ``x0`` (R, n_inputs); returns the raw (unclipped) images.

    ``shift_index`` (R, steps) picks each row's jitter translation per step (indices
    into :data:`SHIFTS`); it is required when ``config.jitter`` is on. ``snapshot``
    gets a copy of each step's (R, n_inputs) images (clipped when ``config.clip``, before
    the jitter shift) in the caller's row order, for live displays; it costs a copy.
    Configs beyond the paper's parts run :func:`.parts.render_parts` with each row's
    ``draws`` (:class:`.parts.RowDraws`); caller rows ``t*K .. t*K+K-1`` (K =
    ``config.diversity``) are the images of one neuron for the diversity penalty;
    ``magnitude`` is maco's spectrum.
    """
    r = Backprop(model, objectives)
    order = r.order
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    if not config.is_paper_method:
        x = np.array(x0[order], dtype=model.dtype)
        draws = (draws or RowDraws()).take(order)
        # where each caller row (grouped K at a time) sits among the sorted rows
        grouped = inverse if config.diversity_weight else None
        out = render_parts(r, config, x, draws, inverse, grouped, magnitude, callback,
                           snapshot)
        return out[inverse]
    x = np.array(x0[order], dtype=model.dtype)
    shifts = None if shift_index is None else SHIFTS[shift_index[order]]  # (R, steps, 2)
    shape = model.input_shape
    update = AscentUpdate(len(x), config, model.dtype, shape)
    # u = clip(x): without jitter it is the network input itself, written in place
    u = (np.empty_like(x) if config.jitter else r.a[0]) if config.clip else x
    for step in range(config.steps):
        if config.clip:  # (a no-op after the first step when projecting)
            np.clip(x, 0.0, 1.0, out=u)
        inp = translate(u, shifts[:, step], shape) if config.jitter else u
        r.forward(inp)
        if snapshot is not None:
            snapshot(step, u[inverse])
        if callback is not None and callback(step, r.target_activations()[inverse]):
            break
        grad = r.backward()
        if config.jitter:
            grad = translate_backward(grad, shifts[:, step], shape)
        # x += lr * (grad * clip'(x) - tv dTV - l1 sgn): the regularisers are computed on x
        # and, by default, NOT multiplied by the clip derivative ("Visualiser": the
        # serendipitous oversight that keeps pixels beyond the bounds dynamic);
        # reg_through_clip differentiates those of the clipped image instead.
        update(x, grad, u)
    return x[inverse]
