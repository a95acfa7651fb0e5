"""Adversarial examples: start from a real digit and push another output class
(the paper's Figure 2).

From a real digit the paper's objective, the SoftMax probability of the target
class, mostly stalls: the target starts near 1e-8, so its gradient
p_t (1 - p_t) dz_t/dx vanishes, and most MNIST pixels sit exactly at 0 or 1 where
the clip derivative is 0. The default objective is therefore the log-probability
(gradient e_t - y through the logits, which does not vanish), with projected
gradient ascent instead of the clip derivative so that pixels at 0 or 1 can move, in
small normalised steps (the log-probability's gradient is huge far from the target:
fixed steps overshoot into changes a person sees); ``adversarial_config("paper")``
gives the paper's method. On the
fully trained paper model the log-probability with the paper's clip derivative
already reaches 0.99; the probability objective does not move at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import VisConfig
from ..errors import ConfigError
from ..nn.mlp import MLP
from ..reprs import short_repr
from ..shapes import MNIST_SHAPE
from .query import top_k
from .render import render
from .visualize import objective_for


@dataclass
class AdversarialResult:
    """An image pushed to another class: the original and the new image, their top
    classes, the steps it took and the size of the change. Example::

        res = na.adversarial(model, data.test_x[0], target=3)
        res.new_top, res.steps_to_confidence, res.l2
    """

    target: int
    original: np.ndarray  # (784,)
    image: np.ndarray  # (784,) clipped
    original_top: tuple[int, float]
    new_top: tuple[int, float]
    original_probs: np.ndarray  # (classes,)
    new_probs: np.ndarray
    target_prob: float
    steps: int  # steps taken
    steps_to_confidence: int | None  # first step whose image had p_target > confidence
    l2: float
    linf: float
    history: np.ndarray  # p_target before each step
    mean_abs: float = 0.0  # mean |change| per pixel: what a person sees
    input_shape: tuple[int, int, int] = MNIST_SHAPE
    class_names: tuple[str, ...] | None = None

    __repr__ = short_repr  # arrays by their shape, not their numbers

    def _repr_png_(self) -> bytes:
        """The images, each stretched to its own range (what Jupyter shows without HTML)."""
        from .display import tiles_png

        return tiles_png([self.original, self.image], self.input_shape)

    def _repr_html_(self) -> str:
        from .display import cards_html, class_label

        def top(c, p):
            return f"{class_label(self.class_names, c)} {100 * p:.2f}%"

        reached = ("not reached" if self.steps_to_confidence is None
                   else f"after {self.steps_to_confidence} steps")
        return cards_html([self.original, self.image], self.input_shape,
                          [f"original<br>{top(*self.original_top)}",
                           f"adversarial<br>{top(*self.new_top)}"],
                          f"AdversarialResult: target {class_label(self.class_names, self.target)}"
                          f" {reached}; L2 {self.l2:.3f}, L∞ {self.linf:.3f}, "
                          f"mean |Δ| {self.mean_abs:.3f}")

    def to_dict(self) -> dict:
        """JSON-ready numbers (the images are left out)."""
        return {
            "target": self.target,
            "original_top": {"class": self.original_top[0], "probability": self.original_top[1]},
            "new_top": {"class": self.new_top[0], "probability": self.new_top[1]},
            "target_probability": self.target_prob,
            "steps": self.steps, "steps_to_confidence": self.steps_to_confidence,
            "l2": self.l2, "linf": self.linf, "mean_abs": self.mean_abs,
        }


def adversarial(
    model: MLP,
    image: np.ndarray,
    target: int,
    config: VisConfig | None = None,
    *,
    confidence: float = 0.99,
) -> AdversarialResult:
    """Push ``image`` (flat, the model's input size) towards output class ``target``
    until its probability exceeds ``confidence`` or ``config.steps`` run out; by default
    with the smallest change found (``ADVERSARIAL["small"]`` in :mod:`.presets`: normalised
    steps on the log-probability). Example::

        res = na.adversarial(model, data.test_x[0], target=3)
        res.new_top, res.l2, res.mean_abs
        na.adversarial(model, data.test_x[0], 3, adversarial_config("paper"))
    """
    config = config or adversarial_config("small")
    L = model.n_layers
    if not 0 <= target < model.sizes[L]:
        raise ConfigError(f"target class {target} does not exist (0..{model.sizes[L] - 1})")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    x0 = np.asarray(image, model.dtype).reshape(1, -1)
    probs0 = model.predict_proba(x0)[0]
    history: list[float] = []
    first_hit: list[int] = []

    objective = objective_for((L, target), config, model.sizes)

    def on_step(step, acts):
        # acts[0]: the target's SoftMax probability for the image after `step` updates
        p = float(acts[0])
        history.append(p)
        if p > confidence and not first_hit:
            first_hit.append(step)
            return True
        return False

    raw = render(model, [objective], config, x0, callback=on_step)
    img = np.clip(raw[0], 0, 1) if config.clip or config.project else raw[0]
    probs = model.predict_proba(img.reshape(1, -1))[0]
    (c0,), (p0,) = top_k(probs0[None], 1)
    (c1,), (p1,) = top_k(probs[None], 1)
    diff = img.astype(np.float64) - x0[0]
    return AdversarialResult(
        target=target, original=x0[0].copy(), image=img, original_top=(int(c0[0]), float(p0[0])),
        new_top=(int(c1[0]), float(p1[0])), original_probs=probs0, new_probs=probs,
        target_prob=float(probs[target]), steps=len(history) - (1 if first_hit else 0),
        steps_to_confidence=first_hit[0] if first_hit else None,
        l2=float(np.linalg.norm(diff)), linf=float(np.abs(diff).max()),
        history=np.array(history), mean_abs=float(np.abs(diff).mean()),
        input_shape=model.input_shape, class_names=model.class_names,
    )


def adversarial_config(method: str = "small", **changes) -> VisConfig:
    """The VisConfig of an adversarial method (``small``, ``fast``, ``figure2``, ``paper``;
    see :data:`.presets.ADVERSARIAL`) with any field changed."""
    from .presets import ADVERSARIAL

    if method not in ADVERSARIAL:
        raise ConfigError(f"unknown adversarial method {method!r}; methods are "
                          f"{', '.join(ADVERSARIAL)}")
    return VisConfig(**{**ADVERSARIAL[method], **changes})
