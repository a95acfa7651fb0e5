"""The study page, ``DIR/index.html``: opens from ``file://`` like the atlas (the numbers
as a script, ``study-data.js``, since ``file://`` forbids ``fetch``). The networks with
their settings, accuracy and seconds (and a link to each one's atlas where it has been
built), per layer the matched shares and CKA of every pair as grids, the universal
neurons against the rotation baseline, and each layer's formation over training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_text
from ..layout import ATLAS

STATIC = Path(__file__).with_name("static")
COMMON_JS = Path(__file__).parents[1] / "atlas" / "static" / "common.js"
PAGE_FILES = ("index.html", "study.js", "study.css")


def write_page(out: Path, ds, networks: list[dict]) -> Path:
    """Write the page's files into ``out`` from the store's dataset ``ds``."""
    for name in PAGE_FILES:
        shutil.copyfile(STATIC / name, out / name)
    shutil.copyfile(COMMON_JS, out / "common.js")
    doc = page_data(out, ds, networks)
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    atomic_write_text(out / "study-data.js", f"STUDY.set({text});\n")
    return out / "index.html"


def page_data(out: Path, ds, networks: list[dict]) -> dict:
    """What the page shows, JSON-ready (NaN as null)."""
    layers = [int(v) for v in ds["layer"].values]
    nets = []
    for n in networks:
        atlas = out / n["name"] / ATLAS / "index.html"
        nets.append({"name": n["name"], "axes": n.get("axes", {}), "sizes": n["sizes"],
                     "test_accuracy": _num(n.get("test_accuracy")),
                     "train_seconds": _num(n.get("train_seconds")),
                     "atlas": f"{n['name']}/{ATLAS}/index.html" if atlas.is_file() else None})
    pairs = [{"a": str(ds["pair_a"].values[p]), "b": str(ds["pair_b"].values[p]),
              "share_0_9": _list(ds["share_0_9"].values[p]), "cka": _list(ds["cka"].values[p])}
             for p in range(ds.sizes["pair"])]
    axes = list(dict.fromkeys(k for n in networks for k in n.get("axes", {})))
    return {"title": out.name, "axes": axes,
            "networks": nets, "layers": layers, "pairs": pairs,
            "images": int(ds.attrs.get("images", 0)),
            "universality": [[_universal(ds, i, l) for l in layers] for i in range(len(nets))],
            "formation": [_formation(ds, i, layers) for i in range(len(nets))]}


def _universal(ds, i: int, layer: int) -> dict | None:
    size = int(ds["size"].values[i, layer - 1])
    if size == 0:
        return None
    u = ds["universal"].values[i, layer - 1, :size]
    if np.isnan(u).all():
        return None
    with np.errstate(invalid="ignore"):
        return {"universal": _num(np.nanmean(u)),
                "excess": _num(np.nanmedian(ds["excess"].values[i, layer - 1, :size])),
                "best": _num(np.nanmedian(ds["best"].values[i, layer - 1, :size])),
                "null": _num(np.nanmedian(ds["null"].values[i, layer - 1, :size]))}


def _formation(ds, i: int, layers: list[int]) -> dict | None:
    if "snapshot_step" not in ds or ds.sizes.get("snapshot", 0) == 0:
        return None
    steps = ds["snapshot_step"].values[i]
    keep = steps >= 0
    if not keep.any():
        return None
    cka = ds["cka_to_final"].values[i][keep]  # (snapshots, layer)
    return {"steps": [int(s) for s in steps[keep]],
            "cka_to_final": [_list(cka[:, l - 1]) for l in layers
                             if int(ds["size"].values[i, l - 1])]}


def _list(a) -> list:
    return [_num(v) for v in np.asarray(a, np.float64)]


def _num(v):
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None
