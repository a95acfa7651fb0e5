"""A study's datasets as each machine finds them, checked against the plan."""

from __future__ import annotations

from ..data import load_dataset


def load_checked(spec: str, sha: str, data_dir=None):
    """The dataset ``spec`` as this machine finds it, which must be the data the study
    was planned on (its sha256)."""
    from ..errors import DataError

    data = load_dataset(spec, data_dir)
    if data.identity["sha256"] != sha:
        raise DataError(f"{spec} here is not the data the study was planned on (sha256 "
                        f"{data.identity['sha256'][:12]}..., planned {sha[:12]}...)")
    return data
