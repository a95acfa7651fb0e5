"""The serve app without a browser: streamed visualisations, queries, every refusal."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

import neuronatlas as na

pytest.importorskip("starlette")
with warnings.catch_warnings():  # Starlette 1.x prefers httpx2 for its test client
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from neuronatlas.atlas.server import ServerLimits, create_app, sse

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

CONFIG = {"steps": 30, "tv": 0.016, "l1": 0.0016, "lr": 0.1, "seed": 3}


@pytest.fixture(scope="module")
def model(tiny_run):
    return na.MLP.load(tiny_run / "model.safetensors")


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    """A stand-in atlas folder, with a file beside it that must never be served."""
    root = tmp_path_factory.mktemp("served")
    (root / "atlas").mkdir()
    (root / "atlas" / "index.html").write_text("<!doctype html><title>atlas</title>")
    (root / "secret.txt").write_text("not for the web")
    return root / "atlas"


def client(tiny_run, model, atlas, train_images="mnist", **limits) -> TestClient:
    """The app over the tiny run, with MNIST's training images as ``serve`` passes them
    (the readable pictures start from their prototypes; None: a server without them)."""
    if isinstance(train_images, str):
        train_images = na.load_mnist().train_x
    app = create_app(tiny_run, model, atlas_dir=atlas, limits=ServerLimits(**limits),
                     train_images=train_images)
    return TestClient(app)


def events(text: str) -> list[tuple[str, dict]]:
    """Parse a server-sent-event body into (event, data) pairs."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def pixels(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), np.uint8)


@pytest.mark.parametrize("preset", [None, "paper", "accentuate"])
def test_visualize_streams_every_step_and_ends_as_the_library_does(tiny_run, model, atlas,
                                                                   preset):
    config = CONFIG if preset is None else {**CONFIG, "preset": preset}
    with client(tiny_run, model, atlas) as c:
        r = c.post("/api/visualize", json={"layer": 3, "neuron": 1, "config": config})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    evs = events(r.text)
    steps = [d for kind, d in evs if kind == "step"]
    (kind, done), = evs[len(steps):]
    seen = []
    # no preset named: the readable one, as the atlas's tiles
    expected = na.visualize(model, [(3, 1)], na.VisConfig.preset(preset or "readable", **CONFIG),
                            callback=lambda step, acts: seen.append(float(acts[0])))
    assert kind == "done" and done["stopped"] is None and done["steps_run"] == 30
    assert [d["step"] for d in steps] == list(range(30))
    assert [d["activation"] for d in steps] == pytest.approx(seen, rel=1e-6)
    assert done["activation"] == pytest.approx(float(expected.activation[0]), rel=1e-6)
    assert done["top3"] == expected.record(0)["top3"]
    final = np.round(np.clip(expected.images[0], 0, 1) * 255)
    assert np.abs(pixels(done["image"]).astype(int) - final).max() <= 1
    assert all(pixels(d["image"]).shape == (784,) for d in steps)


def test_long_runs_stream_at_most_max_frames_images(tiny_run, model, atlas):
    with client(tiny_run, model, atlas, max_frames=10) as c:
        r = c.post("/api/visualize", json={"layer": 4, "neuron": 3,
                                           "config": {"steps": 95, "init": "random"}})
    steps = [d["step"] for kind, d in events(r.text) if kind == "step"]
    assert steps == [*range(0, 95, 10), 94]


def test_visualize_from_a_drawn_image(tiny_run, model, atlas, mnist):
    image = mnist.test_x[0]
    with client(tiny_run, model, atlas) as c:
        r = c.post("/api/visualize", json={"layer": 4, "neuron": 7, "image": image.tolist(),
                                           "config": {"init": "image", "steps": 5}})
    first = events(r.text)[0][1]
    assert np.abs(pixels(first["image"]) - np.round(image * 255)).max() <= 1


