"""The visualiser end to end: ascent works, the clip bypass, jitter, batching, adversarial."""

import numpy as np
import pytest

import neuronatlas as na
from neuronatlas import MLP, VisConfig, visualize
from neuronatlas.vis.adversarial import adversarial_config
from neuronatlas.vis.query import query

SIZES = (784, 40, 30, 20, 10)


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    m = MLP.init(SIZES, rng=rng)
    for b in m.biases:
        b[:] = 0.01
    return m


@pytest.mark.parametrize("target", [(2, 5), (4, 3)])
def test_ascent_raises_the_target_activation(model, target):
    seen = []
    res = visualize(model, [target], VisConfig(steps=40, lr=0.2, tv=0.0, l1=0.0),
                    callback=lambda step, acts: seen.append(float(acts[0])))
    assert len(seen) == 40 and res.activation[0] > seen[0] + 1e-3
    assert res.activation[0] == pytest.approx(seen[-1], rel=0.05)
    assert res.images.min() >= 0 and res.images.max() <= 1  # returned image is clipped
    q = query(model, res.images[0], target)
    assert q.activation == pytest.approx(res.activation[0], rel=1e-5)
    assert q.next_activation == pytest.approx(res.next_activation[0], rel=1e-5)


def test_output_target_reaches_high_probability(model):
    res = visualize(model, [(4, 7)], VisConfig(steps=100, lr=1.0, tv=0.0, l1=0.0))
    assert res.activation[0] > 0.9 and res.top3_classes[0, 0] == 7
    assert res.ratio[0] > 10


def test_regularisers_bypassing_the_clip_bring_a_pixel_back_inside():
    """A pixel beyond a bound returns inside only with the bypass on ("Visualiser")."""
    m = MLP.init((784, 3, 2), rng=np.random.default_rng(1))
    m.weights[0][:] = 0  # the objective's gradient is 0: only the regularisers act
    start = np.full(784, 0.5, np.float32)
    start[100] = -0.3  # beyond the lower bound
    from neuronatlas.vis.objectives import neuron
    from neuronatlas.vis.render import render

    for through, expect_inside in ((False, True), (True, False)):
        cfg = VisConfig(steps=20, lr=0.05, tv=0.1, l1=0.01, reg_through_clip=through)
        raw = render(m, [neuron(1, 0).bind(m.sizes)], cfg, start[None])
        assert bool(raw[0, 100] > 0) is expect_inside, (through, raw[0, 100])


def test_without_clip_pixels_may_leave_the_range(model):
    res = visualize(model, [(4, 1)], VisConfig(steps=50, lr=5.0, tv=0.0, l1=0.0, clip=False))
    assert res.images.min() < 0 or res.images.max() > 1


def test_jitter_and_random_start_are_deterministic_per_seed(model):
    cfg = VisConfig(steps=15, init="random", jitter=True, seed=3)
    a = visualize(model, [(2, 1), (3, 4)], cfg)
    b = visualize(model, [(2, 1), (3, 4)], cfg)
    c = visualize(model, [(2, 1), (3, 4)], cfg.replace(seed=4))
    assert a.images.tobytes() == b.images.tobytes()
    assert not np.array_equal(a.images, c.images)


@pytest.mark.parametrize("cfg", [VisConfig(steps=20), VisConfig(steps=20, init="random",
                                                                jitter=True, penalty=0.3)])
def test_batched_equals_one_at_a_time(model, cfg):
    targets = [(4, 2), (1, 7), (3, 0), (2, 9), (4, 5), (1, 0)]
    batched = visualize(model, targets, cfg)
    for i, t in enumerate(targets):
        alone = visualize(model, [t], cfg)
        np.testing.assert_allclose(batched.images[i], alone.images[0], atol=1e-5)
        assert batched.activation[i] == pytest.approx(alone.activation[0], rel=1e-4, abs=1e-6)


def test_composed_objective_equals_the_penalty_config(model):
    cfg = VisConfig(steps=10, penalty=0.5)
    a = visualize(model, [(3, 2)], cfg)
    b = visualize(model, [na.neuron(3, 2) - 0.5 * na.others(3, exclude=2)], cfg)
    np.testing.assert_array_equal(a.images, b.images)


@pytest.mark.parametrize("target,match", [((0, 1), "layer 0 does not exist"),
                                          ((5, 0), "layer 5 does not exist"),
                                          ((1, 40), "neuron 40 does not exist in layer 1")])
def test_targets_out_of_range(model, target, match):
    with pytest.raises(na.ConfigError, match=match):
        visualize(model, [target], VisConfig(steps=1))


@pytest.mark.parametrize("field,value", [("steps", 0), ("lr", float("nan")), ("tv", -0.1),
                                          ("l1", float("inf")), ("penalty", -1),
                                          ("objective", "max"), ("init", "mnist:x")])
def test_bad_vis_config(field, value):
    with pytest.raises(na.ConfigError, match=field):
        VisConfig(**{field: value})


