"""``na.visualize(model, targets, config)``: images that maximise neurons, with their numbers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import INIT_NAMES, VisConfig
from ..errors import ConfigError, DataError, VisualizationDivergedError
from ..nn.mlp import MLP
from ..reprs import short_repr
from ..shapes import MNIST_PIXELS, MNIST_SHAPE
from .images import load_image
from .objectives import Objective, check_neuron, log_prob, neuron, others, parse_target
from .params import mean_magnitude
from .parts import RowDraws
from .prototypes import best_prototypes, data_prototypes
from .query import ratio_kind, ratio_text, target_stats
from .render import SnapshotCallback, StepCallback, render
from .transforms import SHIFTS

ZERO_INIT = 0.01  # the paper's "near-zero values (0.01)"
#: How :func:`visualize` draws a picture, in the key of every kept picture (the atlas's
#: gallery, a study's pictures): bumped whenever the same config and model draw another
#: picture, so no cache outlives the code that made it. 2: the log-probability's gradient
#: exact near saturation, z on the prototypes in float64
PICTURES_VERSION = 2


def objective_for(target: tuple[int, int], config: VisConfig, sizes: tuple[int, ...]
                  ) -> Objective:
    """The config's objective for one neuron: activation (or z, or log-probability for
    the output layer; "auto": z for hidden neurons and the log-probability for
    outputs) minus ``penalty`` times the mean of the layer's other neurons;
    ``revive`` climbs a hidden neuron's z while it is <= 0 (see :func:`neuron`)."""
    layer, index = target
    check_neuron(layer, index, sizes)
    output = layer == len(sizes) - 1
    if config.objective in ("logprob", "auto") and output:
        obj = log_prob(index)
    else:
        pre = config.objective == "pre" or (config.objective == "auto" and not output)
        obj = neuron(layer, index, pre=pre,
                     revive=config.revive and not output)
    if config.penalty:
        obj = obj - config.penalty * others(layer, exclude=index)
    return obj.bind(sizes)


def target_rng(config: VisConfig, target: tuple[int, int]) -> np.random.Generator:
    """Each target's own generator: the same bits whether it is rendered alone or batched."""
    return np.random.default_rng([config.seed, target[0], target[1]])


def start_images(config: VisConfig, targets, image: np.ndarray | None, dtype,
                 n_inputs: int = MNIST_PIXELS) -> np.ndarray:
    """(T, n_inputs) starting images: 0.01 everywhere, uniform random, or ``image``: one
    image for every target, or one per target (T, ...). A given image is always used;
    it cannot be combined with ``init="random"``; ``init="image"`` requires one."""
    T = len(targets)
    known = config.init in INIT_NAMES or config.init.startswith("mnist:")
    if not known and not Path(config.init).is_file():
        raise ConfigError(f"init {config.init[:60]!r} is neither "
                          f"{', '.join(map(repr, INIT_NAMES))}, 'mnist:<index>' nor a readable "
                          "image file")
    if image is not None:
        if config.init == "random":
            raise ConfigError("init 'random' and a start image (init_image) were both given; "
                              "drop one")
        x = np.asarray(image)
        if x.size == n_inputs:
            x = np.repeat(x.reshape(1, n_inputs), T, axis=0)
        elif x.size == T * n_inputs and len(x) == T:
            x = x.reshape(T, n_inputs)
        else:
            raise ConfigError(f"init_image of shape {x.shape} is neither one image of "
                              f"{n_inputs} pixels nor one per target ({T} x {n_inputs})")
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
            raise ConfigError("init_image must hold finite numbers")
        return x.astype(dtype)
    if config.init == "zero":
        return np.full((T, n_inputs), ZERO_INIT, dtype)
    if config.init == "random":
        return np.stack([target_rng(config, t).random(n_inputs) for t in targets]).astype(dtype)
    if config.init == "image":
        raise ConfigError("init 'image' needs the image itself: pass init_image")
    if config.init == "prototype":
        raise ConfigError("init 'prototype' needs the training set's prototypes: pass "
                          "prototypes= (vis.prototypes.data_prototypes(data))")
    raise ConfigError(f"init {config.init[:60]!r} names an image: load it with "
                      "resolve_init_image and pass it as init_image")


