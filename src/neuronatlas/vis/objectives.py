"""Objectives: what the visualiser maximises, composed like lucent's.

    neuron(7, 1) - 0.5 * others(7, exclude=1)

An :class:`Objective` is a weighted sum of terms; each term says where its gradient
enters the network (the activation a_l or the pre-activation z_l of one layer),
so the renderer can seed the backward pass there. Terms:

* ``neuron(l, i)``: a_l[i], i.e. the activation for hidden layers and SoftMax for the
  output (Appendix items 1-2); ``pre=True`` uses z_l[i] instead; ``revive=True`` climbs
  z_l[i] while it is <= 0 (where ReLU passes no gradient and GELU or SiLU pass one that
  points down) and a_l[i] once it is above.
* ``others(l, exclude=i)``: the mean activation of every other neuron of layer l (the
  paper's penalty term, "Visualiser" section).
* ``log_prob(i)``: log SoftMax(z_L)[i]; its gradient e_i - y does not vanish when the
  probability is tiny (adversarial starts from real digits).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..nn.backprop import TERM_KINDS


@dataclass(frozen=True)
class Term:
    kind: str  # one of TERM_KINDS
    layer: int  # -1 for log_prob until bound to a model's output layer
    index: int  # the neuron, or the one excluded by "others"
    weight: float = 1.0
    pre: bool = False
    revive: bool = False


@dataclass(frozen=True)
class Objective:
    """What the visualiser maximises: a weighted sum of terms, composed with + - and *.
    Example::

        obj = na.neuron(7, 1) - 0.5 * na.others(7, exclude=1)
        na.visualize(model, [obj])
    """

    terms: tuple[Term, ...]

    def __add__(self, other: Objective) -> Objective:
        return Objective(self.terms + other.terms)

    def __sub__(self, other: Objective) -> Objective:
        return self + (-1.0) * other

    def __mul__(self, k: float) -> Objective:
        return Objective(tuple(Term(t.kind, t.layer, t.index, k * t.weight, t.pre, t.revive)
                               for t in self.terms))

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return -1.0 * self

    @property
    def target(self) -> tuple[int, int]:
        """The neuron this objective is about: its first neuron or log_prob term."""
        for t in self.terms:
            if t.kind in ("neuron", "logprob"):
                return t.layer, t.index
        raise ConfigError("an objective needs a neuron(...) or log_prob(...) term")

    def bind(self, sizes: tuple[int, ...]) -> Objective:
        """Resolve the output layer of log_prob terms and check every layer and index."""
        L = len(sizes) - 1
        terms = []
        for t in self.terms:
            if t.kind not in TERM_KINDS:
                raise ConfigError(f"unknown objective term {t.kind!r}; terms are "
                                  f"{', '.join(TERM_KINDS)}")
            layer = L if t.kind == "logprob" else t.layer
            check_neuron(layer, t.index, sizes)
            terms.append(Term(t.kind, layer, t.index, t.weight, t.pre, t.revive))
        return Objective(tuple(terms))

    @property
    def depth(self) -> int:
        return max(t.layer for t in self.terms)


def check_neuron(layer: int, index: int, sizes: tuple[int, ...]) -> None:
    L = len(sizes) - 1
    if not isinstance(layer, int) or not 1 <= layer <= L:
        raise ConfigError(f"layer {layer} does not exist: layers are 1..{L} "
                          f"(1..{L - 1} hidden, {L} output)")
    if not isinstance(index, int) or not 0 <= index < sizes[layer]:
        raise ConfigError(f"neuron {index} does not exist in layer {layer}, "
                          f"which has {sizes[layer]} neurons (0..{sizes[layer] - 1})")


def neuron(layer: int, index: int, *, pre: bool = False, revive: bool = False) -> Objective:
    """Neuron ``index`` of ``layer``: its activation (``pre``: its pre-activation z;
    ``revive``: z while z <= 0, then the activation). Example::

        na.visualize(model, [na.neuron(7, 1) - 0.5 * na.others(7, exclude=1)])
    """
    return Objective((Term("neuron", layer, index, 1.0, pre, revive),))


def others(layer: int, exclude: int) -> Objective:
    """The mean activation of every neuron of ``layer`` but ``exclude`` (the paper's penalty
    term). Example: ``na.neuron(5, 2) - 0.3 * na.others(5, exclude=2)``."""
    return Objective((Term("others", layer, exclude, 1.0),))


def log_prob(index: int) -> Objective:
    """log SoftMax of output ``index``: its gradient does not vanish where the probability
    is tiny (adversarial starts from real images). Example: ``na.visualize(model,
    [na.log_prob(3)], na.VisConfig(init="mnist:0"))``."""
    return Objective((Term("logprob", -1, index, 1.0),))


def parse_target(text: str) -> tuple[int, int]:
    """``"7:1"`` -> (7, 1); a malformed text raises ConfigError."""
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise ConfigError(f"target {text!r} is not LAYER:NEURON, e.g. 7:1")
    return int(parts[0]), int(parts[1])


def select_targets(sizes: tuple[int, ...], names=(), *, layers=(), every: bool = False
                   ) -> list[tuple[int, int]]:
    """The neurons a user names: ``names`` as "LAYER:NEURON", every neuron of ``layers``,
    or ``every`` neuron of the network; checked, in order, without repeats. Example::

        select_targets(model.sizes, ["7:1", "8:3"], layers=[5])
    """
    targets = [parse_target(t) for t in names]
    for layer in layers:
        check_neuron(layer, 0, sizes)
        targets += [(layer, i) for i in range(sizes[layer])]
    if every:
        targets += [(l, i) for l in range(1, len(sizes)) for i in range(sizes[l])]
    if not targets:
        raise ConfigError("name targets (e.g. 7:1 8:3), --layer L, or --all")
    for layer, index in targets:
        check_neuron(layer, index, sizes)
    return list(dict.fromkeys(targets))
