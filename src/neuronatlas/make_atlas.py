"""A run folder's atlas, made: the analysis, the gallery of pictures and every neuron's
explanation computed where missing (each kept in the run's keyed store), then the site
written from them by :mod:`.atlas.build`, which reads and computes nothing. The one lock
of the folder is held throughout and handed down (``lock=``).

Example::

    from neuronatlas.make_atlas import build_atlas
    build_atlas("runs/paper")          # RUN/atlas/index.html
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .analysis.run import analyze_run
from .atlas.build import atlas_is_current, write_atlas
from .data import Dataset
from .explanations.run import explain_run, layer_pictures
from .gallery import read_gallery, render_gallery
from .layout import ANALYSIS, ATLAS, VISUALIZATIONS
from .nn.mlp import MLP
from .runs import RunLock, analysed_k, run_dataset, run_model, writing
from .stages import Log, Progress


def build_atlas(run_dir: str | Path, model: MLP | None = None, data: Dataset | None = None, *,
                k: int | None = None, progress: Progress | None = None,
                log: Log = lambda m: None, lock: RunLock | None = None) -> Path:
    """Build ``RUN/atlas/`` (computing whatever analysis or picture is missing) and return
    its path. ``model`` defaults to the run's, ``data`` to the one it records;
    ``progress(stage, done, total)`` reports long stages; ``k`` (dataset examples per
    neuron) defaults to the run's existing analysis, else 16."""
    run_dir = Path(run_dir)
    with writing(run_dir, "build the atlas of", held=lock) as lock:
        model = run_model(run_dir)[0] if model is None else model
        data = run_dataset(model, log=log) if data is None else data
        k = k or analysed_k(run_dir)
        analyze_run(run_dir, model, data, k=k, progress=progress, log=log, lock=lock)
        with np.load(run_dir / ANALYSIS / VISUALIZATIONS) as z:
            targets = z["targets"]
        render_gallery(run_dir, model, targets, data, progress, lock=lock)
        tiles = read_gallery(run_dir, model, targets, data).tiles
        explain_run(run_dir, model, data, layer_pictures(targets, tiles["images"]), progress,
                    log, lock=lock)
        return write_atlas(run_dir, model, data, k=k, progress=progress, log=log, lock=lock)


def atlas_needs_build(run_dir: str | Path, model: MLP, data: Dataset | None,
                      rebuild: bool = False) -> bool:
    """Whether ``serve`` must build the atlas first: asked to, or the one there is of
    another version, model or (when given) dataset."""
    return rebuild or not atlas_is_current(Path(run_dir) / ATLAS, model, data)


def ensure_atlas(run_dir: str | Path, model: MLP, data: Dataset | None, *,
                 rebuild: bool = False, progress: Progress | None = None,
                 log: Log = lambda m: None) -> bool:
    """Build ``RUN/atlas`` when :func:`atlas_needs_build`; returns whether it was built."""
    if not atlas_needs_build(run_dir, model, data, rebuild):
        return False
    build_atlas(run_dir, model, data, progress=progress, log=log)
    return True
