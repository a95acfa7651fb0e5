"""Cross-checks against PyTorch autograd and torch.nn.Sequential (docs/format.md)."""

import numpy as np
import pytest

from neuronatlas import MLP, PAPER_SIZES, ModelFileError
from neuronatlas.nn.sgd_step import SGDStep

pytestmark = pytest.mark.torch


def torch_sequential(torch, sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def test_loss_and_every_parameter_gradient_match_autograd(torch):
    rng = np.random.default_rng(0)
    m = MLP.init(PAPER_SIZES, rng=rng, dtype=np.float64)
    for b in m.biases:
        b[:] = 0.05 * rng.standard_normal(b.shape)
    x, y = rng.random((32, 784)), rng.integers(0, 10, 32)
    loss, dWs, dbs = m.loss_and_grads(x, y)

    net = torch_sequential(torch, PAPER_SIZES).double()
    with torch.no_grad():
        for i, (W, b) in enumerate(zip(m.weights, m.biases)):
            net[2 * i].weight.copy_(torch.from_numpy(W))
            net[2 * i].bias.copy_(torch.from_numpy(b))
    t_loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    for i, (dW, db) in enumerate(zip(dWs, dbs)):
        np.testing.assert_allclose(dW, net[2 * i].weight.grad.numpy(), rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(db, net[2 * i].bias.grad.numpy(), rtol=1e-9, atol=1e-13)


def test_fused_float32_step_matches_torch_sgd(torch):
    rng = np.random.default_rng(1)
    m = MLP.init(PAPER_SIZES, rng=rng)
    net = torch_sequential(torch, PAPER_SIZES)
    with torch.no_grad():
        for i, (W, b) in enumerate(zip(m.weights, m.biases)):
            net[2 * i].weight.copy_(torch.from_numpy(W))
            net[2 * i].bias.copy_(torch.from_numpy(b))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    step = SGDStep(m, 32, 0.01)
    for _ in range(5):
        x = rng.random((32, 784), dtype=np.float32)
        y = rng.integers(0, 10, 32)
        opt.zero_grad()
        t_loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
        t_loss.backward()
        opt.step()
        assert step(x, y) == pytest.approx(t_loss.item(), rel=1e-4)
    for i, W in enumerate(m.weights):
        np.testing.assert_allclose(W, net[2 * i].weight.detach().numpy(), atol=2e-6)


def test_model_file_loads_into_torch_sequential_with_the_same_logits(torch, tmp_path):
    from safetensors.torch import load_file

    m = MLP.init(PAPER_SIZES, rng=np.random.default_rng(2))
    m.save(tmp_path / "model.safetensors")
    net = torch_sequential(torch, PAPER_SIZES)
    net.load_state_dict(load_file(tmp_path / "model.safetensors"))
    x = np.random.default_rng(3).random((16, 784), dtype=np.float32)
    np.testing.assert_allclose(net(torch.from_numpy(x)).detach().numpy(), m.forward(x),
                               rtol=1e-4, atol=1e-5)


def test_model_saved_by_pytorch_without_metadata_is_first_class(torch, tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = torch_sequential(torch, (784, 64, 32, 10))
    save_file(net.state_dict(), tmp_path / "torch.safetensors")
    # a state_dict does not say which activation follows each Linear: never guessed
    with pytest.raises(ModelFileError, match="does not record its activations"):
        MLP.load(tmp_path / "torch.safetensors")
    m = MLP.load(tmp_path / "torch.safetensors", activation="relu")
    assert m.sizes == (784, 64, 32, 10)
    x = np.random.default_rng(4).random((8, 784), dtype=np.float32)
    np.testing.assert_allclose(m.forward(x), net(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
