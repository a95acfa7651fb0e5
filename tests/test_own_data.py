"""Your own data: a .npz of 32x32x3 images through train, evaluate, visualize, analyze and
atlas from the command line; the dataset's identity in every cache; bad files refused."""

import json
from pathlib import Path

import numpy as np
import pytest

import neuronatlas as na
from neuronatlas import MLP, DataError, load_dataset
from neuronatlas.analysis import analyze_run
from neuronatlas.data import Dataset

from .test_cli import assert_user_error, run_cli

NAMES = ["red", "green", "blue"]


def colour_arrays(n, seed):
    """Images of a bright square in one colour channel (the class) on faint noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 30, (n, 32, 32, 3)).astype(np.uint8)
    for i, c in enumerate(y):
        r, col = rng.integers(6, 26, 2)
        x[i, r - 5:r + 5, col - 5:col + 5, c] = 220
    return x, y


@pytest.fixture(scope="module")
def colour_npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("colour") / "colour.npz"
    (xt, yt), (xv, yv) = colour_arrays(600, 0), colour_arrays(200, 1)
    np.savez(path, x_train=xt, y_train=yt, x_test=xv, y_test=yv, class_names=np.array(NAMES))
    return path


def test_npz_is_read_as_images_with_names_and_identity(colour_npz):
    data = load_dataset(colour_npz)
    assert data.shape == (32, 32, 3) and data.n_inputs == 3072 and data.class_names == tuple(NAMES)
    assert data.train_x.dtype == np.float32 and 0 <= data.train_x.min() <= data.train_x.max() <= 1
    assert data.identity["name"] == "colour.npz" and len(data.identity["sha256"]) == 64
    # channel-last: pixel (r, c) channel k is at (r * 32 + c) * 3 + k
    raw = np.load(colour_npz)["x_train"]
    assert data.train_x[0, (5 * 32 + 7) * 3 + 2] == np.float32(raw[0, 5, 7, 2] / np.float32(255))


def test_colour_npz_through_every_verb(colour_npz, tmp_path):
    run = tmp_path / "run"
    proc = run_cli("train", "--dataset", colour_npz, "--sizes", "3072,32,16,3", "--activation",
                   "tanh", "--epochs", "2", "--fine-tune-epochs", "0", "--run", run)
    assert proc.returncode == 0, proc.stderr
    meta = MLP.load(run / "model.safetensors")
    assert meta.input_shape == (32, 32, 3) and meta.class_names == tuple(NAMES)
    assert meta.metadata["dataset_path"] == str(colour_npz.resolve())
    proc = run_cli("evaluate", "--run", run)  # the recorded dataset, without naming it
    assert proc.returncode == 0 and "green" in proc.stdout, proc.stderr
    assert json.loads((run / "evaluation-test.json").read_text())["dataset"]["name"] == \
        "colour.npz"
    proc = run_cli("visualize", "1:0", "3:2", "--steps", "5", "--run", run)
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    png = next((run / "vis").glob("*/L1N0.png"))
    assert Image.open(png).mode == "RGB" and Image.open(png).size == (256, 256)
    proc = run_cli("analyze", "--run", run, "--k", "4")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("atlas", "--run", run)
    assert proc.returncode == 0, proc.stderr
    doc = (run / "atlas" / "data" / "meta.js").read_text()
    meta_js = json.loads(doc[doc.index("(") + 1: doc.rindex(")")])
    assert meta_js["tile"] == [32, 32] and meta_js["channels"] == 3
    assert meta_js["class_names"] == NAMES and meta_js["dataset"] == "colour.npz"
    sheet = Image.open(run / "atlas" / "sprites" / "L1.png")
    assert sheet.mode == "RGB" and sheet.size == (32 * 32, 32)
    # the model does not fit MNIST: naming it is one clear error
    assert_user_error(run_cli("evaluate", "--run", run, "--dataset", "mnist"),
                      "takes 3072 inputs")


def test_an_analysis_is_never_reused_for_other_data(colour_npz, tmp_path):
    data = load_dataset(colour_npz)
    model = MLP.init((3072, 12, 3), rng=np.random.default_rng(0), input_shape=(32, 32, 3))
    first = analyze_run(tmp_path, model, data, k=4)
    again = analyze_run(tmp_path, model, data, k=4)
    assert "activations" in again.reused and "examples" in again.reused
    other = Dataset(data.train_x, data.train_y, data.test_x[::-1].copy(), data.test_y[::-1].copy(),
                    name="colour.npz", shape=data.shape, class_names=data.class_names)
    assert other.identity["sha256"] != data.identity["sha256"]
    third = analyze_run(tmp_path, model, other, k=4)
    assert third.reused == []  # every stage recomputed for the other data
    assert third.examples["layers"]["1"]["top_activation"] == \
        first.examples["layers"]["1"]["top_activation"]  # same images, other order
    meta = json.loads((tmp_path / "analysis" / "activations" / "meta.json").read_text())
    assert meta["dataset_sha256"] == other.identity["sha256"]


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"), "not a readable .npz"),
    (lambda p: np.savez(p, x_train=np.zeros((4, 8, 8), np.uint8)), "lacks y_train"),
    (lambda p: np.savez(p, x_train=np.full((4, 4, 4), np.nan, np.float32),
                        y_train=np.zeros(4, np.int64), x_test=np.zeros((2, 4, 4), np.float32),
                        y_test=np.zeros(2, np.int64)), "NaN"),
    (lambda p: np.savez(p, x_train=np.zeros((4, 4, 4), np.uint8), y_train=np.zeros(3, np.int64),
                        x_test=np.zeros((2, 4, 4), np.uint8), y_test=np.zeros(2, np.int64)),
     r"y_train has shape \(3,\), expected \(4,\)"),
    (lambda p: np.savez(p, x_train=np.zeros((4, 4, 4), np.uint8),
                        y_train=np.array([0, 1, 2, 3.5]), x_test=np.zeros((2, 4, 4), np.uint8),
                        y_test=np.zeros(2, np.int64)), "labels are integers"),
    (lambda p: np.savez(p, x_train=np.zeros((4, 10), np.uint8), y_train=np.zeros(4, np.int64),
                        x_test=np.zeros((2, 10), np.uint8), y_test=np.zeros(2, np.int64)),
     "need a declared 'shape'"),
    (lambda p: np.savez(p, x_train=np.array([object()] * 4), y_train=np.zeros(4, np.int64),
                        x_test=np.zeros((2, 4, 4), np.uint8), y_test=np.zeros(2, np.int64)),
     "not a readable .npz"),
])
def test_bad_dataset_files_are_one_clear_error(tmp_path, make, message):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(DataError, match=message):
        load_dataset(path)


def test_a_truncated_npz_through_the_cli(colour_npz, tmp_path):
    cut = tmp_path / "cut.npz"
    cut.write_bytes(colour_npz.read_bytes()[:5000])
    assert_user_error(run_cli("train", "--dataset", cut, "--run", tmp_path / "r"),
                      "not a readable .npz")
    assert_user_error(run_cli("train", "--dataset", "cifar", "--run", tmp_path / "r"),
                      "unknown dataset 'cifar'")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("arrays", "message"), [
    ({"y_train": np.array([0, 1, 2, 2**40])}, "at most 100000 classes"),
    ({"x_test": np.zeros((2, 3, 5, 5), np.uint8)}, "x_test's images are"),
    ({"shape": np.array([4.7, 4.2, 3.9])}, "shape must be three integers"),
])
def test_inconsistent_npz_contents_are_refused(tmp_path, arrays, message):
    base = {"x_train": np.zeros((4, 5, 5, 3), np.uint8), "y_train": np.zeros(4, np.int64),
            "x_test": np.zeros((2, 5, 5, 3), np.uint8), "y_test": np.zeros(2, np.int64)}
    path = tmp_path / "d.npz"
    np.savez(path, **{**base, **arrays})
    with pytest.raises(DataError, match=message):
        load_dataset(path)


def test_a_bare_state_dict_is_opened_with_what_it_does_not_record(tmp_path):
    """A file without activations or input shape (as PyTorch saves it) is used with both
    stated; stating one that contradicts a file that records it is refused."""
    from PIL import Image
    from safetensors.numpy import save_file

    m = MLP.init((3072, 8, 3), rng=np.random.default_rng(0))
    save_file({"0.weight": m.weights[0], "0.bias": m.biases[0], "2.weight": m.weights[1],
               "2.bias": m.biases[1]}, tmp_path / "sd.safetensors")
    args = ("visualize", "1:0", "--steps", "3", "--model", tmp_path / "sd.safetensors",
            "--run", tmp_path / "r")
    assert_user_error(run_cli(*args), "does not record its activations")
    # no data: the readable start (the training set's prototypes) cannot be made
    assert_user_error(run_cli(*args, "--activation", "relu", "--input-shape", "32,32,3"),
                      "prototypes", "--init zero")
    proc = run_cli(*args, "--activation", "relu", "--input-shape", "32,32,3", "--init", "zero")
    assert proc.returncode == 0, proc.stderr
    png = next((tmp_path / "r" / "vis").glob("*/L1N0.png"))
    assert Image.open(png).mode == "RGB"
    m.save(tmp_path / "m.safetensors")  # records 1x3072x1 (3072 is not a square)
    assert_user_error(run_cli("visualize", "1:0", "--model", tmp_path / "m.safetensors",
                              "--input-shape", "32,32,3", "--run", tmp_path / "r2"),
                      "records input shape 1x3072x1")


def test_evaluating_on_other_data_is_said_and_kept_beside(colour_npz, tmp_path):
    import neuronatlas as na

    data = load_dataset(colour_npz)
    run = tmp_path / "run"
    na.train(data, na.TrainConfig(sizes=(3072, 8, 3), epochs=1, fine_tune_epochs=0), run)
    assert run_cli("evaluate", "--run", run).returncode == 0
    own = (run / "evaluation-test.json").read_bytes()
    other = tmp_path / "other.npz"
    (xt, yt), (xv, yv) = colour_arrays(60, 5), colour_arrays(30, 6)
    np.savez(other, x_train=xt, y_train=yt, x_test=xv, y_test=yv)
    proc = run_cli("evaluate", "--run", run, "--dataset", other)
    assert proc.returncode == 0 and "evaluating it on other.npz as asked" in proc.stderr
    assert (run / "evaluation-test.json").read_bytes() == own  # nothing saved is lost
    assert json.loads((run / "evaluation-test-other.npz.json").read_text())["n"] == 30


def save_npz(path, x_train, y_train=None, x_test=None, y_test=None, **extra):
    """A dataset .npz; the test split defaults to the train split's first two rows."""
    y_train = np.arange(len(x_train)) % 2 if y_train is None else y_train
    x_test = x_train[:2] if x_test is None else x_test
    y_test = y_train[:2] if y_test is None else y_test
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **extra)
    return path


