"""``na.compare(model_a, model_b, images)``: do two networks learn the same neurons?

For each depth with a hidden layer in both networks (layer d of A against layer d of
B): every neuron's Pearson correlation with every neuron of the other layer over the
images, its best match, the one-to-one matching that maximises the total correlation
(:mod:`.matching`), the shares of A's live neurons matched at r >= 0.9 and >= 0.5, and
linear CKA (:mod:`.measures`); and ``cka_matrix``, every hidden layer of A against
every hidden layer of B. The two measures can disagree (CKA near 0.9 across seeds
while few neurons match one to one), which is why both are given. Pure: nothing is
written, so a Dask worker can run it anywhere.

Example::

    cmp = na.compare(model_a, model_b, data.test_x)
    cmp.layers[0]["share_0_9"], cmp.layers[0]["cka"], cmp.cka_matrix
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..jsonnum import to_json
from ..nn.mlp import MLP, model_sha256
from ..reprs import short_repr
from .matching import THRESHOLDS, match
from .measures import CrossProducts, cka_matrix, correlation, cross_products, linear_cka

#: the names of each depth's record in ``Comparison.layers`` (and in ``--json``)
LAYER_FIELDS = ("layer", "size_a", "size_b", "dead_a", "dead_b", "best_corr", "assignment",
                "matched_corr", "share_0_9", "share_0_5", "cka")


@dataclass
class Comparison:
    """What :func:`compare` returns: ``layers``, one record per depth (the names of
    :data:`LAYER_FIELDS`; per-neuron values are arrays over A's neurons, NaN / -1 for a
    dead one), ``cka_matrix`` (A's hidden layers x B's), and ``correlations``, the full
    (size_a, size_b) correlation matrix of each depth (NaN rows / columns: dead)."""

    a: str  # the models' hashes, or the names given
    b: str
    images: int
    layers: list[dict]
    cka_matrix: np.ndarray
    correlations: list[np.ndarray] = field(repr=False)

    __repr__ = short_repr

    def to_dict(self) -> dict:
        """JSON-ready: NaN becomes null; the correlation matrices are left out."""
        return {"a": self.a, "b": self.b, "images": self.images,
                "layers": [{k: to_json(v) for k, v in rec.items()} for rec in self.layers],
                "cka_matrix": to_json(self.cka_matrix)}


def compare(model_a: MLP, model_b: MLP, images: np.ndarray, *, names: tuple[str, str] |
            None = None) -> Comparison:
    """Compare the hidden neurons of ``model_a`` and ``model_b`` on ``images`` (N images
    both take); ``names`` label them (default: their hashes). Example::

        cmp = na.compare(seed0, seed1, data.test_x)
        [(r["layer"], r["share_0_9"], r["cka"]) for r in cmp.layers]
    """
    _check_comparable(model_a, model_b)
    x = model_a.check_input(images)
    if len(x) < 2:
        raise ConfigError(f"comparing needs at least 2 images (correlations), got {len(x)}")
    acts_a, acts_b = hidden_activations(model_a, x), hidden_activations(model_b, x)
    if not acts_a or not acts_b:
        raise ConfigError("a network without hidden layers has no neurons to compare")
    a, b = names or (model_sha256(model_a)[:12], model_sha256(model_b)[:12])
    return from_products(cross_products(acts_a, acts_b), (a, b))


def from_products(products: CrossProducts, names: tuple[str, str]) -> Comparison:
    """The :class:`Comparison` that centred cross-products (:func:`cross_products`) hold."""
    layers, corrs = [], []
    for d in range(min(len(products.xx), len(products.yy))):
        corr = correlation(products.xy[d][d], products.xx[d], products.yy[d])
        m = match(corr, np.diag(products.xx[d]) > 0, np.diag(products.yy[d]) > 0)
        layers.append({
            "layer": d + 1, "size_a": corr.shape[0], "size_b": corr.shape[1],
            "dead_a": int((~m.live_a).sum()), "dead_b": int((~m.live_b).sum()),
            "best_corr": m.best_corr, "assignment": m.assignment,
            "matched_corr": m.matched_corr,
            **{f"share_{str(t).replace('.', '_')}": m.share(t) for t in THRESHOLDS},
            "cka": linear_cka(products.xy[d][d], products.xx[d], products.yy[d])})
        corrs.append(corr)
    return Comparison(*names, products.n, layers, cka_matrix(products), corrs)


def _check_comparable(model_a: MLP, model_b: MLP) -> None:
    if model_a.input_shape != model_b.input_shape:
        sa, sb = ("x".join(map(str, m.input_shape)) for m in (model_a, model_b))
        raise ConfigError(f"the networks take different inputs ({sa} and {sb}): they can "
                          "only be compared on the same images")


def hidden_activations(model: MLP, x: np.ndarray) -> list[np.ndarray]:
    """Each hidden layer's activations (N, size), float32."""
    acts = model.activations(x)
    return [np.asarray(acts[l], np.float32) for l in range(1, model.n_layers)]
