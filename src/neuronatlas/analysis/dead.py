"""Dead neurons: never active on any image of the dataset, and not revivable by optimisation.

The paper: "some neurons (a minority) seemed to be 'dead' - that is, their activation
could not be increased beyond 0, even with random initialisation and many
optimisation steps, and they would not respond to any of the images in the MNIST
data either". Both halves are checked here: a hidden neuron is *dead on data* when
its activation never rises above its floor f(0) on any image (for ReLU: its output is
0 for every image; see :mod:`neuronatlas.nn.activations`); it is then optimised from
several random starts with no regulariser. Since ReLU' = 0 wherever such a neuron
sits, its *pre-activation* z is what is maximised; if no start reaches z > 0 within
the [0, 1] image box it is *dead*, otherwise *revivable* (silent on data only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import VisConfig
from ..nn.mlp import MLP
from ..vis.visualize import visualize
from .activations import ActivationStore

#: How dead-on-data neurons are challenged (random starts, many plain steps).
CONFIRM = VisConfig(steps=300, lr=0.5, tv=0.0, l1=0.0, init="random", objective="pre")
RESTARTS = 4


def silent_on_data(store: ActivationStore, floors: dict[int, float] | None = None,
                   chunk: int = 8192) -> dict[int, np.ndarray]:
    """Hidden layer -> indices of neurons whose activation never rises above the floor of
    their layer's activation (``floors[l]``, default 0: ReLU's) on any image."""
    out = {}
    for l in store.hidden_layers:
        acts = store.layer(l)
        peak = np.full(acts.shape[1], -np.inf, np.float32)
        for s in range(0, len(acts), chunk):
            np.maximum(peak, acts[s : s + chunk].max(axis=0), out=peak)
        out[l] = np.flatnonzero(peak <= (floors or {}).get(l, 0.0))
    return out


def revivable(model: MLP, candidates: list[tuple[int, int]], *, config: VisConfig = CONFIRM,
              restarts: int = RESTARTS) -> set[tuple[int, int]]:
    """The candidates that some random start can drive to a positive activation."""
    alive: set[tuple[int, int]] = set()
    todo = list(candidates)
    for seed in range(restarts):
        if not todo:
            break
        res = visualize(model, todo, config.replace(seed=seed))
        alive |= {t for t, a in zip(todo, res.activation) if a > model.activation(t[0]).floor}
        todo = [t for t in todo if t not in alive]
    return alive


@dataclass
class DeadReport:
    images: int
    sizes: tuple[int, ...]
    silent: dict[int, list[int]]  # dead on data
    revived: dict[int, list[int]]  # silent on data but raised above 0 by optimisation
    settings: dict = field(default_factory=dict)

    def dead(self, layer: int) -> list[int]:
        return sorted(set(self.silent[layer]) - set(self.revived[layer]))

    def to_dict(self) -> dict:
        layers = {}
        for l in self.silent:
            dead = self.dead(l)
            layers[str(l)] = {
                "dead": dead, "count": len(dead), "fraction": len(dead) / self.sizes[l],
                "silent_on_data": self.silent[l], "revivable": self.revived[l],
            }
        total = sum(len(self.dead(l)) for l in self.silent)
        hidden = sum(self.sizes[l] for l in self.silent)
        return {"layers": layers, "images": self.images, "total_dead": total,
                "total_fraction": total / hidden, "confirmation": self.settings}


def dead_neurons(model: MLP, store: ActivationStore, *, restarts: int = RESTARTS) -> DeadReport:
    silent = silent_on_data(store, {l: model.activation(l).floor for l in store.hidden_layers})
    candidates = [(l, int(i)) for l, idx in silent.items() for i in idx]
    alive = revivable(model, candidates, restarts=restarts) if candidates else set()
    revived = {l: sorted(i for (ll, i) in alive if ll == l) for l in silent}
    settings = {**CONFIRM.to_dict(), "restarts": restarts}
    return DeadReport(store.n_images, model.sizes,
                      {l: [int(i) for i in idx] for l, idx in silent.items()}, revived, settings)
