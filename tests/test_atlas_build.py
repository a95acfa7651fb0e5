"""The static atlas: files, numbers, sprites, size budget, caching, atomic publishing, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neuronatlas import make_atlas
from neuronatlas.atlas import SIZE_BUDGET
from neuronatlas.atlas import build as atlas_build
from neuronatlas.atlas.sprites import COLS, contrast
from neuronatlas.make_atlas import build_atlas
from neuronatlas.shapes import MNIST_SIDE as SIDE

from .conftest import TINY_SIZES
from .test_cli import assert_user_error, run_cli

LAYERS = range(1, len(TINY_SIZES))


def read_js(path: Path, call: str) -> dict:
    """The JSON argument of ``call(...)`` in a data script."""
    text = path.read_text()
    assert text.startswith(f"{call}(") and text.endswith(");\n")
    return json.loads(text[len(call) + 1 : -3])


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def atlas_run(tiny_run, tmp_path_factory, mnist):
    """A copy of the tiny run (the session's own stays untouched) with its atlas built."""
    run = tmp_path_factory.mktemp("atlas") / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("atlas", "atlas-cache"))
    build_atlas(run, data=mnist)
    return run


def _cached(run, config) -> dict:
    from neuronatlas.vis.store import config_id

    with np.load(run / "atlas-cache" / f"{config_id(config)}.npz") as z:
        return {name: z[name] for name in z.files}


@pytest.fixture(scope="module")
def vis(atlas_run):
    """The tiles: the readable preset's pictures (as cached by the build)."""
    from neuronatlas.gallery import TILES

    return _cached(atlas_run, TILES)


@pytest.fixture(scope="module")
def paper_vis(atlas_run):
    with np.load(atlas_run / "analysis/visualizations.npz") as z:
        return {name: z[name] for name in z.files}


def test_tiles_are_the_readable_preset_and_the_paper_is_the_first_variant(atlas_run, vis,
                                                                          paper_vis):
    import neuronatlas as na

    model = na.MLP.load(atlas_run / "model.safetensors")
    picks = [tuple(int(v) for v in vis["targets"][r]) for r in (0, 60, 80, 97)]
    fresh = na.visualize(model, picks, na.VisConfig.preset("readable"))
    for i, r in enumerate((0, 60, 80, 97)):
        np.testing.assert_allclose(vis["images"][r], fresh.images[i], atol=1e-5)
    meta = read_js(atlas_run / "atlas/data/meta.js", "ATLAS.setMeta")
    assert meta["vis_label"] == "readable preset"
    assert meta["variant_labels"][0].startswith("paper's method, TV 0.064")
    doc = read_js(atlas_run / "atlas/data/layer3.js", "ATLAS.addLayer")
    rows = layer_rows(paper_vis, 3)
    np.testing.assert_allclose(doc["variants"][0]["activation"], paper_vis["activation"][rows],
                               rtol=1e-4)
    # the diverse strip: K pictures per neuron, each with its activation
    diverse = read_js(atlas_run / "atlas/data/meta.js", "ATLAS.setMeta")["layers"][2]
    assert len(diverse["sprites"]["diverse"]) == 4
    assert np.array(doc["diverse_activation"]).shape == (TINY_SIZES[3], 4)


def test_neurons_no_method_moves_are_marked_and_blank(atlas_run, vis):
    doc = read_js(atlas_run / "atlas/data/layer1.js", "ATLAS.addLayer")
    assert len(doc["unmoved"]) == TINY_SIZES[1]
    for i, unmoved in enumerate(doc["unmoved"]):
        if unmoved:
            assert doc["activation"][i] <= 0 and doc["status"][i] == "dead"
    out = read_js(atlas_run / "atlas/data/layer4.js", "ATLAS.addLayer")
    assert not any(out["unmoved"])  # output neurons are never marked


