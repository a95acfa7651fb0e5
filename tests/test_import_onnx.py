"""Hostile and awkward ONNX files: malformed nodes and initializers, external data (the
default of torch.onnx.export) read only from the model's own folder and only as
declared, onnxruntime kept quiet, and paths that name no file. Each is one
:class:`ModelFileError` line (never a traceback, never a read outside the folder)."""

import os
import sys

import numpy as np
import pytest

from neuronatlas import ImportRefused, ModelFileError, from_onnx

from .helpers import assert_logits_match
from .test_cli import assert_user_error, run_cli

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

W34 = np.arange(12, dtype=np.float32).reshape(3, 4) / 10


def raw_tensor(name, dims, data: bytes, data_type=TensorProto.FLOAT):
    """A tensor whose dims and bytes need not agree (onnx.helper checks them)."""
    t = TensorProto(name=name, data_type=data_type, raw_data=data)
    t.dims.extend(dims)
    return t


def typed_tensor(name, dims, values):
    """A FLOAT tensor with ``values`` in float_data, however many dims ask for."""
    t = TensorProto(name=name, data_type=TensorProto.FLOAT)
    t.dims.extend(dims)
    t.float_data.extend(values)
    return t


def weight(array=W34, name="W"):
    return numpy_helper.from_array(np.asarray(array), name)


def gemm(*inputs, output="y", name="fc"):
    return helper.make_node("Gemm", list(inputs), [output] if output else [], name=name,
                            transB=1)


