"""A neuron explained (na.explain): every number against an independent computation:
float64 formulas, central differences, a model with the neuron's outgoing weights
zeroed, and PyTorch autograd."""

from __future__ import annotations

import numpy as np
import pytest

from neuronatlas import MLP
from neuronatlas.errors import ConfigError
from neuronatlas.explanations import explain
from neuronatlas.explanations.neuron import (
    ablation,
    incoming,
    input_filter,
    neuron_activations,
    output_effects,
    trust,
)

from .conftest import TINY_SIZES
from .test_cli import assert_user_error, run_cli


@pytest.fixture(scope="module")
def tiny(tiny_run):
    return MLP.load(tiny_run / "model.safetensors")


def planted() -> MLP:
    """A 4-3-2-3 network with weights set by hand, in float64."""
    m = MLP.init((4, 3, 2, 3), rng=np.random.default_rng(0), dtype=np.float64)
    m.weights[0][:] = [[1, -2, 0.5, 0], [0, 1, 1, -1], [2, 0, 0, 1]]
    m.biases[0][:] = [0.1, -0.2, 0.3]
    return m


def test_contributions_plus_bias_are_the_mean_pre_activation(tiny, mnist):
    for model, layer, index, x in ((planted(), 1, 0, np.random.default_rng(1).random((5, 4))),
                                   (tiny, 2, 7, mnist.test_x[:16]), (tiny, 4, 3,
                                                                     mnist.test_x[:16])):
        below = x if layer == 1 else neuron_activations(model, x, layer - 1)
        rec = incoming(model, layer, index, below)
        want = (below.astype(np.float64) @ model.weights[layer - 1][index].astype(np.float64)
                + float(model.biases[layer - 1][index])).mean()
        total = sum(s["contribution"] for s in rec["sources"]) + rec["bias"]
        assert total == pytest.approx(want, rel=1e-12, abs=1e-12)
        assert rec["mean_pre_activation"] == pytest.approx(want, rel=1e-12, abs=1e-12)
        sizes = [abs(s["contribution"]) for s in rec["sources"]]
        assert sizes == sorted(sizes, reverse=True)
    planted_rec = incoming(planted(), 1, 0, np.eye(4))
    assert [s["neuron"] for s in planted_rec["sources"]][:2] == [1, 0]  # |-2|/4, then 1/4


