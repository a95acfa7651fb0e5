"""The run folder as a keyed artefact store: every artefact is kept with the key of what
it was computed from, and read back only when that key matches.

Two forms: a stage writes a JSON record (model hash, dataset hash, settings, the hash of
its arrays file) and is skipped when the record shows the same work is already on disk
(``analyze``, ``reproduce``); a keyed array file holds its key arrays beside its values
(the atlas's pictures: the model's hash and the targets). A rerun redoes only what
changed (another model, other settings, a half-written or edited file), never trusting
a stale cache. Where each artefact lives is :mod:`.layout`'s business.
"""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .fileio import atomic_write_json, atomic_write_npz, sha256_of

Log = Callable[[str], None]  # one line of news for the user
Progress = Callable[[str, int, int], None]  # (stage, done, total)


def file_sha256(path: Path) -> str | None:
    """The file's sha256, or None when it cannot be read."""
    try:
        return sha256_of(path)
    except OSError:
        return None


class Stages:
    """Runs each stage unless its record matches; ``seconds`` holds this invocation's
    time per stage, ``reused`` the stages it skipped, and each computed record keeps
    the seconds its computation took (``record["seconds"]``)."""

    def __init__(self, sha: str, log: Log, data_sha: str | None = None):
        self.sha, self.log, self.data_sha = sha, log, data_sha
        self.seconds: dict[str, float] = {}
        self.reused: list[str] = []

    def run(self, name: str, record: Path, settings: dict, compute: Callable[[], dict],
            arrays: Path | None = None, message: str = "") -> dict:
        t = time.perf_counter()
        doc = self.cached(record, settings, arrays)
        if doc is None:
            if message:
                self.log(message)
            doc = {**compute(), "model_sha256": self.sha, "dataset_sha256": self.data_sha,
                   "settings": settings}
            if arrays is not None:
                doc["arrays"], doc["arrays_sha256"] = arrays.name, file_sha256(arrays)
            doc["seconds"] = round(time.perf_counter() - t, 3)
            atomic_write_json(record, doc)
        else:
            self.reused.append(name)
        self.seconds[name] = time.perf_counter() - t
        return doc

    def cached(self, record: Path, settings: dict, arrays: Path | None = None) -> dict | None:
        """The record when it matches this model, this dataset, these settings and its
        arrays file."""
        try:
            doc = json.loads(Path(record).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict):
            return None
        if doc.get("model_sha256") != self.sha or doc.get("settings") != settings:
            return None
        if doc.get("dataset_sha256") != self.data_sha:
            return None
        if arrays is not None and doc.get("arrays_sha256") != file_sha256(arrays):
            return None
        return doc


def read_keyed(path: Path, key: dict[str, np.ndarray], fields) -> dict[str, np.ndarray] | None:
    """The arrays ``fields`` of a keyed ``.npz`` whose key arrays equal ``key``; None when
    it is absent, damaged, lacks a field or was computed from another key."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if not all(np.array_equal(z[name], value) for name, value in key.items()):
                return None
            return {name: z[name] for name in fields}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def write_keyed(path: Path, key: dict[str, np.ndarray], arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` with their ``key`` (atomically) for :func:`read_keyed`."""
    atomic_write_npz(path, **key, **arrays)
