"""``neuronatlas serve`` for real: the CLI on a free port, headless chromium, raw HTTP."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

import neuronatlas as na

pytest.importorskip("starlette")


def start_serve(run, *flags) -> tuple[subprocess.Popen, str]:
    """``python -m neuronatlas serve`` on a free port; its URL from the first line."""
    proc = subprocess.Popen([sys.executable, "-m", "neuronatlas", "serve", "--run", str(run),
                             "--port", "0", *flags], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        pytest.fail(f"serve did not start: {line}{proc.stderr.read()}")
    return proc, line.split(" at ", 1)[1].split("/ ", 1)[0] + "/"


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def served_run(tiny_run, mnist, tmp_path_factory):
    """A copy of the tiny run with its real atlas, and a file beside the atlas that must
    never be served."""
    from neuronatlas.make_atlas import build_atlas

    run = tmp_path_factory.mktemp("serve") / "run"
    shutil.copytree(tiny_run, run)
    build_atlas(run, data=mnist)
    (run / "secret.txt").write_text("not for the web")
    return run


@pytest.fixture(scope="module")
def server(served_run):
    proc, url = start_serve(served_run)
    yield url
    stop(proc)


def test_moving_the_tv_slider_streams_a_new_image(server, page):
    page.goto(server + "live.html#3:1")
    page.wait_for_function("document.getElementById('vis-image').dataset.runs === '1'")
    before = page.eval_on_selector("#vis-image", "c => c.toDataURL()")
    sent = json.loads(page.get_attribute("#vis-image", "data-config"))
    readable = {k: v for k, v in na.VisConfig.preset("readable").to_dict().items() if k != "init"}
    assert sent["preset"] == "readable"  # the page starts on the readable preset
    assert {k: v for k, v in readable.items() if k in sent} == {
        k: v for k, v in sent.items() if k in readable}
    assert page.input_value("#preset") == "readable"
    page.focus("#s-tv")
    for _ in range(2):
        page.keyboard.press("ArrowRight")  # 0.3 -> 1
    page.wait_for_function("(JSON.parse(document.getElementById('vis-image').dataset.config"
                           " || '{}').tv === 1)")
    assert page.input_value("#preset") == "custom"
    assert page.eval_on_selector("#vis-image", "c => c.toDataURL()") != before
    # choosing the paper's preset sends the paper's settings
    page.select_option("#preset", "paper")
    page.wait_for_function("(JSON.parse(document.getElementById('vis-image').dataset.config"
                           " || '{}').optimizer === 'ascent')")
    sent = json.loads(page.get_attribute("#vis-image", "data-config"))
    paper = na.VisConfig().to_dict()
    assert sent["preset"] == "paper"
    assert {k: v for k, v in sent.items() if k in paper and k != "init"} == {
        k: v for k, v in paper.items() if k in sent and k != "init"}
    assert page.text_content("#vis-final").startswith("activation")
    assert page.get_attribute("#vis-atlas", "href") == "index.html#3:1"


def test_drawing_a_stroke_changes_the_probabilities(server, page):
    page.goto(server + "live.html#draw")
    page.wait_for_selector("#p9")
    box = page.locator("#pad").bounding_box()

    def stroke(points):
        page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
        page.mouse.up()

    stroke([(140, 40), (140, 240)])  # a "1"
    page.wait_for_function("document.getElementById('probs').dataset.probs !== ''")
    page.wait_for_timeout(300)  # the last queued query
    first = json.loads(page.get_attribute("#probs", "data-probs"))
    stroke([(60, 60), (220, 60), (100, 240)])  # ... a "7"
    page.wait_for_function(f"document.getElementById('probs').dataset.probs !== "
                           f"{json.dumps(json.dumps(first))}")
    second = json.loads(page.get_attribute("#probs", "data-probs"))
    assert len(second) == 10 and abs(sum(second) - 1) < 1e-3 and second != first
    link = page.locator("#top-neurons a").first.get_attribute("href")
    assert link.startswith("index.html#1:")
    # the neurons that built the answer, and the neurons like this: clickable atlas tiles
    ig = page.locator("#ig-neurons .neuron-row")
    ig.first.wait_for()
    assert ig.count() == 3  # the tiny run's hidden layers
    tile = page.locator("#ig-neurons a.ntile").first
    assert tile.get_attribute("href").startswith("index.html#1:")
    assert float(tile.get_attribute("data-value")) > 0
    assert "from a blank image" in page.text_content("#ig-info")
    assert page.locator("#like-neurons .neuron-row").count() == 4  # and the output layer
    style = page.locator("#like-neurons a.ntile .sprite").first.get_attribute("style")
    assert 'url("sprites/L1.png")' in style


def raw_request(url: str, method: str, path: str, body: bytes | None = None, headers=None):
    """One request with the path exactly as given (no client-side normalisation)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest(method, path, skip_accept_encoding=True)
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.endheaders()
    if body:
        conn.send(body)
    r = conn.getresponse()
    status, text = r.status, r.read().decode()
    conn.close()
    return status, text


