"""Figure 5: hidden neuron 7:1 under TV (rows) and L1 (columns), 30 steps; its ratio to
the next-highest neuron in a red box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..data import Dataset
from ..nn.mlp import MLP
from ..shapes import MNIST_SHAPE
from .common import TV_DOUBLING
from .drawing import ratio_text, target_text
from .grid import data_for, draw_grid
from .record import PaperFigure, no_inputs, value_range

# Hidden layer 7 neuron 1 (the last hidden layer of a shallower model), the same grid as
# Figure 4, 30 steps (caption).
SPEC = {"target": [7, 1], "tv": TV_DOUBLING[::2], "l1_percent": [0, 10, 20, 30, 40, 50],
        "steps": 30, "lr": 0.01}

CAPTION = (
    'Images optimised for activation of neuron 1 in hidden layer 7, with TV '
    'regularisation increasing downwards (exponentially) and L1 regularisation increasing'
    ' rightwards (linearly). L1 weights are written as percentages of TV weights again. '
    'All images were initialised from near-zero values and optimised for only 30 steps, '
    'to limit extreme values. Written below each image is its activation of the target '
    'node divided by the next-highest node activation, with the raw target node '
    'activation in brackets. The opacity of the red boxes underneath the activation '
    "values is 1 minus that images' activation ratio divided by the maximum ratio 2.14. "
    'These opacities are very similar to those in Figure 4, indicating that the '
    'regularisations had a similar effect on error.'
)


def compute(model: MLP, data: Dataset, analysis: Path, chosen: dict) -> dict[str, np.ndarray]:
    return data_for(model, SPEC)


def draw(target, tv, l1_percent, images, activation, ratio, *, shape=MNIST_SHAPE,
         class_names=None, dataset=None) -> Figure:
    """The same grid at 30 steps; ratio to the next-highest neuron (raw activation), box
    opacity 1 - ratio / max ratio."""
    ratio = np.asarray(ratio, dtype=np.float64)
    finite = ratio[np.isfinite(ratio)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    texts = [[ratio_text(r, a) for r, a in zip(rr, aa)] for rr, aa in zip(ratio, activation)]
    opacity = 1.0 - np.nan_to_num(ratio, posinf=top) / top
    return draw_grid(target, tv, l1_percent, images, texts, opacity,
                     f"Figure 5: hidden neuron {target_text(target)}, ratio (raw activation); "
                     f"max ratio {top:.2f}", shape)


def notes(d) -> str:
    return (f"Ratios {value_range(d['ratio'], '{:.2f}')}, activations "
            f"{value_range(d['activation'], '{:.3g}')}.")


FIGURE = PaperFigure("fig5", SPEC, CAPTION, no_inputs, compute, draw, notes)
