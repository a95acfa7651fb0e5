"""The study's tasks: plain functions of (the study's folder, the task's key and payload)
that any process can run, a Dask worker or this one. Each keeps its result in the
study's folder (a network's run folder, a comparison's JSON) with its key, so a task
that finds its own result there returns it without computing again; each runs with one
BLAS thread, so its bytes are the same whichever process ran it. Each returns a small
record: what it made, where and when it ran.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from ..evaluate import evaluate
from ..fileio import atomic_write_json
from ..jsonnum import float_or_none, floats_to_json, from_json
from ..layout import (
    ATLAS,
    CHECKPOINT,
    COMPARISONS,
    FORMATION,
    METRICS,
    SNAPSHOTS,
    STUDY_EXAMPLES,
    STUDY_PICTURES,
    STUDY_STORE,
    TASK_FILE,
    model_file,
)
from ..nn.blas import blas_threads
from ..nn.mlp import MLP
from ..runs import writing
from .checked import load_checked
from .store import write_region

#: what a comparison's and a formation's JSON hold (besides their key)
COMPARISON_FIELDS = ("a", "b", "images", "layers", "cka_matrix", "matches", "debiased")
FORMATION_FIELDS = ("network", "steps", "self_corr", "cka_to_final", "formed_at",
                    "formed_median")


def run_task(kind: str, out: str, key: str, payload: dict, context: dict, *deps) -> dict:
    """Run one task; its record, with the worker and times, or raises. ``context`` holds
    what is not part of the task's identity (``data_dir``: where this machine finds the
    datasets); ``deps`` are the records of the tasks it needs (passed by the scheduler,
    so that it waits for them)."""
    check_one_thread()
    worker, address = _where()
    start = time.time()
    with blas_threads(1):
        made = TASKS[kind](Path(out), key, payload, {**context, "deps": deps})
    end = time.time()
    return {"key": key, "kind": kind, "worker": worker, "address": address, "pid": os.getpid(),
            "start": _iso(start), "end": _iso(end), "seconds": round(end - start, 3), **made}


def _iso(t: float) -> str:
    """UTC, to the millisecond: ``2026-12-03T16:30:23.123Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def _where() -> tuple[str, str]:
    """This process's Dask worker name and address, or this process when not a worker."""
    w = _worker()
    if w is None:
        return f"{socket.gethostname()}:{os.getpid()}", "in-process"
    return str(w.name), str(w.address)


def _worker():
    """The Dask worker running this task, or None."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


class WorkerThreadsError(RuntimeError):
    """A Dask worker that runs several tasks at once in one process: their BLAS thread
    limits (process-wide) would undo each other, and the bytes would depend on it."""


def check_one_thread() -> None:
    """Refuse to run in a worker of more than one thread (``dask worker --nthreads 1``)."""
    w = _worker()
    if w is not None and w.state.nthreads > 1:
        raise WorkerThreadsError(
            f"worker {w.name} runs {w.state.nthreads} threads: start the workers with "
            "dask worker --nthreads 1 (more processes instead: --nworkers N), since a task's "
            "one BLAS thread is set for the whole process")


def _done(run: Path, key: str) -> bool:
    """Whether ``run`` holds the finished result of task ``key`` (a task.json of this key
    that says done: one written before a failed or killed attempt does not)."""
    try:
        doc = json.loads((run / TASK_FILE).read_text())
        return doc["key"] == key and doc.get("done") is True and model_file(run).is_file()
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _dataset(spec: str, sha: str, ctx: dict):
    """The dataset ``spec`` as this machine finds it (``ctx["data_dir"]``)."""
    return load_checked(spec, sha, ctx.get("data_dir"))


def train_network(out: Path, key: str, payload: dict, ctx: dict) -> dict:
    """Train the network into ``out/<name>``; an interrupted training is resumed from its
    checkpoint (bit for bit), a run of another task replaced."""
    from ..config import TrainConfig
    from ..train import train

    run = out / payload["name"]
    computed = not _done(run, key)
    if computed:
        data = _dataset(payload["dataset"], payload["dataset_sha256"], ctx)
        config = TrainConfig.from_dict(payload["config"])
        with writing(run, "train in") as lock:
            resume = (run / CHECKPOINT).is_file() and _task_of(run) == key
            atomic_write_json(run / TASK_FILE, {"key": key, "done": False, "pid": os.getpid(),
                                                "worker": _where()[0]})
            try:  # the checkpoint's config must be this task's, or it starts again
                res = train(data, config, run, resume=resume, overwrite=not resume,
                            snapshots=payload["snapshots"], lock=lock)
            except CheckpointError:
                res = train(data, config, run, overwrite=True, snapshots=payload["snapshots"],
                            lock=lock)
            if not res.completed:
                raise KeyboardInterrupt
            atomic_write_json(run / TASK_FILE, {"key": key, "done": True})
    return {**_network_record(run, payload, ctx), "computed": computed}


def _task_of(run: Path) -> str | None:
    try:
        return json.loads((run / TASK_FILE).read_text())["key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def import_network(out: Path, key: str, payload: dict, ctx: dict) -> dict:
    """Import the model file into ``out/<name>``."""
    from ..importers import import_model

    run = out / payload["name"]
    computed = not _done(run, key)
    if computed:
        data = _dataset(payload["dataset"], payload["dataset_sha256"], ctx)
        import_model(payload["source"], run, data, activation=payload["activation"],
                     overwrite=True)
        atomic_write_json(run / TASK_FILE, {"key": key, "done": True})
    return {**_network_record(run, payload, ctx), "computed": computed}


def _network_record(run: Path, payload: dict, ctx: dict) -> dict:
    """The network's test accuracy (from its metrics, else evaluated now) and seconds."""
    model = MLP.load(model_file(run))
    accuracy, seconds = None, None
    try:
        lines = [json.loads(l) for l in (run / METRICS).read_text().splitlines() if l.strip()]
        accuracy = lines[-1]["test_accuracy"]
        seconds = round(sum(m["seconds"] for m in lines), 3)
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        data = _dataset(payload["dataset"], payload["dataset_sha256"], ctx)
        accuracy = evaluate(model, data.test_x, data.test_y).accuracy
    write_region(run.parent, "network", payload["name"], {
        "test_accuracy": np.array(np.nan if accuracy is None else accuracy),
        "train_seconds": np.array(np.nan if seconds is None else seconds),
        "network_done": np.array(1)})
    return {"network": payload["name"], "test_accuracy": accuracy, "train_seconds": seconds,
            "sizes": list(model.sizes)}


