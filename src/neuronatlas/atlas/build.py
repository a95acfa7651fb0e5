"""The static web atlas of every neuron, written from a run's artefacts: its model, its
analysis and its gallery of pictures (:mod:`neuronatlas.gallery`). It reads them and
computes nothing; :mod:`neuronatlas.make_atlas` makes whatever is missing first.

The site opens from ``file://`` with no server: plain HTML/JS/CSS from ``static/``,
data as ``.js`` files that call a global (Chromium forbids ``fetch`` of local files),
and the pictures as sprite sheets (one PNG per layer and kind, see sprites.py), so
the overview of 3,892 neurons loads a handful of images, one layer at a time.

The site is written into ``RUN/.atlas.tmp-*`` and renamed over ``RUN/atlas`` only
when complete: an interrupted build leaves the previous atlas as it was.

Contract with ``atlas/server.py`` (``neuronatlas serve``), which serves this folder:

* ``RUN/atlas/`` is self-contained: ``index.html``, ``atlas.js``, ``atlas.css``,
  ``data/meta.js`` (``ATLAS.setMeta({...})``), ``data/layer{l}.js``
  (``ATLAS.addLayer({...})``, the record of :func:`_layer_doc`), ``sprites/*.png`` and
  ``manifest.json`` (every file's size, the total and the budget);
* ``index.html#7:1`` opens neuron 7:1's panel, ``index.html#7`` shows layer 7;
* served over http(s) the page links to ``live.html#7:1`` from a neuron's panel and
  to ``live.html#draw`` from its header, so ``live.html`` must be served beside
  ``index.html``; on ``file://`` those links are hidden.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..analysis.activations import dataset_labels
from ..analysis.examples import LayerExamples, load_examples
from ..analysis.run import AnalysisResult, load_analysis
from ..config import VisConfig
from ..data import Dataset
from ..errors import RunFolderError
from ..explanations.batch import LayerExplanation
from ..explanations.neuron import ABLATION_IMAGES, describe
from ..explanations.run import layer_pictures, read_explanations
from ..fileio import ensure_dir
from ..gallery import DIVERSE, TILES, VARIANTS, label, read_gallery
from ..layout import ATLAS, EXAMPLES, VISUALIZATIONS
from ..nn.mlp import MLP, model_sha256
from ..runs import locks_run
from ..stages import Log, Progress
from . import sprites

SIZE_BUDGET = 50 * 2**20  # bytes: the paper's network must stay well under this
# what the site shows and how: an atlas built by another version is rebuilt, never served
# stale (2: readable tiles, the diverse strip, the paper's picture as a variant; 3: every
# value escaped through common.js: an older page wrote class names as HTML; 4: every
# neuron's explanation and the trust of its picture)
ATLAS_VERSION = 4
DIGITS_PER_SHEET = sprites.COLS * sprites.COLS  # dataset images per digits sheet
STATIC = Path(__file__).with_name("static")
PAGE_FILES = ("index.html", "common.js", "atlas.js", "atlas.css")


@dataclass
class _Inputs:
    """Everything the site is made from."""

    run_name: str
    model: MLP
    data: Dataset
    analysis: AnalysisResult
    vis: dict[str, np.ndarray]  # the tiles: the readable preset's, one row per neuron
    vis_config: VisConfig
    examples: dict[int, LayerExamples]
    variants: list[dict[str, np.ndarray]]  # the paper's (the analysis's), then VARIANTS
    variant_configs: list[VisConfig]
    diverse: dict[str, np.ndarray]  # the diverse preset's K pictures per neuron
    exact: dict[str, np.ndarray] | None  # layer 1's exact optimum (gallery.EXACT_FIELDS)
    labels: np.ndarray  # class of every dataset image, train then test
    explanations: dict[int, LayerExplanation]  # every neuron explained, judging the tiles


@locks_run("build the atlas of")
def write_atlas(run_dir: str | Path, model: MLP, data: Dataset, *, k: int,
                progress: Progress | None = None, log: Log = lambda m: None) -> Path:
    """Write ``RUN/atlas/`` from the run's artefacts (the analysis with ``k`` examples per
    neuron, the gallery) and return its path; an artefact that is missing or stale is a
    :class:`RunFolderError` naming what makes it."""
    run_dir = Path(run_dir)
    inputs = _gather(run_dir, model, data, k)
    try:
        folder = _publish(run_dir, lambda tmp: _write_site(tmp, inputs, progress))
    except OSError as exc:  # a full disk, a quota: one line, the previous atlas kept
        raise RunFolderError(f"cannot write the atlas in {run_dir}: "
                             f"{exc.strerror or exc}") from None
    total = json.loads((folder / "manifest.json").read_text())["total_bytes"]
    if total > SIZE_BUDGET:
        log(f"warning: the atlas takes {total / 2**20:.1f} MiB, over its budget of "
            f"{SIZE_BUDGET / 2**20:.0f} MiB")
    return folder


# --- inputs ------------------------------------------------------------------------------
def _gather(run_dir: Path, model: MLP, data: Dataset, k: int) -> _Inputs:
    """The analysis, its arrays and the gallery, as kept in the run folder."""
    result = load_analysis(run_dir, model, data, k=k)
    with np.load(result.folder / VISUALIZATIONS) as z:
        paper = {name: z[name] for name in z.files}
    settings = json.loads((result.folder / "visualizations.json").read_text())["settings"]
    pictures = read_gallery(run_dir, model, paper["targets"], data)
    explained = read_explanations(run_dir, model, data,
                                  layer_pictures(paper["targets"], pictures.tiles["images"]))
    return _Inputs(run_dir.resolve().name, model, data, result, pictures.tiles, TILES,
                   load_examples(result.folder / EXAMPLES), [paper, *pictures.variants],
                   [VisConfig.from_dict(settings), *VARIANTS], pictures.diverse,
                   pictures.exact, dataset_labels(data), explained)


# --- publishing --------------------------------------------------------------------------
def _publish(run_dir: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a fresh folder beside ``RUN/atlas`` and rename it over the
    atlas once it succeeded (unless it is identical to the atlas there, which is then
    left untouched); on failure the old atlas stays and the folder goes."""
    final = run_dir / ATLAS
    if not final.exists():  # killed between its two renames: the previous atlas comes back
        for old in sorted(run_dir.glob(".atlas.old-*")):
            old.rename(final)
            break
    for stale in run_dir.glob(".atlas.*-*"):  # left by a build that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".atlas.tmp-", dir=ensure_dir(run_dir)))
    try:
        tmp.chmod(0o755)
        write(tmp)
        if final.is_dir() and _same_tree(tmp, final):  # nothing changed: keep every file
            shutil.rmtree(tmp)
            return final
        os.sync()
        if final.exists():
            old = tmp.with_name(tmp.name.replace(".atlas.tmp-", ".atlas.old-"))
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _same_tree(a: Path, b: Path) -> bool:
    """Whether two folders hold the same files with the same bytes."""
    files = lambda root: sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())  # noqa: E731
    names = files(a)
    return names == files(b) and all((a / n).read_bytes() == (b / n).read_bytes()
                                     for n in names)


