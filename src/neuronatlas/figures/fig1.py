"""Figure 1: unregularised images of output and hidden neurons, unclipped above clipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..data import Dataset
from ..nn.mlp import MLP
from ..shapes import MNIST_SHAPE
from .common import hidden_layer, pick, vis
from .drawing import GREEN, GREY, TILE, activation_text, below, target_text, tile
from .record import PaperFigure, Ranking, value_range

# No regulariser, unclipped above clipped; 50 steps for outputs, 25 for hidden neurons
# (caption). Hidden targets: the most selective neuron of layers 7, 5, 3 and 1 (highest
# ratio in the analysis' visualisations).
SPEC = {"outputs": [0, 3, 5], "hidden_layers": [7, 5, 3, 1], "output_steps": 50,
        "hidden_steps": 25, "lr": 0.1}

CAPTION = (
    'Images optimised for target nodes without any regularisation, above counterparts '
    'which differ only by the usage of a `numpy.clip` function during and after '
    'optimisation. The number of optimisation steps was held constant at 50 for the '
    'output layers and 25 for the hidden layers (due to their different activation '
    'functions). The clipped images have a smaller range of pixel values and therefore '
    'appear less noisy, despite no other regularisation being used. The activation of '
    'each image is written below it in green text, and the activation of the second-most '
    'activated node below this in grey text.'
)


def inputs(model: MLP, ranking: Ranking) -> dict:
    """The most selective neuron of each of its hidden layers."""
    layers = dict.fromkeys(hidden_layer(model, l) for l in SPEC["hidden_layers"])
    return {"hidden": [[l, i] for l in layers for i in pick(model, ranking, l, 1)]}


def compute(model: MLP, data: Dataset, analysis: Path, chosen: dict) -> dict[str, np.ndarray]:
    return data_for(model, SPEC, chosen["hidden"])


def data_for(model: MLP, spec: dict, hidden: list[list[int]]) -> dict[str, np.ndarray]:
    """Unregularised images, unclipped and clipped, of the outputs and ``hidden`` targets."""
    L = model.n_layers
    groups = [([[L, c] for c in spec["outputs"]], spec["output_steps"]),
              (hidden, spec["hidden_steps"])]
    out: dict[str, list] = {k: [] for k in ("targets", "steps", "images_raw", "images_clipped",
                                            "activation_raw", "activation_clipped",
                                            "next_raw", "next_clipped")}
    for targets, steps in groups:
        for clip, tag in ((False, "raw"), (True, "clipped")):
            r = vis(model, targets, steps=steps, lr=spec["lr"], tv=0.0, l1=0.0, clip=clip,
                    revive=True)
            out[f"images_{tag}"].append(r.images)
            out[f"activation_{tag}"].append(r.activation)
            out[f"next_{tag}"].append(r.next_activation)
        out["targets"].append(np.array(targets))
        out["steps"].append(np.full(len(targets), steps))
    return {k: np.concatenate(v) for k, v in out.items()}


def draw(targets, steps, images_raw, images_clipped, activation_raw, activation_clipped,
         next_raw, next_clipped, *, shape=MNIST_SHAPE, class_names=None, dataset=None) -> Figure:
    """Unregularised images (top row) above their clipped counterparts; under each its
    activation (green) and the second-most activated node's (grey)."""
    targets = np.asarray(targets)
    n = len(targets)
    out_layer = int(targets[:, 0].max())
    fig = Figure(figsize=(TILE * n + 1.2, 2 * TILE + 1.6), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False, gridspec_kw={"hspace": 0.35})
    rows = (("unclipped", images_raw, activation_raw, next_raw),
            ("clipped", images_clipped, activation_clipped, next_clipped))
    for r, (tag, images, act, nxt) in enumerate(rows):
        for c in range(n):
            ax, output = axes[r, c], int(targets[c, 0]) == out_layer
            tile(ax, images[c], f"{target_text(targets[c])} {tag}", shape)
            if r == 0:
                kind = "output" if output else "hidden"
                ax.set_title(f"{kind} {target_text(targets[c])}\n{int(steps[c])} steps",
                             fontsize=8)
            if c == 0:
                ax.set_ylabel(tag, fontsize=9)
            below(ax, [(activation_text(act[c], output), {"color": GREEN}),
                       (activation_text(nxt[c], output), {"color": GREY})])
    fig.suptitle("Figure 1: no regularisation, without (top) and with (bottom) numpy.clip",
                 fontsize=10)
    return fig


def notes(d) -> str:
    return (f"Activations unclipped {value_range(d['activation_raw'], '{:.3g}')}, clipped "
            f"{value_range(d['activation_clipped'], '{:.3g}')}; pixel range unclipped "
            f"{value_range(d['images_raw'], '{:.2f}')}, clipped "
            f"{value_range(d['images_clipped'], '{:.2f}')}.")


FIGURE = PaperFigure("fig1", SPEC, CAPTION, inputs, compute, draw, notes)
