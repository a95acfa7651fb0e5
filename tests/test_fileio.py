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


def test_a_killed_writers_temporary_files_are_removed_and_no_others(tmp_path):
    """A worker SIGKILLed between writing and renaming left ``.config.json.*.tmp`` in its
    run folder for good; the next writer to take the folder's lock removes the files of
    dead writers of this host, never a live writer's or another host's."""
    import socket
    import subprocess
    import sys

    from neuronatlas.fileio import remove_stale_temps
    from neuronatlas.runs import writing

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    host = socket.gethostname()
    (tmp_path / "sub").mkdir()
    dead = tmp_path / "sub" / f".config.json.@{host}-{gone}.abc123.tmp"
    live = tmp_path / f".metrics.jsonl.@{host}-{os.getpid()}.abc123.tmp"
    other = tmp_path / f".model.safetensors.@elsewhere-{gone}.abc123.tmp"
    for p in (dead, live, other):
        p.write_text("half")
    with writing(tmp_path, "train in"):
        pass
    assert not dead.exists() and live.exists() and other.exists()
    assert remove_stale_temps(tmp_path) == []
