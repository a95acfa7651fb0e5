"""Import an ONNX file that is a chain of dense layers and element-wise activations.

Accepted: ``Gemm``, ``MatMul`` (+ ``Add`` of a bias), ``Flatten`` / ``Reshape`` / ``Identity``
/ ``Dropout`` on the chain, ``BatchNormalization`` right after a dense layer (folded into
it), a final ``Softmax`` / ``LogSoftmax``, and between dense layers any element-wise
subgraph (``Relu``, ``LeakyRelu``, ``Gelu``, ``Erf``, ``Div``, ``Mul``, ``Add``, ``Tanh``, ...)
that computes one of the supported activations: the subgraph is evaluated on probe
values and identified, so GELU exported as one ``Gelu`` node or decomposed into
Div/Erf/Add/Mul is the same GELU. Anything else (a convolution, a residual connection,
a per-neuron constant) is refused by name. The file is parsed with the ``onnx`` package
(protocol buffers; no code runs). Weights in an external data file (``torch.onnx.export``'s
``model.onnx.data``) are read only from a regular file in the model's own folder, and only
the bytes each tensor declares, once they are checked against the file's size; a malformed
node or tensor is refused by name, never run into.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
from scipy.special import erf, expit

from ..errors import NeuronatlasError
from ..fileio import open_regular, path_problem, shown_path
from ..nn.mlp import MLP
from .common import (
    Chain,
    ImportRefused,
    build_model,
    check_inputs_for,
    chw,
    compare_outputs,
    hwc_columns,
    identify_activation,
)

ALIASES = {"Identity", "Dropout", "Flatten", "Reshape", "Squeeze", "Cast"}
UNARY = {"Relu", "LeakyRelu", "Elu", "Gelu", "Sigmoid", "Tanh", "Softplus", "Erf", "Exp", "Log",
         "Sqrt", "Neg", "Abs"}
BINARY = {"Div", "Mul", "Add", "Sub", "Pow", "Max", "Min"}
ELEMENTWISE = UNARY | BINARY
# how many inputs each op takes (at least, at most); an alias at least one, other ops any
ARITY = {"Gemm": (2, 3), "MatMul": (2, 2), "BatchNormalization": (5, 5), "Softmax": (1, 1),
         "LogSoftmax": (1, 1), "Constant": (0, 0), **{op: (1, 1) for op in UNARY},
         **{op: (2, 2) for op in BINARY}}
MAX_PROTO = 2**31 - 1  # the most a protocol buffer holds (and onnxruntime takes in memory)
FLOATS = {"FLOAT": 4, "DOUBLE": 8, "FLOAT16": 2, "BFLOAT16": 2}  # ONNX type: bytes a value
INTS = {"INT8": 1, "UINT8": 1, "INT16": 2, "UINT16": 2, "INT32": 4, "UINT32": 4, "INT64": 8,
        "UINT64": 8, "BOOL": 1}


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _guarded(where: str, fn, *args):
    """``fn(*args)``, with whatever a malformed node makes it raise turned into one
    :class:`ImportRefused` line naming ``where`` (the walk checks what it can by name;
    this is the net under it)."""
    try:
        return fn(*args)
    except NeuronatlasError:
        raise
    except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
        raise ImportRefused(f"{where}: cannot be read ({type(exc).__name__}: "
                            f"{str(exc)[:120]})") from None


def _type_name(t) -> str:
    """The ONNX element type of a TensorProto, by name (FLOAT, INT64, STRING, ...)."""
    from onnx import TensorProto

    try:
        return TensorProto.DataType.Name(t.data_type)
    except ValueError:
        return f"type {t.data_type}"


def _dims(t, what: str) -> list[int]:
    dims = list(t.dims)
    if any(d < 0 for d in dims):
        raise ImportRefused(f"{what} has negative dimensions {dims}")
    return dims


def _array(t, what: str) -> tuple[np.ndarray, str]:
    """(values, ONNX type name) of a TensorProto whose data the file holds; refused, naming
    ``what``, when its dims disagree with its data. A type no dense layer uses (STRING,
    complex, 8-bit floats, ...) is an empty placeholder, refused where it is used."""
    from onnx import TensorProto, helper, numpy_helper

    kind, dims = _type_name(t), _dims(t, what)
    if t.HasField("segment") or t.data_location == TensorProto.EXTERNAL:
        raise ImportRefused(f"{what} is stored in segments or elsewhere, which is not read")
    unit = FLOATS.get(kind) or INTS.get(kind)
    if unit is None:
        return np.zeros(0, object), kind
    n = math.prod(dims)
    if t.HasField("raw_data"):
        have, want, what_of = len(t.raw_data), n * unit, "bytes"
    else:
        field = helper.tensor_dtype_to_field(t.data_type)
        have, want, what_of = len(getattr(t, field)), n, "values"
    if have != want:
        raise ImportRefused(f"{what} declares {_shape(dims)} {kind} ({want} {what_of}) but "
                            f"holds {have} {what_of}: truncated, or its dims are wrong")
    try:
        return numpy_helper.to_array(t), kind
    except Exception as exc:  # the net under the checks above
        raise ImportRefused(f"{what} cannot be read: {str(exc)[:120]}") from None


def _shape(dims) -> str:
    return "x".join(map(str, dims)) if len(dims) else "a scalar"


def _constant(node, where: str) -> tuple[np.ndarray, str]:
    """(value, ONNX type name) of a Constant node."""
    attrs = _attrs(node)
    if "value" in attrs:
        return _array(attrs["value"], f"{where}: its value")
    for key, kind, dtype in (("value_float", "FLOAT", np.float32),
                             ("value_floats", "FLOAT", np.float32),
                             ("value_int", "INT64", np.int64), ("value_ints", "INT64", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype), kind
    if "value_string" in attrs or "value_strings" in attrs:
        return np.zeros(0, object), "STRING"
    raise ImportRefused(f"{where}: a Constant without a dense value (sparse or none), which "
                        "is not supported")


def _label(node) -> str:
    return node.name or next((o for o in node.output if o), "") or "(unnamed)"


def _check_arity(node, where: str) -> None:
    """A node with an output and the inputs its op takes (the required ones not omitted)."""
    if not node.output or not node.output[0]:
        raise ImportRefused(f"{where}: a node with no output")
    op, n = node.op_type, len(node.input)
    lo, hi = ARITY.get(op, (1 if op in ALIASES else 0, n))
    if not lo <= n <= hi or not all(node.input[:lo]):
        takes = str(lo) if lo == hi else f"{lo} to {hi}"
        given = sum(1 for i in node.input if i)
        raise ImportRefused(f"{where}: {given} input{'s' if given != 1 else ''} where {op} "
                            f"takes {takes}")


def _eval(op: str, attrs: dict, args: list[np.ndarray]) -> np.ndarray:
    """One element-wise ONNX op in NumPy (float64)."""
    a = args[0]
    if op == "Relu":
        return np.maximum(a, 0)
    if op == "LeakyRelu":
        return np.where(a > 0, a, a * attrs.get("alpha", 0.01))
    if op == "Elu":
        return np.where(a > 0, a, attrs.get("alpha", 1.0) * np.expm1(np.minimum(a, 0)))
    if op == "Gelu":
        if attrs.get("approximate", b"none") in (b"tanh", "tanh"):
            return 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3)))
        return 0.5 * a * (1 + erf(a / np.sqrt(2)))
    unary = {"Sigmoid": expit, "Tanh": np.tanh, "Softplus": lambda v: np.logaddexp(0, v),
             "Erf": erf, "Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt, "Neg": np.negative,
             "Abs": np.abs}
    if op in unary:
        with np.errstate(all="ignore"):
            return unary[op](a)
    b = args[1]
    binary = {"Div": np.divide, "Mul": np.multiply, "Add": np.add, "Sub": np.subtract,
              "Pow": np.power, "Max": np.maximum, "Min": np.minimum}
    with np.errstate(all="ignore"):
        return binary[op](a, b)


class _Walker:
    """Walks the graph's nodes in order, keeping the chain and the open element-wise region."""

    def __init__(self, consts: dict[str, np.ndarray], types: dict[str, str], source: str):
        self.consts, self.types, self.source = consts, types, source
        self.chain = Chain()
        self.region_start: str = ""  # the tensor the current element-wise region starts from
        self.region: list = []  # its nodes
        self.region_values: set[str] = set()  # tensors computed from region_start
        self.alias: dict[str, str] = {}
        self.last_matmul = False  # the last layer was a MatMul still waiting for its bias

    def name(self, t: str) -> str:
        while t in self.alias:
            t = self.alias[t]
        return t

    def param(self, name: str, where: str, *, ints: bool = False) -> np.ndarray:
        """The constant ``name`` in float64; refused when the file does not hold it as a
        constant, or holds it as something other than numbers (integers only if ``ints``)."""
        if name not in self.consts:
            raise ImportRefused(f"{where}: {name or 'an omitted input'} is not a constant "
                                "of the file")
        kind = self.types[name]
        if kind not in FLOATS and not (ints and kind in INTS and kind != "BOOL"):
            raise ImportRefused(f"{where}: {name} holds {kind} values, not floating-point "
                                "numbers")
        return self.consts[name].astype(np.float64)

    def start(self, tensor: str) -> None:
        self.region_start, self.region, self.region_values = tensor, [], {tensor}

    def close_region(self, output: str, where: str) -> None:
        """The element-wise region ends in ``output``: identify it as an activation."""
        output = self.name(output)
        if output not in self.region_values:
            raise ImportRefused(f"{where}: its input does not come from the layer before "
                                "(a residual or branching connection)")
        if output == self.region_start:
            return
        nodes = list(self.region)

        def f(z: np.ndarray) -> np.ndarray:
            values = {self.region_start: z}
            for node in nodes:
                args = [values[self.name(i)] if self.name(i) in values
                        else self.param(i, where, ints=True) for i in node.input if i]
                values[node.output[0]] = _eval(node.op_type, _attrs(node), args)
            return values[output]

        self.chain.add_activation(identify_activation(f, where), where)
        self.start(output)

    def dense(self, node, where: str) -> None:
        attrs = _attrs(node)
        x, w = self.name(node.input[0]), node.input[1]
        if w not in self.consts or (x in self.consts):
            raise ImportRefused(f"{where}: a {node.op_type} whose weights are not constants")
        if self.chain.weights or self.region_start:
            self.close_region(x, where)
        W = self.param(w, where)
        if W.ndim != 2 or not W.size:  # (2**40, 0) holds no bytes but asks 2**40 biases
            raise ImportRefused(f"{where}: its weight {w} has shape {W.shape}, not a matrix "
                                "of at least one value")
        if node.op_type == "Gemm":
            if attrs.get("transA", 0):
                raise ImportRefused(f"{where}: Gemm with transA")
            W = (W if attrs.get("transB", 0) else W.T) * attrs.get("alpha", 1.0)
            b = None
            if len(node.input) > 2 and node.input[2]:
                c = self.param(node.input[2], where) * attrs.get("beta", 1.0)
                if c.size not in (1, W.shape[0]):
                    raise ImportRefused(f"{where}: a bias of shape {c.shape} for "
                                        f"{W.shape[0]} outputs")
                b = np.broadcast_to(c.reshape(-1), (W.shape[0],)).copy()  # (out,), (1, out)
        else:
            W, b = W.T, None
        self.chain.add_linear(W, b, where)
        self.last_matmul = node.op_type == "MatMul"
        self.start(node.output[0])

    def batchnorm(self, node, ins: list[str], live: list[str], where: str) -> None:
        if self.region or live != [self.region_start] or not self.chain.weights:
            raise ImportRefused(f"{where}: BatchNormalization only right after a dense layer")
        gamma, beta, mean, var = (self.param(i, where).reshape(-1) for i in ins[1:5])
        n = self.chain.weights[-1].shape[0]
        if any(p.size != n for p in (gamma, beta, mean, var)):
            raise ImportRefused(f"{where}: parameters of {gamma.size}, {beta.size}, "
                                f"{mean.size} and {var.size} values for {n} outputs")
        self.chain.fold_batchnorm(mean, var, float(_attrs(node).get("epsilon", 1e-5)),
                                  gamma, beta, where)
        self.last_matmul = False
        self.start(node.output[0])

    def node(self, node) -> None:
        op = node.op_type
        where = f"{self.source}: node {_label(node)} ({op})"
        _check_arity(node, where)
        ins = [self.name(i) for i in node.input if i]
        live = [i for i in ins if i not in self.consts]
        if op == "Constant":
            return
        if op in ("Gemm", "MatMul"):
            self.dense(node, where)
        elif op == "Add" and self.last_matmul and not self.region and len(live) == 1 \
                and live[0] == self.region_start:
            bias = self.param(next(i for i in ins if i in self.consts), where)
            if bias.size != self.chain.weights[-1].shape[0]:
                raise ImportRefused(f"{where}: a bias of {bias.size} values for "
                                    f"{self.chain.weights[-1].shape[0]} outputs")
            self.chain.biases[-1] = bias.reshape(-1)
            self.last_matmul = False
            self.start(node.output[0])
        elif op in ALIASES and len(live) == 1:
            if op in ("Flatten", "Reshape") and self.region:
                raise ImportRefused(f"{where}: a reshape inside an activation")
            self.alias[node.output[0]] = live[0]  # the same values under another name
        elif op == "BatchNormalization":
            self.batchnorm(node, ins, live, where)
        elif op in ("Softmax", "LogSoftmax"):
            self.close_region(ins[0], where)
            self.chain.softmax_seen = "log_softmax" if op == "LogSoftmax" else "softmax"
            self.start(node.output[0])
        elif op in ELEMENTWISE:
            self.last_matmul = False
            if not self.chain.weights:
                raise ImportRefused(f"{where}: an element-wise op before the first dense layer")
            for i in live:
                if i not in self.region_values:
                    raise ImportRefused(f"{where}: combines values from different layers (a "
                                        "residual or branching connection)")
            for i in ins:
                if i in self.consts and self.param(i, where, ints=True).size != 1:
                    raise ImportRefused(f"{where}: a constant of shape {self.consts[i].shape}; "
                                        "an activation treats every neuron alike")
            self.region.append(node)
            self.region_values.add(node.output[0])
        else:
            raise ImportRefused(f"{where}: the ONNX op {op} is not supported (a dense network "
                                "is Gemm or MatMul+Add layers and element-wise activations)")


