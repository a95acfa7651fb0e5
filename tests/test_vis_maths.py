"""The visualiser's maths against float64 central differences and PyTorch."""

import numpy as np
import pytest

from neuronatlas import MLP
from neuronatlas.config import VisConfig
from neuronatlas.nn.backprop import Backprop
from neuronatlas.vis import regularizers as R
from neuronatlas.vis.objectives import log_prob, neuron, others
from neuronatlas.vis.transforms import SHIFTS, clip_derivative, translate, translate_backward

from .helpers import assert_grad_close, numeric_grad

SIZES = (784, 12, 9, 7, 5)  # small but with the real 28x28 input


def test_tv_value_and_gradient_agree_away_from_ties():
    rng = np.random.default_rng(0)
    u = rng.random((3, 784))  # continuous values: no two neighbours tie
    num = numeric_grad(lambda: float(R.tv_value(u).sum()), u, eps=1e-5)
    assert_grad_close(R.tv_grad(u), num, rtol=1e-6, atol=1e-7)


def test_tv_is_the_zero_padded_form_of_appendix_5():
    u = np.zeros((1, 784))
    u[0, 0] = 1.0  # a lone corner pixel: 2 inner edges + 2 edges with the zero border
    assert R.tv_value(u)[0] == 4.0
    g = R.tv_grad(u).reshape(28, 28)
    assert g[0, 0] == 4.0 and g[0, 1] == -1.0 and g[1, 0] == -1.0 and g[1, 1] == 0.0
    # the appendix formula, written out with numpy.pad as in item 5
    img = np.random.default_rng(1).random((28, 28))
    p = np.pad(img, 1)
    appendix = (np.sign(img - p[:-2, 1:-1]) + np.sign(img - p[2:, 1:-1])
                + np.sign(img - p[1:-1, :-2]) + np.sign(img - p[1:-1, 2:]))
    np.testing.assert_array_equal(R.tv_grad(img.reshape(1, 784)).reshape(28, 28), appendix)


def test_l1_value_and_gradient():
    u = np.random.default_rng(2).standard_normal((2, 784))
    u[np.abs(u) < 1e-3] = 0.5
    assert_grad_close(R.l1_grad(u), numeric_grad(lambda: float(R.l1_value(u).sum()), u))


def test_clip_derivative_is_appendix_3():
    x = np.array([-0.5, 0.0, 0.3, 1.0, 1.2])
    assert clip_derivative(x).tolist() == [0, 0, 1, 0, 0]


def test_translate_backward_is_the_adjoint():
    rng = np.random.default_rng(3)
    x, g = rng.random((8, 784)), rng.random((8, 784))
    shifts = SHIFTS[np.arange(8)]
    lhs = (translate(x, shifts) * g).sum()
    rhs = (x * translate_backward(g, shifts)).sum()
    assert lhs == pytest.approx(rhs, rel=1e-12)
    one = np.zeros((1, 784))
    one[0, 28 * 5 + 5] = 1
    moved = translate(one, np.array([[1, -1]])).reshape(28, 28)
    assert moved[6, 4] == 1 and moved.sum() == 1


def _objective_value(model, obj, x):
    """Evaluate an objective the slow, obvious way from model.activations."""
    acts, pre = model.activations(x), model.activations(x, pre=True)
    total = 0.0
    for t in obj.terms:
        a = (pre if t.pre else acts)[t.layer][0]
        if t.kind == "neuron":
            total += t.weight * a[t.index]
        elif t.kind == "others":
            total += t.weight * (a.sum() - a[t.index]) / (a.size - 1)
        else:
            total += t.weight * np.log(acts[t.layer][0][t.index])
    return total


@pytest.mark.parametrize("make", [
    lambda: neuron(2, 3),
    lambda: neuron(3, 1, pre=True),
    lambda: neuron(4, 2),  # output: SoftMax probability through the Jacobian
    lambda: log_prob(1),
    lambda: neuron(2, 3) - 0.5 * others(2, exclude=3),  # the paper's penalty
    lambda: neuron(4, 0) - 0.3 * others(4, exclude=0),
])
def test_input_gradient_of_objectives_matches_central_differences(make):
    rng = np.random.default_rng(4)
    model = MLP.init(SIZES, rng=rng, dtype=np.float64)
    for b in model.biases:
        b[:] = 0.3 + 0.1 * rng.standard_normal(b.shape)  # keep ReLUs alive
    obj = make().bind(model.sizes)
    x = rng.random((1, 784))
    r = Backprop(model, [obj])
    r.forward(x)
    analytic = r.backward().copy()
    num = numeric_grad(lambda: _objective_value(model, obj, x), x, indices=range(0, 784, 7))
    assert_grad_close(analytic, num, rtol=1e-5, atol=1e-9)