@pytest.mark.slow
def test_adversarial_reaches_99_percent_with_a_small_change_on_the_quick_model(quick_run, mnist):
    m = MLP.load(quick_run / "model.safetensors")
    changes = []
    for index in range(5):  # five test digits pushed to (label + 1) mod 10
        image = mnist.test_x[index]
        original = int(m.predict(image[None])[0])
        target = (original + 1) % 10
        res = na.adversarial(m, image, target)  # the default: small normalised steps
        assert res.original_top[0] == original
        assert res.new_top[0] == target and res.target_prob > 0.99
        assert res.steps_to_confidence is not None and res.linf <= 1.0
        assert res.image.min() >= 0 and res.image.max() <= 1
        changes.append(res.mean_abs)
        if index == 0:
            fast = na.adversarial(m, image, target, adversarial_config("fast"))
            assert fast.target_prob > 0.99 and fast.mean_abs > 1.5 * res.mean_abs
    # a change a person barely sees (fixed steps of 0.5 changed 0.09-0.13 per pixel here)
    assert np.mean(changes) < 0.05 and max(changes) < 0.08, changes


def test_an_unknown_adversarial_method_is_a_config_error():
    with pytest.raises(na.ConfigError, match="unknown adversarial method 'tiny'"):
        adversarial_config("tiny")
    assert adversarial_config("paper").objective == "activation"


@pytest.mark.slow
def test_the_papers_probability_objective_stalls_from_a_real_digit(quick_run, mnist):
    m = MLP.load(quick_run / "model.safetensors")
    target = (int(mnist.test_y[0]) + 1) % 10
    res = na.adversarial(m, mnist.test_x[0], target,
                         VisConfig(objective="activation", lr=0.5, steps=100, tv=0, l1=0))
    assert res.target_prob < 0.5 and res.steps_to_confidence is None


def test_revive_climbs_a_neuron_the_start_image_leaves_inactive():
    m = MLP.init((784, 3, 10), rng=np.random.default_rng(0))
    m.weights[0][0] = 0
    m.weights[0][0, 300:310] = 1.0  # z = sum of 10 pixels - 0.5: -0.4 at the 0.01 start
    m.biases[0][0] = -0.5
    cfg = VisConfig(steps=30, lr=0.1, tv=0.0, l1=0.0)
    assert visualize(m, [(1, 0)], cfg).activation[0] == 0  # the paper's optimiser stalls
    revived = visualize(m, [(1, 0)], cfg.replace(revive=True))
    assert revived.activation[0] > 5
    # once active, climbing z and climbing ReLU(z) are the same thing
    m.biases[0][0] = 0.5
    a = visualize(m, [(1, 0)], cfg)
    b = visualize(m, [(1, 0)], cfg.replace(revive=True))
    np.testing.assert_array_equal(a.images, b.images)


def test_a_start_image_given_is_used_and_a_bad_init_is_an_error(model, tmp_path):
    """init_image is the start (one for all targets, or one per target); it cannot be
    combined with a random start, and an init that is neither a name nor a file is refused."""
    cfg = VisConfig(steps=1, lr=1e-12, tv=0.0, l1=0.0)  # one negligible step: images ~ starts
    img = np.random.default_rng(5).random(784).astype(np.float32)
    one = visualize(model, [(2, 1), (3, 2)], cfg, init_image=img)
    np.testing.assert_allclose(one.images, np.stack([img, img]), atol=1e-6)
    per = np.random.default_rng(6).random((2, 784)).astype(np.float32)
    np.testing.assert_allclose(visualize(model, [(2, 1), (3, 2)], cfg, init_image=per).images,
                               per, atol=1e-6)
    with pytest.raises(na.ConfigError, match="init 'random' and a start image"):
        visualize(model, [(2, 1)], cfg.replace(init="random"), init_image=img)
    with pytest.raises(na.ConfigError, match="neither one image"):
        visualize(model, [(2, 1)], cfg, init_image=np.zeros(100))
    with pytest.raises(na.ConfigError, match="custom"):
        visualize(model, [(2, 1)], cfg.replace(init="custom"), init_image=img)
    with pytest.raises(na.ConfigError, match="init 'image' needs the image"):
        visualize(model, [(2, 1)], cfg.replace(init="image"))


def test_results_show_themselves_and_grid_draws_any_images(model):
    res = visualize(model, [(2, 1), (4, 3)], VisConfig(steps=5))
    html = res._repr_html_()
    assert html.count("<img") == 2 and "2:1" in html and "ratio" in html
    q = query(model, res.images[0], (2, 1))
    assert q._repr_html_().count("<img") == 1 and "2:1" in q._repr_html_()
    fig = na.grid(res.images, model.input_shape, titles=["a", "b"], cols=4)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 2 and shown[0].get_title() == "a"


def test_an_optimisation_that_goes_non_finite_is_an_error_not_numbers(model):
    with pytest.raises(na.VisualizationDivergedError, match="smaller learning rate"):
        visualize(model, [(2, 1)], VisConfig(steps=3, lr=1e308, tv=0.0, l1=0.0))