def compare_networks(out: Path, key: str, payload: dict, ctx: dict) -> dict:
    """Compare two networks of the study on the test images of their datasets; the result
    is ``out/comparisons/<a>~<b>.json``: the comparison, and each neuron's best match both
    ways and against the other's rotated layer (the universality test's inputs)."""
    from ..similarity.comparison import from_products, hidden_activations
    from ..similarity.measures import cross_products
    from ..similarity.universality import best_matches, pair_seed

    path = out / COMPARISONS / f"{payload['a']}~{payload['b']}.json"
    doc = _keyed_json(path, key, COMPARISON_FIELDS)
    computed = doc is None
    if computed:
        a, b = (MLP.load(model_file(out / payload[n])) for n in ("a", "b"))
        images = _images(payload, ctx)
        acts_a, acts_b = hidden_activations(a, images), hidden_activations(b, images)
        products = cross_products(acts_a, acts_b)
        cmp = from_products(products, (payload["a"], payload["b"]))
        rng = pair_seed(key)
        matches = best_matches(products, rng)
        doc = {"key": key, **cmp.to_dict(),
               "matches": [{k: floats_to_json(v) for k, v in m.items()} for m in matches],
               "debiased": _debiased(acts_a, acts_b, rng)}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, doc)
    write_region(out, "pair", f"{payload['a']}~{payload['b']}", _pair_region(doc))
    return {"a": payload["a"], "b": payload["b"], "file": str(path.relative_to(out)),
            "computed": computed,
            "share_0_9": [r["share_0_9"] for r in doc["layers"]],
            "cka": [r["cka"] for r in doc["layers"]]}


def _debiased(acts_a, acts_b, rng) -> list[dict]:
    """Per depth: debiased CKA on every image, and on the permutation test's images with
    its p-value."""
    from ..similarity.debiased import debiased_cka, permutation_p

    out = []
    for d, (x, y) in enumerate(zip(acts_a, acts_b), start=1):
        sub, p = permutation_p(x, y, rng)
        out.append({"layer": d, "cka_debiased": float_or_none(debiased_cka(x, y)),
                    "cka_debiased_sample": float_or_none(sub), "p_value": float_or_none(p)})
    return out


