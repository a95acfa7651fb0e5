"""What the figures' computations share: which layer a paper layer number means on
another network, which neurons are the most selective, and one visualisation call.

The paper gives no learning rate for its visualisations. We use 0.01 for the
regularised figures (3-7): the TV gradient is a sum of signs (Appendix item 4), so each
step moves a pixel by up to 4·lr·TV whatever the image, and once lr·TV passes about
0.003 neighbouring pixels overshoot each other and a checkerboard appears. Measured on the
paper's network at TV 0.064 and L1 10% of it, 100 steps: the median high-frequency share
of the ten output pictures is 0.030 at lr 0.01 and 0.058 at lr 0.05 (real digits: 0.020 to
0.054). Figure 1 uses 0.1, the "modest learning rate" at which the paper
found unregularised images already noisy.
"""

from __future__ import annotations

import numpy as np

from ..config import VisConfig
from ..nn.mlp import MLP
from ..vis.visualize import VisResult, visualize
from .record import Ranking

DATA_VERSION = 2  # bump when a figure computes differently: every figure's data is redone
# (2: Figure 2's log-probability gradient, exact near saturation)
PAPER_OUTPUT_LAYER = 8  # a target on layer 8 means the output layer, whatever the depth
TV_DOUBLING = [round(0.004 * 2**k, 6) for k in range(7)]  # 0.004 ... 0.256 (Figure 3)


def hidden_layer(model: MLP, layer: int) -> int:
    """The paper's hidden layer ``layer``, or the last hidden layer of a shallower model."""
    return max(1, min(layer, model.n_layers - 1))


def most_selective(vis_targets: np.ndarray, vis_ratio: np.ndarray, vis_activation: np.ndarray,
                   layer: int, n: int) -> list[int]:
    """The ``n`` neurons of ``layer`` whose visualisation has the highest ratio to the
    next-highest neuron, among those it activates (ties: lower index first)."""
    rows = np.flatnonzero((vis_targets[:, 0] == layer) & (vis_activation > 0))
    ratio = np.nan_to_num(vis_ratio[rows].astype(np.float64), posinf=np.finfo(np.float64).max)
    order = np.lexsort((vis_targets[rows, 1], -ratio))
    return [int(i) for i in vis_targets[rows[order[:n]], 1]]


def pick(model: MLP, ranking: Ranking, layer: int, n: int) -> list[int]:
    """The ``n`` most selective neurons of the paper's hidden layer ``layer``."""
    targets, ratio, act = ranking
    return most_selective(targets, ratio, act, hidden_layer(model, layer), n)


def vis(model: MLP, targets, **config) -> VisResult:
    """The paper's visualiser on ``targets`` with ``config`` changed from its defaults."""
    return visualize(model, [tuple(t) for t in targets], VisConfig(**config))
