"""model.safetensors: the contract of docs/format.md and precise errors."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from neuronatlas import MLP, PAPER_SIZES, ModelFileError
from neuronatlas.nn.io import FORMAT


@pytest.fixture
def model():
    return MLP.init(PAPER_SIZES, rng=np.random.default_rng(0))


@pytest.fixture
def saved(model, tmp_path):
    path = tmp_path / "model.safetensors"
    model.save(path, {"test_accuracy": "0.9806"})
    return path


def test_names_shapes_dtypes_and_metadata_follow_the_contract(saved):
    tensors = load_file(saved)
    # nn.Sequential(Linear, ReLU, ..., Linear): the Linears at indices 0, 2, ..., 14
    assert sorted(tensors) == sorted(f"{2 * i}.{kind}" for i in range(8)
                                     for kind in ("weight", "bias"))
    assert tensors["0.weight"].shape == (1250, 784) and tensors["14.weight"].shape == (10, 32)
    assert all(t.dtype == np.float32 for t in tensors.values())
    raw = saved.read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    meta = header["__metadata__"]
    assert meta["format"] == FORMAT and meta["sizes"] == "784,1250,1000,750,500,250,100,32,10"
    assert meta["hidden_activation"] == "relu" and meta["output_activation"] == "softmax"
    assert meta["activations"] == ",".join(["relu"] * 7) and meta["bias"] == ",".join("1" * 8)
    assert meta["input_shape"] == "28,28,1" and json.loads(meta["class_names"])[3] == "3"
    assert meta["test_accuracy"] == "0.9806"
    assert "dataset" not in meta  # recorded by whatever trained or imported it, never assumed


def test_round_trip_is_exact(model, saved):
    back = MLP.load(saved)
    for a, b in zip(model.weights + model.biases, back.weights + back.biases):
        assert a.tobytes() == b.tobytes()


def _rewrite(path, tensors, meta=None):
    save_file(tensors, path, metadata=meta)
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.pop("4.bias"), r"missing tensor\(s\) \['4.bias'\]"),
        (lambda t: t.__setitem__("2.weight", np.zeros((10, 3), np.float32)),
         r"'2.weight' has shape \(10, 3\), expected \(1000, 1250\)"),
        (lambda t: t["6.weight"].__setitem__((0, 0), np.nan), r"'6.weight' has 1 NaN or infinite"),
        (lambda t: t.__setitem__("0.bias", np.zeros(1250, np.int32)), "'0.bias' is I32"),
        (lambda t: t.__setitem__("extra", np.zeros(1, np.float32)), "unexpected tensor names"),
    ],
)
def test_broken_tensors_are_named_precisely(saved, mutate, message):
    tensors = load_file(saved)
    mutate(tensors)
    meta = {"format": FORMAT, "sizes": "784,1250,1000,750,500,250,100,32,10",
            "hidden_activation": "relu", "bias": ",".join(["1"] * 8)}
    with pytest.raises(ModelFileError, match=message):
        MLP.load(_rewrite(saved, tensors, meta))


def test_not_safetensors_truncated_and_missing_files(saved, tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a model at all")
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        MLP.load(junk)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(saved.read_bytes()[:100_000])
    with pytest.raises(ModelFileError, match="not a readable safetensors file"):
        MLP.load(cut)
    with pytest.raises(ModelFileError, match="not found"):
        MLP.load(tmp_path / "nope.safetensors")


def test_foreign_format_metadata_is_refused(saved):
    tensors = load_file(saved)
    with pytest.raises(ModelFileError, match="format 'other/1'"):
        MLP.load(_rewrite(saved, tensors, {"format": "other/1"}))
    with pytest.raises(ModelFileError, match="unsupported activation 'mish'"):
        MLP.load(_rewrite(saved, tensors, {"hidden_activation": "mish"}))
    assert MLP.load(_rewrite(saved, tensors, {"hidden_activation": "tanh"})).activation(3).name \
        == "tanh"


@pytest.mark.parametrize(("header", "message"), [
    ({"0.weight": {"dtype": [], "shape": [2, 2], "data_offsets": [0, 16]}}, "unreadable entry"),
    ({"00.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}},
     "unexpected tensor names"),
    ({"\u0660.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}},
     "unexpected tensor names"),
    ({"2000000000.bias": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
     "unexpected tensor names"),
])
def test_hostile_headers_are_one_clear_error(tmp_path, header, message):
    body = json.dumps(header).encode()
    path = tmp_path / "h.safetensors"
    data = bytes(max(v["data_offsets"][1] for v in header.values()))  # exactly, no more
    path.write_bytes(len(body).to_bytes(8, "little") + body + data)
    with pytest.raises(ModelFileError, match=message):
        MLP.load(path, activation="relu")


def test_a_zero_width_layer_is_refused_at_load(tmp_path):
    """A zero-width layer once passed validation, and query and analyze crashed."""
    save_file({"0.weight": np.zeros((0, 784), np.float32), "0.bias": np.zeros(0, np.float32),
               "2.weight": np.zeros((10, 0), np.float32), "2.bias": np.zeros(10, np.float32)},
              tmp_path / "zero.safetensors")
    with pytest.raises(ModelFileError, match="at least one neuron"):
        MLP.load(tmp_path / "zero.safetensors", activation="relu")

