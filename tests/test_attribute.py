"""Which neurons an input used (na.attribute) and the neurons it drives hardest (na.search),
against independent computations: a network linear above the layer (where integrated
gradients are exact), captum's LayerIntegratedGradients (or an independent PyTorch
implementation where captum is absent), planted neurons; and every refusal."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

import neuronatlas as na
from neuronatlas import MLP
from neuronatlas.errors import ConfigError
from neuronatlas.explanations.attribution import quadrature

from .conftest import IN_CI
from .test_cli import assert_user_error, run_cli


@pytest.fixture(scope="module")
def tiny(tiny_run):
    return MLP.load(tiny_run / "model.safetensors")


def test_completeness_holds_to_the_reported_error_and_shrinks_with_steps(tiny, mnist):
    x = mnist.test_x[7]
    coarse, fine = na.attribute(tiny, x, steps=8), na.attribute(tiny, x, steps=256)
    logits = tiny.astype(np.float64).trace(x[None].astype(np.float64)).z[-1][0]
    assert coarse.target == fine.target == int(logits.argmax())
    assert fine.logit == pytest.approx(logits[fine.target], abs=1e-12)
    zero = tiny.astype(np.float64).trace(np.zeros((1, 784))).z[-1][0]
    assert fine.baseline_logit == pytest.approx(zero[fine.target], abs=1e-12)
    for res in (coarse, fine):
        for l, a in res.layers.items():
            assert a.shape == (tiny.sizes[l],)
            assert res.completeness_error[l] == pytest.approx(
                a.sum() - (res.logit - res.baseline_logit), abs=1e-12)
    # the last hidden layer feeds the logits linearly: exact at any number of steps
    assert abs(coarse.completeness_error[tiny.n_layers - 1]) < 1e-10
    total = abs(fine.logit - fine.baseline_logit)
    assert max(abs(e) for e in fine.completeness_error.values()) < 1e-3 * total
    assert (sum(map(abs, fine.completeness_error.values()))
            <= sum(map(abs, coarse.completeness_error.values())) + 1e-12)


def test_integrated_gradients_are_exact_where_the_network_above_is_linear():
    m = MLP.init((5, 4, 3, 2), rng=np.random.default_rng(0), dtype=np.float64,
                 activation=["relu", "identity"])
    x, b = np.random.default_rng(1).random(5), np.random.default_rng(2).random(5) * 0.5
    res = na.attribute(m, x, baseline=b, target=1, steps=3)
    t, tb = m.trace(x[None]), m.trace(b[None])
    # above layer 1 the network is linear: d logit_1 / d a_1 = (W3 W2)[1] everywhere
    grad = (m.weights[2] @ m.weights[1])[1]
    np.testing.assert_allclose(res.layers[1], (t.a[0][0] - tb.a[0][0]) * grad, rtol=1e-12,
                               atol=1e-14)
    assert abs(res.completeness_error[1]) < 1e-12
    nodes, weights = quadrature(5)
    assert weights.sum() == pytest.approx(1.0) and (0 < nodes).all() and (nodes < 1).all()


def torch_layer_ig(torch, model: MLP, x: np.ndarray, layer: int, target: int, steps: int):
    """Layer integrated gradients with PyTorch: captum's LayerIntegratedGradients where it
    is installed, else autograd over the same straight path in the layer's activations."""
    mods = []
    for l in range(model.n_layers):
        lin = torch.nn.Linear(model.sizes[l], model.sizes[l + 1]).double()
        lin.weight.data = torch.tensor(model.weights[l].astype(np.float64))
        lin.bias.data = torch.tensor(model.biases[l].astype(np.float64))
        mods += [lin] + ([torch.nn.ReLU()] if l < model.n_layers - 1 else [])
    net = torch.nn.Sequential(*mods)
    xt = torch.tensor(x[None].astype(np.float64))
    if importlib.util.find_spec("captum") is not None:
        from captum.attr import LayerIntegratedGradients

        lig = LayerIntegratedGradients(net, net[2 * layer - 1])
        return lig.attribute(xt, baselines=xt * 0, target=target, n_steps=steps,
                             method="gausslegendre").detach().numpy()[0]
    if IN_CI:
        pytest.fail("captum is not installed but CI must run the captum cross-check")
    below, above = net[:2 * layer], net[2 * layer:]
    ax, ab = below(xt).detach(), below(xt * 0).detach()
    nodes, weights = quadrature(steps)
    path = (ab + torch.tensor(nodes)[:, None] * (ax - ab)).requires_grad_(True)
    above(path)[:, target].sum().backward()
    return ((ax - ab)[0] * (torch.tensor(weights) @ path.grad)).numpy()


