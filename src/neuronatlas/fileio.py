"""Atomic file writing: a temporary file in the same folder, fsync, then rename.

An interrupted command therefore never leaves a half-written file that a later
command would trust (docs/format.md, "A run folder").
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from .errors import NeuronatlasError, RunFolderError


def path_problem(text: str | os.PathLike) -> str | None:
    """Why ``text`` cannot name a file here, or None: a NUL byte (the OS refuses it) or
    bytes that are not UTF-8 (undecodable on the command line; they could not be printed
    in an error line either)."""
    text = os.fspath(text)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return "is not valid UTF-8"
    if "\x00" in text:
        return "contains a NUL byte"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes of undecodable argv bytes
        return "is not valid UTF-8"
    return None


def checked_path(text: str | os.PathLike, what: str,
                 error: type[NeuronatlasError] = NeuronatlasError) -> Path:
    """``text`` as a Path, or ``error`` naming ``what`` when no file can have that name."""
    problem = path_problem(text)
    if problem:
        raise error(f"{what} {shown_path(text)} {problem}")
    return Path(text)


def shown_path(text: str | os.PathLike, limit: int = 80) -> str:
    """A name quoted for an error line: its bytes as they are, escaped where they are not
    printable UTF-8, cut to ``limit`` characters."""
    try:
        name = os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeError:  # a lone surrogate that no file system name encodes
        name = os.fspath(text).encode("utf-8", "backslashreplace").decode("ascii")
    name = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
    return f"'{name[:limit]}'"


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """The file's sha256, read in chunks (a dataset may be hundreds of MB); OSError when
    it cannot be read."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


MISSING = "not found"  # what :func:`file_problem` says of a path that names nothing
_SPECIAL = ((stat.S_ISDIR, "is a directory"), (stat.S_ISFIFO, "is not a regular file (a FIFO)"),
            (stat.S_ISCHR, "is not a regular file (a character device)"),
            (stat.S_ISBLK, "is not a regular file (a block device)"),
            (stat.S_ISSOCK, "is not a regular file (a socket)"))


def _mode_problem(mode: int) -> str | None:
    """None for a regular file's mode, else what the file is."""
    if stat.S_ISREG(mode):
        return None
    return next((why for test, why in _SPECIAL if test(mode)), "is not a regular file")


def file_problem(path: str | os.PathLike) -> str | None:
    """None when ``path`` names a regular file (links followed), else why it cannot be read
    as one: :data:`MISSING`, ``"is a directory"``, ``"is not a regular file (a FIFO)"`` (or
    a device, a socket), the name's own problem (a NUL byte, not UTF-8: see
    :func:`~neuronatlas.fileio.path_problem`) or ``"cannot be read (reason)"``. It only
    stats the path: a FIFO is never opened (reading one blocks until a writer comes)."""
    problem = path_problem(path)
    if problem:
        return problem
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return MISSING
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    except ValueError:  # a name the OS refuses that path_problem let through
        return "is not a name a file can have"
    return _mode_problem(mode)


def shown(path: str | os.PathLike) -> str:
    """``path`` for an error line: as it is, or quoted and escaped when it holds a NUL byte
    or is not UTF-8."""
    return os.fsdecode(path) if not path_problem(path) else shown_path(path)


def open_regular(path: str | os.PathLike, error: type[NeuronatlasError] = NeuronatlasError,
                 *, what: str | None = None, nofollow: bool = False) -> tuple[BinaryIO, int]:
    """``path`` opened for reading, and its size; else ``error`` saying what it is (see
    :func:`file_problem`), after ``what`` (default: the path). Opened without blocking and
    checked again once open, so that a FIFO put in its place after the check is never
    read; ``nofollow``: a symbolic link as the last component is refused."""
    why = file_problem(path)
    if why is None:
        flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_BINARY", 0) | (getattr(os, "O_NOFOLLOW", 0) if nofollow else 0))
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            why = f"cannot be read ({exc.strerror or exc})"
        else:
            st = os.fstat(fd)
            why = _mode_problem(st.st_mode)
            if why is None:
                return os.fdopen(fd, "rb"), st.st_size
            os.close(fd)
    raise error(f"{what or shown(path)} {why}")


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) and check that it can be written to."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"cannot create folder {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RunFolderError(f"folder {path} is not writable")
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (a file that already holds exactly ``data``
    is left untouched). ``fsync=False`` (for thousands of small files
    followed by one :func:`os.sync`) keeps the atomic rename but skips the per-file flush."""
    path = Path(path)
    if _same_content(path, data):  # keep the file (and its mtime) when nothing changed
        return
    ensure_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_temp_tag()}.", suffix=".tmp",
                                   dir=path.parent)
    except OSError as exc:
        raise RunFolderError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; an artefact is for sharing
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):  # a full disk, a quota: one line, the old file kept
            raise RunFolderError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def _temp_tag() -> str:
    """Who writes a temporary file: ``@<host>-<pid>`` (read at each write: a forked
    process is another writer)."""
    return f"@{socket.gethostname()}-{os.getpid()}"


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of :func:`atomic_write_bytes` under ``folder`` whose
    writer, a process of this host, is gone (killed between writing and renaming: a
    worker SIGKILLed mid-task left ``.config.json.*.tmp`` behind); returns them. A live
    writer's files, and other hosts', are left alone."""
    host = socket.gethostname()
    removed = []
    for tmp in Path(folder).rglob(".*.tmp"):
        # ".<name>.@<host>-<pid>.<random>.tmp", read from the right (a host may hold dots)
        tag = tmp.name[: -len(".tmp")].rsplit(".", 1)[0].rsplit("@", 1)[-1]
        who, _, pid = tag.rpartition("-")
        if who != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _umask() -> int:
    """The process's umask, read without changing it (Linux), else set and restored."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _same_content(path: Path, data: bytes, chunk: int = 1 << 20) -> bool:
    """Whether ``path`` holds exactly ``data`` (read in chunks, stopping at a difference)."""
    view = memoryview(data)
    try:
        if path.stat().st_size != len(data):
            return False
        with open(path, "rb") as f:
            for start in range(0, len(data), chunk):
                if f.read(chunk) != view[start:start + chunk]:
                    return False
        return True
    except OSError:
        return False


def atomic_write_npz(path: str | os.PathLike, **arrays) -> None:
    """Compressed ``.npz`` of ``arrays``, written atomically."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, fsync: bool = True) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n", fsync=fsync)


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line (rewritten atomically, so a reader never sees half a line)."""
    path = Path(path)
    old = path.read_text() if path.exists() else ""
    atomic_write_text(path, old + json.dumps(record) + "\n")