def save(tmp_path, nodes, initializers, name="m.onnx", n_in=4, n_out=3):
    """A graph x (n, n_in) -> y (n, n_out) of ``nodes``, written unchecked."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", n_out])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


HOSTILE = {
    "a Gemm with one input": ([gemm("x")], [], "node fc (Gemm): 1 input"),
    "a MatMul with one input": ([helper.make_node("MatMul", ["x"], ["y"], name="mm")], [],
                                "node mm (MatMul): 1 input"),
    "an Add with one input": ([gemm("x", "W", output="h"),
                               helper.make_node("Add", ["h"], ["y"], name="add")], [weight()],
                              "node add (Add): 1 input"),
    "a BatchNormalization with 2 inputs": (
        [gemm("x", "W", output="h"),
         helper.make_node("BatchNormalization", ["h", "W"], ["y"], name="bn")], [weight()],
        "node bn (BatchNormalization): 2 inputs"),
    "a Gemm with no output": ([gemm("x", "W", output="")], [weight()], "node fc (Gemm)"),
    "dims that disagree with the bytes": (
        [gemm("x", "W")], [raw_tensor("W", [3, 5], W34.tobytes())], "tensor W"),
    "truncated raw data": (
        [gemm("x", "W")], [raw_tensor("W", [3, 4], W34.tobytes()[:-3])], "tensor W"),
    "typed data of the wrong count": (
        [gemm("x", "W")], [typed_tensor("W", [3, 4], [1.0] * 5)],
        "tensor W"),
    "negative dims": ([gemm("x", "W")], [raw_tensor("W", [-3, -4], W34.tobytes())],
                      "tensor W"),
    "a STRING weight": ([gemm("x", "W")],
                        [helper.make_tensor("W", TensorProto.STRING, [3, 4], [b"a"] * 12)],
                        "W holds STRING values"),
    "an int64 weight": ([gemm("x", "W")], [weight(np.ones((3, 4), np.int64))],
                        "W holds INT64 values"),
    "a bool weight": ([gemm("x", "W")], [weight(np.ones((3, 4), bool))],
                      "W holds BOOL values"),
    "a STRING bias": ([gemm("x", "W", "B")],
                      [weight(), helper.make_tensor("B", TensorProto.STRING, [3], [b"a"] * 3)],
                      "B holds STRING values"),
    "a missing bias": ([gemm("x", "W", "B")], [weight()], "B is not a constant"),
    "a Constant whose dims disagree with its bytes": (
        [helper.make_node("Constant", [], ["c"], name="k",
                          value=raw_tensor("v", [5], W34.tobytes()[:8])), gemm("x", "W")],
        [weight()], "node k (Constant)"),
    "a 1-d Gemm weight": ([gemm("x", "W")], [weight(np.ones(4, np.float32))],
                          "node fc (Gemm)"),
    "an empty weight for 2**40 outputs": ([gemm("x", "W")], [raw_tensor("W", [2**40, 0], b"")],
                                          "W has shape (1099511627776, 0)"),
    "an empty MatMul weight for 2**40 outputs": (
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
        [raw_tensor("W", [0, 2**40], b"")], "W has shape (0, 1099511627776)"),
    "a STRING constant in an activation": (
        [gemm("x", "W", output="h"),
         helper.make_node("Constant", [], ["c"], value=helper.make_tensor(
             "v", TensorProto.STRING, [], [b"2"])),
         helper.make_node("Mul", ["h", "c"], ["y"], name="mul")],
        [weight()], "node mul (Mul): c holds STRING values"),
    "a BatchNormalization of the wrong size": (
        [gemm("x", "W", output="h"),
         helper.make_node("BatchNormalization", ["h", "s", "s", "s", "s"], ["y"], name="bn")],
        [weight(), weight(np.ones(5, np.float32), "s")], "5, 5, 5 and 5 values for 3 outputs"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_malformed_node_or_initializer_is_refused_by_name(tmp_path, case):
    nodes, inits, named = HOSTILE[case]
    path = save(tmp_path, nodes, inits)
    with pytest.raises(ModelFileError, match="m.onnx") as info:
        from_onnx(path)
    assert named in str(info.value) and "\n" not in str(info.value)


def test_malformed_files_through_the_cli_are_one_line(tmp_path, mnist):
    for case in ("a Gemm with one input", "truncated raw data", "a STRING weight"):
        nodes, inits, named = HOSTILE[case]
        path = save(tmp_path, nodes, inits, name="bad.onnx", n_in=784, n_out=10)
        assert_user_error(run_cli("import", path, "--dataset", "mnist", "--run",
                                  tmp_path / "r"), named)
        assert not (tmp_path / "r").exists()


def test_a_good_hand_made_graph_still_imports(tmp_path):
    bias = numpy_helper.from_array(np.array([0.5, -1.0, 2.0], np.float32), "B")
    path = save(tmp_path, [gemm("x", "W", "B")], [weight(), bias])
    m = from_onnx(path)
    x = np.random.default_rng(0).random((5, 4))
    np.testing.assert_allclose(m.forward(x), x @ W34.T + [0.5, -1.0, 2.0], atol=1e-5)


# --- external data -----------------------------------------------------------------------

@pytest.fixture
def exported(torch, tmp_path):
    """(path, net): nn.Sequential(Linear, ReLU, Linear) exported by torch.onnx.export with
    its weights in ``m.onnx.data`` beside it (forced when the exporter keeps small weights
    inside)."""
    import warnings

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 16), torch.nn.ReLU(),
                              torch.nn.Linear(16, 10)).eval()
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "m.onnx"
    dynamo = {} if _has("onnxscript") else {"dynamo": False}  # the default needs onnxscript
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.rand(1, 784),), str(path), input_names=["x"],
                          dynamic_axes={"x": {0: "n"}}, **dynamo)
    model = onnx.load(str(path))  # with whatever external data the exporter wrote
    for extra in folder.iterdir():
        if extra != path:
            extra.unlink()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.onnx.data", size_threshold=0)
    return path, net


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def external(path):
    """The model's external data entries, {tensor name: {key: value}}."""
    proto = onnx.load(str(path), load_external_data=False)
    return {t.name: {e.key: e.value for e in t.external_data} for t in proto.graph.initializer
            if t.data_location == TensorProto.EXTERNAL}


def rewrite(path, change):
    """Apply ``change(tensor)`` to every external initializer of the file at ``path``."""
    proto = onnx.load(str(path), load_external_data=False)
    for t in proto.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            change(t)
    path.write_bytes(proto.SerializeToString())


def set_entry(key, value, only=None):
    def change(t):
        if only is None or t.name == only:
            for e in t.external_data:
                if e.key == key:
                    e.value = value
    return change


