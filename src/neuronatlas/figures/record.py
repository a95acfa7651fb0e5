"""What a paper figure is: one record holding everything that makes it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import Dataset
from ..nn.mlp import MLP

Ranking = tuple[np.ndarray, np.ndarray, np.ndarray]  # the analysis' (targets, ratio, activation)


@dataclass(frozen=True)
class PaperFigure:
    """One of the paper's Figures 1-7. ``reproduce`` calls ``inputs`` (the neurons it
    needs, chosen from the analysis), ``compute`` (its arrays, cached as
    ``figures/data/<name>.npz`` under ``spec``, ``inputs``, the visualiser's defaults,
    :data:`~.common.DATA_VERSION` and the model's and dataset's hashes), ``draw`` (arrays ->
    matplotlib Figure) and ``notes`` (this run's numbers, one line, for the report)."""

    name: str  # "fig1" ... "fig7": the files figures/<name>.png, .pdf, data/<name>.npz
    spec: dict  # every setting, each with its reason in the figure's module; the cache key
    caption: str  # the paper's caption, verbatim
    inputs: Callable[[MLP, Ranking], dict]  # chosen neurons (JSON), part of the cache key
    compute: Callable[[MLP, Dataset, Path, dict], dict[str, np.ndarray]]  # (.., analysis dir)
    draw: Callable[..., object]  # arrays -> matplotlib Figure
    notes: Callable[[dict[str, np.ndarray]], str]  # this run's numbers, one line

    @property
    def settings_line(self) -> str:
        return "Settings: " + ", ".join(f"{k} {v}" for k, v in self.spec.items()) + "."


def no_inputs(model: MLP, ranking: Ranking) -> dict:
    """For a figure whose neurons are fixed by its spec."""
    return {}


def value_range(values, fmt: str = "{:.3f}") -> str:
    """``min–max`` of the finite values, as the report writes a range."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    return "n/a" if v.size == 0 else f"{fmt.format(v.min())}–{fmt.format(v.max())}"
