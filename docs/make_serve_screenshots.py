"""Regenerate docs/serve_live.png and docs/serve_draw.png: ``neuronatlas serve``'s live
page in headless chromium (the server runs in a thread; the live page does not need the
atlas, so a stub stands in when the run has none).

    python docs/make_serve_screenshots.py [runs/paper] [/usr/bin/chromium]
"""

import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

import neuronatlas as na
from neuronatlas.atlas.server import create_app

run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/paper")
chromium = sys.argv[2] if len(sys.argv) > 2 else "/usr/bin/chromium"
atlas = run / "atlas"
if not (atlas / "index.html").is_file():
    atlas = Path(tempfile.mkdtemp())
    (atlas / "index.html").write_text("<!doctype html><title>atlas stub</title>")
app = create_app(run, na.MLP.load(run / "model.safetensors"), atlas_dir=atlas)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
time.sleep(1)
THREE = [(80, 60), (120, 40), (170, 40), (200, 70), (190, 110), (150, 135), (195, 160),
         (205, 200), (180, 235), (130, 245), (80, 225)]

with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1240, "height": 1300})
    page.goto(url + "live.html#7:1")
    page.wait_for_function("document.getElementById('vis-image').dataset.runs === '1'",
                           timeout=60_000)
    page.locator("#vis").screenshot(path="docs/serve_live.png")
    print("written docs/serve_live.png")
    page.goto(url + "live.html#draw")
    page.wait_for_selector("#p9")
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + THREE[0][0], box["y"] + THREE[0][1])
    page.mouse.down()
    for x, y in THREE[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=6)
    page.mouse.up()
    page.wait_for_timeout(1500)  # the last queued query
    page.locator("#strips canvas").nth(2).hover(position={"x": 100, "y": 5})
    page.locator("#draw").screenshot(path="docs/serve_draw.png")
    print("written docs/serve_draw.png")
    browser.close()
server.should_exit = True