@pytest.mark.torch
def test_integrated_gradients_agree_with_captum(tiny, mnist, torch):
    x = mnist.test_x[11]
    res = na.attribute(tiny, x, steps=50)
    for l in range(1, tiny.n_layers):
        want = torch_layer_ig(torch, tiny, x, l, res.target, 50)
        np.testing.assert_allclose(res.layers[l], want, rtol=1e-6, atol=1e-7)


def test_attribution_of_one_drawing_takes_under_100_ms_on_the_paper_sizes():
    import time

    # in float64 as the server keeps it (a float32 model is copied to float64 per call)
    m = MLP.init(na.PAPER_SIZES, rng=np.random.default_rng(0)).astype(np.float64)
    x = np.random.default_rng(1).random(784).astype(np.float32)
    na.attribute(m, x)  # warm
    best = min(_timed(lambda: na.attribute(m, x), time) for _ in range(5))
    assert best < 0.1, f"{1000 * best:.0f} ms"


def _timed(fn, time) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def test_bad_images_baselines_and_targets_are_named_errors(tiny):
    ok = np.zeros(784, np.float32)
    nan = ok.copy()
    nan[3] = np.nan
    for kwargs, words in (({"image": np.zeros(783)}, "783 values"),
                          ({"image": nan}, "NaN"),
                          ({"image": ok, "baseline": np.zeros(10)}, "the baseline"),
                          ({"image": ok, "baseline": nan}, "the baseline"),
                          ({"image": ok, "target": 10}, "0..9"),
                          ({"image": ok, "target": -1}, "0..9"),
                          ({"image": ok, "steps": 0}, "steps")):
        with pytest.raises(ConfigError, match=words):
            na.attribute(tiny, **kwargs)


def test_attribute_cli_prints_every_layer_and_refuses_bad_input(tiny_run, tmp_path):
    proc = run_cli("attribute", "mnist:0", "--run", str(tiny_run), "--json", "--top", "3")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert sorted(doc["layers"]) == ["1", "2", "3"]
    for layer in doc["layers"].values():
        assert len(layer["top"]) == 3 and abs(layer["completeness_error"]) < 0.05
    proc = run_cli("attribute", "mnist:0", "--run", str(tiny_run))
    assert proc.returncode == 0 and "completeness error" in proc.stdout
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((28, 28), np.nan, np.float32))
    for args in (["mnist:0", "--target", "10"], [str(bad)], ["mnist:0", "--baseline", str(bad)],
                 ["/no/such.png"], ["mnist:0", "--steps", "0"]):
        assert_user_error(run_cli("attribute", *args, "--run", str(tiny_run)))


def planted_search_model() -> MLP:
    """784-3-2: hidden neuron j's weights are a template image T_j (three disjoint blocks),
    so image T_j drives neuron j to its own maximum and the others not at all."""
    m = MLP.init((784, 3, 2), rng=np.random.default_rng(0))
    m.weights[0][:] = 0
    m.biases[0][:] = 0
    for j in range(3):
        m.weights[0][j, j * 200:(j + 1) * 200] = 1.0 / (j + 1)
    return m


def test_search_finds_the_planted_neuron_relative_to_its_maximum():
    m = planted_search_model()
    templates = (m.weights[0] > 0).astype(np.float32)  # T_j: 1 where neuron j looks
    train = np.concatenate([templates, 0.5 * templates])
    maxima = na.training_maxima(m, train)
    np.testing.assert_allclose(maxima[1], [200, 100, 200 / 3], rtol=1e-6)
    for j in range(3):
        hits = na.search(m, 0.5 * templates[j], maxima, k=3).layers[1]
        assert hits[0][0] == j and hits[0][1] == pytest.approx(0.5)
        assert [share for _, share, _ in hits[1:]] == [0.0, 0.0]
    # neuron 2's activations are 3x smaller than neuron 0's but it is "like this" as much
    both = np.clip(templates[0] + templates[2], 0, 1)
    shares = dict((i, s) for i, s, _ in na.search(m, both, maxima).layers[1])
    assert shares[0] == pytest.approx(1.0) and shares[2] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="maxima of layer 1"):
        na.search(m, templates[0], {1: np.ones(2), 2: np.ones(2)})
    with pytest.raises(ConfigError, match="no layer 2"):
        na.search(m, templates[0], {1: maxima[1]})


def test_search_with_a_dataset_leaves_out_never_active_neurons(tiny, mnist):
    res = na.search(tiny, mnist.test_x[0], mnist, k=5)
    maxima = na.training_maxima(tiny, mnist.train_x)
    for l, rows in res.layers.items():
        assert len(rows) <= 5
        shares = [s for _, s, _ in rows]
        assert shares == sorted(shares, reverse=True)
        for i, s, a in rows:
            assert maxima[l][i] > 0 and s == pytest.approx(a / maxima[l][i], rel=1e-6)
