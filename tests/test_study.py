"""Studies: the spec and its bad inputs, and runs on a real Dask scheduler with real
worker processes on 127.0.0.1 (no mocks), checked byte for byte against the same study
run in one process; a worker killed mid-task, a failing network, Ctrl-C and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from neuronatlas.study import SpecError, parse_spec

from .test_cli import assert_user_error, run_cli

pytest.importorskip("distributed")

SMALL = '''
sizes = "784,24,12,10"
epochs = 1
fine-tune-epochs = 0
'''


def write_spec(folder: Path, text: str, name: str = "spec.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def results(folder: Path) -> dict[str, bytes]:
    """Every file a study made but its timings and process facts (study.json and the page's
    data, which show seconds; metrics' seconds and the store's copy of them; the locks):
    what must be the same whichever scheduler ran it."""
    out = {}
    timed = ("study.json", "study-data.js", ".neuronatlas.lock", "metrics.jsonl")
    for p in sorted(folder.rglob("*")):
        if p.parent.name == "train_seconds":  # study.zarr's copy of the trainings' seconds
            continue
        if p.is_file() and p.name not in timed:
            out[p.relative_to(folder).as_posix()] = p.read_bytes()
        elif p.name == "metrics.jsonl":
            lines = [json.loads(l) for l in p.read_text().splitlines()]
            out[p.relative_to(folder).as_posix()] = json.dumps(
                [{k: v for k, v in m.items() if k != "seconds"} for m in lines]).encode()
    return out


# --- the spec ------------------------------------------------------------------------------
def test_axes_make_the_product_of_networks_named_by_their_values():
    spec = parse_spec(SMALL + 'activation = ["relu", "gelu"]\nseed = [0, 1, 2]\n'
                              'compare = "seed"\nsnapshots = 3\n')
    assert [n.name for n in spec.networks] == [
        "activation=relu,seed=0", "activation=relu,seed=1", "activation=relu,seed=2",
        "activation=gelu,seed=0", "activation=gelu,seed=1", "activation=gelu,seed=2"]
    gelu1 = spec.networks[4]
    assert gelu1.config.activation == "gelu" and gelu1.config.seed == 1
    assert gelu1.config.sizes == (784, 24, 12, 10) and gelu1.snapshots == 3
    assert spec.axes == ("activation", "seed") and spec.compare == "seed"
    names = [n.name for n in parse_spec('lr = [1e30, 0.5]\nsizes = ["784,10", "784,8,10"]\n'
                                        'dataset = ["mnist", "data/my set.npz"]').networks]
    assert names[0] == "lr=1e+30,sizes=784-10,dataset=mnist"  # nothing renamed into another
    assert names[-1] == "lr=0.5,sizes=784-8-10,dataset=my_set"


@pytest.mark.parametrize("text, match", [
    ("lrr = 0.1", "unknown key 'lrr' .* the keys are sizes, batch-size"),
    ("fine_tune_epochs = 0", "did you mean 'fine-tune-epochs'"),
    ("seed = []", "seed = \\[\\] is an empty axis"),
    ('epochs = "one"', "net: epochs must be an integer"),
    ("sizes = [784, 10]", "sizes is written as on the command line"),
    ('compare = "seed"', "compare = 'seed' names no axis"),
    ('preset = "pretty"', "preset = 'pretty' is none of paper, readable"),
    ("snapshots = 1", "keep at least 2"),
    ('atlas = "yes"', "atlas must be a single bool"),
    ("seed = [0, 1", "not valid TOML"),
    ('import = ["missing.onnx"]', "import .*missing.onnx not found"),
    ("lr = [0.1, -1.0]", "lr=-1.0: lr must be"),
])
def test_a_bad_spec_is_one_error_naming_the_key(text, match):
    with pytest.raises(SpecError, match=match):
        parse_spec(text)


def test_bad_input_is_one_line_and_exit_2_before_any_work(tmp_path, mnist):
    spec = write_spec(tmp_path, 'sizes = "100,10"\nseed = [0, 1]\nepochs = 1\n')
    out = tmp_path / "out"
    assert_user_error(run_cli("study", spec, "--out", out, "--scheduler", "synchronous"),
                      "seed=0: the network takes 100 inputs but mnist's images have 784")
    assert not out.exists()  # found before any work: nothing made
    assert_user_error(run_cli("study", spec, "--scheduler", "tcp://nowhere"),
                      "use local, synchronous or tcp://HOST:PORT")
    assert_user_error(run_cli("study", tmp_path / "none.toml"), "not found")
    # compare pairs two networks whose images have other shapes
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "wide.npz", x_train=rng.random((64, 14, 56), np.float32),
             y_train=np.arange(64) % 10, x_test=rng.random((16, 14, 56), np.float32),
             y_test=np.arange(16) % 10)
    spec = write_spec(tmp_path, SMALL + f'dataset = ["mnist", "{tmp_path / "wide.npz"}"]\n'
                                        'compare = "dataset"\n')
    assert_user_error(run_cli("study", spec, "--out", out, "--scheduler", "synchronous"),
                      "take different inputs")
    assert not out.exists()


def test_a_scheduler_that_does_not_answer_is_an_error_within_10_s(tmp_path, mnist):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = write_spec(tmp_path, SMALL)
    t = time.perf_counter()
    proc = run_cli("study", spec, "--out", tmp_path / "out", "--scheduler",
                   f"tcp://127.0.0.1:{port}")
    assert time.perf_counter() - t < 10
    assert_user_error(proc, f"no Dask scheduler answers at tcp://127.0.0.1:{port}")
    assert not (tmp_path / "out").exists()


# --- runs ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeds_spec(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spec")
    return write_spec(folder, SMALL.replace("epochs = 1", "epochs = 2")
                      + "seed = [0, 1, 2, 3]\nsnapshots = 3\n")


@pytest.fixture(scope="module")
def synchronous(seeds_spec, tmp_path_factory, mnist):
    out = tmp_path_factory.mktemp("sync") / "study"
    proc = run_cli("study", seeds_spec, "--out", out, "--scheduler", "synchronous")
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_study_records_every_task_and_compares_every_pair(synchronous):
    doc = json.loads((synchronous / "study.json").read_text())
    tasks = doc["tasks"].values()
    assert sorted(t["kind"] for t in tasks) == (["compare"] * 6 + ["examples"] * 4
                                                + ["formation"] * 4 + ["pictures"] * 4
                                                + ["store"] + ["train"] * 4)
    assert all(t["status"] == "done" and t["seconds"] >= 0 and t["worker"] for t in tasks)
    cmp = json.loads((synchronous / "comparisons" / "seed=0~seed=1.json").read_text())
    assert [r["layer"] for r in cmp["layers"]] == [1, 2]
    assert 0 < cmp["layers"][0]["cka"] < 1
    snaps = sorted(p.name for p in (synchronous / "seed=2" / "snapshots").iterdir())
    assert len(snaps) == 3


def test_the_results_are_one_zarr_store_read_by_xarray_alone(synchronous):
    """study.zarr holds the pairs' numbers as their JSON does, each neuron's universality
    among the four seeds and its formation over the snapshots."""
    import xarray as xr

    ds = xr.open_zarr(synchronous / "study.zarr")
    assert list(ds["network"].values) == ["seed=0", "seed=1", "seed=2", "seed=3"]
    assert ds.sizes["layer"] == 2 and ds.sizes["neuron"] == 24 and ds.sizes["snapshot"] == 3
    assert list(ds["size"].sel(network="seed=1").values) == [24, 12]
    assert (ds["test_accuracy"].values > 0.5).all()  # from the trainings' records
    doc = json.loads((synchronous / "comparisons" / "seed=1~seed=3.json").read_text())
    pair = ds.sel(pair="seed=1~seed=3")
    np.testing.assert_allclose(pair["cka"].values, [r["cka"] for r in doc["layers"]])
    np.testing.assert_allclose(pair["cka_matrix"].values, doc["cka_matrix"])
    assert (pair["p_value"].values < 0.05).all()  # trained seeds share their layers
    np.testing.assert_allclose(pair["cka_debiased"].values, pair["cka"].values, atol=0.02)
    excess = ds["excess"].sel(network="seed=0", layer=2).values
    assert np.isnan(excess[12:]).all() and np.isfinite(excess[:12]).any()  # 12 neurons, padded
    lo, hi = (ds[k].sel(network="seed=0", layer=2).values[:12] for k in ("excess_lo",
                                                                          "excess_hi"))
    e = excess[:12][np.isfinite(excess[:12])]
    live = np.isfinite(excess[:12])
    assert (lo[live] <= e + 1e-12).all() and (e <= hi[live] + 1e-12).all()
    assert list(ds["snapshot_step"].sel(network="seed=2").values) == [0, 1875, 3750]
    final = ds["self_corr"].sel(network="seed=2", snapshot=2, layer=1).values
    np.testing.assert_allclose(final[np.isfinite(final)], 1, atol=1e-5)  # the end is itself
    assert float(ds["cka_to_final"].sel(network="seed=2", snapshot=2, layer=1)) == pytest.approx(1)


def test_a_rerun_does_nothing_and_another_spec_is_refused(synchronous, seeds_spec, tmp_path):
    before = results(synchronous)
    proc = run_cli("study", seeds_spec, "--out", synchronous, "--scheduler", "synchronous")
    assert proc.returncode == 0 and "(23 found done already)" in proc.stdout
    assert results(synchronous) == before
    other = write_spec(tmp_path, seeds_spec.read_text() + "batch-size = 64\n", "other.toml")
    assert_user_error(run_cli("study", other, "--out", synchronous, "--scheduler",
                              "synchronous"), "holds a study of another spec", "--overwrite")
    assert results(synchronous) == before


def test_two_studies_on_one_folder_the_second_refuses(synchronous, seeds_spec):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from neuronatlas.runs import writing\n"
         f"with writing({str(synchronous)!r}, 'run a study in'):\n"
         "    print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert_user_error(run_cli("study", seeds_spec, "--out", synchronous, "--scheduler",
                                  "synchronous"), "is being written by another")
    finally:
        holder.kill()
        holder.wait()


@contextmanager
def dask_cluster(folder: Path, nthreads: int = 1):
    """A real ``dask scheduler`` and two ``dask worker`` processes (no nanny: a killed
    worker stays dead) on 127.0.0.1; yields (address, worker processes)."""
    bin_dir = Path(sys.executable).parent
    file = folder / "scheduler.json"
    procs = [subprocess.Popen([bin_dir / "dask", "scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", file],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(300):
            if file.is_file() and file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        workers = [subprocess.Popen([bin_dir / "dask", "worker", address, "--nthreads",
                                     str(nthreads), "--no-nanny", "--name", f"w{i}",
                                     "--no-dashboard"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for i in range(2)]
        procs += workers
        yield address, workers
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.fixture()
def cluster(tmp_path):
    with dask_cluster(tmp_path) as c:
        yield c


@pytest.mark.slow  # a real cluster or a signal: tens of seconds; in CI's slow step
def test_workers_of_several_threads_are_refused(tmp_path, seeds_spec):
    """A task's one BLAS thread is set for its whole process: two tasks at once in one
    worker would undo each other's limit, so such a cluster is refused before any work."""
    from distributed import Client

    with dask_cluster(tmp_path, nthreads=2) as (address, _):
        with Client(address, timeout=10) as client:
            client.wait_for_workers(2, timeout=30)
        out = tmp_path / "study"
        proc = run_cli("study", seeds_spec, "--out", out, "--scheduler", address)
        assert_user_error(proc, "runs 2 threads", "--nthreads 1")
        assert not (out / "seed=0").exists()


