"""Fuzzing: every parser a user's bytes reach, fed by Hypothesis. The contract:
a well-formed input is read, anything else is one of the package's own errors (one line
from the CLI, a 4xx from the server), never another exception, a hang or a huge
allocation. docs/reliability.md has the table of what is tried."""

from __future__ import annotations

import io
import json
import struct
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import neuronatlas as na
from neuronatlas.data.idx import IdxSpec, parse_idx, verify
from neuronatlas.errors import NeuronatlasError
from neuronatlas.vis.images import load_image

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- IDX files --------------------------------------------------------------------------
def _idx(dims: list[int], payload: bytes, dtype_code: int = 0x08) -> bytes:
    return bytes([0, 0, dtype_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) \
        + payload


@FAST
@given(st.binary(max_size=200))
def test_idx_parser_on_arbitrary_bytes(raw):
    try:
        parse_idx(raw)
    except NeuronatlasError:
        pass


@FAST
@given(st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=4), st.binary(max_size=64),
       st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]))
def test_idx_parser_on_headers_that_lie(dims, payload, code):
    """Dimensions up to 2^32 each: refused before anything of that size is allocated."""
    raw = _idx(dims, payload, code)
    try:
        arr = parse_idx(raw)
    except NeuronatlasError:
        return
    assert arr.size * arr.itemsize <= len(raw)


SPEC = IdxSpec("t10k-labels-idx1-ubyte", "0" * 64, 0x00000801, (10000,))


@FAST
@given(st.binary(max_size=64))
def test_idx_verify_against_a_spec(raw):
    try:
        verify(raw, SPEC)
    except NeuronatlasError:
        pass


@FAST
@given(st.binary(max_size=2000))
def test_gzip_streams_are_bounded_by_the_expected_size(raw):
    """Any bytes after a gzip magic, and real gzip streams of any content: never inflated
    beyond the size the file can be."""
    import gzip

    for blob in (b"\x1f\x8b" + raw, gzip.compress(raw * 20)):
        try:
            verify(blob, SPEC)
        except NeuronatlasError:
            pass


# --- model files (safetensors) ------------------------------------------------------------
def _safetensors(header: dict | bytes, data: bytes = b"") -> bytes:
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + data


_names = st.sampled_from(["0.weight", "0.bias", "2.weight", "2.bias", "2000000000.bias",
                          "x", "", "0.weight.extra", "__metadata__"])
_tensor = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F64", "F16", "BF16", "I64", "U8", "F8", 3, None]),
    "shape": st.lists(st.integers(-2, 2**31), max_size=3),
    "data_offsets": st.lists(st.integers(-5, 2**40), min_size=0, max_size=3),
})


@FAST
@given(st.dictionaries(_names, _tensor, max_size=5), st.binary(max_size=128))
def test_model_loader_on_malformed_safetensors(tmp_path, header, data):
    path = tmp_path / "m.safetensors"
    path.write_bytes(_safetensors(header, data))
    try:
        na.MLP.load(path, activation="relu")
    except NeuronatlasError as exc:
        assert len(str(exc)) < 2000  # a line a person can read, never the whole header


@FAST
@given(st.binary(max_size=300))
def test_model_loader_on_arbitrary_bytes(tmp_path, raw):
    path = tmp_path / "m.safetensors"
    path.write_bytes(raw)
    try:
        na.MLP.load(path, activation="relu")
    except NeuronatlasError:
        pass


def test_a_header_length_beyond_the_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(NeuronatlasError):
        na.MLP.load(path, activation="relu")


# --- images -----------------------------------------------------------------------------
@FAST
@given(st.binary(max_size=400), st.sampled_from([".png", ".npy", ".jpg"]))
def test_image_loader_on_arbitrary_bytes(tmp_path, raw, suffix):
    path = tmp_path / f"img{suffix}"
    path.write_bytes(raw)
    try:
        img = load_image(path)
    except NeuronatlasError:
        return
    assert img.shape == (784,) and np.isfinite(img).all()


@FAST
@given(st.lists(st.integers(0, 40), min_size=1, max_size=4),
       st.sampled_from(["<f4", "<f8", "|u1", "<i8", "|b1", "<c8"]),
       st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0, float("nan"), float("inf")]))
def test_npy_image_loader_on_any_array(tmp_path, shape, dtype, fill):
    path = tmp_path / "img.npy"
    with np.errstate(invalid="ignore"):
        arr = np.full(shape, fill).astype(dtype)
    buf = io.BytesIO()
    np.save(buf, arr)
    path.write_bytes(buf.getvalue())
    try:
        img = load_image(path)
    except NeuronatlasError:
        return
    assert img.shape == (784,) and 0 <= img.min() and img.max() <= 1


