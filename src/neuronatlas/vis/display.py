"""Pictures of results for people: a matplotlib grid of any images, and the HTML that
Jupyter shows for a :class:`VisResult`, :class:`QueryResult` or :class:`AdversarialResult`.

Every image is contrast-stretched to its own range (visualisations are faint: pixels of
a few hundredths), and the range is printed beside it so nothing is hidden.
"""

from __future__ import annotations

import base64
import html

import numpy as np

from ..shapes import MNIST_SHAPE
from .images import png_bytes


def as_image(row: np.ndarray, shape) -> np.ndarray:
    """A flat row (H*W*C) as an (H, W) grey or (H, W, 3) colour array."""
    h, w, c = shape
    a = np.asarray(row, np.float64)
    return a.reshape(h, w) if c == 1 else a.reshape(h, w, c)


def stretch(img: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The image scaled to [0, 1] over its own range, and that range."""
    lo, hi = float(np.min(img)), float(np.max(img))
    return (np.zeros_like(img) if hi <= lo else (img - lo) / (hi - lo)), lo, hi


def grid(images, shape=MNIST_SHAPE, *, titles=None, cols: int = 8, size: float = 1.2,
         stretch_each: bool = True):
    """A matplotlib Figure of ``images`` (N, H*W*C) in a grid, each contrast-stretched to
    its own range (``stretch_each=False``: shown on [0, 1]) with ``titles`` under them.
    Example::

        res = na.visualize(model, [(8, d) for d in range(10)])
        na.grid(res.images, model.input_shape, titles=[f"{a:.2f}" for a in res.activation])
    """
    from matplotlib.figure import Figure

    images = np.asarray(images)
    images = images.reshape(len(images), -1) if images.ndim > 1 else images.reshape(1, -1)
    n = len(images)
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    fig = Figure(figsize=(size * cols, (size + 0.3) * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k >= n:
            continue
        img = as_image(images[k], shape)
        shown = stretch(img)[0] if stretch_each else np.clip(img, 0, 1)
        ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1,
                  interpolation="nearest")
        if titles is not None and k < len(titles):
            ax.set_title(str(titles[k]), fontsize=8)
    return fig


def _img_tag(row: np.ndarray, shape, px: int = 84) -> str:
    img, lo, hi = stretch(as_image(row, shape))
    data = base64.b64encode(png_bytes(img, scale=max(1, px // max(shape[:2])))).decode()
    return (f'<img src="data:image/png;base64,{data}" style="image-rendering:pixelated;'
            f'width:{px}px" title="shown stretched from [{lo:.3g}, {hi:.3g}]">')


def cards_html(images, shape, captions: list[str], title: str = "") -> str:
    """A grid of images with a caption under each (HTML for Jupyter)."""
    cells = "".join(
        f'<div style="display:inline-block;margin:4px;text-align:center;vertical-align:top;'
        f'font:11px sans-serif;width:96px">{_img_tag(row, shape)}<br>{cap}</div>'
        for row, cap in zip(np.asarray(images), captions))
    head = f"<div style='font:bold 12px sans-serif'>{html.escape(title)}</div>" if title else ""
    return f"<div>{head}{cells}</div>"


def class_label(names, c: int) -> str:
    """``3`` for digits, ``0 T-shirt/top`` for named classes (HTML-escaped)."""
    name = names[c] if names is not None and c < len(names) else str(c)
    return html.escape(str(c) if name == str(c) else f"{c} {name}")


def tiles_png(images, shape=MNIST_SHAPE, *, scale: int = 3, cols: int = 16,
              limit: int = 64) -> bytes:
    """One PNG of the first ``limit`` images (N, H*W*C), each stretched to its own range,
    in rows of ``cols`` with a 1-pixel gap: the ``_repr_png_`` of a result."""
    images = np.asarray(images, np.float64).reshape(-1, int(np.prod(shape)))[:limit]
    h, w, c = shape
    n = max(len(images), 1)
    cols = min(cols, n)
    rows = -(-n // cols)
    sheet = np.ones((rows * (h + 1) - 1, cols * (w + 1) - 1, c))
    for k, row in enumerate(images):
        r, q = divmod(k, cols)
        sheet[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = stretch(
            row.reshape(h, w, c))[0]
    return png_bytes(sheet[..., 0] if c == 1 else sheet, scale=scale)
