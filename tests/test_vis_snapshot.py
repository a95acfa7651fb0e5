"""``visualize(..., snapshot=)``: each step's images, for live displays."""

from __future__ import annotations

import numpy as np
import pytest

import neuronatlas as na


@pytest.mark.parametrize("jitter", [False, True])
def test_snapshots_are_the_images_whose_activations_the_callback_sees(jitter):
    model = na.MLP.init((784, 32, 16, 10), rng=np.random.default_rng(0))
    config = na.VisConfig(steps=6, init="random", lr=0.5, jitter=jitter)
    targets = [(3, 2), (1, 5), (2, 0)]
    seen, shots = [], []
    res = na.visualize(model, targets, config, callback=lambda s, a: seen.append(a.copy()),
                       snapshot=lambda s, x: shots.append((s, x.copy())))
    plain = na.visualize(model, targets, config)
    np.testing.assert_array_equal(res.images, plain.images)  # watching changes nothing
    assert [s for s, _ in shots] == list(range(6))
    start = np.stack([np.random.default_rng([0, *t]).random(784) for t in targets])
    np.testing.assert_allclose(shots[0][1], np.clip(start, 0, 1), rtol=1e-6)
    if not jitter:  # (jitter shifts the network input, not the image)
        for (_, images), acts in zip(shots, seen):
            a = model.activations(images)
            expected = [a[l][i, n] for i, (l, n) in enumerate(targets)]
            np.testing.assert_allclose(acts, expected, rtol=1e-5, atol=1e-6)
