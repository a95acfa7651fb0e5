"""Frozen configuration dataclasses; every default carries its reason.

Configs validate themselves on construction (a :class:`ConfigError` names the
field and the rule) and round-trip through JSON, which is saved beside every
artefact they produced.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .nn.activations import parse_activations
from .nn.mlp import PAPER_SIZES


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_real(name: str, value: Any, *, low: float, high: float = math.inf,
                low_open: bool = True, high_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ConfigError(f"{name} must be a finite number in {lo}{low}, {high}{hi}, got {value!r}")


class _JSONConfig:
    """to_dict / from_dict for the frozen config dataclasses (tuples become lists)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}")
        return cls(**d)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TrainConfig(_JSONConfig):
    """The paper's training ("DNN Configuration and Training"): SGD, batch 32,
    20 epochs at lr 0.01 then 5 at 0.001, reshuffled every epoch. Example::

        na.TrainConfig()                                    # the paper's
        na.TrainConfig(sizes=(784, 512, 256, 10), activation="gelu", epochs=10)
    """

    sizes: tuple[int, ...] = PAPER_SIZES  # 784-1250-1000-750-500-250-100-32-10, as in the paper
    batch_size: int = 32  # the paper's batch size
    epochs: int = 20  # the paper's first phase
    lr: float = 0.01  # the paper's first learning rate
    fine_tune_epochs: int = 5  # the paper's second phase
    fine_tune_lr: float = 0.001  # the paper's second learning rate
    ema_decay: float = 0.9999  # the paper's weighting of the loss's moving average
    seed: int = 0  # initial weights and every epoch's shuffle follow from it
    paper_grad_bug: bool = False  # footnote 2: the paper divided its gradient by 10
    activation: str = "relu"  # after every hidden layer (or one per layer, comma-separated)

    def __post_init__(self):
        object.__setattr__(self, "sizes", tuple(self.sizes))
        if len(self.sizes) < 2:
            raise ConfigError(f"sizes needs an input and an output size, got {self.sizes}")
        for i, s in enumerate(self.sizes):
            _check_int(f"sizes[{i}]", s, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("epochs", self.epochs, 0)
        _check_int("fine_tune_epochs", self.fine_tune_epochs, 0)
        if self.epochs + self.fine_tune_epochs < 1:
            raise ConfigError("epochs + fine_tune_epochs must be at least 1")
        _check_real("lr", self.lr, low=0.0)
        _check_real("fine_tune_lr", self.fine_tune_lr, low=0.0)
        _check_real("ema_decay", self.ema_decay, low=0.0, high=1.0, low_open=False,
                    high_open=True)
        _check_int("seed", self.seed, 0)
        if not isinstance(self.paper_grad_bug, bool):
            raise ConfigError(f"paper_grad_bug must be true or false, got {self.paper_grad_bug!r}")
        acts = parse_activations(self.activation, max(len(self.sizes) - 2, 1))
        spec = ",".join(dict.fromkeys(a.spec for a in acts))
        object.__setattr__(self, "activation", spec if "," not in spec else
                           ",".join(a.spec for a in acts))

    @classmethod
    def quick(cls, **overrides) -> TrainConfig:
        """About a minute on 2 cores (2 + 1 epochs), for demos and CI; >= 97% on MNIST."""
        return cls(**{"epochs": 2, "fine_tune_epochs": 1, **overrides})

    @property
    def total_epochs(self) -> int:
        return self.epochs + self.fine_tune_epochs

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``."""
        return self.lr if epoch < self.epochs else self.fine_tune_lr

    @property
    def grad_scale(self) -> float:
        return 0.1 if self.paper_grad_bug else 1.0



VIS_OBJECTIVES = ("activation", "pre", "logprob")


@dataclass(frozen=True)
class VisConfig(_JSONConfig):
    """Activation maximisation as in the paper's "Visualiser" section.

    Update rule, per step (the paper subtracts the regularisers' partial derivatives
    "from the overall optimisation gradient", end of its TV section)::

        x += lr * (dObjective/dx - tv * dTV/dx - l1 * sgn(x))

    where dObjective/dx carries the clip derivative when ``clip`` is on, and the
    regulariser terms do not unless ``reg_through_clip`` (the paper's key finding).
    ``revive``: a hidden neuron that the start image leaves at ReLU(z) = 0 has zero
    gradient, and the paper's optimiser leaves it there ("more liable to fail"); with
    ``revive`` its z is climbed instead, which is the same gradient once it is active.
    ``project`` replaces the clip derivative by projected gradient ascent (x is clipped
    to [0, 1] after every step, so a pixel at a bound can move back inside): not in the
    paper, but what adversarial starts from real digits need on smaller models.
    """

    steps: int = 100  # Figures 3 and 4 optimise for 100 steps
    lr: float = 0.05  # ascent step; the paper gives none; with tv 0.064 output digits are smooth
    tv: float = 0.064  # total-variation weight; Figure 3 spans 0.004 .. 0.256
    l1: float = 0.0064  # L1 weight; "a small amount ... (e.g., 10% of the TV weight)"
    init: str = "zero"  # "zero" (all 0.01), "random", "mnist:<index>", "image" or a path
    clip: bool = True  # numpy.clip to [0, 1] with its derivative (Appendix item 3)
    reg_through_clip: bool = False  # False: regulariser gradients bypass the clip derivative
    project: bool = False  # instead of the clip derivative: full step, then clip x to [0, 1]
    penalty: float = 0.0  # weight of the mean activation of the layer's other neurons
    jitter: bool = False  # random 1-pixel translation every step (the paper found it fails)
    revive: bool = False  # hidden targets: climb z while their ReLU is off (else: stall at 0)
    objective: str = "activation"  # ReLU / SoftMax output; "pre": z; "logprob": log SoftMax
    seed: int = 0  # random starts and jitter, drawn per target from (seed, layer, index)

    def __post_init__(self):
        _check_int("steps", self.steps, 1)
        _check_real("lr", self.lr, low=0.0)
        for name in ("tv", "l1", "penalty"):
            _check_real(name, getattr(self, name), low=0.0, low_open=False)
        for name in ("clip", "reg_through_clip", "project", "jitter", "revive"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.objective not in VIS_OBJECTIVES:
            raise ConfigError(f"objective must be one of {VIS_OBJECTIVES}, got {self.objective!r}")
        if not isinstance(self.init, str) or not self.init:
            raise ConfigError(f"init must be 'zero', 'random', 'mnist:<index>', 'image' or a "
                              f"path, "
                              f"got {self.init!r}")
        if self.init.startswith("mnist:"):
            idx = self.init.split(":", 1)[1]
            if not (idx.isascii() and idx.isdigit() and len(idx) <= 9):
                raise ConfigError(f"init 'mnist:<index>' needs a test-set index, got "
                                  f"{self.init[:40]!r}")
        _check_int("seed", self.seed, 0)
