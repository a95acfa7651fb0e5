"""``neuronatlas reproduce`` end to end: every figure, a report with every number of the
paper-vs-run table, and a rerun that is fast and changes no file."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from neuronatlas import MLP
from neuronatlas import reproduce as R
from neuronatlas.figures import FIGURES
from neuronatlas.runs import LOCK

from .test_cli import assert_user_error, run_cli

FIGS = [f"fig{k}" for k in range(1, 8)]


def snapshot(run: Path) -> dict[str, tuple[bytes, int]]:
    """Every artefact's bytes and time (not the lock file, which names its holder)."""
    return {str(p.relative_to(run)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(run.rglob("*")) if p.is_file() and p.name != LOCK}


def check_outputs(run: Path, paper: bool) -> str:
    """The report, checked; ``paper``: the run is of the paper's network."""
    for name in FIGS:
        png, pdf = run / "figures" / f"{name}.png", run / "figures" / f"{name}.pdf"
        assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:4] == b"%PDF"
    report = (run / "report.md").read_text()
    accuracy = json.loads((run / "evaluation-test.json").read_text())["accuracy"]
    dead = json.loads((run / "analysis/dead.json").read_text())
    paper_rows = ("98.06%", "≈ 0.01", "99.2693% → 99.9211%", "| 2.14 |", "\"a minority\"")
    for needle in (f"{100 * accuracy:.2f}%", "confidence > 0.99",
                   f"silent on all {dead['images']} images",
                   "| claim of the paper |", "## Stages"):
        assert needle in report, needle
    if paper:
        assert all(needle in report for needle in paper_rows), report
    else:  # another network is not set beside the paper's numbers
        assert "## This run's numbers" in report and "Skipped: the comparison" in report
        assert not any(needle in report for needle in paper_rows[2:]), report
    for name in FIGS:
        assert f"(figures/{name}.png)" in report
        assert FIGURES[name].caption[:60] in report  # the paper's caption beside each figure
    html = (run / "report.html").read_text()
    assert '<img alt="Figure 7" src="figures/fig7.png"' in html and "<table>" in html
    assert (run / "atlas" / "index.html").is_file()
    return report


def reproduce_twice(run: Path, *args, paper: bool) -> tuple[float, float]:
    t = time.perf_counter()
    first = run_cli("reproduce", "--run", run, *args, timeout=1800)
    t1 = time.perf_counter() - t
    assert first.returncode == 0, first.stderr
    check_outputs(run, paper)
    before = snapshot(run)
    t = time.perf_counter()
    again = run_cli("reproduce", "--run", run, *args, timeout=1800)
    t2 = time.perf_counter() - t
    assert again.returncode == 0, again.stderr
    after = snapshot(run)
    changed = [k for k in before.keys() | after.keys() if before.get(k) != after.get(k)]
    assert changed == [], changed
    return t1, t2


def test_reproduce_with_a_given_model(tiny_run, tmp_path):
    """Any MNIST-shaped model works (`--model`); Figures 5-7 fall back to the model's
    last hidden layer when it has fewer than the paper's 7."""
    t1, t2 = reproduce_twice(tmp_path / "run", "--model", tiny_run / "model.safetensors",
                             paper=False)
    assert t2 < t1
    report = (tmp_path / "run/report.md").read_text()
    assert "model not trained here" in report
    # beyond the paper: the readability benchmark's table and the methods figure
    assert "## Beyond the paper: readable visualisations" in report
    assert "| readable | 3 |" in report and "| paper | 3 |" in report
    assert "![the same neurons under each method](figures/methods.png)" in report
    assert (tmp_path / "run/figures/methods.png").stat().st_size > 10_000
    doc = json.loads((tmp_path / "run/readability/readability.json").read_text())
    assert set(doc["benchmark"]["methods"]) >= {"paper", "readable", "diverse"}
    acc = doc["benchmark"]["accentuate"]["layers"]  # feature accentuation, reported apart
    assert set(acc) == {"1", "2", "3"} and "Feature accentuation (reported apart" in report
    assert all(r["fraction"] >= r["start_fraction"] for r in acc.values())


