"""Training: the schedule, EMA, metrics, checkpoints, bit-exact resume, divergence."""

import json

import numpy as np
import pytest

from neuronatlas import (
    MLP,
    CheckpointError,
    ConfigError,
    RunFolderError,
    TrainConfig,
    TrainingDivergedError,
    train,
)
from neuronatlas.checkpoint import load_checkpoint
from neuronatlas.layout import CHECKPOINT
from neuronatlas.nn.sgd_step import SGDStep

from .helpers import synthetic_mnist

SIZES = (20, 16, 8, 4)


def small_config(**kw):
    return TrainConfig(**{"sizes": SIZES, "batch_size": 16, "epochs": 2, "fine_tune_epochs": 1,
                          "lr": 0.05, "fine_tune_lr": 0.01, "seed": 7, **kw})


@pytest.fixture(scope="module")
def toy():
    return synthetic_mnist()


def test_paper_defaults():
    c = TrainConfig()
    assert (c.batch_size, c.epochs, c.lr, c.fine_tune_epochs, c.fine_tune_lr) == (
        32, 20, 0.01, 5, 0.001)
    assert c.ema_decay == 0.9999 and c.sizes == (784, 1250, 1000, 750, 500, 250, 100, 32, 10)
    assert [c.lr_at(e) for e in (0, 19, 20, 24)] == [0.01, 0.01, 0.001, 0.001]
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


@pytest.mark.parametrize("field,value", [("batch_size", 0), ("batch_size", -3), ("epochs", -1),
                                          ("lr", 0.0), ("lr", float("nan")), ("lr", -0.1),
                                          ("fine_tune_lr", float("inf")), ("ema_decay", 1.0),
                                          ("seed", -1), ("sizes", (784,))])
def test_bad_config_values_are_refused(field, value):
    with pytest.raises(ConfigError, match=field.split("_")[0]):
        TrainConfig(**{field: value})


