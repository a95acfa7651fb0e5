"""Regenerate docs/atlas_overview.png (layer 5), docs/atlas_layer1.png (layer 1: weights
beside pictures), docs/atlas_panel.png and docs/atlas_explain.png: the static atlas of a run
(built first with ``neuronatlas atlas``) in headless chromium, opened from file://.

    python docs/make_atlas_screenshots.py [runs/paper] [/usr/bin/chromium]
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/paper")
chromium = sys.argv[2] if len(sys.argv) > 2 else "/usr/bin/chromium"
index = (run / "atlas" / "index.html").resolve().as_uri()
shots = [("docs/atlas_overview.png", "#5", 900), ("docs/atlas_layer1.png", "#1", 900),
         ("docs/atlas_panel.png", "#7:1", 1500), ("docs/atlas_explain.png", "#5:12", 1900)]

with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                 args=["--no-sandbox"])
    for path, hash_, height in shots:
        page = browser.new_page(viewport={"width": 1440, "height": height})
        page.goto(index + hash_)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(500)  # sprite sheets decoded
        page.screenshot(path=path)
        page.close()
        print(f"written {path}")
    browser.close()