# --- reading the file and its external data ------------------------------------------------

def _read_span(fd: int, offset: int, length: int) -> bytes:
    """Up to ``length`` bytes from ``offset`` (fewer only at the end of the file)."""
    parts, got = [], 0
    while got < length:
        part = os.pread(fd, min(length - got, 1 << 24), offset + got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _tensors(graph):
    """Every TensorProto of ``graph``: its initializers and the tensors in node attributes
    (a Constant's value), in subgraphs too."""
    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _tensors(g)


def _external_file(folder: Path, location: str, what: str) -> Path:
    """The file named by an external data ``location``: a relative path that stays in the
    model's ``folder``, symbolic links resolved; anything else is refused, unread."""
    shown = shown_path(location)
    if not location:
        raise ImportRefused(f"{what}: its external data has no location")
    problem = path_problem(location)
    if problem:
        raise ImportRefused(f"{what}: its external data location {shown} {problem}")
    if location[0] in "/\\" or os.path.isabs(location) or re.match(r"[A-Za-z]:", location):
        raise ImportRefused(f"{what}: its external data location {shown} is an absolute path; "
                            "only a file in the model's folder is read")
    if ".." in re.split(r"[/\\]", location):
        raise ImportRefused(f"{what}: its external data location {shown} leads out of the "
                            "model's folder (..); only a file in the model's folder is read")
    root = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, target]) != root:
        raise ImportRefused(f"{what}: its external data location {shown} leads out of the "
                            "model's folder (a symbolic link); only a file in the model's "
                            "folder is read")
    return Path(target)