def test_the_filter_is_the_weight_row_and_deeper_the_mean_input_gradient(tiny, mnist):
    assert np.array_equal(input_filter(tiny, 1, 5, mnist.test_x[:3]),
                          tiny.weights[0][5].astype(np.float64))
    m = MLP.init((6, 5, 4, 3), rng=np.random.default_rng(2), dtype=np.float64,
                 activation="gelu")
    x = np.random.default_rng(3).random((4, 6))
    got = input_filter(m, 2, 1, x)
    eps, want = 1e-6, np.zeros(6)
    for k in range(6):
        d = np.zeros(6)
        d[k] = eps
        z = lambda v: m.activations(v, pre=True)[2][:, 1]  # noqa: E731
        want[k] = ((z(x + d) - z(x - d)) / (2 * eps)).mean()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_output_effects_match_pytorch_autograd(tiny, mnist, torch):
    x = mnist.test_x[:8]
    layer, index = 2, 4
    got = output_effects(tiny, layer, index, x)
    a = torch.tensor(neuron_activations(tiny, x, layer).astype(np.float64), requires_grad=True)
    h = a
    for l in range(layer + 1, tiny.n_layers + 1):
        W = torch.tensor(tiny.weights[l - 1].astype(np.float64))
        b = torch.tensor(tiny.biases[l - 1].astype(np.float64))
        h = h @ W.T + b
        if l < tiny.n_layers:
            h = torch.relu(h)
    want = [torch.autograd.grad(h[:, c].sum(), a, retain_graph=True)[0][:, index].mean().item()
            for c in range(10)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_ablation_equals_a_model_with_the_outgoing_weights_zeroed(tiny, mnist):
    x, y = mnist.test_x[:300], mnist.test_y[:300]
    layer, index = 1, 11
    got = ablation(tiny, layer, index, x, y)
    cut = tiny.copy()
    cut.weights[layer][:, index] = 0

    def log_probs(m):
        z = m.forward(x).astype(np.float64)
        z = z - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    want = (log_probs(cut).mean(0) - log_probs(tiny).mean(0))
    np.testing.assert_allclose(got["log_prob"], want, rtol=1e-6, atol=1e-7)
    acc = np.mean(cut.predict(x) == y) - np.mean(tiny.predict(x) == y)
    assert got["accuracy"] == pytest.approx(acc)


def test_a_class_mean_picture_agrees_with_its_class(tiny, mnist):
    """class_agreement on planted cases: a picture that is a class mean scores 1 (the
    network reads the mean 3 as a 3), and against another class 0."""
    mean3 = mnist.train_x[mnist.train_y == 3].mean(axis=0)
    assert tiny.predict(mean3[None])[0] == 3
    assert trust(tiny, 4, 3, mean3, mnist, 1.0, 3)["class_agreement"] == 1.0
    assert trust(tiny, 4, 3, mean3, mnist, 1.0, 5)["class_agreement"] == 0.0
    with pytest.raises(ConfigError, match="NaN"):
        trust(tiny, 4, 3, np.full(784, np.nan), mnist, 1.0, 3)


def test_one_record_with_its_names(tiny, mnist):
    rec = explain(tiny, (3, 2), mnist)
    assert len(rec["images"]) == 16 and len(rec["incoming"]) == TINY_SIZES[2]
    acts = neuron_activations(tiny, mnist.rows(np.array(rec["images"])), 3)[:, 2]
    np.testing.assert_allclose(acts, rec["activations"], rtol=1e-6)
    assert sum(rec["classes"]) == 100 and 0 < rec["selectivity"] <= 1
    assert 0 <= rec["sparsity"] <= 1 and len(rec["filter"]) == 784
    assert len(rec["outputs"]["effect"]) == 10 and len(rec["outputs"]["ablation"]) == 10
    assert set(rec["trust"]) == {"picture_activation", "reach", "two_choice", "class_agreement"}
    assert rec["description"].startswith("fires on ") and "built mostly from 2:" in rec[
        "description"]
    assert explain(tiny, (4, 1), mnist)["outputs"] is None
    for target in ((0, 1), (5, 0), (2, 24), (2, -1)):
        with pytest.raises(ConfigError, match="does not exist"):
            explain(tiny, target, mnist)


def test_the_cli_prints_the_record_and_refuses_bad_targets(tiny_run):
    import json

    proc = run_cli("explain", "2:5", "--run", tiny_run, "--json")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec["layer"] == 2 and rec["neuron"] == 5 and len(rec["incoming"]) == TINY_SIZES[1]
    table = run_cli("explain", "2:5", "--run", tiny_run)
    assert table.returncode == 0 and " ".join(rec["description"].split()) in " ".join(
        table.stdout.split())
    assert_user_error(run_cli("explain", "9:0", "--run", tiny_run), "layer 9 does not exist")
    assert_user_error(run_cli("explain", "2:48", "--run", tiny_run), "neuron 48 does not exist")
    assert_user_error(run_cli("explain", "two", "--run", tiny_run), "is not LAYER:NEURON")


def test_a_dataset_smaller_than_the_top_100_counts_all_its_images(tmp_path):
    """argpartition's kth wraps around below 0: 60 images gave a wrong top set before."""
    from neuronatlas.data import load_dataset

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "small.npz", x_train=rng.integers(0, 255, (40, 8, 8), dtype=np.uint8),
             y_train=np.arange(40) % 3, x_test=rng.integers(0, 255, (20, 8, 8), dtype=np.uint8),
             y_test=np.arange(20) % 3)
    data = load_dataset(tmp_path / "small.npz")
    rec = explain(MLP.init((64, 6, 3), rng=rng), (1, 2), data)
    assert sum(rec["classes"]) == 60 and len(set(rec["images"])) == 16
