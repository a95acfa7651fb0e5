"""Figure 3: output neurons under TV weights doubling from 0.004 to 0.256, beside the
average of the images that drive each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..analysis.examples import load_examples
from ..data import Dataset
from ..layout import EXAMPLES
from ..nn.mlp import MLP
from ..shapes import MNIST_SHAPE
from .common import TV_DOUBLING, vis
from .drawing import RED, TILE, below, class_text, tile
from .record import PaperFigure, no_inputs, value_range

# Outputs 0, 3 and 5; TV from 0.004 doubling to 0.256; 100 steps; near-zero start;
# clipped (caption). Left: the mean of the images at or above the node's 99th percentile
# over all 70,000 images (analysis/examples.npz).
SPEC = {"nodes": [0, 3, 5], "tv": TV_DOUBLING, "steps": 100, "lr": 0.01}

CAPTION = (
    'Images optimised for activation of a target output neuron (0, 3, or 5), alongside '
    'the average of all MNIST images which highly activate that node (left side). Each '
    'row corresponds to a node. TV regularisation weight increases exponentially towards '
    'the right side of the figure, starting from 0.004 and ending at 0.256. All images '
    'were initialised from near-zero values, and optimised for 100 steps (with clipping) '
    'to ensure high activation of the target node. The activation induced by each image '
    'is written below it in red.'
)


def compute(model: MLP, data: Dataset, analysis: Path, chosen: dict) -> dict[str, np.ndarray]:
    """Each output beside the mean of its images above the 99th percentile."""
    node_means = load_examples(analysis / EXAMPLES)[model.n_layers].mean_p99
    return data_for(model, SPEC, node_means)


def data_for(model: MLP, spec: dict, node_means: np.ndarray) -> dict[str, np.ndarray]:
    """Output nodes x TV weights; ``node_means`` (outputs, inputs): each output's mean image
    at or above its 99th percentile."""
    L = model.n_layers
    targets = [[L, c] for c in spec["nodes"]]
    images, acts = [], []
    for tv in spec["tv"]:
        r = vis(model, targets, steps=spec["steps"], lr=spec["lr"], tv=tv, l1=0.0)
        images.append(r.images)
        acts.append(r.activation)
    return {"nodes": np.array(spec["nodes"]), "tv": np.array(spec["tv"]),
            "steps": np.array(spec["steps"]),
            "images": np.stack(images, axis=1), "activation": np.stack(acts, axis=1),
            "averages": node_means[spec["nodes"]]}


def draw(nodes, tv, images, activation, averages, steps=100, *, shape=MNIST_SHAPE,
         class_names=None, dataset: str = "MNIST") -> Figure:
    """Output nodes (rows) x TV weight (columns, exponential), the average of the images
    that drive each node on the left; activation under each in red."""
    R, C = images.shape[:2]
    fig = Figure(figsize=(TILE * (C + 1) + 0.6, R * (TILE + 0.35) + 0.8), layout="constrained")
    axes = fig.subplots(R, C + 1, squeeze=False)
    for r in range(R):
        ax = axes[r, 0]
        tile(ax, averages[r], f"average {int(nodes[r])}", shape)
        ax.set_ylabel(f"node {class_text(class_names, nodes[r])}", fontsize=9)
        if r == 0:
            ax.set_title(f"{dataset} average", fontsize=8)
        for c in range(C):
            ax = axes[r, c + 1]
            tile(ax, images[r, c], f"{int(nodes[r])} tv={tv[c]:g}", shape)
            if r == 0:
                ax.set_title(f"TV {tv[c]:g}", fontsize=8)
            below(ax, [(f"{activation[r, c]:.4f}", {"color": RED})])
    fig.suptitle("Figure 3: output neurons, TV weight doubling from left to right "
                 f"({len(tv)} weights, {int(steps)} steps, near-zero start, clipped)",
                 fontsize=10)
    return fig


def notes(d) -> str:
    return f"Activations {value_range(d['activation'], '{:.4f}')}."


FIGURE = PaperFigure("fig3", SPEC, CAPTION, no_inputs, compute, draw, notes)
