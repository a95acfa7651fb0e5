"""The study page, ``DIR/index.html``: opens from ``file://`` like the atlas (the numbers
as a script, ``study-data.js``, since ``file://`` forbids ``fetch``), written from
``study.zarr`` alone (and the datasets, for the top examples' pixels). The networks with
their settings, accuracy and seconds (and a link to each one's atlas where it has been
built), per layer the matched shares and CKA of every pair as grids, the universal
neurons against the rotation baseline, each layer's formation over training, and every
neuron's panel: its picture, top examples and filmstrip beside its matches in the other
networks. A study with tasks that did not finish gets the page of what did."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..atlas.sprites import contrast, png, sheet
from ..fileio import atomic_write_bytes, atomic_write_text, ensure_dir
from ..jsonnum import float_or_none, floats_to_json
from ..layout import ATLAS, STUDY_PAGE_FILES, STUDY_STORE
from .checked import load_checked

STATIC = Path(__file__).with_name("static")
COMMON_JS = Path(__file__).parents[1] / "atlas" / "static" / "common.js"
PAGE_FILES = ("index.html", "study.js", "study.css")


def write_page(out: Path, data_dir=None) -> Path:
    """Write the page's files into ``out`` from ``out/study.zarr``."""
    import xarray as xr

    lazy = xr.open_zarr(out / STUDY_STORE)
    # every variable but the pictures in memory; those a network at a time (a study of
    # many large networks has gigabytes of filmstrips)
    ds = lazy.drop_vars(["picture", "film"]).load()
    for name in PAGE_FILES:
        shutil.copyfile(STATIC / name, out / name)
    shutil.copyfile(COMMON_JS, out / "common.js")
    films = [_film_count(lazy, i) for i in range(lazy.sizes["network"])]
    doc = page_data(out, ds, films)
    _write_sprites(out, lazy, ds, doc, data_dir)
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    atomic_write_text(out / "study-data.js", f"STUDY.set({text});\n")
    return out / "index.html"


def _film_count(lazy, i: int) -> int:
    """How many snapshots network ``i``'s filmstrip has (a run may keep fewer than the
    spec's K; the rest of the store's snapshots are NaN)."""
    if lazy.sizes["snapshot"] == 0 or lazy.sizes["neuron"] == 0 or lazy.sizes["layer"] == 0:
        return 0
    first = lazy["film"][i, :, 0, 0, 0].values  # the first neuron's first pixel
    return int(np.isfinite(first).sum())


def page_data(out: Path, ds, films: list[int]) -> dict:
    """What the page shows, JSON-ready (NaN as null)."""
    layers = [int(v) for v in ds["layer"].values]
    networks = json.loads(ds.attrs["networks"])
    nets = []
    for i, n in enumerate(networks):
        atlas = out / n["name"] / ATLAS / "index.html"
        nets.append({"name": n["name"], "axes": n.get("axes", {}), "sizes": n["sizes"],
                     "shape": n["input_shape"],
                     "done": bool(ds["network_done"].values[i]),
                     "test_accuracy": float_or_none(ds["test_accuracy"].values[i]),
                     "train_seconds": float_or_none(ds["train_seconds"].values[i]),
                     "atlas": f"{n['name']}/{ATLAS}/index.html" if atlas.is_file() else None,
                     "neurons": _neurons(ds, i, n, films[i])})
    pairs = [{"a": str(ds["pair_a"].values[p]), "b": str(ds["pair_b"].values[p]),
              "done": bool(ds["pair_done"].values[p]),
              "images": int(ds["pair_images"].values[p]),
              "share_0_9": floats_to_json(ds["share_0_9"].values[p]),
              "cka": floats_to_json(ds["cka"].values[p]),
              "assignment": [_ints(ds["assignment"].values[p, l - 1, :_size(ds, p, l)])
                             for l in layers],
              "matched_corr": [floats_to_json(ds["matched_corr"].values[p, l - 1, :_size(ds, p, l)])
                               for l in layers]}
             for p in range(ds.sizes["pair"])]
    axes = list(dict.fromkeys(k for n in networks for k in n.get("axes", {})))
    return {"title": out.name, "axes": axes, "preset": ds.attrs.get("preset"),
            "networks": nets, "layers": layers, "pairs": pairs,
            "universal_done": bool(ds["universality_done"].values.all()),
            "universality": [[_universal(ds, i, l) for l in layers] for i in range(len(nets))],
            "formation": [_formation(ds, i, layers) for i in range(len(nets))]}


