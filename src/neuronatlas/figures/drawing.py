"""What the figures' drawings share: tiles, text under them, bars, colours, and the bytes
of a figure.

Every figure is a :class:`matplotlib.figure.Figure` (never shown; no pyplot state) whose
image axes carry a label naming their tile (``"8:3 clipped"``, ``"tv=0.016 l1=10%"``) so
a test or a caller can find each panel. Each image is drawn in grey scaled to its own
minimum and maximum, as ``imshow`` does by default, with nearest-neighbour pixels (the
paper's "NB" under Figure 1); the visualisations are faint (pixel values of a few
hundredths), so a common scale would hide them.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..shapes import MNIST_SHAPE

GREEN, RED, GREY = "#1a8a2e", "#c0161b", "#8a8a8a"
LIGHT_GREEN, LIGHT_RED = "#9fd8a9", "#f2a3a5"
TILE = 1.05  # inches per tile (a 28x28 image in the paper's figures)
STYLE = 1  # bump when a figure draws differently: every figure is redrawn


def tile(ax: Axes, image: np.ndarray, label: str, shape=MNIST_SHAPE) -> None:
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


def below(ax: Axes, lines: list[tuple[str, dict]], start: float = -0.04,
          step: float = 0.15) -> None:
    """Lines of text under a tile (each with its own colour, box, size)."""
    for k, (text, style) in enumerate(lines):
        style = dict(style)
        ax.text(0.5, start - k * step, text, transform=ax.transAxes, ha="center", va="top",
                fontsize=style.pop("fontsize", 7.5), **style)


def activation_text(value: float, output: bool) -> str:
    return f"{value:.4f}" if output else f"{value:.3g}"


def ratio_text(ratio: float, activation: float) -> str:
    """The paper's "ratio (raw activation)"."""
    r = "inf" if not np.isfinite(ratio) else f"{ratio:.2f}"
    return f"{r} ({activation:.3g})"


def target_text(t) -> str:
    return f"{int(t[0])}:{int(t[1])}"


def class_text(class_names, c) -> str:
    """A class as the figures show it: its number, with its name where that differs."""
    c = int(c)
    name = class_names[c] if class_names is not None and c < len(class_names) else str(c)
    return str(c) if name == str(c) else f"{c} {name}"


def percent(p: float) -> str:
    """A probability as the paper writes it (99.2693%), never rounded up to 100%."""
    text = f"{100 * p:.4f}%"
    return ">99.9999%" if text == "100.0000%" and p < 1 else text


def bar(ax: Axes, value: float, text: str, color: str, label: str, small: bool = False) -> None:
    """A horizontal bar of length ``value`` in [0, 1] in a grey frame, ``text`` on it."""
    ax.barh([0], [max(value, 0.0)], height=0.6 if small else 0.9, color=color)
    ax.barh([0], [1.0], height=0.6 if small else 0.9, color="none", edgecolor=GREY, lw=0.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.5, 0.5)
    ax.axis("off")
    ax.text(0.02, 0, text, va="center", ha="left", fontsize=6.5 if small else 7.5,
            color="black")
    ax.set_label(label)


def figure_bytes(fig: Figure, fmt: str) -> bytes:
    """PNG or PDF bytes that depend only on the figure (no dates, no version stamps), so
    the same data gives the same file. (Saving lays the figure out again: the PNG saved
    after the PDF, as ``reproduce`` does, is the one the run folder holds.)"""
    buf = io.BytesIO()
    meta = ({"Software": None} if fmt == "png" else
            {"Creator": None, "Producer": None, "CreationDate": None})
    fig.savefig(buf, format=fmt, dpi=150, metadata=meta)
    return buf.getvalue()
