"""Every backward function against float64 central differences."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuronatlas.nn import functional as F

from .helpers import assert_grad_close, numeric_grad

dims = st.integers(min_value=1, max_value=6)


@settings(max_examples=25, deadline=None)
@given(b=dims, i=dims, o=dims, seed=st.integers(0, 2**31))
def test_linear_backward_matches_central_differences(b, i, o, seed):
    rng = np.random.default_rng(seed)
    x, W, bias = rng.standard_normal((b, i)), rng.standard_normal((o, i)), rng.standard_normal(o)
    g = rng.standard_normal((b, o))  # upstream dL/dz; L = <g, z>

    def loss():
        return float((g * F.linear_forward(x, W, bias)).sum())

    dX, dW, db = F.linear_backward(g, x, W)
    assert_grad_close(dX, numeric_grad(loss, x))
    assert_grad_close(dW, numeric_grad(loss, W))
    assert_grad_close(db, numeric_grad(loss, bias))


def test_relu_backward_matches_central_differences():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4, 7))
    z[np.abs(z) < 1e-3] = 0.5  # stay away from the kink
    g = rng.standard_normal(z.shape)
    num = numeric_grad(lambda: float((g * F.relu_forward(z)).sum()), z)
    assert_grad_close(F.relu_backward(g, z), num)
    assert F.relu_forward(np.array([-1.0, 0.0, 2.0])).tolist() == [0.0, 0.0, 2.0]


@settings(max_examples=25, deadline=None)
@given(b=dims, k=st.integers(2, 10), seed=st.integers(0, 2**31), scale=st.floats(0.1, 30))
def test_softmax_backward_is_the_appendix_jacobian(b, k, seed, scale):
    rng = np.random.default_rng(seed)
    z = scale * rng.standard_normal((b, k))
    g = rng.standard_normal((b, k))
    y = F.softmax_forward(z)
    num = numeric_grad(lambda: float((g * F.softmax_forward(z)).sum()), z)
    assert_grad_close(F.softmax_backward(g, y), num, rtol=1e-5, atol=1e-9)
    # the explicit Jacobian of Appendix 1: diag(y) - y y^T
    J = np.diag(y[0]) - np.outer(y[0], y[0])
    np.testing.assert_allclose(F.softmax_backward(g[:1], y[:1])[0], J.T @ g[0], atol=1e-12)


def test_softmax_is_stable_and_normalised():
    z = np.array([[1000.0, 1000.0, -1000.0], [0.0, 1.0, 2.0]])
    y = F.softmax_forward(z)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y.sum(axis=1), 1.0)
    np.testing.assert_allclose(y[0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(F.log_softmax(z)[0], [-np.log(2), -np.log(2), -2000 - np.log(2)])
    np.testing.assert_allclose(F.log_softmax(z)[1], np.log(y[1]))


@settings(max_examples=25, deadline=None)
@given(b=dims, k=st.integers(2, 10), seed=st.integers(0, 2**31))
def test_softmax_cross_entropy_gradient_is_y_minus_t_over_b(b, k, seed):
    rng = np.random.default_rng(seed)
    z = 3 * rng.standard_normal((b, k))
    labels = rng.integers(0, k, b)
    num = numeric_grad(lambda: F.cross_entropy_forward(z, labels), z)
    analytic = F.softmax_cross_entropy_backward(F.softmax_forward(z), labels)
    assert_grad_close(analytic, num, rtol=1e-5, atol=1e-9)


def test_cross_entropy_is_finite_for_extreme_logits():
    z = np.array([[0.0, 200.0]], dtype=np.float32)
    assert F.cross_entropy_forward(z, np.array([0])) == pytest.approx(200.0)