def resolve_init_image(init: str, data=None, shape=None) -> np.ndarray:
    """The image behind ``init="mnist:<index>"`` (the test image ``index`` of ``data``, a
    :class:`~neuronatlas.data.Dataset` or a function that loads one; MNIST when None)
    or ``init=<path>`` (an image of ``shape``, MNIST's 28x28x1 when None)."""
    if init.startswith("mnist:"):
        text = init.split(":", 1)[1]
        if not (text.isascii() and text.isdigit() and len(text) <= 9):
            raise ConfigError(f"{init[:40]!r}: expected mnist:<test-set index>, e.g. mnist:7")
        index = int(text)
        if data is None:
            from ..data import load_mnist

            data = load_mnist
        test_x = (data() if callable(data) else data).test_x
        if index >= len(test_x):
            raise ConfigError(f"init {init!r}: the test set has {len(test_x)} images "
                              f"(0..{len(test_x) - 1})")
        return test_x[index]
    return load_image(init, shape or MNIST_SHAPE)


@dataclass
class VisResult:
    """One row per target: the images and what the network says of them. Shows itself as
    a grid of images with their numbers in Jupyter. Example::

        res = na.visualize(model, [(7, 1), (8, 3)])
        res.images.shape, res.activation, res.ratio, res.top3
    """

    targets: list[tuple[int, int]]
    config: VisConfig
    images: np.ndarray  # (T, n_inputs), clipped to [0, 1] when config.clip or config.project
    activation: np.ndarray  # (T,) the target's activation for the returned image
    next_index: np.ndarray  # (T,) the most active other neuron of the layer
    next_activation: np.ndarray  # (T,)
    ratio: np.ndarray  # (T,) activation / next_activation
    top3_classes: np.ndarray  # (T, 3) output classes, most probable first
    top3_probs: np.ndarray  # (T, 3)
    input_shape: tuple[int, int, int] = MNIST_SHAPE  # how a row of ``images`` is an image
    class_names: tuple[str, ...] | None = None
    diverse_images: np.ndarray | None = None  # (T, K, n_inputs) when config.diversity > 1
    diverse_activation: np.ndarray | None = None  # (T, K)
    n_layers: int | None = None  # the model's L: targets in layer L are outputs (no ratio)

    __repr__ = short_repr  # arrays by their shape, not their numbers

    def _repr_png_(self) -> bytes:
        """The images, each stretched to its own range (what Jupyter shows without HTML)."""
        from .display import tiles_png

        return tiles_png(self.images, self.input_shape)

    @property
    def top3(self) -> list[list[tuple[int, float]]]:
        return [[(int(c), float(p)) for c, p in zip(cs, ps)]
                for cs, ps in zip(self.top3_classes, self.top3_probs)]

    def _repr_html_(self) -> str:
        from .display import cards_html, class_label

        caps = []
        for i, (l, n) in enumerate(self.targets[:64]):
            ratio = ratio_text(self.shown_ratio(i))
            top = class_label(self.class_names, int(self.top3_classes[i, 0]))
            caps.append(f"<b>{l}:{n}</b><br>act {self.activation[i]:.3g}<br>ratio {ratio}"
                        f"<br>→ {top} {100 * self.top3_probs[i, 0]:.0f}%")
        more = f" (first 64 of {len(self.targets)})" if len(self.targets) > 64 else ""
        return cards_html(self.images[:64], self.input_shape, caps,
                          f"VisResult: {len(self.targets)} target(s){more}, {self.config.steps} "
                          f"steps, lr {self.config.lr:g}, TV {self.config.tv:g}, "
                          f"L1 {self.config.l1:g}")

    def shown_ratio(self, i: int) -> float | None:
        """Target i's ratio as shown and recorded: None for an output neuron, whose SoftMax
        ratio (1e8 and more once one class dominates) says nothing (``ratio`` still holds
        it, as the paper's captions do)."""
        return None if self.targets[i][0] == self.n_layers else float(self.ratio[i])

    def record(self, i: int) -> dict:
        """JSON-ready record of target i (a ratio that is no number becomes null, with
        ``ratio_kind`` saying why: :data:`~neuronatlas.vis.query.RATIO_KINDS`)."""
        ratio = self.shown_ratio(i)
        return {
            "layer": self.targets[i][0], "neuron": self.targets[i][1],
            "activation": float(self.activation[i]),
            "next_index": int(self.next_index[i]),
            "next_activation": float(self.next_activation[i]),
            "ratio": ratio if ratio is not None and np.isfinite(ratio) else None,
            "ratio_kind": ratio_kind(ratio),
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
    magnitude: np.ndarray | None = None,
    prototypes: np.ndarray | None = None,
) -> VisResult:
    """Activation maximisation of every target (``(layer, neuron)`` pairs or Objectives)
    in one batched run; see :class:`VisConfig` for the update rule. ``init_image`` (one
    image, or one per target) is the start when given. Example::

        res = na.visualize(model, [(7, 1), (8, 3)], na.VisConfig(steps=200))


    ``callback(step, activations)`` may return True to stop early; ``snapshot(step,
    images)`` sees the images of every step (see :func:`render`), e.g. to stream them.
    With ``config.diversity`` K > 1 each target gets K images (``diverse_images``), the
    most active of which is ``images``; callbacks see each target's first. ``magnitude``
    (maco) defaults to the mean spectrum of the model's recorded dataset, and
    ``prototypes`` (``init="prototype"``: (k, D) images, each target starting at the one it
    is highest on) to the k-means prototypes of its training images."""
    config = config or VisConfig()
    config.check_shape(model.input_shape)
    objectives = _objectives(targets, config, model.sizes)
    pairs = [obj.target for obj in objectives]
    if init_image is None and config.init not in INIT_NAMES:
        init_image = resolve_init_image(config.init, lambda: _recorded_data(model),
                                        model.input_shape)
    alternatives = None  # init "prototype": each target's K starts
    if config.init == "prototype":
        alternatives = _prototype_starts(model, pairs, config, init_image, prototypes)
        init_image = alternatives[:, 0]
    x0 = start_images(config, pairs, init_image, model.dtype, model.sizes[0])
    K = config.diversity
    raw = _optimise(model, objectives, config, x0, callback, snapshot, magnitude,
                    alternatives)
    images = np.clip(raw, 0, 1) if config.clip or config.project else raw
    rows = [t for t in pairs for _ in range(K)]
    with np.errstate(over="ignore", invalid="ignore"):
        s = target_stats(model, images, rows)
    _check_finite(images, s.activation, rows, config)
    diverse = diverse_act = None
    if K > 1:  # each target's best image leads; all K are kept
        diverse = images.reshape(len(pairs), K, -1)
        diverse_act = s.activation.reshape(len(pairs), K)
        best = np.arange(len(pairs)) * K + np.argmax(diverse_act, axis=1)
        images = images[best]
        s = target_stats(model, images, pairs)
    return VisResult(pairs, config, images, s.activation, s.next_index, s.next_activation,
                     s.ratio, s.top3_classes, s.top3_probs, model.input_shape, model.class_names,
                     diverse, diverse_act, model.n_layers)


