"""Each paper figure, drawn from small fake inputs, has the panels and labels its caption
requires (each caption is quoted in its figure's module, neuronatlas/figures/figN.py)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex, to_rgba
from matplotlib.figure import Figure

from neuronatlas.figures import drawing as D
from neuronatlas.figures import fig1, fig2, fig3, fig4, fig5, fig6, fig7
from neuronatlas.figures.common import TV_DOUBLING, most_selective
from neuronatlas.figures.drawing import figure_bytes

rng = np.random.default_rng(0)


def image_axes(fig: Figure) -> dict:
    """Axes that show a 28x28 image, by their label."""
    return {ax.get_label(): ax for ax in fig.get_axes() if ax.images}


def texts(ax) -> list:
    return list(ax.texts)


def all_strings(fig: Figure) -> str:
    parts = [t.get_text() for ax in fig.get_axes() for t in ax.texts]
    parts += [ax.get_title() for ax in fig.get_axes()] + [ax.get_ylabel() for ax in fig.get_axes()]
    parts += [f._suptitle.get_text() for f in [fig, *fig.subfigs] if f._suptitle]
    return "\n".join(parts)


def test_fig1_unclipped_above_clipped_with_green_activation_and_grey_second():
    targets = np.array([[8, 0], [8, 3], [7, 1]])
    n = len(targets)
    fig = fig1.draw(targets=targets, steps=np.array([50, 50, 25]),
                 images_raw=rng.normal(size=(n, 784)), images_clipped=rng.random((n, 784)),
                 activation_raw=np.array([0.99, 0.98, 12.5]),
                 activation_clipped=np.array([0.97, 0.96, 8.25]),
                 next_raw=np.array([0.004, 0.01, 3.5]), next_clipped=np.array([0.01, 0.02, 2.5]))
    axes = image_axes(fig)
    assert len(axes) == 2 * n
    top, bottom = axes["8:3 unclipped"], axes["8:3 clipped"]
    assert top.get_position().y0 > bottom.get_position().y0  # unclipped above clipped
    act, second = texts(bottom)
    assert act.get_text() == "0.9600" and to_hex(act.get_color()) == D.GREEN
    assert second.get_text() == "0.0200" and to_hex(second.get_color()) == D.GREY
    assert [t.get_text() for t in texts(axes["7:1 clipped"])] == ["8.25", "2.5"]
    assert "50 steps" in axes["8:0 unclipped"].get_title()
    assert "25 steps" in axes["7:1 unclipped"].get_title()


def fake_fig2(n=2):
    labels, targets = np.array([3, 7])[:n], np.array([1, 2])[:n]
    po = np.full((n, 10), 1e-4)
    pa = np.full((n, 10), 1e-4)
    for i in range(n):
        po[i, labels[i]] = 0.99
        po[i, targets[i]] = 0.002
        pa[i, targets[i]] = 0.995
        pa[i, labels[i]] = 0.004
    return {"index": np.arange(n), "labels": labels, "targets": targets,
            "originals": rng.random((n, 784)), "adversarials": rng.random((n, 784)),
            "probs_original": po, "probs_adversarial": pa,
            "steps_to_confidence": np.array([12, -1])[:n]}


def test_fig2_pairs_with_top_class_bars_and_other_share():
    d = fake_fig2()
    fig = fig2.draw(**d)
    axes = {ax.get_label(): ax for ax in fig.get_axes()}
    for key in ("Ai", "Aii", "Bi", "Bii"):
        assert axes[key].images
    # the original is correct (green bar), the adversarial example is not (red bar)
    assert to_hex(axes["Ai top"].patches[0].get_facecolor()) == D.GREEN
    assert to_hex(axes["Aii top"].patches[0].get_facecolor()) == D.RED
    assert axes["Ai top"].patches[0].get_width() == pytest.approx(0.99)
    assert axes["Ai top"].texts[0].get_text() == "3: 99.0000%"
    # second bar of the original: class 1's share of the other classes' total
    rest = float(np.delete(d["probs_original"][0], 3).sum())
    assert axes["Ai other"].patches[0].get_width() == pytest.approx(0.002 / rest)
    assert to_hex(axes["Ai other"].patches[0].get_facecolor()) == D.LIGHT_RED
    assert to_hex(axes["Aii other"].patches[0].get_facecolor()) == D.LIGHT_GREEN
    assert axes["Aii other"].texts[0].get_text().startswith("3: ")


def test_fig2_never_rounds_up_to_100_percent():
    assert D.percent(0.99999999) == ">99.9999%"
    assert D.percent(0.992693) == "99.2693%"


def test_fig3_rows_of_nodes_tv_columns_and_the_mnist_average_on_the_left():
    nodes, tv = np.array([0, 3, 5]), np.array(TV_DOUBLING)
    act = rng.random((3, 7))
    fig = fig3.draw(nodes=nodes, tv=tv, images=rng.random((3, 7, 784)), activation=act,
                 averages=rng.random((3, 784)))
    axes = image_axes(fig)
    assert len(axes) == 3 * 8
    avg, first = axes["average 3"], axes["3 tv=0.004"]
    assert avg.get_position().x0 < first.get_position().x0
    assert axes["0 tv=0.256"].get_title() == "TV 0.256"
    (label,) = texts(axes["5 tv=0.064"])
    assert label.get_text() == f"{act[2, 4]:.4f}" and to_hex(label.get_color()) == D.RED


def grid_inputs(target, steps_act):
    tv, pct = np.array([0.004, 0.016, 0.064]), np.array([0, 10, 20, 30])
    return {"target": np.array(target), "tv": tv, "l1_percent": pct,
            "images": rng.random((3, 4, 784)), "activation": steps_act,
            "ratio": np.linspace(0.5, 2.0, 12).reshape(3, 4)}


def test_fig4_boxes_have_opacity_one_minus_activation():
    act = np.linspace(0.1, 0.99, 12).reshape(3, 4)
    fig = fig4.draw(**grid_inputs([8, 3], act))
    axes = image_axes(fig)
    assert len(axes) == 12
    (t,) = texts(axes["tv=0.016 l1=20%"])
    assert t.get_text() == f"{act[1, 2]:.4f}"
    assert to_rgba(t.get_bbox_patch().get_facecolor())[3] == pytest.approx(1 - act[1, 2])
    assert axes["tv=0.004 l1=30%"].get_title() == "L1 30% of TV"
    assert axes["tv=0.064 l1=0%"].get_ylabel() == "TV 0.064"
    assert "output neuron 3" in all_strings(fig)


def test_fig5_ratio_with_raw_activation_and_opacity_from_the_max_ratio():
    d = grid_inputs([7, 1], np.full((3, 4), 10.0))
    d["ratio"][0, 0] = np.inf  # a silent next-highest neuron
    fig = fig5.draw(**d)
    axes = image_axes(fig)
    (t,) = texts(axes["tv=0.064 l1=30%"])
    assert t.get_text() == "2.00 (10)"
    top = 2.0  # the largest finite ratio
    (t2,) = texts(axes["tv=0.016 l1=0%"])
    assert to_rgba(t2.get_bbox_patch().get_facecolor())[3] == pytest.approx(
        1 - d["ratio"][1, 0] / top)
    assert texts(axes["tv=0.004 l1=0%"])[0].get_text().startswith("inf")
    assert "hidden neuron 7:1" in all_strings(fig) and "max ratio 2.00" in all_strings(fig)


@pytest.mark.parametrize("fn, number", [(fig6.draw, 6), (fig7.draw, 7)])
def test_fig6_and_fig7_sets_with_hyperparameters_ratio_and_top3(fn, number):
    n = 5
    d = {"titles": np.array(["hidden layer 7: TV 0.256", "hidden layer 5: TV 0.064"]),
         "set_index": np.array([0, 0, 0, 1, 1]), "targets": np.array(
             [[7, 1], [7, 2], [7, 3], [5, 10], [5, 11]]),
         "images": rng.random((n, 784)), "ratio": np.array([2.0, 1.5, 1.2, 1.1, 0.9]),
         "activation": np.array([4.0, 3.0, 2.0, 1.0, 0.5]),
         "top3_classes": np.tile([3, 5, 8], (n, 1)),
         "top3_probs": np.tile([0.6, 0.3, 0.05], (n, 1))}
    fig = fn(**d)
    axes = image_axes(fig)
    assert set(axes) == {"7:1", "7:2", "7:3", "5:10", "5:11"}
    ratio, top3 = texts(axes["7:2"])
    assert ratio.get_text() == "1.50 (3)" and to_hex(ratio.get_color()) == D.RED
    assert top3.get_text() == "3: 60%  5: 30%  8: 5%"
    s = all_strings(fig)
    assert "hidden layer 7: TV 0.256" in s and "hidden layer 5: TV 0.064" in s
    assert f"Figure {number}" in s
    # each set's title sits above its images
    fig.draw_without_rendering()
    assert axes["7:1"].get_window_extent().y0 > axes["5:10"].get_window_extent().y1


def test_figure_bytes_are_reproducible():
    d = fake_fig2(1)
    a = figure_bytes(fig2.draw(**d), "png")
    b = figure_bytes(fig2.draw(**d), "png")
    assert a == b and a[:4] == b"\x89PNG"
    p1, p2 = (figure_bytes(fig2.draw(**d), "pdf") for _ in range(2))
    assert p1 == p2 and p1[:4] == b"%PDF"


def test_most_selective_picks_the_highest_ratio_of_active_neurons():
    targets = np.array([[1, 0], [1, 1], [1, 2], [1, 3], [2, 0]])
    ratio = np.array([1.5, np.inf, 3.0, 9.0, 99.0])
    act = np.array([1.0, 0.5, 2.0, 0.0, 1.0])  # 1:3 is inactive
    assert most_selective(targets, ratio, act, 1, 2) == [1, 2]
    assert most_selective(targets, ratio, act, 2, 5) == [0]
