"""Atomic writes keep the user's umask; names no file can have are refused by name."""

from __future__ import annotations

import os
import stat

import pytest

from neuronatlas.errors import DataError
from neuronatlas.fileio import atomic_write_bytes, checked_path, path_problem


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_an_artefact_gets_the_mode_the_umask_allows(tmp_path, mask, mode):
    """mkstemp creates 0600 files: an artefact written with it was unreadable by the
    user's group and others whatever their umask."""
    old = os.umask(mask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == mode


@pytest.mark.parametrize("text, problem", [("a\x00b", "contains a NUL byte"),
                                           ("a\udcffb", "is not valid UTF-8"),
                                           (b"a\xffb", "is not valid UTF-8"),
                                           ("runs/paper", None), ("é.npz", None)])
def test_path_problem(text, problem):
    assert path_problem(text) == problem


def test_checked_path_names_the_problem_with_the_bytes_escaped():
    with pytest.raises(DataError, match=r"^dataset 'x\\x00\.npz' contains a NUL byte$"):
        checked_path("x\x00.npz", "dataset", DataError)
    with pytest.raises(DataError, match=r"^dataset 'x\\xff' is not valid UTF-8$"):
        checked_path(os.fsdecode(b"x\xff"), "dataset", DataError)
