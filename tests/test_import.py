"""Importing networks made elsewhere: live PyTorch modules (Sequential, custom modules
traced with torch.fx), ONNX files (GELU as one node or decomposed), safetensors
state_dicts; every module or ONNX import checked against the source's logits, a state_dict's
stated activations said to be unchecked (and questioned by the test images), everything
else refused by name."""

import numpy as np
import pytest

from neuronatlas import ImportRefused, ModelFileError, from_onnx, from_torch

from .helpers import assert_logits_match
from .test_cli import assert_user_error, run_cli

pytestmark = pytest.mark.torch


def run_import(*args):
    """``neuronatlas import --dataset mnist ARGS``."""
    return run_cli("import", "--dataset", "mnist", *args)


@pytest.fixture
def nn(torch):
    torch.manual_seed(0)
    return torch.nn


def trained_batchnorm(torch, nn, net):
    net.train()
    with torch.no_grad():
        net(torch.rand(64, 784))  # running statistics that are not the defaults
    return net.eval()


def test_sequential_with_flatten_dropout_batchnorm_and_bias_free_layers(torch, nn):
    net = trained_batchnorm(torch, nn, nn.Sequential(
        nn.Flatten(), nn.Linear(784, 32), nn.BatchNorm1d(32), nn.LeakyReLU(0.1), nn.Dropout(0.3),
        nn.Linear(32, 16, bias=False), nn.GELU(), nn.Linear(16, 10)))
    m = from_torch(net, input_shape=(28, 28, 1))
    assert m.sizes == (784, 32, 16, 10) and m.has_bias == (True, False, True)
    assert [a.spec for a in m.activation_fns] == ["leaky_relu:0.1", "gelu"]
    assert_logits_match(m, net, torch, (50, 784), atol=1e-4)
    assert any("BatchNorm1d folded" in n for n in m.notes)
    assert any("logits equal PyTorch's" in n for n in m.notes)
    assert net.training is False and next(net.parameters()).dtype == torch.float32  # untouched


def test_custom_module_traced_with_fx(torch, nn):
    F = torch.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(784, 24), nn.Linear(24, 12), nn.Linear(12, 10)

        def forward(self, x):
            x = torch.flatten(x, 1)
            x = F.silu(self.fc1(x))
            x = torch.tanh(self.fc2(x))
            return F.log_softmax(self.fc3(x), dim=1)

    m = from_torch(Net())
    assert [a.spec for a in m.activation_fns] == ["silu", "tanh"]
    assert any("log-probabilities equal" in n for n in m.notes)


def test_half_precision_parameters_are_converted_with_a_note(torch, nn):
    net = nn.Sequential(nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10)).to(torch.bfloat16)
    m = from_torch(net)
    assert m.dtype == np.float32 and any("bfloat16 converted" in n for n in m.notes)


@pytest.mark.parametrize(("make", "message"), [
    (lambda nn: nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(2704, 10)),
     "Conv2d is not supported"),
    (lambda nn: nn.Sequential(nn.Linear(784, 10), nn.ReLU()), "follows the last Linear"),
    (lambda nn: nn.Sequential(nn.Linear(784, 8), nn.ReLU(), nn.Tanh(), nn.Linear(8, 10)),
     "two activations in a row"),
    (lambda nn: nn.Sequential(nn.Linear(784, 8), nn.Mish(), nn.Linear(8, 10)),
     "Mish is not supported"),
])
def test_what_is_not_a_dense_chain_is_refused_by_name(nn, make, message):
    with pytest.raises(ImportRefused, match=message):
        from_torch(make(nn))


def test_a_residual_connection_is_refused(torch, nn):
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.out = nn.Linear(784, 784), nn.Linear(784, 784), nn.Linear(784, 10)

        def forward(self, x):
            return self.out(torch.relu(self.a(x)) + x)

    with pytest.raises(ImportRefused, match="residual or branching"):
        from_torch(Residual())


def test_nan_weights_are_refused(torch, nn):
    net = nn.Sequential(nn.Linear(784, 8), nn.ReLU(), nn.Linear(8, 10))
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
    with pytest.raises(ImportRefused, match="NaN"):
        from_torch(net)


