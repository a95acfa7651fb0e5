"""The paper's Figures 1-7, one record each: everything that makes a figure in one place.

Each :class:`PaperFigure` names its settings (``experiments.SPECS``), the neurons it
depends on (``inputs``: chosen from the analysis, part of its cache key), how its arrays
are computed (``experiments``), how they are drawn (``figures``), the line of this run's
numbers under it (``notes``) and the paper's caption (``paper.CAPTIONS``). ``reproduce``
walks :data:`FIGURES` in order; nothing else knows a figure by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import experiments as E
from . import figures as F
from .analysis.examples import load_examples
from .data import Dataset
from .nn.mlp import MLP
from .paper import CAPTIONS

Ranking = tuple[np.ndarray, np.ndarray, np.ndarray]  # the analysis' (targets, ratio, activation)


def value_range(values, fmt: str = "{:.3f}") -> str:
    """``min–max`` of the finite values, as the report writes a range."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    return "n/a" if v.size == 0 else f"{fmt.format(v.min())}–{fmt.format(v.max())}"


@dataclass(frozen=True)
class PaperFigure:
    name: str  # "fig1" ... "fig7": the files figures/<name>.png, .pdf, data/<name>.npz
    inputs: Callable[[MLP, Ranking], dict]  # chosen neurons (JSON), part of the cache key
    compute: Callable[[MLP, Dataset, Path, dict], dict[str, np.ndarray]]  # (.., analysis dir)
    draw: Callable[..., object]  # arrays -> matplotlib Figure
    notes: Callable[[dict[str, np.ndarray]], str]  # this run's numbers, one line

    @property
    def spec(self) -> dict:
        return E.SPECS[self.name]

    @property
    def caption(self) -> str:
        return CAPTIONS[self.name]

    @property
    def settings_line(self) -> str:
        return "Settings: " + ", ".join(f"{k} {v}" for k, v in self.spec.items()) + "."


def _none(model: MLP, ranking: Ranking) -> dict:
    return {}


def _pick(model: MLP, ranking: Ranking, layer: int, n: int) -> list[int]:
    targets, ratio, act = ranking
    return E.most_selective(targets, ratio, act, E.hidden_layer(model, layer), n)


def _fig1_inputs(model: MLP, ranking: Ranking) -> dict:
    """Figure 1: the most selective neuron of each of its hidden layers."""
    layers = dict.fromkeys(E.hidden_layer(model, l) for l in E.SPECS["fig1"]["hidden_layers"])
    return {"hidden": [[l, i] for l in layers for i in _pick(model, ranking, l, 1)]}


def _selected_inputs(name: str):
    """Figures 6 and 7: the most selective neurons of each set's layer."""
    def inputs(model: MLP, ranking: Ranking) -> dict:
        spec = E.SPECS[name]
        return {"chosen": [_pick(model, ranking, s["layer"], spec["per_set"])
                           for s in spec["sets"]]}
    return inputs


def _fig1_notes(d) -> str:
    return (f"Activations unclipped {value_range(d['activation_raw'], '{:.3g}')}, clipped "
            f"{value_range(d['activation_clipped'], '{:.3g}')}; pixel range unclipped "
            f"{value_range(d['images_raw'], '{:.2f}')}, clipped "
            f"{value_range(d['images_clipped'], '{:.2f}')}.")


def _fig2_notes(d) -> str:
    reached = ", ".join(str(s) if s >= 0 else "not reached" for s in d["steps_to_confidence"])
    return (f"Steps to > {E.SPECS['fig2']['confidence']}: {reached} "
            f"(test images {', '.join(map(str, d['index']))}).")


def _activation_notes(d) -> str:
    return f"Activations {value_range(d['activation'], '{:.4f}')}."


def _fig5_notes(d) -> str:
    return (f"Ratios {value_range(d['ratio'], '{:.2f}')}, activations "
            f"{value_range(d['activation'], '{:.3g}')}.")


def _selected_notes(d) -> str:
    return (f"Ratios {value_range(d['ratio'], '{:.2f}')}; top output probability "
            f"{value_range(d['top3_probs'][:, 0], '{:.2f}')}.")


def _fig3_compute(model: MLP, data: Dataset, analysis: Path, inputs: dict):
    """Figure 3 puts each output beside the mean of its images above the 99th percentile."""
    means = load_examples(analysis / "examples.npz")[model.n_layers].mean_p99
    return E.fig3_data(model, E.SPECS["fig3"], means)


FIGURES: dict[str, PaperFigure] = {f.name: f for f in (
    PaperFigure("fig1", _fig1_inputs,
                lambda m, data, analysis, i: E.fig1_data(m, E.SPECS["fig1"], i["hidden"]),
                F.fig1, _fig1_notes),
    PaperFigure("fig2", _none,
                lambda m, data, analysis, i: E.fig2_data(m, data, E.SPECS["fig2"]),
                F.fig2, _fig2_notes),
    PaperFigure("fig3", _none, _fig3_compute, F.fig3, _activation_notes),
    PaperFigure("fig4", _none, lambda m, data, analysis, i: E.grid_data(m, E.SPECS["fig4"]),
                F.fig4, _activation_notes),
    PaperFigure("fig5", _none, lambda m, data, analysis, i: E.grid_data(m, E.SPECS["fig5"]),
                F.fig5, _fig5_notes),
    PaperFigure("fig6", _selected_inputs("fig6"),
                lambda m, data, analysis, i: E.selected_data(m, E.SPECS["fig6"], i["chosen"]),
                F.fig6, _selected_notes),
    PaperFigure("fig7", _selected_inputs("fig7"),
                lambda m, data, analysis, i: E.selected_data(m, E.SPECS["fig7"], i["chosen"]),
                F.fig7, _selected_notes),
)}
