"""What each of the paper's Figures 1-7 computes, as arrays ready for :mod:`figures`.

Each ``figN_data`` function returns a dict of NumPy arrays whose keys are the keyword
arguments of ``figures.figN``, so a figure's data is cached as one ``.npz`` and can be
redrawn without recomputing it. :data:`SPECS` holds every setting (they are the cache
key); the captions in the paper fix steps, TV weights, starts and targets, and where the
paper is silent the choice and its reason are written beside it.

The paper gives no learning rate for its visualisations. We use 0.01 for the
regularised figures (3-7): the TV gradient is a sum of signs (Appendix item 4), so each
step moves a pixel by up to 4·lr·TV whatever the image, and once lr·TV passes about
0.003 neighbouring pixels overshoot each other and a checkerboard appears (lr 0.05 shows
it from TV 0.064 on). Figure 1 uses 0.1, the "modest learning rate" at which the paper
found unregularised images already noisy.
"""

from __future__ import annotations

import numpy as np

from .config import VisConfig
from .data import Dataset
from .nn.mlp import MLP
from .vis.adversarial import adversarial
from .vis.visualize import VisResult, visualize

DATA_VERSION = 1  # bump when a function below computes differently: every figure is redone
PAPER_OUTPUT_LAYER = 8  # a target on layer 8 means the output layer, whatever the depth
TV_DOUBLING = [round(0.004 * 2**k, 6) for k in range(7)]  # 0.004 ... 0.256 (Figure 3)

SPECS: dict[str, dict] = {
    # Figure 1: no regulariser, unclipped above clipped; 50 steps for outputs, 25 for
    # hidden neurons (caption). Hidden targets: the most selective neuron of layers
    # 7, 5, 3 and 1 (highest ratio in the analysis' visualisations).
    "fig1": {"outputs": [0, 3, 5], "hidden_layers": [7, 5, 3, 1], "output_steps": 50,
             "hidden_steps": 25, "lr": 0.1},
    # Figure 2: the paper's pair (a 3 pushed to 1) and five more pairs of digits that
    # share strokes; each starts from the first correctly classified test image of its
    # class. The paper's optimiser with its clip derivative, on the log-probability
    # (the probability's gradient vanishes from a real digit; see vis/adversarial.py).
    # lr 0.05 keeps the change small (L2 1.8-2.8 on the paper model; lr 0.5 doubles it).
    "fig2": {"pairs": [[3, 1], [1, 7], [7, 2], [4, 9], [0, 6], [5, 3]], "objective": "logprob",
             "lr": 0.05, "steps": 1000, "confidence": 0.99},
    # Figure 3: outputs 0, 3 and 5; TV from 0.004 doubling to 0.256; 100 steps; near-zero
    # start; clipped (caption). Left: the mean of the images at or above the node's
    # 99th percentile over all 70,000 images (analysis/examples.npz).
    "fig3": {"nodes": [0, 3, 5], "tv": TV_DOUBLING, "steps": 100, "lr": 0.01},
    # Figure 4: output 3, TV x4 per row (exponential), L1 0-50% of TV (linear), 100 steps.
    "fig4": {"target": [8, 3], "tv": TV_DOUBLING[::2], "l1_percent": [0, 10, 20, 30, 40, 50],
             "steps": 100, "lr": 0.01},
    # Figure 5: hidden layer 7 neuron 1, the same grid, 30 steps (caption).
    "fig5": {"target": [7, 1], "tv": TV_DOUBLING[::2], "l1_percent": [0, 10, 20, 30, 40, 50],
             "steps": 30, "lr": 0.01},
    # Figures 6 and 7: the six most selective neurons of each layer (highest ratio in the
    # analysis' visualisations); L1 at 10% of TV (the paper's suggestion); the strongest TV
    # in the last hidden layers, "more conducive to stronger regularisation" (paper), and
    # more steps in the earlier ones, whose activations grow more slowly.
    "fig6": {"per_set": 6, "sets": [
        {"layer": 7, "tv": 0.256, "l1": 0.0256, "steps": 30, "lr": 0.01},
        {"layer": 5, "tv": 0.064, "l1": 0.0064, "steps": 50, "lr": 0.01}]},
    "fig7": {"per_set": 6, "sets": [
        {"layer": 3, "tv": 0.064, "l1": 0.0064, "steps": 100, "lr": 0.01},
        {"layer": 1, "tv": 0.064, "l1": 0.0064, "steps": 100, "lr": 0.01}]},
}


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


def _vis(model: MLP, targets, **config) -> VisResult:
    return visualize(model, [tuple(t) for t in targets], VisConfig(**config))


