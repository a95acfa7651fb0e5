"""The paper's Figures 1-7, one function each, drawn from arrays (see :mod:`experiments`).

Every function returns a :class:`matplotlib.figure.Figure` (never shown; no pyplot
state) whose image axes carry a label naming their tile (``"8:3 clipped"``,
``"tv=0.016 l1=10%"``) so a test or a caller can find each panel. Each image is drawn
in grey scaled to its own minimum and maximum, as ``imshow`` does by default, with
nearest-neighbour pixels (the paper's "NB" under Figure 1); the visualisations are
faint (pixel values of a few hundredths), so a common scale would hide them.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .shapes import MNIST_SHAPE

GREEN, RED, GREY = "#1a8a2e", "#c0161b", "#8a8a8a"
LIGHT_GREEN, LIGHT_RED = "#9fd8a9", "#f2a3a5"
TILE = 1.05  # inches per tile (a 28x28 image in the paper's figures)


def _image(ax: Axes, image: np.ndarray, label: str, shape=MNIST_SHAPE) -> None:
    """One tile (grey, or colour for 3 channels), scaled to its own range, no ticks."""
    h, w, c = shape
    img = np.asarray(image, dtype=np.float64).reshape((h, w) if c == 1 else (h, w, c))
    lo, hi = float(img.min()), float(img.max())
    if not hi > lo:
        lo, hi = 0.0, 1.0
    if c == 1:
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    else:
        ax.imshow((img - lo) / (hi - lo), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_label(label)


def _below(ax: Axes, lines: list[tuple[str, dict]], start: float = -0.04,
           step: float = 0.15) -> None:
    """Lines of text under a tile (each with its own colour, box, size)."""
    for k, (text, style) in enumerate(lines):
        ax.text(0.5, start - k * step, text, transform=ax.transAxes, ha="center", va="top",
                fontsize=style.pop("fontsize", 7.5), **style)


def _fmt_act(value: float, output: bool) -> str:
    return f"{value:.4f}" if output else f"{value:.3g}"


def _ratio(ratio: float, activation: float) -> str:
    r = "inf" if not np.isfinite(ratio) else f"{ratio:.2f}"
    return f"{r} ({activation:.3g})"


def _target(t) -> str:
    return f"{int(t[0])}:{int(t[1])}"


def _cls(class_names, c) -> str:
    """A class as the figures show it: its number, with its name where that differs."""
    c = int(c)
    name = class_names[c] if class_names is not None and c < len(class_names) else str(c)
    return str(c) if name == str(c) else f"{c} {name}"


def fig1(targets, steps, images_raw, images_clipped, activation_raw, activation_clipped,
         next_raw, next_clipped, *, shape=MNIST_SHAPE, class_names=None, dataset=None) -> Figure:
    """Figure 1: unregularised images (top row) above their clipped counterparts; under
    each its activation (green) and the second-most activated node's (grey)."""
    targets = np.asarray(targets)
    n = len(targets)
    out_layer = int(targets[:, 0].max())
    fig = Figure(figsize=(TILE * n + 1.2, 2 * TILE + 1.6), layout="constrained")
    axes = fig.subplots(2, n, squeeze=False, gridspec_kw={"hspace": 0.35})
    rows = (("unclipped", images_raw, activation_raw, next_raw),
            ("clipped", images_clipped, activation_clipped, next_clipped))
    for r, (tag, images, act, nxt) in enumerate(rows):
        for c in range(n):
            ax, output = axes[r, c], int(targets[c, 0]) == out_layer
            _image(ax, images[c], f"{_target(targets[c])} {tag}", shape)
            if r == 0:
                kind = "output" if output else "hidden"
                ax.set_title(f"{kind} {_target(targets[c])}\n{int(steps[c])} steps", fontsize=8)
            if c == 0:
                ax.set_ylabel(tag, fontsize=9)
            _below(ax, [(_fmt_act(act[c], output), {"color": GREEN}),
                        (_fmt_act(nxt[c], output), {"color": GREY})])
    fig.suptitle("Figure 1: no regularisation, without (top) and with (bottom) numpy.clip",
                 fontsize=10)
    return fig


