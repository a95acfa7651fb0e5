"""The readable pictures' start: k-means prototypes of the training set, the one each
target is highest on, and their keyed cache."""

from __future__ import annotations

import numpy as np
import pytest

import neuronatlas as na
from neuronatlas import MLP, VisConfig
from neuronatlas.errors import ConfigError, DataError
from neuronatlas.vis import prototypes as P


def planted_images(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four far-apart centres in [0, 1]^16 and 50 noisy copies of each."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((4, 16), np.float32)
    for j in range(4):
        centres[j, 4 * j:4 * j + 4] = 1.0
    x = np.repeat(centres, 50, axis=0) + 0.05 * rng.standard_normal((200, 16))
    return centres, x.astype(np.float32)


def test_kmeans_finds_planted_centres():
    centres, x = planted_images()
    got = None
    for seed in range(20):  # Lloyd from 4 draws: some seed draws one image of each cluster
        got = P.kmeans(x, 4, seed=seed)
        order = np.argsort(got.argmax(axis=1))
        if np.abs(got[order] - centres).max() < 0.05:
            break
    else:
        pytest.fail(f"no seed recovered the centres: {got}")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(P.kmeans(x, 4, seed=3), P.kmeans(x, 4, seed=3))
    with pytest.raises(ConfigError, match="at least 300"):
        P.kmeans(x, 300)


def test_each_target_starts_at_the_prototype_it_is_highest_on():
    centres, _ = planted_images()
    m = MLP.init((16, 4, 3), rng=np.random.default_rng(0))
    m.weights[0][:] = centres[[2, 0, 3, 1]]  # neuron i looks for centre order[i]
    m.biases[0][:] = 0
    best = P.best_prototypes(m, [(1, 0), (1, 1), (1, 2), (1, 3)], centres, k=2, blend=1)
    assert best.shape == (4, 2, 16)
    np.testing.assert_array_equal(best[:, 0], centres[[2, 0, 3, 1]])
    out = P.best_prototypes(m, [(2, 1)], centres, blend=1)[0, 0]  # an output: log-probability
    logp = np.log(m.predict_proba(centres)[:, 1])
    np.testing.assert_array_equal(out, centres[int(np.argmax(logp))])
    # a blend weights the best ones by exp((z - z_best) / (T * std z)): neuron 0 is highest
    # on centre 2, then on the two it overlaps least with (0 for all three others: the
    # stable order 0, 1)
    z = centres.astype(np.float64) @ m.weights[0][0]
    w = np.exp((z[[2, 0]] - z[2]) / (P.TEMPERATURE * z.std()))
    two = P.best_prototypes(m, [(1, 0)], centres, blend=2)[0, 0]
    np.testing.assert_allclose(two, (w[:, None] * centres[[2, 0]]).sum(0) / w.sum(), atol=1e-6)
    assert 0 < w[1] / w[0] < 0.05  # the best counts most, the second still a little
    hot = P.best_prototypes(m, [(1, 0)], centres, blend=2, temperature=1e9)[0, 0]
    np.testing.assert_allclose(hot, centres[[2, 0]].mean(axis=0), atol=1e-6)  # T -> inf: mean
    flat = MLP.init((16, 4, 3), rng=np.random.default_rng(0))
    flat.weights[0][0] = 0  # z is its bias on every prototype: equal weights, not NaN
    np.testing.assert_allclose(P.best_prototypes(flat, [(1, 0)], centres, blend=4)[0, 0],
                               centres.mean(axis=0), atol=1e-6)
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        P.best_prototypes(m, [(1, 0)], centres, temperature=0)
    # a tied picture starts there: one step of a tiny rate hardly moves it
    many = np.repeat(centres, 3, axis=0)  # 9 best: 3 copies of 3
    res = na.visualize(m, [(1, 0), (1, 3)], VisConfig.preset("readable", steps=1, lr=1e-6),
                       prototypes=many)
    want = []
    for i in (0, 3):
        zi = many.astype(np.float64) @ m.weights[0][i]
        top = np.argsort(-zi, kind="stable")[:9]
        wi = np.exp((zi[top] - zi[top[0]]) / (P.TEMPERATURE * zi.std()))
        want.append((wi[:, None] * many[top]).sum(0) / wi.sum())
    np.testing.assert_allclose(res.images, np.stack(want), atol=1e-4)
    with pytest.raises(ConfigError, match="prototypes must be finite"):
        P.best_prototypes(m, [(1, 0)], np.full((4, 16), np.nan))
    with pytest.raises(ConfigError, match="at least 4 prototypes"):
        P.best_prototypes(m, [(1, 0)], centres[:2], k=4, blend=1)
    # too few for the blend: each start blends as many as there are for it
    np.testing.assert_allclose(P.best_prototypes(m, [(1, 0)], centres, k=2, blend=9,
                                                 temperature=1e9)[0],
                               [centres[[2, 0]].mean(0), centres[[1, 3]].mean(0)], atol=1e-6)


def test_a_model_without_data_is_told_what_the_readable_start_needs():
    m = MLP.init((16, 4, 3), rng=np.random.default_rng(0))
    with pytest.raises(DataError, match="init 'prototype'.*init 'zero'"):
        na.visualize(m, [(1, 0)], VisConfig.preset("readable", steps=2))
    na.visualize(m, [(1, 0)], VisConfig.preset("readable", steps=2, init="zero"))
    with pytest.raises(ConfigError, match="both given"):
        na.visualize(m, [(1, 0)], VisConfig.preset("readable", steps=2),
                     init_image=np.zeros(16), prototypes=np.zeros((2, 16)))


def test_the_cache_is_keyed_by_the_data_and_recomputed_when_damaged(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONATLAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(P, "_MEMO", {})
    x = np.clip(planted_images()[1], 0, 1)
    y = np.arange(200) % 3
    np.savez(tmp_path / "a.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    np.savez(tmp_path / "b.npz", x_train=x[::-1].copy(), y_train=y, x_test=x[:10],
             y_test=y[:10])
    a, b = na.load_dataset(tmp_path / "a.npz"), na.load_dataset(tmp_path / "b.npz")
    first = P.data_prototypes(a, 4)
    files = list((tmp_path / "cache" / "prototypes").iterdir())
    assert len(files) == 1
    monkeypatch.setattr(P, "_MEMO", {})
    calls = []
    real = P.kmeans
    monkeypatch.setattr(P, "kmeans", lambda *args, **kw: calls.append(1) or real(*args, **kw))
    np.testing.assert_array_equal(P.data_prototypes(a, 4), first)  # read back, not computed
    assert calls == []
    P.data_prototypes(b, 4)  # other data: its own file
    assert calls == [1] and len(list(files[0].parent.iterdir())) == 2
    monkeypatch.setattr(P, "_MEMO", {})
    files[0].write_bytes(b"not an npz")
    np.testing.assert_array_equal(P.data_prototypes(a, 4), first)  # damaged: computed again
    assert calls == [1, 1]
