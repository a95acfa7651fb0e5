"""The image side of the paper's data, named once: MNIST images are 28 x 28 grey pixels,
784 inputs. Everything else takes a model's own ``input_shape`` (height, width,
channels); these are only the defaults where no model says otherwise, and the rules
for a shape that is not stated."""

from __future__ import annotations

import math

from .errors import ConfigError

MNIST_SIDE = 28
MNIST_SHAPE = (MNIST_SIDE, MNIST_SIDE, 1)
MNIST_PIXELS = MNIST_SIDE * MNIST_SIDE  # 784


def default_input_shape(n_inputs: int) -> tuple[int, int, int]:
    """The input shape of a model or dataset that does not state one: a square grey image
    when n is a square number (784 -> 28x28x1), else a flat strip (1, n, 1). Nothing else
    is assumed: a colour or oblong image must be given (3072 may be 32x32x3 or 48x64x1)."""
    side = math.isqrt(n_inputs)
    return (side, side, 1) if side * side == n_inputs else (1, n_inputs, 1)


def check_input_shape(shape, n_inputs: int) -> tuple[int, int, int]:
    """(height, width, channels) as ints whose product is ``n_inputs``."""
    try:
        h, w, c = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ConfigError(f"input shape must be (height, width, channels), got {shape!r}"
                          ) from None
    if min(h, w, c) < 1 or h * w * c != n_inputs:
        raise ConfigError(f"input shape {h}x{w}x{c} does not hold the model's {n_inputs} "
                          "inputs")
    return h, w, c