def formation(out: Path, key: str, payload: dict, ctx: dict) -> dict:
    """How a trained network's neurons formed: at each snapshot, every neuron's
    correlation with its own final self and each layer's linear CKA to its final self,
    on the test images; ``out/formation/<name>.json``."""
    from ..similarity.formation import formation_of

    path = out / FORMATION / f"{payload['name']}.json"
    doc = _keyed_json(path, key, FORMATION_FIELDS)
    computed = doc is None
    if computed:
        run = out / payload["name"]
        snaps = sorted((run / SNAPSHOTS).glob("step-*.safetensors"))
        models = [MLP.load(p) for p in snaps]
        steps = [int(m.metadata["snapshot_step"]) for m in models]
        final = MLP.load(model_file(run))
        doc = {"key": key, "network": payload["name"], "steps": steps,
               **formation_of(models, final, _images(payload, ctx))}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, doc)
    write_region(out, "network", payload["name"], _formation_region(doc))
    return {"network": payload["name"], "file": str(path.relative_to(out)),
            "computed": computed, "formed_median": doc["formed_median"]}


def _keyed_json(path: Path, key: str, fields: tuple[str, ...]) -> dict | None:
    """The JSON result at ``path`` when the task ``key`` made it and it holds every one of
    ``fields`` (a result written by an older version of the task is computed again)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key or any(f not in doc for f in fields):
        return None
    return doc


def _images(payload: dict, ctx: dict):
    """The test images of the task's datasets, in the planned order."""
    return np.concatenate([_dataset(s, sha, ctx).test_x for s, sha in
                           zip(payload["images"], payload["images_sha256"])])




def _pair_region(doc: dict) -> dict[str, np.ndarray]:
    """A comparison's numbers as the store's pair variables (NaN for null)."""
    layers = doc["layers"]
    out = {f: from_json([r[f] for r in layers]) for f in
           ("share_0_9", "share_0_5", "cka", "dead_a", "dead_b")}
    out.update({f: from_json([r[f] for r in doc["debiased"]]) for f in ("cka_debiased", "p_value")})
    out["cka_matrix"] = from_json(doc["cka_matrix"])
    width = max((r["size_a"] for r in layers), default=0)
    assignment = np.full((len(layers), width), -1, np.int32)
    matched = np.full((len(layers), width), np.nan, np.float32)
    for l, r in enumerate(layers):
        assignment[l, :r["size_a"]] = r["assignment"]
        matched[l, :r["size_a"]] = from_json(r["matched_corr"])
    out.update({"assignment": assignment, "matched_corr": matched,
                "pair_done": np.array(1)})
    return out


def _formation_region(doc: dict) -> dict[str, np.ndarray]:
    """A formation's numbers as the store's network variables."""
    k, depth = len(doc["steps"]), len(doc["self_corr"])
    width = max((len(layer[0]) for layer in doc["self_corr"] if layer), default=0)
    self_corr = np.full((k, depth, width), np.nan, np.float32)
    cka = np.full((k, depth), np.nan)
    formed_at = np.full((depth, width), np.nan)
    for l, layer in enumerate(doc["self_corr"]):
        for s, row in enumerate(layer):
            self_corr[s, l, :len(row)] = from_json(row)
        cka[:len(doc["cka_to_final"][l]), l] = from_json(doc["cka_to_final"][l])
        formed_at[l, :len(doc["formed_at"][l])] = from_json(doc["formed_at"][l])
    return {"snapshot_step": np.array(doc["steps"], np.int64), "self_corr": self_corr,
            "cka_to_final": cka, "formed_at": formed_at, "formation_done": np.array(1)}




def network_examples(out: Path, key: str, payload: dict, ctx: dict) -> dict:
    """Every hidden neuron's top examples over the dataset's images (training then test,
    as the atlas), ``out/examples/<name>.npz``."""
    from ..analysis.examples import top_k
    from ..similarity.comparison import hidden_activations
    from ..stages import read_keyed, write_keyed

    path = out / STUDY_EXAMPLES / f"{payload['name']}.npz"
    ident = {"task_key": np.array(key)}
    found = read_keyed(path, ident, ("index", "activation"))
    computed = found is None
    if computed:
        model = MLP.load(model_file(out / payload["name"]))
        data = _dataset(payload["dataset"], payload["dataset_sha256"], ctx)
        index, activation = [], []
        for acts in zip(*(hidden_activations(model, x) for x in (data.train_x, data.test_x))):
            top, vals = top_k(np.concatenate(acts), payload["examples"])
            index.append(top)
            activation.append(vals)
        found = {"index": _stack(index, -1, np.int32), "activation": _stack(activation, np.nan,
                                                                           np.float32)}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_keyed(path, ident, found)
    write_region(out, "network", payload["name"], {
        "top_index": found["index"], "top_activation": found["activation"],
        "examples_done": np.array(1)})
    return {"network": payload["name"], "file": str(path.relative_to(out)),
            "computed": computed}


