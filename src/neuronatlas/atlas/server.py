"""``neuronatlas serve``: the static atlas plus a live visualiser and a drawing canvas.

An ASGI app (Starlette, run by uvicorn) over one model:

* ``GET /`` and every other path: files of the atlas folder, and nothing outside it;
* ``GET /live.html`` (+ ``live.js``, ``live.css`` and ``common.js``, which the atlas page
  loads too): the live page, shipped in the package;
* ``GET /api/model``: sizes, run name, the limits below, VisConfig's defaults and the
  library's names the live page offers (objectives, parametrisations, optimisers, presets,
  starts, every VisConfig field's type, default and help): the page types none itself;
* ``POST /api/visualize``: activation maximisation of one neuron, streamed as
  server-sent events (``step`` events with the activation and a small image, then one
  ``done`` event with the final numbers, or one ``error`` event);
* ``POST /api/query``: a 784-pixel image -> every layer's activations and the outputs.

Every request is validated against :class:`ServerLimits` and refused with a 4xx JSON
``{"error": "..."}`` that says what is wrong (docs/http-api.md lists every endpoint and
refusal). At most ``max_requests`` requests are worked on at once (beyond, a JSON 503);
an open connection that sends nothing costs no request: over ``max_connections`` the
oldest connection with no request in hand is closed. The optimisations run in worker threads,
at most ``concurrency`` at once (others wait up to ``queue_seconds``, then get a 503),
each stopped after ``time_limit`` seconds or when its client goes away, so one
visitor cannot starve the others and the event loop keeps serving pages meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import ipaddress
import json
import math
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import unquote_to_bytes

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..config import FIELD_CHOICES, INIT_NAMES, VisConfig
from ..errors import ConfigError, DataError, NeuronatlasError
from ..explanations.attribution import STEPS as IG_STEPS
from ..explanations.attribution import attribute
from ..explanations.search import search, training_maxima
from ..nn.blas import blas_threads
from ..nn.mlp import MLP, model_sha256
from ..shapes import MNIST_PIXELS
from ..vis.objectives import check_neuron
from ..vis.params import mean_magnitude
from ..vis.presets import DESCRIPTIONS, PRESETS, preset_fields
from ..vis.prototypes import image_prototypes
from ..vis.query import query
from ..vis.visualize import visualize
from .sprites import COLS as SPRITE_COLS

STATIC = Path(__file__).parent / "static"
LIVE_FILES = ("live.html", "live.js", "live.css", "common.js")  # common.js: both pages
INIT_INDEXED = "mnist"  # init "mnist:<test index>", beside INIT_NAMES; never a file path


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask of the server; every default carries its reason."""

    max_body_bytes: int = 64 * 1024  # a 784-pixel image as JSON is about 16 KiB
    max_steps: int = 1000  # about 2.5 s for one neuron of the paper's network on one core
    max_weight: float = 10.0  # |tv|, |l1|, |penalty|; the paper's TV range ends at 0.256
    max_lr: float = 10.0  # the default is 0.05; larger steps only saturate the image
    max_seed: int = 2**32 - 1  # what a numpy seed sequence takes without surprise
    concurrency: int = 2  # optimisations at once: one per core of a small machine
    queue_seconds: float = 10.0  # how long a request waits for a free slot before a 503
    time_limit: float = 20.0  # seconds of optimisation per request, then it is stopped
    max_frames: int = 100  # images streamed per optimisation (every k-th step)
    max_diversity: int = 1  # pictures per request: the page streams one
    header_seconds: float = 10.0  # a connection must send a whole request head within this
    body_seconds: float = 10.0  # and its body within this (a 64 KiB body takes milliseconds)
    max_requests: int = 200  # being worked on at once (head in, response not done); then 503
    max_connections: int = 200  # open at once; beyond, the oldest idle one is closed


