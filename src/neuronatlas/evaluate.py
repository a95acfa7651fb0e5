"""Accuracy, per-class accuracy and the confusion matrix of a model on a split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .fileio import atomic_write_json, ensure_dir
from .layout import evaluation_file
from .nn.mlp import MLP


@dataclass(frozen=True)
class Evaluation:
    """Accuracy, recall per class and confusion[true][predicted] of a model on a split.
    Example::

        ev = na.evaluate(model, data.test_x, data.test_y)
        ev.accuracy, ev.per_class_accuracy[3], ev.confusion[3][5]
    """

    split: str
    accuracy: float
    per_class_accuracy: list[float]  # recall of each true class
    confusion: list[list[int]]  # confusion[true][predicted]
    n: int

    def to_dict(self) -> dict:
        """Every field, JSON-ready."""
        return dict(self.__dict__)


def evaluate(model: MLP, x: np.ndarray, y: np.ndarray, split: str = "test") -> Evaluation:
    """The model's :class:`Evaluation` on images ``x`` with labels ``y``. Example::

        na.evaluate(model, data.test_x, data.test_y).accuracy   # 0.981
    """
    k = model.sizes[-1]
    pred = model.predict(x)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    support = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), support, out=np.zeros(k), where=support > 0)
    return Evaluation(
        split=split,
        accuracy=float(np.trace(confusion) / max(len(y), 1)),
        per_class_accuracy=[float(v) for v in per_class],
        confusion=confusion.tolist(),
        n=len(y),
    )


def save_evaluation(run_dir: str | Path, ev: Evaluation, model: str,
                    dataset: dict[str, str] | None = None, suffix: str = "") -> Path:
    """``RUN/evaluation-<split><suffix>.json``: which model, on which dataset, and the
    numbers (a suffix keeps an evaluation on other data beside the model's own)."""
    path = evaluation_file(ensure_dir(run_dir), ev.split, suffix)
    atomic_write_json(path, {"model": model, "dataset": dataset, **ev.to_dict()})
    return path
