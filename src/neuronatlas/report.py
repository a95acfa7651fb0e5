"""The report's text: ``report.md`` and ``report.html`` from what ``reproduce`` computed
(its pipeline is :mod:`.reproduce`): the paper's numbers beside this run's, the claims,
each figure under the paper's caption, the readability benchmark, the stages' seconds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import paper
from .analysis.claims import markdown as claims_markdown
from .analysis.run import AnalysisResult
from .data import Dataset
from .figures import FIGURES, value_range
from .nn.mlp import MLP, PAPER_SIZES


@dataclass(frozen=True)
class RunFacts:
    """What the report says of the run besides the stages' results: its model and data,
    the model's hash, and the seconds of every stage ({name: {"seconds", "note"}})."""

    model: MLP
    data: Dataset
    model_sha256: str
    stage_times: dict


def readability_markdown(out: dict | None) -> list[str]:
    """The readability section; ``None``: the benchmark was skipped (said so)."""
    from .readability import markdown as table

    if out is None:
        return ["## Beyond the paper: readable visualisations", "",
                "Skipped (`reproduce --no-readability`): the benchmark of the visualisation "
                "methods was not run for this report."]

    def row(name: str, key: str, layer: int) -> float:
        return out["methods"][name]["layers"][str(layer)].get(key, float("nan"))

    hidden = [int(l) for l, r in out["methods"]["readable"]["layers"].items()
              if "two_choice" in r]
    tc = " / ".join(f"{100 * row('readable', 'two_choice', l):.0f}" for l in hidden)
    nat = " / ".join(f"{100 * row('readable', 'natural', l):.0f}" for l in hidden)
    pap = " / ".join(f"{100 * row('paper', 'two_choice', l):.0f}" for l in hidden)
    at = " / ".join(f"{100 * row('readable', 'at_train_max', l):.0f}" for l in hidden)
    ca = " / ".join(f"{100 * row('readable', 'class_agreement', l):.0f}" for l in hidden)
    can = " / ".join(f"{100 * row('readable', 'natural_agreement', l):.0f}" for l in hidden)
    return [
        "## Beyond the paper: readable visualisations", "",
        "The paper's method (`--preset paper`) beside the field's methods adapted to a dense "
        "network on grey images, measured per layer (`neuronatlas.readability`; the full "
        "run over every neuron is `benchmarks/vis_quality.py`, docs/vis_quality.md). "
        "*Two-choice*: of pairs of held-out test images, one from the neuron's top 5% and one "
        "from its 40-60% band, how often the one more similar (Pearson) to the picture is the "
        "stronger; *natural*: the same with the neuron's top-9 training images as the "
        "reference (people scored 82% with synthetic and 92% with natural references on conv "
        "nets, Borowski et al. 2021). *Reached*: activation as a share of the neuron's "
        "highest over all images; *at train max*: the share of neurons whose picture "
        "activates them at least as much as their strongest training image. *Class "
        "agreement*: how often the network reads the picture as the class most of the "
        "neuron's 16 strongest training images have (neurons where more than 8 share one), "
        "beside the same for the mean of its top 9 (*natural*).", "",
        f"The `readable` preset (the atlas's tiles) in hidden layers {hidden[0]}-{hidden[-1]}: "
        f"two-choice {tc}% against natural {nat}% and the paper's method {pap}%; "
        f"{at}% of neurons at or above their training maximum; class agreement {ca}% "
        f"against natural {can}%.", "",
        "![the same neurons under each method](figures/methods.png)", "",
        table(out),
    ]


def _pct(p: float, digits: int = 2) -> str:
    return f"{100 * p:.{digits}f}%"


def _target(t) -> str:
    return f"{int(t[0])}:{int(t[1])}"


def _numbers_table(ev_acc: float, metrics: list[dict], analysis: AnalysisResult,
                   fd: dict[str, dict], hidden: int, paper_setting: bool = True) -> list[str]:
    P = paper.NUMBERS
    ema = metrics[-1]["ema_loss"] if metrics else None
    f2 = fd["fig2"]
    reached = int((f2["steps_to_confidence"] >= 0).sum())
    target_p = f2["probs_adversarial"][np.arange(len(f2["targets"])), f2["targets"]]
    l2 = np.linalg.norm(f2["adversarials"].astype(np.float64) - f2["originals"], axis=1)
    ex = P["fig2_example"]
    pair = np.flatnonzero((f2["labels"] == ex["label"]) & (f2["targets"] == ex["target"]))
    dead = analysis.dead
    silent = sum(len(d["silent_on_data"]) for d in dead["layers"].values())
    f5 = fd["fig5"]["ratio"]
    rows = [
        ("test accuracy", _pct(P["test_accuracy"]), _pct(ev_acc)),
        ("final EMA of the training loss", f"≈ {P['final_ema_loss']}",
         f"{ema:.4f}" if ema is not None else "n/a (model not trained here)"),
        (f"adversarial examples (Fig. 2) reach confidence > {P['adversarial_confidence']}",
         "yes (\"over 0.99\")",
         f"{reached} of {len(f2['targets'])} pairs (target probability "
         f"{value_range(target_p, '{:.4f}')}, L2 change {value_range(l2, '{:.2f}')})"),
    ]
    if pair.size and paper_setting:
        i = int(pair[0])
        rows.append((f"Fig. 2 example: a {ex['label']}, then pushed to {ex['target']}",
                     f"{_pct(ex['original'], 4)} → {_pct(ex['adversarial'], 4)}",
                     f"{_pct(f2['probs_original'][i][ex['label']], 4)} → "
                     f"{_pct(f2['probs_adversarial'][i][ex['target']], 4)}"))
    rows += [
        ("output-neuron visualisations reach high activation (Fig. 3, 100 steps)",
         "high (not given)", value_range(fd["fig3"]["activation"], "{:.3f}")),
        (f"Fig. 5: largest ratio of {_target(fd['fig5']['target'])} to the next-highest neuron",
         f"{P['fig5_max_ratio']}", f"{np.nanmax(np.where(np.isfinite(f5), f5, np.nan)):.2f}"),
        ("dead neurons", "\"a minority\"",
         f"{silent} of {hidden} hidden neurons silent on all {dead['images']} images; "
         f"{dead['total_dead']} "
         "also unreachable by optimisation"),
    ]
    if not paper_setting:
        return ["| quantity | this run |", "|---|---|"] + [f"| {a} | {c} |" for a, _, c in rows]
    lines = ["| quantity | paper | this run |", "|---|---|---|"]
    return lines + [f"| {a} | {b} | {c} |" for a, b, c in rows]


