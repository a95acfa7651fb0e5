"""Named visualisation methods: every number with its reason.

``VisConfig.preset(name, **changes)`` builds one; ``VisConfig()`` itself stays the
paper's. The numbers of ``readable`` come from ``benchmarks/vis_quality.py`` on the
paper's fully trained network (its table is in docs/vis_quality.md).
"""

from __future__ import annotations

from ..errors import ConfigError

READABLE = {
    "optimizer": "adam",  # each pixel moves about lr per step, whatever its gradient's scale
    "lr": 0.05,  # 100 Adam steps of 0.05 can cross [0, 1] several times over
    "steps": 100,  # as the paper's figures: >= 96% of neurons pass their dataset maximum
    "objective": "auto",  # hidden: z (a gradient even where ReLU is off, no revive needed);
    # output: the log-probability, which keeps improving once the SoftMax saturates (the
    # SoftMax itself stopped at a faint digit the judges read at 0.75-0.84)
    "init": "prototype",  # start at a blend of the training set's k-means prototypes
    # (vis/prototypes.py) the neuron is highest on: from a blank canvas the network read the
    # layer-5/6/7 pictures as the class of the neuron's top images for 60/71/63% of neurons;
    # from the prototypes, 85-96% on the tuning neurons (seed 1, 48 per layer of 3, 5, 7)
    "tie": 3.0,  # stay near the prototype (feature accentuation): 1 drifted to 1.7-2.8x the
    # dataset maximum and off the digit, 10 left 38-80% of neurons below their maximum
    "normalize": True,  # objective gradient at unit RMS per row: one regulariser weight
    # means the same for a layer-1 neuron (|dz/dx| ~ 0.05) and a layer-7 one (~ 10)
    "tv": 0.3,  # with tv_beta 2: smooth strokes; 0.1-1.0 scored alike, 0.3 keeps the most
    # neurons at their dataset maximum
    "tv_beta": 2.0,  # squared differences: no sign-gradient checkerboard (beta = 1 has one)
    "l1": 0.0,  # L1's sign gradient flickers under Adam and blackened layers 1-5
    "l2": 0.0,  # the tie keeps the background: L2 on top left 88-96% below their maximum
    "blur_every": 4,  # Yosinski et al.'s blur removes the last high-frequency residue
    "blur_sigma": 0.5,
    "jitter_px": 0,  # with the tie, a 1-pixel jitter left 88-96% below their maximum
}

PRESETS: dict[str, dict] = {
    # the paper's visualiser as its figures use it: VisConfig's own defaults
    "paper": {},
    # the best method of the readability benchmark (docs/vis_quality.md)
    "readable": READABLE,
    # K = 4 pictures per neuron, pushed apart (lucent's diversity), for the atlas's strip
    "diverse": {**READABLE, "diversity": 4, "diversity_weight": 0.3},
    # feature accentuation (Hamblin et al. 2024): start from a real image (give --init) and
    # stay near it, so the picture shows what in *that* image drives the neuron. Tie 3:
    # from each neuron's median test image, the result correlates 0.95 with its start and
    # reaches 88-163% of the neuron's dataset maximum by layer; tie 1 reached more but
    # covered the background in grey (correlation 0.8), tie 10 stayed at 43-63%
    "accentuate": {**READABLE, "init": "zero", "tie": 3.0, "jitter_px": 0, "l2": 0.0},
}

#: Methods of ``adversarial`` (start from a real image, push an output class), each a set
#: of VisConfig fields; measured on the paper's network, five test digits pushed to
#: (label + 1) mod 10, mean |change| per pixel at p > 0.99.
ADVERSARIAL: dict[str, dict] = {
    # normalised steps of 0.005 RMS per pixel on the log-probability, projected to [0, 1]:
    # 16 steps (median), mean |change| 0.036, L2 1.6 — the smallest change of the ones tried
    # (lr 0.01: 0.038; 0.002: 0.035 in 2.4x the steps)
    "small": {"objective": "logprob", "project": True, "tv": 0.0, "l1": 0.0, "lr": 0.005,
              "steps": 2000, "normalize": True},
    # the previous default: un-normalised steps of 0.5 reach 0.99 in 1-2 steps, but the
    # log-probability's gradient is huge far from the target: mean |change| 0.15-0.25
    "fast": {"objective": "logprob", "project": True, "tv": 0.0, "l1": 0.0, "lr": 0.5,
             "steps": 500},
    # Figure 2's: the log-probability with the paper's clip derivative, lr 0.05
    "figure2": {"objective": "logprob", "project": False, "tv": 0.0, "l1": 0.0, "lr": 0.05,
                "steps": 1000},
    # the paper's objective, the SoftMax probability, with its clip derivative: from a real
    # digit its gradient p (1 - p) dz/dx starts near 1e-8 and it mostly does not move
    "paper": {"objective": "activation", "project": False, "tv": 0.0, "l1": 0.0, "lr": 0.5,
              "steps": 1000},
}

#: One line per preset, for --help and the docs.
DESCRIPTIONS = {
    "paper": "the paper's visualiser (VisConfig's defaults): plain ascent on the pixels",
    "readable": "from the training set's best prototypes, Adam on z (log-probability for "
                "outputs), tied to the start, squared-difference TV, blur every 4 steps",
    "diverse": "readable, with 4 pictures per neuron pushed apart",
    "accentuate": "readable from a real image (--init), tied to it",
}


def preset_fields(name: str) -> dict:
    """The VisConfig fields of preset ``name``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets are {', '.join(PRESETS)}")
    return dict(PRESETS[name])