def export(torch, net, path, opset, shape=(1, 784)):
    import warnings

    pytest.importorskip("onnx")
    with warnings.catch_warnings():  # the TorchScript exporter warns that it is the old one
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, torch.rand(*shape), str(path), opset_version=opset,
                          dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    return path


@pytest.mark.parametrize("opset", [17, 20])  # 17: GELU as Div/Erf/Add/Mul; 20: one Gelu node
def test_onnx_round_trip_gives_equal_logits(torch, nn, tmp_path, opset):
    import onnx

    net = trained_batchnorm(torch, nn, nn.Sequential(
        nn.Linear(784, 32), nn.BatchNorm1d(32), nn.GELU(), nn.Linear(32, 16), nn.ELU(0.5),
        nn.Linear(16, 10), nn.Softmax(dim=1)))
    path = export(torch, net, tmp_path / "net.onnx", opset)
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert ("Gelu" in ops) == (opset == 20) and ("Erf" in ops) == (opset == 17)
    m = from_onnx(path)
    assert [a.spec for a in m.activation_fns] == ["gelu", "elu:0.5"]
    x = np.random.default_rng(1).random((20, 784), dtype=np.float32)
    with torch.no_grad():
        p = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(m.predict_proba(x), p, atol=1e-5)


def test_onnx_image_input_gives_the_input_shape(torch, nn, tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 4))
    path = export(torch, net, tmp_path / "img.onnx", 17, shape=(1, 3, 8, 8))
    m = from_onnx(path)
    assert m.input_shape == (8, 8, 3)  # channel-last: the first layer's columns reordered
    chw = np.random.default_rng(2).random((5, 3, 8, 8), dtype=np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(chw)).numpy()
    np.testing.assert_allclose(m.forward(chw.transpose(0, 2, 3, 1).reshape(5, -1)), ref,
                               atol=1e-5)


def test_onnx_convolution_is_refused_by_name(torch, nn, tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 26 * 26, 10))
    path = export(torch, net, tmp_path / "conv.onnx", 17, shape=(1, 1, 28, 28))
    with pytest.raises(ImportRefused, match="ONNX op Conv is not supported"):
        from_onnx(path)


