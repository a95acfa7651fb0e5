""""Neurons like this": the neurons of each layer that an image drives hardest relative to
their strongest training image (:func:`search`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..nn.mlp import MLP
from ..vis.query import _checked_image


def training_maxima(model: MLP, images: np.ndarray, batch: int = 4096) -> dict[int, np.ndarray]:
    """Every neuron's largest activation over ``images`` (its training set): (n_l,) per
    layer 1..L."""
    out = {l: np.full(model.sizes[l], -np.inf) for l in range(1, model.n_layers + 1)}
    for s in range(0, len(images), batch):
        for l, a in model.activations(np.asarray(images[s:s + batch], model.dtype)).items():
            np.maximum(out[l], a.max(axis=0), out=out[l])
    return out


@dataclass
class Search:
    """The neurons of each layer an image drives hardest relative to their training
    maximum: ``layers[l]`` is a list of (neuron, share, activation), largest share first;
    share = (a - f0) / (max - f0), f0 the activation's floor (ReLU: 0)."""

    layers: dict[int, list[tuple[int, float, float]]]

    def to_dict(self) -> dict:
        """JSON-ready: ``{"layers": {"l": [{"neuron", "share", "activation"}, ...]}}``."""
        return {"layers": {str(l): [{"neuron": i, "share": s, "activation": a}
                                    for i, s, a in rows] for l, rows in self.layers.items()}}


def search(model: MLP, image, maxima, *, k: int = 8) -> Search:
    """"Neurons like this": for each layer, the ``k`` neurons that ``image`` drives
    hardest relative to their strongest training image. ``maxima`` is
    :func:`training_maxima`'s dict or a dataset (its training images are run through
    first). A neuron never above its floor on the training set is left out. Example::

        na.search(model, drawing, data).layers[7][:3]
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    if hasattr(maxima, "train_x"):
        if maxima.n_inputs != model.sizes[0]:
            raise ConfigError(f"{maxima.name}'s images have {maxima.n_inputs} values but the "
                              f"model takes {model.sizes[0]}")
        maxima = training_maxima(model, maxima.train_x)
    x = _checked_image(model, image)
    acts = model.activations(x)
    out = {}
    missing = [l for l in range(1, model.n_layers + 1) if l not in maxima]
    if missing:
        raise ConfigError(f"maxima has no layer {missing[0]}: it needs layers "
                          f"1..{model.n_layers} (training_maxima gives them)")
    for l in range(1, model.n_layers + 1):
        top = np.asarray(maxima[l], np.float64)
        if top.shape != (model.sizes[l],):
            raise ConfigError(f"maxima of layer {l} has shape {top.shape}, the layer has "
                              f"{model.sizes[l]} neurons")
        floor = model.activation_fns[l - 1].floor if l < model.n_layers else 0.0
        a = acts[l][0].astype(np.float64)
        live = top > floor
        share = np.full(len(a), -np.inf)
        share[live] = (a[live] - floor) / (top[live] - floor)
        order = np.argsort(-share, kind="stable")[:min(k, int(live.sum()))]
        out[l] = [(int(i), float(share[i]), float(a[i])) for i in order]
    return Search(out)
