"""A run folder's own facts that several commands read: its model and its analysis k."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ModelFileError, RunFolderError
from .nn.io import check_mnist_sizes
from .nn.mlp import MLP

DEFAULT_K = 16  # dataset examples per neuron when the run has no analysis yet


def model_path(run_dir: Path, model: Path | None = None) -> Path:
    """``model`` when given, else the run's ``model.safetensors``, which must exist."""
    path = model or run_dir / "model.safetensors"
    if model is None and not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist; train first "
                             f"(neuronatlas train --run {run_dir}) or pass --model")
    if not path.is_file():
        raise ModelFileError(f"no model at {path}; train first (neuronatlas train --run "
                             f"{run_dir}) or pass --model PATH")
    return path


def load_model(run_dir: Path, model: Path | None = None) -> tuple[MLP, Path]:
    """The model of the run (or ``model``), which must read MNIST: 784 in, 10 out."""
    path = model_path(run_dir, model)
    return check_mnist_sizes(MLP.load(path), str(path)), path


def analysed_k(run_dir: Path) -> int:
    """The k of the run's dataset examples, so that a later command reuses them."""
    try:
        k = json.loads((Path(run_dir) / "analysis" / "examples.json").read_text())["k"]
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_K
    return k if isinstance(k, int) and not isinstance(k, bool) and k > 0 else DEFAULT_K
