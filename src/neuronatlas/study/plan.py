"""A study as a graph of tasks, each keyed by the hash of what it computes.

A task is plain data: its ``kind`` (a function of :mod:`.tasks`), the JSON ``payload``
that function takes, and the keys of the tasks it needs. The key is the hash of the
kind, the payload and the keys it depends on, so a resubmitted task is the same task
(Dask's key too) and a rerun or an interrupted study redoes only what is missing.
Planning reads the datasets once (to check every network against its data before any
work starts) and the imported models' headers; it writes nothing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass

from ..data import Dataset, load_dataset
from ..errors import NeuronatlasError
from ..fileio import sha256_of
from ..nn.mlp import MLP
from ..shapes import default_input_shape
from ..vis.prototypes import prototype_settings
from ..vis.visualize import PICTURES_VERSION
from .spec import NetworkSpec, SpecError, StudySpec
from .store import EXAMPLES

#: each kind's version, in its tasks' keys: bumped when that kind computes something else
#: from the same payload (compare 2: it keeps debiased CKA and the null model's matches),
#: so that no other kind's results are made again; a result that lacks a field its task
#: writes now is also computed again (tasks._keyed_json)
VERSIONS = {"train": 1, "import": 1, "examples": 1, "pictures": 1, "atlas": 1, "compare": 2,
            "formation": 2, "store": 3}

@dataclass(frozen=True)
class Task:
    key: str  # "<kind>-<hash>"
    kind: str  # a name of tasks.TASKS
    label: str  # the network's name, or "A ~ B"
    payload: dict
    deps: tuple[str, ...] = ()


def canonical(value) -> str:
    """The JSON a key is hashed from: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def task(kind: str, label: str, payload: dict, deps: tuple[Task, ...] = ()) -> Task:
    keys = tuple(d.key for d in deps)
    digest = hashlib.sha256(canonical([VERSIONS[kind], kind, payload, keys]).encode())
    return Task(f"{kind}-{digest.hexdigest()[:16]}", kind, label, payload, keys)


def plan(spec: StudySpec, data_dir=None, *, log=None) -> list[Task]:
    """Every task of the study, dependencies first. A network that does not fit its data,
    or a comparison of networks with different inputs, is a :class:`SpecError` now."""
    datasets: dict[str, Dataset] = {}
    for net in spec.networks:
        if net.dataset not in datasets:
            try:
                datasets[net.dataset] = load_dataset(net.dataset, data_dir, log=log)
            except NeuronatlasError as exc:
                raise SpecError(f"{net.name}: {exc}") from None
    made = {net.name: _network_task(net, datasets[net.dataset]) for net in spec.networks}
    shapes = {net.name: made[net.name][1] for net in spec.networks}
    tasks = [t for t, _, _ in made.values()]
    for net in spec.networks:
        made_by = made[net.name][0]
        data = datasets[net.dataset]
        tasks.append(task("examples", f"examples of {net.name}", {
            "name": net.name, "dataset": net.dataset, "examples": EXAMPLES,
            "dataset_sha256": data.identity["sha256"]}, (made_by,)))
        tasks.append(task("pictures", f"pictures of {net.name}", {
            "name": net.name, "preset": spec.preset, "snapshots": net.snapshots,
            "dataset": net.dataset, "dataset_sha256": data.identity["sha256"],
            "prototypes": prototype_settings(), "pictures_version": PICTURES_VERSION},
            (made_by,)))
        if spec.atlas:
            tasks.append(task("atlas", f"atlas of {net.name}", {
                "name": net.name, "dataset": net.dataset,
                "dataset_sha256": data.identity["sha256"]}, (made_by,)))
    # a network without hidden layers has no neurons to compare or to watch form
    hidden = {name: len(sizes) > 2 for name, (_, _, sizes) in made.items()}
    compared = [(a, b) for a, b in pairs(spec, shapes) if hidden[a.name] and hidden[b.name]]
    for a, b in compared:
        tasks.append(task("compare", f"{a.name} ~ {b.name}",
                          {"a": a.name, "b": b.name, **_images(datasets, a, b)},
                          (made[a.name][0], made[b.name][0])))
    formed = [net for net in spec.networks if net.snapshots >= 2 and hidden[net.name]]
    for net in formed:
        tasks.append(task("formation", f"formation of {net.name}",
                          {"name": net.name, **_images(datasets, net)}, (made[net.name][0],)))
    networks = [{"name": n.name, "sizes": list(made[n.name][2]), "formation": n in formed,
                 "axes": n.axes, "dataset": n.dataset, "snapshots": n.snapshots,
                 "dataset_sha256": datasets[n.dataset].identity["sha256"],
                 "input_shape": list(shapes[n.name])} for n in spec.networks]
    images = {sha: len(d.test_x) for d in datasets.values() for sha in [d.identity["sha256"]]}
    counts = [sum(images[s] for s in t.payload["images_sha256"]) for t in tasks
              if t.kind == "compare"]
    tasks.append(task("store", "study.zarr", {
        "networks": networks, "pairs": [[a.name, b.name] for a, b in compared],
        "preset": spec.preset, "pair_images": counts}, tuple(tasks)))
    return tasks