@pytest.mark.parametrize("y", [
    np.array([0, 1, 2**63, 2], np.uint64),  # wrapped to a negative label in the int64 cast
    np.array([0, 1, 2**64 - 1, 2], np.uint64),
    np.array([0, 1, 2**63 - 1, 2], np.int64),  # max() + 1 would overflow int64
    np.array([0, 1, 100_000, 2], np.uint32),
    np.array([0, -1, 1, 2], np.int8),
])
def test_labels_out_of_range_are_refused_whatever_their_dtype(tmp_path, y):
    path = save_npz(tmp_path / "d.npz", np.zeros((4, 5, 5), np.uint8), y)
    with pytest.raises(DataError, match="at most 100000 classes|negative labels"):
        load_dataset(path)


def test_uint64_labels_beyond_int64_do_not_train_a_model(tmp_path):
    y = np.arange(40, dtype=np.uint64) % 3
    y[7] = 2**63  # int64 -2**63 once cast: the model trained with exit 0
    path = save_npz(tmp_path / "d.npz", np.zeros((40, 5, 5), np.uint8), y)
    assert_user_error(run_cli("train", "--dataset", path, "--sizes", "25,4,3", "--epochs", "1",
                              "--batch-size", "8", "--run", tmp_path / "r"),
                      "at most 100000 classes")
    assert not (tmp_path / "r").exists()


