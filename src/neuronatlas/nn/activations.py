"""Element-wise activations of the hidden layers: each forward beside its derivative.

An :class:`Activation` is a name and at most one parameter (LeakyReLU's slope, ELU's
alpha, Softplus's beta). ``forward(z)`` is a = f(z); ``derivative(z, a)`` is f'(z)
(given a as well, since several derivatives are cheapest from it); ``backward(dLdA, z,
a)`` is the vector-Jacobian product dLdA * f'(z). Every formula is PyTorch's own, so a
network imported from PyTorch computes the same numbers (tests hold them to PyTorch
and to float64 central differences).

Spec strings name an activation in files, on the command line and in the API:
``relu``, ``leaky_relu`` or ``leaky_relu:0.2``, ``elu`` or ``elu:0.5``, ``gelu`` (erf
form), ``gelu_tanh`` (tanh approximation), ``silu``, ``softplus`` or ``softplus:2``,
``tanh``, ``sigmoid``, ``identity``.

The *floor* of an activation is f(0): a neuron whose activation never rises above it
on any input (its pre-activation z stays <= 0) is silent; for ReLU that is the usual
"dead on data". Every activation here is increasing at 0, so ``a > floor`` iff z > 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import erf, expit

from ..errors import ConfigError

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
# Eigen's rational approximation of erf for float32 (also XLA's): erf(x) = x P(x^2)/Q(x^2)
# on [-4, 4], within a few float32 ulps; SciPy's erf computes in float64 and is ~30x
# slower on float32 arrays. float64 arrays use SciPy's.
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
          -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
          -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
          -7.37332916720468e-03, -1.42647390514189e-02)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf(x) in x's dtype: SciPy's for float64, Eigen's rational form for float32."""
    if x.dtype != np.float32:
        return erf(x)
    x = np.clip(x, -4, 4)
    x2 = x * x
    p = np.full_like(x, _ERF_P[0])
    for c in _ERF_P[1:]:
        p *= x2
        p += np.float32(c)
    q = np.full_like(x, _ERF_Q[0])
    for c in _ERF_Q[1:]:
        q *= x2
        q += np.float32(c)
    p *= x
    p /= q
    return p


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) in x's dtype: SciPy's expit for float64; for float32 from np.exp
    (exp(-x) overflows to inf for very negative x, giving the right limit 0)."""
    if x.dtype != np.float32:
        return expit(x)
    with np.errstate(over="ignore"):
        e = np.exp(-x)
    e += np.float32(1)
    return np.reciprocal(e, out=e)
_GELU_CUBIC = 0.044715  # the tanh approximation's cubic coefficient (Hendrycks & Gimpel)
_SOFTPLUS_THRESHOLD = 20.0  # PyTorch's Softplus: linear once beta * z > 20

@dataclass(frozen=True)
class Activation:
    """One element-wise activation; see the module docstring for the spec strings.
    Example::

        act = na.Activation.parse("leaky_relu:0.2")
        act.forward(z), act.derivative(z, act.forward(z)), act.floor   # f, f', f(0)
    """

    name: str
    param: float | None = None

    def __post_init__(self):
        if self.name not in KINDS:
            raise ConfigError(f"unsupported activation {self.name!r}; supported: "
                              f"{', '.join(KINDS)}")
        default, what = KINDS[self.name]
        if what is None and self.param is not None:
            raise ConfigError(f"activation {self.name} takes no parameter, got {self.param!r}")
        if what is not None:
            p = default if self.param is None else self.param
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p):
                raise ConfigError(f"{self.name}'s {what} must be a finite number, got {p!r}")
            if self.name in ("softplus", "elu") and p <= 0:
                raise ConfigError(f"{self.name}'s {what} must be positive, got {p!r}")
            if self.name == "leaky_relu" and not 0 <= p < 1:
                # a neuron is silent where z <= 0 only while f there stays at or below f(0)
                raise ConfigError(f"leaky_relu's {what} must be in [0, 1), got {p!r}")
            object.__setattr__(self, "param", float(p))

    # --- naming ------------------------------------------------------------------------
    @classmethod
    def parse(cls, spec: str | Activation) -> Activation:
        """``"leaky_relu:0.2"`` -> Activation("leaky_relu", 0.2); ConfigError when unknown."""
        if isinstance(spec, Activation):
            return spec
        if not isinstance(spec, str):
            raise ConfigError(f"an activation is a name such as 'relu', got {spec!r}")
        name, _, param = spec.strip().lower().partition(":")
        name = name.replace("-", "_")
        name = {"gelu_erf": "gelu", "swish": "silu", "linear": "identity", "none": "identity",
                "leakyrelu": "leaky_relu"}.get(name, name)
        if name not in KINDS:
            raise ConfigError(f"unsupported activation {spec[:40]!r}; supported: "
                              f"{', '.join(KINDS)}")
        if not param:
            return cls(name)
        try:
            value = float(param)
        except ValueError:
            raise ConfigError(f"activation {spec[:40]!r}: {param[:20]!r} is not a number"
                              ) from None
        return cls(name, value)

    @property
    def spec(self) -> str:
        """The canonical spec string (parameters written out exactly: it is saved in model
        files and hashed into the model's identity)."""
        return self.name if self.param is None else f"{self.name}:{self.param!r}"

    def __str__(self) -> str:
        return self.spec

    @property
    def is_relu(self) -> bool:
        return self.name == "relu"

    @property
    def floor(self) -> float:
        """f(0): the value a silent neuron never rises above."""
        return float(self.forward(np.zeros(1))[0])

    # --- maths ---------------------------------------------------------------------------
    def forward(self, z: np.ndarray) -> np.ndarray:
        """a = f(z), in z's dtype."""
        return REGISTRY[self.name].f(z, self.param)

    def derivative(self, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        """f'(z), given a = f(z), in z's dtype."""
        return REGISTRY[self.name].df(z, a, self.param)

    def backward(self, dLdA: np.ndarray, z: np.ndarray, a: np.ndarray) -> np.ndarray:
        """dLdZ = dLdA * f'(z)."""
        return dLdA * self.derivative(z, a)

    def forward_and_derivative_into(self, z: np.ndarray, a: np.ndarray, d: np.ndarray,
                                    block: int = 32768) -> None:
        """``a[...] = f(z)`` and ``d[...] = f'(z)`` for (rows, n) arrays, a few rows at a
        time so that the dozen passes of a GELU stay in cache (several times faster than
        whole-array passes on the visualiser's large batches); same values. ``a`` may be
        ``z`` itself (each block is read before it is written)."""
        rows = max(1, block // max(z.shape[-1], 1))
        for s in range(0, len(z), rows):
            a[s:s + rows], d[s:s + rows] = self.forward_and_derivative(z[s:s + rows])

    def forward_and_derivative(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(f(z), f'(z)) together, sharing what both need (GELU's Phi, SiLU's sigma): the
        form the training step and the visualiser use. Same values as the two apart."""
        kind = REGISTRY[self.name]
        if kind.both is not None:
            return kind.both(z)
        a = kind.f(z, self.param)
        return a, kind.df(z, a, self.param)

def _gelu_cdf(z: np.ndarray) -> np.ndarray:
    """Phi(z) = (1 + erf(z / sqrt 2)) / 2, the standard normal CDF."""
    cdf = _erf(z * z.dtype.type(1 / math.sqrt(2)))
    cdf += 1
    cdf *= 0.5
    return cdf


def _gelu_derivative(z: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """GELU'(z) = Phi(z) + z phi(z), given Phi(z)."""
    pdf = z * z
    pdf *= -0.5
    np.exp(pdf, out=pdf)
    pdf *= z.dtype.type(1 / math.sqrt(2 * math.pi))
    pdf *= z
    pdf += cdf
    return pdf


def _silu_derivative(z: np.ndarray, s: np.ndarray) -> np.ndarray:
    """SiLU'(z) = sigma (1 + z (1 - sigma)), given sigma = sigma(z)."""
    d = np.subtract(1, s, dtype=z.dtype)
    d *= z
    d += 1
    d *= s
    return d


# --- the registry: each activation's f and f' side by side -------------------------------
@dataclass(frozen=True)
class Kind:
    """One activation: ``f(z, p)``, ``df(z, a, p)`` (a = f(z); p its parameter or None),
    its parameter's default and meaning (None: it takes none), and optionally ``both(z)``
    giving (f, f') with their shared work done once."""

    name: str
    f: Callable[[np.ndarray, float | None], np.ndarray]
    df: Callable[[np.ndarray, np.ndarray, float | None], np.ndarray]
    default: float | None = None
    param_name: str | None = None
    both: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None


def _leaky(z, p):  # z for z > 0, slope * z otherwise
    return np.where(z > 0, z, z * z.dtype.type(p))


def _leaky_d(z, a, p):
    return np.where(z > 0, z.dtype.type(1), z.dtype.type(p))


def _elu(z, p):  # z for z > 0, alpha (e^z - 1) otherwise
    return np.where(z > 0, z, z.dtype.type(p) * np.expm1(np.minimum(z, 0)))


def _elu_d(z, a, p):  # 1 for z > 0, alpha e^z = a + alpha otherwise
    return np.where(z > 0, z.dtype.type(1), a + z.dtype.type(p))


def _gelu_both(z):
    cdf = _gelu_cdf(z)
    return z * cdf, _gelu_derivative(z, cdf)


def _gelu_tanh(z, p):  # z/2 (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))
    return 0.5 * z * (1 + np.tanh(_SQRT_2_OVER_PI * (z + _GELU_CUBIC * z**3)))


def _gelu_tanh_d(z, a, p):
    t = np.tanh(_SQRT_2_OVER_PI * (z + _GELU_CUBIC * z**3))
    dinner = _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * z * z)
    return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * dinner


def _silu_both(z):
    s = _sigmoid(z)
    return z * s, _silu_derivative(z, s)


def _softplus(z, p):  # log(1 + e^(beta z)) / beta, linear above the threshold
    bz = z * z.dtype.type(p)
    return np.where(bz > _SOFTPLUS_THRESHOLD, z, np.logaddexp(0, bz) / z.dtype.type(p))


def _softplus_d(z, a, p):  # sigma(beta z), 1 above the threshold
    bz = z * z.dtype.type(p)
    return np.where(bz > _SOFTPLUS_THRESHOLD, z.dtype.type(1), _sigmoid(bz))


REGISTRY: dict[str, Kind] = {k.name: k for k in (
    # Appendix item 1: ReLU' is 1 for z > 0, else 0
    Kind("relu", lambda z, p: np.maximum(z, 0), lambda z, a, p: (z > 0).astype(z.dtype)),
    Kind("leaky_relu", _leaky, _leaky_d, 0.01, "negative slope"),
    Kind("elu", _elu, _elu_d, 1.0, "alpha"),
    Kind("gelu", lambda z, p: z * _gelu_cdf(z),  # z Phi(z); GELU' = Phi(z) + z phi(z)
         lambda z, a, p: _gelu_derivative(z, _gelu_cdf(z)), both=_gelu_both),
    Kind("gelu_tanh", _gelu_tanh, _gelu_tanh_d),
    Kind("silu", lambda z, p: z * _sigmoid(z),  # z sigma(z); SiLU' = sigma (1 + z (1 - sigma))
         lambda z, a, p: _silu_derivative(z, _sigmoid(z)), both=_silu_both),
    Kind("softplus", _softplus, _softplus_d, 1.0, "beta"),
    Kind("tanh", lambda z, p: np.tanh(z), lambda z, a, p: 1 - a * a),
    Kind("sigmoid", lambda z, p: _sigmoid(z), lambda z, a, p: a * (1 - a)),
    Kind("identity", lambda z, p: z.copy(), lambda z, a, p: np.ones_like(z)),
)}
#: name -> (default parameter or None, what the parameter is): the registry's names
KINDS: dict[str, tuple[float | None, str | None]] = {
    name: (k.default, k.param_name) for name, k in REGISTRY.items()}


RELU = Activation("relu")


def parse_activations(spec, n_hidden: int) -> tuple[Activation, ...]:
    """One activation per hidden layer from one name (every layer) or a sequence (or a
    comma-separated string) of exactly ``n_hidden`` names."""
    if isinstance(spec, (str, Activation)):
        parts = spec.split(",") if isinstance(spec, str) else [spec]
    else:
        parts = list(spec)
    if n_hidden == 0 and parts in ([], [""]):  # a network with no hidden layer has none
        return ()
    acts = tuple(Activation.parse(p) for p in parts)
    if len(acts) == 1:
        return acts * n_hidden
    if len(acts) != n_hidden:
        raise ConfigError(f"{len(acts)} activations given for {n_hidden} hidden layers; give "
                          "one for every hidden layer or one per layer")
    return acts