@pytest.mark.slow  # a real cluster or a signal: tens of seconds; in CI's slow step
def test_a_worker_killed_mid_task_changes_no_byte(cluster, seeds_spec, synchronous,
                                                  tmp_path):
    """On a real scheduler with two workers, one SIGKILLed while it trains: Dask reruns
    its task on the other, and every result equals the one-process run's, byte for byte."""
    address, workers = cluster
    out = tmp_path / "study"
    study = subprocess.Popen([sys.executable, "-m", "neuronatlas", "study", seeds_spec,
                              "--out", out, "--scheduler", address],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids = {w.pid for w in workers}
    killed = victim = None
    deadline = time.time() + 120
    while killed is None and time.time() < deadline and study.poll() is None:
        for task in out.glob("*/task.json"):
            try:
                doc = json.loads(task.read_text())
            except ValueError:
                continue
            if not doc.get("done") and doc.get("pid") in pids:
                os.kill(doc["pid"], signal.SIGKILL)
                killed, victim = doc["pid"], task.parent.name
                break
        time.sleep(0.02)
    _, stderr = study.communicate(timeout=300)
    assert killed is not None, "no training was caught running"
    assert study.returncode == 0, stderr
    doc = json.loads((out / "study.json").read_text())
    assert all(t["status"] == "done" for t in doc["tasks"].values())
    rerun = next(t for t in doc["tasks"].values() if t["label"] == victim)
    assert rerun["pid"] != killed  # finished by the other worker
    assert results(out) == results(synchronous)


@pytest.mark.slow  # a real cluster or a signal: tens of seconds; in CI's slow step
def test_a_failing_network_is_recorded_and_the_rest_finish(tmp_path, mnist):
    spec = write_spec(tmp_path, SMALL + "lr = [0.01, 1e30]\nsnapshots = 2\n")
    out = tmp_path / "study"
    proc = run_cli("study", spec, "--out", out, "--workers", "2")
    assert "Traceback" not in proc.stderr, proc.stderr  # the page of what finished too
    assert proc.returncode == 1, proc.stderr
    assert "tasks that did not finish" in proc.stdout and "lr=1e+30" in proc.stdout
    doc = json.loads((out / "study.json").read_text())
    status = {t["label"]: (t["status"], t.get("error", "")) for t in doc["tasks"].values()}
    assert status["lr=0.01"][0] == "done"
    assert status["lr=1e+30"][0] == "failed" and "Diverged" in status["lr=1e+30"][1]
    assert status["lr=0.01 ~ lr=1e+30"][0] == "skipped"
    assert (out / "lr=0.01" / "model.safetensors").is_file()
    import xarray as xr  # the store holds what finished, and says what did not

    ds = xr.open_zarr(out / "study.zarr")
    assert list(ds["network_done"].values) == [1, 0] and list(ds["pair_done"].values) == [0]
    assert ds["test_accuracy"].values[0] > 0.5 and np.isnan(ds["test_accuracy"].values[1])
    assert np.isnan(ds["cka"].values).all() and not ds["universality_done"].values.any()
    data = (out / "study-data.js").read_text()
    assert '"universal_done":false' in data and (out / "page" / "net-0-pictures.png").is_file()
    assert (out / "study.zarr" / "pair_done" / "0").is_file()  # a 0 written, not left undefined


@pytest.mark.slow  # a real cluster or a signal: tens of seconds; in CI's slow step
def test_ctrl_c_stops_the_study_and_the_same_command_resumes_it(seeds_spec, synchronous,
                                                                  tmp_path):
    out = tmp_path / "study"
    args = [sys.executable, "-m", "neuronatlas", "study", seeds_spec, "--out", out,
            "--scheduler", "synchronous"]
    study = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        running = [t for t in out.glob("seed=1/task.json")
                   if not json.loads(t.read_text() or "{}").get("done", True)]
        if running:
            break
        time.sleep(0.02)
    study.send_signal(signal.SIGINT)
    stdout, stderr = study.communicate(timeout=120)
    assert study.returncode == 130 and "the same command resumes" in stdout + stderr
    assert not (out / "seed=3" / "model.safetensors").exists()
    proc = run_cli("study", seeds_spec, "--out", out, "--scheduler", "synchronous")
    assert proc.returncode == 0, proc.stderr
    got, want = results(out), results(synchronous)
    assert [k for k in set(got) | set(want) if got.get(k) != want.get(k)] == []


def test_the_study_page_opens_from_file_and_shows_every_section(synchronous, page):
    """DIR/index.html: the networks, the pairs' grids per layer, universality and
    formation, from study-data.js, with no script error (the page fixture fails on any)."""
    page.goto((synchronous / "index.html").as_uri())
    assert page.locator("#networks tr").count() == 5  # a header and four networks
    assert "seed=3" in page.locator("#networks").inner_text()
    assert page.locator("#pairs table.grid").count() == 4  # 2 layers x (matched, CKA)
    grid = page.locator("#pairs table.grid").nth(1).inner_text()  # layer 1's CKA
    doc = json.loads((synchronous / "comparisons" / "seed=0~seed=1.json").read_text())
    assert f"{doc['layers'][0]['cka']:.4g}"[:4] in grid
    assert page.locator("#universality tr").count() == 5
    assert page.locator("#formation svg").count() == 4
    assert "4 networks, 6 pairs compared on 10000 test images" in page.inner_text("#summary")


def test_every_neurons_panel_shows_its_matches_and_its_filmstrip(synchronous, page):
    """A neuron's panel: its picture, top examples and one tile per snapshot, and a row
    per other network with the neuron the Hungarian matching gave it (the comparison's
    assignment, or its inverse when the neuron is B's) at that correlation."""
    cmp = json.loads((synchronous / "comparisons" / "seed=0~seed=1.json").read_text())
    layer = cmp["layers"][0]
    j = next(i for i, k in enumerate(layer["assignment"]) if k >= 0)
    k = layer["assignment"][j]
    page.goto((synchronous / "index.html").as_uri() + f"#n=0/1/{j}")
    assert page.inner_text("#panel h3") == f"seed=0 · 1:{j}"
    assert page.locator("#panel .film .tile").count() == 3  # snapshots = 3
    assert page.locator("#panel .me .ex .tile").count() == 8  # its top examples
    rows = page.locator("#panel table.matches tr")
    assert rows.count() == 4  # a header and the three other seeds
    row = rows.filter(has_text="seed=1").inner_text()
    assert f"1:{k}" in row and f"{layer['matched_corr'][j]:.4g}"[:4] in row
    assert page.locator("#tiles .tile").count() == 24  # layer 1's neurons
    page.goto((synchronous / "index.html").as_uri() + "#n=0/9/0")
    assert page.inner_text("#panel") == "No layer 9."
    page.goto((synchronous / "index.html").as_uri() + f"#n=0/1/{j}")
    page.locator("#panel table.matches a", has_text=f"1:{k}").first.click()
    page.wait_for_function(f"location.hash === '#n=1/1/{k}'")
    back = page.locator("#panel table.matches tr").filter(has_text="seed=0").inner_text()
    assert f"1:{j}" in back  # the inverse of the assignment


def test_the_store_holds_every_tasks_region_and_the_pictures_are_the_presets(synchronous):
    """Each task wrote its own region: every done flag is 1, a pair's assignment is its
    comparison's, a neuron's top example really drives it that hard, and its picture is
    what visualize makes with the study's preset (the last snapshot's is the model's)."""
    import xarray as xr

    from neuronatlas.config import VisConfig
    from neuronatlas.data import load_dataset
    from neuronatlas.nn.mlp import MLP
    from neuronatlas.vis.visualize import visualize

    ds = xr.open_zarr(synchronous / "study.zarr", mask_and_scale=False)
    for flag in ("network_done", "examples_done", "pictures_done", "formation_done",
                 "pair_done", "universality_done"):
        assert (ds[flag].values == 1).all(), flag
    doc = json.loads((synchronous / "comparisons" / "seed=1~seed=2.json").read_text())
    got = ds["assignment"].sel(pair="seed=1~seed=2", layer=2).values
    assert list(got[:12]) == doc["layers"][1]["assignment"] and (got[12:] == -1).all()
    model = MLP.load(synchronous / "seed=2" / "model.safetensors")
    data = load_dataset("mnist")
    index = ds["top_index"].sel(network="seed=2", layer=1).values[5]
    acts = model.activations(data.rows(index))[1][:, 5]
    np.testing.assert_allclose(acts, ds["top_activation"].sel(network="seed=2", layer=1)
                               .values[5], rtol=1e-5)
    want = visualize(model, [(2, i) for i in range(12)], VisConfig.preset("readable"))
    pictures = ds["picture"].sel(network="seed=2", layer=2).values
    assert np.array_equal(pictures[:12], want.images) and np.isnan(pictures[12:]).all()
    last = ds["film"].sel(network="seed=2", snapshot=2, layer=2).values
    assert np.array_equal(last[:12], want.images)


def test_a_study_of_hostile_names_shows_them_as_text(tmp_path, page):
    """A dataset path that is markup: the page shows it as text in the networks' table and
    runs nothing (every value goes through NA.html)."""
    rng = np.random.default_rng(0)
    hostile = '<img src=x onerror="window.__xss=1"><b id="injected">x<b>'  # no /: a file name
    for name in (hostile, "plain"):
        x = rng.integers(0, 255, (240, 8, 8), dtype=np.uint8)
        y = np.arange(240) % 3
        np.savez(tmp_path / f"{name}.npz", x_train=x[:200], y_train=y[:200], x_test=x[200:],
                 y_test=y[200:])
    spec = write_spec(tmp_path, f"sizes = \"64,6,3\"\nepochs = 1\nfine-tune-epochs = 0\n"
                                f"dataset = ['{hostile}.npz', 'plain.npz']\n")
    out = tmp_path / "study"
    proc = run_cli("study", spec, "--out", out, "--scheduler", "synchronous")
    assert proc.returncode == 0, proc.stderr
    page.goto((out / "index.html").as_uri() + "#n=0/1/0")
    assert hostile in page.inner_text("#networks")
    assert page.evaluate("""() => [document.querySelectorAll("img").length,
        document.querySelectorAll("#injected").length, window.__xss === undefined]""") == [
        0, 0, True]
    assert page.locator("#panel table.matches tr").count() == 2  # compared with the other


@pytest.mark.slow  # tens of seconds; in CI's slow step
def test_atlas_true_builds_each_networks_atlas_and_the_page_links_it(tmp_path, mnist):
    spec = write_spec(tmp_path, SMALL + "seed = [0]\natlas = true\n")
    out = tmp_path / "study"
    proc = run_cli("study", spec, "--out", out, "--scheduler", "synchronous")
    assert proc.returncode == 0, proc.stderr
    assert (out / "seed=0" / "atlas" / "index.html").is_file()
    assert '"atlas":"seed=0/atlas/index.html"' in (out / "study-data.js").read_text()
    doc = json.loads((out / "study.json").read_text())
    assert [t["kind"] for t in doc["tasks"].values()].count("atlas") == 1
    again = run_cli("study", spec, "--out", out, "--scheduler", "synchronous")
    assert again.returncode == 0 and "(5 found done already)" in again.stdout


@pytest.mark.slow  # tens of seconds; in CI's slow step
def test_networks_of_other_depths_and_none_hidden_in_one_study(tmp_path, mnist, page):
    """A network without hidden layers has no neurons to show, and a deeper one's extra
    layer has no match in the shallower: the study finishes, the panel says why."""
    spec = write_spec(tmp_path, 'sizes = ["784,10", "784,6,10", "784,6,5,10"]\nepochs = 1\n'
                                "fine-tune-epochs = 0\nsnapshots = 2\n")
    out = tmp_path / "study"
    proc = run_cli("study", spec, "--out", out, "--scheduler", "synchronous")
    assert proc.returncode == 0, proc.stderr
    page.goto((out / "index.html").as_uri() + "#n=2/2/0")
    assert page.inner_text("#panel h3") == "sizes=784-6-5-10 · 2:0"
    rows = page.locator("#panel table.matches tr")
    assert rows.count() == 2 and "it has no layer 2" in rows.nth(1).inner_text()
    assert page.locator("#panel .film .tile").count() == 2


def test_a_network_whose_task_did_not_finish_is_made_again(synchronous, seeds_spec, tmp_path):
    """task.json says done: false while a task trains; one left so by a failed or killed
    attempt beside an older model was taken for the finished network (found in review)."""
    import shutil

    out = tmp_path / "study"
    shutil.copytree(synchronous, out)
    task = out / "seed=0" / "task.json"
    task.write_text(json.dumps({**json.loads(task.read_text()), "done": False}))
    proc = run_cli("study", seeds_spec, "--out", out, "--scheduler", "synchronous")
    assert proc.returncode == 0 and "(22 found done already)" in proc.stdout
    assert results(out) == results(synchronous)


@pytest.mark.slow  # a real cluster or a signal: tens of seconds; in CI's slow step
def test_two_studies_on_one_scheduler_never_share_a_task(cluster, seeds_spec, synchronous,
                                                        tmp_path):
    """Dask keys were the tasks' keys alone: a second study of the same spec in another
    folder on the same scheduler got the first one's results and an empty folder."""
    address, _ = cluster
    for name in ("first", "second"):
        proc = run_cli("study", seeds_spec, "--out", tmp_path / name, "--scheduler", address)
        assert proc.returncode == 0, proc.stderr
    assert results(tmp_path / "second") == results(synchronous)


def test_a_relative_dataset_path_is_the_specs_own_wherever_the_command_runs(tmp_path):
    """A dataset path in a spec is read from the spec's folder, as its imports are (it was
    taken from the current folder, and a task's key changed with it)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "specs"
    folder.mkdir()
    np.savez(folder / "small.npz", x_train=rng.random((96, 8, 8), np.float32),
             y_train=np.arange(96) % 4, x_test=rng.random((32, 8, 8), np.float32),
             y_test=np.arange(32) % 4)
    spec = write_spec(folder, 'dataset = "small.npz"\nsizes = "64,6,4"\nepochs = 1\n'
                              'fine-tune-epochs = 0\nseed = [0, 1]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "neuronatlas", "study", spec, "--out",
                           tmp_path / "out", "--scheduler", "synchronous"], cwd=elsewhere,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "out" / "study.json").read_text())
    assert all(t["status"] == "done" for t in doc["tasks"].values())
