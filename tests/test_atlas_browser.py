"""The static atlas in a real browser (headless chromium), opened from file://."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from neuronatlas.make_atlas import build_atlas

from .conftest import TINY_SIZES


@pytest.fixture(scope="module")
def site(tiny_run, tmp_path_factory, mnist):
    """The tiny run's atlas, built in a copy of the run; the URL of its index.html."""
    run = tmp_path_factory.mktemp("atlas-browser") / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("atlas", "atlas-cache"))
    folder = build_atlas(run, data=mnist)
    return folder.resolve().as_uri() + "/index.html", run


@pytest.fixture
def expect(browser):
    """Playwright's assertions (imported once the browser fixture found playwright)."""
    from playwright.sync_api import expect as _expect

    return _expect


def layer_doc(run, l):
    text = (run / f"atlas/data/layer{l}.js").read_text()
    return json.loads(text[len("ATLAS.addLayer(") : -3])


def vis_numbers(run, l, i):
    """The tile's numbers: the readable preset's, as the build cached them."""
    from neuronatlas.gallery import TILES
    from neuronatlas.vis.store import config_id

    with np.load(run / "atlas-cache" / f"{config_id(TILES)}.npz") as z:
        row = np.flatnonzero((z["targets"][:, 0] == l) & (z["targets"][:, 1] == i))[0]
        return float(z["activation"][row]), float(z["ratio"][row])


def test_every_layer_shows_one_tile_per_neuron(site, page, expect):
    url, _ = site
    page.goto(url)
    for l, n in enumerate(TINY_SIZES[1:], start=1):
        page.click(f"#layers button[data-layer='{l}']")
        expect(page.locator("#layer-info")).to_contain_text(f"layer {l}")
        expect(page.locator("#grid .tile")).to_have_count(n)
        expect(page.locator("#count")).to_have_text(f"{n} of {n} shown")
    expect(page.locator("#draw")).to_be_hidden()  # the live links need the server


