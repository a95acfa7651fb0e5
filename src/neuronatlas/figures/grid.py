"""What Figures 4 and 5 share: one neuron under TV weights (rows, x4 per row) and L1
weights (columns, as a share of the row's TV), each tile's number in a red box."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..nn.mlp import MLP
from .common import PAPER_OUTPUT_LAYER, hidden_layer, vis
from .drawing import RED, TILE, below, tile


def data_for(model: MLP, spec: dict) -> dict[str, np.ndarray]:
    """One target x (TV rows) x (L1 columns, as % of that row's TV)."""
    layer, index = spec["target"]
    layer = model.n_layers if layer == PAPER_OUTPUT_LAYER else hidden_layer(model, layer)
    index = min(index, model.sizes[layer] - 1)
    rows = []
    for tv in spec["tv"]:
        row = [vis(model, [(layer, index)], steps=spec["steps"], lr=spec["lr"], tv=tv,
                   l1=tv * pct / 100, revive=layer != model.n_layers)
               for pct in spec["l1_percent"]]
        rows.append(row)

    def each(field: str) -> np.ndarray:  # (rows, columns, ...) of the single target's field
        return np.array([[getattr(r, field)[0] for r in row] for row in rows])

    return {"target": np.array([layer, index]), "tv": np.array(spec["tv"]),
            "l1_percent": np.array(spec["l1_percent"]), "images": each("images"),
            "activation": each("activation"), "ratio": each("ratio")}


def draw_grid(target, tv, l1_percent, images, texts, opacity, title: str, shape) -> Figure:
    """The grid, ``texts[r][c]`` under each tile in a red box of ``opacity[r, c]``."""
    R, C = images.shape[:2]
    fig = Figure(figsize=(TILE * C + 1.0, R * (TILE + 0.4) + 0.9), layout="constrained")
    axes = fig.subplots(R, C, squeeze=False)
    for r in range(R):
        for c in range(C):
            ax = axes[r, c]
            tile(ax, images[r, c], f"tv={tv[r]:g} l1={int(l1_percent[c])}%", shape)
            if r == 0:
                ax.set_title(f"L1 {int(l1_percent[c])}% of TV", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"TV {tv[r]:g}", fontsize=9)
            a = float(np.clip(opacity[r, c], 0, 1))
            below(ax, [(texts[r][c], {"color": "white" if a > 0.55 else RED, "bbox": {
                "boxstyle": "square,pad=0.25", "facecolor": (0.85, 0.1, 0.1, a),
                "edgecolor": RED, "linewidth": 0.5}})], start=-0.07)
    fig.suptitle(title, fontsize=10)
    return fig