def test_import_cli_end_to_end_and_its_refusals(torch, nn, tmp_path, mnist):
    from safetensors.torch import save_file

    net = nn.Sequential(nn.Linear(784, 20), nn.LeakyReLU(0.2), nn.Linear(20, 10))
    path = export(torch, net, tmp_path / "leaky.onnx", 17)
    proc = run_import(path, "--run", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert "check: logits equal onnxruntime's within" in proc.stdout
    proc = run_cli("evaluate", "--run", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    # a state_dict needs its activation stated, which cannot be checked (it has none)
    save_file(net.state_dict(), tmp_path / "sd.safetensors")
    assert_user_error(run_import(tmp_path / "sd.safetensors", "--run", tmp_path / "sd"),
                      "does not record its activations")
    assert_user_error(run_import(tmp_path / "sd.safetensors", "--run", tmp_path / "sd",
                              "--activation", "leaky_relu:0.2", "--sizes", "784,30,10"),
                      "does not match the tensors")
    proc = run_import(tmp_path / "sd.safetensors", "--run", tmp_path / "sd",
                   "--activation", "leaky_relu:0.2")
    assert proc.returncode == 0, proc.stderr
    assert "the activations were stated (leaky_relu:0.2), not checked" in proc.stdout
    assert "equal PyTorch's" not in proc.stdout
    # a pickle is refused without being read
    torch.save(net, tmp_path / "net.pt")
    assert_user_error(run_import(tmp_path / "net.pt", "--run", tmp_path / "pt"),
                      "pickle", "from_torch")
    assert_user_error(run_import(tmp_path / "sd.safetensors", "--run", tmp_path / "sd2",
                              "--activation", "swish2"), "unsupported activation")
    # a model for other data than the dataset named
    small = nn.Sequential(nn.Linear(100, 8), nn.ReLU(), nn.Linear(8, 10))
    p2 = export(torch, small, tmp_path / "small.onnx", 17, shape=(1, 100))
    assert_user_error(run_import(p2, "--run", tmp_path / "small"), "takes 100 inputs")


def test_state_dict_loaded_with_the_wrong_architecture_names_the_mismatch(torch, nn, tmp_path):
    from safetensors.torch import save_file

    from neuronatlas import MLP

    net = nn.Sequential(nn.Linear(784, 20), nn.ReLU(), nn.Linear(20, 10))
    save_file(net.state_dict(), tmp_path / "sd.safetensors")
    with pytest.raises(ModelFileError, match="3 activations given for 1 hidden layers"):
        MLP.load(tmp_path / "sd.safetensors", activation="relu,relu,relu")


def test_onnx_refusals_through_the_cli(torch, nn, tmp_path, mnist):
    """A convolution, a residual connection and NaN weights in an ONNX file: one line each,
    exit 2, and no run folder left holding a half-imported model."""
    conv = export(torch, nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(),
                                       nn.Linear(2 * 26 * 26, 10)),
                  tmp_path / "conv.onnx", 17, shape=(1, 1, 28, 28))

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.out = nn.Linear(784, 784), nn.Linear(784, 10)

        def forward(self, x):
            return self.out(torch.relu(self.a(x)) + x)

    residual = export(torch, Residual(), tmp_path / "res.onnx", 17)
    bad = nn.Sequential(nn.Linear(784, 8), nn.ReLU(), nn.Linear(8, 10))
    with torch.no_grad():
        bad[2].bias[3] = float("nan")
    nan = export(torch, bad, tmp_path / "nan.onnx", 17)
    for path, message in ((conv, "ONNX op Conv is not supported"),
                          (residual, "residual or branching"), (nan, "NaN")):
        assert_user_error(run_import(path, "--run", tmp_path / path.stem), message)
        assert not (tmp_path / path.stem / "model.safetensors").exists()
    assert_user_error(run_import(tmp_path / "none.onnx", "--run", tmp_path / "x"),
                      "not found")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07 not protobuf at all \xff\xfe")
    assert_user_error(run_import(tmp_path / "junk.onnx", "--run", tmp_path / "x"),
                      "junk.onnx")
    assert_user_error(run_cli("train", "--activation", "mish", "--run", tmp_path / "t"),
                      "unsupported activation 'mish'")


def test_import_needs_the_dataset_named(tmp_path):
    """The data a model was made for is never assumed: it decides what every later command
    evaluates, analyses and draws on."""
    assert_user_error(run_cli("import", tmp_path / "any.onnx", "--run", tmp_path / "r"),
                      "--dataset")


def test_a_channel_last_onnx_input_is_read_as_such(torch, nn, tmp_path):
    """(N, H, W, C) input: no reordering; (N, C, H, W): reordered; a shape that could be
    either needs the layout stated."""

    class Last(nn.Module):  # takes (N, 8, 6, 1) channel-last images
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(48, 8), nn.Linear(8, 4)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))

    net = Last()
    path = export(torch, net, tmp_path / "last.onnx", 17, shape=(1, 8, 6, 1))
    m = from_onnx(path)
    assert m.input_shape == (8, 6, 1)
    assert_logits_match(m, net, torch, (4, 8, 6, 1), seed=3)
    both = export(torch, nn.Sequential(nn.Flatten(), nn.Linear(27, 4)), tmp_path / "b.onnx", 17,
                  shape=(1, 3, 3, 3))
    with pytest.raises(ImportRefused, match="say which"):
        from_onnx(both)
    assert from_onnx(both, channels_first=True).input_shape == (3, 3, 3)


def test_from_torch_refuses_what_it_cannot_honour(torch, nn):
    net = nn.Sequential(nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ImportRefused, match="channels_first needs input_shape"):
        from_torch(net, channels_first=True)
    F = torch.nn.functional

    class Soft(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(12, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.b(F.softplus(self.a(x), 1, 2))

    with pytest.raises(ImportRefused, match="threshold 2"):
        from_torch(Soft())


def test_onnx_gemm_bias_of_shape_1_by_out(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    w1, b1 = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((1, 5))
    w2, b2 = rng.standard_normal((3, 5)).astype(np.float32), rng.standard_normal((1, 3))
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
         helper.make_node("Tanh", ["h"], ["t"]),
         helper.make_node("Gemm", ["t", "w2", "b2"], ["y"], transB=1)],
        "keras", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [numpy_helper.from_array(a.astype(np.float32), n)
         for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))])
    path = tmp_path / "k.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    m = from_onnx(path)
    np.testing.assert_allclose(m.biases[0], b1[0], rtol=1e-6)
    assert m.activation(1).name == "tanh"