def fig2(index, labels, targets, originals, adversarials, probs_original, probs_adversarial,
         steps_to_confidence, *, shape=MNIST_SHAPE, class_names=None,
         dataset: str = "MNIST") -> Figure:
    """Figure 2: MNIST images beside their adversarial examples. Under each: its top
    class and probability (bar green when that is the image's true class, red when not),
    then a lighter bar: the share of the other classes' total probability that belongs to
    the other image's class (green when that class is the true one)."""
    n = len(labels)
    per_row = min(n, 3)
    groups = -(-n // per_row)
    fig = Figure(figsize=(2 * per_row * (TILE + 0.45), groups * (TILE + 1.25) + 0.5),
                 layout="constrained")
    grid = fig.add_gridspec(3 * groups, 2 * per_row,
                            height_ratios=[1, 0.16, 0.16] * groups)
    for p in range(n):
        g, col = divmod(p, per_row)
        letter = chr(ord("A") + p)
        label, target = int(labels[p]), int(targets[p])
        pair = ((originals[p], probs_original[p], target, "i"),
                (adversarials[p], probs_adversarial[p], label, "ii"))
        for k, (image, probs, other, roman) in enumerate(pair):
            ax = fig.add_subplot(grid[3 * g, 2 * col + k])
            _image(ax, image, f"{letter}{roman}", shape)
            ax.set_title(f"{letter}{roman}" + (f"  (test #{int(index[p])})" if k == 0 else
                                               f"  (→ {_cls(class_names, target)})"), fontsize=8)
            probs = np.asarray(probs, dtype=np.float64)
            top = int(np.argmax(probs))
            _bar(fig.add_subplot(grid[3 * g + 1, 2 * col + k]), float(probs[top]),
                 f"{_cls(class_names, top)}: {_percent(probs[top])}",
                 GREEN if top == label else RED,
                 f"{letter}{roman} top")
            rest = float(np.delete(probs, top).sum())
            share = float(probs[other]) / rest if rest > 0 else 0.0
            _bar(fig.add_subplot(grid[3 * g + 2, 2 * col + k]), share,
                 f"{_cls(class_names, other)}: {100 * probs[other]:.3g}% of {100 * rest:.3g}%",
                 LIGHT_GREEN if other == label else LIGHT_RED, f"{letter}{roman} other",
                 small=True)
    fig.suptitle(f"Figure 2: {dataset} images (i) and the adversarial examples made from them "
                 "(ii)", fontsize=10)
    return fig


def _percent(p: float) -> str:
    """A probability as the paper writes it (99.2693%), never rounded up to 100%."""
    text = f"{100 * p:.4f}%"
    return ">99.9999%" if text == "100.0000%" and p < 1 else text


def _bar(ax: Axes, value: float, text: str, color: str, label: str, small: bool = False) -> None:
    ax.barh([0], [max(value, 0.0)], height=0.6 if small else 0.9, color=color)
    ax.barh([0], [1.0], height=0.6 if small else 0.9, color="none", edgecolor=GREY, lw=0.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.5, 0.5)
    ax.axis("off")
    ax.text(0.02, 0, text, va="center", ha="left", fontsize=6.5 if small else 7.5,
            color="black")
    ax.set_label(label)


def fig3(nodes, tv, images, activation, averages, steps=100, *, shape=MNIST_SHAPE,
         class_names=None, dataset: str = "MNIST") -> Figure:
    """Figure 3: output nodes (rows) x TV weight (columns, exponential), the average of
    the MNIST images that drive each node on the left; activation under each in red."""
    R, C = images.shape[:2]
    fig = Figure(figsize=(TILE * (C + 1) + 0.6, R * (TILE + 0.35) + 0.8), layout="constrained")
    axes = fig.subplots(R, C + 1, squeeze=False)
    for r in range(R):
        ax = axes[r, 0]
        _image(ax, averages[r], f"average {int(nodes[r])}", shape)
        ax.set_ylabel(f"node {_cls(class_names, nodes[r])}", fontsize=9)
        if r == 0:
            ax.set_title(f"{dataset} average", fontsize=8)
        for c in range(C):
            ax = axes[r, c + 1]
            _image(ax, images[r, c], f"{int(nodes[r])} tv={tv[c]:g}", shape)
            if r == 0:
                ax.set_title(f"TV {tv[c]:g}", fontsize=8)
            _below(ax, [(f"{activation[r, c]:.4f}", {"color": RED})])
    fig.suptitle("Figure 3: output neurons, TV weight doubling from left to right "
                 f"({len(tv)} weights, {int(steps)} steps, near-zero start, clipped)",
                 fontsize=10)
    return fig


def _grid(target, tv, l1_percent, images, texts, opacity, title: str, shape) -> Figure:
    R, C = images.shape[:2]
    fig = Figure(figsize=(TILE * C + 1.0, R * (TILE + 0.4) + 0.9), layout="constrained")
    axes = fig.subplots(R, C, squeeze=False)
    for r in range(R):
        for c in range(C):
            ax = axes[r, c]
            _image(ax, images[r, c], f"tv={tv[r]:g} l1={int(l1_percent[c])}%", shape)
            if r == 0:
                ax.set_title(f"L1 {int(l1_percent[c])}% of TV", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"TV {tv[r]:g}", fontsize=9)
            a = float(np.clip(opacity[r, c], 0, 1))
            _below(ax, [(texts[r][c], {"color": "white" if a > 0.55 else RED, "bbox": {
                "boxstyle": "square,pad=0.25", "facecolor": (0.85, 0.1, 0.1, a),
                "edgecolor": RED, "linewidth": 0.5}})], start=-0.07)
    fig.suptitle(title, fontsize=10)
    return fig


def fig4(target, tv, l1_percent, images, activation, ratio=None, *, shape=MNIST_SHAPE,
         class_names=None, dataset=None) -> Figure:
    """Figure 4: output neuron 3, TV rows (exponential) x L1 columns (linear, % of TV);
    activation in red, in a red box whose opacity is the error 1 - activation."""
    texts = [[f"{a:.4f}" for a in row] for row in activation]
    return _grid(target, tv, l1_percent, images, texts, 1.0 - np.asarray(activation),
                 f"Figure 4: output neuron {_cls(class_names, target[1])}, TV down x L1 "
                 "across", shape)


def fig5(target, tv, l1_percent, images, activation, ratio, *, shape=MNIST_SHAPE,
         class_names=None, dataset=None) -> Figure:
    """Figure 5: hidden neuron 7:1, the same grid at 30 steps; ratio to the next-highest
    neuron (raw activation), box opacity 1 - ratio / max ratio."""
    ratio = np.asarray(ratio, dtype=np.float64)
    finite = ratio[np.isfinite(ratio)]
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    texts = [[_ratio(r, a) for r, a in zip(rr, aa)] for rr, aa in zip(ratio, activation)]
    opacity = 1.0 - np.nan_to_num(ratio, posinf=top) / top
    return _grid(target, tv, l1_percent, images, texts, opacity,
                 f"Figure 5: hidden neuron {_target(target)}, ratio (raw activation); "
                 f"max ratio {top:.2f}", shape)


def fig_selected(titles, set_index, targets, images, ratio, activation, top3_classes,
                 top3_probs, *, number: int = 6, shape=MNIST_SHAPE, class_names=None,
                 dataset=None) -> Figure:
    """Figures 6 and 7: sets of selected hidden neurons, each set's hyper-parameters
    above it; under each image its ratio (raw activation) in red, then the top-3 outputs
    of the visualisation in light black."""
    sets = [np.flatnonzero(np.asarray(set_index) == s) for s in range(len(titles))]
    C = max(len(rows) for rows in sets)
    fig = Figure(figsize=(TILE * 1.15 * C + 0.4, len(sets) * (TILE + 1.05) + 0.5),
                 layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(len(sets), 1))
    for sub, title, rows in zip(subfigs, titles, sets):
        sub.suptitle(str(title), fontsize=9)
        axes = np.atleast_1d(sub.subplots(1, C))
        for ax in axes[len(rows):]:
            ax.axis("off")
        for ax, i in zip(axes, rows):
            _image(ax, images[i], _target(targets[i]), shape)
            ax.set_title(_target(targets[i]), fontsize=8)
            top3 = "  ".join(f"{_cls(class_names, c)}: {100 * p:.0f}%" for c, p in
                             zip(top3_classes[i], top3_probs[i]))
            _below(ax, [(_ratio(float(ratio[i]), float(activation[i])), {"color": RED}),
                        (top3, {"color": "#555555", "fontsize": 6.5})])
    fig.suptitle(f"Figure {number}: selected hidden neurons — ratio (raw activation), "
                 "top-3 outputs", fontsize=10)
    return fig


def fig6(**arrays) -> Figure:
    """Figure 6: selected neurons of hidden layers 7 and 5."""
    return fig_selected(**arrays, number=6)


def fig7(**arrays) -> Figure:
    """Figure 7: selected neurons of hidden layers 3 and 1."""
    return fig_selected(**arrays, number=7)


def figure_bytes(fig: Figure, fmt: str) -> bytes:
    """PNG or PDF bytes that depend only on the figure (no dates, no version stamps), so
    the same data gives the same file."""
    buf = io.BytesIO()
    meta = ({"Software": None} if fmt == "png" else
            {"Creator": None, "Producer": None, "CreationDate": None})
    fig.savefig(buf, format=fmt, dpi=150, metadata=meta)
    return buf.getvalue()


def fig_methods(methods, targets, images, activation, natural, *, shape=MNIST_SHAPE,
                class_names=None, dataset=None) -> Figure:
    """Beyond the paper: the same neurons (columns) under each method (rows), each tile
    scaled to its own range with its activation under it; the last row is the neuron's
    average top-9 dataset image (the "natural" reference)."""
    targets = np.asarray(targets)
    rows, n = len(methods) + 1, len(targets)
    fig = Figure(figsize=(TILE * n + 1.6, (TILE + 0.3) * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, n, squeeze=False)
    for r in range(rows):
        name = methods[r] if r < len(methods) else f"top-9 {dataset or 'dataset'} images"
        for c in range(n):
            ax = axes[r, c]
            image = images[r, c] if r < len(methods) else natural[c]
            _image(ax, image, f"{name} {_target(targets[c])}", shape)
            if r < len(methods):
                _below(ax, [(f"{activation[r, c]:.3g}", {"color": GREEN})], step=0.0)
            if r == 0:
                ax.set_title(_target(targets[c]), fontsize=8)
            if c == 0:
                ax.set_ylabel(str(name), fontsize=8, rotation=0, ha="right", va="center")
    return fig
