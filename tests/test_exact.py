"""The closed-form maximum of layer 1, and every optimiser measured against it."""

import itertools

import numpy as np
import pytest

from neuronatlas import MLP, ConfigError, VisConfig, layer1_optimum, visualize


def test_the_closed_form_is_the_maximum_over_every_corner_of_the_box():
    m = MLP.init((6, 5, 3), rng=np.random.default_rng(0), activation="tanh")
    m.biases[0][:] = np.random.default_rng(1).standard_normal(5)
    best = layer1_optimum(m)
    corners = np.array(list(itertools.product([0.0, 1.0], repeat=6)))  # (64, 6)
    z = m.activations(corners, pre=True)[1]  # (64, 5): linear, so a corner is optimal
    np.testing.assert_allclose(best.z_max, z.max(axis=0), rtol=1e-6)
    np.testing.assert_allclose(best.z_min, z.min(axis=0), rtol=1e-6)
    np.testing.assert_allclose(m.activations(best.images, pre=True)[1].diagonal(), best.z_max,
                               rtol=1e-6)
    np.testing.assert_allclose(best.activation, np.tanh(best.z_max))
    with pytest.raises(ConfigError, match="output layer"):
        layer1_optimum(MLP.init((6, 3), rng=np.random.default_rng(0)))


@pytest.mark.parametrize("config", [
    VisConfig(steps=300, lr=2.0, tv=0, l1=0, objective="pre"),  # the paper's clip derivative
    VisConfig(steps=300, lr=2.0, tv=0, l1=0, objective="pre", project=True),
    VisConfig(steps=300, lr=2.0, tv=0, l1=0, revive=True, init="random"),
], ids=["clip-derivative", "projected", "revive-random"])
def test_every_optimiser_reaches_the_closed_form(config):
    m = MLP.init((784, 24, 10), rng=np.random.default_rng(2), activation="relu")
    best = layer1_optimum(m)
    res = visualize(m, [(1, i) for i in range(24)], config)
    z = m.activations(res.images, pre=True)[1].diagonal()
    assert best.reached(z).min() >= 0.99, best.reached(z).min()
