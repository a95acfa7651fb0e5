"""The visualiser's parts: every gradient against float64 central differences,
the whole chain against PyTorch autograd, and the parts' behaviour end to end."""

import numpy as np
import pytest

import neuronatlas as na
from neuronatlas import MLP, ConfigError, VisConfig, layer1_optimum, visualize
from neuronatlas.vis import regularizers as R
from neuronatlas.vis.params import FourierParam, MacoParam, mean_magnitude
from neuronatlas.vis.transforms import Resample, translate, translate_backward
from neuronatlas.vis.visualize import _part_starts

from .helpers import assert_grad_close, numeric_grad

SHAPES = [(28, 28, 1), (7, 6, 1), (5, 7, 3)]  # even and odd sides, colour


def _param_grad_check(param, shape, seed):
    """d <g, image(p)> / dp by central differences against param.backward(g)."""
    g = np.random.default_rng(seed).standard_normal(param.image().shape)
    num = numeric_grad(lambda: float((param.image() * g).sum()), param.p, eps=1e-6)
    assert_grad_close(param.backward(g), num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("decay", [0.0, 1.0, 2.5])
def test_fourier_image_and_its_gradient(shape, decay):
    rng = np.random.default_rng(0)
    x0 = rng.random((2, int(np.prod(shape))))
    p = FourierParam(x0, shape, decay)
    np.testing.assert_allclose(p.image(), x0, atol=1e-12)  # starts at the given images
    _param_grad_check(p, shape, 1)


@pytest.mark.parametrize("shape", SHAPES)
def test_maco_image_keeps_its_magnitude_and_its_phase_gradient(shape):
    rng = np.random.default_rng(2)
    d = int(np.prod(shape))
    mag = mean_magnitude(rng.random((50, d)), shape)
    phases = rng.uniform(-np.pi, np.pi, (2, shape[0], shape[1] // 2 + 1, shape[2]))
    p = MacoParam(rng.random((2, d)), shape, mag, phases)
    spec = np.abs(np.fft.rfft2(p.image().reshape(2, *shape), axes=(1, 2), norm="ortho"))
    # every coefficient keeps the data's magnitude (bar the self-mirrored ones, whose
    # imaginary part a real image cannot hold)
    assert np.median(np.abs(spec - mag)) < 1e-9
    _param_grad_check(p, shape, 3)
    with pytest.raises(ConfigError, match="magnitude"):
        MacoParam(rng.random((1, d)), shape, mag[:-1], phases[:1])


@pytest.mark.parametrize("shape", [(28, 28, 1), (6, 5, 3)])
def test_resample_backward_is_the_adjoint_and_identity_is_exact(shape):
    rng = np.random.default_rng(4)
    d = int(np.prod(shape))
    x, g = rng.random((5, d)), rng.standard_normal((5, d))
    t = Resample(rng.uniform(0.9, 1.1, 5), rng.uniform(-15, 15, 5), shape)
    assert (t.forward(x) * g).sum() == pytest.approx((x * t.backward(g)).sum(), rel=1e-12)
    num = numeric_grad(lambda: float((t.forward(x) * g).sum()), x, indices=range(0, 5 * d, 7))
    assert_grad_close(t.backward(g).ravel()[::7], num.ravel()[::7], atol=1e-8)
    np.testing.assert_array_equal(Resample(np.ones(5), np.zeros(5), shape).forward(x), x)


def test_resample_rotates_a_quarter_turn_exactly():
    img = np.zeros((1, 7, 7, 1))
    img[0, 1, 3] = 1.0  # above the centre
    out = Resample(np.ones(1), np.full(1, 90.0), (7, 7, 1)).forward(img.reshape(1, -1))
    out = out.reshape(7, 7)
    assert out.sum() == pytest.approx(1.0) and out.max() == pytest.approx(1.0)
    assert abs(np.argwhere(out > 0.5)[0] - [3, 3]).sum() == 2  # still 2 pixels from centre


def test_jitter_of_k_pixels_is_adjoint():
    rng = np.random.default_rng(5)
    x, g = rng.random((6, 784)), rng.random((6, 784))
    shifts = rng.integers(-4, 5, (6, 2))
    assert (translate(x, shifts) * g).sum() == pytest.approx(
        (x * translate_backward(g, shifts)).sum(), rel=1e-12)


@pytest.mark.parametrize("beta", [1.0, 1.3, 1.5, 2.0])
def test_tv_beta_gradient(beta):
    u = np.random.default_rng(6).random((3, 784))
    num = numeric_grad(lambda: float(R.tv_value(u, beta=beta).sum()), u, eps=1e-6)
    assert_grad_close(R.tv_grad(u, beta=beta), num, rtol=1e-5, atol=1e-6)


def test_tv_beta_one_is_the_papers():
    u = np.random.default_rng(7).random((2, 784))
    np.testing.assert_array_equal(R.tv_grad(u, beta=1.0), R.tv_grad(u))


def test_l2_tie_and_diversity_gradients():
    rng = np.random.default_rng(8)
    u, start = rng.random((6, 50)), rng.random((6, 50))
    assert_grad_close(R.l2_grad(u), numeric_grad(lambda: float(R.l2_value(u).sum()), u))
    assert_grad_close(R.tie_grad(u, start),
                      numeric_grad(lambda: float(R.tie_value(u, start).sum()), u))
    for k in (2, 3):
        num = numeric_grad(lambda k=k: float(R.diversity_value(u, k).sum()), u, eps=1e-6)
        assert_grad_close(R.diversity_grad(u, k), num, rtol=1e-6, atol=1e-9)
    same = np.repeat(u[:1], 3, axis=0)
    np.testing.assert_allclose(R.diversity_value(same, 3), 1.0)


def test_blur_is_symmetric_keeps_mass_inside_and_fades_at_the_border():
    rng = np.random.default_rng(9)
    x, g = rng.random((2, 784)), rng.random((2, 784))
    # zero padding makes the blur a symmetric operator: its gradient is itself
    num = numeric_grad(lambda: float((R.blur(x, 0.8) * g).sum()), x, indices=range(0, 1568, 13))
    np.testing.assert_allclose(num.ravel()[::13], R.blur(g, 0.8).ravel()[::13], rtol=1e-6)
    centre = np.zeros((1, 784))
    centre[0, 14 * 28 + 14] = 1
    assert R.blur(centre, 1.0).sum() == pytest.approx(1.0)
    corner = np.zeros((1, 784))
    corner[0, 0] = 1
    assert R.blur(corner, 1.0).sum() < 0.5


def _torch_mlp(torch, m):
    layers = []
    for l, (W, b) in enumerate(zip(m.weights, m.biases), start=1):
        lin = torch.nn.Linear(W.shape[1], W.shape[0]).double()
        lin.weight.data = torch.from_numpy(W.astype(np.float64))
        lin.bias.data = torch.from_numpy(b.astype(np.float64))
        layers += [lin] + ([torch.nn.ReLU()] if l < m.n_layers else [])
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize("param,extra", [("pixel", {"jitter_px": 2}),
                                         ("fourier", {"jitter_px": 1, "decay": 1.5}),
                                         ("maco", {})])
def test_one_step_equals_pytorch_autograd_through_the_whole_chain(torch, param, extra):
    """x1 = image(p0 + lr * d z_t(shift(clip(image(p)))) / dp) in float64, both ways."""
    m = MLP.init((784, 20, 12, 10), rng=np.random.default_rng(10), dtype=np.float64)
    target = (2, 5)
    cfg = VisConfig(steps=1, lr=1e-3, tv=0, l1=0, objective="pre", init="random",
                    param=param, **extra)
    shape = m.input_shape
    mag = mean_magnitude(np.random.default_rng(11).random((40, 784)), shape)
    x0 = np.random.default_rng([0, *target]).random((1, 784))
    starts, draws = _part_starts(cfg, [target], x0, shape)
    ours = visualize(m, [target], cfg, magnitude=mag).images[0]
    if param == "pixel":
        p0 = starts
    elif param == "fourier":
        p0 = FourierParam(starts, shape, cfg.decay).p
    else:
        p0 = MacoParam(starts, shape, mag, draws.phases).p
    net = _torch_mlp(torch, m)
    p = torch.tensor(p0, requires_grad=True)

    def image(p):
        if param == "pixel":
            return p.reshape(1, 28, 28)
        f = FourierParam(starts, shape, cfg.decay)
        if param == "fourier":
            c = torch.complex(p[:, 0, ..., 0], p[:, 1, ..., 0]) * torch.from_numpy(
                f.scale[..., 0].astype(np.float64))
        else:
            c = torch.from_numpy(mag[..., 0]) * torch.exp(1j * p[..., 0])
        return torch.fft.irfft2(c, s=(28, 28), norm="ortho")

    x = torch.clamp(image(p), 0, 1)
    if draws.shifts is not None:  # out[a, b] = x[a - dy, b - dx], zero filled
        dy, dx = (int(v) for v in draws.shifts[0, 0])
        pad = torch.nn.functional.pad(x, (2, 2, 2, 2))
        x = pad[:, 2 - dy:2 - dy + 28, 2 - dx:2 - dx + 28]
    z = net[:3](x.reshape(1, 784))[0, target[1]]
    z.backward()
    with torch.no_grad():
        expected = image(p + cfg.lr * p.grad).reshape(-1).numpy()
    np.testing.assert_allclose(ours, np.clip(expected, 0, 1), rtol=1e-9, atol=1e-12)


PART_CONFIGS = {
    "adam-pixel": VisConfig(steps=300, lr=0.05, tv=0, l1=0, optimizer="adam", objective="pre"),
    "adam-projected": VisConfig(steps=300, lr=0.05, tv=0, l1=0, optimizer="adam",
                                objective="pre", project=True),
    "adam-normalised-jitter": VisConfig(steps=300, lr=0.05, tv=0, l1=0, optimizer="adam",
                                        objective="pre", normalize=True),
}


@pytest.mark.parametrize("name", list(PART_CONFIGS))
def test_every_new_optimiser_reaches_the_layer1_closed_form(name):
    # (the Fourier and MACO parametrisations stop near 93%: a coefficient step moves every
    # pixel, and one pushed past the wrong bound loses its gradient to the clip
    # derivative for good; the regularisers, which bypass it, are what free it)
    m = MLP.init((784, 24, 10), rng=np.random.default_rng(2), activation="relu")
    best = layer1_optimum(m)
    res = visualize(m, [(1, i) for i in range(24)], PART_CONFIGS[name])
    z = m.activations(res.images, pre=True)[1].diagonal()
    assert best.reached(z).min() >= 0.99, best.reached(z).min()


@pytest.fixture(scope="module")
def small():
    m = MLP.init((784, 40, 30, 20, 10), rng=np.random.default_rng(0))
    for b in m.biases:
        b[:] = 0.01
    return m


PROTOTYPES = np.random.default_rng(5).random((40, 784)).astype(np.float32)  # readable's starts
BATCH_CONFIGS = {
    "readable": VisConfig.preset("readable", steps=12),
    "diverse": VisConfig.preset("diverse", steps=12),
    "fourier-scale-rotate": VisConfig(steps=12, optimizer="adam", param="fourier",
                                      jitter_px=2, zoom=0.1, rotate=10, init="random"),
    "maco": VisConfig(steps=12, optimizer="adam", param="maco", jitter_px=1),
    "accentuate": VisConfig.preset("accentuate", steps=12, init="random"),
}


@pytest.mark.parametrize("name", list(BATCH_CONFIGS))
def test_batched_equals_one_at_a_time_for_every_method(small, name):
    cfg = BATCH_CONFIGS[name]
    mag = mean_magnitude(np.random.default_rng(1).random((30, 784)), (28, 28, 1))
    targets = [(4, 2), (1, 7), (3, 0), (2, 9), (4, 5), (1, 0)]
    batched = visualize(small, targets, cfg, magnitude=mag, prototypes=PROTOTYPES)
    for i, t in enumerate(targets):
        alone = visualize(small, [t], cfg, magnitude=mag, prototypes=PROTOTYPES)
        np.testing.assert_allclose(batched.images[i], alone.images[0], atol=1e-5)
        if cfg.diversity > 1:
            np.testing.assert_allclose(batched.diverse_images[i], alone.diverse_images[0],
                                       atol=1e-5)


def test_diversity_gives_k_different_images_and_leads_with_the_best(small):
    cfg = VisConfig.preset("diverse", steps=40, init="zero")  # parting from one start
    res = visualize(small, [(3, 1), (2, 4)], cfg)
    assert res.diverse_images.shape == (2, 4, 784)
    for t in range(2):
        best = int(np.argmax(res.diverse_activation[t]))
        np.testing.assert_array_equal(res.images[t], res.diverse_images[t, best])
        corr = np.corrcoef(res.diverse_images[t])[np.triu_indices(4, 1)]
        assert corr.max() < 0.999
    # with the penalty the images part further than without
    apart = visualize(small, [(3, 1)], cfg.replace(diversity_weight=3.0)).diverse_images[0]
    close = visualize(small, [(3, 1)], cfg.replace(diversity_weight=0.0)).diverse_images[0]
    assert R.diversity_value(apart, 4).mean() < R.diversity_value(close, 4).mean()


def test_accentuation_stays_near_its_start_image(small):
    start = np.random.default_rng(3).random(784).astype(np.float32)
    free = visualize(small, [(3, 1)], VisConfig.preset("accentuate", tie=0.0),
                     init_image=start)
    tied = visualize(small, [(3, 1)], VisConfig.preset("accentuate", tie=5.0),
                     init_image=start)
    assert np.abs(tied.images[0] - start).mean() < np.abs(free.images[0] - start).mean()


def test_the_paper_preset_is_vis_configs_defaults():
    assert VisConfig.preset("paper") == VisConfig()
    assert VisConfig().is_paper_method and VisConfig(revive=True, jitter=True).is_paper_method
    assert not VisConfig.preset("readable").is_paper_method
    assert VisConfig.preset("readable", steps=7).steps == 7


@pytest.mark.parametrize("changes,match", [
    ({"param": "wavelet"}, "param"), ({"decay": 3.5}, "decay"), ({"decay": float("nan")},
                                                                  "decay"),
    ({"tv_beta": 0.5}, "tv_beta"), ({"tv_beta": 2.5}, "tv_beta"), ({"diversity": 0},
                                                                  "diversity"),
    ({"diversity": 17}, "diversity"), ({"jitter_px": 17}, "jitter_px"),
    ({"zoom": 0.9}, "zoom"), ({"rotate": float("inf")}, "rotate"),
    ({"optimizer": "sgd9"}, "optimizer"), ({"l2": -1}, "l2"), ({"tie": float("nan")}, "tie"),
    ({"blur_every": -1}, "blur_every"), ({"blur_sigma": 0}, "blur_sigma"),
    ({"normalize": "yes"}, "normalize"), ({"jitter": True, "jitter_px": 2}, "jitter_px"),
    ({"param": "maco", "blur_every": 2}, "blur_every"),
    ({"param": "fourier", "project": True}, "project"),
    ({"diversity_weight": 1.0}, "diversity"),
])
def test_bad_part_settings_are_config_errors_naming_the_field(changes, match):
    with pytest.raises(ConfigError, match=match):
        VisConfig(**changes)


def test_unknown_preset_and_a_jitter_off_the_canvas(small):
    with pytest.raises(ConfigError, match="unknown preset 'pretty'.*paper, readable"):
        VisConfig.preset("pretty")
    tiny = MLP.init((16, 4, 3), rng=np.random.default_rng(0), input_shape=(4, 4, 1))
    with pytest.raises(ConfigError, match="off its canvas"):
        visualize(tiny, [(1, 0)], VisConfig(jitter_px=4))


def test_readable_runs_on_other_activations_and_colour_inputs():
    m = MLP.init((3 * 8 * 6, 10, 4), rng=np.random.default_rng(1), activation="gelu",
                 input_shape=(8, 6, 3))
    res = visualize(m, [(1, i) for i in range(10)] + [(2, 0)],
                    VisConfig.preset("readable", steps=30),
                    prototypes=np.random.default_rng(2).random((12, 144)))
    assert res.images.shape == (11, 144) and np.isfinite(res.activation).all()
    assert na.VisConfig.preset("readable").objective == "auto"


def test_an_unknown_objective_term_is_an_error_not_a_log_probability(small):
    from neuronatlas.vis.objectives import Objective, Term

    bogus = Objective((Term("entropy", 4, 1),))
    with pytest.raises(ConfigError, match="unknown objective term 'entropy'"):
        visualize(small, [bogus], VisConfig(steps=1))


def test_select_targets_is_the_clis_policy_in_the_library():
    from neuronatlas.vis.objectives import select_targets

    sizes = (784, 3, 2, 10)
    assert select_targets(sizes, ["2:1"], layers=[1]) == [(2, 1), (1, 0), (1, 1), (1, 2)]
    assert len(select_targets(sizes, every=True)) == 15
    assert select_targets(sizes, ["1:0", "1:0"]) == [(1, 0)]
    for bad, match in [((), "name targets"), (["4:0"], "layer 4 does not exist"),
                       (["1:3"], "neuron 3 does not exist")]:
        with pytest.raises(ConfigError, match=match):
            select_targets(sizes, bad)
