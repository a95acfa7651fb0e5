"""The study's results in one Zarr store, ``DIR/study.zarr``, through xarray: readable
with ``xarray.open_zarr`` and no neuronatlas. Built by the study's last task from what
the other tasks kept in DIR (each comparison's and formation's JSON, each network's
metrics), written to a temporary store and renamed over the old one.

Dimensions: ``network``, ``layer`` (hidden layers 1..), ``neuron`` (padded to the widest
layer: NaN, or -1 for integers, beyond a layer's size), ``snapshot``, ``pair``, and
``layer_b`` (B's layer in a pair's CKA matrix). docs/format.md lists every variable.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..layout import COMPARISONS, FORMATION, STUDY_STORE
from ..similarity.universality import universality
from .page import write_page


def build_store(out: Path, key: str, payload: dict) -> dict:
    """Assemble ``out/study.zarr`` from the study's results (``payload``: the networks,
    their sizes and accuracy files, the pairs, the formation files)."""
    import xarray as xr

    nets = payload["networks"]
    sizes = {n["name"]: n["sizes"] for n in nets}
    width = max((max(s[1:-1], default=0) for s in sizes.values()), default=0)
    depth = max((len(s) - 2 for s in sizes.values()), default=0)
    names = [n["name"] for n in nets]
    pairs = [_read(out / COMPARISONS / f"{a}~{b}.json") for a, b in payload["pairs"]]
    ds = xr.Dataset(coords={"network": names, "layer": np.arange(1, depth + 1),
                            "neuron": np.arange(width)})
    ds["size"] = (("network", "layer"), np.array(
        [[s[l] if l < len(s) - 1 else 0 for l in range(1, depth + 1)] for s in sizes.values()],
        np.int32).reshape(len(names), depth))
    ds["test_accuracy"] = ("network", np.array([n["test_accuracy"] for n in nets], np.float64))
    for name, arr in _universality(names, sizes, pairs, depth, width).items():
        ds[name] = (("network", "layer", "neuron"), arr)
    _pairs(ds, pairs, depth)
    _formation(ds, out, [n["name"] for n in nets if n.get("formation")], names, depth, width)
    ds.attrs.update({"study_key": key, "written_by": "neuronatlas study",
                     "universal_excess": 0.5,
                     "images": int(pairs[0]["images"]) if pairs else 0})
    _write(ds, out / STUDY_STORE)
    write_page(out, ds, nets)
    return {"file": STUDY_STORE, "page": "index.html", "networks": len(names),
            "pairs": len(pairs)}


def store_key(out: Path) -> str | None:
    """The key of the task that wrote ``out/study.zarr`` (None: none readable)."""
    try:
        return json.loads((out / STUDY_STORE / ".zattrs").read_text())["study_key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _universality(names, sizes, pairs, depth, width) -> dict[str, np.ndarray]:
    """Each neuron's universality among the networks of its own sizes (NaN without peers)."""
    fields = ("best", "null", "excess", "excess_lo", "excess_hi", "universal")
    out = {f: np.full((len(names), depth, width), np.nan) for f in fields}
    for i, name in enumerate(names):
        for l in range(1, len(sizes[name]) - 1):
            best, null = [], []
            for doc in pairs:
                if sizes[doc["a"]] != sizes[doc["b"]] or name not in (doc["a"], doc["b"]):
                    continue
                m = doc["matches"][l - 1]
                way = "ab" if doc["a"] == name else "ba"
                best.append(_arr(m[f"best_{way}"]))
                null.append(_arr(m[f"null_{way}"]))
            if not best:
                continue
            seed = int(hashlib.sha256(f"{name}:{l}".encode()).hexdigest()[:16], 16)
            u = universality(np.array(best), np.array(null), np.random.default_rng(seed))
            n = sizes[name][l]
            for f in fields:
                out[f][i, l - 1, :n] = u[f]
            dead = np.isnan(u["excess"])
            out["universal"][i, l - 1, :n][dead] = np.nan
    return out


def _pairs(ds, pairs: list[dict], depth: int) -> None:
    ds.coords["pair"] = [f"{d['a']}~{d['b']}" for d in pairs]
    ds.coords["layer_b"] = np.arange(1, depth + 1)
    ds["pair_a"] = ("pair", [d["a"] for d in pairs])
    ds["pair_b"] = ("pair", [d["b"] for d in pairs])
    for field in ("share_0_9", "share_0_5", "cka", "dead_a", "dead_b"):
        arr = np.full((len(pairs), depth), np.nan)
        for p, d in enumerate(pairs):
            for rec in d["layers"]:
                v = rec[field]
                arr[p, rec["layer"] - 1] = np.nan if v is None else v
        ds[field] = (("pair", "layer"), arr)
    for field in ("cka_debiased", "p_value"):
        arr = np.full((len(pairs), depth), np.nan)
        for p, d in enumerate(pairs):
            for rec in d["debiased"]:
                arr[p, rec["layer"] - 1] = np.nan if rec[field] is None else rec[field]
        ds[field] = (("pair", "layer"), arr)
    cka = np.full((len(pairs), depth, depth), np.nan)
    for p, d in enumerate(pairs):
        m = np.array(d["cka_matrix"], dtype=np.float64)
        cka[p, :m.shape[0], :m.shape[1]] = m
    ds["cka_matrix"] = (("pair", "layer", "layer_b"), cka)


def _formation(ds, out: Path, formed: list[str], names: list[str], depth: int,
               width: int) -> None:
    docs = {n: _read(out / FORMATION / f"{n}.json") for n in formed}
    k = max((len(d["steps"]) for d in docs.values()), default=0)
    ds.coords["snapshot"] = np.arange(k)
    step = np.full((len(names), k), -1, np.int64)
    self_corr = np.full((len(names), k, depth, width), np.nan, np.float32)
    cka = np.full((len(names), k, depth), np.nan)
    formed_at = np.full((len(names), depth, width), np.nan)
    for i, name in enumerate(names):
        d = docs.get(name)
        if d is None:
            continue
        step[i, :len(d["steps"])] = d["steps"]
        for l, layer in enumerate(d["self_corr"]):
            for s, row in enumerate(layer):
                self_corr[i, s, l, :len(row)] = _arr(row)
            cka[i, :len(d["cka_to_final"][l]), l] = _arr(d["cka_to_final"][l])
            formed_at[i, l, :len(d["formed_at"][l])] = _arr(d["formed_at"][l])
    ds["snapshot_step"] = (("network", "snapshot"), step)
    ds["self_corr"] = (("network", "snapshot", "layer", "neuron"), self_corr)
    ds["cka_to_final"] = (("network", "snapshot", "layer"), cka)
    ds["formed_at"] = (("network", "layer", "neuron"), formed_at)


def _arr(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], np.float64)


def _write(ds, path: Path) -> None:
    """Write the store beside ``path`` and rename it over the old one (the leftovers of a
    write that was killed go first)."""
    for stale in path.parent.glob(".study.zarr.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".study.zarr.tmp-", dir=path.parent))
    try:
        # Zarr format 2: every reader reads it (format 3 has no stable string type yet)
        ds.to_zarr(tmp / "store", mode="w", consolidated=True, zarr_format=2)
        old = path.with_name(f".{path.name}.old")
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
        (tmp / "store").rename(path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