# --- configs from JSON (the server's and every saved config's path) ------------------------
_values = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.lists(st.integers(), max_size=2))


@FAST
@given(st.dictionaries(st.sampled_from([f.name for f in na.VisConfig.__dataclass_fields__.values()]
                                       + ["bogus"]), _values, max_size=6))
def test_vis_config_from_any_json_is_a_config_or_a_config_error(fields):
    try:
        config = na.VisConfig.from_dict(fields)
    except na.ConfigError as exc:
        assert len(str(exc)) < 500
        return
    assert config.steps >= 1 and np.isfinite(config.lr)


@FAST
@given(st.sampled_from(["paper", "readable", "diverse", "accentuate", "x", ""]),
       st.dictionaries(st.sampled_from(["steps", "tv", "tv_beta", "diversity", "jitter_px",
                                        "param", "zoom"]), _values, max_size=3))
def test_presets_with_any_changes(name, changes):
    try:
        na.VisConfig.preset(name, **changes)
    except na.ConfigError:
        pass


# --- the server ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server_client(tmp_path_factory):
    import warnings

    pytest.importorskip("starlette")
    with warnings.catch_warnings():  # Starlette 1.x prefers httpx2 for its test client
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    from neuronatlas.atlas.server import create_app

    run = tmp_path_factory.mktemp("fuzz-run")
    atlas = tmp_path_factory.mktemp("fuzz-atlas")
    (atlas / "index.html").write_text("<!doctype html><title>atlas</title>")
    model = na.MLP.init((784, 12, 10), rng=np.random.default_rng(0))
    app = create_app(run, model, atlas_dir=atlas,
                     test_images=np.zeros((5, 784), np.float32))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-5, 5),
                               st.floats(allow_nan=False), st.text(max_size=8)),
                     lambda inner: st.one_of(st.lists(inner, max_size=4),
                                             st.dictionaries(st.text(max_size=8), inner,
                                                             max_size=4)),
                     max_leaves=12)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["/api/visualize", "/api/query"]),
       st.one_of(_json, st.fixed_dictionaries(
           {"layer": st.integers(-1, 3), "neuron": st.integers(-1, 12),
            "config": st.dictionaries(st.sampled_from(["steps", "lr", "tv", "preset", "param",
                                                       "init", "diversity", "bogus"]),
                                      _json, max_size=3)})))
def test_server_answers_any_json_with_a_result_or_a_json_4xx(server_client, path, body):
    if isinstance(body, dict) and path == "/api/visualize" and "config" in body:
        body["config"]["steps"] = 2  # keep the optimisations that are accepted short
    r = server_client.post(path, content=json.dumps(body).encode(),
                           headers={"content-type": "application/json"})
    assert r.status_code in (200, 400, 408, 413, 415, 422), (r.status_code, r.text[:200])
    if r.status_code != 200:
        assert "error" in r.json()


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_server_answers_any_bytes_with_a_json_4xx(server_client, raw):
    r = server_client.post("/api/query", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (200, 400, 413, 422) and ("error" in r.json() or r.status_code == 200)


def _result_or_one_error_line(code, err: str, argv) -> None:
    """The CLI's contract: exit 0, or exit 2 with an ``error:`` line; never a traceback."""
    assert code in (0, 2), (argv, err)
    assert "Traceback" not in err, err
    if code == 2:
        assert [line for line in err.splitlines() if line.startswith("error: ")], err


def _main_exit(argv) -> int:
    from neuronatlas.cli import main

    try:
        main(argv)
    except SystemExit as exc:
        return exc.code
    return 0


# --- every flag of the CLI's visualize (in process: main() is the entry point) ------------
_flag_values = st.one_of(st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1", "1e308", "1e-9",
                                          "3", "17", "abc", "", "0.5", "mnist:x", "random"]),
                         st.text(max_size=6))
_VIS_FLAGS = [f.name.replace("_", "-") for f in na.VisConfig.__dataclass_fields__.values()
              if f.type != "bool" and f.name not in ("steps", "init")] + ["preset"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("fuzz-cli") / "run"
    run.mkdir()
    model = na.MLP.init((784, 8, 10), rng=np.random.default_rng(0))
    model.save(run / "model.safetensors")
    return run


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(_VIS_FLAGS), _flag_values), min_size=1, max_size=3),
       st.sampled_from(["1:3", "2:9", "0:0", "3:1", "x", "1:-1", "1:99999999999"]))
def test_visualize_flags_are_a_result_or_one_error_line(cli_run, capsys, flags, target):
    argv = ["visualize", target, "--run", str(cli_run), "--steps", "2", "--scale", "1"]
    for flag, value in flags:
        argv += [f"--{flag}", value]
    code = _main_exit(argv)
    err = capsys.readouterr().err
    _result_or_one_error_line(code, err, argv)