def test_bool_labels_are_classes_0_and_1(tmp_path):
    path = save_npz(tmp_path / "d.npz", np.zeros((4, 5, 5), np.uint8),
                    np.array([False, True, True, False]))
    data = load_dataset(path)
    assert data.train_y.dtype == np.int64 and data.train_y.tolist() == [0, 1, 1, 0]
    assert data.class_names == ("0", "1")


def test_channels_first_images_are_transposed_and_said(tmp_path):
    """(N, 3, 8, 8) as PyTorch saves it: the pixel that carries the label is the one the
    model's first layer sees there, and the one a weight image shows there."""
    from neuronatlas.vis.display import as_image

    n = 40
    y = np.arange(n) % 2
    pattern = np.random.default_rng(0).integers(0, 100, (3, 8, 8)).astype(np.uint8)
    x = np.repeat(pattern[None], n, axis=0)  # (N, C, H, W), the same in every image
    x[:, 1, 2, 5] = 20 + 200 * y  # only channel 1 of pixel (row 2, column 5) varies
    data = load_dataset(save_npz(tmp_path / "cf.npz", x, y))
    assert data.shape == (8, 8, 3) and data.n_inputs == 192
    assert any("channels-first" in note for note in data.notes)
    seen = data.train_x.reshape(n, 8, 8, 3)  # H, W, C row-major: what every picture assumes
    varying = np.argwhere((seen != seen[:1]).any(axis=0))
    assert varying.tolist() == [[2, 5, 1]]
    np.testing.assert_array_equal(seen[:, 2, 5, 1], ((20 + 200 * y) / np.float32(255)).astype(
        np.float32))
    expected = pattern.transpose(1, 2, 0).copy()  # (H, W, C)
    expected[2, 5, 1] = 20  # image 0 is of label 0
    np.testing.assert_array_equal(seen[0], expected / np.float32(255))
    # a first-layer neuron watching exactly that input is the label detector, and its
    # weight image, shown as H x W x C, lights up at (2, 5) channel 1
    model = MLP.init((192, 4, 2), rng=np.random.default_rng(0), input_shape=data.shape)
    model.weights[0][:] = 0
    model.biases[0][:] = 0
    model.weights[0][3, (2 * 8 + 5) * 3 + 1] = 1
    act = model.activations(data.train_x)[1][:, 3]
    assert act[y == 1].min() > act[y == 0].max()
    image = as_image(model.weights[0][3], data.shape)
    assert np.unravel_index(np.argmax(image), image.shape) == (2, 5, 1)


