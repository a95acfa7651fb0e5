"""The study's results in one Zarr store, ``DIR/study.zarr``, through xarray: readable
with ``xarray.open_zarr`` and no neuronatlas.

The store is laid out before any task runs (:func:`create_store`, from the plan: every
dimension is known then) and each task writes its own region as it ends
(:func:`write_region`: one network's or one pair's slice, chunks never shared between
tasks, so tasks on different workers write at once). A region no task has written yet
reads as NaN (integers: masked, NaN through xarray's default decoding) and its ``*_done``
flag says 0: a reader can tell a result that is not there from one that is NaN.

Dimensions: ``network``, ``layer`` (hidden layers 1..), ``neuron`` (padded to the widest
layer: NaN beyond a layer's size), ``snapshot``, ``pair``, ``layer_b`` (B's layer in a
pair's CKA matrix), ``example`` (a neuron's top examples), ``pixel`` (a picture's values,
padded to the largest input) and ``axis`` (an input shape's H, W, C). docs/format.md
lists every variable.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..layout import STUDY_STORE

EXAMPLES = 8  # top examples per neuron kept and shown

#: the variables each kind of task writes, with their dimensions and dtype
NETWORK_VARS = {
    "train": {"test_accuracy": (("network",), "f8"), "train_seconds": (("network",), "f8"),
              "network_done": (("network",), "i1")},
    "examples": {"top_index": (("network", "layer", "neuron", "example"), "i4"),
                 "top_activation": (("network", "layer", "neuron", "example"), "f4"),
                 "examples_done": (("network",), "i1")},
    "pictures": {"picture": (("network", "layer", "neuron", "pixel"), "f4"),
                 "picture_activation": (("network", "layer", "neuron"), "f4"),
                 "film": (("network", "snapshot", "layer", "neuron", "pixel"), "f4"),
                 "pictures_done": (("network",), "i1")},
    "formation": {"snapshot_step": (("network", "snapshot"), "i8"),
                  "self_corr": (("network", "snapshot", "layer", "neuron"), "f4"),
                  "cka_to_final": (("network", "snapshot", "layer"), "f8"),
                  "formed_at": (("network", "layer", "neuron"), "f8"),
                  "formation_done": (("network",), "i1")},
    "store": {**{f: (("network", "layer", "neuron"), "f8") for f in
                 ("best", "null", "excess", "excess_lo", "excess_hi", "universal")},
              "universality_done": (("network",), "i1")},
}
PAIR_VARS = {
    **{f: (("pair", "layer"), "f8") for f in
       ("share_0_9", "share_0_5", "cka", "dead_a", "dead_b", "cka_debiased", "p_value")},
    "cka_matrix": (("pair", "layer", "layer_b"), "f8"),
    "assignment": (("pair", "layer", "neuron"), "i4"),
    "matched_corr": (("pair", "layer", "neuron"), "f4"),
    "pair_done": (("pair",), "i1"),
}
VARIABLES = {name: spec for group in (*NETWORK_VARS.values(), PAIR_VARS)
             for name, spec in group.items()}
#: chunked one per index along these (and pictures one layer per chunk)
ONE_PER_CHUNK = ("network", "pair", "snapshot")


def layout(payload: dict) -> dict[str, int]:
    """The size of every dimension, from the store task's payload."""
    nets = payload["networks"]
    return {"network": len(nets), "pair": len(payload["pairs"]),
            "layer": max((len(n["sizes"]) - 2 for n in nets), default=0),
            "layer_b": max((len(n["sizes"]) - 2 for n in nets), default=0),
            "neuron": max((max(n["sizes"][1:-1], default=0) for n in nets), default=0),
            "snapshot": max((n["snapshots"] for n in nets), default=0),
            "example": EXAMPLES, "axis": 3,
            "pixel": max((n["sizes"][0] for n in nets), default=0)}