_CASES = {
    "query": lambda v: ["query", v[0], "--target", v[1], "--json"],
    "adversarial": lambda v: ["adversarial", "--index", v[0], "--target", v[1], "--steps", "3",
                              "--lr", v[2], "--confidence", v[3], "--method", v[4]],
    "evaluate": lambda v: ["evaluate", "--split", v[0]],
}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(_CASES)),
       st.lists(st.one_of(_flag_values, st.sampled_from(["mnist:3", "mnist:99999", "7:1",
                                                         "1:2", "small", "paper", "test"])),
                min_size=5, max_size=5))
def test_other_verbs_flags_are_a_result_or_one_error_line(cli_run, mnist, capsys, verb, values):
    code = _main_exit([*_CASES[verb](values), "--run", str(cli_run), "--dataset", "mnist"])
    err = capsys.readouterr().err
    _result_or_one_error_line(code, err, (verb, values))


# --- train's and import's flags, on a tiny dataset (each example trains in well under 1 s) --
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """64 + 32 images of 4x4 pixels in 3 classes, and a PyTorch-style state_dict for them."""
    folder = tmp_path_factory.mktemp("fuzz-train")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (96, 4, 4), dtype=np.uint8)
    y = rng.integers(0, 3, 96)
    np.savez(folder / "tiny.npz", x_train=x[:64], y_train=y[:64], x_test=x[64:], y_test=y[64:])
    model = na.MLP.init((16, 8, 3), rng=rng)
    from safetensors.numpy import save_file

    save_file({"0.weight": model.weights[0], "0.bias": model.biases[0],
               "2.weight": model.weights[1], "2.bias": model.biases[1]},
              folder / "sd.safetensors")
    return folder


def _flag_and_value(flags: dict[str, list[str]]):
    """A flag, then one of its telling values or any value at all."""
    return st.sampled_from(sorted(flags)).flatmap(
        lambda f: st.tuples(st.just(f), st.one_of(st.sampled_from(flags[f]), _flag_values)))


def _saved_model(run) -> bytes | None:
    """The run's finished model: in the run folder, or where --overwrite keeps it until
    the new one is saved."""
    for path in (run / "model.safetensors", run / "replaced" / "model.safetensors"):
        if path.exists():
            return path.read_bytes()
    return None


_TRAIN_FLAGS = {
    "sizes": ["16,8,3", "16,3", "16,99999999999,3", "16,0,3", "784,10", "16,-2,3", "1,2"],
    "batch-size": ["1", "32", "64", "1000"],
    "epochs": ["0", "1", "2"],
    "lr": ["0.1", "1e308"],
    "fine-tune-epochs": ["0", "1"],
    "fine-tune-lr": ["0.01"],
    "ema-decay": ["0", "0.5", "1", "2"],
    "seed": ["3", "-4", "99999999999999999999"],
    "activation": ["relu", "gelu,tanh", "leaky_relu:0.2", "leaky_relu:x", "relu,relu,relu",
                   "softplus:0"],
    "stop-after-epoch": ["1", "0"],
}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_flag_and_value(_TRAIN_FLAGS), min_size=1, max_size=4),
       st.sampled_from([[], ["--overwrite"], ["--overwrite"], ["--resume"],
                        ["--quick", "--overwrite"]]))
@example([("lr", "1e308")], ["--overwrite"])  # diverges: one line, no numpy warnings
@example([("sizes", "16,99999999999,3")], ["--overwrite"])  # refused before anything goes
def test_train_flags_are_a_model_or_one_error_line(tiny_data, capsys, flags, mode):
    run = tiny_data / "run"
    argv = ["train", "--run", str(run), "--dataset", str(tiny_data / "tiny.npz"),
            "--sizes", "16,8,3", "--epochs", "1", "--fine-tune-epochs", "0", *mode]
    for flag, value in flags:
        argv += [f"--{flag}", value]
    before = _saved_model(run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = _main_exit(argv)
    err = capsys.readouterr().err
    _result_or_one_error_line(code, err, argv)
    assert not caught, [str(w.message) for w in caught]
    if code == 2:
        if before is not None:  # a failed train leaves the saved model as it was
            assert _saved_model(run) == before, argv


_IMPORT_FLAGS = {
    "activation": ["relu", "gelu", "relu,relu", "nope", ""],
    "sizes": ["16,8,3", "16,9,3", "16,3", "x"],
    "input-shape": ["4,4,1", "2,8,1", "4,4,2", "0,4,4", "4x4x1", "a"],
    "dataset": ["tiny", "mnist-x", "/nonexistent.npz"],
}


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_flag_and_value(_IMPORT_FLAGS), min_size=1, max_size=3),
       st.sampled_from(["sd.safetensors", "tiny.npz", "missing.onnx", "sd.pt"]))
