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

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Each field's reason, read from the comment beside it in this file (with the
        comment lines that continue it): the CLI's help repeats no text by hand."""
        import inspect
        import re

        helps: dict[str, str] = {}
        last = None
        for line in inspect.getsource(cls).splitlines():
            m = re.match(r"\s{4}(\w+): [^=]+=.*?#\s*(.*)$", line)
            if m:
                last = m.group(1)
                helps[last] = m.group(2).strip()
            elif last and re.match(r"\s{4}#\s", line) and not line.strip().startswith("# ---"):
                helps[last] += " " + line.strip()[1:].strip()
            else:
                last = None
        return helps

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

    sizes: tuple[int, ...] = PAPER_SIZES  # layer sizes, input first (the paper's network)
    batch_size: int = 32  # SGD batch size, the paper's
    epochs: int = 20  # epochs at lr: the paper's first phase
    lr: float = 0.01  # learning rate of the first phase, the paper's
    fine_tune_epochs: int = 5  # epochs at fine_tune_lr after the first phase, the paper's
    fine_tune_lr: float = 0.001  # learning rate of the second phase, the paper's
    ema_decay: float = 0.9999  # weight of the loss's moving average, the paper's
    seed: int = 0  # the initial weights and every epoch's shuffle follow from it
    paper_grad_bug: bool = False  # divide the gradient by 10, as the paper did by accident
    # (its footnote 2)
    activation: str = "relu"  # the activation after every hidden layer, or one per layer

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