def test_query_matches_the_model(tiny_run, model, atlas, mnist):
    image = mnist.test_x[3]
    with client(tiny_run, model, atlas) as c:
        r = c.post("/api/query", json={"image": image.tolist()})
    assert r.status_code == 200
    body, acts = r.json(), model.activations(image[None])
    assert set(body["layers"]) == {"1", "2", "3", "4"}
    for layer, a in acts.items():
        assert body["layers"][str(layer)] == pytest.approx(a[0].tolist(), abs=1e-5)
    assert body["probabilities"] == pytest.approx(acts[4][0].tolist(), rel=1e-5)
    assert body["top3"][0]["class"] == int(acts[4][0].argmax())


def test_model_and_pages(tiny_run, model, atlas):
    with client(tiny_run, model, atlas) as c:
        info = c.get("/api/model").json()
        assert info["sizes"] == [784, 48, 24, 16, 10] and info["limits"]["max_steps"] == 1000
        assert info["default_preset"] == "readable"
        assert info["defaults"] == na.VisConfig.preset("readable").to_dict()
        assert set(info["presets"]) == {"paper", "readable", "accentuate"}  # one picture each
        assert info["presets"]["paper"] == na.VisConfig().to_dict()
        assert "<title>atlas" in c.get("/").text
        for name in ("live.html", "live.js", "live.css"):
            assert c.get(f"/{name}").status_code == 200


POST_ERRORS = [
    ({"layer": 3, "neuron": 16}, 422, "neuron 16 does not exist in layer 3"),
    ({"layer": 5, "neuron": 0}, 422, "layer 5 does not exist"),
    ({"layer": 3, "neuron": "1"}, 422, "neuron must be an integer"),
    ({"layer": 3, "neuron": 1, "config": {"steps": 1001}}, 422, "steps = 1001 is above"),
    ({"layer": 3, "neuron": 1, "config": {"tv": 1e6}}, 422, "tv = 1000000.0 is above"),
    ({"layer": 3, "neuron": 1, "config": {"lr": -1}}, 422, "lr must be a finite number"),
    ({"layer": 3, "neuron": 1, "config": {"init": "/etc/passwd"}}, 422, "init must be one of"),
    ({"layer": 3, "neuron": 1, "config": {"init": "mnist:x"}}, 422, "test-set index"),
    ({"layer": 3, "neuron": 1, "config": {"bogus": 1}}, 422, "unknown VisConfig field"),
    ({"layer": 3, "neuron": 1, "config": {"preset": "pretty"}}, 422, "unknown preset 'pretty'"),
    ({"layer": 3, "neuron": 1, "config": {"preset": 3}}, 422, "preset must be a name"),
    ({"layer": 3, "neuron": 1, "config": {"param": "wavelet"}}, 422, "param must be one of"),
    ({"layer": 3, "neuron": 1, "config": {"tv_beta": 3}}, 422, "tv_beta must be"),
    ({"layer": 3, "neuron": 1, "config": {"preset": "diverse"}}, 422,
     "diversity = 4 is above the server's cap of 1"),
    ({"layer": 3, "neuron": 1, "config": {"l2": 1e6}}, 422, "l2 = 1000000.0 is above"),
    ({"layer": 3, "neuron": 1, "stuff": 1}, 422, "unknown visualize field"),
    ({"layer": 3, "neuron": 1, "config": {"init": "image"}, "image": [0.5] * 10}, 422,
     "784 pixel values"),
    ({"layer": 3, "neuron": 1, "config": {"init": "image"}, "image": [2.0] * 784}, 422,
     "finite numbers in [0, 1]"),
]


@pytest.mark.parametrize("body,status,message", POST_ERRORS)
def test_visualize_refuses_bad_requests_with_a_clear_message(tiny_run, model, atlas, body,
                                                             status, message):
    with client(tiny_run, model, atlas) as c:
        r = c.post("/api/visualize", json=body)
    assert r.status_code == status and message in r.json()["error"]


RAW_ERRORS = [
    ("/api/visualize", b'{"layer": 3, "neuron": 1, "config": {"tv": NaN}}', 422,
     "tv must be a finite number"),
    ("/api/visualize", b'{"layer": 3, "neuron": 1, "config": {"lr": Infinity}}', 422,
     "lr must be a finite number"),
    ("/api/query", b'{"image": [NaN' + b", 0" * 783 + b"]}", 422, "finite"),
    ("/api/query", b'{"image": ', 400, "not valid JSON"),
    ("/api/query", b"[1, 2]", 400, "must be a JSON object"),
    ("/api/query", b"x" * 70_000, 413, "over the limit of 65536 bytes"),
]


