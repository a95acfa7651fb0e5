"""``na.visualize(model, targets, config)``: images that maximise neurons, with their numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import VisConfig
from ..nn.mlp import MLP
from .images import load_image
from .objectives import Objective, check_neuron, log_prob, neuron, others
from .query import target_stats
from .render import SnapshotCallback, StepCallback, render
from .transforms import SHIFTS

ZERO_INIT = 0.01  # the paper's "near-zero values (0.01)"


def objective_for(target: tuple[int, int], config: VisConfig, sizes: tuple[int, ...]) -> Objective:
    """The config's objective for one neuron: activation (or z, or log-probability for
    the output layer) minus ``penalty`` times the mean of the layer's other neurons."""
    layer, index = target
    check_neuron(layer, index, sizes)
    output = layer == len(sizes) - 1
    if config.objective == "logprob" and output:
        obj = log_prob(index)
    else:
        # d ReLU(z)/dx = [z > 0] dz/dx: climbing z (revive) only differs while inactive
        obj = neuron(layer, index, pre=config.objective == "pre" or (config.revive and not output))
    if config.penalty:
        obj = obj - config.penalty * others(layer, exclude=index)
    return obj.bind(sizes)


def target_rng(config: VisConfig, target: tuple[int, int]) -> np.random.Generator:
    """Each target's own generator: the same bits whether it is rendered alone or batched."""
    return np.random.default_rng([config.seed, target[0], target[1]])


def start_images(config: VisConfig, targets, image: np.ndarray | None, dtype) -> np.ndarray:
    """(T, 784) starting images: 0.01 everywhere, uniform random, or the given image."""
    if config.init == "zero":
        return np.full((len(targets), 784), ZERO_INIT, dtype)
    if config.init == "random":
        return np.stack([target_rng(config, t).random(784) for t in targets]).astype(dtype)
    if image is None:
        image = resolve_init_image(config.init)
    return np.repeat(np.asarray(image, dtype).reshape(1, 784), len(targets), axis=0)


def resolve_init_image(init: str, mnist_dir=None) -> np.ndarray:
    """The image behind ``init="mnist:<index>"`` (test set) or ``init=<path>``."""
    if init.startswith("mnist:"):
        from ..data import load_mnist
        from ..errors import ConfigError

        text = init.split(":", 1)[1]
        if not (text.isascii() and text.isdigit() and len(text) <= 9):
            raise ConfigError(f"{init[:40]!r}: expected mnist:<test-set index>, e.g. mnist:7")
        index = int(text)
        test_x = load_mnist(mnist_dir).test_x
        if index >= len(test_x):
            raise ConfigError(f"init {init!r}: the test set has {len(test_x)} images "
                              f"(0..{len(test_x) - 1})")
        return test_x[index]
    return load_image(init)


@dataclass
class VisResult:
    """One row per target."""

    targets: list[tuple[int, int]]
    config: VisConfig
    images: np.ndarray  # (T, 784), clipped to [0, 1] when config.clip or config.project
    activation: np.ndarray  # (T,) the target's activation for the returned image
    next_index: np.ndarray  # (T,) the most active other neuron of the layer
    next_activation: np.ndarray  # (T,)
    ratio: np.ndarray  # (T,) activation / next_activation
    top3_classes: np.ndarray  # (T, 3) output classes, most probable first
    top3_probs: np.ndarray  # (T, 3)

    @property
    def top3(self) -> list[list[tuple[int, float]]]:
        return [[(int(c), float(p)) for c, p in zip(cs, ps)]
                for cs, ps in zip(self.top3_classes, self.top3_probs)]

    def record(self, i: int) -> dict:
        """JSON-ready record of target i (inf ratios become null)."""
        ratio = float(self.ratio[i])
        return {
            "layer": self.targets[i][0], "neuron": self.targets[i][1],
            "activation": float(self.activation[i]),
            "next_index": int(self.next_index[i]),
            "next_activation": float(self.next_activation[i]),
            "ratio": ratio if np.isfinite(ratio) else None,
            "top3": [{"class": int(c), "probability": float(p)}
                     for c, p in zip(self.top3_classes[i], self.top3_probs[i])],
            "config": self.config.to_dict(),
        }


def visualize(
    model: MLP,
    targets,
    config: VisConfig | None = None,
    *,
    init_image: np.ndarray | None = None,
    callback: StepCallback | None = None,
    snapshot: SnapshotCallback | None = None,
) -> VisResult:
    """Activation maximisation of every target (``(layer, neuron)`` pairs or Objectives)
    in one batched run; see :class:`VisConfig` for the update rule.

    ``callback(step, activations)`` may return True to stop early; ``snapshot(step,
    images)`` sees the images of every step (see :func:`render`), e.g. to stream them."""
    config = config or VisConfig()
    objectives, pairs = [], []
    for t in targets:
        obj = t.bind(model.sizes) if isinstance(t, Objective) else objective_for(
            tuple(int(v) for v in t), config, model.sizes)
        objectives.append(obj)
        pairs.append(obj.target)
    if not objectives:
        raise ValueError("no targets to visualise")
    x0 = start_images(config, pairs, init_image, model.dtype)
    shift_index = None
    if config.jitter:
        shift_index = np.stack([_jitter_draws(config, t) for t in pairs])
    raw = render(model, objectives, config, x0, shift_index, callback, snapshot)
    images = np.clip(raw, 0, 1) if config.clip or config.project else raw
    s = target_stats(model, images, pairs)
    return VisResult(pairs, config, images, s.activation, s.next_index, s.next_activation,
                     s.ratio, s.top3_classes, s.top3_probs)


def _jitter_draws(config: VisConfig, target) -> np.ndarray:
    rng = target_rng(config, target)
    if config.init == "random":
        rng.random(784)  # the start image came first from this generator
    return rng.integers(0, len(SHIFTS), config.steps)