VIS_OBJECTIVES = ("activation", "pre", "logprob", "auto")
VIS_PARAMS = ("pixel", "fourier", "maco")
VIS_OPTIMIZERS = ("ascent", "adam")
#: fields whose value is one of a few names (the CLI offers them as choices)
#: the starts named by a word (any other init is "mnist:<test index>" or an image's path):
#: the paper's 0.01 everywhere, uniform random, and an image given from Python (init_image=)
INIT_NAMES = ("zero", "random", "image", "prototype")
FIELD_CHOICES = {"objective": VIS_OBJECTIVES, "param": VIS_PARAMS, "optimizer": VIS_OPTIMIZERS}
MAX_JITTER_PX = 16  # pixels; beyond, the image leaves a 28x28 canvas
MAX_DIVERSITY = 16  # images per neuron: the batch grows K-fold


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

    steps: int = 100  # optimisation steps; Figures 3 and 4 use 100
    lr: float = 0.05  # step size; the paper gives none (its figures here use 0.01 and 0.1:
    # figures/common.py says why)
    tv: float = 0.064  # total-variation weight; Figure 3 spans 0.004 .. 0.256
    l1: float = 0.0064  # L1 weight; "a small amount ... (e.g., 10% of the TV weight)"
    init: str = "zero"  # "zero" (all 0.01), "random", "mnist:<index>", "image", a path, or
    # "prototype": the k-means prototype of the training set the target is highest on
    clip: bool = True  # numpy.clip to [0, 1] with its derivative (Appendix item 3)
    reg_through_clip: bool = False  # False: regulariser gradients bypass the clip derivative
    project: bool = False  # instead of the clip derivative: full step, then clip x to [0, 1]
    penalty: float = 0.0  # weight of the mean activation of the layer's other neurons
    jitter: bool = False  # random 1-pixel translation every step (the paper found it fails)
    revive: bool = False  # hidden targets: climb z while their ReLU is off (else: stall at 0)
    objective: str = "activation"  # ReLU / SoftMax output; "pre": z; "logprob": log SoftMax
    # of an output (a hidden neuron, which has none, climbs its activation); "auto": z for
    # hidden neurons, the log-probability for outputs (it keeps improving once SoftMax
    # saturates)
    seed: int = 0  # random starts and jitter, drawn per target from (seed, layer, index)
    # --- beyond the paper; these defaults leave the paper's method untouched ---
    param: str = "pixel"  # what is optimised: "pixel" (the paper), "fourier", "maco"
    decay: float = 1.0  # fourier: coefficient scale 1/f^decay (Olah et al. 2017 use 1)
    optimizer: str = "ascent"  # "ascent" (the paper: x += lr * gradient) or "adam"
    tv_beta: float = 1.0  # TV exponent: 1 is the paper's |d| (sign gradient), 2 is d^2
    l2: float = 0.0  # L2 decay weight: sum x^2
    blur_every: int = 0  # Gaussian blur of the image every n steps (Yosinski et al.); 0: off
    blur_sigma: float = 0.5  # the blur's standard deviation in pixels
    jitter_px: int = 0  # random translation by up to k pixels per step (lucent); 0: off
    zoom: float = 0.0  # random rescaling by a factor in [1 - zoom, 1 + zoom] per step
    rotate: float = 0.0  # random rotation by up to this many degrees per step
    diversity: int = 1  # K images per neuron, optimised together
    diversity_weight: float = 0.0  # weight of their mean pairwise cosine similarity
    tie: float = 0.0  # feature accentuation: weight of |x - start|^2 (stay near the start)
    normalize: bool = False  # scale each row's objective gradient to unit RMS per pixel

    @classmethod
    def preset(cls, name: str, **changes) -> VisConfig:
        """A named method (``paper``, ``readable``, ...; see
        :data:`neuronatlas.vis.presets.PRESETS`) with any field changed. Example::

            na.VisConfig.preset("readable", steps=300)
        """
        from .vis.presets import preset_fields

        return cls(**{**preset_fields(name), **changes})

    @property
    def is_paper_method(self) -> bool:
        """True when only the paper's parts are in use (the fused paper renderer runs)."""
        return (self.param == "pixel" and self.optimizer == "ascent" and self.tv_beta == 1.0
                and not (self.l2 or self.blur_every or self.jitter_px or self.zoom
                         or self.rotate or self.tie or self.diversity > 1 or self.normalize))

    def __post_init__(self):
        _check_int("steps", self.steps, 1)
        _check_real("lr", self.lr, low=0.0)
        for name in ("tv", "l1", "penalty"):
            _check_real(name, getattr(self, name), low=0.0, low_open=False)
        for name in ("clip", "reg_through_clip", "project", "jitter", "revive", "normalize"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.objective not in VIS_OBJECTIVES:
            raise ConfigError(f"objective must be one of {VIS_OBJECTIVES}, got {self.objective!r}")
        if not isinstance(self.init, str) or not self.init:
            raise ConfigError(f"init must be one of {', '.join(map(repr, INIT_NAMES))}, "
                              f"'mnist:<index>' or a path, got {self.init!r}")
        if self.init.startswith("mnist:"):
            idx = self.init.split(":", 1)[1]
            if not (idx.isascii() and idx.isdigit() and len(idx) <= 9):
                raise ConfigError(f"init 'mnist:<index>' needs a test-set index, got "
                                  f"{self.init[:40]!r}")
        _check_int("seed", self.seed, 0)
        if self.param not in VIS_PARAMS:
            raise ConfigError(f"param must be one of {VIS_PARAMS}, got {self.param!r}")
        if self.optimizer not in VIS_OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {VIS_OPTIMIZERS}, got "
                              f"{self.optimizer!r}")
        _check_real("decay", self.decay, low=0.0, high=3.0, low_open=False)
        _check_real("tv_beta", self.tv_beta, low=1.0, high=2.0, low_open=False)
        for name in ("l2", "tie", "diversity_weight"):
            _check_real(name, getattr(self, name), low=0.0, low_open=False)
        _check_int("blur_every", self.blur_every, 0)
        _check_real("blur_sigma", self.blur_sigma, low=0.0, high=10.0)
        _check_int("jitter_px", self.jitter_px, 0)
        if self.jitter_px > MAX_JITTER_PX:
            raise ConfigError(f"jitter_px must be at most {MAX_JITTER_PX}, got {self.jitter_px}")
        _check_real("zoom", self.zoom, low=0.0, high=0.5, low_open=False)
        _check_real("rotate", self.rotate, low=0.0, high=45.0, low_open=False)
        _check_int("diversity", self.diversity, 1)
        if self.diversity > MAX_DIVERSITY:
            raise ConfigError(f"diversity must be at most {MAX_DIVERSITY} images per neuron, "
                              f"got {self.diversity}")
        if self.jitter and self.jitter_px:
            raise ConfigError("jitter (the paper's 1-pixel shift) and jitter_px were both "
                              "given; use one")
        if self.param == "maco" and self.blur_every:
            raise ConfigError("blur_every cannot be combined with param 'maco': its "
                              "magnitude spectrum is fixed")
        if self.diversity_weight and self.diversity < 2:
            raise ConfigError("diversity_weight needs diversity >= 2 images per neuron")
        if self.project and self.param != "pixel":
            raise ConfigError(f"project clips the pixels themselves: it needs param 'pixel', "
                              f"not {self.param!r}")

    def check_shape(self, shape: tuple[int, int, int]) -> None:
        """Refuse transforms that would move an image of ``shape`` off its canvas."""
        h, w = shape[:2]
        if self.jitter_px >= min(h, w):
            raise ConfigError(f"jitter_px {self.jitter_px} would move a {h}x{w} image off "
                              f"its canvas; use at most {min(h, w) - 1}")

