"""Results as a user meets them: printed in a few lines, shown as a picture, checked on
the way in (query), and the output neurons' ratio left out where it means nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

import neuronatlas as na
from neuronatlas.vis.images import ImageError

from .test_cli import assert_user_error, run_cli


@pytest.fixture(scope="module")
def model():
    return na.MLP.init((784, 16, 10), rng=np.random.default_rng(0))


def test_printing_a_result_shows_shapes_not_numbers(model):
    """Printing a VisResult or QueryResult dumped 15-25 k characters of arrays."""
    res = na.visualize(model, [(1, i) for i in range(16)], na.VisConfig(steps=2))
    q = na.query(model, np.full(784, 0.5, np.float32), (1, 3))
    for text in (repr(res), repr(q), str(q)):
        assert len(text) < 1200, len(text)
    assert "images=float32 (16, 784)" in repr(res)
    assert "activations={1: float32 (16,), 2: float32 (10,)}" in repr(q)


def test_results_show_themselves_as_a_png(model):
    import io

    from PIL import Image

    res = na.visualize(model, [(1, 0), (1, 1), (2, 3)], na.VisConfig(steps=2))
    img = Image.open(io.BytesIO(res._repr_png_()))
    assert img.size == (3 * (3 * 28 + 2), 3 * 28)  # three tiles, 1-pixel gaps, scale 3
    q = na.query(model, np.full(784, 0.5, np.float32))
    assert Image.open(io.BytesIO(q._repr_png_())).size == (84, 84)


@pytest.mark.parametrize("image, match", [
    (np.full(784, 255.0), "divide 0-255 pixels by 255"),
    (np.full(784, 255, np.uint8), "divide 0-255 pixels by 255"),
    (np.full(784, np.nan), "NaN"), (np.zeros(783), "783 values"),
    (np.full(784, -0.1), "got -0.1"), (np.array(["a"] * 784), "values of <U1")])
def test_query_refuses_what_the_cli_refuses(model, image, match):
    """na.query took 0-255 pixels (activation 682 on the paper's network) where the CLI
    refuses them."""
    with pytest.raises(ImageError, match=match):
        na.query(model, image)


def test_an_output_target_has_no_ratio(model):
    """Under SoftMax the ratio of two probabilities is e^(z_i - z_j) (2.6e8 on the paper's
    network): not how much a neuron stands out."""
    x = np.full(784, 0.5, np.float32)
    assert na.query(model, x, (2, 3)).ratio is None
    assert na.query(model, x, (1, 3)).ratio is not None


def test_a_null_ratio_says_which_null_it_is(model):
    """JSON has no inf or NaN, so an infinite ratio, an undefined one (a negative
    activation under GELU) and an output's were all ``null``, and the CLI and the live
    page showed each as "inf" / "only this neuron is active"; ``ratio_kind`` tells them
    apart and the text says what each means."""
    from neuronatlas.vis.query import ratio_text

    gelu = na.MLP.init((784, 16, 10), rng=np.random.default_rng(0), activation="gelu")
    W = gelu.weights[0]
    W[:] = 0
    gelu.biases[0][:] = -1.0  # every neuron at GELU(-1) < 0
    gelu.biases[0][3] = 2.0
    x = np.full(784, 0.5, np.float32)
    assert na.query(gelu, x, (1, 3)).to_dict()["ratio_kind"] == "undefined"
    relu = na.MLP.init((784, 16, 10), rng=np.random.default_rng(0))
    relu.weights[0][:] = 0
    relu.biases[0][:] = -1.0
    relu.biases[0][3] = 2.0  # only neuron 3 is active
    q = na.query(relu, x, (1, 3)).to_dict()
    assert (q["ratio"], q["ratio_kind"]) == (None, "infinite")
    q = na.query(relu, x, (2, 3)).to_dict()
    assert (q["ratio"], q["ratio_kind"]) == (None, "output")
    assert na.query(model, x, (1, 3)).to_dict()["ratio_kind"] == "finite"
    assert na.query(model, x).to_dict()["ratio_kind"] is None  # no target, no ratio
    res = na.visualize(model, [(1, 3), (2, 3)], na.VisConfig(steps=2))
    assert res.record(1)["ratio"] is None and res.record(1)["ratio_kind"] == "output"
    assert np.isfinite(res.ratio[1])  # the array keeps it, as the paper's captions do
    assert [ratio_text(r) for r in (2.0, float("inf"), float("nan"), None)] == [
        "2.00", "inf (only this neuron is active)", "none (a negative activation: no ratio)",
        "none (an output neuron: compare the probabilities)"]


def test_query_json_has_every_activation(tmp_path, model):
    model.save(tmp_path / "model.safetensors", {"dataset": "mnist"})
    np.save(tmp_path / "x.npy", np.full(784, 0.25, np.float32))
    proc = run_cli("query", tmp_path / "x.npy", "--run", tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    acts = model.activations(np.full((1, 784), 0.25, np.float32))
    for layer in ("1", "2"):
        assert np.allclose(doc["layers"][layer]["activations"], acts[int(layer)][0])


def test_a_target_typo_is_reported_before_a_missing_model(tmp_path):
    """`7.1` or `L7N1` was reported as "no model" when the run had none."""
    for argv in (["visualize", "7.1"], ["visualize", "L7N1"],
                 ["query", "x.png", "--target", "7.1"]):
        assert_user_error(run_cli(*argv, "--run", tmp_path / "none"),
                          "is not LAYER:NEURON")


def test_init_image_on_the_command_line_says_what_it_means(tmp_path, model):
    """`--init image` reached the image loader and said "image not found: image"."""
    model.save(tmp_path / "model.safetensors", {"dataset": "mnist"})
    assert_user_error(run_cli("visualize", "1:0", "--run", tmp_path, "--init", "image"),
                      "a start image given from Python")