def test_import_flags_are_a_run_or_one_error_line(tiny_data, capsys, flags, source):
    options = {"dataset": str(tiny_data / "tiny.npz")}
    for flag, value in flags:
        options[flag] = str(tiny_data / "tiny.npz") if value == "tiny" else value
    argv = ["import", str(tiny_data / source), "--run", str(tiny_data / "imported"),
            "--overwrite", *[a for k, v in options.items() for a in (f"--{k}", v)]]
    code = _main_exit(argv)
    err = capsys.readouterr().err
    _result_or_one_error_line(code, err, argv)


# --- the options every model verb shares, and analyze's --k, on a tiny model ---------------
_SHARED_FLAGS = {
    "model": ["MODEL", "/nonexistent.safetensors", "", "NPZ", "\x00", "m\udcff"],
    "activation": ["relu", "gelu", "relu,relu", "nope", ""],
    "input-shape": ["28,28,1", "784,1,1", "28x28x1", "0,28,28", "4,4,1", "a"],
    "dataset": ["mnist", "fashion-mnist", "NPZ", "/nonexistent.npz", "mnist-x", "x\x00.npz"],
    "data-dir": ["/nonexistent", "", ".", "\x00", "d\udcff"],
    "k": ["1", "8", "0", "-3", "100000", "x"],
}


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, tiny_data):
    run = tmp_path_factory.mktemp("fuzz-shared") / "run"
    run.mkdir()
    na.MLP.init((784, 8, 10), rng=np.random.default_rng(0)).save(
        run / "model.safetensors", {"dataset": "mnist"})
    return run


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["evaluate", "analyze", "atlas", "data"]),
       st.lists(_flag_and_value(_SHARED_FLAGS), min_size=1, max_size=3))
def test_shared_model_flags_are_a_result_or_one_error_line(shared_run, tiny_data, mnist, capsys,
                                                           verb, flags):
    names = {"MODEL": str(shared_run / "model.safetensors"),
             "NPZ": str(tiny_data / "tiny.npz")}
    argv = [verb] if verb == "data" else [verb, "--run", str(shared_run)]
    for flag, value in flags:
        if verb == "data" and flag not in ("dataset", "data-dir"):
            continue
        if flag == "k" and verb != "analyze":
            continue
        argv += [f"--{flag}", names.get(value, value)]
    code = _main_exit(argv)
    err = capsys.readouterr().err
    _result_or_one_error_line(code, err, argv)


# --- names no file can have, in every path a verb takes -----------------------------------
_PATH_ARGS = [
    ["evaluate", "--run", "RUN", "--model", "BAD"], ["evaluate", "--run", "BAD"],
    ["evaluate", "--run", "RUN", "--dataset", "BAD"],
    ["evaluate", "--run", "RUN", "--data-dir", "BAD"],
    ["data", "--dataset", "BAD"], ["data", "--data-dir", "BAD"],
    ["train", "--run", "BAD"], ["train", "--dataset", "BAD"],
    ["query", "BAD", "--run", "RUN"], ["visualize", "1:0", "--run", "RUN", "--init", "BAD"],
    ["import", "BAD", "--dataset", "mnist"], ["import", "MODEL", "--dataset", "BAD"],
    ["atlas", "--run", "BAD"], ["analyze", "--run", "RUN", "--dataset", "BAD"],
    ["reproduce", "--run", "BAD"], ["reproduce", "--model", "BAD"],
    ["serve", "--run", "RUN", "--data-dir", "BAD"],
]


@pytest.mark.parametrize("bad", ["\x00", "a\x00b.npz", "\udcff", "x\udcfe.png"],
                         ids=["nul", "nul-inside", "undecodable", "undecodable-inside"])
@pytest.mark.parametrize("argv", _PATH_ARGS, ids=lambda a: "-".join(a[:2]).strip("-"))
def test_a_name_no_file_can_have_is_one_error_line(shared_run, argv, bad, capsys):
    """A NUL byte (click's own path check raised ValueError) or bytes that are not UTF-8,
    in any path option or argument: one error line that names the problem, exit 2."""
    names = {"RUN": str(shared_run), "MODEL": str(shared_run / "model.safetensors"),
             "BAD": bad}
    argv = [names.get(a, a) for a in argv]
    code = _main_exit(argv)
    err = capsys.readouterr().err
    _result_or_one_error_line(code, err, argv)
    assert code == 2, (argv, err)
    assert "NUL byte" in err or "not valid UTF-8" in err, (argv, err)