def _write_site(folder: Path, inp: _Inputs, progress: Progress | None) -> None:
    """Every file of the site, ``manifest.json`` last."""
    for name in PAGE_FILES:
        shutil.copyfile(STATIC / name, folder / name)
    (folder / "data").mkdir()
    (folder / "sprites").mkdir()
    digits = np.unique(np.concatenate([ex.index.ravel() for ex in inp.examples.values()]))
    n_layers = inp.model.n_layers
    sheets = -(-len(digits) // DIGITS_PER_SHEET)
    layers = []
    for l in range(1, n_layers + 1):
        layers.append(_write_layer(folder, l, inp, digits))
        if progress:
            progress("atlas pages", l, n_layers + sheets)
    for s in range(sheets):
        _write_digit_sheet(folder, s, inp, digits)
        if progress:
            progress("atlas pages", n_layers + s + 1, n_layers + sheets)
    _write_js(folder / "data" / "meta.js", "ATLAS.setMeta", _meta(inp, layers, len(digits)))
    _write_manifest(folder, model_sha256(inp.model), inp.data.identity)


def _write_js(path: Path, call: str, doc: dict) -> None:
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
    path.write_text(f"{call}({text});\n", encoding="utf-8")


def _write_png(folder: Path, name: str, tiles: np.ndarray, shape) -> str:
    """Write ``sprites/<name>.png`` from (n, H*W*C) tiles; return its site path."""
    rel = f"sprites/{name}.png"
    (folder / rel).write_bytes(sprites.png(sprites.sheet(tiles, shape)))
    return rel


def atlas_manifest(atlas_dir: Path) -> dict:
    """An existing atlas's manifest: the model and dataset it was built for ({}: none)."""
    try:
        doc = json.loads((Path(atlas_dir) / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def atlas_is_current(atlas_dir: Path, model: MLP, data: Dataset | None) -> bool:
    """Whether ``atlas_dir`` holds an atlas of this version, of ``model`` and (when
    given) of ``data``."""
    built = atlas_manifest(atlas_dir)
    if built.get("version") != ATLAS_VERSION or built.get("model_sha256") != model_sha256(model):
        return False
    return data is None or (built.get("dataset") or {}).get("sha256") == data.identity["sha256"]


def atlas_model_sha256(atlas_dir: Path) -> str | None:
    """The hash of the model an existing atlas was built for (None: no usable atlas)."""
    return atlas_manifest(atlas_dir).get("model_sha256")


def _write_manifest(folder: Path, sha: str, dataset: dict[str, str]) -> None:
    files = {p.relative_to(folder).as_posix(): p.stat().st_size
             for p in sorted(folder.rglob("*")) if p.is_file()}
    doc = {"version": ATLAS_VERSION, "model_sha256": sha, "dataset": dataset, "files": files,
           "total_bytes": sum(files.values()), "budget_bytes": SIZE_BUDGET}
    (folder / "manifest.json").write_text(json.dumps(doc, indent=1) + "\n")


# --- one layer ---------------------------------------------------------------------------
def _layer_rows(inp: _Inputs, l: int) -> np.ndarray:
    """Rows of the visualisation arrays that hold layer l, in neuron order."""
    rows = np.flatnonzero(inp.vis["targets"][:, 0] == l)
    return rows[np.argsort(inp.vis["targets"][rows, 1], kind="stable")]


def _write_layer(folder: Path, l: int, inp: _Inputs, digits: np.ndarray) -> dict:
    """Layer l's sprites and ``data/layer{l}.js``; returns the layer's entry of the meta."""
    rows = _layer_rows(inp, l)
    ex = inp.examples[l]
    shape = inp.model.input_shape
    unmoved = _unmoved(inp, l, rows)
    tiles = sprites.contrast(inp.vis["images"][rows])
    tiles[unmoved] = 0  # not a picture of the regularisers alone: blank, and marked
    K = inp.diverse["diverse_images"].shape[1]
    files = {
        "vis": _write_png(folder, f"L{l}", tiles, shape),
        "diverse": [_write_png(folder, f"L{l}-d{j + 1}",
                               sprites.contrast(inp.diverse["diverse_images"][rows, j]), shape)
                    for j in range(K)],
        "variants": [_write_png(folder, f"L{l}-v{j + 1}", sprites.contrast(v["images"][rows]),
                                shape) for j, v in enumerate(inp.variants)],
        "mean_topk": _write_png(folder, f"L{l}-mean-top", sprites.contrast(ex.mean_topk), shape),
        "mean_p99": _write_png(folder, f"L{l}-mean-p99", sprites.contrast(ex.mean_p99), shape),
    }
    if l == 1 and inp.model.n_layers > 1:
        files["weights"] = _write_png(folder, "L1-weights",
                                      *sprites.diverging(inp.model.weights[0], shape))
        files["exact"] = _write_png(folder, "L1-exact", inp.exact["exact_images"], shape)
        # the overview's tiles: the signed weight image beside the picture, so that two
        # layer-1 neurons whose pictures look alike can be told apart by their weights
        files["overview"] = _write_png(folder, "L1-overview",
                                       *sprites.side_by_side(inp.model.weights[0], tiles, shape))
    explained = inp.explanations[l]
    files["filter"] = files.get("weights") or _write_png(
        folder, f"L{l}-filter", *sprites.diverging(explained.filter, shape))
    doc = _layer_doc(l, rows, inp, digits)
    doc["unmoved"] = unmoved.tolist()
    doc["explain"] = _explain_doc(l, explained, inp.model.n_layers)
    _write_js(folder / "data" / f"layer{l}.js", "ATLAS.addLayer", doc)
    ratio = inp.vis["ratio"][rows]
    return {"layer": l, "size": len(rows), "output": l == inp.model.n_layers,
            "sprites": files, "data": f"data/layer{l}.js",
            "dead": sum(s == "dead" for s in doc["status"]),
            "clusters": len(doc["clusters"]),
            "ratio_median": _num(np.median(ratio)) if np.isfinite(np.median(ratio)) else None}


def _unmoved(inp: _Inputs, l: int, rows: np.ndarray) -> np.ndarray:
    """Hidden neurons that no method the atlas shows moves above f(0) (ReLU: 0)."""
    if l == inp.model.n_layers:
        return np.zeros(len(rows), bool)
    floor = inp.model.activation(l).floor
    acts = [inp.vis["activation"][rows], inp.diverse["diverse_activation"][rows].max(axis=1)]
    acts += [v["activation"][rows] for v in inp.variants]
    return np.all([a <= floor for a in acts], axis=0)


def _layer_doc(l: int, rows: np.ndarray, inp: _Inputs, digits: np.ndarray) -> dict:
    """Per-neuron numbers of layer l as columns (lists indexed by neuron)."""
    v, ex = inp.vis, inp.examples[l]
    exact = {}
    if l == 1 and inp.exact is not None:  # how far the visualisation is from the optimum
        exact = {"exact_activation": _num(inp.exact["exact_activation"]),
                 "exact_reached": _num(inp.exact["exact_reached"])}
    groups = inp.analysis.clusters["layers"].get(str(l), [])
    rising = inp.analysis.clusters["co_risers"].get(str(l), {"count": [], "top": []})
    return {
        "layer": l,
        "activation": _num(v["activation"][rows]),
        "next_index": v["next_index"][rows].tolist(),
        "next_activation": _num(v["next_activation"][rows]),
        "ratio": _num(v["ratio"][rows]),
        "top3": v["top3_classes"][rows].tolist(),
        "top3_probs": _num(v["top3_probs"][rows]),
        "status": _status(inp.analysis.dead, l, len(rows)),
        "preferred": ex.preferred_class.tolist(),
        "purity": _num(ex.purity),
        "histogram": ex.histogram.tolist(),
        "examples": np.searchsorted(digits, ex.index).tolist(),
        "example_rows": ex.index.tolist(),
        "example_labels": inp.labels[ex.index].tolist(),
        "example_activation": _num(ex.activation),
        "p99_count": ex.count_p99.tolist(),
        "cluster": _cluster_ids(groups, len(rows)),
        "clusters": groups,
        "cluster_classes": inp.analysis.clusters["preferred_classes"].get(str(l), []),
        "co_risers": rising["count"],
        "co_risers_top": rising["top"],
        **exact,
        "variants": [{"activation": _num(var["activation"][rows]),
                      "ratio": _num(var["ratio"][rows]),
                      "top1": var["top3_classes"][rows, 0].tolist(),
                      "top1_prob": _num(var["top3_probs"][rows, 0])}
                     for var in inp.variants],
        "diverse_activation": _num(inp.diverse["diverse_activation"][rows]),
    }


def _explain_doc(l: int, e: LayerExplanation, n_layers: int) -> dict:
    """The panel's explanation columns of layer l (docs/explain.md names them)."""
    output = l == n_layers
    records = [{"layer": l, "classes": e.classes[i].tolist(),
                "incoming": [{"neuron": int(j)} for j in e.incoming_index[i]],
                "outputs": None if output else {"effect": e.effect[i]}}
               for i in range(len(e.images))]
    doc = {name: _num(getattr(e, name)) for name in (
        "incoming_contribution", "incoming_weight", "bias", "mean_pre_activation",
        "selectivity", "sparsity", "picture_activation", "reach", "two_choice",
        "class_agreement")}
    doc |= {"incoming": e.incoming_index.tolist(), "picture_class": e.picture_class.tolist(),
            "description": [describe(r) for r in records],
            "top_class": e.classes.argmax(1).tolist(), "top_classes": e.classes.sum(1).tolist()}
    if not output:
        doc |= {name: _num(getattr(e, name)) for name in ("effect", "ablation",
                                                           "accuracy_change")}
    return doc


def _status(dead: dict, l: int, n: int) -> list[str]:
    """"dead", "revivable" (silent on data, raised by optimisation) or "alive"; the output
    layer is not checked and is all "alive"."""
    status = ["alive"] * n
    d = dead["layers"].get(str(l))
    if d:
        for i in d["revivable"]:
            status[i] = "revivable"
        for i in d["dead"]:
            status[i] = "dead"
    return status


def _cluster_ids(groups: list[list[int]], n: int) -> list[int]:
    """Each neuron's cluster (an index into ``groups``), -1 for none."""
    ids = [-1] * n
    for c, members in enumerate(groups):
        for i in members:
            ids[i] = c
    return ids


def _num(a) -> float | list | None:
    """Numbers for the page: 5 significant digits (nested lists for arrays), None for inf."""
    arr = np.asarray(a, np.float64)
    if arr.ndim:
        return [_num(x) for x in arr]
    return float(f"{arr:.5g}") if np.isfinite(arr) else None


# --- dataset images and the meta -----------------------------------------------------------
def _write_digit_sheet(folder: Path, s: int, inp: _Inputs, digits: np.ndarray) -> None:
    """``sprites/digits-{s}.png``: dataset images ``digits[s*1024:(s+1)*1024]``, as they are."""
    rows = digits[s * DIGITS_PER_SHEET:(s + 1) * DIGITS_PER_SHEET]
    n_train = len(inp.data.train_x)
    images = np.empty((len(rows), inp.data.n_inputs), np.float32)
    train = rows < n_train
    images[train] = inp.data.train_x[rows[train]]
    images[~train] = inp.data.test_x[rows[~train] - n_train]
    _write_png(folder, f"digits-{s}", images, inp.model.input_shape)


def _meta(inp: _Inputs, layers: list[dict], n_digits: int) -> dict:
    accuracy = inp.model.metadata.get("test_accuracy")
    return {
        "run": inp.run_name,
        "sizes": list(inp.model.sizes),
        "test_accuracy": float(accuracy) if accuracy else None,
        "k": int(inp.analysis.examples["k"]),
        "n_train": len(inp.data.train_x),
        "tile": list(inp.model.input_shape[:2]),  # [height, width] in pixels
        "channels": inp.model.input_shape[2],
        "class_names": list(inp.model.class_names),
        "dataset": inp.data.name,
        "activations": sorted({a.spec for a in inp.model.activation_fns}),
        "cols": sprites.COLS,
        "vis_label": label(inp.vis_config),
        "diverse_label": label(DIVERSE),
        "variant_labels": [label(c) for c in inp.variant_configs],
        "digits": {"count": n_digits, "per_sheet": DIGITS_PER_SHEET,
                   "sheets": [f"sprites/digits-{s}.png"
                              for s in range(-(-n_digits // DIGITS_PER_SHEET))]},
        "layers": layers,
        "explain_k": int(inp.explanations[1].images.shape[1]),
        "ablation_images": min(ABLATION_IMAGES, len(inp.data.test_x)),
        "budget_bytes": SIZE_BUDGET,
    }
