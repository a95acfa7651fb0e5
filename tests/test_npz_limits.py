"""A dataset .npz is a zip of NPY members: each member's header is read and checked (its
dtype, shape and size against what the member holds and the limits) before any of its
data is inflated, and reading never goes past the sizes the zip and the header declare."""

import io
import struct
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from neuronatlas import DataError, load_dataset
from neuronatlas.data import npz


def npy(array) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def members(**arrays) -> dict[str, bytes]:
    """The four arrays of a small dataset as NPY member bytes, ``arrays`` replacing some
    (bytes are taken as they are)."""
    base = {"x_train": np.zeros((4, 5, 5), np.uint8), "y_train": np.arange(4) % 2,
            "x_test": np.zeros((2, 5, 5), np.uint8), "y_test": np.arange(2)}
    base.update(arrays)
    return {f"{k}.npy": v if isinstance(v, bytes) else npy(v) for k, v in base.items()}


def write_zip(path, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def patch_central(path, name: str, **fields):
    """Rewrite ``name``'s central-directory entry: ``method``, ``crc``, ``size``."""
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")
    while data[at + 46: at + 46 + len(name)] != name.encode():
        at = data.index(b"PK\x01\x02", at + 4)
    offsets = {"method": (10, "<H"), "crc": (16, "<I"), "size": (24, "<I")}
    for key, value in fields.items():
        offset, fmt = offsets[key]
        struct.pack_into(fmt, data, at + offset, value)
    path.write_bytes(bytes(data))


@pytest.fixture
def inflated(monkeypatch):
    """How many inflated bytes were read from zip members."""
    count = [0]
    original = zipfile.ZipExtFile.read

    def read(self, n=-1):
        data = original(self, n)
        count[0] += len(data)
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
    return count


def test_a_small_dataset_reads(tmp_path):
    data = load_dataset(write_zip(tmp_path / "d.npz", members()))
    assert data.shape == (5, 5, 1) and len(data.train_x) == 4 and data.test_y.tolist() == [0, 1]


def test_an_npy_file_named_npz(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(npy(np.zeros((4, 5, 5), np.uint8)))
    with pytest.raises(DataError, match="single .npy array"):
        load_dataset(path)


def test_a_member_that_is_not_an_npy_array(tmp_path):
    path = write_zip(tmp_path / "d.npz", members(x_train=b"a text file, not an array\n"))
    with pytest.raises(DataError, match="x_train is not an NPY array"):
        load_dataset(path)


def test_members_the_dataset_does_not_use_are_not_read(tmp_path, inflated):
    files = {**members(), "notes.txt": b"not an array " * 100_000}
    assert load_dataset(write_zip(tmp_path / "d.npz", files)).n_inputs == 25
    assert inflated[0] < 10_000


@pytest.mark.parametrize("shape", [(10**12, 4, 4), (4, -5, 5), (2**62, 2**62, 4)])
def test_a_header_that_claims_more_than_its_member_holds(tmp_path, inflated, shape):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": shape})
    member = header.getvalue() + bytes(1200)  # 1.3 KB claiming 14.6 TiB
    path = write_zip(tmp_path / "d.npz", members(x_train=member))
    with pytest.raises(DataError, match="x_train"):
        load_dataset(path)
    assert inflated[0] < 2000


def test_an_oversized_header_is_refused_unread(tmp_path, inflated):
    member = b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30) + bytes(5000)
    with pytest.raises(DataError, match="header"):
        load_dataset(write_zip(tmp_path / "d.npz", members(x_train=member)))
    assert inflated[0] < 100


def test_object_members_are_not_unpickled(tmp_path):
    out = io.BytesIO()
    np.save(out, np.array(["a", "b", None], object), allow_pickle=True)
    path = write_zip(tmp_path / "d.npz", {**members(), "class_names.npy": out.getvalue()})
    with pytest.raises(DataError, match="Python objects"):
        load_dataset(path)


def blank_npz(path, n_train, side):
    """A compressed .npz of ``n_train`` (and 2 test) black side x side images."""
    np.savez_compressed(path, x_train=np.zeros((n_train, side, side), np.uint8),
                        y_train=np.zeros(n_train, np.int64),
                        x_test=np.zeros((2, side, side), np.uint8), y_test=np.zeros(2, np.int64))
    return path


def test_the_declared_inflated_size_is_capped_before_reading(tmp_path, inflated, monkeypatch):
    monkeypatch.setattr(npz, "MAX_INFLATED", 1 << 20)
    path = blank_npz(tmp_path / "d.npz", 100, 128)
    with pytest.raises(DataError, match="inflate"):
        load_dataset(path)
    assert inflated[0] == 0


def test_too_many_image_values_are_refused_before_reading(tmp_path, inflated, monkeypatch):
    monkeypatch.setattr(npz, "MAX_VALUES", 10_000)
    path = blank_npz(tmp_path / "d.npz", 500, 5)
    with pytest.raises(DataError, match="at most 10,000"):
        load_dataset(path)
    assert inflated[0] < 5000


def test_an_inconsistent_bomb_is_refused_before_its_images_are_inflated(tmp_path, inflated):
    """6 MB of zeros deflate to a few KB; labels of the wrong length are found from the
    headers, before the images are inflated."""
    path = tmp_path / "d.npz"
    np.savez_compressed(path, x_train=np.zeros((2000, 32, 32, 3), np.uint8),
                        y_train=np.zeros(1999, np.int64), x_test=np.zeros((2, 32, 32, 3), np.uint8),
                        y_test=np.zeros(2, np.int64))
    assert path.stat().st_size < 100_000
    with pytest.raises(DataError, match=r"y_train has shape \(1999,\), expected \(2000,\)"):
        load_dataset(path)
    assert inflated[0] < 5000


def test_a_stream_longer_than_its_declared_size_is_read_only_up_to_it(tmp_path, inflated):
    real = npy(np.zeros((4, 5, 5), np.uint8))
    path = write_zip(tmp_path / "d.npz", members(x_train=real + bytes(10 << 20)))
    patch_central(path, "x_train.npy", size=len(real), crc=zlib.crc32(real))
    data = load_dataset(path)
    assert data.n_inputs == 25 and not data.train_x.any()
    assert inflated[0] < 10_000


def test_a_corrupt_member_is_one_clear_error(tmp_path):
    path = write_zip(tmp_path / "d.npz", members())
    patch_central(path, "x_train.npy", crc=12345)
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(path)
    path = write_zip(tmp_path / "e.npz", members())
    patch_central(path, "y_train.npy", method=99)  # a compression zipfile does not know
    with pytest.raises(DataError, match="compressed with zip method 99"):
        load_dataset(path)


def test_a_bzip2_member_is_refused_before_it_is_inflated(tmp_path):
    """zipfile inflates bzip2 (and lzma) a whole chunk at a time with no cap: a 9 KB file
    whose member held 256 MiB of zeros took 515 MiB before its CRC failed."""
    import tracemalloc

    path = tmp_path / "b.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_BZIP2) as zf:
        for name, data in members(x_train=np.zeros((8192, 64, 64), np.uint8)).items():
            zf.writestr(name, data)  # 32 MiB of zeros in a few hundred bytes
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="compressed with zip method 12"):
            load_dataset(path)
        assert tracemalloc.get_traced_memory()[1] < 8 << 20
    finally:
        tracemalloc.stop()


