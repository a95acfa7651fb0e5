"""The readability benchmark (docs/vis_quality.md): every method's pictures, measured per layer
with :mod:`.vis.quality` (``benchmarks/vis_quality.py`` runs it; the report shows it).

Per method and layer: the activation reached against the neuron's dataset maximum, the
machine two-choice test against the "natural" condition (the neuron's top-9 training
images), artefacts (high-frequency share, total variation) against real images, the
stability over seeds, the layer-1 optimality gap, the seconds for every neuron, and, for
the output layer, the transfer to independently trained judges.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .config import VisConfig
from .data import Dataset
from .nn.mlp import MLP
from .vis import quality as Q
from .vis.exact import layer1_optimum
from .vis.prototypes import data_prototypes
from .vis.visualize import data_magnitude, visualize

Log = Callable[[str], None]
NATURAL_K = 9  # Borowski et al. show 9 reference images per unit
CLASS_K = 16  # a neuron's class: the majority of its 16 strongest training images (the
# atlas's row), counted where more than half of them share it


@dataclass
class DataStats:
    """What the benchmark needs of the data, computed once per model."""

    train_max: dict[int, np.ndarray]  # layer -> (n,) highest activation over training images
    all_max: dict[int, np.ndarray]  # ... over training and test images
    top16: dict[int, np.ndarray]  # layer -> (n, 16) training indices of the strongest images
    test_acts: dict[int, np.ndarray]  # layer -> (N_test, n) activations on the test set
    hf: np.ndarray  # high-frequency share of every test image
    tv: np.ndarray  # total variation of every test image
    magnitude: np.ndarray  # mean magnitude spectrum of the training images (maco's)
    prototypes: np.ndarray  # k-means prototypes of the training images (readable's starts)

    def top9(self, l: int) -> np.ndarray:
        """(n, 9) training indices of the strongest images: the natural condition."""
        return self.top16[l][:, :NATURAL_K]


def data_stats(model: MLP, data: Dataset, chunk: int = 8192) -> DataStats:
    layers = range(1, len(model.sizes))
    train_max = {l: np.full(model.sizes[l], -np.inf) for l in layers}
    best_v = {l: np.full((0, model.sizes[l]), -np.inf) for l in layers}
    best_i = {l: np.zeros((0, model.sizes[l]), np.int64) for l in layers}
    for s in range(0, len(data.train_x), chunk):
        acts = model.activations(data.train_x[s:s + chunk])
        for l in layers:
            a = acts[l].astype(np.float64)
            train_max[l] = np.maximum(train_max[l], a.max(axis=0))
            v = np.concatenate([best_v[l], a])
            i = np.concatenate([best_i[l], np.arange(s, s + len(a))[:, None]
                                .repeat(a.shape[1], 1)])
            keep = np.argsort(-v, axis=0, kind="stable")[:CLASS_K]
            best_v[l] = np.take_along_axis(v, keep, 0)
            best_i[l] = np.take_along_axis(i, keep, 0)
    test_acts = model.activations(data.test_x)
    all_max = {l: np.maximum(train_max[l], test_acts[l].max(axis=0)) for l in layers}
    return DataStats(train_max, all_max, {l: best_i[l].T for l in layers},
                     {l: test_acts[l].astype(np.float64) for l in layers},
                     Q.highfreq_share(data.test_x, data.shape),
                     Q.total_variation(data.test_x, data.shape),
                     data_magnitude(data, model.input_shape), data_prototypes(data))


def candidate_methods() -> dict:
    """Every method the readability benchmark compares: the presets and the field's
    methods as adapted here (name -> VisConfig)."""
    adam = {"optimizer": "adam", "lr": 0.05, "objective": "pre", "tv": 0.0, "l1": 0.0}
    return {
        "paper": VisConfig(),
        "paper+revive": VisConfig(revive=True),  # what the atlas showed before the readable presets
        "readable": VisConfig.preset("readable"),
        "diverse": VisConfig.preset("diverse"),
        "adam": VisConfig(**adam),  # no regulariser: what the objective alone draws
        # lucent's defaults for conv nets: Fourier 1/f, jitter, scale, rotation, no TV
        "fourier": VisConfig(**adam, param="fourier", jitter_px=2, zoom=0.1, rotate=10),
        # MACO: the data's magnitude spectrum, phase only
        "maco": VisConfig(**adam, param="maco", jitter_px=1),
        # readable without its normalisation and L2 (the first untuned try)
        "tv2+blur": VisConfig(**{**adam, "tv": 0.05}, tv_beta=2.0, blur_every=4, jitter_px=1),
    }


def pick_targets(sizes, per_layer: int | None, seed: int = 0) -> list[tuple[int, int]]:
    """Every neuron, or ``per_layer`` drawn at random from each layer (all of the output)."""
    rng = np.random.default_rng(seed)
    out = []
    for l in range(1, len(sizes)):
        n = sizes[l]
        idx = (np.arange(n) if per_layer is None or per_layer >= n or l == len(sizes) - 1
               else np.sort(rng.choice(n, per_layer, replace=False)))
        out += [(l, int(i)) for i in idx]
    return out


def measure(model: MLP, data: Dataset, stats: DataStats, config: VisConfig,
            targets: list[tuple[int, int]], judges, *, seeds: int = 5,
            stability_per_layer: int = 16, pairs: int = 100, seed: int = 0) -> dict:
    """Every measure of one method on ``targets``."""
    t0 = time.perf_counter()
    res = visualize(model, targets, config, magnitude=stats.magnitude,
                    prototypes=stats.prototypes)
    seconds = time.perf_counter() - t0
    tl = np.array([t[0] for t in targets])
    ti = np.array([t[1] for t in targets])
    shape = model.input_shape
    hf, tv = Q.highfreq_share(res.images, shape), Q.total_variation(res.images, shape)
    L = model.n_layers
    layers = {}
    for l in sorted(set(tl.tolist())):
        rows = np.flatnonzero(tl == l)
        idx = ti[rows]
        act = res.activation[rows]
        row = {
            "neurons": len(rows),
            "reached": Q.reached(act, stats.all_max[l][idx]),
            "at_train_max": float(np.mean(act >= stats.train_max[l][idx])),
            "highfreq": float(np.median(hf[rows])),
            "tv": float(np.median(tv[rows])),
        }
        agree, natural = class_agreement(model, data, stats, l, idx, res.images[rows])
        row["class_agreement"], row["natural_agreement"] = agree, natural
        if l < L:
            rng = np.random.default_rng([seed, l])
            strong, mid = Q.two_choice_pairs(stats.test_acts[l][:, idx], rng, pairs)
            # with diversity, the neuron's K pictures together (as people are shown several)
            queries = res.images[rows] if res.diverse_images is None else \
                res.diverse_images[rows]
            tc = Q.two_choice(queries, data.test_x, strong, mid)
            nat = Q.two_choice(data.train_x[stats.top9(l)[idx]], data.test_x, strong, mid)
            row["two_choice"] = float(np.nanmean(tc))
            row["natural"] = float(np.nanmean(nat))
        if l == 1 and l < L:
            z = np.einsum("ij,ij->i", res.images[rows].astype(np.float64),
                          model.weights[0][idx].astype(np.float64)) + model.biases[0][idx]
            opt = layer1_optimum(model)
            frac = (z - opt.z_min[idx]) / np.maximum(opt.z_max[idx] - opt.z_min[idx], 1e-12)
            row["layer1_gap"] = float(np.median(1 - frac))
        if res.diverse_images is not None:
            d = res.diverse_images[rows]
            da = res.diverse_activation[rows]
            row["diversity_corr"] = float(np.mean([Q.mean_correlation(x) for x in d]))
            row["diversity_act"] = float(np.mean(da.min(axis=1) / np.maximum(
                da.max(axis=1), 1e-12)))
        layers[str(l)] = row
    # stability: a few neurons per layer, from other seeds
    sub = [r for l in sorted(set(tl.tolist()))
           for r in np.flatnonzero(tl == l)[:stability_per_layer]]
    stacks = [res.images[sub]]
    for s in range(1, seeds):
        stacks.append(visualize(model, [targets[r] for r in sub],
                                config.replace(seed=config.seed + s),
                                magnitude=stats.magnitude, prototypes=stats.prototypes).images)
    stab = Q.stability(np.stack(stacks))
    for l in sorted(set(tl.tolist())):
        layers[str(l)]["stability"] = float(np.mean(stab[tl[sub] == l]))
    out = {"config": config.to_dict(), "seconds": seconds, "layers": layers}
    if L in set(tl.tolist()) and judges:
        rows = np.flatnonzero(tl == L)
        out["transfer"] = {j.name: r for j, r in zip(
            judges, Q.transfer([j.predict_proba for j in judges], res.images[rows],
                               ti[rows]))}
    return out


def class_agreement(model: MLP, data: Dataset, stats: DataStats, l: int, idx: np.ndarray,
                    pictures: np.ndarray) -> tuple[float, float]:
    """How often the network reads a neuron's picture as the class of its strongest
    training images, and how often it reads the mean of its top 9 so (the natural
    condition): over the live neurons of hidden layer l whose top 16 have a majority
    class (more than 8 of 16); for the output layer, the picture as its own class (the
    natural condition: the mean of the top 9 as that class)."""
    labels = data.train_y[stats.top16[l][idx]]  # (n, 16)
    counts = np.stack([np.bincount(r, minlength=model.sizes[-1]) for r in labels])
    if l == model.n_layers:
        want, keep = idx, np.ones(len(idx), bool)
    else:
        want = counts.argmax(axis=1)
        keep = (counts.max(axis=1) > CLASS_K // 2) & (stats.train_max[l][idx] > 0)
    if not keep.any():
        return float("nan"), float("nan")
    natural = data.train_x[stats.top9(l)[idx[keep]]].mean(axis=1)
    return (float(np.mean(model.predict(pictures[keep]) == want[keep])),
            float(np.mean(model.predict(natural) == want[keep])))


def measure_accentuation(model: MLP, data: Dataset, stats: DataStats, config: VisConfig,
                         targets: list[tuple[int, int]]) -> dict:
    """Feature accentuation, reported apart (it starts from a real image): each hidden
    neuron starts from its median-activating test image; per layer, the start's and the
    result's activation as a share of the neuron's dataset maximum, how many reach their
    training maximum, and how near the result stays to its start (Pearson correlation,
    mean absolute pixel change) and to its class (the network's top-1 kept)."""
    hidden = [t for t in targets if t[0] < model.n_layers]
    starts = np.empty((len(hidden), data.test_x.shape[1]), np.float32)
    for j, (l, i) in enumerate(hidden):
        acts = stats.test_acts[l][:, i]
        starts[j] = data.test_x[np.argsort(acts, kind="stable")[len(acts) // 2]]
    t0 = time.perf_counter()
    res = visualize(model, hidden, config.replace(init="image"), init_image=starts,
                    magnitude=stats.magnitude)
    seconds = time.perf_counter() - t0
    before = model.activations(starts)
    kept = model.predict(res.images) == model.predict(starts)
    tl = np.array([t[0] for t in hidden])
    ti = np.array([t[1] for t in hidden])
    layers = {}
    for l in sorted(set(tl.tolist())):
        rows = np.flatnonzero(tl == l)
        idx = ti[rows]
        peak = stats.all_max[l][idx]
        live = peak > 0
        start_act = before[l][rows, idx]
        corr = [float(np.corrcoef(a, b)[0, 1]) if np.ptp(a) and np.ptp(b) else 1.0
                for a, b in zip(starts[rows], res.images[rows])]
        layers[str(l)] = {
            "start_fraction": float(np.median(start_act[live] / peak[live])),
            "fraction": float(np.median(res.activation[rows][live] / peak[live])),
            "at_train_max": float(np.mean(res.activation[rows] >= stats.train_max[l][idx])),
            "correlation": float(np.median(corr)),
            "pixel_change": float(np.mean(np.abs(res.images[rows] - starts[rows]))),
            "class_kept": float(np.mean(kept[rows])),
        }
    return {"config": config.to_dict(), "seconds": seconds, "layers": layers}


def benchmark(model: MLP, data: Dataset, methods: dict[str, VisConfig], judges, *,
              per_layer: int | None = None, seeds: int = 5, stability_per_layer: int = 16,
              pairs: int = 100, accentuate: VisConfig | None = None,
              log: Log | None = None) -> dict:
    """:func:`measure` for every method, on the same targets, with the data's references;
    with ``accentuate`` also :func:`measure_accentuation` (reported apart)."""
    log = log or (lambda _m: None)
    stats = data_stats(model, data)
    targets = pick_targets(model.sizes, per_layer)
    out = {"targets": len(targets), "per_layer": per_layer, "pairs": pairs, "seeds": seeds,
           "data": {"highfreq_percentiles": np.percentile(stats.hf, [5, 50, 95]).tolist(),
                    "tv_percentiles": np.percentile(stats.tv, [5, 50, 95]).tolist()},
           "judges": {j.name: j.test_accuracy for j in judges}, "methods": {}}
    for name, config in methods.items():
        log(f"{name}: {len(targets)} neurons")
        out["methods"][name] = measure(model, data, stats, config, targets, judges,
                                       seeds=seeds, stability_per_layer=stability_per_layer,
                                       pairs=pairs)
    if accentuate is not None:
        log("accentuate: from each neuron's median test image")
        out["accentuate"] = measure_accentuation(model, data, stats, accentuate, targets)
    return out


def _pct(v: float) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{100 * v:.0f}%"


def markdown(out: dict) -> str:
    """The benchmark's table, one row per method and layer."""
    d = out["data"]
    lines = [
        f"{out['targets']} neurons ({'all' if out['per_layer'] is None else out['per_layer']} "
        f"per hidden layer), {out['pairs']} pairs per neuron, {out['seeds']} seeds. Real "
        f"test digits: high-frequency share 5/50/95th percentile "
        f"{' / '.join(f'{v:.3f}' for v in d['highfreq_percentiles'])}, total variation "
        f"{' / '.join(f'{v:.0f}' for v in d['tv_percentiles'])}. Judges (test accuracy): "
        + ", ".join(f"{k} {100 * v:.2f}%" for k, v in out["judges"].items()) + ".",
        "",
        "| method | layer | reached (median of max) | at train max | two-choice | natural "
        "| class agreement | natural | high-freq | TV | stability | layer-1 gap |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in out["methods"].items():
        for l, r in m["layers"].items():
            lines.append(
                f"| {name} | {l} | {_pct(r['reached']['median_fraction'])} "
                f"| {_pct(r['at_train_max'])} | {_pct(r.get('two_choice'))} "
                f"| {_pct(r.get('natural'))} | {_pct(r.get('class_agreement'))} "
                f"| {_pct(r.get('natural_agreement'))} | {r['highfreq']:.3f} | {r['tv']:.0f} "
                f"| {r['stability']:.2f} | "
                f"{_pct(r['layer1_gap']) if 'layer1_gap' in r else ''} |")
    lines += ["", "| method | seconds | transfer (hits of 10, mean probability) |",
              "|---|---|---|"]
    for name, m in out["methods"].items():
        tr = ", ".join(f"{k} {v['hits']}/10 at {v['probability']:.2f}"
                       for k, v in m.get("transfer", {}).items())
        lines.append(f"| {name} | {m['seconds']:.1f} | {tr} |")
    acc = out.get("accentuate")
    if acc:
        lines += ["", f"Feature accentuation (reported apart: it starts from a real image, each "
                  f"neuron's median-activating test image; {acc['seconds']:.1f} s):", "",
                  "| layer | start (median of max) | accentuated | at train max | "
                  "correlation with start | mean pixel change | class kept |",
                  "|---|---|---|---|---|---|---|"]
        for l, r in acc["layers"].items():
            lines.append(f"| {l} | {_pct(r['start_fraction'])} | {_pct(r['fraction'])} "
                         f"| {_pct(r['at_train_max'])} | {r['correlation']:.2f} "
                         f"| {r['pixel_change']:.3f} | {_pct(r['class_kept'])} |")
    return "\n".join(lines) + "\n"
