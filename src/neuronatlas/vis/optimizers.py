"""Optimisers of the visualiser's parameters: the paper's plain ascent and Adam.

Both take a step *up* the gradient, in place, on every row at once.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


class Ascent:
    """p += lr * g (the paper's update, as in its "Visualiser" section)."""

    def __init__(self, p: np.ndarray, lr: float):
        self.lr = lr

    def step(self, p: np.ndarray, g: np.ndarray) -> None:
        g *= self.lr
        p += g


class Adam:
    """Adam (Kingma & Ba 2015) with bias correction, ascending:
    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    p += lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    Each parameter moves about lr per step whatever its gradient's scale, which is what
    lets one learning rate serve neurons whose gradients differ by orders of magnitude."""

    def __init__(self, p: np.ndarray, lr: float, b1: float = 0.9, b2: float = 0.999,
                 eps: float = 1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.m = np.zeros_like(p)
        self.v = np.zeros_like(p)
        self.t = 0

    def step(self, p: np.ndarray, g: np.ndarray) -> None:
        self.t += 1
        self.m *= self.b1
        self.m += (1 - self.b1) * g
        self.v *= self.b2
        g *= g
        g *= 1 - self.b2
        self.v += g
        denom = np.sqrt(self.v / (1 - self.b2 ** self.t))
        denom += self.eps
        p += (self.lr / (1 - self.b1 ** self.t)) * self.m / denom


#: every optimiser by its VisConfig name (config.VIS_OPTIMIZERS lists the same names)
OPTIMIZERS = {"ascent": Ascent, "adam": Adam}


def make_optimizer(name: str, p: np.ndarray, lr: float):
    """The optimiser called ``name`` for parameters ``p``; an unknown name is an error
    (it was plain ascent)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](p, lr)
