"""A real full disk: a small tmpfs (mounted where the test may: root on Linux), filled to
leave a sweep of free bytes before each verb runs. Every run ends with exit 0 or with
exactly one error line and exit 2 (never a traceback, a Bus error or a numpy warning);
what was saved before is untouched; nothing half-written sits under a final name; and
with the space given back, the rerun writes the same bytes as a run that never failed.
(tests/test_atlas_build.py and test_reproduce.py inject ENOSPC at chosen writes; this
file lets the kernel choose.) docs/reliability.md has the table."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import neuronatlas as na

from .test_faults import _no_temporaries

TRAIN = ["--dataset", "mnist", "--sizes", "784,32,10", "--epochs", "1",
         "--fine-tune-epochs", "1"]


@pytest.fixture
def disk(tmp_path):
    """A 16 MiB tmpfs, unmounted afterwards; skipped where mounting is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[:100]}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave: int) -> None:
    """Take all but ``leave`` bytes of the disk with one file of zeros (tmpfs keeps them)."""
    _unfill(mnt)
    size = max(shutil.disk_usage(mnt).free - leave, 0)
    with open(mnt / "filler", "wb") as f:
        try:
            f.write(bytes(size))
        except OSError:  # page rounding: as full as it gets
            pass


def _unfill(mnt: Path) -> None:
    (mnt / "filler").unlink(missing_ok=True)


def _run(*args) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "neuronatlas", *map(str, args)],
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stderr


def _refused_in_one_line(code: int, err: str) -> bool:
    """True for exit 2 with one error line, False for success; anything else fails."""
    assert code in (0, 2), (code, err[-2000:])  # 135 would be a Bus error
    assert "Traceback" not in err and "Warning" not in err, err[-2000:]
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, err[-2000:]
        assert "No space left" in errors[0] or "free" in errors[0], errors[0]
    return code == 2


def _digests(folder: Path) -> dict[str, str]:
    """Each file's sha256; a JSON record's without its "seconds" (the one field a rerun
    may change)."""
    def untimed(v):
        if isinstance(v, dict):
            return {k: untimed(x) for k, x in v.items() if k != "seconds"}
        return [untimed(x) for x in v] if isinstance(v, list) else v

    def content(p: Path) -> bytes:
        if p.suffix == ".json":
            return json.dumps(untimed(json.loads(p.read_text())), sort_keys=True).encode()
        return p.read_bytes()

    return {str(p.relative_to(folder)): hashlib.sha256(content(p)).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # a fault injected into a whole run: tens of seconds; in CI's slow step
def test_train_on_a_full_disk(disk, mnist):
    run = disk / "run"
    assert _run("train", "--run", run, *TRAIN)[0] == 0
    reference = run.joinpath("model.safetensors").read_bytes()
    # --overwrite on a full disk: the finished run is kept (in RUN/replaced/ until a new
    # model is saved), so nothing is lost when the new one cannot be written
    _fill(disk, 0)
    assert _refused_in_one_line(*_run("train", "--run", run, "--overwrite", *TRAIN))
    assert run.joinpath("replaced/model.safetensors").read_bytes() == reference
    _unfill(disk)
    refused = 0
    for leave in (0, 4096, 64 << 10, 160 << 10, 200 << 10, 240 << 10):
        shutil.rmtree(run)
        _fill(disk, leave)
        refused += _refused_in_one_line(*_run("train", "--run", run, *TRAIN))
        _no_temporaries(run)
        _unfill(disk)
        resume = ["--resume"] if (run / "checkpoints").is_dir() and any(
            (run / "checkpoints").iterdir()) else ["--overwrite"]
        if not (run / "model.safetensors").exists():
            assert _run("train", "--run", run, *resume, *TRAIN)[0] == 0, resume
        assert run.joinpath("model.safetensors").read_bytes() == reference, leave
    assert refused >= 3  # the sweep did reach the writes it was meant for


@pytest.mark.slow  # a fault injected into a whole run: tens of seconds; in CI's slow step
def test_analyze_and_atlas_on_a_full_disk(disk, mnist):
    run = disk / "run"
    run.mkdir()
    na.MLP.init((784, 8, 10), rng=np.random.default_rng(0)).save(
        run / "model.safetensors", {"dataset": "mnist"})
    # the activation store (5 MB) on a disk without room for it: refused before writing
    for leave in (0, 1 << 20, 5 << 20):
        _fill(disk, leave)
        assert _refused_in_one_line(*_run("analyze", "--run", run))
        _no_temporaries(run)
    _unfill(disk)
    assert _run("analyze", "--run", run)[0] == 0
    assert _run("atlas", "--run", run)[0] == 0
    analysis, atlas = _digests(run / "analysis"), _digests(run / "atlas")
    # the later stages, the store kept: whichever write the disk stops, one line
    refused = 0
    for leave in (0, 8 << 10, 32 << 10, 96 << 10):
        for stage in (run / "analysis").iterdir():
            if stage.is_file():
                stage.unlink()
        _fill(disk, leave)
        refused += _refused_in_one_line(*_run("analyze", "--run", run))
        _no_temporaries(run)
        _unfill(disk)
        assert _run("analyze", "--run", run)[0] == 0
        assert _digests(run / "analysis") == analysis, leave
    assert refused >= 2
    # the atlas: a rebuild on a full disk keeps the previous atlas byte for byte
    refused = 0
    for leave in (0, 64 << 10, 256 << 10, 512 << 10):
        shutil.rmtree(run / "atlas-cache", ignore_errors=True)
        _fill(disk, leave)
        if _refused_in_one_line(*_run("atlas", "--run", run)):
            refused += 1
            assert _digests(run / "atlas") == atlas, leave
        _no_temporaries(run)
        _unfill(disk)
        assert _run("atlas", "--run", run)[0] == 0
        assert _digests(run / "atlas") == atlas, leave
    assert refused >= 2