@pytest.mark.parametrize("path", ["/../secret.txt", "/%2e%2e/secret.txt",
                                  "/atlas/../../secret.txt", "/..%2f..%2fetc%2fpasswd"])
def test_traversal_paths_are_refused(server, path):
    status, text = raw_request(server, "GET", path)
    assert status == 400 and "'..'" in json.loads(text)["error"]


def test_an_oversized_chunked_body_is_refused(server):
    chunk = b"x" * 50_000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2)) + b"0\r\n\r\n"
    status, text = raw_request(server, "POST", "/api/query", body,
                               {"Content-Type": "application/json",
                                "Transfer-Encoding": "chunked"})
    assert status == 413 and "over the limit" in json.loads(text)["error"]


def test_an_explicit_public_host_prints_a_warning(served_run):
    proc, url = start_serve(served_run, "--host", "0.0.0.0")
    try:
        assert url.startswith("http://0.0.0.0:")
    finally:
        stop(proc)
        err = proc.stderr.read()
    assert "warning: listening on 0.0.0.0" in err


def test_the_default_host_is_loopback_and_quiet(served_run):
    proc, url = start_serve(served_run)
    time.sleep(0.2)
    stop(proc)
    assert url.startswith("http://127.0.0.1:") and "warning" not in proc.stderr.read()


def test_every_loopback_address_keeps_the_host_check(served_run):
    """127.0.0.2 is loopback too: a page of another site (DNS rebinding) is still refused,
    and no public-address warning is printed."""
    proc, url = start_serve(served_run, "--host", "127.0.0.2")
    try:
        status, _ = raw_request(url, "GET", "/", headers={"Host": "evil.example"})
        ok, _ = raw_request(url, "GET", "/api/model")
    finally:
        stop(proc)
    assert status == 400 and ok == 200
    assert "warning" not in proc.stderr.read()


def test_serve_builds_the_atlas_of_its_model_first(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)  # analysed, but no atlas
    proc, url = start_serve(run)
    try:
        host = urlsplit(url)
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        conn.request("GET", "/")
        body = conn.getresponse().read().decode()
        assert "neuronatlas" in body and (run / "atlas" / "manifest.json").is_file()
        # a Host header of another site (DNS rebinding) is refused on a loopback server
        conn.request("GET", "/api/model", headers={"Host": "evil.example"})
        assert conn.getresponse().status == 400
    finally:
        stop(proc)


#: class names that are markup: shown as text, they inject nothing and run nothing
HTML_NAMES = tuple(f'<img src=x onerror="window.__xss={k}"><b id="injected{k}">{k}</b>&amp;'
                   for k in range(10))


@pytest.fixture(scope="module")
def html_server(tiny_run, tmp_path_factory):
    """The live page over the tiny model with HTML class names, under uvicorn in this
    process (a stand-in atlas folder)."""
    from neuronatlas.atlas.server import ServerLimits, create_app

    from .test_server import running

    atlas = tmp_path_factory.mktemp("html-serve") / "atlas"
    atlas.mkdir()
    (atlas / "index.html").write_text("<!doctype html><title>atlas</title>")
    model = na.MLP.load(tiny_run / "model.safetensors", class_names=HTML_NAMES)
    limits = ServerLimits()
    with running(create_app(tiny_run, model, atlas_dir=atlas, limits=limits), limits) as addr:
        yield f"http://{addr[0]}:{addr[1]}/"


