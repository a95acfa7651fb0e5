"""The exact answer where one exists: the images that maximise the first hidden layer.

A neuron of layer 1 is linear in the pixels before its activation, z = b + w . x, so over
the image box [0, 1]^D its pre-activation is largest at x = 1[w > 0] (every pixel with a
positive weight on, the others off), where z_max = b + sum(max(w, 0)), and smallest at
x = 1[w < 0], where z_min = b + sum(min(w, 0)). For an activation increasing on
[z_min, z_max] (all of them but GELU and SiLU below about -0.75) the activation is largest
there too. It is the yardstick every optimiser is tested against: with the regularisers
off, ascent must reach it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..nn.mlp import MLP


@dataclass
class Layer1Optimum:
    """One row per neuron of layer 1. Example::

        best = na.layer1_optimum(model)
        best.images[7], best.z_max[7], best.activation[7]
    """

    images: np.ndarray  # (n1, D) float32: 1 where the neuron's weight is positive, else 0
    z_max: np.ndarray  # (n1,) b + sum(max(w, 0)): the largest pre-activation in the box
    z_min: np.ndarray  # (n1,) b + sum(min(w, 0)): the smallest
    activation: np.ndarray  # (n1,) f(z_max)

    def reached(self, z: np.ndarray) -> np.ndarray:
        """Where pre-activations ``z`` lie between the smallest (0) and the largest (1)."""
        span = self.z_max - self.z_min
        return np.divide(np.asarray(z, np.float64) - self.z_min, span,
                         out=np.ones_like(span), where=span > 0)


def layer1_optimum(model: MLP) -> Layer1Optimum:
    """The exact maximum of every layer-1 neuron over the image box (module docstring)."""
    if model.n_layers < 2:
        raise ConfigError("layer 1 is the output layer here: its SoftMax couples its neurons, "
                          "so there is no closed form")
    W = model.weights[0].astype(np.float64)  # (n1, D)
    b = model.biases[0].astype(np.float64)
    z_max = b + np.clip(W, 0, None).sum(axis=1)
    z_min = b + np.clip(W, None, 0).sum(axis=1)
    act = model.activation(1).forward(z_max)
    return Layer1Optimum((W > 0).astype(np.float32), z_max, z_min, act)
