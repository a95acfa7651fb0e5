"""Neurons of two networks matched one to one (Li, Yosinski, Clune, Lipson & Hopcroft,
ICLR 2016, "Convergent learning"): the assignment that maximises the total correlation,
by the Hungarian method (``scipy.optimize.linear_sum_assignment``), over live neurons
only: a dead (constant) neuron has no correlation and no partner."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

THRESHOLDS = (0.9, 0.5)  # the shares reported: matched correlation at least these


@dataclass
class Matching:
    """One row per neuron of A: its best correlation with any neuron of B, the neuron of
    B it is matched to one to one (-1: dead, or left over when B has fewer live
    neurons), and the correlation of that pair (NaN where there is none)."""

    best_corr: np.ndarray  # (p,) float64
    assignment: np.ndarray  # (p,) int64, B's index or -1
    matched_corr: np.ndarray  # (p,) float64
    live_a: np.ndarray  # (p,) bool
    live_b: np.ndarray  # (q,) bool

    def share(self, threshold: float) -> float:
        """The share of A's live neurons whose matched correlation is at least
        ``threshold`` (a live neuron left unmatched counts as below it)."""
        n = int(self.live_a.sum())
        if n == 0:
            return float("nan")
        return float(np.sum(np.nan_to_num(self.matched_corr[self.live_a], nan=-2) >= threshold)
                     / n)


def match(corr: np.ndarray, live_a: np.ndarray | None = None,
          live_b: np.ndarray | None = None) -> Matching:
    """:class:`Matching` of the neurons of A (rows of ``corr``) with those of B. Which
    neurons are live is given (non-zero variance), or read from the NaN rows and columns
    of ``corr`` (which cannot tell a live neuron facing an all-dead layer from a dead one:
    give them)."""
    if live_a is None:
        live_a = ~np.all(np.isnan(corr), axis=1) if corr.shape[1] else np.zeros(len(corr), bool)
    if live_b is None:
        live_b = ~np.all(np.isnan(corr), axis=0) if len(corr) else np.zeros(corr.shape[1], bool)
    p = len(corr)
    best = np.full(p, np.nan)
    assignment = np.full(p, -1, np.int64)
    matched = np.full(p, np.nan)
    rows, cols = np.flatnonzero(live_a), np.flatnonzero(live_b)
    if len(rows) and len(cols):
        live = corr[np.ix_(rows, cols)]
        best[rows] = live.max(axis=1)
        r, c = linear_sum_assignment(live, maximize=True)
        assignment[rows[r]] = cols[c]
        matched[rows[r]] = live[r, c]
    return Matching(best, assignment, matched, np.asarray(live_a, bool), np.asarray(live_b, bool))
