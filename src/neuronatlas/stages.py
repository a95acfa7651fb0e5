"""Resumable stages: each writes a JSON record (model hash, dataset hash, settings, the
hash of its arrays file) and is skipped when the record shows the same work is already
on disk.

Used by ``analyze`` and ``reproduce``: a rerun redoes only what changed (another model,
other settings, a half-written or edited arrays file), never trusting a stale cache.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from .fileio import atomic_write_json, sha256_of

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
