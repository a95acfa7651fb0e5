"""Shared test helpers: float64 central differences and small synthetic data."""

from __future__ import annotations

import numpy as np

from neuronatlas.data import MNIST


def numeric_grad(f, x: np.ndarray, eps: float = 1e-6, indices=None) -> np.ndarray:
    """Central-difference gradient of the scalar ``f()`` with respect to ``x`` (in place).

    ``indices``: flat indices to probe (default: all); other entries are left NaN.
    """
    assert x.dtype == np.float64
    grad = np.full(x.shape, np.nan)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size) if indices is None else indices:
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def assert_grad_close(analytic, numeric, rtol=1e-6, atol=1e-8):
    mask = ~np.isnan(numeric)
    assert mask.any()
    np.testing.assert_allclose(np.asarray(analytic)[mask], numeric[mask], rtol=rtol, atol=atol)


def synthetic_mnist(n_train=640, n_test=200, n_in=20, n_classes=4, seed=0) -> MNIST:
    """A linearly-separable-ish toy problem shaped like MNIST (float32 in [0, 1])."""
    rng = np.random.default_rng(seed)
    centers = rng.random((n_classes, n_in))

    def make(n):
        y = rng.integers(0, n_classes, n)
        x = np.clip(centers[y] + 0.15 * rng.standard_normal((n, n_in)), 0, 1)
        return x.astype(np.float32), y.astype(np.int64)

    train_x, train_y = make(n_train)
    test_x, test_y = make(n_test)
    return MNIST(train_x, train_y, test_x, test_y, sources={"synthetic": "helpers"})


_AUDIT = {"on": False, "writes": []}
_WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000  # O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND
_WRITE_EVENTS = ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir",
                 "os.truncate", "shutil.rmtree", "os.symlink", "os.link", "os.chmod")


def _audit(event, args):
    if not _AUDIT["on"]:
        return
    if event == "open":
        path, mode, flags = args
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS):
            _AUDIT["writes"].append((event, path))
    elif event in _WRITE_EVENTS:
        _AUDIT["writes"].append((event, args[0] if args else None))


def writes_during(fn, *args, **kwargs):
    """(fn's result, every file or folder it opened for writing, made or removed): seen by
    a Python audit hook, since a read-only folder does not stop root."""
    import sys

    if not getattr(writes_during, "hooked", False):
        sys.addaudithook(_audit)
        writes_during.hooked = True
    _AUDIT["writes"] = []
    _AUDIT["on"] = True
    try:
        result = fn(*args, **kwargs)
    finally:
        _AUDIT["on"] = False
    return result, list(_AUDIT["writes"])


def assert_logits_match(model, net, torch, shape, *, seed=0, atol=1e-5):
    """``model`` (imported from the PyTorch module ``net``) gives ``net``'s logits on
    random images of ``shape`` (N, ...) as ``net`` takes them."""
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.forward(x.reshape(len(x), -1)), ref, atol=atol)