class Problem(Exception):
    """A request the server refuses: HTTP ``status`` and a message for the user."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# --- request parsing ---------------------------------------------------------------------
async def read_json(request: Request, max_bytes: int, seconds: float = 10.0):
    """The JSON body, read with a byte counter (Content-Length is not trusted) within
    ``seconds`` (a body sent a byte at a time is a 408, not a worker held forever)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":  # media types are case-insensitive (RFC 9110)
        raise Problem(415, "send the body as JSON with Content-Type: application/json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise Problem(413, f"request body of {declared} bytes is over the limit of "
                           f"{max_bytes} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise Problem(413, f"request body is over the limit of {max_bytes} bytes")
                chunks.append(chunk)
    except ClientDisconnect:  # one line in the access log, not a traceback per disconnect
        raise Problem(400, "the client went away while sending its request") from None
    except TimeoutError:
        raise Problem(408, f"the request body did not arrive within {seconds:g} s") from None
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Problem(400, "request body is nested too deeply") from None
    if not isinstance(body, dict):
        raise Problem(400, "request body must be a JSON object")
    return body


def check_keys(body: dict, allowed: set[str], what: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Problem(422, f"unknown {what} field(s) {unknown}; allowed: {sorted(allowed)}")


def parse_int(body: dict, name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Problem(422, f"{name} must be an integer, got {value!r}")
    return value


def parse_neuron(body: dict, sizes: tuple[int, ...]) -> tuple[int, int]:
    """``{"layer": L, "neuron": N}`` checked against the model's sizes (docs/format.md)."""
    target = parse_int(body, "layer"), parse_int(body, "neuron")
    try:
        check_neuron(*target, sizes)
    except ConfigError as exc:
        raise Problem(422, str(exc)) from None
    return target


def parse_image(value, n: int = MNIST_PIXELS) -> np.ndarray:
    """``n`` finite pixels in [0, 1] (a drawn or uploaded image, row-major, channel-last)."""
    if not isinstance(value, list) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, list) else type(value).__name__
        raise Problem(422, f"image must be a list of {n} pixel values (the model's input), "
                           f"got {got}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise Problem(422, "image pixels must be numbers")
    bad = next((v for v in value if not 0 <= v <= 1), None)  # NaN fails both comparisons
    if bad is not None:
        shown = f"{bad:.3g}" if isinstance(bad, float) else f"{str(bad)[:20]}"
        raise Problem(422, f"image pixels must be finite numbers in [0, 1], got {shown}")
    return np.asarray(value, dtype=np.float32)


DEFAULT_PRESET = "readable"  # what a request that names no preset gets, as the atlas's tiles
#: the presets the live page offers (one picture per request: not ``diverse``)
LIVE_PRESETS = {name: VisConfig.preset(name).to_dict() for name in PRESETS
                if VisConfig.preset(name).diversity == 1}


def parse_config(fields, limits: ServerLimits) -> VisConfig:
    """A VisConfig from JSON: ``preset`` (default: readable) with any VisConfig field on
    top (VisConfig's own checks), within the server's caps."""
    if not isinstance(fields, dict):
        raise Problem(422, "config must be a JSON object of VisConfig fields")
    init = fields.get("init", VisConfig.init)
    if not isinstance(init, str) or not (init in INIT_NAMES
                                         or init.startswith(f"{INIT_INDEXED}:")):
        raise Problem(422, f"init must be one of {list(INIT_NAMES)} or "
                           f"'{INIT_INDEXED}:<test index>', got {init!r}")
    fields = dict(fields)
    named = "preset" in fields
    preset = fields.pop("preset", DEFAULT_PRESET)
    if not isinstance(preset, str):
        raise Problem(422, f"preset must be a name, got {preset!r}")
    try:  # init "image": visualize starts from the job's image (init_image)
        known = {f.name for f in dataclasses.fields(VisConfig)}
        if set(fields) - known:
            raise ConfigError(f"unknown VisConfig field(s) {sorted(set(fields) - known)}")
        config = VisConfig.preset(preset, **fields)
    except (ConfigError, TypeError) as exc:
        raise Problem(422, config_error(exc, preset, named, fields)) from None
    for name, cap in field_caps(limits).items():
        if (value := getattr(config, name)) > cap:
            raise Problem(422, f"config: {name} = {value!r} is above the server's cap of {cap}")
    return config


def field_caps(limits: ServerLimits) -> dict[str, float]:
    """The VisConfig fields the server caps, each with its cap (a 422 above it)."""
    caps = {"steps": limits.max_steps, "seed": limits.max_seed, "lr": limits.max_lr,
            "diversity": limits.max_diversity}
    caps.update(dict.fromkeys(("tv", "l1", "penalty", "l2", "tie", "diversity_weight"),
                              limits.max_weight))
    return caps


def vis_options(limits: ServerLimits) -> dict:
    """The names and fields the live page builds its controls from, read from the
    library's registries (config.FIELD_CHOICES, INIT_NAMES, the presets, VisConfig's
    fields): a name added in Python appears on the page, and the page types none."""
    plain, helps, caps = VisConfig().to_dict(), VisConfig.field_help(), field_caps(limits)
    fields = {}
    for f in dataclasses.fields(VisConfig):
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        fields[f.name] = {"type": kind, "default": plain[f.name], "help": helps.get(f.name, "")}
        if f.name in caps:
            fields[f.name]["cap"] = caps[f.name]
    return {
        "choices": {name: list(values) for name, values in FIELD_CHOICES.items()},
        "inits": list(INIT_NAMES), "init_indexed": INIT_INDEXED,
        "presets": [{"name": name, "description": DESCRIPTIONS.get(name, ""),
                     "sets": preset_fields(name), "live": name in LIVE_PRESETS}
                    for name in PRESETS],
        "fields": fields, "resets": choice_resets(),
    }


def choice_resets() -> dict[str, dict[str, list[str]]]:
    """For a choice that some preset's fields cannot go with (``param: maco`` and
    readable's ``blur_every = 4``), the fields the page sets back to VisConfig's default
    when it is chosen; derived from VisConfig's own checks, as a 422 names them."""
    resets: dict[str, dict[str, list[str]]] = {}
    for field, values in FIELD_CHOICES.items():
        for value in values:
            back = {name for preset in PRESETS if refused(preset, {field: value})
                    for name in preset_culprits(preset, {field: value})}
            if back:
                resets.setdefault(field, {})[value] = sorted(back)
    return resets


def config_error(exc: Exception, preset: str, named: bool, fields: dict) -> str:
    """The message for a config VisConfig refused. When the request's own fields are
    fine but clash with one the preset fills in (``param: maco`` under readable's
    ``blur_every = 4``), it names that preset field and what to send instead."""
    culprits = preset_culprits(preset, fields)
    if not culprits:
        return f"config: {exc}"
    plain = VisConfig().to_dict()
    sets = ", ".join(f"{k} = {v!r}" for k, v in culprits.items())
    send = ", ".join(f"{k}: {json.dumps(plain[k])}" for k in culprits)
    which = f"preset {preset!r}" + ("" if named else " (the default)")
    return (f"config: {which} sets {sets}, which this request's fields cannot go with "
            f"({exc}); send {send} with them, or choose another preset")


def refused(preset: str, fields: dict) -> bool:
    """Whether VisConfig refuses ``fields`` over ``preset``."""
    try:
        VisConfig.preset(preset, **fields)
    except (ConfigError, TypeError):
        return True
    return False


def preset_culprits(preset: str, fields: dict) -> dict:
    """The preset's fields (not in ``fields``) that, each set back to the paper's value,
    make the config valid; {} when the request itself is at fault."""
    try:
        VisConfig(**fields)  # over the paper's defaults
        base = preset_fields(preset)
    except (ConfigError, TypeError):
        return {}
    plain = VisConfig().to_dict()
    culprits = {}
    for name, value in base.items():
        if name in fields or value == plain.get(name):
            continue
        try:
            VisConfig.preset(preset, **{**fields, name: plain[name]})
        except (ConfigError, TypeError):
            continue
        culprits[name] = value
    return culprits


@dataclass
class VisJob:
    """One validated visualise request."""

    target: tuple[int, int]
    config: VisConfig  # init "image" or "mnist:<i>": start from ``image``
    image: np.ndarray | None  # (784,) for init "image" or "mnist:<i>"


# --- the app -----------------------------------------------------------------------------
class AtlasFiles(StaticFiles):
    """The atlas folder, and nothing outside it: ``..`` and NUL are refused outright."""

    def get_path(self, scope) -> str:
        parts = scope["path"].replace("\\", "/").split("/")
        if ".." in parts or any("\x00" in p for p in parts):
            raise Problem(400, "paths may not contain '..' or NUL: only files of the atlas "
                               "folder are served")
        return super().get_path(scope)


class LiveServer:
    """Routes over one model; holds the optimisation slots and the MNIST test set."""

    def __init__(self, run_dir: Path, model: MLP, limits: ServerLimits,
                 test_images: np.ndarray | None = None, dataset: str | None = None,
                 train_images: np.ndarray | None = None):
        self.run_dir, self.model, self.limits, self.dataset = run_dir, model, limits, dataset
        self.slots = asyncio.Semaphore(limits.concurrency)  # binds its loop on first use
        self.tasks: set[asyncio.Task] = set()
        self.test_images = test_images  # loaded once before serving, never per request
        self.test_accuracy = test_accuracy(self.run_dir, model)  # read once, at the start
        self.train_images = train_images  # the served dataset's: maco's spectrum
        self._magnitude: np.ndarray | None = None  # maco's spectrum, made on first use
        self._maxima: dict[int, np.ndarray] | None = None  # search's, made on first use
        self._maxima_lock = threading.Lock()
        self._prototypes: np.ndarray | None = None  # readable's starts, made on first use
        self._prototypes_lock = threading.Lock()
        self.model64 = model.astype(np.float64)  # attribution's, cast once, not per request
        self.vis_options = vis_options(limits)  # the registries, read once at the start

    def magnitude(self) -> np.ndarray:
        """The mean magnitude spectrum of the served dataset's training images (for maco),
        computed once per server, in the worker thread that first needs it."""
        if self.train_images is None:
            raise ConfigError("param 'maco' needs the training images of the served "
                              "dataset, which this server was started without")
        if self._magnitude is None:
            self._magnitude = mean_magnitude(self.train_images, self.model.input_shape)
        return self._magnitude

    def prototypes(self) -> np.ndarray:
        """The k-means prototypes of the served training images (init "prototype", the
        readable preset's start): from the data cache, keyed by their content hash, or
        computed there once, in the worker thread that first needs them."""
        if self.train_images is None:
            raise ConfigError("init 'prototype' needs the training images of the served "
                              "dataset, which this server was started without")
        with self._prototypes_lock:
            if self._prototypes is None:
                x = np.ascontiguousarray(self.train_images)
                sha = hashlib.sha256(x.tobytes()).hexdigest()
                self._prototypes = image_prototypes(x, sha)
        return self._prototypes

    def maxima(self) -> dict[int, np.ndarray]:
        """Every neuron's largest activation over the served training images (for search),
        computed once per server, in the worker thread that first needs it."""
        if self.train_images is None:
            raise Problem(503, "this server has no training images (the dataset could not "
                               "be loaded when it started), so no neuron's maximum is known")
        with self._maxima_lock:
            if self._maxima is None:
                self._maxima = training_maxima(self.model, self.train_images)
        return self._maxima

    # -- endpoints
    async def model_info(self, request: Request) -> JSONResponse:
        meta = self.model.metadata
        return JSONResponse({
            "run": self.run_dir.name, "sizes": list(self.model.sizes),
            "layers": self.model.n_layers, "test_accuracy": self.test_accuracy,
            "input_shape": list(self.model.input_shape),
            "class_names": list(self.model.class_names),
            "activations": sorted({a.spec for a in self.model.activation_fns}),
            "dataset": self.dataset or meta.get("dataset"),
            "limits": asdict(self.limits),
            "defaults": VisConfig.preset(DEFAULT_PRESET).to_dict(),
            "default_preset": DEFAULT_PRESET, "presets": LIVE_PRESETS,
            "preset_descriptions": {k: DESCRIPTIONS[k] for k in LIVE_PRESETS},
            "vis_options": self.vis_options,
            "sprite_cols": SPRITE_COLS,
        })

    async def query(self, request: Request) -> JSONResponse:
        body = await read_json(request, self.limits.max_body_bytes,
                               self.limits.body_seconds)
        check_keys(body, {"image"}, "query")
        image = parse_image(body.get("image"), self.model.sizes[0])
        res = await run_in_threadpool(query, self.model, image)
        probs = res.activations[self.model.n_layers]
        return JSONResponse(finite_json({
            "probabilities": [float(p) for p in probs],
            "top3": [{"class": c, "probability": p} for c, p in res.top3],
            "layers": {str(l): np.round(a.astype(np.float64), 5).tolist()
                       for l, a in res.activations.items()},
        }))

    async def attribute(self, request: Request) -> JSONResponse:
        """Integrated gradients of one image: every hidden neuron's share of a class's
        logit (the predicted one unless ``target`` is given), with each layer's
        completeness error."""
        body = await read_json(request, 2 * self.limits.max_body_bytes,
                               self.limits.body_seconds)
        check_keys(body, {"image", "baseline", "target", "steps"}, "attribute")
        image = parse_image(body.get("image"), self.model.sizes[0])
        baseline = (None if body.get("baseline") is None
                    else parse_image(body["baseline"], self.model.sizes[0]))
        n_classes = self.model.sizes[-1]
        target = None if body.get("target") is None else parse_int(body, "target")
        if target is not None and not 0 <= target < n_classes:
            raise Problem(422, f"target must be a class in 0..{n_classes - 1}, got {target}")
        steps = parse_int(body, "steps") if "steps" in body else IG_STEPS
        if not 1 <= steps <= MAX_IG_STEPS:
            raise Problem(422, f"steps must be in 1..{MAX_IG_STEPS}, got {steps}")
        t = time.perf_counter()
        res = await run_in_threadpool(attribute, self.model64, image, baseline=baseline,
                                      target=target, steps=steps)
        doc = res.to_dict()
        for layer in doc["layers"].values():
            layer["attribution"] = [float(f"{v:.5g}") for v in layer["attribution"]]
        doc["seconds"] = time.perf_counter() - t
        return JSONResponse(finite_json(doc))

    async def search(self, request: Request) -> JSONResponse:
        """The neurons of each layer an image drives hardest relative to their strongest
        training image."""
        body = await read_json(request, self.limits.max_body_bytes,
                               self.limits.body_seconds)
        check_keys(body, {"image", "k"}, "search")
        image = parse_image(body.get("image"), self.model.sizes[0])
        k = parse_int(body, "k") if "k" in body else 8
        if not 1 <= k <= MAX_SEARCH_K:
            raise Problem(422, f"k must be in 1..{MAX_SEARCH_K}, got {k}")
        maxima = await run_in_threadpool(self.maxima)
        res = await run_in_threadpool(search, self.model, image, maxima, k=k)
        return JSONResponse(finite_json(res.to_dict()))

    async def visualize(self, request: Request) -> StreamingResponse:
        body = await read_json(request, self.limits.max_body_bytes,
                               self.limits.body_seconds)
        check_keys(body, {"layer", "neuron", "config", "image"}, "visualize")
        job = await self._job(body)
        await self._acquire_slot()
        events: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        task = asyncio.create_task(self._run(job, events, cancel))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return StreamingResponse(sse(events, cancel), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    # -- visualise helpers
    async def _job(self, body: dict) -> VisJob:
        target = parse_neuron(body, self.model.sizes)
        config = parse_config(body.get("config", {}), self.limits)
        image = None
        if config.init == "image":
            image = parse_image(body.get("image"), self.model.sizes[0])
        elif "image" in body:
            raise Problem(422, "an image is only used with init 'image'")
        elif config.init.startswith(f"{INIT_INDEXED}:"):
            image = self._test_image(int(config.init.split(":", 1)[1]))
        return VisJob(target, config, image)

    def _test_image(self, index: int) -> np.ndarray:
        if self.test_images is None:
            raise Problem(503, "this server has no test images to start from (the dataset "
                               "could not be loaded when it started); start from zero, random "
                               "or an image")
        if index >= len(self.test_images):
            raise Problem(422, f"init mnist:{index}: the test set has {len(self.test_images)} "
                               f"images (0..{len(self.test_images) - 1})")
        return self.test_images[index]

    async def _acquire_slot(self) -> None:
        busy = Problem(503, f"the server is busy ({self.limits.concurrency} optimisations "
                            f"running); try again in a few seconds")
        if self.limits.queue_seconds <= 0 and self.slots.locked():
            raise busy
        try:
            await asyncio.wait_for(self.slots.acquire(), max(self.limits.queue_seconds, 1e-3))
        except TimeoutError:
            raise busy from None

    async def _run(self, job: VisJob, events: asyncio.Queue, cancel: threading.Event) -> None:
        """Runs the optimisation in a worker thread, holding the slot until it ends."""
        loop = asyncio.get_running_loop()

        def emit(kind: str, data: dict) -> None:
            loop.call_soon_threadsafe(events.put_nowait, (kind, data))

        try:
            # the data's statistics first: their one-off cost is not the picture's time
            magnitude = prototypes = None
            if job.config.param == "maco":
                magnitude = await run_in_threadpool(self.magnitude)
            if job.config.init == "prototype":
                prototypes = await run_in_threadpool(self.prototypes)
            done = await run_in_threadpool(
                optimise, self.model, job, self.limits, emit, cancel,
                None if magnitude is None else (lambda: magnitude),
                None if prototypes is None else (lambda: prototypes))
            events.put_nowait(("done", done))
        except NeuronatlasError as exc:
            events.put_nowait(("error", {"error": str(exc)}))
        except Exception:  # a bug: say so on the stream and in the server log
            traceback.print_exc()
            events.put_nowait(("error", {"error": "internal error in the optimisation"}))
        finally:
            self.slots.release()
            events.put_nowait(None)


def test_accuracy(run_dir: Path, model: MLP) -> float | None:
    """The model's accuracy on its dataset's test images, a number in [0, 1] or None:
    the run's ``neuronatlas evaluate`` (``evaluation-test.json``) when it is of this
    very model, else what the model file records (text there), else None."""
    measured = evaluated_accuracy(run_dir, model)
    if measured is not None:
        return measured
    return accuracy_number(model.metadata.get("test_accuracy"))


def accuracy_number(value) -> float | None:
    """``value`` (a number or its text) as an accuracy in [0, 1]; None for anything else."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0 <= number <= 1 else None  # NaN fails both comparisons


def evaluated_accuracy(run_dir: Path, model: MLP) -> float | None:
    """``RUN/evaluation-test.json``'s accuracy, only if the model file it names holds this
    model and was not written after it (a retrained model makes it stale); else None."""
    path = run_dir / "evaluation-test.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        named = Path(doc["model"])
        candidates = [named] if named.is_absolute() else [named, run_dir / named.name]
        source = next(c for c in candidates if c.is_file())
        if source.stat().st_mtime > path.stat().st_mtime:
            return None
        if model_sha256(MLP.load(source)) != model_sha256(model):
            return None
    except (OSError, ValueError, TypeError, KeyError, StopIteration, NeuronatlasError):
        return None
    return accuracy_number(doc.get("accuracy"))


def optimise(model: MLP, job: VisJob, limits: ServerLimits, emit, cancel: threading.Event,
             magnitude: Callable[[], np.ndarray] | None = None,
             prototypes: Callable[[], np.ndarray] | None = None):
    """``visualize`` one neuron; ``emit``s every k-th step (at most ``max_frames``);
    stops when ``cancel`` is set or after ``time_limit`` seconds. Runs in a thread;
    ``magnitude()`` gives maco's spectrum, ``prototypes()`` the starts of init
    "prototype"."""
    config, steps = job.config, job.config.steps
    every = max(1, math.ceil(steps / limits.max_frames))
    deadline = time.monotonic() + limits.time_limit
    latest: dict[str, np.ndarray] = {}
    progress = {"steps": 0, "stopped": None}

    def snapshot(step: int, images: np.ndarray) -> None:
        latest["image"] = images[0]

    def callback(step: int, acts: np.ndarray) -> bool:
        progress["steps"] = step + 1
        if step % every == 0 or step == steps - 1:
            emit("step", {"step": step, "activation": float(acts[0]),
                          "image": encode_image(latest["image"])})
        if cancel.is_set():
            progress["stopped"] = "the client went away"
            return True
        if time.monotonic() > deadline:
            progress["stopped"] = (f"stopped by the server's time limit of {limits.time_limit:g}"
                                   f" s after {step + 1} of {steps} steps")
            return True
        return False

    res = visualize(model, [job.target], config, init_image=job.image, callback=callback,
                    snapshot=snapshot, magnitude=magnitude() if magnitude else None,
                    prototypes=prototypes() if prototypes else None)
    return {**res.record(0), "image": encode_image(res.images[0]), "steps_run": progress["steps"],
            "stopped": progress["stopped"]}


def encode_image(x: np.ndarray) -> str:
    """784 pixels -> base64 of 784 bytes (0..255, clipped to [0, 1] for display)."""
    return base64.b64encode(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8).tobytes()).decode()


def finite_json(doc):
    """``doc`` with every non-finite number (NaN, inf: a network with huge weights overflows)
    as null, and ``"non_finite": true`` beside the first level that had one: JSON has no NaN,
    and a client must not be handed one as a number."""
    found = []

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            found.append(v)
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    out = clean(doc)
    if found and isinstance(out, dict):
        out["non_finite"] = True
    return out


async def sse(events: asyncio.Queue, cancel: threading.Event):
    """Server-sent events from the queue until its ``None``; a client that goes away
    (this generator is closed) cancels the optimisation."""
    try:
        while (item := await events.get()) is not None:
            kind, data = item
            yield f"event: {kind}\ndata: {json.dumps(finite_json(data))}\n\n"
    finally:
        cancel.set()


API = {"/api/model": "GET", "/api/query": "POST", "/api/visualize": "POST",
       "/api/attribute": "POST", "/api/search": "POST"}
MAX_IG_STEPS = 256  # quadrature nodes a request may ask for (64 by default)
MAX_SEARCH_K = 64  # neurons per layer a search may return


async def no_endpoint(request: Request):
    """404/405 as JSON for /api/ paths (the atlas files would answer otherwise)."""
    method = API.get(request.url.path)
    if method is None:
        raise Problem(404, f"no API endpoint {request.url.path}; there are {sorted(API)}")
    raise Problem(405, f"{request.url.path} takes {method}, not {request.method}")


def problem_response(request: Request, exc: Exception) -> JSONResponse:
    """Every refusal as JSON ``{"error": message}`` with its status."""
    if isinstance(exc, Problem):
        status, message = exc.status, str(exc)
    else:  # Starlette's own (404 from the files, 405, ...)
        status = exc.status_code
        message = exc.detail if status != 404 else f"not found: {request.url.path}"
    headers = {"Retry-After": "5"} if status == 503 else getattr(exc, "headers", None)
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def user_error(request: Request, exc: Exception) -> JSONResponse:
    """A request the library refused (a named error): JSON 422 with its one line; an error
    of the served model or run folder is the server's (500), said the same way."""
    status = 422 if isinstance(exc, ConfigError | DataError) else 500
    return problem_response(request, Problem(status, str(exc)))


def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: JSON 500 for the client, the traceback in the server's log."""
    traceback.print_exception(exc)
    return JSONResponse({"error": "internal error in the server"}, status_code=500)


# --- checks before any route: plain ASGI, each refusal a JSON {"error": ...} -------------
async def refuse(scope, receive, send, status: int, message: str, headers=None) -> None:
    """Answer the request with ``{"error": message}`` and ``status``."""
    await JSONResponse({"error": message}, status_code=status, headers=headers)(
        scope, receive, send)


def request_host(header: str) -> str:
    """The host a Host header names, without its port: ``[::1]:8000`` -> ``[::1]``."""
    header = header.strip().lower()
    if header.startswith("[") and "]" in header:
        return header[:header.index("]") + 1]
    return header.split(":")[0]


class HostCheck:
    """Only requests whose Host header names this server (a page of another site that
    reaches a loopback server through DNS rebinding names its own host)."""

    def __init__(self, app, allowed_hosts):
        self.app, self.allowed = app, {h.lower() for h in allowed_hosts}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            host = request_host(Headers(scope=scope).get("host", ""))
            if host not in self.allowed:
                shown = repr(host[:80]) if host else "none"
                return await refuse(scope, receive, send, 400, (
                    f"the Host header must name this server ({', '.join(sorted(self.allowed))})"
                    f", got {shown}: pages of other sites may not use it"))
        await self.app(scope, receive, send)


def request_path_problem(scope) -> str | None:
    """Why the request's path can name no file or endpoint, or None: a NUL byte, or
    percent-encoded bytes that are not UTF-8 (``%ff``; uvicorn hands the app U+FFFD)."""
    path, raw = scope.get("path", ""), scope.get("raw_path")
    try:
        path.encode("utf-8")  # a lone surrogate, from a server decoding with surrogateescape
        decoded = path if raw is None else unquote_to_bytes(raw).decode("utf-8")
    except UnicodeError:
        return ("the path is not valid UTF-8 (a percent-encoded byte such as %ff): no file "
                "or endpoint has such a name")
    if "\x00" in path or "\x00" in decoded:
        return "the path contains a NUL byte (%00): no file or endpoint has such a name"
    return None


class PathCheck:
    """Paths no file or endpoint can have are a 400 before any route sees them."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and (problem := request_path_problem(scope)):
            return await refuse(scope, receive, send, 400, problem)
        await self.app(scope, receive, send)


class RequestLimit:
    """At most ``limit`` requests worked on at once (from the app receiving the request
    to the end of its response; a stream counts while it runs); beyond, a JSON 503. Open
    connections that send nothing are not requests: they cost nothing here."""

    def __init__(self, app, limit: int):
        self.app, self.limit, self.active = app, limit, 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.active >= self.limit:
            return await refuse(scope, receive, send, 503, (
                f"the server is busy ({self.limit} requests at once); try again in a few "
                f"seconds"), {"Retry-After": "5"})
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


def create_app(run_dir, model: MLP, *, atlas_dir, limits: ServerLimits = ServerLimits(),
               test_images: np.ndarray | None = None, dataset: str | None = None,
               train_images: np.ndarray | None = None,
               allowed_hosts: tuple[str, ...] = ()) -> Starlette:
    """The ASGI app: the atlas folder's files, the live page and the JSON/SSE API.
    ``allowed_hosts`` (Host headers) keeps pages of other sites from reaching a loopback
    server through DNS rebinding; empty: any host."""
    # an image of the model's input as JSON is about 6 bytes a pixel: room for it
    limits = replace(limits, max_body_bytes=max(limits.max_body_bytes, 8 * model.sizes[0]))
    live = LiveServer(Path(run_dir), model, limits, test_images, dataset, train_images)

    def live_file(name: str) -> Route:
        return Route(f"/{name}", lambda request: FileResponse(STATIC / name), methods=["GET"])

    routes = [
        Route("/api/model", live.model_info, methods=["GET"]),
        Route("/api/query", live.query, methods=["POST"]),
        Route("/api/visualize", live.visualize, methods=["POST"]),
        Route("/api/attribute", live.attribute, methods=["POST"]),
        Route("/api/search", live.search, methods=["POST"]),
        Route("/api/{rest:path}", no_endpoint,
              methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
        *(live_file(name) for name in LIVE_FILES),
        Mount("/", AtlasFiles(directory=Path(atlas_dir), html=True)),
    ]
    middleware = ([Middleware(HostCheck, allowed_hosts=allowed_hosts)] if allowed_hosts else [])
    middleware += [Middleware(PathCheck), Middleware(RequestLimit, limit=limits.max_requests)]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={Problem: problem_response,
                                        HTTPException: problem_response,
                                        NeuronatlasError: user_error,
                                        Exception: internal_error})
    app.state.live = live
    return app


class ConnectionRules:
    """What :func:`header_deadline` adds to uvicorn's HTTP/1.1 protocol (a mixin: uvicorn
    is imported only to serve). ``head_seconds``: the deadline for a request head;
    ``max_connections``: open at once before idle ones are shed. A request being served
    is never cut."""

    head_seconds = 10.0
    max_connections = 200
    _deadline = None
    _opened = 0.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._opened = self.loop.time()
        self._arm()
        self._shed_idle()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.head_seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete  # no request in hand

    def _expire(self) -> None:
        self._deadline = None
        if self._idle():
            self._close()

    def _close(self) -> None:
        import h11

        try:
            self.timeout_keep_alive_handler()
        except h11.LocalProtocolError:  # h11 cannot say goodbye in this state: just go
            self.transport.close()

    def _shed_idle(self) -> None:
        """Over the cap: close the oldest connections with no request in hand (a silent
        socket, a kept-alive one between requests), never this new one."""
        alive = [c for c in self.connections
                 if isinstance(c, ConnectionRules) and not c.transport.is_closing()]
        excess = len(alive) - self.max_connections
        if excess > 0:
            idle = sorted((c for c in alive if c is not self and c._idle()),
                          key=lambda c: c._opened)
            for c in idle[:excess]:
                c._close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # the head is in: the app's body deadline takes over

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's head, on a kept-alive connection

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """Bytes h11 cannot parse as a request: a JSON 400, then the connection closes."""
        import h11

        body = json.dumps({"error": "not a valid HTTP request: its request line or "
                                    "headers could not be parsed"}).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        try:
            for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                          h11.Data(data=body), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
        except h11.LocalProtocolError:  # a response had begun: nothing more to say on it
            pass
        self.transport.close()


def header_deadline(seconds: float, max_connections: int = 200):
    """uvicorn's HTTP/1.1 protocol with a deadline for every request head and a cap on
    open connections that idle ones cannot fill (:class:`ConnectionRules`).

    A connection that opens and sends nothing, or trickles its request line and headers,
    is closed after ``seconds`` (uvicorn times out only idle keep-alive connections). Over
    ``max_connections`` open at once, the oldest ones with no request in hand are closed
    for the newcomer (uvicorn's own cap answered every request 503 while 200 silent
    sockets were open). uvicorn's answer to bytes that are not HTTP is a JSON 400 like
    every other refusal."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return type("HeaderDeadline", (ConnectionRules, H11Protocol),
                {"head_seconds": seconds, "max_connections": max_connections})


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only: localhost, 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(run_dir, model: MLP, *, atlas_dir, host: str = "127.0.0.1", port: int = 8000,
          limits: ServerLimits = ServerLimits(), test_images: np.ndarray | None = None,
          dataset: str | None = None, train_images: np.ndarray | None = None,
          log=print) -> None:
    """Listen on ``host:port`` (0: a free port) and serve until interrupted.

    BLAS runs single-threaded in this process: the server runs optimisations side by
    side, one per core, and two multi-threaded BLAS calls at once thrash (two concurrent
    100-step runs of the paper's network took 10x longer than one)."""
    import socket

    import uvicorn

    own = f"[{host}]" if ":" in host else host  # as a Host header names it
    app = create_app(run_dir, model, atlas_dir=atlas_dir, limits=limits, test_images=test_images,
                     dataset=dataset, train_images=train_images,
                     allowed_hosts=("127.0.0.1", "localhost", "[::1]", own)
                     if is_loopback(host) else ())
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise NeuronatlasError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)  # connections wait in the backlog from the moment the URL is printed
    port = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    log(f"serving {run_dir} at http://{shown}:{port}/ (live visualiser: "
        f"http://{shown}:{port}/live.html); Ctrl-C stops")
    with blas_threads(1):
        uvicorn.Server(server_config(app, limits)).run(sockets=[sock])


def server_config(app, limits: ServerLimits):
    """uvicorn's settings for ``app``: the request-head deadline and the connection cap
    of :func:`header_deadline`; no ``limit_concurrency`` (it counted open sockets, idle
    ones too: the app's RequestLimit counts requests being worked on)."""
    import uvicorn

    http = header_deadline(limits.header_seconds, limits.max_connections)
    return uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3, http=http)