def _count(entries: dict, key: str, default: int | None, what: str) -> int | None:
    value = entries.get(key)
    if value is None:
        return default
    if not re.fullmatch(r"[0-9]{1,19}", value):
        raise ImportRefused(f"{what}: its external data {key} {shown_path(value)} is not a "
                            "whole number of bytes")
    return int(value)


def _span(t, entries: dict, size: int, shown: str, what: str) -> tuple[int, int]:
    """(offset, length) of a tensor's bytes in its external data file of ``size`` bytes,
    checked against the tensor's dims and type and the file's size, before any is read."""
    kind = _type_name(t)
    unit = FLOATS.get(kind) or INTS.get(kind)
    if unit is None:
        raise ImportRefused(f"{what}: external data of type {kind} is not read")
    dims = _dims(t, what)
    want = math.prod(dims) * unit
    offset = _count(entries, "offset", 0, what)
    if offset > size:
        raise ImportRefused(f"{what}: its external data offset {offset} lies beyond the end of "
                            f"{shown} ({size} bytes)")
    length = _count(entries, "length", size - offset, what)
    if length != want:
        raise ImportRefused(f"{what}: its external data is {length} bytes, but {_shape(dims)} "
                            f"{kind} take {want} bytes")
    if offset + length > size:
        raise ImportRefused(f"{what}: its external data (bytes {offset} to {offset + length}) "
                            f"runs past the end of {shown}, which has {size} bytes: truncated?")
    return offset, length