@pytest.mark.parametrize("path,body,status,message", RAW_ERRORS)
def test_raw_bodies_are_refused_with_a_clear_message(tiny_run, model, atlas, path, body,
                                                     status, message):
    with client(tiny_run, model, atlas) as c:
        r = c.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and message in r.json()["error"]


def test_body_size_is_counted_not_taken_from_content_length(tiny_run, model, atlas):
    chunks = iter([b'{"image": [' + b"0, " * 20_000, b"0" * 30_000 + b"]}"])  # chunked
    with client(tiny_run, model, atlas) as c:
        r = c.post("/api/query", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]


def test_json_must_be_declared(tiny_run, model, atlas):
    with client(tiny_run, model, atlas) as c:  # a cross-site "simple" request can't do this
        r = c.post("/api/query", content=b"{}", headers={"content-type": "text/plain"})
        assert r.status_code == 415 and "application/json" in r.json()["error"]
        # media types are case-insensitive: this is JSON (and then a 422 for its contents)
        r = c.post("/api/query", content=b"{}", headers={"content-type": "Application/JSON"})
        assert r.status_code == 422 and "image must be" in r.json()["error"]


@contextlib.contextmanager
def running(app, limits: ServerLimits):
    """``app`` under uvicorn with serve()'s settings, on a free port: its address."""
    import socket
    import time

    import uvicorn

    from neuronatlas.atlas.server import server_config

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(server_config(app, limits))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def live_server(tiny_run, model, atlas):
    """The app under uvicorn with serve()'s settings and short deadlines, on a free port."""
    limits = ServerLimits(header_seconds=1.0, body_seconds=1.0, max_connections=20)
    with running(create_app(tiny_run, model, atlas_dir=atlas, limits=limits), limits) as addr:
        yield addr


def _send(addr, data: bytes):
    import socket

    s = socket.create_connection(addr, timeout=5)
    s.sendall(data)
    return s