@pytest.mark.torch
def test_external_data_beside_the_model_is_read(torch, exported):
    path, net = exported
    assert external(path) and (path.parent / "m.onnx.data").is_file()
    m = from_onnx(path)
    assert_logits_match(m, net, torch, (20, 784))
    assert any("m.onnx.data" in n for n in m.notes)


@pytest.mark.torch
def test_only_the_declared_bytes_are_read(exported):
    """Junk after the declared tensors changes nothing; the weights come from their
    offsets (a reader that ignored them would read other values)."""
    path, _ = exported
    data = path.parent / "m.onnx.data"
    before = from_onnx(path)
    with open(data, "ab") as f:
        f.write(b"\xff" * 1000)
    after = from_onnx(path)
    for a, b in zip(before.weights, after.weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.torch
def test_the_default_export_through_the_cli_is_quiet(exported, mnist, tmp_path):
    """A clean import: written, and nothing from onnxruntime on stderr."""
    path, _ = exported
    proc = run_cli("import", path, "--dataset", "mnist", "--run", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert "onnxruntime" not in proc.stderr and "[W:" not in proc.stderr, proc.stderr


@pytest.mark.torch
def test_onnxruntime_warnings_do_not_reach_stderr(torch, tmp_path, mnist):
    """Initializers listed as graph inputs (an older exporter's habit): onnxruntime warns
    about each one at its default log level."""
    import warnings

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(784, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
    path = tmp_path / "kept.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.rand(1, 784), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}}, keep_initializers_as_inputs=True)
    proc = run_cli("import", path, "--dataset", "mnist", "--run", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert "onnxruntime" not in proc.stderr and "[W:" not in proc.stderr, proc.stderr


def _outside(exported):
    """A copy of the data file outside the model's folder: readable, never to be read."""
    path, _ = exported
    outside = path.parent.parent / "x"
    outside.write_bytes((path.parent / "m.onnx.data").read_bytes())
    return outside


@pytest.mark.torch
def test_a_location_out_of_the_folder_is_refused(exported):
    path, _ = exported
    outside = _outside(exported)
    for location, message in (("../x", "out of the model's folder"),
                              (str(outside), "absolute path"),
                              ("/etc/passwd", "absolute path"),
                              ("sub/../../x", "out of the model's folder")):
        rewrite(path, set_entry("location", location))
        with pytest.raises(ModelFileError, match=message):
            from_onnx(path)


@pytest.mark.torch
def test_a_symlink_out_of_the_folder_is_refused(exported):
    path, _ = exported
    outside = _outside(exported)
    (path.parent / "link.data").symlink_to(outside)
    rewrite(path, set_entry("location", "link.data"))
    with pytest.raises(ModelFileError, match="out of the model's folder"):
        from_onnx(path)
    inside = path.parent / "inside.data"
    inside.symlink_to("m.onnx.data")  # a link that stays in the folder is a file there
    rewrite(path, set_entry("location", "inside.data"))
    assert from_onnx(path).sizes == (784, 16, 10)


@pytest.mark.torch
def test_a_missing_or_special_data_file_is_refused(exported):
    path, _ = exported
    rewrite(path, set_entry("location", "gone.data"))
    with pytest.raises(ModelFileError, match="gone.data.* not found"):
        from_onnx(path)
    (path.parent / "dir.data").mkdir()
    rewrite(path, set_entry("location", "dir.data"))
    with pytest.raises(ModelFileError, match="dir.data.*is a directory"):
        from_onnx(path)
    if hasattr(os, "mkfifo"):
        os.mkfifo(path.parent / "fifo.data")  # opening it to read would wait forever
        rewrite(path, set_entry("location", "fifo.data"))
        with pytest.raises(ModelFileError, match="fifo.data.*not a regular file"):
            from_onnx(path)
    rewrite(path, set_entry("location", ""))
    with pytest.raises(ModelFileError, match="no location"):
        from_onnx(path)


@pytest.mark.torch
def test_a_truncated_data_file_is_refused_before_reading(exported):
    path, _ = exported
    data = path.parent / "m.onnx.data"
    data.write_bytes(data.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match=r"m.onnx.data.*\d+ bytes"):
        from_onnx(path)


@pytest.mark.parametrize("key, value, message", [
    ("length", "12", "12 bytes"),  # not the tensor's size
    ("length", "99999999999999", "99999999999999"),  # far beyond the file
    ("offset", "99999999999999", "99999999999999"),
    ("offset", "-4", "offset '-4' is not a whole number"),
    ("length", "ten", "length 'ten' is not a whole number"),
])
@pytest.mark.torch
def test_declared_offsets_and_lengths_are_checked(exported, key, value, message):
    path, _ = exported
    first = next(iter(external(path)))
    rewrite(path, set_entry(key, value, only=first))
    with pytest.raises(ModelFileError, match=message) as info:
        from_onnx(path)
    assert first in str(info.value)


@pytest.mark.torch
def test_tensors_claiming_the_same_bytes_over_and_over_are_refused(exported):
    """Many tensors on one span of the file would multiply what is read in memory."""
    path, _ = exported
    entries = external(path)
    biggest = max(entries, key=lambda n: int(entries[n]["length"]))
    proto = onnx.load(str(path), load_external_data=False)
    model_t = next(t for t in proto.graph.initializer if t.name == biggest)
    for i in range(3):
        copy = proto.graph.initializer.add()
        copy.CopyFrom(model_t)
        copy.name = f"copy{i}"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelFileError, match="more bytes than it holds"):
        from_onnx(path)


def test_a_constant_nodes_external_value_is_held_to_the_same_rules(tmp_path):
    """A Constant's tensor may name external data too: read from the folder, or refused."""
    folder = tmp_path / "model"
    folder.mkdir()
    bias = np.array([0.5, -1.0, 2.0], np.float32)
    nodes = [helper.make_node("Constant", [], ["b"], name="k",
                              value=numpy_helper.from_array(bias, "v")), gemm("x", "W", "b")]
    path = save(folder, nodes, [weight()])
    (folder / "k.data").write_bytes(b"junk" + bias.tobytes())
    proto = onnx.load(str(path))
    t = proto.graph.node[0].attribute[0].t
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for location in ("k.data", "/etc/passwd"):
        del t.external_data[:]
        for key, value in (("location", location), ("offset", "4"), ("length", "12")):
            t.external_data.add(key=key, value=value)
        path.write_bytes(proto.SerializeToString())
        if location == "k.data":
            x = np.random.default_rng(0).random((5, 4))
            np.testing.assert_allclose(from_onnx(path).forward(x), x @ W34.T + bias, atol=1e-5)
    with pytest.raises(ModelFileError, match="tensor v: .* absolute path"):
        from_onnx(path)


@pytest.mark.torch
def test_hostile_external_data_through_the_cli(exported, mnist, tmp_path):
    path, _ = exported
    rewrite(path, set_entry("location", "../../../../../../etc/passwd"))
    assert_user_error(run_cli("import", path, "--dataset", "mnist", "--run", tmp_path / "r"),
                      "out of the model's folder")


# --- paths that name no ONNX file --------------------------------------------------------

def test_a_path_that_is_no_onnx_file_is_one_line(tmp_path):
    (tmp_path / "d.onnx").mkdir()
    cases = [("bad\x00name.onnx", "NUL"), (tmp_path / "d.onnx", "is a directory"),
             (os.fsencode(tmp_path / "d.onnx"), "is a directory"),
             (tmp_path / "none.onnx", "not found")]
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "f.onnx")
        cases.append((tmp_path / "f.onnx", "not a regular file"))
    for path, message in cases:
        with pytest.raises(ImportRefused, match=message) as info:
            from_onnx(path)
        assert "\x00" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo") or sys.platform == "win32", reason="no FIFOs")
def test_a_fifo_through_the_cli_does_not_hang(tmp_path, mnist):
    os.mkfifo(tmp_path / "f.onnx")
    assert_user_error(run_cli("import", tmp_path / "f.onnx", "--dataset", "mnist", "--run",
                              tmp_path / "r", timeout=120), "not a regular file")