# --- fuzzing: any arrays, any bytes: a dataset that keeps its promises, or one DataError ---
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
DTYPES = ["|u1", "<f4", ">f8", "<f2", "<i8", ">u8", "<u8", "|b1", "<c8", "<U3", "|S3", "|V4",
          "<M8[s]"]
_array = st.tuples(st.lists(st.integers(0, 6), max_size=5), st.sampled_from(DTYPES),
                   st.sampled_from([0, 1, 3, 255, -1, 2**63, 0.5, 2.0, float("nan")]))


def _make(spec):
    shape, dtype, fill = spec
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return np.full(shape, fill).astype(dtype)
        except (OverflowError, ValueError, TypeError):
            return np.zeros(shape, dtype)


def assert_promises_kept(data):
    h, w, c = data.shape
    assert data.n_inputs == h * w * c >= 1
    for x, y in ((data.train_x, data.train_y), (data.test_x, data.test_y)):
        assert x.dtype == np.float32 and x.ndim == 2 and len(x) == len(y) >= 1
        assert np.isfinite(x).all() and 0 <= x.min() and x.max() <= 1
        assert y.dtype == np.int64 and 0 <= y.min() and y.max() < data.n_classes


def read_or_refuse(path):
    """A dataset that keeps every promise of a Dataset, or one DataError."""
    try:
        data = load_dataset(path)
    except DataError:
        return
    assert_promises_kept(data)


@FAST
@given(st.dictionaries(st.sampled_from(["x_train", "y_train", "x_test", "y_test",
                                        "class_names", "shape"]), _array))
def test_any_arrays_are_a_dataset_or_one_error(tmp_path, specs):
    files = members(**{k: _make(v) for k, v in specs.items()})
    read_or_refuse(write_zip(tmp_path / "d.npz", files))


@FAST
@given(st.sampled_from(["x_train", "y_train", "shape"]), st.integers(0, 200),
       st.binary(min_size=1, max_size=8), st.booleans())
@example("x_train", 8, b"\xff\xff", False)  # the header's length
@example("x_train", 30, b"(9999999999999, ", False)  # inside the header's shape
def test_npy_members_with_bytes_changed_are_a_dataset_or_one_error(tmp_path, key, at, new, cut):
    arrays = {"shape": np.array([5, 5, 1])}
    raw = bytearray(members(**arrays)[f"{key}.npy"])
    raw[at:at + len(new)] = new
    files = members(**{**arrays, key: bytes(raw[:at] if cut else raw)})
    read_or_refuse(write_zip(tmp_path / "d.npz", files))


@FAST
@given(st.binary(max_size=400))
def test_any_bytes_are_one_error(tmp_path, raw):
    path = tmp_path / "d.npz"
    path.write_bytes(raw)
    with pytest.raises(DataError):
        load_dataset(path)
