"""The paper's claims about the layers, measured per layer and given a verdict.

Measures (per hidden layer, medians over its neurons unless said otherwise):

(a) spatial spread of what drives a neuron: the effective number of pixels
    (sum |g|)^2 / sum g^2 of its visualisation, and of its mean absolute input
    gradient over its top dataset images;
(b) the output when each visualisation is queried: top-1 probability and entropy;
(c) the dead fraction (strictly dead, and silent on data);
(d) the distribution of the target / next-highest activation ratios;
(e) the class purity of the top-k dataset examples.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from ..nn.backprop import Backprop
from ..nn.mlp import MLP
from ..vis.objectives import neuron

VERSION = 2  # bump when a verdict is decided differently: cached claims are redone


def effective_pixels(maps: np.ndarray) -> np.ndarray:
    """(sum |g|)^2 / sum g^2 per row: D for a uniform map of D pixels, 1 for a single pixel."""
    a = np.abs(np.asarray(maps, np.float64))
    num, den = a.sum(axis=1) ** 2, (a**2).sum(axis=1)
    return np.divide(num, den, out=np.zeros(len(a)), where=den > 0)


def gradient_maps(model: MLP, targets: list[tuple[int, int]], images: np.ndarray,
                  chunk: int = 4096) -> np.ndarray:
    """Mean |d activation / d input| of each target over its images (T, m, D) -> (T, D)."""
    T, m = images.shape[:2]
    rows = [(t, j) for t in range(T) for j in range(m)]
    out = np.zeros((T, images.shape[2]))
    for s in range(0, len(rows), chunk):
        part = rows[s : s + chunk]
        objs = [neuron(*targets[t]).bind(model.sizes) for t, _ in part]
        x = np.stack([images[t, j] for t, j in part]).astype(model.dtype)
        r = Backprop(model, objs)
        r.forward(x[r.order])
        g = np.empty_like(x)
        g[r.order] = r.backward()
        for (t, _), gi in zip(part, np.abs(g)):
            out[t] += gi / m
    return out


def entropy(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, np.float64), 1e-300, 1)
    return -(p * np.log(p)).sum(axis=1)


def trend(values: list[float]) -> float:
    """Spearman rank correlation of a per-layer quantity with the layer number."""
    finite = [(i, v) for i, v in enumerate(values) if np.isfinite(v)]
    if len(finite) < 3:
        return float("nan")
    rho = spearmanr([i for i, _ in finite], [v for _, v in finite]).statistic
    return float(rho)


def verdicts(table: list[dict]) -> list[dict]:
    """The paper's statements, each with the numbers that support or contradict it."""
    out = [claim(table) for claim in CLAIMS]
    for c in out:
        c.setdefault("verdict", "supported" if c["supported"] else "contradicted")
    return out


def _col(table: list[dict], key: str) -> list:
    return [row[key] for row in table]


def _receptive_fields(table: list[dict]) -> dict:
    rho_v, rho_g = trend(_col(table, "eff_pixels_vis")), trend(_col(table, "eff_pixels_grad"))
    return {
        "claim": "nodes in earlier, larger layers respond to pixels widely distributed over "
                 "the image; later, smaller layers to more concentrated regions",
        "measure": "Spearman rho of layer vs median effective pixels (visualisation, "
                   "input gradient on top images)",
        "value": {"visualisation": rho_v, "gradient": rho_g},
        "supported": bool(rho_v < -0.5 and rho_g < -0.5),
        "verdict": NA if len(table) < 3 else _verdict(rho_v < -0.5 and rho_g < -0.5,
                                                      rho_v > 0.5 and rho_g > 0.5),
    }


def _output_focus(table: list[dict]) -> dict:
    rho_p, rho_h = trend(_col(table, "top1_prob")), trend(_col(table, "output_entropy"))
    return {
        "claim": "visualisations of later layers activate a single output node strongly; "
                 "those of earlier layers a range of outputs",
        "measure": "Spearman rho of layer vs median top-1 probability / output entropy",
        "value": {"top1_prob": rho_p, "entropy": rho_h},
        "supported": bool(rho_p > 0.5 and rho_h < -0.5),
        "verdict": NA if len(table) < 3 else _verdict(rho_p > 0.5 and rho_h < -0.5,
                                                      rho_p < -0.5 and rho_h > 0.5),
    }