def test_unmoved_means_every_method_left_the_neuron_at_its_floor():
    from types import SimpleNamespace

    import neuronatlas as na

    model = na.MLP.init((784, 3, 2), rng=np.random.default_rng(0))
    act = lambda *v: {"activation": np.array(v, float)}  # noqa: E731
    inp = SimpleNamespace(model=model, vis=act(0.0, 0.0, 2.0),
                          diverse={"diverse_activation": np.array([[0, 0], [0.1, 0], [3, 1.0]])},
                          variants=[act(0.0, 0.0, 0.0), act(0.0, 0.0, 1.0)])
    rows = np.arange(3)
    # neuron 0: nothing moved it; 1: one of the diverse pictures did; 2: all did
    assert atlas_build._unmoved(inp, 1, rows).tolist() == [True, False, False]
    assert atlas_build._unmoved(inp, 2, rows[:2]).tolist() == [False, False]  # the output


def layer_rows(vis, l):
    rows = np.flatnonzero(vis["targets"][:, 0] == l)
    return rows[np.argsort(vis["targets"][rows, 1])]


def test_site_has_every_file(atlas_run):
    site = atlas_run / "atlas"
    for name in ("index.html", "common.js", "atlas.js", "atlas.css", "data/meta.js",
                 "manifest.json",
                 "sprites/L1-weights.png", "sprites/digits-0.png"):
        assert (site / name).is_file(), name
    for l in LAYERS:
        for name in (f"data/layer{l}.js", f"sprites/L{l}.png", f"sprites/L{l}-v1.png",
                     f"sprites/L{l}-mean-top.png", f"sprites/L{l}-mean-p99.png"):
            assert (site / name).is_file(), name
    assert not list(atlas_run.glob(".atlas.*"))  # no temporary folder left behind
    meta = read_js(site / "data/meta.js", "ATLAS.setMeta")
    assert meta["sizes"] == list(TINY_SIZES) and meta["k"] == 8
    assert [m["size"] for m in meta["layers"]] == list(TINY_SIZES[1:])
    assert [m["output"] for m in meta["layers"]] == [False, False, False, True]


