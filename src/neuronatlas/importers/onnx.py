"""Import an ONNX file that is a chain of dense layers and element-wise activations.

Accepted: ``Gemm``, ``MatMul`` (+ ``Add`` of a bias), ``Flatten`` / ``Reshape`` / ``Identity``
/ ``Dropout`` on the chain, ``BatchNormalization`` right after a dense layer (folded into
it), a final ``Softmax`` / ``LogSoftmax``, and between dense layers any element-wise
subgraph (``Relu``, ``LeakyRelu``, ``Gelu``, ``Erf``, ``Div``, ``Mul``, ``Add``, ``Tanh``, ...)
that computes one of the supported activations: the subgraph is evaluated on probe
values and identified, so GELU exported as one ``Gelu`` node or decomposed into
Div/Erf/Add/Mul is the same GELU. Anything else (a convolution, a residual connection,
a per-neuron constant) is refused by name. The file is parsed with the ``onnx`` package
(protocol buffers; no code runs) and external data files are never opened.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import erf, expit

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
ELEMENTWISE = {"Relu", "LeakyRelu", "Elu", "Gelu", "Sigmoid", "Tanh", "Softplus", "Erf", "Div",
               "Mul", "Add", "Sub", "Pow", "Exp", "Log", "Sqrt", "Neg", "Abs", "Max", "Min"}


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


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

    def __init__(self, graph, consts: dict[str, np.ndarray], source: str):
        self.consts, self.source = consts, source
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
                args = [values[self.name(i)] if self.name(i) in values else self.consts[i]
                        for i in node.input if i]
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
        W = self.consts[w].astype(np.float64)
        if node.op_type == "Gemm":
            if attrs.get("transA", 0):
                raise ImportRefused(f"{where}: Gemm with transA")
            W = (W if attrs.get("transB", 0) else W.T) * attrs.get("alpha", 1.0)
            b = None
            if len(node.input) > 2 and node.input[2]:
                c = self.consts[node.input[2]].astype(np.float64) * attrs.get("beta", 1.0)
                if c.size not in (1, W.shape[0]):
                    raise ImportRefused(f"{where}: a bias of shape {c.shape} for "
                                        f"{W.shape[0]} outputs")
                b = np.broadcast_to(c.reshape(-1), (W.shape[0],)).copy()  # (out,), (1, out)
        else:
            W, b = W.T, None
        self.chain.add_linear(W, b, where)
        self.last_matmul = node.op_type == "MatMul"
        self.start(node.output[0])

    def node(self, node) -> None:
        op = node.op_type
        where = f"{self.source}: node {node.name or node.output[0]} ({op})"
        ins = [self.name(i) for i in node.input if i]
        live = [i for i in ins if i not in self.consts]
        if op == "Constant":
            return
        if op in ("Gemm", "MatMul"):
            self.dense(node, where)
        elif op == "Add" and self.last_matmul and not self.region and len(live) == 1 \
                and live[0] == self.region_start:
            bias = self.consts[next(i for i in ins if i in self.consts)].astype(np.float64)
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
            if self.region or live != [self.region_start] or not self.chain.weights:
                raise ImportRefused(f"{where}: BatchNormalization only right after a dense layer")
            gamma, beta, mean, var = (self.consts[i].astype(np.float64) for i in ins[1:5])
            self.chain.fold_batchnorm(mean, var, float(_attrs(node).get("epsilon", 1e-5)),
                                      gamma, beta, where)
            self.last_matmul = False
            self.start(node.output[0])
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
                if i in self.consts and self.consts[i].size != 1:
                    raise ImportRefused(f"{where}: a constant of shape {self.consts[i].shape}; "
                                        "an activation treats every neuron alike")
            self.region.append(node)
            self.region_values.add(node.output[0])
        else:
            raise ImportRefused(f"{where}: the ONNX op {op} is not supported (a dense network "
                                "is Gemm or MatMul+Add layers and element-wise activations)")


def read_onnx(path: str | Path):
    """The parsed ONNX model; :class:`ImportRefused` when it cannot be read."""
    try:
        import onnx
    except ImportError:
        raise ImportRefused('importing ONNX needs the onnx package: pip install '
                            '"neuronatlas[onnx]"') from None
    path = Path(path)
    if not path.is_file():
        raise ImportRefused(f"ONNX file not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ImportRefused(f"{path} is not a readable ONNX file: {str(exc)[:160]}") from None
    for init in proto.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise ImportRefused(f"{path}: tensor {init.name} lives in an external data file, "
                                "which is not read; save the model with its weights inside")
    return proto


def from_onnx(path: str | Path, input_shape=None, *, class_names=None, check_inputs=None,
              channels_first: bool | None = None) -> MLP:
    """A neuronatlas model computing what the ONNX file computes, checked with onnxruntime
    on ``check_inputs`` (or 256 random images) and 64 wide random inputs; a difference
    above 1e-4 is an error.

    The graph's input shape gives the image shape: (N, H, W) grey, (N, C, H, W) or
    (N, H, W, C) with C of 1 or 3; a channel-first input has the first layer's columns
    reordered so that the model takes channel-last pixels. When the layout cannot be told
    from the shape, say it with ``channels_first``. Example::

        torch.onnx.export(net, torch.zeros(1, 784), "net.onnx")
        model = na.from_onnx("net.onnx")
    """
    from onnx import numpy_helper

    proto = read_onnx(path)
    graph, source = proto.graph, Path(path).name
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            attrs = _attrs(node)
            if "value" in attrs:
                consts[node.output[0]] = numpy_helper.to_array(attrs["value"])
            elif attrs:
                consts[node.output[0]] = np.asarray(next(iter(attrs.values())))
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ImportRefused(f"{source}: a network with {len(inputs)} inputs and "
                            f"{len(graph.output)} outputs; one of each is supported")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    w = _Walker(graph, consts, source)
    w.start(inputs[0].name)
    for node in graph.node:
        w.node(node)
    w.close_region(graph.output[0].name, f"{source}: the output")
    chain = w.chain
    shape, first = _image_layout(dims, channels_first, source)
    if shape is not None and input_shape is not None and tuple(input_shape) != shape:
        raise ImportRefused(f"{source}: its input is {'x'.join(map(str, shape))} images, not "
                            f"{'x'.join(map(str, input_shape))}")
    if first:
        chain.weights[0] = hwc_columns(chain.weights[0], shape)
    model = build_model(chain, source, input_shape=shape or input_shape,
                        class_names=class_names)
    _check_with_onnxruntime(path, model, dims, first, chain, check_inputs)
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


def _check_with_onnxruntime(path, model: MLP, dims, first: bool, chain: Chain,
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
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        dtype = np.float64 if "double" in inp.type else np.float32
        if dims and dims[0] == 1:  # a graph exported for batches of one
            out = np.concatenate([sess.run(None, {inp.name: feed[s:s + 1].astype(dtype)})[0]
                                  for s in range(len(feed))])
        else:
            out = sess.run(None, {inp.name: feed.astype(dtype)})[0]
    except Exception as exc:
        raise ImportRefused(f"onnxruntime could not run {Path(path).name}: {str(exc)[:160]}"
                            ) from None
    compare_outputs(model, out, x, chain.softmax_seen)
