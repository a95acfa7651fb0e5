"""Figure 2: real digits beside the adversarial examples the visualiser makes of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..config import VisConfig
from ..data import Dataset
from ..nn.mlp import MLP
from ..shapes import MNIST_SHAPE
from ..vis.adversarial import adversarial
from .drawing import GREEN, LIGHT_GREEN, LIGHT_RED, RED, TILE, bar, class_text, percent, tile
from .record import PaperFigure, no_inputs

# The paper's pair (a 3 pushed to 1) and five more pairs of digits that share strokes;
# each starts from the first correctly classified test image of its class. The paper's
# optimiser with its clip derivative, on the log-probability (the probability's gradient
# vanishes from a real digit; see vis/adversarial.py). lr 0.05 keeps the change small
# (L2 1.8-2.8 on the paper model; lr 0.5 doubles it).
SPEC = {"pairs": [[3, 1], [1, 7], [7, 2], [4, 9], [0, 6], [5, 3]], "objective": "logprob",
        "lr": 0.05, "steps": 1000, "confidence": 0.99}

CAPTION = (
    'MNIST images alongside the adversarial examples generated from each of them by the '
    'visualisation optimiser. The first large bar below each image shows the activation '
    'of the most activated output node for that image (green for correct, red for '
    'incorrect), as a percentage, with the node number. The size of the bar also '
    'represents this – in green for the correct classification, and red for an incorrect '
    'classification. The second, lighter and smaller bar (not to scale) shows what '
    'proportion of the total activations from other nodes (in gray) come from the node '
    'corresponding to the other image in the pair (same colour scheme).'
)


def first_correct(model: MLP, data: Dataset, digit: int) -> int:
    """Index of the first test image of ``digit`` that the model classifies correctly."""
    (idx,) = np.nonzero(data.test_y == digit)
    pred = model.predict_proba(data.test_x[idx]).argmax(axis=1)
    hits = idx[pred == digit]
    return int(hits[0] if len(hits) else idx[0])


def compute(model: MLP, data: Dataset, analysis: Path, chosen: dict) -> dict[str, np.ndarray]:
    return data_for(model, data, SPEC)


def data_for(model: MLP, data: Dataset, spec: dict) -> dict[str, np.ndarray]:
    """Adversarial pairs: each test image pushed to another class."""
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


def draw(index, labels, targets, originals, adversarials, probs_original, probs_adversarial,
         steps_to_confidence, *, shape=MNIST_SHAPE, class_names=None,
         dataset: str = "MNIST") -> Figure:
    """Images beside their adversarial examples. Under each: its top class and
    probability (bar green when that is the image's true class, red when not), then a
    lighter bar: the share of the other classes' total probability that belongs to the
    other image's class (green when that class is the true one)."""
    n = len(labels)
    per_row = min(n, 3)
    groups = -(-n // per_row)
    fig = Figure(figsize=(2 * per_row * (TILE + 0.45), groups * (TILE + 1.25) + 0.5),
                 layout="constrained")
    grid = fig.add_gridspec(3 * groups, 2 * per_row,
                            height_ratios=[1, 0.16, 0.16] * groups)
    for p in range(n):
        g, col = divmod(p, per_row)
        letter = chr(ord("A") + p)
        label, target = int(labels[p]), int(targets[p])
        pair = ((originals[p], probs_original[p], target, "i"),
                (adversarials[p], probs_adversarial[p], label, "ii"))
        for k, (image, probs, other, roman) in enumerate(pair):
            ax = fig.add_subplot(grid[3 * g, 2 * col + k])
            tile(ax, image, f"{letter}{roman}", shape)
            ax.set_title(f"{letter}{roman}" + (f"  (test #{int(index[p])})" if k == 0 else
                                               f"  (→ {class_text(class_names, target)})"),
                         fontsize=8)
            probs = np.asarray(probs, dtype=np.float64)
            top = int(np.argmax(probs))
            bar(fig.add_subplot(grid[3 * g + 1, 2 * col + k]), float(probs[top]),
                f"{class_text(class_names, top)}: {percent(probs[top])}",
                GREEN if top == label else RED,
                f"{letter}{roman} top")
            rest = float(np.delete(probs, top).sum())
            share = float(probs[other]) / rest if rest > 0 else 0.0
            bar(fig.add_subplot(grid[3 * g + 2, 2 * col + k]), share,
                f"{class_text(class_names, other)}: {100 * probs[other]:.3g}% of "
                f"{100 * rest:.3g}%",
                LIGHT_GREEN if other == label else LIGHT_RED, f"{letter}{roman} other",
                small=True)
    fig.suptitle(f"Figure 2: {dataset} images (i) and the adversarial examples made from them "
                 "(ii)", fontsize=10)
    return fig


def notes(d) -> str:
    reached = ", ".join(str(s) if s >= 0 else "not reached" for s in d["steps_to_confidence"])
    return (f"Steps to > {SPEC['confidence']}: {reached} "
            f"(test images {', '.join(map(str, d['index']))}).")


FIGURE = PaperFigure("fig2", SPEC, CAPTION, no_inputs, compute, draw, notes)
