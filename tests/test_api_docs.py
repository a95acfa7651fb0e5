"""The public API reference: generated from the docstrings by pdoc (as docs/api.md says),
with every public name documented."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import neuronatlas as na

#: the packages whose public names (their ``__all__``) make the reference
PACKAGES = ("neuronatlas", "neuronatlas.vis", "neuronatlas.nn", "neuronatlas.data",
            "neuronatlas.importers", "neuronatlas.analysis", "neuronatlas.similarity",
            "neuronatlas.explanations",
            "neuronatlas.atlas",
            "neuronatlas.config", "neuronatlas.errors", "neuronatlas.readability",
            "neuronatlas.judges")


def test_every_public_name_has_a_docstring():
    missing = []
    for name in na.__all__:
        obj = getattr(na, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            doc = inspect.getdoc(obj) or ""
            if len(doc) < 20:
                missing.append(name)
            if inspect.isclass(obj):  # and its public methods
                missing += [f"{name}.{m}" for m, f in vars(obj).items()
                            if inspect.isfunction(f) and not m.startswith("_")
                            and len(inspect.getdoc(f) or "") < 10]
    assert not missing, f"public names without a docstring: {missing}"


def test_the_api_reference_builds(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pdoc", *PACKAGES, "-o", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Warn" not in proc.stderr, proc.stderr
    page = (tmp_path / "neuronatlas.html").read_text()
    for name in na.__all__:
        assert f'id="{name}"' in page, name
    assert "preset" in (tmp_path / "neuronatlas" / "config.html").read_text()


ROOT = Path(__file__).resolve().parents[1]


def _text_files():
    for pattern in ("src/**/*.py", "docs/**/*.md", "docs/**/*.py", "benchmarks/**/*.py",
                    "tests/*.py", "README.md"):
        yield from (p for p in ROOT.glob(pattern) if p.name != "test_api_docs.py")


def test_nothing_points_outside_the_repository():
    """Docs and docstrings stand alone: no file names a document the repository does not
    hold (the code cited "DESIGN.md section N" and issue numbers)."""
    outside = re.compile(r"DESIGN\.md|\b[Ii]ssue \d+")
    found = [f"{p.relative_to(ROOT)}:{i}" for p in _text_files()
             for i, line in enumerate(p.read_text().splitlines(), 1) if outside.search(line)]
    assert not found, found


def test_every_relative_link_in_the_docs_resolves():
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    broken = []
    for page in [ROOT / "README.md", *ROOT.glob("docs/**/*.md")]:
        for target in link.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_the_code_map_names_only_files_that_exist():
    text = (ROOT / "docs/code.md").read_text()
    named = set(re.findall(r"`([\w/]+\.py)`", text)) | set(re.findall(r"`(\w+/)`", text))
    package = ROOT / "src/neuronatlas"
    missing = [n for n in named if not (package / n).exists()
               and not (package / "figures" / n).exists()]
    assert named and not missing, missing
