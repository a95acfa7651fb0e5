"""Every activation: its derivative against float64 central differences and PyTorch, and
networks built from it computed (forward, backward, training step, visualiser gradient)
exactly as PyTorch computes them."""

import numpy as np
import pytest

from neuronatlas import MLP, ConfigError, ModelFileError
from neuronatlas.nn.activations import KINDS, Activation, parse_activations
from neuronatlas.nn.backprop import Backprop
from neuronatlas.nn.sgd_step import SGDStep
from neuronatlas.vis.objectives import neuron

from .helpers import assert_grad_close, numeric_grad

SPECS = ["relu", "leaky_relu", "leaky_relu:0.2", "elu", "elu:0.5", "gelu", "gelu_tanh", "silu",
         "softplus", "softplus:2", "tanh", "sigmoid", "identity"]


def _z(seed=0, n=(6, 9)):
    z = 3 * np.random.default_rng(seed).standard_normal(n)
    z[np.abs(z) < 1e-3] = 0.5  # away from the kinks of ReLU, LeakyReLU and ELU
    return z


@pytest.mark.parametrize("spec", SPECS)
def test_derivative_matches_central_differences(spec):
    act = Activation.parse(spec)
    z = _z()
    g = np.random.default_rng(1).standard_normal(z.shape)
    num = numeric_grad(lambda: float((g * act.forward(z)).sum()), z)
    assert_grad_close(act.backward(g, z, act.forward(z)), num, rtol=1e-6, atol=1e-8)


def torch_module(torch, act: Activation):
    """The PyTorch module of ``act`` (the importer's own mapping, checked here)."""
    from neuronatlas.importers.pytorch import torch_activation

    return torch_activation(act)


