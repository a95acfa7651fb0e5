"""GEMM on preallocated buffers, with alpha and beta, bound once and called many times.

NumPy's ``matmul`` has no ``beta``: ``W -= lr * dZ.T @ A`` costs a temporary of the
size of ``W`` and two extra passes over it. At batch 32 the weight update is a
rank-32 product, so those passes are a large share of a training step. BLAS's
``gemm`` computes ``C = alpha * op(A) op(B) + beta * C`` in one go; with
``beta = 1`` and ``alpha = -lr`` the SGD update is fused into the product.

:class:`GemmPlan` calls the CBLAS of the OpenBLAS that NumPy itself loaded (one
thread pool, the same kernel as ``np.matmul``) through ``ctypes``, with every
argument converted once. Where that library cannot be found (other NumPy builds),
it falls back to ``np.matmul`` and is still correct, only slower. A self-test
against ``np.matmul`` guards the fast path when it is first used.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
# OpenBLAS ILP64 builds shipped in NumPy wheels export these (64-bit integers).
_SYMBOLS = {
    np.dtype(np.float32): ("scipy_cblas_sgemm64_", "cblas_sgemm64_"),
    np.dtype(np.float64): ("scipy_cblas_dgemm64_", "cblas_dgemm64_"),
}


@functools.cache
def _cblas_gemm(dtype: np.dtype):
    """The ctypes function for ``dtype``'s gemm in NumPy's own BLAS, or None."""
    root = os.path.dirname(os.path.abspath(np.__file__))
    candidates = glob.glob(os.path.join(root + ".libs", "*openblas*")) + glob.glob(
        os.path.join(root, ".dylibs", "*openblas*")
    )
    real = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SYMBOLS[dtype]:
            fn = getattr(lib, name, None)
            if fn is None:
                continue
            i32, i64, ptr = ctypes.c_int, ctypes.c_int64, ctypes.c_void_p
            fn.argtypes = [i32, i32, i32, i64, i64, i64, real, ptr, i64, ptr, i64, real, ptr, i64]
            fn.restype = None
            if _self_test(fn, dtype):
                return fn
    return None


def _self_test(fn, dtype) -> bool:
    rng = np.random.default_rng(0)
    a, b = rng.random((5, 3)).astype(dtype), rng.random((4, 3)).astype(dtype)
    c = rng.random((5, 4)).astype(dtype)
    expected = 0.5 * a @ b.T + 2.0 * c
    args = (_ROW_MAJOR, _NO_TRANS, _TRANS, 5, 4, 3, 0.5, a.ctypes.data, 3)
    fn(*args, b.ctypes.data, 3, 2.0, c.ctypes.data, 4)
    return bool(np.allclose(c, expected, rtol=1e-5, atol=1e-6))


def has_fast_gemm(dtype=np.float32) -> bool:
    """True when :class:`GemmPlan` runs on NumPy's BLAS directly for ``dtype``."""
    dtype = np.dtype(dtype)
    return dtype in _SYMBOLS and _cblas_gemm(dtype) is not None


class GemmPlan:
    """``c[...] = alpha * op(a) @ op(b) + beta * c`` on fixed C-contiguous buffers.

    ``op(x)`` is ``x.T`` when the matching ``trans_*`` flag is set. The buffers must
    live as long as the plan; their contents may change between calls.
    """

    def __init__(
        self, a, b, c, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, use_blas=True
    ):
        m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
        k2, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
        if k != k2 or c.shape != (m, n):
            raise ValueError(f"gemm shapes do not chain: {a.shape}, {b.shape} -> {c.shape}")
        self.a, self.b, self.c = a, b, c
        self.trans_a, self.trans_b, self.beta = trans_a, trans_b, beta
        self.alpha = alpha
        fast = (
            use_blas
            and a.dtype == b.dtype == c.dtype
            and all(x.flags.c_contiguous for x in (a, b, c))
            and has_fast_gemm(c.dtype)
        )
        self._fn = _cblas_gemm(c.dtype) if fast else None
        self._dims = (
            _ROW_MAJOR,
            _TRANS if trans_a else _NO_TRANS,
            _TRANS if trans_b else _NO_TRANS,
            m,
            n,
            k,
        )
        self._ptrs = (a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1])
        self.set_alpha(alpha)

    def set_alpha(self, alpha: float) -> None:
        self.alpha = float(alpha)
        if self._fn is not None:
            a_ptr, lda, b_ptr, ldb = self._ptrs
            self._args = (*self._dims, self.alpha, a_ptr, lda, b_ptr, ldb, self.beta)
            self._args += (self.c.ctypes.data, self.c.shape[1])

    def __call__(self) -> None:
        if self._fn is not None:
            self._fn(*self._args)
            return
        prod = (self.a.T if self.trans_a else self.a) @ (self.b.T if self.trans_b else self.b)
        if self.beta == 0:
            np.multiply(prod, self.alpha, out=self.c)
        else:
            if self.beta != 1:
                self.c *= self.beta
            prod *= self.alpha
            self.c += prod


@contextlib.contextmanager
def blas_threads(n: int | None):
    """BLAS limited to ``n`` threads inside the block (None: as it is), for this one task:
    the server's optimisations and a study's workers run side by side, and several
    multi-threaded BLAS calls at once thrash (two 100-step runs of the paper's network at
    once took 10x longer than one). Restored on leaving."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(n, user_api="blas"):
        yield
