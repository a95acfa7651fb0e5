"""The study's last task: each neuron's universality among the networks of its own
sizes (from every pair's comparison), into the store, and the study page."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..jsonnum import from_json
from ..layout import COMPARISONS, STUDY_STORE
from ..similarity.universality import universality
from .page import PAGE_FILES, write_page
from .store import write_all

FIELDS = ("best", "null", "excess", "excess_lo", "excess_hi", "universal")


def summarised(out: Path) -> bool:
    """Whether the store holds every network's universality and the page is there."""
    import xarray as xr

    try:
        done = xr.open_zarr(out / STUDY_STORE)["universality_done"].values
    except (OSError, ValueError, KeyError):
        return False
    return bool(done.all()) and all((out / f).is_file() for f in (*PAGE_FILES, "study-data.js"))


def summarise(out: Path, payload: dict, data_dir=None) -> dict:
    """Universality into ``out/study.zarr``, then the page; what it wrote."""
    nets = payload["networks"]
    pairs = [json.loads((out / COMPARISONS / f"{a}~{b}.json").read_text())
             for a, b in payload["pairs"]]
    values = universality_of(nets, pairs)
    values["universality_done"] = np.ones(len(nets), np.int8)
    write_all(out, values)
    write_page(out, data_dir)
    return {"file": "study.zarr", "page": "index.html", "networks": len(nets),
            "pairs": len(pairs)}


def universality_of(nets: list[dict], pairs: list[dict]) -> dict[str, np.ndarray]:
    """Each neuron's universality among the networks of its own sizes (NaN without
    peers), as (network, layer, neuron) arrays padded with NaN."""
    sizes = {n["name"]: n["sizes"] for n in nets}
    depth = max((len(s) - 2 for s in sizes.values()), default=0)
    width = max((max(s[1:-1], default=0) for s in sizes.values()), default=0)
    out = {f: np.full((len(nets), depth, width), np.nan) for f in FIELDS}
    for i, net in enumerate(nets):
        name = net["name"]
        for l in range(1, len(sizes[name]) - 1):
            best, null = [], []
            for doc in pairs:
                if sizes[doc["a"]] != sizes[doc["b"]] or name not in (doc["a"], doc["b"]):
                    continue
                m = doc["matches"][l - 1]
                way = "ab" if doc["a"] == name else "ba"
                best.append(from_json(m[f"best_{way}"]))
                null.append(from_json(m[f"null_{way}"]))
            if not best:
                continue
            seed = int(hashlib.sha256(f"{name}:{l}".encode()).hexdigest()[:16], 16)
            u = universality(np.array(best), np.array(null), np.random.default_rng(seed))
            n = sizes[name][l]
            for f in FIELDS:
                out[f][i, l - 1, :n] = u[f]
            dead = np.isnan(u["excess"])
            out["universal"][i, l - 1, :n][dead] = np.nan
    return out