def network_pictures(out: Path, key: str, payload: dict, ctx: dict) -> dict:
    """Every hidden neuron's picture under the study's preset, and the same at each of the
    network's snapshots (its filmstrip), ``out/pictures/<name>.npz``."""
    from ..config import VisConfig
    from ..nn.mlp import model_sha256
    from ..stages import read_keyed, write_keyed
    from ..vis.prototypes import data_prototypes
    from ..vis.visualize import visualize

    path = out / STUDY_PICTURES / f"{payload['name']}.npz"
    ident = {"task_key": np.array(key)}
    found = read_keyed(path, ident, ("picture", "activation", "film"))
    computed = found is None
    if computed:
        run = out / payload["name"]
        final = MLP.load(model_file(run))
        config = VisConfig.preset(payload["preset"])
        targets = [(l, i) for l in range(1, final.n_layers) for i in range(final.sizes[l])]
        prototypes = None  # the readable preset starts at the training set's prototypes
        if config.init == "prototype":
            prototypes = data_prototypes(_dataset(payload["dataset"],
                                                  payload["dataset_sha256"], ctx))
        rendered: dict[str, np.ndarray] = {}

        def render(model: MLP):
            sha = model_sha256(model)
            if sha not in rendered:
                res = visualize(model, targets, config,
                                prototypes=prototypes) if targets else None
                rendered[sha] = (res.images, res.activation) if res else (
                    np.zeros((0, model.sizes[0]), np.float32), np.zeros(0, np.float32))
            return rendered[sha]

        images, activation = render(final)
        snaps = [MLP.load(p) for p in sorted((run / SNAPSHOTS).glob("step-*.safetensors"))]
        film = np.stack([render(m)[0] for m in snaps]) if snaps else np.zeros(
            (0, *images.shape), np.float32)
        found = {"picture": _by_layer(final, images), "activation": _by_layer(final, activation),
                 "film": np.stack([_by_layer(final, f) for f in film]) if len(film) else
                 np.zeros((0, 0, 0, images.shape[1]), np.float32)}
        path.parent.mkdir(parents=True, exist_ok=True)
        write_keyed(path, ident, found)
    write_region(out, "network", payload["name"], {
        "picture": found["picture"], "picture_activation": found["activation"],
        "film": found["film"], "pictures_done": np.array(1)})
    return {"network": payload["name"], "file": str(path.relative_to(out)),
            "computed": computed}


def network_atlas(out: Path, key: str, payload: dict, ctx: dict) -> dict:
    """The network's atlas, ``out/<name>/atlas/`` (its analysis and pictures kept in its
    run folder's keyed store, as ``neuronatlas atlas`` makes them)."""
    from ..make_atlas import ensure_atlas

    run = out / payload["name"]
    data = _dataset(payload["dataset"], payload["dataset_sha256"], ctx)
    built = ensure_atlas(run, MLP.load(model_file(run)), data)
    return {"network": payload["name"], "file": f"{payload['name']}/{ATLAS}/index.html",
            "computed": built}


def _by_layer(model: MLP, rows: np.ndarray) -> np.ndarray:
    """Rows over every hidden neuron (layer by layer) as (layer, widest, ...), NaN-padded."""
    sizes = model.sizes[1:-1]
    out = np.full((len(sizes), max(sizes, default=0), *rows.shape[1:]), np.nan, np.float32)
    start = 0
    for l, n in enumerate(sizes):
        out[l, :n] = rows[start:start + n]
        start += n
    return out


def _stack(per_layer: list[np.ndarray], fill, dtype) -> np.ndarray:
    """Per-layer (n_l, k) arrays as one (layer, widest, k), padded with ``fill``."""
    width = max((len(a) for a in per_layer), default=0)
    out = np.full((len(per_layer), width, per_layer[0].shape[1] if per_layer else 0), fill,
                  dtype)
    for l, a in enumerate(per_layer):
        out[l, :len(a)] = a
    return out


def store(out: Path, key: str, payload: dict, ctx: dict) -> dict:
    """Each neuron's universality into ``out/study.zarr``, and the study page."""
    from .store import store_key
    from .summary import summarise, summarised

    if store_key(out) == key and summarised(out):
        return {"file": STUDY_STORE, "page": "index.html", "computed": False}
    return {**summarise(out, payload, ctx.get("data_dir")), "computed": True}


TASKS = {"train": train_network, "import": import_network, "examples": network_examples,
         "pictures": network_pictures, "atlas": network_atlas, "compare": compare_networks,
         "formation": formation, "store": store}