def _plan_external(proto, path: Path) -> dict[Path, list]:
    """{file: [(tensor, its location entries, where)]} of every tensor with external data."""
    from onnx import TensorProto

    plan: dict[Path, list] = {}
    for t in _tensors(proto.graph):
        if t.data_location == TensorProto.EXTERNAL:
            what = f"{path.name}: tensor {t.name}"
            entries = {e.key: e.value for e in t.external_data}
            file = _external_file(path.parent, entries.get("location", ""), what)
            plan.setdefault(file, []).append((t, entries, what))
    return plan


def _inline_external_data(proto, path: Path, used: int) -> list[str]:
    """Read every tensor's external data into the model, so that nothing else is read
    later (onnxruntime gets the model in memory): each file and span is checked first,
    then only the declared bytes are read. The names of the files read."""
    from onnx import TensorProto

    plan, spans, fds = _plan_external(proto, path), [], []
    try:
        for file, users in plan.items():
            shown = shown_path(os.path.relpath(file, os.path.realpath(path.parent)))
            f, size = open_regular(file, ImportRefused, nofollow=True,
                                   what=f"{users[0][2]}: its external data file {shown}")
            fds.append(f)
            claimed = 0
            for t, entries, what in users:
                offset, length = _span(t, entries, size, shown, what)
                claimed, used = claimed + length, used + length
                spans.append((f.fileno(), t, offset, length, what))
            if claimed > size:
                raise ImportRefused(f"{path.name}: its tensors claim {claimed} bytes of {shown}, "
                                    f"more bytes than it holds ({size}): they overlap")
        if used > MAX_PROTO:
            raise ImportRefused(f"{path.name}: {used} bytes with its external data, more than "
                                "the 2 GiB a model checked by onnxruntime in memory can have")
        for fd, t, offset, length, what in spans:
            data = _read_span(fd, offset, length)
            if len(data) != length:
                raise ImportRefused(f"{what}: its external data file ended early while read")
            t.raw_data = data
            del t.external_data[:]
            t.data_location = TensorProto.DEFAULT
    finally:
        for f in fds:
            f.close()
    return [shown_path(os.path.relpath(f, os.path.realpath(path.parent))) for f in plan]


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportRefused('importing ONNX needs the onnx package: pip install '
                            '"neuronatlas[onnx]"') from None
    return onnx