def create_store(out: Path, key: str, payload: dict) -> bool:
    """Lay out ``out/study.zarr`` for the study ``key`` (the store task's key), unless it
    is laid out for it already (a resumed study keeps every region written); False when it
    was there. A new layout is written beside the old store and renamed over it."""
    import dask.array as da
    import xarray as xr

    if store_key(out) == key:
        return False
    dims = layout(payload)
    nets = payload["networks"]
    names = [n["name"] for n in nets]
    ds = xr.Dataset(coords={
        "network": names, "layer": np.arange(1, dims["layer"] + 1),
        "layer_b": np.arange(1, dims["layer_b"] + 1), "neuron": np.arange(dims["neuron"]),
        "snapshot": np.arange(dims["snapshot"]), "example": np.arange(EXAMPLES),
        "pair": [f"{a}~{b}" for a, b in payload["pairs"]], "axis": ["H", "W", "C"]})
    size = np.zeros((len(nets), dims["layer"]), np.int32)
    for i, n in enumerate(nets):
        size[i, :len(n["sizes"]) - 2] = n["sizes"][1:-1]
    ds["size"] = (("network", "layer"), size)
    ds["input_shape"] = (("network", "axis"), np.array([n["input_shape"] for n in nets],
                                                       np.int32).reshape(len(nets), 3))
    ds["pair_a"] = ("pair", [a for a, _ in payload["pairs"]])
    ds["pair_b"] = ("pair", [b for _, b in payload["pairs"]])
    ds["pair_images"] = ("pair", np.array(payload["pair_images"], np.int64))
    encoding = {}
    for name, (vdims, dtype) in VARIABLES.items():
        shape = tuple(dims[d] for d in vdims)
        chunks = tuple(1 if d in ONE_PER_CHUNK or (d == "layer" and "pixel" in vdims)
                       else max(dims[d], 1) for d in vdims)
        if name.endswith("_done"):  # every chunk written now: 0 until its task says 1
            ds[name] = (vdims, np.zeros(shape, dtype))
            encoding[name] = {"chunks": chunks}
            continue
        fill = -1 if dtype.startswith("i") else np.nan
        ds[name] = (vdims, da.full(shape, fill, dtype=dtype, chunks=chunks))
        encoding[name] = {"_FillValue": fill, "chunks": chunks}
    ds.attrs.update({"study_key": key, "written_by": "neuronatlas study",
                     "universal_excess": 0.5,
                     "preset": payload["preset"],
                     "networks": json.dumps(nets, sort_keys=True)})
    _replace(out / STUDY_STORE, lambda tmp: ds.to_zarr(
        tmp, mode="w", compute=False, consolidated=True, zarr_format=2, encoding=encoding,
        write_empty_chunks=True))  # the done flags' zeros as chunks: a null fill is undefined
    return True


def write_region(out: Path, dim: str, label: str, values: dict[str, np.ndarray]) -> None:
    """Write ``values`` (variables of :data:`VARIABLES`, each without its first dimension
    ``dim`` and no larger than the store's, padded here) into the slice of ``dim``
    labelled ``label`` (a network's or a pair's name)."""
    import xarray as xr

    path = out / STUDY_STORE
    ds = xr.open_zarr(path)
    i = [str(v) for v in ds[dim].values].index(label)
    dims = dict(ds.sizes)
    region = xr.Dataset()
    for name, arr in values.items():
        vdims, dtype = VARIABLES[name]
        assert vdims[0] == dim, (name, dim)
        full = np.full(tuple(dims[d] for d in vdims[1:]),
                       -1 if dtype.startswith("i") else np.nan, dtype)
        arr = np.asarray(arr, dtype)
        full[tuple(slice(0, s) for s in arr.shape)] = arr
        region[name] = (vdims, full[None])
    region.to_zarr(path, region={dim: slice(i, i + 1)}, mode="r+", consolidated=False,
                   zarr_format=2)


def write_all(out: Path, values: dict[str, np.ndarray]) -> None:
    """Write whole variables (the universality of every network)."""
    import xarray as xr

    path = out / STUDY_STORE
    region = xr.Dataset({name: (VARIABLES[name][0], np.asarray(arr, VARIABLES[name][1]))
                         for name, arr in values.items()})
    region.to_zarr(path, region="auto", mode="r+", consolidated=False, zarr_format=2)


def store_key(out: Path) -> str | None:
    """The key of the study ``out/study.zarr`` is laid out for (None: none readable)."""
    try:
        return json.loads((out / STUDY_STORE / ".zattrs").read_text())["study_key"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _replace(path: Path, write) -> None:
    """``write(tmp)`` a store beside ``path`` and rename it over the old one (the leftovers
    of a write that was killed go first)."""
    for stale in path.parent.glob(".study.zarr.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".study.zarr.tmp-", dir=path.parent))
    try:
        # Zarr format 2: every reader reads it (format 3 has no stable string type yet)
        write(tmp / "store")
        old = path.with_name(f".{path.name}.old")
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
        (tmp / "store").rename(path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