@pytest.mark.torch
@pytest.mark.parametrize("spec", SPECS)
def test_forward_and_derivative_match_pytorch(torch, spec):
    act = Activation.parse(spec)
    z = np.concatenate([_z(2).ravel(), [-30.0, -8.0, 8.0, 25.0]])  # and the far tails
    t = torch.from_numpy(z).requires_grad_()
    y = torch_module(torch, act)(t)
    y.sum().backward()
    np.testing.assert_allclose(act.forward(z), y.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(act.derivative(z, act.forward(z)), t.grad.numpy(), rtol=1e-10,
                               atol=1e-14)
    # float32 (the fast forms: GELU's rational erf, SiLU's sigmoid from exp) within a few
    # float32 ulps of PyTorch's float32
    z32 = z.astype(np.float32)
    t32 = torch.from_numpy(z32).requires_grad_()
    y32 = torch_module(torch, act)(t32)
    y32.sum().backward()
    a32, d32 = act.forward_and_derivative(z32)
    assert a32.dtype == d32.dtype == np.float32
    np.testing.assert_allclose(a32, y32.detach().numpy(), rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(d32, t32.grad.numpy(), rtol=2e-6, atol=2e-6)
    np.testing.assert_array_equal(a32, act.forward(z32))  # the fused form equals the two apart
    np.testing.assert_array_equal(d32, act.derivative(z32, a32))


def test_floor_is_f_of_zero_and_specs_round_trip():
    assert Activation("relu").floor == 0.0 and Activation("sigmoid").floor == 0.5
    assert Activation.parse("softplus:2").floor == pytest.approx(np.log(2) / 2)
    for spec in SPECS:
        act = Activation.parse(spec)
        assert Activation.parse(act.spec) == act
        assert act.forward(np.array([-1.0]))[0] <= act.floor < act.forward(np.array([1.0]))[0]
    assert Activation.parse("leaky_relu").param == 0.01 and set(KINDS) >= {"gelu", "tanh"}


@pytest.mark.parametrize(("spec", "message"), [
    ("mish", "unsupported activation 'mish'"), ("relu:2", "takes no parameter"),
    ("elu:-1", "must be positive"), ("leaky_relu:x", "is not a number"),
    ("softplus:nan", "finite number"),
])
def test_bad_activation_specs_are_named(spec, message):
    with pytest.raises(ConfigError, match=message):
        Activation.parse(spec)


def test_one_per_layer_or_one_for_all():
    assert parse_activations("tanh", 3) == (Activation("tanh"),) * 3
    acts = parse_activations("relu,gelu,leaky_relu:0.1", 3)
    assert [a.spec for a in acts] == ["relu", "gelu", "leaky_relu:0.1"]
    with pytest.raises(ConfigError, match="2 activations given for 3 hidden layers"):
        parse_activations("relu,gelu", 3)


# --- networks --------------------------------------------------------------------------
SIZES = (784, 24, 16, 12, 10)


def torch_net(torch, model: MLP):
    layers = []
    dtype = torch.from_numpy(model.weights[0]).dtype
    for l, (W, b) in enumerate(zip(model.weights, model.biases), start=1):
        lin = torch.nn.Linear(W.shape[1], W.shape[0], bias=model.has_bias[l - 1], dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            if model.has_bias[l - 1]:
                lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if l < model.n_layers:
            layers.append(torch_module(torch, model.activation(l)))
    return torch.nn.Sequential(*layers)


def _model(spec, dtype=np.float64, bias=True, seed=0):
    m = MLP.init(SIZES, rng=np.random.default_rng(seed), dtype=dtype, activation=spec, bias=bias)
    for b, has in zip(m.biases, m.has_bias):
        if has:
            b[:] = 0.1 * np.random.default_rng(seed + 1).standard_normal(b.shape)
    return m


@pytest.mark.torch
@pytest.mark.parametrize("spec", SPECS)
def test_every_layer_and_a_hidden_neurons_input_gradient_match_pytorch(torch, spec):
    m = _model(spec)
    net = torch_net(torch, m)
    x = np.random.default_rng(2).random((5, 784))
    acts = m.activations(x)
    h = torch.from_numpy(x)
    for l, module in enumerate(net, start=0):
        h = module(h)
        if isinstance(module, torch.nn.Linear) and l // 2 + 1 == m.n_layers:
            np.testing.assert_allclose(np.log(acts[m.n_layers]),
                                       torch.log_softmax(h, 1).detach().numpy(), atol=1e-10)
        elif not isinstance(module, torch.nn.Linear):
            np.testing.assert_allclose(acts[l // 2 + 1], h.detach().numpy(), rtol=1e-10,
                                       atol=1e-12)
    # d a_2[3] / d x through the visualiser's renderer and through autograd
    r = Backprop(m, [neuron(2, 3).bind(m.sizes)])
    r.forward(x[:1])
    g = r.backward()[0]
    t = torch.from_numpy(x[:1]).requires_grad_()
    net[:4](t)[0, 3].backward()
    np.testing.assert_allclose(g, t.grad.numpy()[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("spec", ["gelu", "tanh", "leaky_relu:0.2", "relu,sigmoid,elu"])
def test_fused_step_equals_the_reference_path(spec):
    for bias in (True, False):
        m = _model(spec, np.float64, bias=bias)
        ref = m.copy()
        rng = np.random.default_rng(3)
        x, y = rng.random((8, 784)), rng.integers(0, 10, 8)
        loss, dWs, dbs = ref.loss_and_grads(x, y)
        step = SGDStep(m, 8, 0.05)
        assert step(x, y) == pytest.approx(loss, rel=1e-12)
        for l in range(m.n_layers):
            np.testing.assert_allclose(m.weights[l], ref.weights[l] - 0.05 * dWs[l], atol=1e-12)
            expected = ref.biases[l] - 0.05 * dbs[l] if bias else np.zeros_like(ref.biases[l])
            np.testing.assert_allclose(m.biases[l], expected, atol=1e-12)


@pytest.mark.parametrize("spec", ["gelu", "tanh", "softplus"])
def test_renderer_gradient_of_every_layer_matches_central_differences(spec):
    m = _model(spec)
    x = np.random.default_rng(4).random((1, 784))
    for obj in (neuron(1, 2), neuron(3, 5), neuron(4, 7), neuron(2, 1, pre=True)):
        obj = obj.bind(m.sizes)
        r = Backprop(m, [obj])
        r.forward(x)
        g = r.backward()[0]

        def value(obj=obj):
            t = obj.terms[0]
            return float(m.activations(x, pre=t.pre)[t.layer][0, t.index])

        num = numeric_grad(value, x, indices=range(0, 784, 37))
        assert_grad_close(g[None], num, rtol=1e-6, atol=1e-9)


@pytest.mark.torch
def test_bias_free_model_file_loads_into_torch(torch, tmp_path):
    from safetensors.numpy import load_file as np_load
    from safetensors.torch import load_file

    m = _model("gelu", np.float32, bias=False)
    m.save(tmp_path / "m.safetensors")
    assert not any(k.endswith(".bias") for k in np_load(tmp_path / "m.safetensors"))
    back = MLP.load(tmp_path / "m.safetensors")
    assert back.has_bias == (False,) * 4 and back.activation(2).name == "gelu"
    net = torch_net(torch, m)
    net.load_state_dict(load_file(tmp_path / "m.safetensors"))
    x = np.random.default_rng(5).random((3, 784), dtype=np.float32)
    np.testing.assert_allclose(back.forward(x), net(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_the_file_records_everything_and_a_stated_activation_must_agree(tmp_path):
    m = _model("leaky_relu:0.2", np.float32)
    m.class_names = tuple("abcdefghij")
    m.save(tmp_path / "m.safetensors")
    back = MLP.load(tmp_path / "m.safetensors")
    assert [a.spec for a in back.activation_fns] == ["leaky_relu:0.2"] * 3
    assert back.class_names == tuple("abcdefghij") and back.input_shape == (28, 28, 1)
    assert MLP.load(tmp_path / "m.safetensors", activation="leaky_relu:0.2").sizes == SIZES
    with pytest.raises(ModelFileError, match="records activations leaky_relu:0.2"):
        MLP.load(tmp_path / "m.safetensors", activation="relu")
    assert "leaky_relu:0.2" in repr(back) and len(repr(back).splitlines()) == 1


@pytest.mark.parametrize("single", [True, False])
def test_revive_climbs_z_while_it_is_low_then_the_activation(single):
    """For GELU, d f / dz points down where z < -0.75: reviving climbs z while z <= 0 and
    follows f once z > 0, in the single-row path and in the GEMM path alike."""
    from neuronatlas.vis.objectives import others

    m = _model("gelu")
    x = np.random.default_rng(6).random((1, 784))
    z2 = m.activations(x, pre=True)[2][0]
    low, high = int(np.argmin(z2)), int(np.argmax(z2))
    assert z2[low] < -0.75 < 0 < z2[high]
    for index, pre in ((low, True), (high, False)):
        obj = neuron(2, index, revive=True)
        if not single:
            obj = obj - 0.0 * others(2, exclude=index)  # same value, but not a single row
        r = Backprop(m, [obj.bind(m.sizes)])
        r.forward(x)
        g = r.backward()[0]
        num = numeric_grad(lambda i=index, p=pre: float(m.activations(x, pre=p)[2][0, i]), x,
                           indices=range(0, 784, 41))
        assert_grad_close(g[None], num, rtol=1e-6, atol=1e-9)


def test_revive_lifts_a_gelu_neuron_that_plain_ascent_drives_down():
    from neuronatlas import VisConfig, visualize

    m = _model("gelu", np.float32)
    i = 5
    m.biases[0][i] = -3.0  # deep in GELU's falling branch (below -0.75) at the start
    plain = visualize(m, [(1, i)], VisConfig(steps=60, lr=0.05, tv=0, l1=0))
    revived = visualize(m, [(1, i)], VisConfig(steps=60, lr=0.05, tv=0, l1=0, revive=True))
    assert plain.activation[0] < 0 < revived.activation[0]
    assert np.isnan(plain.ratio[0])  # no ratio of a negative activation


def test_parameters_round_trip_exactly_and_are_part_of_the_identity(tmp_path):
    from neuronatlas.nn.mlp import model_sha256

    a = MLP.init((16, 4, 2), rng=np.random.default_rng(0), activation="leaky_relu:0.123456789")
    b = MLP.init((16, 4, 2), rng=np.random.default_rng(0), activation="leaky_relu:0.1234574")
    a.save(tmp_path / "a.safetensors")
    assert MLP.load(tmp_path / "a.safetensors").activation(1).param == 0.123456789
    assert model_sha256(a) != model_sha256(b)
    with pytest.raises(ConfigError, match=r"must be in \[0, 1\)"):
        Activation.parse("leaky_relu:-0.2")  # a > f(0) must mean z > 0: "silent" depends on it


def test_a_model_without_hidden_layers_saves_and_loads(tmp_path):
    m = MLP.init((784, 10), rng=np.random.default_rng(0))
    m.save(tmp_path / "linear.safetensors")
    back = MLP.load(tmp_path / "linear.safetensors")
    assert back.sizes == (784, 10) and back.activation_fns == ()


def test_training_a_given_model_under_another_activation_is_refused():
    from neuronatlas import TrainConfig, train
    from neuronatlas.data import Dataset

    m = MLP.init((16, 4, 2), rng=np.random.default_rng(0), activation="tanh")
    x = np.random.default_rng(1).random((64, 16)).astype(np.float32)
    y = np.arange(64) % 2
    data = Dataset(x, y, x[:8], y[:8])
    with pytest.raises(ConfigError, match="activations"):
        train(data, TrainConfig(sizes=(16, 4, 2), epochs=1, fine_tune_epochs=0), model=m)


def test_every_name_has_its_own_maths_and_an_unknown_one_is_refused():
    """An unknown activation name computed the identity (the last branch of an if-chain),
    an unknown optimiser name plain ascent: each is now one registry entry, and anything
    else raises with the valid names."""
    from neuronatlas.config import VIS_OPTIMIZERS, VIS_PARAMS
    from neuronatlas.errors import ConfigError
    from neuronatlas.nn.activations import KINDS, REGISTRY
    from neuronatlas.vis.optimizers import OPTIMIZERS, make_optimizer
    from neuronatlas.vis.params import PARAMS, make_param

    assert set(KINDS) == set(REGISTRY) and set(OPTIMIZERS) == set(VIS_OPTIMIZERS)
    assert tuple(PARAMS) == VIS_PARAMS
    with pytest.raises(ConfigError, match="unknown parametrisation 'cppn'; one of pixel, "):
        make_param("cppn", np.zeros((1, 784)), (28, 28, 1))
    z = np.linspace(-3, 3, 7)
    outs = {name: REGISTRY[name].f(z, REGISTRY[name].default).tobytes() for name in REGISTRY}
    assert len(set(outs.values())) == len(outs)  # no two names share one function
    with pytest.raises(ConfigError, match="supported: relu, leaky_relu"):
        Activation("relu6")
    with pytest.raises(ConfigError, match="unknown optimizer 'sgd'; one of ascent, adam"):
        make_optimizer("sgd", np.zeros(3), 0.1)
