"""The universality test's null model (a randomly rotated layer) and the formation of
neurons over training, against explicit computations."""

from __future__ import annotations

import numpy as np
import pytest

import neuronatlas as na
from neuronatlas.similarity.formation import formation_of
from neuronatlas.similarity.measures import correlation, cross_products, linear_cka
from neuronatlas.similarity.universality import (
    _null,
    random_rotation,
    universality,
)


def test_the_null_from_products_is_the_correlation_with_a_rotated_layer():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 6)).astype(np.float32)
    y = np.maximum(rng.standard_normal((500, 5)), 0).astype(np.float32)
    y[:, 2] = 0  # a dead neuron stays out of the rotation
    p = cross_products([x], [y])
    got = _null(p.xy[0][0], p.xx[0], p.yy[0], np.random.default_rng(7))
    q = random_rotation(4, np.random.default_rng(7))
    live = [0, 1, 3, 4]
    yc = (y - y.mean(axis=0)).astype(np.float64)
    rotated = yc[:, live] @ q
    ref = np.corrcoef(x.T.astype(np.float64), rotated.T)[:6, 6:]
    np.testing.assert_allclose(got[:, live], ref, atol=1e-5)
    assert np.isnan(got[:, 2]).all()
    # the rotation keeps the layer: linear CKA unchanged, an orthogonal matrix
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-12)
    yy_r = np.zeros_like(p.yy[0])
    yy_r[np.ix_(live, live)] = q.T @ p.yy[0][np.ix_(live, live)] @ q
    xy_r = np.zeros_like(p.xy[0][0])
    xy_r[:, live] = p.xy[0][0][:, live] @ q
    assert linear_cka(xy_r, p.xx[0], yy_r) == pytest.approx(
        linear_cka(p.xy[0][0], p.xx[0], p.yy[0]))


def test_universality_is_the_excess_over_the_null_with_its_interval():
    best = np.array([[0.95, 0.5, np.nan], [0.9, 0.6, np.nan], [0.97, 0.4, np.nan]])
    null = np.array([[0.3, 0.45, np.nan], [0.35, 0.5, np.nan], [0.25, 0.4, np.nan]])
    u = universality(best, null, np.random.default_rng(0))
    np.testing.assert_allclose(u["excess"][:2], [0.64, 0.05], atol=1e-12)
    assert list(u["universal"]) == [True, False, False]
    assert u["excess_lo"][0] <= 0.64 <= u["excess_hi"][0]
    assert 0.55 - 1e-12 <= u["excess_lo"][0] and u["excess_hi"][0] <= 0.72 + 1e-12  # per-net
    assert np.isnan(u["excess"][2])


def test_a_network_forms_by_its_end_and_not_at_its_start():
    rng = np.random.default_rng(0)
    final = na.MLP.init((64, 16, 8, 10), rng=rng, input_shape=(8, 8, 1))
    start = na.MLP.init((64, 16, 8, 10), rng=np.random.default_rng(5), input_shape=(8, 8, 1))
    images = rng.random((400, 64)).astype(np.float32)
    doc = formation_of([start, final.copy(), final], final, images)
    for l in range(2):
        corr = np.array(doc["self_corr"][l], dtype=float)
        live = np.isfinite(corr[2])
        np.testing.assert_allclose(corr[1:, live], 1, atol=1e-5)
        assert doc["cka_to_final"][l][2] == pytest.approx(1)
        assert doc["cka_to_final"][l][0] < 0.99
        formed = [f for f in doc["formed_at"][l] if f is not None]
        assert formed and all(f in (0, 1) for f in formed) and 1 in formed
    # check against the definition on the first layer
    acts = [m.activations(images)[1].astype(np.float64) for m in (start, final)]
    ref = [np.corrcoef(a[:, i], acts[1][:, i])[0, 1] for a in acts[:1] for i in range(16)
           if acts[1][:, i].std() > 0 and a[:, i].std() > 0]
    got = [v for v in doc["self_corr"][0][0] if v is not None]
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_correlation_of_a_constant_neuron_is_nan_not_a_number():
    p = cross_products([np.ones((10, 2), np.float32)], [np.arange(20.).reshape(10, 2)])
    assert np.isnan(correlation(p.xy[0][0], p.xx[0], p.yy[0])).all()


def _gram_debiased(x, y):
    """The unbiased HSIC with explicit n x n Gram matrices (Song et al. 2012, eq. 5)."""
    def hsic(k, l_):
        n = len(k)
        k, l_ = k.copy(), l_.copy()
        np.fill_diagonal(k, 0)
        np.fill_diagonal(l_, 0)
        one = np.ones(n)
        return (np.trace(k @ l_) + (one @ k @ one) * (one @ l_ @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * one @ k @ l_ @ one) / (n * (n - 3))

    k, l_ = x @ x.T, y @ y.T
    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def test_debiased_cka_equals_the_gram_matrix_formula_and_is_near_0_for_random_layers():
    from neuronatlas.similarity.debiased import debiased_cka, permutation_p

    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((60, 30)), 0)
    y = x @ rng.standard_normal((30, 20)) + 0.5 * rng.standard_normal((60, 20))
    assert debiased_cka(x, y) == pytest.approx(_gram_debiased(x, y), rel=1e-9)
    # two unrelated wide layers on few images: biased CKA is large, debiased near 0
    a, b = rng.standard_normal((50, 400)), rng.standard_normal((50, 400))
    p = cross_products([a.astype(np.float32)], [b.astype(np.float32)])
    assert linear_cka(p.xy[0][0], p.xx[0], p.yy[0]) > 0.8
    assert abs(debiased_cka(a, b)) < 0.1
    # the permutation test: related layers are significant, unrelated ones are not
    _, p_related = permutation_p(x, y, np.random.default_rng(1), n_permutations=50)
    _, p_random = permutation_p(a, b, np.random.default_rng(1), n_permutations=50)
    assert p_related == pytest.approx(1 / 51) and p_random > 0.05


def test_debiased_cka_of_a_constant_or_tiny_layer_is_nan_and_it_ignores_a_shift():
    from neuronatlas.similarity.debiased import debiased_cka

    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((40, 8)), rng.standard_normal((40, 6))
    assert np.isnan(debiased_cka(np.full((40, 3), 3.0), y))
    assert np.isnan(debiased_cka(x[:3], y[:3]))
    assert debiased_cka(x + 1000.0, y) == pytest.approx(debiased_cka(x, y), abs=1e-9)
