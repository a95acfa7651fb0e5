"""Judges: classifiers that never saw the visualised network, to read its output
neurons' pictures (the transfer measure of :mod:`.vis.quality`).

Two of them, of different make from the paper's MLP and from each other: a NumPy MLP of
other sizes, activation and seed, and a small CNN when PyTorch is installed (else a
second NumPy MLP). Each is trained once per dataset and cached (keyed on the dataset's
content hash and the judge's recipe).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .data import Dataset
from .data.fetch import default_cache_dir
from .fileio import atomic_write_npz, atomic_write_text
from .nn.mlp import MLP

Log = Callable[[str], None]

# recipes: a change to one makes a new cache entry
MLP_JUDGE = {"sizes": [0, 300, 100, 0], "activation": "relu", "seed": 11, "epochs": 10,
             "fine_tune_epochs": 1}
MLP_JUDGE_2 = {"sizes": [0, 500, 0], "activation": "gelu", "seed": 23, "epochs": 4,
               "fine_tune_epochs": 1}
CNN_JUDGE = {"channels": [16, 32], "kernel": 5, "epochs": 2, "batch": 64, "lr": 1e-3,
             "seed": 5}


@dataclass
class Judge:
    name: str
    predict_proba: Callable[[np.ndarray], np.ndarray]  # (N, D) in [0, 1] -> (N, classes)
    test_accuracy: float


def _cache(data: Dataset, cache: Path | None) -> Path:
    root = Path(cache) if cache is not None else default_cache_dir() / "judges"
    return root / data.identity["sha256"][:16]


def _mlp_judge(data: Dataset, recipe: dict, folder: Path, name: str, log: Log) -> Judge:
    key = json.dumps(recipe, sort_keys=True)
    path, meta = folder / f"{name}.safetensors", folder / f"{name}.json"
    n_in, n_out = data.train_x.shape[1], len(data.class_names)
    if path.is_file() and meta.is_file() and json.loads(meta.read_text())["recipe"] == key:
        model = MLP.load(path)
    else:
        from .train import train

        log(f"training judge {name} ({recipe})")
        sizes = tuple(n_in if s == 0 and i == 0 else n_out if s == 0 else s
                      for i, s in enumerate(recipe["sizes"]))
        cfg = TrainConfig(sizes=sizes, activation=recipe["activation"], seed=recipe["seed"],
                          epochs=recipe["epochs"], fine_tune_epochs=recipe["fine_tune_epochs"])
        model = train(data, cfg).model
        folder.mkdir(parents=True, exist_ok=True)
        model.save(path)
        atomic_write_text(meta, json.dumps({"recipe": key}))
    acc = float((model.predict(data.test_x) == data.test_y).mean())
    return Judge(name, model.predict_proba, acc)


def _cnn(recipe: dict, shape, n_out: int):
    import torch

    c1, c2 = recipe["channels"]
    k = recipe["kernel"]
    h, w, c = shape
    side = lambda n: ((n - k + 1) // 2 - k + 1) // 2  # noqa: E731  two conv + pool stages
    return torch.nn.Sequential(
        torch.nn.Conv2d(c, c1, k), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(c1, c2, k), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(c2 * side(h) * side(w), n_out))


def _cnn_judge(data: Dataset, recipe: dict, folder: Path, log: Log) -> Judge:
    import torch

    shape, n_out = data.shape, len(data.class_names)
    key = json.dumps(recipe, sort_keys=True)
    path, meta = folder / "cnn.npz", folder / "cnn.json"
    torch.manual_seed(recipe["seed"])
    net = _cnn(recipe, shape, n_out)

    def as_tensor(x):
        return torch.from_numpy(np.ascontiguousarray(
            np.asarray(x, np.float32).reshape(-1, *shape).transpose(0, 3, 1, 2)))

    if path.is_file() and meta.is_file() and json.loads(meta.read_text())["recipe"] == key:
        with np.load(path) as z:
            net.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files})
    else:
        log(f"training judge cnn ({recipe})")
        opt = torch.optim.Adam(net.parameters(), lr=recipe["lr"])
        rng = np.random.default_rng(recipe["seed"])
        y = torch.from_numpy(data.train_y.astype(np.int64))
        for _ in range(recipe["epochs"]):
            perm = rng.permutation(len(data.train_x))
            for s in range(0, len(perm), recipe["batch"]):
                idx = perm[s:s + recipe["batch"]]
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(net(as_tensor(data.train_x[idx])),
                                                         y[idx])
                loss.backward()
                opt.step()
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_npz(path, **{k: v.detach().numpy() for k, v in net.state_dict().items()})
        atomic_write_text(meta, json.dumps({"recipe": key}))
    net.eval()

    def predict_proba(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(net(as_tensor(x)), dim=1).double().numpy()

    acc = float((predict_proba(data.test_x).argmax(1) == data.test_y).mean())
    return Judge("cnn", predict_proba, acc)


def load_judges(data: Dataset, cache: Path | None = None, log: Log | None = None
                ) -> list[Judge]:
    """The two judges for ``data``, trained on its training set once and cached."""
    log = log or (lambda _m: None)
    folder = _cache(data, cache)
    judges = [_mlp_judge(data, MLP_JUDGE, folder, "mlp-relu", log)]
    try:
        import torch  # noqa: F401
    except ImportError:
        judges.append(_mlp_judge(data, MLP_JUDGE_2, folder, "mlp-gelu", log))
    else:
        judges.append(_cnn_judge(data, CNN_JUDGE, folder, log))
    return judges
