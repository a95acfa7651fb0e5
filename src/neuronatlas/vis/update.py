"""The paper's ascent update of :class:`~neuronatlas.config.VisConfig`, fused and in place.

The maths lives in :mod:`.regularizers` (TV, in its fast in-place form) and
:mod:`.transforms` (the clip derivative); here it is arranged for speed with thousands of
rows: blocks of rows small enough that the ~15 passes over them stay in cache, no
temporaries. (Two threads over the blocks were
measured slower: OpenBLAS's idle threads spin on the cores for a while after each
GEMM.)
"""

from __future__ import annotations

import numpy as np

from ..config import VisConfig
from ..shapes import MNIST_SHAPE
from .regularizers import SignScratch, tv_grad_into
from .transforms import clip_inside


class _Scratch:
    """One worker's buffers for a block of rows."""

    def __init__(self, rows: int, dtype, shape=MNIST_SHAPE):
        h, w, c = shape
        chan = (c,) if c > 1 else ()
        n = h * w * c
        self.reg = np.empty((rows, n), dtype)
        self.diff_v = np.empty((rows, h - 1, w, *chan), dtype)
        self.diff_h = np.empty((rows, h, w - 1, *chan), dtype)
        self.sign_v = SignScratch((rows, h - 1, w, *chan))
        self.sign_h = SignScratch((rows, h, w - 1, *chan))
        self.sign_x = SignScratch((rows, n))
        self.inside = np.empty((rows, n), bool)
        self.upper = np.empty((rows, n), bool)

    def view(self, n: int) -> _Scratch:
        if n == len(self.reg):
            return self
        v = object.__new__(_Scratch)
        for name, buf in vars(self).items():
            if isinstance(buf, SignScratch):
                sub = object.__new__(SignScratch)
                sub.pos, sub.neg, sub.out = buf.pos[:n], buf.neg[:n], buf.out[:n]
                setattr(v, name, sub)
            else:
                setattr(v, name, buf[:n])
        return v


class AscentUpdate:
    """``x += lr * (dObj/dx - tv dTV/dx - l1 sgn(x))`` in blocks of rows that stay in cache."""

    BLOCK = 64  # rows per block: a block's ~15 arrays fit in a core's L2 cache

    def __init__(self, rows: int, config: VisConfig, dtype, shape=MNIST_SHAPE):
        self.config, self.shape = config, shape
        self.blocks = [slice(s, min(s + self.BLOCK, rows)) for s in range(0, rows, self.BLOCK)]
        self.scratch = _Scratch(min(self.BLOCK, rows), dtype, shape)

    def __call__(self, x: np.ndarray, grad: np.ndarray, u: np.ndarray) -> None:
        """Update ``x`` in place; ``grad`` is dObjective/du (overwritten), ``u`` = clip(x)."""
        for s in self.blocks:
            self._block(self.scratch.view(s.stop - s.start), x[s], grad[s], u[s])

    def _block(self, b: _Scratch, x, grad, u) -> None:
        c = self.config
        if c.clip and not c.project:  # the clip derivative (Appendix 3): 1 on (0, 1), else 0
            grad *= clip_inside(x, b.inside, b.upper)
        if c.tv or c.l1:
            # regularisers of x, bypassing the clip derivative unless reg_through_clip
            base = u if c.reg_through_clip else x
            if c.tv:
                tv_grad_into(base, b.reg, b.diff_v, b.diff_h, b.sign_v, b.sign_h, self.shape)
                b.reg *= c.tv
            else:
                b.reg[...] = 0
            if c.l1:  # L1'(x) = sgn(x)
                b.reg += c.l1 * b.sign_x(base)
            if c.reg_through_clip and c.clip and not c.project:
                b.reg *= b.inside
            grad -= b.reg
        grad *= c.lr
        x += grad
        if c.project:  # projected gradient ascent: back into [0, 1]
            np.clip(x, 0, 1, out=x)