def test_search_opens_the_panel_with_its_numbers(site, page, expect):
    url, run = site
    page.goto(url)
    page.fill("#search", "3:5")
    page.press("#search", "Enter")
    panel = page.locator("#panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".nid")).to_have_text("3:5")
    activation, ratio = vis_numbers(run, 3, 5)
    act = panel.locator("[data-field=activation]")
    assert float(act.get_attribute("data-value")) == pytest.approx(activation, rel=1e-4)
    assert float(act.inner_text()) == pytest.approx(activation, rel=1e-3)
    shown = panel.locator("[data-field=ratio]").inner_text()
    assert float(shown) == pytest.approx(ratio, rel=1e-3)
    expect(panel.locator(".top3 .out")).to_have_count(3)
    expect(panel.locator(".digits .digit")).to_have_count(8)  # k = 8 in the tiny run
    expect(panel.locator(".live")).to_have_count(0)
    assert page.evaluate("location.hash") == "#3:5"
    # the diverse strip, then the paper's picture first among the variants
    expect(panel.locator("h3", has_text="4 diverse pictures")).to_be_visible()
    expect(panel.locator("h3", has_text="The paper's method")).to_be_visible()
    variants = panel.locator("h3:has-text(\"The paper's method\") + .row figcaption small")
    expect(variants.first).to_contain_text("paper's method, TV 0.064")


def test_hash_opens_a_neuron_and_keys_move_between_neurons_and_layers(site, page, expect):
    url, _ = site
    page.goto(url + "#2:3")
    nid = page.locator("#panel .nid")
    expect(nid).to_have_text("2:3")
    expect(page.locator("#grid .tile.selected")).to_have_attribute("data-i", "3")
    page.keyboard.press("ArrowRight")
    expect(nid).to_have_text("2:4")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(nid).to_have_text("2:2")
    page.keyboard.press("ArrowDown")
    expect(nid).to_have_text("3:2")
    expect(page.locator("#grid .tile")).to_have_count(TINY_SIZES[3])
    page.keyboard.press("ArrowUp")
    expect(nid).to_have_text("2:2")
    page.keyboard.press("Escape")
    expect(page.locator("#panel")).to_be_hidden()


def test_cluster_members_link_to_their_panels(site, page, expect):
    url, run = site
    layer, doc = next((l, d) for l in range(1, len(TINY_SIZES) - 1)
                      if (d := layer_doc(run, l))["clusters"])
    first, second = doc["clusters"][0][:2]
    page.goto(f"{url}#{layer}:{first}")
    page.locator(f"#panel .members a[href='#{layer}:{second}']").first.click()
    expect(page.locator("#panel .nid")).to_have_text(f"{layer}:{second}")


def test_filters_and_sorting_change_the_visible_tiles(site, page, expect):
    url, run = site
    doc = layer_doc(run, 1)
    page.goto(url + "#1")
    expect(page.locator("#grid .tile")).to_have_count(TINY_SIZES[1])
    cls = max(range(10), key=doc["preferred"].count)
    page.select_option("#f-class", str(cls))
    visible = page.locator("#grid .tile:not([hidden])")
    expect(visible).to_have_count(doc["preferred"].count(cls))
    page.select_option("#f-class", "all")
    page.select_option("#f-status", "dead")
    expect(visible).to_have_count(doc["status"].count("dead"))
    page.select_option("#f-status", "all")
    page.select_option("#sort", "ratio")
    best = max(range(len(doc["ratio"])), key=lambda i: (doc["ratio"][i] is None,
                                                        doc["ratio"][i] or 0, -i))
    expect(visible.first).to_have_attribute("data-i", str(best))


def test_over_http_the_panel_links_to_the_live_visualiser(site, page, expect):
    folder = site[1] / "atlas"
    page.route("http://atlas.test/**", lambda route: route.fulfill(
        path=folder / route.request.url.split("atlas.test/", 1)[1].split("#")[0]))
    page.goto("http://atlas.test/index.html#3:5")
    expect(page.locator("#panel .live")).to_have_attribute("href", "live.html#3:5")
    expect(page.locator("#draw")).to_be_visible()
    expect(page.locator("#draw")).to_have_attribute("href", "live.html#draw")


def test_a_malformed_hash_or_search_does_not_break_the_page(site, page, expect):
    url, _ = site
    page.goto(url + "#50%")  # not a valid %-escape: decodeURIComponent would throw
    expect(page.locator("#grid .tile").first).to_be_visible()
    page.fill("#search", "50%")
    page.press("#search", "Enter")
    expect(page.locator("#grid .tile").first).to_be_visible()


#: class names that are markup: shown as text, they inject nothing and run nothing
HTML_NAMES = tuple(f'<img src=x onerror="window.__xss={k}"><b id="injected{k}">{k}</b>&amp;'
                   for k in range(TINY_SIZES[-1]))


@pytest.fixture(scope="module")
def html_site(site, tmp_path_factory, mnist):
    """The same atlas for a model whose class names are HTML (the atlas cache reused)."""
    import neuronatlas as na

    run = tmp_path_factory.mktemp("atlas-html") / "run"
    shutil.copytree(site[1], run, ignore=shutil.ignore_patterns("atlas"))
    model = na.MLP.load(run / "model.safetensors", class_names=HTML_NAMES)
    folder = build_atlas(run, model=model, data=mnist)
    return folder.resolve().as_uri() + "/index.html"


def _injected(page) -> dict:
    return page.evaluate("""() => ({
        img: document.querySelectorAll("img").length,
        bold: document.querySelectorAll("[id^=injected]").length,
        xss: window.__xss === undefined ? null : window.__xss})""")


def test_class_names_are_text_never_markup(html_site, page, expect):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(html_site + "#4:3")
    panel = page.locator("#panel")
    expect(panel.locator(".nid")).to_have_text("4:3")
    expect(panel.locator(".muted").first).to_contain_text(f"class 3 {HTML_NAMES[3]}")
    expect(panel.locator(".top3 .out")).to_have_count(3)
    for text in panel.locator(".top3 .out b").all_inner_texts():
        assert text.split(" ", 1)[1] in HTML_NAMES  # "k <name>", literally
    options = page.locator("#f-class option").all_inner_texts()
    assert options[1:] == [f"{k} {n}" for k, n in enumerate(HTML_NAMES)]
    tile = page.locator("#grid .tile").first.get_attribute("title")
    assert "<img src=x" in tile and "&#60;" not in tile  # a title is text, not escaped twice
    page.goto(html_site + "#2:1")  # a hidden layer's panel: classes in several places
    expect(page.locator("#panel .nid")).to_have_text("2:1")
    assert "<img src=x" in page.locator("#panel").inner_text()
    assert _injected(page) == {"img": 0, "bold": 0, "xss": None} and not dialogs


def test_the_pages_declare_one_global_each(site, page, expect):
    url, _ = site
    page.goto(url + "#1")
    expect(page.locator("#grid .tile").first).to_be_visible()
    found = page.evaluate("""() => ["$", "fmt", "cname", "esc", "state", "parseTarget", "html"]
        .filter((n) => { try { return eval(`typeof ${n}`) !== "undefined"; } catch (e) {
          return true; } })""")
    assert found == []
    assert page.evaluate("[typeof ATLAS, typeof NA]") == ["object", "object"]


def test_the_built_atlas_carries_the_shared_script(site):
    """index.html loads common.js first: the build must copy it beside atlas.js."""
    folder = site[1] / "atlas"
    page = (folder / "index.html").read_text()
    assert page.index("common.js") < page.index("atlas.js")
    assert (folder / "common.js").is_file()


def test_the_panel_explains_the_neuron_and_tiles_warn_where_the_picture_disagrees(site, page,
                                                                                  expect):
    url, run = site
    doc = layer_doc(run, 2)
    e = doc["explain"]
    page.goto(url + "#2:5")
    panel = page.locator("#panel")
    expect(panel.locator("[data-field=description]")).to_have_text(e["description"][5])
    expect(panel.locator(".row.sources figure.source")).to_have_count(8)  # the layer-1 tiles
    first = panel.locator(".row.sources figure.source").first
    expect(first.locator("a.nlink")).to_have_text(f"1:{e['incoming'][5][0]}")
    shown = float(first.locator("[data-field=contribution]").get_attribute("data-value"))
    assert shown == pytest.approx(e["incoming_contribution"][5][0])
    expect(panel.locator("[data-field=effect] .sbar")).to_have_count(10)
    expect(panel.locator("[data-field=ablation] .sbar")).to_have_count(10)
    agree = panel.locator("[data-field=class_agreement]")
    assert float(agree.get_attribute("data-value")) == e["class_agreement"][5]
    # a tile carries the warning exactly where the picture is read as another class
    want = [i for i, a in enumerate(e["class_agreement"])
            if a == 0 and doc["status"][i] != "dead" and not doc["unmoved"][i]]
    warned = page.locator("#grid .tile:has(.warn)")
    expect(warned).to_have_count(len(want))
    assert sorted(int(t.get_attribute("data-i")) for t in warned.all()) == want
    page.keyboard.press("Escape")
    page.select_option("#f-picture", "disagrees")
    expect(page.locator("#grid .tile:not([hidden])")).to_have_count(len(want))
    page.select_option("#f-picture", "all")
    page.select_option("#f-selectivity", "0.8")
    expect(page.locator("#grid .tile:not([hidden])")).to_have_count(
        sum(s >= 0.8 for s in e["selectivity"]))
    page.select_option("#f-selectivity", "0")
    page.select_option("#sort", "selectivity")
    best = max(range(len(e["selectivity"])), key=lambda i: (e["selectivity"][i], -i))
    expect(page.locator("#grid .tile").first).to_have_attribute("data-i", str(best))


def test_layer_one_sources_are_pixels_and_its_filter_is_the_weight_image(site, page, expect):
    url, run = site
    e = layer_doc(run, 1)["explain"]
    page.goto(url + "#1:3")
    panel = page.locator("#panel")
    expect(panel.locator("ol.pixels li")).to_have_count(8)
    p = e["incoming"][3][0]
    expect(panel.locator("ol.pixels li").first).to_contain_text(
        f"pixel {p} (row {p // 28}, column {p % 28})")
    expect(panel.locator("figcaption", has_text="input filter: its weight row")).to_be_visible()