def fig1_data(model: MLP, spec: dict, hidden: list[list[int]]) -> dict[str, np.ndarray]:
    """Unregularised images, unclipped and clipped, of the outputs and ``hidden`` targets."""
    L = model.n_layers
    groups = [([[L, c] for c in spec["outputs"]], spec["output_steps"]),
              (hidden, spec["hidden_steps"])]
    out: dict[str, list] = {k: [] for k in ("targets", "steps", "images_raw", "images_clipped",
                                            "activation_raw", "activation_clipped",
                                            "next_raw", "next_clipped")}
    for targets, steps in groups:
        for clip, tag in ((False, "raw"), (True, "clipped")):
            r = _vis(model, targets, steps=steps, lr=spec["lr"], tv=0.0, l1=0.0, clip=clip,
                     revive=True)
            out[f"images_{tag}"].append(r.images)
            out[f"activation_{tag}"].append(r.activation)
            out[f"next_{tag}"].append(r.next_activation)
        out["targets"].append(np.array(targets))
        out["steps"].append(np.full(len(targets), steps))
    return {k: np.concatenate(v) for k, v in out.items()}


def first_correct(model: MLP, data: Dataset, digit: int) -> int:
    """Index of the first test image of ``digit`` that the model classifies correctly."""
    (idx,) = np.nonzero(data.test_y == digit)
    pred = model.predict_proba(data.test_x[idx]).argmax(axis=1)
    hits = idx[pred == digit]
    return int(hits[0] if len(hits) else idx[0])


def fig2_data(model: MLP, data: Dataset, spec: dict) -> dict[str, np.ndarray]:
    """Adversarial pairs: each test image pushed to another class (paper's Figure 2)."""
    config = VisConfig(objective=spec["objective"], clip=True, project=False, tv=0.0, l1=0.0,
                       lr=spec["lr"], steps=spec["steps"])
    out: dict[str, list] = {k: [] for k in ("index", "labels", "targets", "originals",
                                            "adversarials", "probs_original",
                                            "probs_adversarial", "steps_to_confidence")}
    for digit, target in spec["pairs"]:
        i = first_correct(model, data, digit)
        r = adversarial(model, data.test_x[i], target, config, confidence=spec["confidence"])
        for key, value in (("index", i), ("labels", int(data.test_y[i])), ("targets", target),
                           ("originals", r.original), ("adversarials", r.image),
                           ("probs_original", r.original_probs),
                           ("probs_adversarial", r.new_probs),
                           ("steps_to_confidence", -1 if r.steps_to_confidence is None
                            else r.steps_to_confidence)):
            out[key].append(value)
    return {k: np.array(v) for k, v in out.items()}


def fig3_data(model: MLP, spec: dict, class_means: np.ndarray) -> dict[str, np.ndarray]:
    """Output nodes x TV weights; ``class_means`` (10, 784): images that drive each output."""
    L = model.n_layers
    targets = [[L, c] for c in spec["nodes"]]
    images, acts = [], []
    for tv in spec["tv"]:
        r = _vis(model, targets, steps=spec["steps"], lr=spec["lr"], tv=tv, l1=0.0)
        images.append(r.images)
        acts.append(r.activation)
    return {"nodes": np.array(spec["nodes"]), "tv": np.array(spec["tv"]),
            "steps": np.array(spec["steps"]),
            "images": np.stack(images, axis=1), "activation": np.stack(acts, axis=1),
            "averages": class_means[spec["nodes"]]}


def grid_data(model: MLP, spec: dict) -> dict[str, np.ndarray]:
    """One target x (TV rows) x (L1 columns, as % of that row's TV): Figures 4 and 5."""
    layer, index = spec["target"]
    layer = model.n_layers if layer == PAPER_OUTPUT_LAYER else hidden_layer(model, layer)
    index = min(index, model.sizes[layer] - 1)
    rows = []
    for tv in spec["tv"]:
        row = [_vis(model, [(layer, index)], steps=spec["steps"], lr=spec["lr"], tv=tv,
                    l1=tv * pct / 100, revive=layer != model.n_layers)
               for pct in spec["l1_percent"]]
        rows.append(row)
    pick = lambda f: np.array([[f(r) for r in row] for row in rows])  # noqa: E731
    return {"target": np.array([layer, index]), "tv": np.array(spec["tv"]),
            "l1_percent": np.array(spec["l1_percent"]),
            "images": pick(lambda r: r.images[0]), "activation": pick(lambda r: r.activation[0]),
            "ratio": pick(lambda r: r.ratio[0])}


def selected_data(model: MLP, spec: dict, chosen: list[list[int]]) -> dict[str, np.ndarray]:
    """Selected neurons per set (``chosen[s]``: neuron indices of set s): Figures 6 and 7."""
    out: dict[str, list] = {k: [] for k in ("titles", "set_index", "targets", "images", "ratio",
                                            "activation", "top3_classes", "top3_probs")}
    for s, (item, neurons) in enumerate(zip(spec["sets"], chosen)):
        layer = hidden_layer(model, item["layer"])
        r = _vis(model, [(layer, i) for i in neurons], steps=item["steps"], lr=item["lr"],
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