@pytest.mark.parametrize(("x", "shape", "expected"), [
    (np.zeros((4, 1, 28, 28), np.uint8), None, (28, 28, 1)),  # channels-first, grey
    (np.zeros((4, 28, 28, 1), np.uint8), None, (28, 28, 1)),
    (np.zeros((4, 32, 32, 3), np.uint8), None, (32, 32, 3)),
    (np.zeros((4, 3, 4, 4), np.uint8), [4, 4, 3], (4, 4, 3)),  # the shape entry decides
    (np.zeros((4, 3, 4, 4), np.uint8), [3, 4, 4], (3, 4, 4)),
    (np.zeros((4, 1, 1, 1), np.uint8), None, (1, 1, 1)),  # one value: either way the same
])
def test_the_layout_of_4d_images(tmp_path, x, shape, expected):
    extra = {} if shape is None else {"shape": np.array(shape)}
    data = load_dataset(save_npz(tmp_path / "d.npz", x, **extra))
    assert data.shape == expected and data.n_inputs == x[0].size


def test_a_declared_shape_picks_channels_first_pixels(tmp_path):
    x = np.arange(4 * 48, dtype=np.uint8).reshape(4, 3, 4, 4)
    first = load_dataset(save_npz(tmp_path / "a.npz", x, shape=np.array([4, 4, 3])))
    np.testing.assert_array_equal(first.train_x.reshape(4, 4, 4, 3),
                                  x.transpose(0, 2, 3, 1) / np.float32(255))
    assert first.notes
    last = load_dataset(save_npz(tmp_path / "b.npz", x, shape=np.array([3, 4, 4])))
    np.testing.assert_array_equal(last.train_x, x.reshape(4, 48) / np.float32(255))
    assert last.notes == ()


