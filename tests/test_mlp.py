"""The MLP: initialisation, numbering, whole-network gradients, the fused SGD step."""

import numpy as np
import pytest

from neuronatlas import MLP, PAPER_SIZES
from neuronatlas.nn import functional as F
from neuronatlas.nn.blas import GemmPlan, has_fast_gemm
from neuronatlas.nn.sgd_step import SGDStep

from .helpers import assert_grad_close, numeric_grad

SMALL = (7, 6, 5, 4, 3)


def test_kaiming_normal_statistics_and_zero_biases():
    m = MLP.init(PAPER_SIZES, rng=np.random.default_rng(0))
    assert m.sizes == PAPER_SIZES and m.n_layers == 8 and m.dtype == np.float32
    for W, b in zip(m.weights, m.biases):
        fan_in = W.shape[1]
        assert W.std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.05)
        assert abs(W.mean()) < 4 * np.sqrt(2 / fan_in / W.size) and not b.any()
    assert m.weights[0].shape == (1250, 784)


def test_same_seed_same_bits_and_float64_matches_float32():
    a = MLP.init(SMALL, rng=np.random.default_rng(3))
    b = MLP.init(SMALL, rng=np.random.default_rng(3))
    c = MLP.init(SMALL, rng=np.random.default_rng(3), dtype=np.float64)
    for wa, wb, wc in zip(a.weights, b.weights, c.weights):
        assert wa.tobytes() == wb.tobytes()
        assert wc.dtype == np.float64
        np.testing.assert_allclose(wa, wc, rtol=1e-6)


def test_activations_are_numbered_like_the_paper():
    m = MLP.init(SMALL, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).random((9, 7)).astype(np.float32)
    acts = m.activations(x, batch_size=4)
    assert list(acts) == [1, 2, 3, 4]
    assert [a.shape for a in acts.values()] == [(9, 6), (9, 5), (9, 4), (9, 3)]
    pre = m.activations(x, pre=True)
    np.testing.assert_allclose(acts[1], np.maximum(pre[1], 0))
    np.testing.assert_allclose(acts[4], F.softmax_forward(pre[4]), rtol=1e-6)
    np.testing.assert_allclose(pre[4], m.forward(x), rtol=1e-6)
    assert (acts[2] >= 0).all() and np.allclose(acts[4].sum(1), 1)
    np.testing.assert_array_equal(m.predict(x), acts[4].argmax(1))


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh", "leaky_relu", "sigmoid"])
def test_activations_in_place_equal_the_trace_bit_for_bit(activation):
    """activations() writes each layer into its result in place (no z, no copies): the
    same bits as trace's allocating reference, in every batch."""
    m = MLP.init(SMALL, rng=np.random.default_rng(0), activation=activation)
    x = np.random.default_rng(1).random((23, 7)).astype(np.float32)
    acts = m.activations(x, batch_size=8)
    for l in range(1, 5):
        want = np.concatenate([m.trace(x[s:s + 8]).a[l - 1] for s in range(0, 23, 8)])
        assert acts[l].tobytes() == want.tobytes(), l


def test_whole_network_parameter_gradients_match_central_differences():
    rng = np.random.default_rng(5)
    m = MLP.init(SMALL, rng=rng, dtype=np.float64)
    for b in m.biases:
        b[:] = 0.1 * rng.standard_normal(b.shape)  # non-zero biases exercise db
    x, y = rng.random((8, 7)), rng.integers(0, 3, 8)
    loss, dWs, dbs = m.loss_and_grads(x, y)
    assert loss == pytest.approx(F.cross_entropy_forward(m.forward(x), y))
    for W, dW, b, db in zip(m.weights, dWs, m.biases, dbs):
        f = lambda: F.cross_entropy_forward(m.forward(x), y)  # noqa: E731
        assert_grad_close(dW, numeric_grad(f, W), rtol=1e-5, atol=1e-9)
        assert_grad_close(db, numeric_grad(f, b), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("use_blas", [True, False])
@pytest.mark.parametrize("grad_scale", [1.0, 0.1])
def test_fused_step_equals_reference_sgd(use_blas, grad_scale):
    rng = np.random.default_rng(2)
    m = MLP.init(SMALL, rng=rng, dtype=np.float64)
    ref = m.copy()
    step = SGDStep(m, 8, lr=0.05, grad_scale=grad_scale, use_blas=use_blas)
    for _ in range(3):
        x, y = rng.random((8, 7)), rng.integers(0, 3, 8)
        loss_ref, dWs, dbs = ref.loss_and_grads(x, y)
        for p, g in zip(ref.weights + ref.biases, dWs + dbs):
            p -= 0.05 * grad_scale * g
        assert step(x, y) == pytest.approx(loss_ref, rel=1e-12)
    for a, b in zip(m.weights + m.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_fused_step_float32_on_paper_architecture_tracks_float64():
    rng = np.random.default_rng(0)
    m32 = MLP.init(PAPER_SIZES, rng=rng)
    m64 = m32.astype(np.float64)
    x, y = rng.random((32, 784)), rng.integers(0, 10, 32)
    l32 = SGDStep(m32, 32, 0.01)(x.astype(np.float32), y)
    l64 = SGDStep(m64, 32, 0.01)(x, y)
    assert l32 == pytest.approx(l64, rel=1e-5)
    for a, b in zip(m32.weights, m64.weights):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_plan_matches_numpy(dtype, trans_a, trans_b):
    rng = np.random.default_rng(0)
    a = rng.random((4, 5) if not trans_a else (5, 4)).astype(dtype)
    b = rng.random((5, 3) if not trans_b else (3, 5)).astype(dtype)
    c0 = rng.random((4, 3)).astype(dtype)
    expected = -0.5 * ((a.T if trans_a else a) @ (b.T if trans_b else b)) + c0
    for use_blas in (True, False):
        c = c0.copy()
        GemmPlan(a, b, c, trans_a=trans_a, trans_b=trans_b, alpha=-0.5, beta=1.0,
                 use_blas=use_blas)()
        np.testing.assert_allclose(c, expected, rtol=1e-5)


def test_gemm_plan_rejects_shapes_that_do_not_chain():
    with pytest.raises(ValueError, match="do not chain"):
        GemmPlan(np.ones((2, 3)), np.ones((4, 2)), np.ones((2, 2)))


def test_numpy_blas_fast_path_is_found():
    # NumPy wheels on Linux bundle OpenBLAS; this guards the training speed.
    assert has_fast_gemm(np.float32) and has_fast_gemm(np.float64)


def test_blas_threads_holds_for_the_block_only():
    from threadpoolctl import threadpool_info

    from neuronatlas.nn.blas import blas_threads

    def threads():
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    before = threads()
    with blas_threads(1):
        assert threads() == {1}
    assert threads() == before
    with blas_threads(None):
        assert threads() == before