def _size(ds, p: int, layer: int) -> int:
    """The size of A's layer in pair ``p``."""
    a = list(ds["network"].values).index(ds["pair_a"].values[p])
    return int(ds["size"].values[a, layer - 1])


def _neurons(ds, i: int, net: dict, film: int) -> dict:
    """Per hidden layer, every neuron's numbers for its panel, and where its tiles are
    (``film``: the snapshots its filmstrip has)."""
    sizes = net["sizes"][1:-1]
    fields = ("best", "null", "excess", "universal", "formed_at")
    per = [{f: floats_to_json(ds[f].values[i, l, :n]) for f in fields}
           for l, n in enumerate(sizes)]
    steps = [s for s in _ints(ds["snapshot_step"].values[i]) if s >= 0]
    pictures = bool(ds["pictures_done"].values[i]) and bool(sizes)
    return {"offsets": [int(v) for v in np.cumsum([0, *sizes[:-1]])], "layers": per,
            # the steps from the formation task (absent: the tiles are labelled by index)
            "film_steps": steps if bool(ds["formation_done"].values[i]) else [],
            "film": film if pictures else 0,
            "pictures": pictures,
            "examples": int(ds.sizes["example"]) if pictures and bool(
                ds["examples_done"].values[i]) else 0}


def _write_sprites(out: Path, lazy, ds, doc: dict, data_dir) -> None:
    """Per network: its pictures (one tile per hidden neuron, layer by layer), its
    neurons' top examples (``example`` tiles each) and its filmstrips (one tile per
    snapshot each), as PNG sheets in ``out/page``."""
    folder = ensure_dir(out / STUDY_PAGE_FILES)
    networks = json.loads(ds.attrs["networks"])
    for i, (net, shown) in enumerate(zip(networks, doc["networks"])):
        shape = tuple(net["input_shape"])
        d = int(np.prod(shape))
        sizes = net["sizes"][1:-1]

        def rows(a, sizes=sizes):  # (layer, widest, ...) -> every neuron's row, in order
            return np.concatenate([a[l, :n] for l, n in enumerate(sizes)])

        sheets = {}
        k = shown["neurons"]["film"]
        if shown["neurons"]["pictures"]:
            sheets["pictures"] = contrast(rows(lazy["picture"][i].values[..., :d]))
            if k:
                film = lazy["film"][i, :k].values[..., :d]  # (snapshot, layer, neuron, pixel)
                sheets["film"] = contrast(np.stack([rows(f) for f in film], 1).reshape(-1, d))
        if shown["neurons"]["examples"]:
            data = load_checked(net["dataset"], net["dataset_sha256"], data_dir)
            index = rows(ds["top_index"].values[i]).astype(np.int64)  # (neurons, example)
            sheets["examples"] = data.rows(index).reshape(-1, d).astype(np.float32)
        for name, tiles in sheets.items():
            atomic_write_bytes(folder / f"net-{i}-{name}.png", png(sheet(tiles, shape)))
            shown["neurons"][f"{name}_sheet"] = f"{STUDY_PAGE_FILES}/net-{i}-{name}.png"


def _universal(ds, i: int, layer: int) -> dict | None:
    size = int(ds["size"].values[i, layer - 1])
    if size == 0:
        return None
    u = ds["universal"].values[i, layer - 1, :size]
    if np.isnan(u).all():
        return None
    with np.errstate(invalid="ignore"):
        return {"universal": float_or_none(np.nanmean(u)),
                "excess": float_or_none(np.nanmedian(ds["excess"].values[i, layer - 1, :size])),
                "best": float_or_none(np.nanmedian(ds["best"].values[i, layer - 1, :size])),
                "null": float_or_none(np.nanmedian(ds["null"].values[i, layer - 1, :size]))}


def _formation(ds, i: int, layers: list[int]) -> dict | None:
    if ds.sizes.get("snapshot", 0) == 0 or not ds["formation_done"].values[i]:
        return None
    steps = ds["snapshot_step"].values[i]
    keep = steps >= 0
    cka = ds["cka_to_final"].values[i][keep]  # (snapshots, layer)
    return {"steps": [int(s) for s in steps[keep]],
            "cka_to_final": [floats_to_json(cka[:, l - 1]) for l in layers
                             if int(ds["size"].values[i, l - 1])]}


def _ints(a) -> list[int]:
    """Integers as the store reads back (xarray masks -1, none, as NaN): -1 for none."""
    a = np.asarray(a, np.float64)
    return [-1 if not np.isfinite(v) else int(v) for v in a]
