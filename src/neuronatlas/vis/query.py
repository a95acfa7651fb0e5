"""Re-querying the network with an image: target activation, the next-highest neuron of
its layer and their ratio, and the top-3 outputs (the paper's Figures 5-7 captions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..jsonnum import float_or_none
from ..nn.mlp import MLP
from ..reprs import short_repr
from ..shapes import MNIST_SHAPE
from .images import ImageError
from .objectives import check_neuron


def next_highest(acts: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``acts`` (N, n): the most active neuron other than ``index[row]``."""
    masked = acts.astype(np.float64, copy=True)
    masked[np.arange(len(acts)), index] = -np.inf
    nxt = masked.argmax(axis=1)
    return nxt, acts[np.arange(len(acts)), nxt].astype(np.float64)


def activation_ratio(act: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """act / next-highest; inf when only the target is active, 0 when nothing is; NaN
    (no ratio) when either is negative, as activations other than ReLU can be: a ratio of
    a negative activation says nothing of how much the target stands out."""
    act, nxt = np.asarray(act, np.float64), np.asarray(nxt, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(nxt > 0, act / np.where(nxt > 0, nxt, 1), np.where(act > 0, np.inf, 0.0))
    return np.where((act < 0) | (nxt < 0), np.nan, r)


#: what each kind of ratio means, for a reader: JSON's ``ratio_kind`` beside ``ratio``
#: (null unless "finite"), so that no null is read as another null
RATIO_KINDS = {"finite": "act / next-highest",
               "infinite": "only this neuron is active",
               "undefined": "a negative activation: no ratio",
               "output": "an output neuron: compare the probabilities"}


def ratio_kind(ratio: float | None) -> str:
    """Which of :data:`RATIO_KINDS` a ratio is (None: an output neuron's, which has none)."""
    if ratio is None:
        return "output"
    return "undefined" if np.isnan(ratio) else "infinite" if np.isinf(ratio) else "finite"


def ratio_text(ratio: float | None, digits: int = 2) -> str:
    """A ratio for a reader: ``3.21``, or ``inf (only this neuron is active)``, ``none (a
    negative activation: no ratio)``, ``none (an output neuron: ...)``."""
    kind = ratio_kind(ratio)
    if kind == "finite":
        return f"{ratio:.{digits}f}"
    return f"{'inf' if kind == 'infinite' else 'none'} ({RATIO_KINDS[kind]})"


def top_k(probs: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Classes (N, k) and probabilities (N, k), most probable first."""
    cls = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return cls, np.take_along_axis(probs, cls, axis=1).astype(np.float64)


@dataclass
class TargetStats:
    activation: np.ndarray  # (N,)
    next_index: np.ndarray  # (N,)
    next_activation: np.ndarray  # (N,)
    ratio: np.ndarray  # (N,)
    top3_classes: np.ndarray  # (N, 3)
    top3_probs: np.ndarray  # (N, 3)


def target_stats(model: MLP, images: np.ndarray, targets: list[tuple[int, int]],
                 acts: dict[int, np.ndarray] | None = None) -> TargetStats:
    """Query ``images[i]`` for ``targets[i]`` (one image per target)."""
    acts = model.activations(images) if acts is None else acts
    n = len(targets)
    act, nxt_i, nxt_a = np.zeros(n), np.zeros(n, np.int64), np.zeros(n)
    layers = np.array([t[0] for t in targets])
    index = np.array([t[1] for t in targets])
    for l in np.unique(layers):
        rows = np.flatnonzero(layers == l)
        a = acts[int(l)][rows]
        act[rows] = a[np.arange(len(rows)), index[rows]]
        nxt_i[rows], nxt_a[rows] = next_highest(a, index[rows])
    cls, probs = top_k(acts[model.n_layers], 3)
    return TargetStats(act, nxt_i, nxt_a, activation_ratio(act, nxt_a), cls, probs)


@dataclass
class QueryResult:
    """The network's answer to one image: every layer's activations, the target neuron's
    activation with the next-highest of its layer, and the top-3 outputs. Example::

        res = na.query(model, data.test_x[0], target=(7, 1))
        res.activation, res.ratio, res.top3
    """

    activations: dict[int, np.ndarray]  # layer -> (n,)
    target: tuple[int, int] | None
    activation: float | None
    next_index: int | None
    next_activation: float | None
    ratio: float | None
    top3: list[tuple[int, float]]
    image: np.ndarray | None = None  # the image queried (flat)
    input_shape: tuple[int, int, int] = MNIST_SHAPE
    class_names: tuple[str, ...] | None = None
    floors: dict[int, float] | None = None  # f(0) of each hidden layer: "active" is above it

    __repr__ = short_repr  # arrays by their shape, not their numbers

    def _repr_png_(self) -> bytes:
        """The images, each stretched to its own range (what Jupyter shows without HTML)."""
        from .display import tiles_png

        return tiles_png([self.image] if self.image is not None else [], self.input_shape)

    def active(self, layer: int) -> int:
        """How many neurons of ``layer`` are above the floor of its activation."""
        return int((self.activations[layer] > (self.floors or {}).get(layer, 0.0)).sum())

    def _repr_html_(self) -> str:
        from .display import cards_html, class_label

        lines = [" · ".join(f"{class_label(self.class_names, c)} {100 * p:.1f}%"
                            for c, p in self.top3)]
        if self.target is not None:
            lines.insert(0, f"<b>{self.target[0]}:{self.target[1]}</b> act "
                            f"{self.activation:.3g}, ratio {ratio_text(self.ratio)}")
        image = self.image if self.image is not None else np.zeros(int(np.prod(
            self.input_shape)))
        return cards_html([image], self.input_shape, ["<br>".join(lines)], "QueryResult")

    def to_dict(self) -> dict:
        """JSON-ready: a non-finite number (an infinite ratio, or any number of a network
        whose huge weights overflow) becomes null; ``ratio_kind`` says what a null ratio
        means (:data:`RATIO_KINDS`; None without a target)."""
        return {
            "target": list(self.target) if self.target else None,
            "activation": float_or_none(self.activation),
            "next_index": self.next_index,
            "next_activation": float_or_none(self.next_activation),
            "ratio": float_or_none(self.ratio),
            "ratio_kind": ratio_kind(self.ratio) if self.target else None,
            "top3": [{"class": c, "probability": float_or_none(p)} for c, p in self.top3],
            "layers": {str(l): {"max": float_or_none(a.max()), "argmax": int(a.argmax()),
                                "active": self.active(l), "size": int(a.size),
                                "activations": [float_or_none(v) for v in a.tolist()]}
                       for l, a in self.activations.items()},
        }




def query(model: MLP, image: np.ndarray, target: tuple[int, int] | None = None) -> QueryResult:
    """The network's answer to one image (flat, the model's input size): every layer, the
    target, the top 3; pixels in [0, 1] as the model was trained on (0-255 values are
    refused, not guessed). An output target has no ratio: under SoftMax the ratio of two
    probabilities is e^(z_i - z_j), which says how far apart the logits are, not how much
    the neuron stands out (the probabilities are in ``top3``). Example:
    ``na.query(model, data.test_x[0], (7, 1)).ratio``."""
    x = _checked_image(model, image)
    acts = model.activations(x)
    cls, probs = top_k(acts[model.n_layers], 3)
    top3 = [(int(c), float(p)) for c, p in zip(cls[0], probs[0])]
    flat = {l: a[0] for l, a in acts.items()}
    floors = {l: model.activation(l).floor for l in range(1, model.n_layers)}
    shown = {"image": x[0].copy(), "input_shape": model.input_shape,
             "class_names": model.class_names, "floors": floors}
    if target is None:
        return QueryResult(flat, None, None, None, None, None, top3, **shown)
    check_neuron(target[0], target[1], model.sizes)
    s = target_stats(model, x, [target], acts)
    ratio = None if target[0] == model.n_layers else float(s.ratio[0])
    return QueryResult(flat, target, float(s.activation[0]), int(s.next_index[0]),
                       float(s.next_activation[0]), ratio, top3, **shown)


def _checked_image(model: MLP, image) -> np.ndarray:
    """``image`` as one (1, inputs) row of the model's dtype: its size, finiteness and
    [0, 1] range checked (:class:`ImageError`)."""
    x = np.asarray(image)
    if x.dtype.kind not in "biuf" or x.size != model.sizes[0]:
        raise ImageError(f"the image has {x.size} values of {x.dtype}; the model takes "
                         f"{model.sizes[0]} numbers in [0, 1]")
    x = x.astype(model.dtype).reshape(1, -1)
    if not np.isfinite(x).all():
        raise ImageError("the image has NaN or infinite pixels")
    if x.min() < 0 or x.max() > 1:
        hint = "; divide 0-255 pixels by 255" if x.max() > 1 else ""
        raise ImageError(f"pixels are in [0, 1] as the model was trained, got "
                         f"{x.min():.3g} to {x.max():.3g}{hint}")
    return x