def _dead_neurons(table: list[dict]) -> dict:
    silent = sum(r["silent"] for r in table) / sum(r["size"] for r in table)
    dead = sum(r["dead"] for r in table) / sum(r["size"] for r in table)
    return {
        "claim": "some neurons (a minority) are dead: never active on the data, and their "
                 "activation cannot be raised by optimisation",
        "measure": "fraction of hidden neurons silent on every image of the dataset; fraction "
                   "also unreachable by optimising the pre-activation",
        "value": {"silent_on_data": silent, "dead": dead},
        "supported": bool(0 < dead < 0.5),
        # silent on the data, yet revivable: half of the paper's definition holds
        "verdict": _verdict(0 < dead < 0.5, silent == 0) if not (0 < silent < 0.5 and dead == 0)
        else "mixed",
    }


def _clusters(table: list[dict]) -> dict:
    n_clusters = sum(r["clusters"] for r in table)
    return {
        "claim": "nodes of a hidden layer activate together in clusters",
        "measure": "correlation clusters (r >= 0.5 on average) over the dataset; median "
                   "number of co-risers when a neuron is optimised",
        "value": {"clusters": n_clusters,
                  "co_risers_median_per_layer": _col(table, "co_risers_median")},
        "supported": bool(n_clusters > 0),
    }


def _target_leads(table: list[dict]) -> dict:
    holds = [r["layer"] for r in table if r["ratio_above_1"] > 0.5]
    return {
        "claim": "visualisations typically still activate the target node more than any "
                 "other node of its layer",
        "measure": "per layer, fraction of visualisations with ratio > 1 (the claim holds in "
                   "a layer where it is above one half)",
        "value": _col(table, "ratio_above_1"),
        # a verdict over layers must not average away a split: every layer, or none
        "supported": len(holds) == len(table),
        "verdict": _verdict(len(holds) == len(table), not holds),
        "detail": (f"holds in layers {_layers(holds)}; not in layers "
                   f"{_layers([r['layer'] for r in table if r['layer'] not in holds])}"
                   if 0 < len(holds) < len(table) else ""),
    }


#: the paper's claims about the layers, in the report's order
CLAIMS = (_receptive_fields, _output_focus, _dead_neurons, _clusters, _target_leads)


NA = "n/a (a trend needs three or more hidden layers)"


def _verdict(yes: bool, no: bool) -> str:
    return "supported" if yes else "contradicted" if no else "mixed"


def _layers(layers: list[int]) -> str:
    return ", ".join(map(str, layers))


def markdown(table: list[dict], claims: list[dict]) -> str:
    head = ("| layer | size | dead | silent on data | clusters | eff. pixels (vis) | "
            "eff. pixels (grad) | top-1 prob | output entropy | ratio median | ratio > 1 | "
            "top-k purity |")
    lines = [head, "|" + "---|" * 12]
    for r in table:
        lines.append(
            f"| {r['layer']} | {r['size']} | {r['dead']} | {r['silent']} | {r['clusters']} | "
            f"{r['eff_pixels_vis']:.0f} | {r['eff_pixels_grad']:.0f} | {r['top1_prob']:.3f} | "
            f"{r['output_entropy']:.3f} | {r['ratio_median']:.2f} | "
            f"{100 * r['ratio_above_1']:.0f}% | {r['purity']:.2f} |")
    lines += ["", "| claim of the paper | measure | this run | verdict |", "|---|---|---|---|"]
    for c in claims:
        value = c["value"]
        if isinstance(value, dict):
            value = ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
        else:
            value = _fmt(value)
        detail = f" ({c['detail']})" if c.get("detail") else ""
        lines.append(f"| {c['claim']} | {c['measure']} | {value} | {c['verdict']}{detail} |")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
