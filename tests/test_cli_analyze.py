"""neuronatlas analyze through the real entry point, on real MNIST with a tiny model."""

import json
import os
from contextlib import contextmanager

import numpy as np
import pytest

from neuronatlas import MLP

from .test_cli import assert_user_error, run_cli


def test_analyze_tiny_model_on_mnist(tmp_path, mnist):
    m = MLP.init((784, 12, 10), rng=np.random.default_rng(0))
    m.biases[0][5] = -1000.0  # planted dead neuron
    m.save(tmp_path / "model.safetensors")
    # a model records the data it was made for only when it was trained or imported on it
    assert_user_error(run_cli("analyze", "--run", tmp_path, "--k", "8"), "--dataset")
    m.save(tmp_path / "model.safetensors", {"dataset": "mnist"})
    proc = run_cli("analyze", "--run", tmp_path, "--k", "8")
    assert proc.returncode == 0, proc.stderr
    dead = json.loads((tmp_path / "analysis/dead.json").read_text())
    assert dead["images"] == 70000 and dead["layers"]["1"]["dead"] == [5]
    ex = json.loads((tmp_path / "analysis/examples.json").read_text())
    assert ex["k"] == 8 and len(ex["layers"]["1"]["purity"]) == 12
    again = run_cli("analyze", "--run", tmp_path, "--k", "8")
    assert again.returncode == 0
    assert "reused: activations, dead, examples, visualizations, clusters, layers" in again.stdout


def test_analyze_bad_input(tmp_path):
    assert_user_error(run_cli("analyze", "--run", tmp_path / "nothing"), "does not exist")
    m = MLP.init((784, 4, 10), rng=np.random.default_rng(0))
    m.save(tmp_path / "model.safetensors", {"dataset": "mnist"})
    assert_user_error(run_cli("analyze", "--run", tmp_path, "--k", "0"), "k must be")
    assert_user_error(run_cli("analyze", "--run", tmp_path, "--k", "70001"), "k must be")


@contextmanager
def _held_by_another_process(run):
    """A small model in ``run``, whose lock another process holds inside the block."""
    import subprocess
    import sys

    MLP.init((784, 4, 10), rng=np.random.default_rng(0)).save(
        run / "model.safetensors", {"dataset": "mnist"})
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from neuronatlas.runs import writing\n"
         f"with writing({str(run)!r}, 'analyze'):\n"
         "    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_second_writer_is_refused_while_the_first_holds_the_run(tmp_path, mnist):
    """Two analyses of one run folder at once once saved a wrong dead.json: now the second
    writer is refused with one line while the first holds the folder, and runs after it."""
    with _held_by_another_process(tmp_path) as holder:
        proc = run_cli("analyze", "--run", tmp_path, "--k", "4")
        assert_user_error(proc, "is being written by another neuronatlas command")
        assert f"(process {holder.pid} on " in proc.stderr and "analyze, since" in proc.stderr
        assert not (tmp_path / "analysis").exists()
    assert run_cli("analyze", "--run", tmp_path, "--k", "4").returncode == 0


def test_evaluate_writes_under_the_lock(tmp_path):
    """evaluate wrote evaluation-test.json (and claimed the folder) without the lock."""
    with _held_by_another_process(tmp_path):
        assert_user_error(run_cli("evaluate", "--run", tmp_path),
                          "is being written by another neuronatlas command")
        assert not (tmp_path / "evaluation-test.json").exists()


def test_the_lock_is_handed_down_never_shared_behind_the_callers_back(tmp_path):
    """Who holds a run folder's lock is explicit (a RunLock passed down with ``held=`` /
    ``lock=``), not a process-wide record: a second writer in the same process (a
    second thread of a Dask worker) is refused like another process, and a lock whose
    block ended covers nothing."""
    import threading

    from neuronatlas import RunFolderError
    from neuronatlas.runs import writing

    with writing(tmp_path, "reproduce") as lock:
        with writing(tmp_path, "analyze", held=lock) as inner:  # handed down: the same lock
            assert inner is lock
        with pytest.raises(RunFolderError, match="being written by another .*reproduce"):
            with writing(tmp_path, "analyze"):  # not handed down: another writer
                pass
        refused = []

        def other_thread():
            try:
                with writing(tmp_path, "analyze"):
                    pass
            except RunFolderError as exc:
                refused.append(str(exc))

        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert refused and f"process {os.getpid()}" in refused[0]
    with pytest.raises(RunFolderError, match="does not cover"):
        with writing(tmp_path, "analyze", held=lock):  # its block has ended
            pass
    with pytest.raises(RunFolderError, match="does not cover"):
        with writing(tmp_path / "elsewhere", "analyze", held=lock):
            pass
    with writing(tmp_path, "analyze"):  # released: taken again
        pass


def test_a_command_refused_in_a_new_folder_leaves_no_folder(tmp_path):
    """A refused --resume (or import, or any writer that fails before writing) in a folder
    it made left that folder behind holding only its lock file."""
    proc = run_cli("train", "--run", tmp_path / "r", "--resume")
    assert_user_error(proc, "no checkpoint")
    assert not (tmp_path / "r").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    assert_user_error(run_cli("train", "--run", kept, "--resume"), "no checkpoint")
    assert kept.is_dir()  # the user's own folder stays