def _images(datasets: dict[str, Dataset], *nets: NetworkSpec) -> dict:
    """The test images a task uses: those of the networks' datasets, each once, in the
    order of their hashes (the same for A ~ B and B ~ A)."""
    found = sorted({datasets[n.dataset].identity["sha256"]: n.dataset for n in nets}.items())
    return {"images": [name for _, name in found], "images_sha256": [sha for sha, _ in found]}


def _network_task(net: NetworkSpec, data: Dataset) -> tuple[Task, tuple, tuple]:
    """The task that makes ``net`` (trains or imports it), the input shape it takes and
    its layer sizes."""
    if net.config is None:
        try:
            model = MLP.load(net.source, activation=net.activation)
        except NeuronatlasError as exc:
            raise SpecError(f"{net.name}: {exc}") from None
        payload = {"name": net.name, "source": str(net.source),
                   "source_sha256": sha256_of(net.source), "activation": net.activation,
                   "dataset": net.dataset, "dataset_sha256": data.identity["sha256"]}
        sizes, shape = model.sizes, tuple(model.input_shape)
        kind = "import"
    else:
        payload = {"name": net.name, "config": net.config.to_dict(), "dataset": net.dataset,
                   "dataset_sha256": data.identity["sha256"], "snapshots": net.snapshots}
        sizes, shape = net.config.sizes, tuple(data.shape)
        kind = "train"
    if sizes[0] != data.n_inputs:
        raise SpecError(f"{net.name}: the network takes {sizes[0]} inputs but {data.name}'s "
                        f"images have {data.n_inputs} values")
    top = int(max(data.train_y.max(initial=0), data.test_y.max(initial=0)))
    if top >= sizes[-1]:
        raise SpecError(f"{net.name}: {data.name} has labels up to {top} but the network has "
                        f"{sizes[-1]} outputs")
    if kind == "import" and shape not in (default_input_shape(sizes[0]), tuple(data.shape)):
        raise SpecError(f"{net.name}: the model takes {'x'.join(map(str, shape))} images, "
                        f"{data.name}'s are {'x'.join(map(str, data.shape))}")
    return task(kind, net.name, payload), tuple(data.shape), tuple(sizes)


def pairs(spec: StudySpec, shapes: dict[str, tuple]) -> list[tuple[NetworkSpec, NetworkSpec]]:
    """The pairs compared: with ``compare = AXIS`` the trained networks that differ only
    on that axis (which must take the same inputs), else every pair of networks that
    take the same input shape."""
    nets = spec.networks
    if spec.compare is None:
        return [(a, b) for a, b in itertools.combinations(nets, 2)
                if shapes[a.name] == shapes[b.name]]
    out = []
    for a, b in itertools.combinations([n for n in nets if n.config is not None], 2):
        differ = [k for k in spec.axes if a.axes[k] != b.axes[k]]
        if differ == [spec.compare]:
            if shapes[a.name] != shapes[b.name]:
                raise SpecError(f"compare = {spec.compare!r} pairs {a.name} and {b.name}, which "
                                "take different inputs: they cannot be compared on the same "
                                "images")
            out.append((a, b))
    return out