def test_class_names_from_the_model_are_text_never_markup(html_server, page):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(html_server + "live.html#4:3")
    page.wait_for_function("document.getElementById('vis-image').dataset.runs === '1'")
    final = page.text_content("#vis-final")
    assert "top-3 outputs" in final
    shown = [n for n in HTML_NAMES if n in final]
    assert len(shown) == 3, final  # the top 3, literally
    assert page.text_content("#p3 b") == f"3 {HTML_NAMES[3]}"
    injected = page.evaluate("""() => ({img: document.querySelectorAll("img").length,
        bold: document.querySelectorAll("[id^=injected]").length,
        xss: window.__xss === undefined ? null : window.__xss})""")
    assert injected == {"img": 0, "bold": 0, "xss": None} and not dialogs


def test_the_live_page_declares_no_global_of_its_own(server, page, browser):
    blank = browser.new_page()
    blank.goto(server + "api/model")  # the same origin, no script: the browser's own names
    before = set(blank.evaluate("Object.keys(window)"))
    blank.close()
    page.goto(server + "live.html#3:1")
    page.wait_for_function("document.getElementById('vis-image').dataset.runs === '1'")
    added = set(page.evaluate("Object.keys(window)")) - before
    assert added == set(), added
    found = page.evaluate("""() => ["$", "fmt", "state", "padTo28", "className", "main",
        "runVisualiser", "SWITCHES", "STRIP_COLS"].filter((n) => {
          try { return eval(`typeof ${n}`) !== "undefined"; } catch (e) { return true; } })""")
    assert found == [] and page.evaluate("typeof NA") == "object"


def test_a_hash_the_atlas_accepts_opens_that_neuron_live(server, page):
    page.goto(server + "live.html#L3N2")  # the atlas's search forms work here too
    page.wait_for_function("document.getElementById('vis-image').dataset.runs === '1'")
    assert page.input_value("#layer") == "3" and page.input_value("#neuron") == "2"


def test_the_page_offers_the_librarys_names(server, page):
    """Every select's options are the registries of the Python library, as /api/model
    sends them (another process: compared with the lists themselves)."""
    from neuronatlas.config import FIELD_CHOICES, INIT_NAMES
    from neuronatlas.vis.presets import DESCRIPTIONS, PRESETS

    page.goto(server + "live.html#3:1")
    page.wait_for_function("document.getElementById('vis-image').dataset.runs === '1'")
    options = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
        "select[data-name], #preset, #init")].map((s) => [s.dataset.name || s.id,
        [...s.options].map((o) => o.value)]))""")
    live = [n for n in PRESETS if na.VisConfig.preset(n).diversity == 1]
    assert options == {**{k: list(v) for k, v in FIELD_CHOICES.items()},
                       "preset": [*live, "custom"], "init": [*INIT_NAMES, "mnist"]}
    page.select_option("#preset", "accentuate")
    assert page.text_content("#preset-info") == DESCRIPTIONS["accentuate"]
    helps = na.VisConfig.field_help()
    assert page.get_attribute("select[data-name=param]", "title") == helps["param"]
    assert page.get_attribute("#s-tv", "title") == helps["tv"]


def test_choosing_maco_sets_blur_to_zero(server, page):
    page.goto(server + "live.html#3:1")
    page.wait_for_function("document.getElementById('vis-image').dataset.runs === '1'")
    assert page.text_content("#o-blur_every") == "4"  # readable blurs every 4 steps
    page.select_option("select[data-name=param]", "maco")
    page.wait_for_function("(JSON.parse(document.getElementById('vis-image').dataset.config"
                           " || '{}').param === 'maco')")
    sent = json.loads(page.get_attribute("#vis-image", "data-config"))
    assert sent["blur_every"] == 0 and page.text_content("#o-blur_every") == "0"
    assert "error" not in page.get_attribute("#vis-status", "class")
