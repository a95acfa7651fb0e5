"""Figure 6: the most selective neurons of hidden layers 7 and 5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..data import Dataset
from ..nn.mlp import MLP
from .record import PaperFigure
from .selected import chosen_for, data_for, draw_sets, notes

# The six most selective neurons of each layer (highest ratio in the analysis'
# visualisations); L1 at 10% of TV (the paper's suggestion); the strongest TV in the last
# hidden layers, "more conducive to stronger regularisation" (paper), and more steps in
# the earlier ones, whose activations grow more slowly.
SPEC = {"per_set": 6, "sets": [
    {"layer": 7, "tv": 0.256, "l1": 0.0256, "steps": 30, "lr": 0.01},
    {"layer": 5, "tv": 0.064, "l1": 0.0064, "steps": 50, "lr": 0.01}]}

CAPTION = (
    'Visualisations of select nodes in hidden layers 7 and 5, with some different '
    'hyper-parameters, specified above each set of images. Below each image is written '
    '(in red) the ratio of its activation of the target to the next-highest node '
    'activation, with the raw target node activation in brackets. Further below these in '
    'light black font are the top 3 activations induced in the output layer when querying'
    ' the DNN again with the visualisation.'
)


def compute(model: MLP, data: Dataset, analysis: Path, chosen: dict) -> dict[str, np.ndarray]:
    return data_for(model, SPEC, chosen["chosen"])


def draw(**arrays) -> Figure:
    """Selected neurons of hidden layers 7 and 5."""
    return draw_sets(**arrays, number=6)


FIGURE = PaperFigure("fig6", SPEC, CAPTION, chosen_for(SPEC), compute, draw, notes)
