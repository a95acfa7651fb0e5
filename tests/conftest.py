"""Fixtures: real MNIST (fetched once per session), PyTorch when present."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from hypothesis import settings

from neuronatlas import load_mnist

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# The README's test command draws the same examples on every machine ("derandomize":
# a fresh clone passes or fails as CI did). The randomised profile draws new ones; .ci/run
# runs it as its own step with a printed --hypothesis-seed, so a failure can be replayed.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("random", derandomize=False, database=None, print_blob=True)
settings.load_profile(os.environ.get("NEURONATLAS_HYPOTHESIS", "deterministic"))


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


TINY_SIZES = (784, 48, 24, 16, 10)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, mnist):
    """A small MLP (784-48-24-16-10) trained for one epoch and fully analysed: a run
    folder with model.safetensors and analysis/ in a few seconds, for atlas, figure and
    server tests that need every kind of result but not the paper's size."""
    from neuronatlas import MLP, TrainConfig, train
    from neuronatlas.analysis import analyze_run

    run = tmp_path_factory.mktemp("tiny") / "run"
    train(mnist, TrainConfig(sizes=TINY_SIZES, epochs=1, fine_tune_epochs=0), run_dir=run)
    analyze_run(run, MLP.load(run / "model.safetensors"), mnist, k=8)
    return run


@pytest.fixture(scope="session")
def chromium_path():
    """Debian's chromium for Playwright (``playwright install`` cannot download here).
    Missing: a skip on a developer machine, a failure in CI (.ci/run installs it)."""
    import shutil

    path = shutil.which("chromium")
    have_pw = importlib.util.find_spec("playwright") is not None
    if path is None or not have_pw:
        what = "chromium (apt-get install chromium)" if path is None else "playwright"
        if IN_CI:
            pytest.fail(f"{what} is missing but CI must run the browser tests")
        pytest.skip(f"{what} not installed")
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    """One headless chromium for the session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, headless=True,
                               args=["--no-sandbox", "--allow-file-access-from-files"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh page (1280 x 1000) that fails the test on any JavaScript error."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    p = context.new_page()
    errors = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield p
    context.close()
    assert not errors, errors
