"""Fixtures: real MNIST (fetched once per session), PyTorch when present."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from neuronatlas import load_mnist

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def torch():
    """PyTorch, or a skip. In CI a missing torch is a failure: the cross-checks must run."""
    if importlib.util.find_spec("torch") is None:
        if IN_CI:
            pytest.fail("torch is not installed but CI must run the PyTorch cross-checks")
        pytest.skip("torch not installed (pip install torch==2.13.0)")
    import torch as _torch

    return _torch


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST from the usual sources (the cache after the first fetch)."""
    return load_mnist()


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory, mnist):
    """A run folder trained once per session by ``neuronatlas train --quick`` (about a
    minute): the paper's architecture, 2 + 1 epochs on real MNIST."""
    run = tmp_path_factory.mktemp("quick") / "run"
    proc = subprocess.run([sys.executable, "-m", "neuronatlas", "train", "--run", str(run),
                           "--quick"], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr
    return run