def _read(path) -> tuple[object, Path, list[str]]:
    """(the parsed model with its external data read in, its path, the external data files
    read); :class:`ImportRefused` when it cannot be read."""
    onnx = _onnx()
    path = os.fsdecode(path) if isinstance(path, bytes) else path
    problem = path_problem(path)
    if problem:
        raise ImportRefused(f"ONNX file {shown_path(path)} {problem}")
    path = Path(path)
    f, size = open_regular(path, ImportRefused, what=f"ONNX file {shown_path(path)}")
    with f:
        if size > MAX_PROTO:
            raise ImportRefused(f"{path.name} is {size} bytes, more than the 2 GiB an ONNX file "
                                "holds (larger weights go in an external data file)")
        data = _read_span(f.fileno(), 0, size)
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:
        raise ImportRefused(f"{path} is not a readable ONNX file: {str(exc)[:160]}") from None
    return proto, path, _inline_external_data(proto, path, len(data))


def _constants(graph, source: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The graph's constants (initializers, Constant nodes) and their ONNX types."""
    if len(graph.sparse_initializer):
        raise ImportRefused(f"{source}: sparse initializers are not supported")
    consts, types = {}, {}
    for t in graph.initializer:
        consts[t.name], types[t.name] = _array(t, f"{source}: tensor {t.name}")
    for node in graph.node:
        if node.op_type == "Constant":
            where = f"{source}: node {_label(node)} (Constant)"
            _check_arity(node, where)
            value, kind = _guarded(where, _constant, node, where)
            consts[node.output[0]], types[node.output[0]] = value, kind
    return consts, types


def _walk(graph, consts, types, source: str) -> Chain:
    """The chain of the graph's nodes, from its one input to its one output."""
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ImportRefused(f"{source}: a network with {len(inputs)} inputs and "
                            f"{len(graph.output)} outputs; one of each is supported")
    w = _Walker(consts, types, source)
    w.start(inputs[0].name)
    for node in graph.node:
        _guarded(f"{source}: node {_label(node)} ({node.op_type})", w.node, node)
    where = f"{source}: the output"
    _guarded(where, w.close_region, graph.output[0].name, where)
    return w.chain


def from_onnx(path: str | Path, input_shape=None, *, class_names=None, check_inputs=None,
              channels_first: bool | None = None) -> MLP:
    """A neuronatlas model computing what the ONNX file computes, checked with onnxruntime
    on ``check_inputs`` (or 256 random images) and 64 wide random inputs; a difference
    above 1e-4 is an error. Weights in an external data file are read from the model's
    own folder (``torch.onnx.export``'s ``net.onnx.data`` beside ``net.onnx``).

    The graph's input shape gives the image shape: (N, H, W) grey, (N, C, H, W) or
    (N, H, W, C) with C of 1 or 3; a channel-first input has the first layer's columns
    reordered so that the model takes channel-last pixels. When the layout cannot be told
    from the shape, say it with ``channels_first``. Example::

        torch.onnx.export(net, torch.zeros(1, 784), "net.onnx")
        model = na.from_onnx("net.onnx")
    """
    proto, path, files = _read(path)
    graph, source = proto.graph, path.name
    consts, types = _constants(graph, source)
    chain = _walk(graph, consts, types, source)
    inputs = [i for i in graph.input if i.name not in consts]
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    shape, first = _image_layout(dims, channels_first, source)
    if shape is not None and input_shape is not None and tuple(input_shape) != shape:
        raise ImportRefused(f"{source}: its input is {'x'.join(map(str, shape))} images, not "
                            f"{'x'.join(map(str, input_shape))}")
    if first:
        chain.weights[0] = hwc_columns(chain.weights[0], shape)
    if files:
        chain.notes.append(f"{source}: its weights read from the external data file"
                           f"{'s' if len(files) > 1 else ''} {', '.join(files)} beside it")
    model = build_model(chain, source, input_shape=shape or input_shape,
                        class_names=class_names)
    _check_with_onnxruntime(proto, source, model, dims, first, chain, check_inputs)
    return model


def _image_layout(dims: list[int], channels_first: bool | None, source: str):
    """(H, W, C) of the graph's image input (None for a flat input) and whether its
    channels come first."""
    if len(dims) == 3 and all(dims[1:]):
        return (dims[1], dims[2], 1), False
    if len(dims) != 4 or not all(dims[1:]):
        return None, False
    a, b, c = dims[1:]
    if channels_first is None:
        first, last = a in (1, 3) and c not in (1, 3), c in (1, 3) and a not in (1, 3)
        if first == last:
            raise ImportRefused(f"{source}: input (N, {a}, {b}, {c}) may be channel-first or "
                                "channel-last; say which (channels_first=True/False)")
        channels_first = first
    return ((b, c, a), True) if channels_first else ((a, b, c), False)


def _session(ort, proto, source: str):
    """An onnxruntime session on the model in memory (its external data already read in:
    onnxruntime opens no file), logging errors only: its warnings are not the user's."""
    from onnx import TensorProto

    if any(t.data_location == TensorProto.EXTERNAL for t in _tensors(proto.graph)):
        raise ImportRefused(f"{source}: a tensor's external data was not read")
    try:
        blob = proto.SerializeToString()
    except Exception as exc:  # over the 2 GiB a protocol buffer holds
        raise ImportRefused(f"{source}: cannot be passed to onnxruntime: {str(exc)[:120]}"
                            ) from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(blob, sess_options=options, providers=["CPUExecutionProvider"])


def _check_with_onnxruntime(proto, source: str, model: MLP, dims, first: bool, chain: Chain,
                            check_inputs) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportRefused('checking an ONNX import needs onnxruntime: pip install '
                            '"neuronatlas[onnx]"') from None
    x = check_inputs_for(model.sizes[0], check_inputs)
    feed = (chw(x, model.input_shape) if first else x.reshape(-1, *dims[1:])
            if len(dims) > 2 else x)
    try:
        sess = _session(ort, proto, source)
        inp = sess.get_inputs()[0]
        dtype = np.float64 if "double" in inp.type else np.float32
        if dims and dims[0] == 1:  # a graph exported for batches of one
            out = np.concatenate([sess.run(None, {inp.name: feed[s:s + 1].astype(dtype)})[0]
                                  for s in range(len(feed))])
        else:
            out = sess.run(None, {inp.name: feed.astype(dtype)})[0]
    except ImportRefused:
        raise
    except Exception as exc:
        raise ImportRefused(f"onnxruntime could not run {source}: {str(exc)[:160]}") from None
    compare_outputs(model, out, x, chain.softmax_seen)
