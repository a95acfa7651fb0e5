"""visualize / query / adversarial through the real entry point."""

import json

import numpy as np
import pytest
from PIL import Image

from neuronatlas import MLP

from .test_cli import assert_user_error, run_cli

SIZES = (784, 1250, 20, 10)  # layer 1 as wide as the paper's


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    m = MLP.init(SIZES, rng=np.random.default_rng(0))
    for b in m.biases:
        b[:] = 0.01
    m.metadata["dataset"] = "mnist"  # the readable pictures start from its prototypes
    m.save(run / "model.safetensors")
    return run


def test_visualize_writes_png_npy_and_json(run):
    proc = run_cli("visualize", "3:4", "1:7", "--steps", "10", "--run", run, "--scale", "4")
    assert proc.returncode == 0, proc.stderr
    folders = list((run / "vis").iterdir())
    assert len(folders) == 1
    folder = folders[0]
    rec = json.loads((folder / "L3N4.json").read_text())
    assert rec["layer"] == 3 and rec["neuron"] == 4 and rec["config"]["steps"] == 10
    assert len(rec["top3"]) == 3 and rec["activation"] > 0
    img = np.load(folder / "L1N7.npy")
    assert img.shape == (784,) and img.dtype == np.float32
    png = np.asarray(Image.open(folder / "L3N4.png"))
    assert png.shape == (112, 112) and png.min() == 0 and png.max() == 255  # stretched
    raw = np.load(folder / "L3N4.npy")  # the .npy keeps the raw values; the range is recorded
    assert rec["png_range"] == pytest.approx([float(raw.min()), float(raw.max())])
    assert json.loads((folder / "config.json").read_text())["steps"] == 10
    assert "L3N4: activation" in proc.stdout


def test_presets_and_flags_on_top_of_them(run):
    import neuronatlas as na
    from neuronatlas.vis.store import config_id

    proc = run_cli("visualize", "3:4", "--preset", "paper", "--steps", "7", "--run", run)
    assert proc.returncode == 0, proc.stderr
    paper = na.VisConfig(steps=7)
    folder = run / "vis" / config_id(paper)
    expected = na.visualize(MLP.load(run / "model.safetensors"), [(3, 4)], paper).images[0]
    np.testing.assert_array_equal(np.load(folder / "L3N4.npy"), expected)  # the paper's bits
    proc = run_cli("visualize", "3:4", "--preset", "diverse", "--steps", "5", "--no-normalize",
                   "--run", run)
    assert proc.returncode == 0, proc.stderr
    cfg = na.VisConfig.preset("diverse", steps=5, normalize=False)
    folder = run / "vis" / config_id(cfg)
    assert np.load(folder / "L3N4_diverse.npy").shape == (4, 784)
    assert Image.open(folder / "L3N4_diverse.png").size == (8 * (4 * 28 + 3), 8 * 28)


def test_visualize_a_whole_layer(run):
    proc = run_cli("visualize", "--layer", "2", "--steps", "3", "--tv", "0", "--run", run)
    assert proc.returncode == 0, proc.stderr
    assert "written 20 visualisation(s)" in proc.stdout


@pytest.mark.parametrize(("args", "fragment"), [
    (["0:1"], "layer 0 does not exist"),
    (["4:1"], "layer 4 does not exist"),
    (["1:1250"], "neuron 1250 does not exist in layer 1"),
    (["7:x"], "not LAYER:NEURON"),
    (["1:1", "--steps", "0"], "steps must be"),
    (["1:1", "--tv", "-0.5"], "tv must be"),
    (["1:1", "--lr", "nan"], "lr must be"),
    ([], "name targets"),
    (["1:1", "--preset", "pretty"], "Invalid value for '--preset'"),
    (["1:1", "--param", "wavelet"], "Invalid value for '--param'"),
    (["1:1", "--tv-beta", "3"], "tv_beta must be"),
    (["1:1", "--decay", "nan"], "decay must be"),
    (["1:1", "--diversity", "0"], "diversity must be"),
    (["1:1", "--diversity", "99"], "diversity must be at most 16"),
    (["1:1", "--jitter-px", "28"], "jitter_px must be at most"),
    (["1:1", "--zoom", "inf"], "zoom must be"),
])
def test_visualize_bad_input(run, args, fragment):
    before = sorted(p.name for p in run.rglob("*"))
    assert_user_error(run_cli("visualize", *args, "--run", run), fragment)
    assert sorted(p.name for p in run.rglob("*")) == before  # nothing written