def _closed_by_server(s) -> bool:
    """Whether the server closes the connection (within the socket's 5 s timeout)."""

    try:
        return s.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_silent_and_trickling_connections_are_closed_and_others_still_served(live_server):
    import time

    silent = [_send(live_server, b"") for _ in range(30)]  # more than max_connections
    trickle = _send(live_server, b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    t0 = time.monotonic()
    for _ in range(4):  # a header line every 0.4 s does not keep it open past 1 s
        time.sleep(0.4)
        try:
            trickle.sendall(b"X-Slow: 1\r\n")
        except OSError:
            break
    for s in [trickle, *silent]:
        assert _closed_by_server(s)
        s.close()
    assert time.monotonic() - t0 < 6
    # a normal request gets through once they are gone
    ok = _send(live_server, b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            b"Connection: close\r\n\r\n")
    reply = b"".join(iter(lambda: ok.recv(65536), b""))
    assert reply.startswith(b"HTTP/1.1 200")


def test_a_body_sent_a_byte_at_a_time_is_a_408(live_server):
    import time

    head = (b"POST /api/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
            b"\r\nContent-Length: 100\r\nConnection: close\r\n\r\n")
    s = _send(live_server, head + b"{")
    t0 = time.monotonic()
    reply = b""
    for _ in range(20):  # one byte every 0.2 s: the body would take 20 s
        time.sleep(0.2)
        try:
            s.sendall(b" ")
        except OSError:
            break
    s.settimeout(5)
    try:
        reply = b"".join(iter(lambda: s.recv(65536), b""))
    except ConnectionResetError:
        pass
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"did not arrive within 1 s" in reply and time.monotonic() - t0 < 5


@pytest.mark.parametrize("path,status", [
    ("/%2e%2e/secret.txt", 400), ("/..%2fsecret.txt", 400), ("/%2E%2E/%2E%2E/etc/passwd", 400),
    ("/secret.txt", 404), ("/atlas/../secret.txt", 404), ("/api/nothing", 404),
    ("/api/query", 405),
])
def test_only_atlas_files_are_served(tiny_run, model, atlas, path, status):
    with client(tiny_run, model, atlas) as c:
        r = c.get(path)
    assert r.status_code == status and "error" in r.json()
    assert "not for the web" not in r.text


def test_a_saturated_server_answers_503(tiny_run, model, atlas):
    body = {"layer": 3, "neuron": 1, "config": {"steps": 5}}
    with client(tiny_run, model, atlas, concurrency=1, queue_seconds=0) as c:
        live = c.app.state.live
        c.portal.call(live.slots.acquire)  # another visitor holds the only slot
        r = c.post("/api/visualize", json=body)
        assert r.status_code == 503 and "busy" in r.json()["error"]
        assert r.headers["retry-after"] == "5"
        c.portal.call(live.slots.release)
        assert c.post("/api/visualize", json=body).status_code == 200


def test_the_time_limit_stops_a_long_optimisation(tiny_run, model, atlas):
    with client(tiny_run, model, atlas, time_limit=0) as c:
        r = c.post("/api/visualize", json={"layer": 3, "neuron": 1, "config": {"steps": 1000}})
        kind, done = events(r.text)[-1]
        assert kind == "done" and done["steps_run"] == 1
        assert "time limit of 0 s after 1 of 1000 steps" in done["stopped"]
        assert not c.app.state.live.slots.locked()  # the slot came back


def test_a_client_that_goes_away_cancels_the_optimisation():
    async def scenario():
        queue, cancel = asyncio.Queue(), threading.Event()
        queue.put_nowait(("step", {"step": 0}))
        stream = sse(queue, cancel)
        assert (await anext(stream)).startswith("event: step\n")
        await stream.aclose()  # what Starlette does when the client disconnects
        return cancel.is_set()

    # a thread of its own: Playwright's sync API (another test's browser) may hold this
    # thread's event loop
    result = []
    worker = threading.Thread(target=lambda: result.append(asyncio.run(scenario())))
    worker.start()
    worker.join(30)
    assert result == [True]


def test_serve_without_the_extra_says_how_to_install_it(tiny_run):
    code = ("import sys; sys.modules['uvicorn'] = None; from neuronatlas.cli import main; "
            f"main(['serve', '--run', {str(tiny_run)!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert 'pip install "neuronatlas[serve]"' in proc.stderr


@pytest.mark.parametrize("body, status, fragment", [
    (b"[" * 20000 + b"]" * 20000, 400, "nested too deeply"),
    (b'{"image": [1' + b"0" * 400 + b"]}", 422, "image must be a list of 784"),
    (json.dumps({"image": [10**400] + [0] * 783}).encode(), 422, "finite numbers in [0, 1]"),
])
def test_hostile_bodies_get_a_json_4xx(tiny_run, model, atlas, body, status, fragment):
    with client(tiny_run, model, atlas) as c:
        r = c.post("/api/query", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status and fragment in r.json()["error"]


def test_an_absurd_mnist_index_is_refused(tiny_run, model, atlas):
    with client(tiny_run, model, atlas) as c:
        r = c.post("/api/visualize", json={"layer": 1, "neuron": 0,
                                           "config": {"init": "mnist:" + "9" * 5000}})
    assert r.status_code == 422 and "test-set index" in r.json()["error"]


def test_works_without_a_lifespan_and_a_bug_is_a_json_500(tiny_run, model, atlas, monkeypatch):
    c = TestClient(create_app(tiny_run, model, atlas_dir=atlas), raise_server_exceptions=False)
    r = c.post("/api/visualize", json={"layer": 1, "neuron": 0,
                                       "config": {"steps": 2, "init": "zero"}})
    assert r.status_code == 200 and events(r.text)[-1][0] == "done"
    monkeypatch.setattr("neuronatlas.atlas.server.query", lambda *a: 1 / 0)
    r = c.post("/api/query", json={"image": [0.0] * 784})
    assert r.status_code == 500 and r.json() == {"error": "internal error in the server"}


def test_non_finite_numbers_never_reach_json():
    from neuronatlas.atlas.server import finite_json

    doc = finite_json({"activation": float("nan"), "top3": [{"probability": float("inf")}],
                       "ok": 1.5})
    assert doc == {"activation": None, "top3": [{"probability": None}], "ok": 1.5,
                   "non_finite": True}
    json.dumps(doc, allow_nan=False)  # valid JSON


def test_a_client_that_goes_away_mid_body_is_a_4xx_not_a_traceback():
    from starlette.requests import ClientDisconnect

    from neuronatlas.atlas.server import Problem, read_json

    class Gone:
        def __init__(self):
            self.headers = {"content-type": "application/json"}

        async def stream(self):
            yield b'{"image": ['
            raise ClientDisconnect()

    # in an event loop of its own thread (the browser tests' playwright may hold one in
    # this thread); read_json's body deadline needs a running loop
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(asyncio.run, read_json(Gone(), 1000))
        with pytest.raises(Problem, match="went away") as err:
            future.result(timeout=10)
    assert err.value.status == 400


def _reply(s) -> bytes:
    """Everything the server sends on ``s`` until it closes the connection."""
    out = b""
    try:
        for chunk in iter(lambda: s.recv(65536), b""):
            out += chunk
    except ConnectionResetError:
        pass
    s.close()
    return out


def _get(addr, target: bytes, host: bytes = b"127.0.0.1") -> tuple[int, bytes, bytes]:
    """One raw ``GET target``: (status, head, body)."""
    reply = _reply(_send(addr, b"GET " + target + b" HTTP/1.1\r\nHost: " + host +
                         b"\r\nConnection: close\r\n\r\n"))
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def test_idle_sockets_do_not_count_against_the_request_limit(tiny_run, model, atlas):
    """200 connections that send nothing (the default cap) held GET / at 503 until the
    head deadline closed them; the oldest idle one now makes room for a new connection."""
    import time

    limits = ServerLimits()  # the defaults: 200 connections, a 10 s head deadline
    with running(create_app(tiny_run, model, atlas_dir=atlas, limits=limits), limits) as addr:
        idle = [_send(addr, b"") for _ in range(limits.max_connections)]
        time.sleep(0.2)  # every one accepted before the real request
        t0 = time.monotonic()
        status, _, body = _get(addr, b"/")
        elapsed = time.monotonic() - t0
        for s in idle:
            s.close()
    assert status == 200 and b"<title>atlas" in body and elapsed < 2


def test_requests_being_worked_on_are_limited_with_a_json_503(tiny_run, model, atlas):
    import time

    limits = ServerLimits(max_requests=1, body_seconds=2.0)
    with running(create_app(tiny_run, model, atlas_dir=atlas, limits=limits), limits) as addr:
        slow = _send(addr, b"POST /api/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                           b"application/json\r\nContent-Length: 100\r\n"
                           b"Connection: close\r\n\r\n{")
        time.sleep(0.3)  # its body is being read: one request at work
        status, head, body = _get(addr, b"/api/model")
        assert status == 503 and b"retry-after: 5" in head.lower()
        assert "requests at once" in json.loads(body)["error"]
        assert _reply(slow).startswith(b"HTTP/1.1 408")  # its body deadline
        assert _get(addr, b"/api/model")[0] == 200


def test_an_invalid_http_request_is_refused_as_json(live_server):
    status, head, body = _get(live_server, b"/a\x00b")  # not HTTP: h11 refuses it
    assert status == 400 and b"application/json" in head
    assert "not a valid HTTP request" in json.loads(body)["error"]


def test_a_foreign_host_header_is_refused_as_json(tiny_run, model, atlas):
    app = create_app(tiny_run, model, atlas_dir=atlas, allowed_hosts=("127.0.0.1", "[::1]"))
    c = TestClient(app, base_url="http://evil.example")
    r = c.get("/api/model")
    assert r.status_code == 400 and "Host header" in r.json()["error"]
    assert "evil.example" in r.json()["error"]
    for host in ("127.0.0.1:8000", "[::1]:8000", "[::1]"):  # with or without a port
        assert c.get("/api/model", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("path,fragment", [
    ("/%00", "NUL"), ("/index.html%00", "NUL"), ("/live.js%00", "NUL"), ("/api/%00", "NUL"),
    ("/api/model%00", "NUL"), ("/%ff", "not valid UTF-8"), ("/a%c3%28.html", "not valid UTF-8"),
    ("/api/%ff", "not valid UTF-8"), ("/live.html%ff", "not valid UTF-8"),
])
def test_paths_no_file_can_have_are_a_json_400(tiny_run, model, atlas, path, fragment):
    with client(tiny_run, model, atlas) as c:
        r = c.get(path)
    assert r.status_code == 400 and fragment in r.json()["error"]


@pytest.mark.parametrize("target", [b"/%00", b"/%ff", b"/api/%ff", b"/api/x%00y",
                                    b"/\xff", b"/%ed%a0%80"])
def test_odd_paths_over_http_are_a_json_400(live_server, target):
    status, head, body = _get(live_server, target)
    assert status == 400 and b"application/json" in head and json.loads(body)["error"]


def test_maco_names_the_preset_field_it_conflicts_with(tiny_run, model, atlas, mnist):
    """The default preset's blur (not the request) is what maco cannot take: say so."""
    with client(tiny_run, model, atlas, train_images=None) as c:  # maco says what it needs
        r = c.post("/api/visualize", json={"layer": 3, "neuron": 1, "config": {
            "param": "maco", "blur_every": 0, "steps": 5, "init": "zero"}})
        assert events(r.text)[-1] == ("error", {"error": "param 'maco' needs the training "
                                      "images of the served dataset, which this server was "
                                      "started without"})
    with client(tiny_run, model, atlas, train_images=mnist.train_x) as c:
        r = c.post("/api/visualize", json={"layer": 3, "neuron": 1,
                                           "config": {"param": "maco"}})
        assert r.status_code == 422
        error = r.json()["error"]
        assert "preset 'readable' (the default) sets blur_every = 4" in error
        assert "blur_every: 0" in error
        r = c.post("/api/visualize", json={"layer": 3, "neuron": 1, "config": {
            "param": "maco", "blur_every": 0, "steps": 5}})
        assert r.status_code == 200 and events(r.text)[-1][0] == "done"
        # a conflict within the request itself keeps the library's message
        r = c.post("/api/visualize", json={"layer": 3, "neuron": 1, "config": {
            "param": "maco", "blur_every": 2}})
        assert r.status_code == 422 and "preset" not in r.json()["error"]
        assert "blur_every cannot be combined with param 'maco'" in r.json()["error"]


def _accuracy(run, model, atlas):
    with client(run, model, atlas) as c:
        return c.get("/api/model").json()["test_accuracy"]


def test_test_accuracy_is_a_number(tiny_run, model, atlas):
    accuracy = _accuracy(tiny_run, model, atlas)
    assert isinstance(accuracy, float)  # the model file keeps it as text
    assert accuracy == float(model.metadata["test_accuracy"])


def test_test_accuracy_comes_from_the_runs_evaluation(tiny_run, model, atlas, tmp_path):
    """A model that records no accuracy (an import without data): the run's own
    `neuronatlas evaluate` is read, and only while it is of the model served."""
    import os

    run = tmp_path / "run"
    run.mkdir()
    bare = model.copy()
    bare.metadata.pop("test_accuracy", None)
    bare.save(run / "model.safetensors")
    bare = na.MLP.load(run / "model.safetensors")
    assert _accuracy(run, bare, atlas) is None
    proc = subprocess.run([sys.executable, "-m", "neuronatlas", "evaluate", "--run", str(run)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    measured = json.loads((run / "evaluation-test.json").read_text())["accuracy"]
    assert _accuracy(run, bare, atlas) == measured and 0.5 < measured <= 1
    # another model served from this run: the evaluation is not of it
    other = na.MLP.init(model.sizes, rng=np.random.default_rng(0))
    assert _accuracy(run, other, atlas) is None
    # the model file replaced after the evaluation: stale
    other.save(run / "model.safetensors")
    stamp = (run / "evaluation-test.json").stat().st_mtime
    os.utime(run / "model.safetensors", (stamp + 10, stamp + 10))
    assert _accuracy(run, na.MLP.load(run / "model.safetensors"), atlas) is None


@pytest.mark.parametrize("recorded", ["0.9806", "nan", "98%", "1.5", ""])
def test_a_recorded_accuracy_is_a_number_in_0_1_or_null(tiny_run, model, atlas, tmp_path,
                                                       recorded):
    odd = na.MLP.load(tiny_run / "model.safetensors")
    odd.metadata["test_accuracy"] = recorded
    expected = 0.9806 if recorded == "0.9806" else None
    assert _accuracy(tmp_path, odd, atlas) == expected


# --- the live page's names come from the library's registries ---------------------------
def test_api_model_sends_the_registries(tiny_run, model, atlas):
    import dataclasses

    from neuronatlas.config import FIELD_CHOICES, INIT_NAMES
    from neuronatlas.vis.presets import DESCRIPTIONS, PRESETS, preset_fields

    with client(tiny_run, model, atlas) as c:
        info = c.get("/api/model").json()
    opts = info["vis_options"]
    assert opts["choices"] == {k: list(v) for k, v in FIELD_CHOICES.items()}
    assert opts["inits"] == list(INIT_NAMES) and opts["init_indexed"] == "mnist"
    assert [p["name"] for p in opts["presets"]] == list(PRESETS)
    for p in opts["presets"]:
        assert p["description"] == DESCRIPTIONS[p["name"]]
        assert p["sets"] == preset_fields(p["name"])
        assert p["live"] == (p["name"] in info["presets"])  # diverse: 4 pictures, not live
    names = [f.name for f in dataclasses.fields(na.VisConfig)]
    assert list(opts["fields"]) == names
    helps, plain = na.VisConfig.field_help(), na.VisConfig().to_dict()
    for name, f in opts["fields"].items():
        assert f["default"] == plain[name] and f["help"] == helps[name]
        assert f["type"] == type(plain[name]).__name__
    assert opts["fields"]["steps"]["cap"] == 1000 and opts["fields"]["tv"]["cap"] == 10.0
    assert "cap" not in opts["fields"]["decay"]
    # the keys the page read before are unchanged
    assert {"presets", "preset_descriptions", "defaults", "default_preset"} <= set(info)


def test_a_name_added_in_python_reaches_the_page(tiny_run, model, atlas, monkeypatch):
    from neuronatlas.config import FIELD_CHOICES, VIS_OPTIMIZERS

    monkeypatch.setitem(FIELD_CHOICES, "optimizer", (*VIS_OPTIMIZERS, "lbfgs"))
    with client(tiny_run, model, atlas) as c:
        assert c.get("/api/model").json()["vis_options"]["choices"]["optimizer"] == [
            *VIS_OPTIMIZERS, "lbfgs"]


def test_the_resets_make_every_choice_valid_under_every_live_preset(tiny_run, model, atlas):
    """What the page sets back when a choice is made (maco: no blur) is derived from
    VisConfig's own checks, and leaves no preset with a combination it refuses."""
    with client(tiny_run, model, atlas) as c:
        info = c.get("/api/model").json()
    opts = info["vis_options"]
    assert opts["resets"] == {"param": {"maco": ["blur_every"]}}
    for preset in info["presets"]:
        for field, values in opts["choices"].items():
            for value in values:
                back = opts["resets"].get(field, {}).get(value, [])
                na.VisConfig.preset(preset, **{field: value},
                                    **{f: opts["fields"][f]["default"] for f in back})


def test_the_init_names_are_the_librarys():
    from neuronatlas.atlas import server
    from neuronatlas.config import INIT_NAMES

    assert not hasattr(server, "START_IMAGES") and server.INIT_NAMES is INIT_NAMES


def _live_sources() -> dict[str, str]:
    from neuronatlas.atlas.server import STATIC

    return {n: (STATIC / n).read_text(encoding="utf-8") for n in ("live.html", "live.js")}


#: names the page's code may quote, and why: neither is a copy of a list
QUOTABLE = {"activation": "the label of the final numbers' first row",
            "image": "the start the page's drawing enables"}


def test_the_live_page_types_no_name_of_the_registries():
    """The objectives, parametrisations, optimisers, presets and starts come from
    /api/model: none is written into live.html or live.js."""
    import re

    from neuronatlas.config import FIELD_CHOICES, INIT_NAMES
    from neuronatlas.vis.presets import PRESETS

    names = {*INIT_NAMES, *PRESETS, *(v for vs in FIELD_CHOICES.values() for v in vs)}
    for file, text in _live_sources().items():
        for name in sorted(names - set(QUOTABLE)):
            pattern = rf"""["'`]{re.escape(name)}["'`]|value=["']?{re.escape(name)}\b"""
            assert not re.search(pattern, text), f"{file} names {name!r}"
        assert "<option" not in text, f"{file} has options of its own"


def test_every_control_of_the_live_page_names_a_visconfig_field():
    import dataclasses
    import re

    fields = {f.name for f in dataclasses.fields(na.VisConfig)}
    html = _live_sources()["live.html"]
    named = set(re.findall(r'data-name="(\w+)"', html))
    switches = set(re.findall(r'<input type="checkbox" id="(\w+)"', html))
    assert named and switches and (named | switches) <= fields, (named | switches) - fields
    assert "data-values" in html  # the sliders' ticks are the page's own choice


def test_attribute_endpoint_gives_the_librarys_integrated_gradients(tiny_run, model, atlas,
                                                                     mnist):
    x = mnist.test_x[5]
    with client(tiny_run, model, atlas) as c:
        r = c.post("/api/attribute", json={"image": x.tolist()})
        assert r.status_code == 200, r.text
        doc = r.json()
        want = na.attribute(model, x)
        assert doc["target"] == want.target and doc["steps"] == 64
        for l, a in want.layers.items():
            got = doc["layers"][str(l)]
            np.testing.assert_allclose(got["attribution"], a, rtol=1e-4, atol=1e-6)
            assert got["completeness_error"] == pytest.approx(want.completeness_error[l],
                                                              abs=1e-9)
            assert [t["neuron"] for t in got["top"]] == [i for i, _ in want.top(l)]
        assert doc["seconds"] < 5
        r = c.post("/api/attribute", json={"image": x.tolist(), "target": 3, "steps": 8,
                                           "baseline": (x * 0.5).tolist()})
        assert r.status_code == 200 and r.json()["target"] == 3
        for body, words in (({"image": x.tolist()[:-1]}, "784"),
                            ({"image": [float("nan")] * 784}, None),
                            ({"image": x.tolist(), "baseline": [0.5] * 3}, "784"),
                            ({"image": x.tolist(), "target": 10}, "0..9"),
                            ({"image": x.tolist(), "target": "3"}, "integer"),
                            ({"image": x.tolist(), "steps": 0}, "steps"),
                            ({"image": x.tolist(), "steps": 10_000}, "steps"),
                            ({"image": x.tolist(), "colour": 1}, "unknown")):
            text = json.dumps(body, allow_nan=True)
            r = c.post("/api/attribute", content=text,
                       headers={"Content-Type": "application/json"})
            assert 400 <= r.status_code < 500 and "error" in r.json(), (body, r.text)
            if words:
                assert words in r.json()["error"]


def test_search_endpoint_needs_the_training_images_and_checks_its_input(tiny_run, model,
                                                                         atlas, mnist):
    x = mnist.test_x[2]
    with client(tiny_run, model, atlas, train_images=None) as c:  # started without them
        r = c.post("/api/search", json={"image": x.tolist()})
        assert r.status_code == 503 and "training images" in r.json()["error"]
    with client(tiny_run, model, atlas, train_images=mnist.train_x) as c:
        r = c.post("/api/search", json={"image": x.tolist(), "k": 3})
        assert r.status_code == 200, r.text
        want = na.search(model, x, na.training_maxima(model, mnist.train_x), k=3)
        for l, rows in want.layers.items():
            got = r.json()["layers"][str(l)]
            assert [g["neuron"] for g in got] == [i for i, _, _ in rows]
            np.testing.assert_allclose([g["share"] for g in got], [s for _, s, _ in rows],
                                       rtol=1e-6)
        for body in ({"image": x.tolist(), "k": 0}, {"image": x.tolist(), "k": 65},
                     {"image": [2.0] * 784}, {"k": 3}):
            r = c.post("/api/search", json=body)
            assert r.status_code == 422 and "error" in r.json(), body
