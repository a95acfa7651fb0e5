"""What Figures 6 and 7 share: sets of a layer's most selective neurons, each set under
its own settings; under each picture its ratio and the top-3 outputs it drives."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..nn.mlp import MLP
from ..shapes import MNIST_SHAPE
from .common import hidden_layer, pick, vis
from .drawing import RED, TILE, below, class_text, ratio_text, target_text, tile
from .record import Ranking, value_range


def chosen_for(spec: dict):
    """``inputs`` of a figure with this spec: the most selective neurons of each set."""
    def inputs(model: MLP, ranking: Ranking) -> dict:
        return {"chosen": [pick(model, ranking, s["layer"], spec["per_set"])
                           for s in spec["sets"]]}
    return inputs


def data_for(model: MLP, spec: dict, chosen: list[list[int]]) -> dict[str, np.ndarray]:
    """Selected neurons per set (``chosen[s]``: neuron indices of set s)."""
    out: dict[str, list] = {k: [] for k in ("titles", "set_index", "targets", "images", "ratio",
                                            "activation", "top3_classes", "top3_probs")}
    for s, (item, neurons) in enumerate(zip(spec["sets"], chosen)):
        layer = hidden_layer(model, item["layer"])
        r = vis(model, [(layer, i) for i in neurons], steps=item["steps"], lr=item["lr"],
                tv=item["tv"], l1=item["l1"], revive=True)
        out["titles"].append(f"hidden layer {layer}: TV {item['tv']:g}, L1 {item['l1']:g}, "
                             f"{item['steps']} steps, lr {item['lr']:g}")
        out["set_index"].append(np.full(len(neurons), s))
        for key, value in (("targets", np.array(r.targets)), ("images", r.images),
                           ("ratio", r.ratio), ("activation", r.activation),
                           ("top3_classes", r.top3_classes), ("top3_probs", r.top3_probs)):
            out[key].append(value)
    return {"titles": np.array(out.pop("titles")),
            **{k: np.concatenate(v) for k, v in out.items()}}


def draw_sets(titles, set_index, targets, images, ratio, activation, top3_classes,
              top3_probs, *, number: int, shape=MNIST_SHAPE, class_names=None,
              dataset=None) -> Figure:
    """Each set's settings above it; under each image its ratio (raw activation) in red,
    then the top-3 outputs of the visualisation in light black."""
    sets = [np.flatnonzero(np.asarray(set_index) == s) for s in range(len(titles))]
    C = max(len(rows) for rows in sets)
    fig = Figure(figsize=(TILE * 1.15 * C + 0.4, len(sets) * (TILE + 1.05) + 0.5),
                 layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(len(sets), 1))
    for sub, title, rows in zip(subfigs, titles, sets):
        sub.suptitle(str(title), fontsize=9)
        axes = np.atleast_1d(sub.subplots(1, C))
        for ax in axes[len(rows):]:
            ax.axis("off")
        for ax, i in zip(axes, rows):
            tile(ax, images[i], target_text(targets[i]), shape)
            ax.set_title(target_text(targets[i]), fontsize=8)
            top3 = "  ".join(f"{class_text(class_names, c)}: {100 * p:.0f}%" for c, p in
                             zip(top3_classes[i], top3_probs[i]))
            below(ax, [(ratio_text(float(ratio[i]), float(activation[i])), {"color": RED}),
                       (top3, {"color": "#555555", "fontsize": 6.5})])
    fig.suptitle(f"Figure {number}: selected hidden neurons — ratio (raw activation), "
                 "top-3 outputs", fontsize=10)
    return fig


def notes(d) -> str:
    return (f"Ratios {value_range(d['ratio'], '{:.2f}')}; top output probability "
            f"{value_range(d['top3_probs'][:, 0], '{:.2f}')}.")
