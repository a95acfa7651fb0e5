"""Figure 7: the most selective neurons of hidden layers 3 and 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..data import Dataset
from ..nn.mlp import MLP
from .record import PaperFigure
from .selected import chosen_for, data_for, draw_sets, notes

# As Figure 6 (fig6.py gives the reasons), for the earlier layers: TV 0.064, L1 at 10% of
# it, 100 steps.
SPEC = {"per_set": 6, "sets": [
    {"layer": 3, "tv": 0.064, "l1": 0.0064, "steps": 100, "lr": 0.01},
    {"layer": 1, "tv": 0.064, "l1": 0.0064, "steps": 100, "lr": 0.01}]}

CAPTION = (
    'Visualisations of select nodes in hidden layers 3 and 1. All quantities are '
    'displayed in the same format as Figure 6.'
)


def compute(model: MLP, data: Dataset, analysis: Path, chosen: dict) -> dict[str, np.ndarray]:
    return data_for(model, SPEC, chosen["chosen"])


def draw(**arrays) -> Figure:
    """Selected neurons of hidden layers 3 and 1."""
    return draw_sets(**arrays, number=7)


FIGURE = PaperFigure("fig7", SPEC, CAPTION, chosen_for(SPEC), compute, draw, notes)