def test_a_state_dict_with_dropout_between_its_linears(torch, nn, tmp_path, mnist):
    """nn.Sequential(Linear, LeakyReLU, Dropout, Linear, ...) saves its Linears as 0, 3, 5:
    read in the order of their indices; an ONNX file through
    --model points to import, and --activation with an ONNX file is refused."""
    from safetensors.torch import save_file

    from neuronatlas import MLP

    net = nn.Sequential(nn.Linear(784, 16), nn.LeakyReLU(0.1), nn.Dropout(0.2),
                        nn.Linear(16, 8), nn.LeakyReLU(0.1), nn.Linear(8, 10)).eval()
    save_file(net.state_dict(), tmp_path / "sd.safetensors")
    m = MLP.load(tmp_path / "sd.safetensors", activation="leaky_relu:0.1")
    x = np.random.default_rng(7).random((5, 784), dtype=np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(m.forward(x), net(torch.from_numpy(x)).numpy(), atol=1e-5)
    proc = run_import(tmp_path / "sd.safetensors", "--activation", "leaky_relu:0.1", "--run",
                      tmp_path / "sd")
    assert proc.returncode == 0 and "not checked against the original" in proc.stdout, proc.stderr
    onnx_path = export(torch, net, tmp_path / "net.onnx", 17)
    assert_user_error(run_cli("evaluate", "--model", onnx_path, "--dataset", "mnist",
                              "--run", tmp_path / "e"), "neuronatlas import")
    assert_user_error(run_import(onnx_path, "--activation", "relu", "--run", tmp_path / "o"),
                      "--activation and --sizes are for a state_dict")


# --- what an import checks, and what it cannot ---------------------------------------------
def mnist_trained(torch, mnist, act, sizes=(784, 96, 48, 24, 10), n=20000):
    """A PyTorch MLP with ``act`` between its Linears, trained for one epoch on the first
    ``n`` MNIST training images (seeded: the same network every run)."""
    torch.manual_seed(0)
    layers = []
    for i in range(len(sizes) - 1):
        layers += [torch.nn.Linear(sizes[i], sizes[i + 1]), act()]
    net = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x, y = torch.from_numpy(mnist.train_x[:n]), torch.from_numpy(mnist.train_y[:n])
    for s in range(0, n, 100):
        loss = torch.nn.functional.cross_entropy(net(x[s:s + 100]), y[s:s + 100])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def trained_state_dicts(torch, mnist, tmp_path_factory):
    """state_dicts of a ReLU and a Tanh network trained on MNIST."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("trained")
    for name, act in (("relu", torch.nn.ReLU), ("tanh", torch.nn.Tanh)):
        save_file(mnist_trained(torch, mnist, act).state_dict(), folder / f"{name}.safetensors")
    return folder


def test_a_state_dict_import_says_its_activations_were_stated_not_checked(torch, nn, tmp_path,
                                                                          mnist):
    """A GELU network's state_dict imported as ReLU: the tensors are all a state_dict has,
    so the check line says the activations were stated and not checked, never that the
    logits equal the original's; the test accuracy is printed and recorded."""
    from safetensors.torch import save_file

    from neuronatlas import MLP

    net = nn.Sequential(nn.Linear(784, 16), nn.GELU(), nn.Linear(16, 10))
    save_file(net.state_dict(), tmp_path / "gelu.safetensors")
    proc = run_import(tmp_path / "gelu.safetensors", "--activation", "relu", "--run",
                      tmp_path / "r")
    assert proc.returncode == 0, proc.stderr
    assert ("check: the tensors were read; the activations were stated (relu), not checked "
            "against the original network") in proc.stdout, proc.stdout
    assert "equal PyTorch's" not in proc.stdout
    assert "test accuracy on mnist:" in proc.stdout
    accuracy = float(MLP.load(tmp_path / "r" / "model.safetensors").metadata["test_accuracy"])
    assert 0 <= accuracy <= 1


def test_a_clearly_wrong_activation_is_warned_about(trained_state_dicts, mnist, tmp_path):
    """A Tanh network stated as ReLU fits the test images far worse than with Tanh: a
    warning names tanh (exit 0: the user's statement is still what is imported); the
    right statement gives no warning."""
    from neuronatlas import MLP
    from neuronatlas.importers.common import activation_fit

    tanh = trained_state_dicts / "tanh.safetensors"
    stated, better, _ = activation_fit(MLP.load(tanh, activation="relu"), mnist.test_x,
                                       mnist.test_y)
    assert better is not None and better.activation == "tanh"
    assert better.accuracy > stated.accuracy + 0.02
    for name in ("relu", "tanh"):
        model = MLP.load(trained_state_dicts / f"{name}.safetensors", activation=name)
        assert activation_fit(model, mnist.test_x, mnist.test_y)[1] is None, name
    proc = run_import(tanh, "--activation", "relu", "--run", tmp_path / "t")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "tanh" in warnings[0] and "--activation" in warnings[0], \
        proc.stderr


def test_a_model_imported_for_the_wrong_dataset_is_warned_about(trained_state_dicts, tmp_path):
    """An MNIST network imported with --dataset fashion-mnist scores near chance there: a
    warning names the dataset and asks whether it is the one it was trained on."""
    proc = run_cli("import", trained_state_dicts / "relu.safetensors", "--activation", "relu",
                   "--dataset", "fashion-mnist", "--run", tmp_path / "f")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, proc.stderr
    assert "fashion-mnist" in warnings[0] and "is this the dataset it was trained on?" in \
        warnings[0]


def test_a_custom_modules_state_dict_points_to_from_torch_and_onnx(torch, nn, tmp_path):
    """fc1/fc2 names (a custom module) or BatchNorm statistics: what the layers are and in
    which order is not in the file; the refusal says how to import such a network."""
    from safetensors.torch import save_file

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(784, 8), nn.Linear(8, 10)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))

    save_file(Net().state_dict(), tmp_path / "custom.safetensors")
    bn = nn.Sequential(nn.Linear(784, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 10))
    save_file(bn.state_dict(), tmp_path / "bn.safetensors")
    plain = nn.Sequential(nn.Linear(784, 8), nn.BatchNorm1d(8, track_running_stats=False),
                          nn.ReLU(), nn.Linear(8, 10))
    save_file(plain.state_dict(), tmp_path / "norm.safetensors")
    for name, what in (("custom", "'fc1.weight'"), ("bn", "BatchNorm"), ("norm", "'1.weight'")):
        proc = run_import(tmp_path / f"{name}.safetensors", "--activation", "relu", "--run",
                          tmp_path / name)
        assert_user_error(proc, what, "from_torch(module)", "ONNX")
        assert not (tmp_path / name).exists()