@pytest.mark.slow
def test_reproduce_quick_end_to_end(quick_run, tmp_path):
    """`reproduce --quick` on the paper's architecture (the quick model is reused from the
    session's run folder so training is not paid twice)."""
    run = tmp_path / "run"
    shutil.copytree(quick_run, run)
    t1, t2 = reproduce_twice(run, "--quick", paper=True)
    assert t2 < t1 / 3, (t1, t2)
    model = (run / "model.safetensors").read_bytes()
    assert model == (quick_run / "model.safetensors").read_bytes()  # reused, not retrained
    report = (run / "report.md").read_text()
    assert "trained here (3 epochs" in report
    assert "| analysis: visualizations |" in report and "| fig4 data |" in report


def test_reproduce_bad_input(tiny_run, tmp_path):
    assert_user_error(run_cli("reproduce", "--run", tmp_path / "a", "--model",
                              tmp_path / "missing.safetensors"), "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    assert_user_error(run_cli("reproduce", "--run", tmp_path / "b", "--model", bad), "bad")
    # a run folder trained with another config is not reused for --quick
    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    assert_user_error(run_cli("reproduce", "--run", other, "--quick"),  # names what differs
                      "belongs to another training config (config.json: sizes "
                      "784,48,24,16,10 there, 784,1250,1000,750,500,250,100,32,10 asked")
    assert (other / "model.safetensors").is_file()  # nothing of it was lost
    # --model into a run folder that holds another model: refused, nothing overwritten
    stranger = tmp_path / "stranger.safetensors"
    m = MLP.load(tiny_run / "model.safetensors")
    m.biases[0][0] += 1.0
    m.save(stranger)
    before = (other / "model.safetensors").read_bytes()
    assert_user_error(run_cli("reproduce", "--run", other, "--model", stranger),
                      "holds another model")
    assert (other / "model.safetensors").read_bytes() == before
    # a config.json that is not a run config
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text('{"train": "not a config"}')
    assert_user_error(run_cli("reproduce", "--run", odd, "--quick"),
                      "not a neuronatlas run config")


@pytest.mark.slow  # a fault injected into a whole run: tens of seconds; in CI's slow step
def test_interrupted_figure_is_not_kept_and_rerun_finishes(tiny_run, tmp_path, mnist,
                                                           monkeypatch):
    run = tmp_path / "run"
    model = tiny_run / "model.safetensors"
    real = R.figure_bytes
    calls = []

    def interrupt_fig3(fig, fmt):
        calls.append(fmt)
        if "Figure 3" in fig._suptitle.get_text() and fmt == "png":
            raise KeyboardInterrupt
        return real(fig, fmt)

    monkeypatch.setattr(R, "figure_bytes", interrupt_fig3)
    with pytest.raises(KeyboardInterrupt):
        R.reproduce(run, dataset=mnist, model_path=model, atlas=False)
    assert (run / "figures/fig2.png").is_file() and not (run / "figures/fig3.png").exists()
    assert not list(run.rglob("*.tmp"))
    monkeypatch.setattr(R, "figure_bytes", real)
    R.reproduce(run, dataset=mnist, model_path=model, atlas=False)
    assert all((run / "figures" / f"{n}.png").is_file() for n in FIGS)
    assert MLP.load(model).sizes[-1] == 10


@pytest.mark.slow  # a fault injected into a whole run: tens of seconds; in CI's slow step
def test_a_full_disk_is_one_clear_error_and_keeps_what_was_saved(tiny_run, tmp_path, mnist,
                                                                 monkeypatch):
    import errno
    import os as _os

    from neuronatlas import RunFolderError, fileio

    run = tmp_path / "run"
    model = tiny_run / "model.safetensors"
    R.reproduce(run, dataset=mnist, model_path=model, atlas=False)
    before = (run / "figures/fig3.png").read_bytes()
    (run / "figures/fig3.png").unlink()  # must be drawn again

    real_replace = _os.replace

    def no_space(src, dst):
        if str(dst).endswith("fig3.png"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", no_space)
    with pytest.raises(RunFolderError, match="cannot write .*fig3.png: No space left"):
        R.reproduce(run, dataset=mnist, model_path=model, atlas=False)
    assert not list(run.rglob("*.tmp")) and (run / "report.md").is_file()
    monkeypatch.setattr(fileio.os, "replace", real_replace)
    R.reproduce(run, dataset=mnist, model_path=model, atlas=False)
    assert (run / "figures/fig3.png").read_bytes() == before