@pytest.mark.parametrize(("x", "shape", "message"), [
    (np.zeros((4, 3, 4, 4), np.uint8), None, "add a 'shape' entry"),
    (np.zeros((4, 4, 3, 3), np.uint8), None, "add a 'shape' entry"),
    (np.zeros((4, 4, 4, 3), np.uint8), None, "add a 'shape' entry"),
    (np.zeros((4, 3, 3, 3), np.uint8), None, "store them flat"),
    (np.zeros((4, 4, 4, 4), np.uint8), [4, 4, 4], "store them flat"),
    (np.zeros((4, 3, 4, 4), np.uint8), [4, 3, 4], "does not match"),
])
def test_ambiguous_4d_images_are_refused(tmp_path, x, shape, message):
    extra = {} if shape is None else {"shape": np.array(shape)}
    with pytest.raises(DataError, match=message):
        load_dataset(save_npz(tmp_path / "d.npz", x, **extra))


@pytest.mark.parametrize("x", [np.zeros((4, 0, 0), np.uint8), np.zeros((4, 0), np.float32),
                               np.zeros((4, 0, 5, 3), np.uint8)])
def test_images_without_pixels_are_refused(tmp_path, x):
    with pytest.raises(DataError, match="no pixels"):
        load_dataset(save_npz(tmp_path / "d.npz", x))


def test_byte_string_class_names_are_utf8(tmp_path):
    x = np.zeros((4, 5, 5), np.uint8)
    names = np.array([b"cat", "chèvre".encode()])
    assert load_dataset(save_npz(tmp_path / "a.npz", x, class_names=names)).class_names == \
        ("cat", "chèvre")
    with pytest.raises(DataError, match="UTF-8"):
        load_dataset(save_npz(tmp_path / "b.npz", x, class_names=np.array([b"cat", b"\xff"])))


def test_a_path_with_a_nul_byte_is_one_clear_error():
    for path in ("a\x00b.npz", Path("/tmp\x00/x.npz")):
        with pytest.raises(DataError, match="NUL byte"):
            load_dataset(path)
    from neuronatlas import load_npz

    with pytest.raises(DataError, match="NUL byte"):
        load_npz("x\x00y")


def test_a_model_is_not_used_on_images_of_another_layout():
    """The same count of inputs in another order (a 4x4x3 model on 3x4x4 images, as a
    channels-first file was read before) scrambles every picture: refused, never drawn."""
    from neuronatlas.data import check_fits

    x = np.zeros((4, 48), np.float32)
    y = np.array([0, 1, 0, 1])
    model = na.MLP.init((48, 4, 2), rng=np.random.default_rng(0), input_shape=(4, 4, 3))
    check_fits(model, na.Dataset(x, y, x, y, shape=(4, 4, 3)))
    with pytest.raises(DataError, match="takes 4x4x3 images but arrays's are 3x4x4"):
        check_fits(model, na.Dataset(x, y, x, y, shape=(3, 4, 4)))
    flat = na.MLP.init((48, 4, 2), rng=np.random.default_rng(0))  # states no shape
    check_fits(flat, na.Dataset(x, y, x, y, shape=(3, 4, 4)))
