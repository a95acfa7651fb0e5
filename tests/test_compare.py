"""na.compare: neurons matched one to one and layers by linear CKA, checked against
independent computations (n x n Gram matrices, np.corrcoef, brute-force matching)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import neuronatlas as na
from neuronatlas.similarity import LAYER_FIELDS, compare


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((300, 64)).astype(np.float32)


def net(seed, sizes=(64, 24, 16, 12, 10), **kw):
    return na.MLP.init(sizes, rng=np.random.default_rng(seed), input_shape=(8, 8, 1), **kw)


def permuted(model, rng):
    """The same function with every hidden layer's neurons permuted (and the next
    layer's inputs permuted to match); returns the copy and the permutations."""
    m = model.copy()
    perms = []
    for l in range(1, m.n_layers):
        p = rng.permutation(m.sizes[l])
        m.weights[l - 1] = m.weights[l - 1][p]
        m.biases[l - 1] = m.biases[l - 1][p]
        m.weights[l] = m.weights[l][:, p]
        perms.append(p)
    return m, perms


def gram_cka(x, y):
    """Linear CKA the other way: HSIC of the n x n centred Gram matrices."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    h = np.eye(len(x)) - 1 / len(x)
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return np.sum(k * l_) / (np.linalg.norm(k) * np.linalg.norm(l_))


def test_a_network_against_a_permuted_copy_of_itself(images):
    """CKA 1 at every depth, and the permutation recovered exactly for every live neuron."""
    a = net(1)
    b, perms = permuted(a, np.random.default_rng(5))
    np.testing.assert_allclose(a.forward(images), b.forward(images), rtol=1e-5, atol=1e-5)
    cmp = compare(a, b, images)
    assert len(cmp.layers) == 3
    for rec, p in zip(cmp.layers, perms):
        live = rec["assignment"] >= 0
        assert live.sum() == rec["size_a"] - rec["dead_a"]
        inverse = np.argsort(p)  # neuron i of a is neuron inverse[i] of b
        assert np.array_equal(rec["assignment"][live], inverse[live])
        np.testing.assert_allclose(rec["matched_corr"][live], 1, atol=1e-5)
        assert rec["share_0_9"] == 1.0 and rec["cka"] == pytest.approx(1, abs=1e-6)
    np.testing.assert_allclose(np.diag(cmp.cka_matrix), 1, atol=1e-6)


def test_numbers_equal_independent_computations(images):
    a, b = net(1), net(2, sizes=(64, 20, 18, 10), activation="gelu")
    cmp = compare(a, b, images)
    acts_a, acts_b = a.activations(images), b.activations(images)
    assert [r["layer"] for r in cmp.layers] == [1, 2]  # the depths both have
    assert cmp.cka_matrix.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert cmp.cka_matrix[i, j] == pytest.approx(gram_cka(acts_a[i + 1], acts_b[j + 1]),
                                                         rel=1e-5)
    for rec, corr in zip(cmp.layers, cmp.correlations):
        d = rec["layer"]
        with np.errstate(invalid="ignore", divide="ignore"):  # dead neurons: NaN rows
            full = np.corrcoef(acts_a[d].T.astype(np.float64),
                               acts_b[d].T.astype(np.float64))
        ref = full[: rec["size_a"], rec["size_a"]:]
        live_a = acts_a[d].std(axis=0) > 0
        live_b = acts_b[d].std(axis=0) > 0
        np.testing.assert_allclose(corr[np.ix_(live_a, live_b)], ref[np.ix_(live_a, live_b)],
                                   atol=1e-5)
        np.testing.assert_allclose(rec["best_corr"][live_a],
                                   ref[np.ix_(live_a, live_b)].max(axis=1), atol=1e-5)
        assert rec["cka"] == pytest.approx(cmp.cka_matrix[d - 1, d - 1])


def test_the_matching_is_the_best_one_to_one_assignment():
    """Brute force over every assignment of a small layer."""
    from neuronatlas.similarity.matching import match

    rng = np.random.default_rng(3)
    for _ in range(20):
        corr = rng.uniform(-1, 1, (4, 5))
        m = match(corr)
        best = max(sum(corr[i, c] for i, c in enumerate(cols))
                   for cols in itertools.permutations(range(5), 4))
        assert corr[np.arange(4), m.assignment].sum() == pytest.approx(best)
        assert len(set(m.assignment)) == 4


def test_dead_neurons_have_no_partner_and_are_counted_apart(images):
    a, b = net(1), net(2)
    base = compare(a, b, images).layers[0]
    assert (base["assignment"][[0, 3]] >= 0).all() and 5 in base["assignment"]
    a.weights[0][[0, 3]] = 0
    a.biases[0][[0, 3]] = -1  # never fires: constant 0
    b.weights[0][5] = 0
    b.biases[0][5] = -1
    cmp = compare(a, b, images)
    rec = cmp.layers[0]
    assert rec["dead_a"] == base["dead_a"] + 2 and rec["dead_b"] == base["dead_b"] + 1
    assert list(rec["assignment"][[0, 3]]) == [-1, -1]
    assert np.isnan(rec["matched_corr"][[0, 3]]).all() and np.isnan(rec["best_corr"][0])
    assert 5 not in rec["assignment"]
    assert np.isnan(cmp.correlations[0][:, 5]).all()
    doc = json.loads(json.dumps(cmp.to_dict(), allow_nan=False))
    assert doc["layers"][0]["assignment"][0] == -1 and doc["layers"][0]["matched_corr"][0] is None
    assert set(doc) == {"a", "b", "images", "layers", "cka_matrix"}
    assert all(tuple(r) == LAYER_FIELDS for r in doc["layers"])


def test_networks_of_other_inputs_or_too_few_images_are_refused(images):
    with pytest.raises(na.ConfigError, match="different inputs"):
        compare(net(1), na.MLP.init((64, 8, 10), rng=np.random.default_rng(0),
                                    input_shape=(4, 16, 1)), images)
    with pytest.raises(na.ConfigError, match="at least 2 images"):
        compare(net(1), net(2), images[:1])
    with pytest.raises(na.ConfigError, match="without hidden layers"):
        compare(na.MLP.init((64, 10), rng=np.random.default_rng(0), input_shape=(8, 8, 1)),
                net(1), images)


def test_cli_compares_two_run_folders_or_model_files(tmp_path, mnist):
    from .test_cli import assert_user_error, run_cli

    for name, seed in (("a", 1), ("b", 2)):
        m = na.MLP.init((784, 12, 8, 10), rng=np.random.default_rng(seed))
        (tmp_path / name).mkdir()
        m.save(tmp_path / name / "model.safetensors", {"dataset": "mnist"})
    proc = run_cli("compare", tmp_path / "a", tmp_path / "b" / "model.safetensors", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["images"] == 10_000 and len(doc["layers"]) == 2
    assert all(tuple(r) == LAYER_FIELDS for r in doc["layers"])
    assert len(doc["cka_matrix"]) == 2 and len(doc["cka_matrix"][0]) == 2
    same = run_cli("compare", tmp_path / "a", tmp_path / "a")
    assert same.returncode == 0 and "100.0%" in same.stdout and "1.000" in same.stdout
    assert_user_error(run_cli("compare", tmp_path / "a", tmp_path / "nothing"), "not found")
    assert_user_error(run_cli("compare", tmp_path / "a", tmp_path), "no model")
    other = na.MLP.init((784, 12, 10), rng=np.random.default_rng(3))
    other.save(tmp_path / "f.safetensors", {"dataset": "fashion-mnist"})
    assert_user_error(run_cli("compare", tmp_path / "a", tmp_path / "f.safetensors"),
                      "made on different data", "--dataset")
    wide = na.MLP.init((1568, 12, 10), rng=np.random.default_rng(3), input_shape=(28, 56, 1))
    wide.save(tmp_path / "w.safetensors", {"dataset": "mnist"})
    assert_user_error(run_cli("compare", tmp_path / "a", tmp_path / "w.safetensors",
                              "--dataset", "mnist"), "1568 inputs")


def test_a_live_neuron_facing_an_all_dead_layer_is_live_with_no_partner(images):
    """Liveness was read from NaN rows: against a layer that is all dead every neuron of A
    counted as dead and the shares were NaN (found in review)."""
    a, b = net(1), net(2)
    b.weights[0][:] = 0
    b.biases[0][:] = -1  # all of B's layer 1 is dead
    rec = compare(a, b, images).layers[0]
    assert rec["dead_b"] == rec["size_b"] and rec["dead_a"] < rec["size_a"]
    assert rec["share_0_9"] == 0.0 and rec["share_0_5"] == 0.0
