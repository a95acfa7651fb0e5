"""Beyond the paper: the same neurons under each visualisation method (the report's
``figures/methods.png``)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..shapes import MNIST_SHAPE
from .drawing import GREEN, TILE, below, target_text, tile


def draw_methods(methods, targets, images, activation, natural, *, shape=MNIST_SHAPE,
                 class_names=None, dataset=None) -> Figure:
    """The same neurons (columns) under each method (rows), each tile scaled to its own
    range with its activation under it; the last row is the neuron's average top-9
    dataset image (the "natural" reference)."""
    targets = np.asarray(targets)
    rows, n = len(methods) + 1, len(targets)
    fig = Figure(figsize=(TILE * n + 1.6, (TILE + 0.3) * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, n, squeeze=False)
    for r in range(rows):
        name = methods[r] if r < len(methods) else f"top-9 {dataset or 'dataset'} images"
        for c in range(n):
            ax = axes[r, c]
            image = images[r, c] if r < len(methods) else natural[c]
            tile(ax, image, f"{name} {target_text(targets[c])}", shape)
            if r < len(methods):
                below(ax, [(f"{activation[r, c]:.3g}", {"color": GREEN})], step=0.0)
            if r == 0:
                ax.set_title(target_text(targets[c]), fontsize=8)
            if c == 0:
                ax.set_ylabel(str(name), fontsize=8, rotation=0, ha="right", va="center")
    return fig
