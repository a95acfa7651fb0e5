"""The readability measures on planted cases, and the judges on real MNIST."""

import numpy as np
import pytest

from neuronatlas.vis import quality as Q

SHAPE = (28, 28, 1)


def _blob():
    yy, xx = np.mgrid[:28, :28]
    return np.exp(-((yy - 14) ** 2 + (xx - 12) ** 2) / 30.0).reshape(1, -1)


def test_a_checkerboard_scores_high_on_the_artefact_measure_and_strokes_low(mnist):
    board = (np.indices((28, 28)).sum(axis=0) % 2).astype(float).reshape(1, -1)
    assert Q.highfreq_share(board, SHAPE)[0] > 0.95
    assert Q.highfreq_share(_blob(), SHAPE)[0] < 0.01
    digits = Q.highfreq_share(mnist.test_x[:500], SHAPE)
    assert 0.005 < np.median(digits) < 0.1  # real strokes sit far below a checkerboard
    assert Q.highfreq_share(np.zeros((1, 784)), SHAPE)[0] == 0.0
    assert Q.total_variation(board, SHAPE)[0] > 10 * Q.total_variation(_blob(), SHAPE)[0]


def test_stability_of_identical_and_constant_images_is_one_and_of_noise_near_zero():
    rng = np.random.default_rng(0)
    same = np.repeat(_blob()[None], 5, axis=0)  # (S=5, T=1, D)
    assert Q.stability(same)[0] == pytest.approx(1.0)
    const = np.full((5, 1, 784), 0.3)
    assert Q.stability(const)[0] == 1.0
    noise = rng.random((5, 1, 784))
    assert abs(Q.stability(noise)[0]) < 0.1
    assert Q.mean_correlation(np.stack([_blob()[0], 1 - _blob()[0]])) == pytest.approx(-1.0)


def test_reached_counts_neurons_at_their_maximum_and_skips_silent_ones():
    r = Q.reached(np.array([2.0, 0.5, 1.0, 3.0]), np.array([1.0, 1.0, 1.0, 0.0]))
    assert r == {"median_fraction": 1.0, "share_at_max": pytest.approx(2 / 3), "neurons": 3}


def test_two_choice_picks_the_strong_image_when_the_query_is_the_neurons_direction():
    rng = np.random.default_rng(1)
    direction = rng.standard_normal(784)
    test = rng.random((2000, 784))
    acts = (test @ direction)[:, None]  # a linear neuron
    strong, mid = Q.two_choice_pairs(acts, rng, pairs=200)
    assert (acts[strong[0], 0] > acts[mid[0], 0]).all()
    assert Q.two_choice(direction[None], test, strong, mid)[0] > 0.95
    assert Q.two_choice(-direction[None], test, strong, mid)[0] < 0.05
    # a neuron without a clear stronger image has no answer
    flat_strong, flat_mid = Q.two_choice_pairs(np.zeros((2000, 1)), rng)
    assert flat_strong[0, 0] == -1
    assert np.isnan(Q.two_choice(direction[None], test, flat_strong, flat_mid)[0])


def test_stretch_maps_each_image_to_its_own_range():
    x = np.array([[0.1, 0.2, 0.3], [0.5, 0.5, 0.5]])
    np.testing.assert_allclose(Q.stretch(x), [[0, 0.5, 1], [0, 0, 0]])


@pytest.mark.slow
def test_judges_read_the_class_means_and_not_noise(mnist, tmp_path):
    from neuronatlas.judges import load_judges

    judges = load_judges(mnist, cache=tmp_path)
    assert len(judges) == 2 and all(j.test_accuracy > 0.96 for j in judges)
    means = np.stack([mnist.train_x[mnist.train_y == c].mean(axis=0) for c in range(10)])
    for r in Q.transfer([j.predict_proba for j in judges], means, np.arange(10)):
        assert r["hits"] == 10 and r["probability"] > 0.9
    noise = np.random.default_rng(0).random((10, 784))
    for r in Q.transfer([j.predict_proba for j in judges], noise, np.arange(10)):
        assert r["hits"] <= 3
    again = load_judges(mnist, cache=tmp_path)  # from the cache, the same judges
    np.testing.assert_array_equal(again[0].predict_proba(means), judges[0].predict_proba(means))