def _prototype_starts(model: MLP, pairs, config: VisConfig, init_image, prototypes
                      ) -> np.ndarray:
    """(T, K, D): each target's K starts from the prototypes (the recorded dataset's when
    none are given)."""
    if init_image is not None:
        raise ConfigError("init 'prototype' and a start image (init_image) were both given; "
                          "drop one")
    if prototypes is None:
        try:
            prototypes = data_prototypes(_recorded_data(model))
        except DataError as exc:
            raise DataError(f"init 'prototype' (the readable preset's start) needs the "
                            f"training images: {exc} (or choose init 'zero')") from None
    return best_prototypes(model, pairs, prototypes, config.diversity)


def _objectives(targets, config: VisConfig, sizes: tuple[int, ...]) -> list[Objective]:
    """Each target (``"7:1"``, a ``(layer, neuron)`` pair or an Objective) bound to the
    model's sizes."""
    objectives = []
    for t in targets:
        if isinstance(t, str):  # "7:1"
            t = parse_target(t)
        objectives.append(t.bind(sizes) if isinstance(t, Objective) else objective_for(
            tuple(int(v) for v in t), config, sizes))
    if not objectives:
        raise ConfigError("no targets to visualise")
    return objectives


def _optimise(model: MLP, objectives: list[Objective], config: VisConfig, x0: np.ndarray,
              callback, snapshot, magnitude, alternatives=None) -> np.ndarray:
    """The optimised images, one row per target (K per target with ``diversity``): the
    paper's fused renderer when only its parts are in use, else the parts."""
    pairs = [obj.target for obj in objectives]
    K = config.diversity
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite results: checked after
        if config.is_paper_method:
            shift_index = None
            if config.jitter:
                shift_index = np.stack([_jitter_draws(config, t, model.sizes[0]) for t in pairs])
            return render(model, objectives, config, x0, shift_index, callback, snapshot)
        x0, draws = _part_starts(config, pairs, x0, model.input_shape, alternatives)
        if config.param == "maco" and magnitude is None:
            magnitude = data_magnitude(_recorded_data(model), model.input_shape)
        return render(model, [o for o in objectives for _ in range(K)], config, x0, None,
                      _per_target(callback, K), _per_target(snapshot, K), draws=draws,
                      magnitude=magnitude)


