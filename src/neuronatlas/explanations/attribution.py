"""Which neurons one input used: each hidden neuron's share of a class's logit by integrated
gradients in that neuron's layer (Sundararajan et al. 2017; captum's
``LayerIntegratedGradients``).

For layer l with activations a(x), the path runs from a(baseline) to a(x) in a straight
line through that layer's activations, and the network above the layer is run on every
point of it:

    IG_i = (a_i(x) - a_i(b)) * integral_0^1 d logit_c / d a_i (a(b) + t (a(x) - a(b))) dt

The integral is taken with Gauss-Legendre quadrature on [0, 1] (captum's default method,
the same nodes). By the fundamental theorem of calculus along the path, a layer's
attributions sum to logit_c(x) - logit_c(b) ("completeness"); the quadrature's departure
from that is reported as ``completeness_error`` for every layer, never hidden. Float64
throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, ModelOverflowError
from ..nn import functional as F
from ..nn.mlp import MLP
from ..vis.images import ImageError
from ..vis.query import _checked_image

STEPS = 64  # quadrature nodes: the completeness error of the paper's net stays below 1e-3


@dataclass
class Attribution:
    """One input's integrated gradients: ``layers[l]`` (n_l,) for every hidden layer l."""

    target: int  # the class attributed (default: the predicted one)
    logit: float  # its logit on the image
    baseline_logit: float  # ... and on the baseline
    steps: int
    activations: dict[int, np.ndarray]  # a_l(x), float64
    layers: dict[int, np.ndarray]  # IG of every neuron of layer l, float64
    completeness_error: dict[int, float]  # sum(layers[l]) - (logit - baseline_logit)

    def top(self, layer: int, k: int = 8) -> list[tuple[int, float]]:
        """The ``k`` neurons of ``layer`` with the largest attribution, largest first."""
        a = self.layers[layer]
        order = np.argsort(-a, kind="stable")[:k]
        return [(int(i), float(a[i])) for i in order]

    def to_dict(self, k: int = 8) -> dict:
        """JSON-ready: the numbers above, every layer's attributions and its top ``k``."""
        return {"target": self.target, "logit": self.logit,
                "baseline_logit": self.baseline_logit, "steps": self.steps,
                "layers": {str(l): {"attribution": a.tolist(),
                                    "completeness_error": self.completeness_error[l],
                                    "top": [{"neuron": i, "attribution": v}
                                            for i, v in self.top(l, k)]}
                           for l, a in self.layers.items()}}


def quadrature(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1] (captum's ``gausslegendre``)."""
    x, w = np.polynomial.legendre.leggauss(steps)
    return 0.5 * (x + 1), 0.5 * w


def attribute(model: MLP, image, *, baseline=None, target: int | None = None,
              steps: int = STEPS) -> Attribution:
    """Integrated gradients of class ``target``'s logit (default: the predicted class) in
    every hidden layer's activations, from ``baseline`` (default: the zero image) to
    ``image`` (flat or of the model's input shape, pixels in [0, 1]). Example::

        att = na.attribute(model, data.test_x[0])
        att.top(7), att.completeness_error[7]
    """
    x = _checked_image(model, image)
    b = np.zeros_like(x) if baseline is None else _checked_baseline(model, baseline)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 4096:
        raise ConfigError(f"steps must be an integer in 1..4096, got {steps!r}")
    m = model if model.dtype == np.float64 else model.astype(np.float64)  # a server keeps one
    tx, tb = m.trace(x.astype(np.float64)), m.trace(b.astype(np.float64))
    logits_x, logits_b = tx.z[-1][0], tb.z[-1][0]
    n_classes = m.sizes[-1]
    if target is None:
        target = int(logits_x.argmax())
    elif isinstance(target, bool) or not isinstance(target, int | np.integer) \
            or not 0 <= target < n_classes:
        raise ConfigError(f"target must be a class in 0..{n_classes - 1}, got {target!r}")
    target = int(target)
    alphas, weights = quadrature(steps)
    total = float(logits_x[target] - logits_b[target])
    layers, errors, acts = {}, {}, {}
    for l in range(1, m.n_layers):
        ax, ab = tx.a[l - 1][0], tb.a[l - 1][0]
        path = ab + alphas[:, None] * (ax - ab)  # (S, n_l)
        grads = logit_gradient(m, l, path, target)  # (S, n_l)
        ig = (ax - ab) * (weights @ grads)  # (S,)@(S,n_l) -> (n_l,)
        if not np.isfinite(ig).all():
            raise ModelOverflowError(f"the attributions of layer {l} overflow: the model's "
                                     "weights are too large for float64 on this image")
        layers[l], acts[l] = ig, ax.copy()
        errors[l] = float(ig.sum() - total)
    return Attribution(target, float(logits_x[target]), float(logits_b[target]), steps,
                       acts, layers, errors)


def logit_gradient(model: MLP, layer: int, a: np.ndarray, target: int) -> np.ndarray:
    """d logit_target / d a for rows ``a`` (S, n_layer) of hidden layer ``layer``'s
    activations: the network above run forward on them, then backward."""
    Z, A = {}, {layer: a}  # z_l and a_l of the layers above, on every row
    for l in range(layer + 1, model.n_layers + 1):
        Z[l] = F.linear_forward(A[l - 1], model.weights[l - 1], model.biases[l - 1])
        if l < model.n_layers:
            A[l] = model.activation_fns[l - 1].forward(Z[l])
    g = np.zeros((len(a), model.sizes[-1]), a.dtype)
    g[:, target] = 1
    for l in range(model.n_layers, layer, -1):  # dlogit/dz_l -> dlogit/da_{l-1}
        g = g @ model.weights[l - 1]  # (S,n_l)@(n_l,n_{l-1}) -> (S,n_{l-1})
        if l - 1 > layer:  # -> dlogit/dz_{l-1}
            g = model.activation_fns[l - 2].backward(g, Z[l - 1], A[l - 1])
    return g


def _checked_baseline(model: MLP, baseline) -> np.ndarray:
    try:
        return _checked_image(model, baseline)
    except ImageError as exc:
        raise ImageError(f"the baseline: {exc}") from None

