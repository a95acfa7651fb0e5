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
