"""``neuronatlas reproduce``: the paper end to end, stage by stage, reusing what exists.

Stages so far: train (or reuse the run's model, or resume its checkpoint, or take
``--model``), evaluate on the test set, analyse (dead neurons, dataset examples,
clusters, the layer claims), and write ``report.md`` setting the paper's numbers
beside this run's, with the time each stage took.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from .analysis.claims import markdown as claims_markdown
from .analysis.run import analyze
from .config import TrainConfig
from .data import MNIST
from .errors import RunFolderError
from .evaluate import evaluate, save_evaluation
from .fileio import atomic_write_text, ensure_dir
from .nn.io import check_mnist_sizes
from .nn.mlp import MLP
from .train import CHECKPOINT, Reporter, train

#: Numbers the paper reports ("DNN Configuration and Training").
PAPER = {"test_accuracy": 0.9806, "final_ema_loss": 0.01}


def _read_metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def obtain_model(run: Path, data: MNIST, *, quick: bool, model_path: Path | None,
                 reporter: Reporter | None, log: Callable[[str], None]) -> tuple[MLP, str]:
    """The run's model: given, already trained, resumed from a checkpoint, or trained now."""
    if model_path is not None:
        return check_mnist_sizes(MLP.load(model_path), str(model_path)), f"loaded from {model_path}"
    if (run / "model.safetensors").is_file():
        return MLP.load(run / "model.safetensors"), "reused from the run folder"
    config = TrainConfig.quick() if quick else TrainConfig()
    resume = (run / CHECKPOINT).is_file()
    if (run / "metrics.jsonl").is_file() and not resume:
        raise RunFolderError(f"{run} has metrics but neither a model nor a checkpoint; "
                             "use another --run or remove it")
    log("resuming the interrupted training" if resume else
        f"training ({config.total_epochs} epochs)")
    result = train(data, None if resume else config, run, resume=resume, reporter=reporter)
    if not result.completed:
        raise KeyboardInterrupt
    return result.model, "resumed and finished" if resume else "trained now"


def reproduce(run_dir: str | Path, data: MNIST, *, quick: bool = False,
              model_path: Path | None = None, reporter: Reporter | None = None,
              log: Callable[[str], None] = lambda m: None) -> Path:
    run = ensure_dir(run_dir)
    stages: list[tuple[str, float, str]] = []
    t = time.perf_counter()
    model, how = obtain_model(run, data, quick=quick, model_path=model_path,
                              reporter=reporter, log=log)
    stages.append(("model", time.perf_counter() - t, how))

    t = time.perf_counter()
    ev = evaluate(model, data.test_x, data.test_y, "test")
    save_evaluation(run, ev, str(model_path or run / "model.safetensors"))
    stages.append(("evaluate", time.perf_counter() - t, f"{ev.n} test images"))

    t = time.perf_counter()
    result = analyze(run, model, data, log=log)
    note = "reused" if len(result.reused) == 5 else f"computed ({len(result.reused)} parts reused)"
    stages.append(("analyze", time.perf_counter() - t, note))

    metrics = _read_metrics(run) if model_path is None else []  # another model's otherwise
    ema = metrics[-1]["ema_loss"] if metrics else None
    epoch_s = [m["seconds"] for m in metrics]
    rows = [
        ("Test accuracy", f"{100 * PAPER['test_accuracy']:.2f}%", f"{100 * ev.accuracy:.2f}%"),
        ("Final EMA of the training loss", f"≈ {PAPER['final_ema_loss']}",
         f"{ema:.4f}" if ema is not None else "n/a (model not trained here)"),
        ("Epochs (batch 32)", "20 at lr 0.01 + 5 at lr 0.001",
         f"{len(metrics)}" if metrics else "n/a"),
        ("Seconds per epoch", "not reported",
         f"{sum(epoch_s) / len(epoch_s):.1f}" if epoch_s else "n/a"),
    ]
    lines = ["# neuronatlas reproduction of Auer, *Visualising the Hidden Neurons of a "
             "Non-convolutional DNN Trained on the MNIST Database*", "",
             f"Model: {how}. Sizes {'-'.join(map(str, model.sizes))}.", "",
             "## Training", "", "| quantity | paper | this run |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    dead = result.dead
    lines += ["", "## The paper's claims, layer by layer", "",
              f"Silent on all {dead['images']} images: "
              f"{sum(len(d['silent_on_data']) for d in dead['layers'].values())} hidden neurons; "
              f"dead even to optimisation: {dead['total_dead']} "
              f"({100 * dead['total_fraction']:.2f}%).", "",
              claims_markdown(result.layers["table"], result.layers["claims"])]
    lines += ["", "## Stages", "", "| stage | seconds | note |", "|---|---|---|"]
    lines += [f"| {name} | {sec:.1f} | {note} |" for name, sec, note in stages]
    report = run / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    return report