def test_a_refused_import_leaves_no_run_folder(torch, nn, tmp_path):
    """The run folder is made once the model has been read and checked: a refusal leaves
    none behind (not even its lock), and a folder that was there keeps what it held."""
    from safetensors.torch import save_file

    save_file(nn.Sequential(nn.Linear(784, 8), nn.ReLU(), nn.Linear(8, 10)).state_dict(),
              tmp_path / "sd.safetensors")
    assert_user_error(run_import(tmp_path / "sd.safetensors", "--run", tmp_path / "new"),
                      "does not record its activations")
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "notes.txt").write_text("mine")
    assert_user_error(run_import(tmp_path / "sd.safetensors", "--run", tmp_path / "old"),
                      "does not record its activations")
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["notes.txt"]


def test_a_failed_write_removes_the_run_folder_it_made(torch, nn, tmp_path, mnist,
                                                       monkeypatch):
    from safetensors.torch import save_file

    from neuronatlas import MLP, import_model

    save_file(nn.Sequential(nn.Linear(784, 8), nn.ReLU(), nn.Linear(8, 10)).state_dict(),
              tmp_path / "sd.safetensors")

    def full_disk(self, path, metadata=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(MLP, "save", full_disk)
    with pytest.raises(OSError):
        import_model(tmp_path / "sd.safetensors", tmp_path / "new", mnist, activation="relu")
    assert not (tmp_path / "new").exists()


# --- PyTorch idioms a traced module may use -------------------------------------------------
def _normalising(torch, nn, forward, buffers=None):
    """A module with fc1 (784 -> 12), ReLU, fc2 (12 -> 10) whose forward is ``forward``."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(784, 12), nn.Linear(12, 10)
            for name, value in (buffers or {}).items():
                self.register_buffer(name, value)

        def forward(self, x):
            return forward(self, x)

    return Net()


def _head(self, x):
    return self.fc2(torch_relu(self.fc1(x)))


def torch_relu(x):
    import torch

    return torch.relu(x)


NORMALISATIONS = {
    "(x - m) / s": (lambda self, x: _head(self, (x - 0.1307) / 0.3081), None),
    "x.sub(m).div(s)": (lambda self, x: _head(self, x.sub(0.1307).div(0.3081)), None),
    "scalar mul and add": (lambda self, x: _head(self, 2 * x + 0.5), None),
    "1 - x, x * s": (lambda self, x: _head(self, (1 - x) * 3.0), None),
    "buffers": (lambda self, x: _head(self, (x - self.mean) / self.std),
                lambda torch: {"mean": torch.tensor([0.1307]), "std": torch.tensor(0.3081)}),
    "per-input buffer": (lambda self, x: _head(self, (x - self.mean) / self.std),
                         lambda torch: {"mean": torch.rand(784), "std": 0.5 + torch.rand(784)}),
}


@pytest.mark.parametrize("form", sorted(NORMALISATIONS))
def test_input_normalisation_is_folded_into_the_first_linear(torch, nn, form):
    forward, buffers = NORMALISATIONS[form]
    net = _normalising(torch, nn, forward, buffers and buffers(torch))
    m = from_torch(net)
    assert_logits_match(m, net, torch, (40, 784), seed=5, atol=1e-4)
    assert any("folded into the first Linear" in n for n in m.notes)


def test_normalisation_that_cannot_be_folded_is_refused(torch, nn):
    per_channel = _normalising(torch, nn, lambda self, x: _head(self, x - self.mean),
                               {"mean": torch.rand(1, 3, 1, 1)})
    with pytest.raises(ImportRefused, match="shape"):
        from_torch(per_channel)
    with pytest.raises(ImportRefused, match="not supported"):
        from_torch(_normalising(torch, nn, lambda self, x: _head(self, 1 / x)))
    with pytest.raises(ImportRefused, match="after the first Linear"):
        from_torch(_normalising(torch, nn, lambda self, x: self.fc2(self.fc1(x) * 2)))


FLATTENS = {
    "x.view(x.size(0), -1)": lambda x: x.view(x.size(0), -1),
    "x.reshape(x.shape[0], -1)": lambda x: x.reshape(x.shape[0], -1),
    "x.view(x.size()[0], -1)": lambda x: x.view(x.size()[0], -1),
    "torch.flatten(x, 1)": lambda x: __import__("torch").flatten(x, 1),
    "x.flatten(1)": lambda x: x.flatten(1),
    "x.view(-1, 784)": lambda x: x.view(-1, 784),
}


@pytest.mark.parametrize("form", sorted(FLATTENS))
def test_flatten_idioms_are_the_inputs_flattening(torch, nn, form):
    flatten = FLATTENS[form]
    net = _normalising(torch, nn, lambda self, x: _head(self, flatten(x)))
    m = from_torch(net, input_shape=(28, 28, 1))
    assert_logits_match(m, net, torch, (30, 1, 28, 28), seed=6, atol=1e-4)


def test_a_flatten_of_the_batch_is_refused(torch, nn):
    with pytest.raises(ImportRefused, match="batch"):
        from_torch(_normalising(torch, nn, lambda self, x: _head(self, x.flatten())))