def _check_finite(images: np.ndarray, activation: np.ndarray, rows: list, config: VisConfig
                  ) -> None:
    """A non-finite image or activation is an error, never a number."""
    bad = ~np.isfinite(images).all(axis=1) | ~np.isfinite(activation)
    if bad.any():
        first = rows[int(np.argmax(bad))]
        raise VisualizationDivergedError(
            f"the optimisation of {int(bad.sum())} of {len(rows)} image(s) (first "
            f"{first[0]}:{first[1]}) went NaN or infinite; use a smaller learning rate than "
            f"{config.lr:g}")


def row_rng(config: VisConfig, target: tuple[int, int], k: int) -> np.random.Generator:
    """The generator of a target's k-th image (k = 0 is :func:`target_rng`)."""
    return target_rng(config, target) if k == 0 else np.random.default_rng(
        [config.seed, target[0], target[1], k])


def _part_starts(config: VisConfig, pairs, x0: np.ndarray, shape, alternatives=None):
    """K start images per target and every row's draws. A random start comes first from
    each row's generator; the images k >= 1 of a zero start get a little noise
    (+-ZERO_INIT) so that they can part; a prototype start gives image k the target's
    k-th best prototype (``alternatives`` (T, K, D))."""
    K, n = config.diversity, x0.shape[1]
    starts, rngs = [], []
    for j, (t, x) in enumerate(zip(pairs, x0)):
        for k in range(K):
            rng = row_rng(config, t, k)
            if alternatives is not None:
                starts.append(alternatives[j, k])
            elif config.init == "random":
                noise = rng.random(n)
                starts.append(x if k == 0 else noise.astype(x.dtype))
            elif k and config.init == "zero":
                starts.append((x + ZERO_INIT * (2 * rng.random(n) - 1)).astype(x.dtype))
            else:
                starts.append(x)
            rngs.append(rng)
    return np.stack(starts), RowDraws.draw(config, rngs, shape)


def _per_target(fn, k: int):
    """A callback/snapshot of T targets, fed from T*K rows (each target's first row)."""
    if fn is None or k == 1:
        return fn
    return lambda step, rows: fn(step, rows[::k])


def data_magnitude(data, shape) -> np.ndarray:
    """The mean magnitude spectrum of ``data``'s training images (maco's ``magnitude=``):
    computed on every call, so a caller that renders maco often keeps it."""
    return mean_magnitude(data.train_x, shape)


def _recorded_data(model: MLP):
    from ..runs import run_dataset

    return run_dataset(model)


def _jitter_draws(config: VisConfig, target, n_inputs: int) -> np.ndarray:
    rng = target_rng(config, target)
    if config.init == "random":
        rng.random(n_inputs)  # the start image came first from this generator
    return rng.integers(0, len(SHIFTS), config.steps)
