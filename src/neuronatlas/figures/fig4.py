"""Figure 4: output neuron 3 under TV (rows) and L1 (columns); its activation in a red box
whose opacity is the error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..data import Dataset
from ..nn.mlp import MLP
from ..shapes import MNIST_SHAPE
from .common import TV_DOUBLING
from .drawing import class_text
from .grid import data_for, draw_grid
from .record import PaperFigure, no_inputs, value_range

# Output 3 (layer 8: the output layer of any depth), TV x4 per row (exponential), L1 0-50%
# of TV (linear), 100 steps (caption).
SPEC = {"target": [8, 3], "tv": TV_DOUBLING[::2], "l1_percent": [0, 10, 20, 30, 40, 50],
        "steps": 100, "lr": 0.01}

CAPTION = (
    'Images optimised for activation of the output neuron 3, with varying levels of TV '
    'and L1 regularisation. The former increases downwards (exponentially) and the latter'
    ' increases rightwards (linearly). The L1 regularisation weights are written as a '
    'percentage of the TV regularisation weight for each row. All images were initialised'
    ' from near-zero values and optimised for 100 steps. The activation induced by each '
    'image is written below it in red, in a red box with opacity equal to the error, '
    'i.e., 1 minus the activation.'
)


def compute(model: MLP, data: Dataset, analysis: Path, chosen: dict) -> dict[str, np.ndarray]:
    return data_for(model, SPEC)


def draw(target, tv, l1_percent, images, activation, ratio=None, *, shape=MNIST_SHAPE,
         class_names=None, dataset=None) -> Figure:
    """The output neuron, TV rows (exponential) x L1 columns (linear, % of TV); activation
    in red, in a red box whose opacity is the error 1 - activation."""
    texts = [[f"{a:.4f}" for a in row] for row in activation]
    return draw_grid(target, tv, l1_percent, images, texts, 1.0 - np.asarray(activation),
                     f"Figure 4: output neuron {class_text(class_names, target[1])}, TV down x "
                     "L1 across", shape)


def notes(d) -> str:
    return f"Activations {value_range(d['activation'], '{:.4f}')}."


FIGURE = PaperFigure("fig4", SPEC, CAPTION, no_inputs, compute, draw, notes)