def report_markdown(facts: RunFacts, how: str, ev_acc: float, metrics: list[dict],
                     analysis: AnalysisResult, fd: dict[str, dict], readable: dict | None
                     ) -> str:
    m = facts.model
    if metrics:
        how = f"trained here ({len(metrics)} epochs, see metrics.jsonl)"
    elif how == "reused from the run folder":
        source = m.metadata.get("imported_from")
        how = (f"imported from {source}" if source else
               "taken from the run folder (not trained by this run)")
    data = facts.data
    acts = "/".join(sorted({a.spec for a in m.activation_fns})) or "no hidden layer"
    # the paper's numbers are for its ReLU network on MNIST; another network is not
    # compared with them (a smaller one's Fig. 2 pair or Fig. 5 ratio says nothing of it)
    paper_setting = data.name == "mnist" and m.all_relu and tuple(m.sizes) == PAPER_SIZES
    title = ("# Reproduction of Auer, *Visualising the Hidden Neurons of a Non-convolutional "
             "DNN Trained on the MNIST Database*" if paper_setting else
             f"# Auer's experiments on a {'-'.join(map(str, m.sizes))} {acts} network "
             f"({data.name})")
    numbers = (["## The paper's numbers beside this run's", ""] if paper_setting else [
        "## This run's numbers", "",
        f"Skipped: the comparison with the paper's numbers, which are for its "
        f"{'-'.join(map(str, PAPER_SIZES))} ReLU network on MNIST (98.06% test accuracy, ...); "
        f"this is a {'-'.join(map(str, m.sizes))} {acts} network on {data.name}.", ""])
    n_images = len(data.train_x) + len(data.test_x)
    lines = [
        title, "",
        f"Model: {'-'.join(map(str, m.sizes))}, {acts}, {how}; sha256 of its weights "
        f"`{facts.model_sha256[:16]}`. Dataset: {data.name} ({n_images:,} images of "
        f"{'x'.join(map(str, data.shape))}, {data.n_classes} classes; sha256 "
        f"`{data.identity['sha256'][:16]}`).", "",
        *numbers,
        *_numbers_table(ev_acc, metrics, analysis, fd, sum(m.sizes[1:-1]), paper_setting), "",
        "## The paper's claims, layer by layer", "",
        f"Measured over all {n_images:,} {data.name} images and the visualisation of every "
        "neuron (analysis/; see `neuronatlas analyze`).", "",
        claims_markdown(analysis.layers["table"], analysis.layers["claims"]),
        "## Figures", "",
        "Each figure is redrawn by this run from `figures/data/figN.npz`; below it, the "
        "paper's caption, then this run's settings and numbers. The paper gives no "
        "learning rate for its visualisations: `neuronatlas/figures/common.py` says why each was "
        "chosen.", "",
    ]
    for k, (name, figure) in enumerate(FIGURES.items(), 1):
        lines += [f"### Figure {k}", "", f"![Figure {k}](figures/{name}.png)", "",
                  f"> **Paper:** {figure.caption}", "",
                  f"**This run:** {figure.notes(fd[name])} {figure.settings_line}", ""]
    lines += [*readability_markdown(readable), ""]
    lines += ["## Stages", "",
              "Seconds each stage took when it was last computed (a rerun reuses them).", "",
              "| stage | seconds | note |", "|---|---|---|"]
    for name, st in facts.stage_times.items():
        sec = "—" if st["seconds"] is None else f"{st['seconds']:.1f}"
        lines.append(f"| {name} | {sec} | {st.get('note', '')} |")
    return "\n".join(lines) + "\n"


def report_html(markdown_text: str) -> str:
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>neuronatlas report</title><style>"
            "body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;"
            "padding:0 1em;color:#222}img{max-width:100%;border:1px solid #ddd}"
            "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}"
            "blockquote{color:#555;border-left:4px solid #ccc;margin:0;padding:0 1em}"
            "code{background:#f3f3f3;padding:0 3px}</style></head><body>\n"
            f"{body}\n</body></html>\n")