def test_query_images_and_errors(run, tmp_path):
    img = (np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)
    Image.fromarray(img, mode="L").save(tmp_path / "digit.png")
    proc = run_cli("query", tmp_path / "digit.png", "--target", "2:3", "--run", run, "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["target"] == [2, 3] and len(res["top3"]) == 3
    assert set(res["layers"]) == {"1", "2", "3"}
    np.save(tmp_path / "digit.npy", img.astype(np.float32) / 255)
    proc = run_cli("query", tmp_path / "digit.npy", "--target", "3:1", "--run", run)
    assert proc.returncode == 0 and "top-3 outputs" in proc.stdout

    Image.fromarray(np.zeros((20, 28), np.uint8)).save(tmp_path / "small.png")
    assert_user_error(run_cli("query", tmp_path / "small.png", "--run", run), "expected 28x28")
    rgb = np.zeros((28, 28, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "red.png")
    assert_user_error(run_cli("query", tmp_path / "red.png", "--run", run), "colour image")
    np.save(tmp_path / "nan.npy", np.full(784, np.nan, np.float32))
    assert_user_error(run_cli("query", tmp_path / "nan.npy", "--run", run), "NaN")
    assert_user_error(run_cli("query", tmp_path / "none.png", "--run", run), "not found")
    assert_user_error(run_cli("query", tmp_path / "digit.png", "--target", "9:0", "--run", run),
                      "layer 9 does not exist")
    (tmp_path / "empty.npy").write_bytes(b"")
    assert_user_error(run_cli("query", tmp_path / "empty.npy", "--run", run), "not a readable")
    np.savez(tmp_path / "arch.npz", a=np.zeros(784))
    (tmp_path / "arch.npz").rename(tmp_path / "arch.npy")
    assert_user_error(run_cli("query", tmp_path / "arch.npy", "--run", run), ".npz archive")
    for bad in ("mnist:abc", "mnist:", "mnist:-1"):
        assert_user_error(run_cli("query", bad, "--run", run), "expected mnist:<test-set index>")
    assert_user_error(run_cli("visualize", "7:\u00b2", "--run", run), "not LAYER:NEURON")


def test_a_model_of_other_sizes_works_until_its_data_does_not_fit(tmp_path, mnist):
    """Any input and output size works with the verbs that need no data (visualize from a
    blank start, query); a dataset that does not fit the model is one clear error, never a
    crash."""
    m = MLP.init((100, 5, 47), rng=np.random.default_rng(0))
    m.metadata["dataset"] = "mnist"
    m.save(tmp_path / "model.safetensors")
    proc = run_cli("visualize", "1:1", "2:46", "--steps", "3", "--run",
                   tmp_path, "--init", "zero")
    assert proc.returncode == 0, proc.stderr
    assert_user_error(run_cli("visualize", "1:1", "--steps", "3", "--run", tmp_path),
                      "takes 100", "--init zero")
    assert (tmp_path / "vis").is_dir()
    assert_user_error(run_cli("evaluate", "--run", tmp_path), "takes 100 inputs",
                      "--dataset")
    MLP.init((784, 5, 4), rng=np.random.default_rng(0)).save(tmp_path / "m4.safetensors")
    assert_user_error(run_cli("evaluate", "--model", tmp_path / "m4.safetensors",
                              "--dataset", "mnist", "--run", tmp_path / "m4"),
                      "labels up to 9", "only 4 outputs")


def test_model_with_nan_is_refused(tmp_path):
    m = MLP.init((784, 5, 10), rng=np.random.default_rng(0))
    m.biases[0][2] = np.nan
    m.save(tmp_path / "model.safetensors")
    assert_user_error(run_cli("visualize", "1:1", "--run", tmp_path), "NaN")


@pytest.mark.slow
def test_adversarial_cli(quick_run):
    proc = run_cli("adversarial", "--index", "3", "--target", "5", "--run", quick_run)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads((quick_run / "adversarial/mnist3_to5.json").read_text())
    assert rec["mean_abs"] < 0.08 and "mean |change| per pixel" in proc.stdout
    assert rec["new_top"]["class"] == 5 and rec["target_probability"] > 0.99
    assert (quick_run / "adversarial/mnist3_to5_pair.png").is_file()
    assert np.load(quick_run / "adversarial/mnist3_to5.npy").shape == (784,)
    assert_user_error(run_cli("adversarial", "--index", "3", "--target", "10", "--run",
                              quick_run), "target class 10 does not exist")
    assert_user_error(run_cli("adversarial", "--index", "10000", "--target", "1", "--run",
                              quick_run), "the test set has 10000 images")