def test_a_saturated_log_probability_keeps_its_gradient_in_float32():
    """Where the SoftMax is 1 - 1e-7, 1 - y_i in float32 is 0 or 6e-8: the gradient's
    direction would be rounding noise. It must match the float64 one."""
    rng = np.random.default_rng(6)
    m64 = MLP.init(SIZES, rng=rng, dtype=np.float64)
    m64.biases[-1][:] = 0
    m64.biases[-1][1] = 20.0
    m32 = m64.astype(np.float32)
    x = rng.random((1, 784))
    assert 1e-10 < 1 - m64.predict_proba(x)[0, 1] < 1e-7  # float32's 1 - y_i: 0 or 6e-8
    obj = log_prob(1).bind(SIZES)
    grads = []
    for m in (m64, m32):
        r = Backprop(m, [obj])
        r.forward(x.astype(m.dtype))
        grads.append(r.backward()[0].astype(np.float64))
    g64, g32 = grads
    cos = g64 @ g32 / np.linalg.norm(g64) / np.linalg.norm(g32)
    assert cos > 0.999, cos
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4 * np.abs(g64).max())


def test_batched_rows_get_their_own_gradients():
    rng = np.random.default_rng(5)
    model = MLP.init(SIZES, rng=rng, dtype=np.float64)
    for b in model.biases:
        b[:] = 0.2
    objs = [neuron(1, 0).bind(SIZES), neuron(4, 3).bind(SIZES), neuron(2, 1).bind(SIZES)]
    x = rng.random((3, 784))
    r = Backprop(model, objs)
    r.forward(x[r.order])
    batched = r.backward()[np.argsort(r.order)]
    for i, obj in enumerate(objs):
        single = Backprop(model, [obj])
        single.forward(x[i : i + 1])
        np.testing.assert_allclose(batched[i], single.backward()[0], rtol=1e-12, atol=1e-15)


@pytest.mark.torch
@pytest.mark.parametrize("target", [(7, 1), (8, 3)])
def test_input_gradient_matches_torch_autograd_on_the_paper_net(torch, target):
    from neuronatlas import PAPER_SIZES
    from neuronatlas.vis.visualize import objective_for

    rng = np.random.default_rng(6)
    model = MLP.init(PAPER_SIZES, rng=rng, dtype=np.float64)
    for b in model.biases:
        b[:] = 0.05
    x = rng.random((1, 784))
    obj = objective_for(target, VisConfig(penalty=0.2), PAPER_SIZES)
    r = Backprop(model, [obj])
    r.forward(x)
    ours = r.backward()[0]
    tx = torch.tensor(x, requires_grad=True)
    a, acts = tx, []
    for l, (W, b) in enumerate(zip(model.weights, model.biases), start=1):
        a = a @ torch.from_numpy(W).T + torch.from_numpy(b)
        a = torch.relu(a) if l < 8 else torch.softmax(a, dim=1)
        acts.append(a)
    layer, idx = target
    la = acts[layer - 1][0]
    value = la[idx] - 0.2 * (la.sum() - la[idx]) / (la.numel() - 1)
    value.backward()
    np.testing.assert_allclose(ours, tx.grad.numpy()[0], rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("through", [False, True])
@pytest.mark.parametrize("clip", [False, True])
def test_fused_update_equals_the_reference_formulas(through, clip):
    from neuronatlas.vis.regularizers import SignScratch, tv_grad_into
    from neuronatlas.vis.update import AscentUpdate

    rng = np.random.default_rng(7)
    x = rng.uniform(-0.3, 1.3, (130, 784))
    x[:, 5] = 0.0  # exact bound values
    grad = rng.standard_normal(x.shape)
    cfg = VisConfig(lr=0.3, tv=0.02, l1=0.004, clip=clip, reg_through_clip=through)
    u = np.clip(x, 0, 1) if clip else x
    base = u if through else x
    reg = cfg.tv * R.tv_grad(base) + cfg.l1 * R.l1_grad(base)
    g = grad * clip_derivative(x) if clip else grad
    if through and clip:
        reg = reg * clip_derivative(x)
    expected = x + cfg.lr * (g - reg)
    out = np.empty_like(x)
    tv_grad_into(base, out, np.empty((130, 27, 28)), np.empty((130, 28, 27)),
                 SignScratch((130, 27, 28)), SignScratch((130, 28, 27)))
    np.testing.assert_array_equal(out, R.tv_grad(base))
    AscentUpdate(130, cfg, np.float64)(x, grad, u)
    np.testing.assert_allclose(x, expected, rtol=1e-12, atol=1e-15)