@pytest.mark.parametrize("l", LAYERS)
def test_sprite_sheet_holds_every_tile(atlas_run, vis, l):
    n = TINY_SIZES[l]
    with Image.open(atlas_run / f"atlas/sprites/L{l}.png") as im:
        assert im.size == (COLS * SIDE, -(-n // COLS) * SIDE) and im.mode == "L"
        sheet = np.asarray(im, np.float32) / 255
    expected = contrast(vis["images"][layer_rows(vis, l)])
    for i in (0, n // 2, n - 1):
        r, c = divmod(i, COLS)
        tile = sheet[r * SIDE : (r + 1) * SIDE, c * SIDE : (c + 1) * SIDE]
        np.testing.assert_allclose(tile.ravel(), expected[i], atol=0.5 / 255 + 1e-6)
        assert expected[i].max() in (0.0, 1.0)  # scaled to its own maximum
    with Image.open(atlas_run / "atlas/sprites/L1-weights.png") as im:
        assert im.mode == "RGB" and im.size == (COLS * SIDE, -(-TINY_SIZES[1] // COLS) * SIDE)


@pytest.mark.parametrize("l", LAYERS)
def test_layer_data_has_one_record_per_neuron_with_the_analysis_numbers(atlas_run, vis, l):
    from neuronatlas.analysis import load_examples

    doc = read_js(atlas_run / f"atlas/data/layer{l}.js", "ATLAS.addLayer")
    n = TINY_SIZES[l]
    rows = layer_rows(vis, l)
    for key in ("activation", "ratio", "next_index", "top3", "status", "preferred", "histogram",
                "examples", "cluster"):
        assert len(doc[key]) == n, key
    np.testing.assert_allclose(doc["activation"], vis["activation"][rows], rtol=1e-4)
    ratio = vis["ratio"][rows]
    assert [r is None for r in doc["ratio"]] == list(~np.isfinite(ratio))
    finite = np.isfinite(ratio)
    np.testing.assert_allclose(np.array(doc["ratio"], float)[finite], ratio[finite], rtol=1e-4)
    assert doc["next_index"] == vis["next_index"][rows].tolist()
    assert doc["top3"] == vis["top3_classes"][rows].tolist()
    ex = load_examples(atlas_run / "analysis/examples.npz")[l]
    assert doc["example_rows"] == ex.index.tolist()
    assert doc["preferred"] == ex.preferred_class.tolist()
    dead = json.loads((atlas_run / "analysis/dead.json").read_text())["layers"].get(str(l))
    assert [i for i, s in enumerate(doc["status"]) if s == "dead"] == (dead["dead"] if dead else [])
    clusters = json.loads((atlas_run / "analysis/clusters.json").read_text())
    for c, members in enumerate(clusters["layers"].get(str(l), [])):
        assert all(doc["cluster"][i] == c for i in members)
    assert len(doc["variants"]) == 4 and all(len(v["ratio"]) == n for v in doc["variants"])
    if l == 1:  # the exact maximum over the image box, and how close the picture came to it
        assert len(doc["exact_activation"]) == n
        assert all(0 <= r <= 1 + 1e-6 for r in doc["exact_reached"])
        assert (atlas_run / "atlas/sprites/L1-exact.png").is_file()
    else:
        assert "exact_reached" not in doc


def test_size_budget_is_measured(atlas_run):
    site = atlas_run / "atlas"
    manifest = json.loads((site / "manifest.json").read_text())
    sizes = {k: len(v) for k, v in tree_bytes(site).items() if k != "manifest.json"}
    assert manifest["files"] == sizes
    assert manifest["total_bytes"] == sum(sizes.values()) < SIZE_BUDGET
    assert manifest["budget_bytes"] == SIZE_BUDGET


def _forbid_rendering(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("a cached visualisation was rendered again")

    monkeypatch.setattr("neuronatlas.gallery.visualize", boom)
    monkeypatch.setattr("neuronatlas.analysis.pipeline.visualize", boom)
    monkeypatch.setattr("neuronatlas.analysis.dead.visualize", boom)


def test_rebuild_reuses_caches_and_is_byte_identical(atlas_run, mnist, monkeypatch):
    before = tree_bytes(atlas_run / "atlas")
    _forbid_rendering(monkeypatch)
    build_atlas(atlas_run, data=mnist)
    assert tree_bytes(atlas_run / "atlas") == before


def test_the_site_is_written_from_the_artefacts_and_computes_nothing(atlas_run, mnist,
                                                                    monkeypatch, tmp_path):
    """write_atlas reads the analysis and the gallery; with every computing stage made to
    fail it writes the same site, and an artefact that is missing or another model's is
    one error naming what makes it, never computed behind the caller's back."""
    import neuronatlas as na
    from neuronatlas.analysis import pipeline
    from neuronatlas.atlas import write_atlas

    before = tree_bytes(atlas_run / "atlas")
    _forbid_rendering(monkeypatch)
    for stage in ("dead_stage", "examples_stage", "clusters_stage", "layers_stage"):
        monkeypatch.setattr(pipeline, stage, lambda *a, **k: pytest.fail("computed"))
    model = na.MLP.load(atlas_run / "model.safetensors")
    write_atlas(atlas_run, model, mnist, k=8)
    assert tree_bytes(atlas_run / "atlas") == before

    bare = tmp_path / "bare"
    shutil.copytree(atlas_run, bare, ignore=shutil.ignore_patterns("atlas", "atlas-cache"))
    with pytest.raises(na.RunFolderError, match="atlas-cache.*missing.*neuronatlas atlas"):
        write_atlas(bare, model, mnist, k=8)
    with pytest.raises(na.RunFolderError, match="no current examples stage.*k=9"):
        write_atlas(bare, model, mnist, k=9)
    other = model.copy()
    other.biases[0][0] += 1
    with pytest.raises(na.RunFolderError, match="no current dead stage"):
        write_atlas(atlas_run, other, mnist, k=8)
    assert not (bare / "atlas").exists()


def test_a_damaged_variant_cache_is_rendered_again(atlas_run, mnist):
    before = tree_bytes(atlas_run / "atlas")
    cache = sorted((atlas_run / "atlas-cache").glob("cfg-*.npz"))
    assert len(cache) == 5  # tiles, diverse strip, three variants
    cache[0].write_bytes(b"not an npz")
    build_atlas(atlas_run, data=mnist)
    assert np.load(cache[0])["images"].shape == (sum(TINY_SIZES[1:]), 784)
    assert tree_bytes(atlas_run / "atlas") == before


def test_an_interrupted_build_leaves_the_previous_atlas(atlas_run, mnist, monkeypatch):
    before = tree_bytes(atlas_run / "atlas")

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(atlas_build, "_write_digit_sheet", fail)  # after the layers are written
    with pytest.raises(RuntimeError, match="interrupted"):
        build_atlas(atlas_run, data=mnist)
    assert tree_bytes(atlas_run / "atlas") == before
    assert not list(atlas_run.glob(".atlas.*"))


def test_cli_builds_the_atlas(atlas_run):
    proc = run_cli("atlas", "--run", atlas_run)
    assert proc.returncode == 0, proc.stderr
    assert "atlas written to" in proc.stdout and "MiB" in proc.stdout


def test_cli_bad_input(tmp_path):
    assert_user_error(run_cli("atlas", "--run", tmp_path / "missing"), "does not exist")
    assert_user_error(run_cli("atlas", "--run", tmp_path), "no model")
    assert not (tmp_path / "atlas").exists()


def test_an_atlas_left_between_its_two_renames_comes_back(tmp_path):
    from neuronatlas.atlas.build import _publish

    old = tmp_path / ".atlas.old-x1"
    old.mkdir()
    (old / "index.html").write_text("the previous atlas")

    def fail(tmp):
        raise RuntimeError("the new build fails too")

    with pytest.raises(RuntimeError):
        _publish(tmp_path, fail)
    assert (tmp_path / "atlas" / "index.html").read_text() == "the previous atlas"
    assert not list(tmp_path.glob(".atlas.*"))


def test_a_full_disk_while_writing_pages_is_one_line_and_keeps_the_atlas(atlas_run, mnist,
                                                                           monkeypatch):
    import errno

    from neuronatlas import RunFolderError

    before = tree_bytes(atlas_run / "atlas")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atlas_build, "_write_digit_sheet", full)
    with pytest.raises(RunFolderError, match="cannot write the atlas .*No space left"):
        build_atlas(atlas_run, data=mnist)
    assert tree_bytes(atlas_run / "atlas") == before
    assert not list(atlas_run.glob(".atlas.*"))


def test_an_atlas_of_another_version_or_model_is_rebuilt_never_served_stale(atlas_run, mnist,
                                                                           monkeypatch):
    import neuronatlas as na

    model = na.MLP.load(atlas_run / "model.safetensors")
    site = atlas_run / "atlas"
    assert atlas_build.atlas_is_current(site, model, mnist)
    assert not make_atlas.ensure_atlas(atlas_run, model, mnist)  # current: left alone
    other = model.copy()
    other.biases[0][0] += 1
    assert not atlas_build.atlas_is_current(site, other, mnist)
    manifest = site / "manifest.json"
    doc = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**doc, "version": 1}))  # built by an older neuronatlas
    assert not atlas_build.atlas_is_current(site, model, mnist)
    assert make_atlas.ensure_atlas(atlas_run, model, mnist)
    assert json.loads(manifest.read_text())["version"] == atlas_build.ATLAS_VERSION


@pytest.mark.parametrize("l", LAYERS)
def test_every_neuron_is_explained_in_the_layer_data(atlas_run, mnist, l):
    from neuronatlas import MLP
    from neuronatlas.explanations import explain

    doc = read_js(atlas_run / f"atlas/data/layer{l}.js", "ATLAS.addLayer")
    e, n = doc["explain"], TINY_SIZES[l]
    output = l == len(TINY_SIZES) - 1
    for name in ("description", "selectivity", "sparsity", "reach", "two_choice",
                 "class_agreement", "picture_class", "incoming", "bias"):
        assert len(e[name]) == n, name
    assert ("effect" in e) != output and ("ablation" in e) != output
    meta = read_js(atlas_run / "atlas/data/meta.js", "ATLAS.setMeta")
    sheet = meta["layers"][l - 1]["sprites"]["filter"]
    assert (atlas_run / "atlas" / sheet).is_file()
    assert (sheet == "sprites/L1-weights.png") == (l == 1)
    # the batched numbers are the one-neuron record's (float64) to float32 rounding
    model = MLP.load(atlas_run / "model.safetensors")
    from neuronatlas.explanations.run import layer_pictures
    from neuronatlas.gallery import TILES
    from neuronatlas.vis.store import config_id

    with np.load(atlas_run / "atlas-cache" / f"{config_id(TILES)}.npz") as z:
        pictures = layer_pictures(z["targets"], z["images"])
    i = n // 2
    rec = explain(model, (l, i), mnist, picture=pictures[l][i])
    assert e["description"][i] == rec["description"]
    assert e["incoming"][i] == [s["neuron"] for s in rec["incoming"][:8]]
    np.testing.assert_allclose(e["incoming_contribution"][i],
                               [s["contribution"] for s in rec["incoming"][:8]], rtol=1e-4,
                               atol=1e-6)
    assert e["class_agreement"][i] == rec["trust"]["class_agreement"]
    assert e["reach"][i] == pytest.approx(rec["trust"]["reach"], rel=1e-4)
    if not output:
        np.testing.assert_allclose(e["effect"][i], rec["outputs"]["effect"], rtol=1e-3,
                                   atol=1e-5)
        np.testing.assert_allclose(e["ablation"][i], rec["outputs"]["ablation"], rtol=1e-3,
                                   atol=1e-5)
        assert e["accuracy_change"][i] == pytest.approx(rec["outputs"]["accuracy_change"])


def test_the_pictures_are_keyed_by_the_data_their_prototypes_came_from(atlas_run, mnist):
    """The readable tiles start from the dataset's prototypes: the gallery of one dataset is
    never read as another's."""
    from types import SimpleNamespace

    from neuronatlas import MLP
    from neuronatlas.errors import RunFolderError
    from neuronatlas.gallery import read_gallery

    model = MLP.load(atlas_run / "model.safetensors")
    with np.load(atlas_run / "analysis/visualizations.npz") as z:
        targets = z["targets"]
    assert read_gallery(atlas_run, model, targets, mnist).tiles["images"].shape[0] == len(targets)
    other = SimpleNamespace(identity={"sha256": "0" * 64})
    with pytest.raises(RunFolderError, match="another model"):
        read_gallery(atlas_run, model, targets, other)


def test_pictures_drawn_by_older_code_are_not_read(atlas_run, mnist, monkeypatch):
    """A gallery drawn before the code changed how it draws (PICTURES_VERSION) is stale:
    read_gallery refuses it, so the atlas draws again rather than show old pictures."""
    from neuronatlas import MLP, gallery
    from neuronatlas.errors import RunFolderError

    model = MLP.load(atlas_run / "model.safetensors")
    with np.load(atlas_run / "analysis/visualizations.npz") as z:
        targets = z["targets"]
    gallery.read_gallery(atlas_run, model, targets, mnist)
    monkeypatch.setattr(gallery, "PICTURES_VERSION", gallery.PICTURES_VERSION + 1)
    with pytest.raises(RunFolderError, match="another model"):
        gallery.read_gallery(atlas_run, model, targets, mnist)
