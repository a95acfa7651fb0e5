"""neuronatlas analyze through the real entry point, on real MNIST with a tiny model."""

import json

import numpy as np

from neuronatlas import MLP

from .test_cli import assert_user_error, run_cli


def test_analyze_tiny_model_on_mnist(tmp_path, mnist):
    m = MLP.init((784, 12, 10), rng=np.random.default_rng(0))
    m.biases[0][5] = -1000.0  # planted dead neuron
    m.save(tmp_path / "model.safetensors")
    # a model records the data it was made for only when it was trained or imported on it
    assert_user_error(run_cli("analyze", "--run", tmp_path, "--k", "8"), "--dataset")
    m.save(tmp_path / "model.safetensors", {"dataset": "mnist"})
    proc = run_cli("analyze", "--run", tmp_path, "--k", "8")
    assert proc.returncode == 0, proc.stderr
    dead = json.loads((tmp_path / "analysis/dead.json").read_text())
    assert dead["images"] == 70000 and dead["layers"]["1"]["dead"] == [5]
    ex = json.loads((tmp_path / "analysis/examples.json").read_text())
    assert ex["k"] == 8 and len(ex["layers"]["1"]["purity"]) == 12
    again = run_cli("analyze", "--run", tmp_path, "--k", "8")
    assert again.returncode == 0
    assert "reused: activations, dead, examples, visualizations, clusters, layers" in again.stdout


def test_analyze_bad_input(tmp_path):
    assert_user_error(run_cli("analyze", "--run", tmp_path / "nothing"), "does not exist")
    m = MLP.init((784, 4, 10), rng=np.random.default_rng(0))
    m.save(tmp_path / "model.safetensors", {"dataset": "mnist"})
    assert_user_error(run_cli("analyze", "--run", tmp_path, "--k", "0"), "k must be")
    assert_user_error(run_cli("analyze", "--run", tmp_path, "--k", "70001"), "k must be")