def test_training_learns_and_writes_the_run_folder(toy, tmp_path):
    result = train(toy, small_config(), tmp_path / "run")
    assert result.completed and result.state.epoch == 3
    metrics = [json.loads(l) for l in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert [m["lr"] for m in metrics] == [0.05, 0.05, 0.01]
    assert set(metrics[0]) == {"epoch", "lr", "ema_loss", "test_accuracy", "seconds"}
    assert metrics[-1]["test_accuracy"] > 0.9
    model = MLP.load(tmp_path / "run/model.safetensors")
    assert json.loads(model.metadata["config"]) == small_config().to_dict()
    assert float(model.metadata["test_accuracy"]) == pytest.approx(metrics[-1]["test_accuracy"])
    assert json.loads((tmp_path / "run/config.json").read_text())["train"]["seed"] == 7


def test_ema_is_the_bias_corrected_moving_average_of_batch_losses(toy):
    config = small_config(epochs=1, fine_tune_epochs=0, ema_decay=0.9)
    model = MLP.init(SIZES, rng=np.random.default_rng(config.seed))
    reference = model.copy()
    result = train(toy, config, model=model)
    # replay the same batches on the copy and average the losses by hand
    rng = np.random.default_rng(config.seed)  # a given model: the rng only shuffles
    perm = rng.permutation(len(toy.train_x))
    step, ema = SGDStep(reference, 16, 0.05), 0.0
    for s in range(len(perm) // 16):
        idx = perm[s * 16 : (s + 1) * 16]
        ema = 0.9 * ema + 0.1 * step(toy.train_x[idx], toy.train_y[idx])
    steps = len(perm) // 16
    assert result.metrics[0]["ema_loss"] == pytest.approx(ema / (1 - 0.9**steps), rel=1e-12)
    for a, b in zip(model.weights, reference.weights):
        assert a.tobytes() == b.tobytes()


def test_resume_at_an_epoch_boundary_is_bit_exact(toy, tmp_path):
    train(toy, small_config(), tmp_path / "straight")
    first = train(toy, small_config(), tmp_path / "split", stop_after=1)
    assert not first.completed and not (tmp_path / "split/model.safetensors").exists()
    train(toy, small_config(), tmp_path / "split", resume=True)
    straight = (tmp_path / "straight/model.safetensors").read_bytes()
    assert straight == (tmp_path / "split/model.safetensors").read_bytes()


def test_interrupt_mid_epoch_saves_a_checkpoint_that_resumes_bit_exactly(toy, tmp_path):
    train(toy, small_config(), tmp_path / "straight")
    stopped = train(toy, small_config(), tmp_path / "cut",
                    should_stop=lambda s: s.global_step == 50)
    assert not stopped.completed and stopped.state.step_in_epoch == 50 - 40
    _, state, _ = load_checkpoint(tmp_path / "cut" / CHECKPOINT)
    assert (state.epoch, state.step_in_epoch, state.global_step) == (1, 10, 50)
    train(toy, None, tmp_path / "cut", resume=True)  # config taken from the checkpoint
    assert ((tmp_path / "straight/model.safetensors").read_bytes()
            == (tmp_path / "cut/model.safetensors").read_bytes())
    lines = (tmp_path / "cut/metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2, 3]


def test_resume_refuses_a_missing_checkpoint_or_another_config(toy, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(toy, small_config(), tmp_path / "empty", resume=True)
    train(toy, small_config(), tmp_path / "run", stop_after=1)
    with pytest.raises(CheckpointError, match="another config.*seed"):
        train(toy, small_config(seed=8), tmp_path / "run", resume=True)


def test_an_existing_run_is_never_overwritten_by_accident(toy, tmp_path):
    train(toy, small_config(), tmp_path / "run")
    before = (tmp_path / "run/model.safetensors").read_bytes()
    with pytest.raises(RunFolderError, match="already holds a run"):
        train(toy, small_config(seed=1), tmp_path / "run")
    assert (tmp_path / "run/model.safetensors").read_bytes() == before
    train(toy, small_config(seed=1), tmp_path / "run", overwrite=True)
    assert (tmp_path / "run/model.safetensors").read_bytes() != before


def test_divergence_stops_and_keeps_the_last_good_checkpoint(toy, tmp_path):
    config = small_config(epochs=1, fine_tune_epochs=1, fine_tune_lr=1e30)
    with pytest.raises(TrainingDivergedError, match="epoch 2.*last good checkpoint"):
        train(toy, config, tmp_path / "run")
    model, state, _ = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert state.epoch == 1 and all(np.isfinite(w).all() for w in model.weights)
    assert not (tmp_path / "run/model.safetensors").exists()


def test_an_update_that_diverges_after_the_last_loss_is_caught(toy, tmp_path):
    """A step's loss is taken before its update: a run whose only diverging update is its
    last once finished with exit 0 and saved NaN weights with a test accuracy."""
    n = len(toy.train_x)
    config = small_config(batch_size=n, epochs=1, fine_tune_epochs=0, lr=1e308)
    with pytest.raises(TrainingDivergedError, match="weights became NaN.*no checkpoint"):
        train(toy, config, tmp_path / "run")
    assert not (tmp_path / "run/model.safetensors").exists()
    assert not (tmp_path / "run" / CHECKPOINT).exists()


def test_overwrite_keeps_the_finished_run_until_the_new_model_is_saved(toy, tmp_path):
    """--overwrite once deleted the finished model first: a new run that diverged left
    nothing."""
    run = tmp_path / "run"
    train(toy, small_config(), run)
    before = (run / "model.safetensors").read_bytes()
    with pytest.raises(TrainingDivergedError, match="replaced is kept in"):
        train(toy, small_config(lr=1e308), run, overwrite=True)
    assert (run / "replaced/model.safetensors").read_bytes() == before
    assert not (run / "model.safetensors").exists()
    with pytest.raises(TrainingDivergedError):  # a second failure keeps it too
        train(toy, small_config(lr=1e308), run, overwrite=True)
    assert (run / "replaced/model.safetensors").read_bytes() == before
    train(toy, small_config(seed=1), run, overwrite=True)
    assert (run / "model.safetensors").exists() and not (run / "replaced").exists()


def test_paper_grad_bug_divides_the_update_by_ten(toy):
    a = MLP.init(SIZES, rng=np.random.default_rng(0), dtype=np.float64)
    b = a.copy()
    x, y = toy.train_x[:16].astype(np.float64), toy.train_y[:16]
    SGDStep(a, 16, lr=0.1, grad_scale=small_config(paper_grad_bug=True).grad_scale)(x, y)
    SGDStep(b, 16, lr=0.01)(x, y)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_allclose(wa, wb, rtol=1e-13)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("epoch", -3, "epoch must be an integer >= 0"),
    ("ema_raw", "x", "ema_raw must be a finite number"),
    ("rng_state", {"bit_generator": "nope"}, "rng_state is not a generator state"),
    ("epoch", 99, "does not fit its own config"),
])
def test_a_checkpoint_with_a_malformed_state_is_one_clear_error(toy, tmp_path, field, value,
                                                               message):
    from safetensors.numpy import load_file, save_file

    train(toy, small_config(), tmp_path / "run", stop_after=1)
    path = tmp_path / "run" / CHECKPOINT
    raw = path.read_bytes()
    meta = json.loads(raw[8: 8 + int.from_bytes(raw[:8], "little")])["__metadata__"]
    info = json.loads(meta["checkpoint"])
    info["state"][field] = value
    meta["checkpoint"] = json.dumps(info)
    save_file(load_file(path), path, metadata=meta)
    with pytest.raises(CheckpointError, match=message):
        train(toy, small_config(), tmp_path / "run", resume=True)


def test_a_checkpoint_whose_activations_differ_from_its_config_is_refused(toy, tmp_path):
    """Its config says GELU, its model file ReLU: resuming would train a network the
    config does not describe."""
    from safetensors.numpy import load_file, save_file

    train(toy, small_config(), tmp_path / "run", stop_after=1)
    path = tmp_path / "run" / CHECKPOINT
    raw = path.read_bytes()
    meta = json.loads(raw[8: 8 + int.from_bytes(raw[:8], "little")])["__metadata__"]
    info = json.loads(meta["checkpoint"])
    info["config"]["activation"] = "gelu"
    meta["checkpoint"] = json.dumps(info)
    save_file(load_file(path), path, metadata=meta)
    with pytest.raises(CheckpointError, match="activations relu.* vs gelu"):
        load_checkpoint(path)


def test_snapshots_from_the_initial_weights_to_the_end(toy, tmp_path):
    """snapshots=K: K copies over the training, evenly spaced in steps, the first the
    initial weights and the last the trained model; the run itself is unchanged."""
    from neuronatlas import MLP
    from neuronatlas.train import snapshot_steps

    config = small_config()
    res = train(toy, config, snapshots=4)
    total = config.total_epochs * (len(toy.train_x) // config.batch_size)  # 120 steps
    assert [s.step for s in res.snapshots] == list(snapshot_steps(4, total)) == [0, 40, 80,
                                                                                 120]
    assert [s.epoch for s in res.snapshots] == [0.0, 1.0, 2.0, 3.0]
    init = MLP.init(config.sizes, rng=np.random.default_rng(config.seed))
    for w0, w in zip(init.weights, res.snapshots[0].model.weights):
        assert np.array_equal(w0, w)
    plain = train(toy, config)
    for a, b, c in zip(plain.model.weights, res.model.weights, res.snapshots[-1].model.weights):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    assert not np.array_equal(res.snapshots[1].model.weights[0], res.snapshots[2].model.weights[0])
    # in a run folder they are written beside the model, one file each
    run = tmp_path / "run"
    train(toy, config, run, snapshots=3)
    files = sorted(p.name for p in (run / "snapshots").iterdir())
    assert files == ["step-00000000.safetensors", "step-00000060.safetensors",
                     "step-00000120.safetensors"]
    assert np.array_equal(MLP.load(run / "snapshots" / files[-1]).weights[1],
                          plain.model.weights[1])
    for bad in (1, 0.5, True):
        with pytest.raises(ConfigError, match="snapshots must be an integer >= 2"):
            train(toy, config, snapshots=bad)


def test_training_in_memory_writes_nothing(toy):
    """na.train without a run folder is pure: no file or folder is opened for writing,
    made or removed (so a Dask worker can run it anywhere)."""
    from .helpers import writes_during

    res, writes = writes_during(train, toy, small_config(), snapshots=3)
    assert res.completed and len(res.snapshots) == 3
    assert writes == []


def test_a_bad_snapshots_value_costs_no_finished_run(toy, tmp_path):
    """Checked before the run it would replace is moved aside (found in review)."""
    run = tmp_path / "run"
    train(toy, small_config(), run)
    before = (run / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="snapshots must be"):
        train(toy, small_config(), run, overwrite=True, snapshots=1)
    assert (run / "model.safetensors").read_bytes() == before
    assert not (run / "replaced").exists()


def test_a_resumed_run_keeps_its_snapshots_whole_and_of_one_spacing(toy, tmp_path):
    """Resumed with the same K, the result holds every snapshot (those taken before the
    interruption read back) with the bits of an uninterrupted run; resumed with another K
    or none, it is refused (the folder would mix two spacings); a run started again
    never keeps the snapshots of the one it replaces (found in review)."""
    config = small_config()
    whole = train(toy, config, snapshots=4)
    run = tmp_path / "run"
    train(toy, config, run, stop_after=1, snapshots=4)
    for other in (3, 0):
        with pytest.raises(ConfigError, match="snapshots=4; resume with the same"):
            train(toy, None, run, resume=True, snapshots=other)
    res = train(toy, None, run, resume=True, snapshots=4)
    assert [s.step for s in res.snapshots] == [s.step for s in whole.snapshots]
    for a, b in zip(whole.snapshots, res.snapshots):
        assert all(np.array_equal(x, y) for x, y in zip(a.model.weights, b.model.weights))
    assert len(list((run / "snapshots").iterdir())) == 4
    # started again: a finished run's snapshots move aside with it, then go
    train(toy, config, run, overwrite=True, snapshots=3)
    assert len(list((run / "snapshots").iterdir())) == 3
    # an unfinished run's snapshots go with it
    cut = tmp_path / "cut"
    train(toy, config, cut, stop_after=1, snapshots=4)
    train(toy, config, cut, overwrite=True)
    assert not (cut / "snapshots").exists()


def test_a_resumed_runs_snapshots_are_the_bytes_of_an_uninterrupted_one(toy, tmp_path):
    """The snapshots taken after a resume carried the checkpoint's metadata (the model was
    loaded from it), so their files differed from an uninterrupted run's (found by the
    study's Ctrl-C test)."""
    config = small_config()
    train(toy, config, tmp_path / "whole", snapshots=4)
    train(toy, config, tmp_path / "cut", stop_after=1, snapshots=4)
    train(toy, None, tmp_path / "cut", resume=True, snapshots=4)
    for p in sorted((tmp_path / "whole" / "snapshots").iterdir()):
        assert p.read_bytes() == (tmp_path / "cut" / "snapshots" / p.name).read_bytes(), p.name
