"""Import a live ``torch.nn.Module`` that is a chain of Linear layers and activations.

A ``torch.nn.Sequential`` (nested ones too) is walked module by module; any other module
is traced with ``torch.fx`` and its graph walked node by node, so a custom module whose
``forward`` calls ``self.fc1``, ``F.relu``, ``torch.flatten`` ... in a chain works too: the
input's flattening may be ``torch.flatten(x, 1)``, ``x.flatten(1)``, ``x.view(x.size(0),
-1)``, ``x.reshape(x.shape[0], -1)`` or ``x.view(-1, n)``, and an input normalisation
before the first Linear (``(x - 0.1307) / 0.3081``, ``x.sub(m).div(s)``, scalar or
one-value-per-input buffers) is folded into it exactly.
See :mod:`.common` for what is accepted; the imported model's logits are checked
against the module's own (in float64) before it is returned.
"""

from __future__ import annotations

import copy
import operator

import numpy as np

from ..nn.activations import Activation
from ..nn.mlp import MLP
from .common import (
    Chain,
    ImportRefused,
    build_model,
    check_inputs_for,
    chw,
    compare_outputs,
    hwc_columns,
)


def _np(t, chain: Chain, where: str) -> np.ndarray | None:
    import torch

    if t is None:
        return None
    t = t.detach().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        chain.notes.append(f"{where}: {str(t.dtype).replace('torch.', '')} converted to float32")
        t = t.float()
    return t.double().numpy()


def _module_activation(m) -> Activation | None:
    """The activation a module computes, or None when it is not an activation."""
    import torch.nn as nn

    if isinstance(m, nn.ReLU):
        return Activation("relu")
    if isinstance(m, nn.LeakyReLU):
        return Activation("leaky_relu", float(m.negative_slope))
    if isinstance(m, nn.ELU):
        return Activation("elu", float(m.alpha))
    if isinstance(m, nn.GELU):
        return Activation("gelu_tanh" if m.approximate == "tanh" else "gelu")
    if isinstance(m, nn.SiLU):
        return Activation("silu")
    if isinstance(m, nn.Softplus):
        if float(m.threshold) != 20.0:
            raise ImportRefused(f"Softplus with threshold {m.threshold} (only PyTorch's default "
                                "20 is supported)")
        return Activation("softplus", float(m.beta))
    if isinstance(m, nn.Tanh):
        return Activation("tanh")
    if isinstance(m, nn.Sigmoid):
        return Activation("sigmoid")
    return None


def torch_activation(act: Activation):
    """The PyTorch module computing ``act``."""
    import torch.nn as nn

    return {
        "relu": lambda: nn.ReLU(), "leaky_relu": lambda: nn.LeakyReLU(act.param),
        "elu": lambda: nn.ELU(act.param), "gelu": lambda: nn.GELU(),
        "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "silu": lambda: nn.SiLU(),
        "softplus": lambda: nn.Softplus(act.param), "tanh": lambda: nn.Tanh(),
        "sigmoid": lambda: nn.Sigmoid(), "identity": lambda: nn.Identity(),
    }[act.name]()


def torch_sequential(model: MLP):
    """An empty float64 ``torch.nn.Sequential`` of the model's architecture, whose
    state_dict keys are the model file's tensor names."""
    import torch

    layers = []
    for l, (w, has) in enumerate(zip(model.weights, model.has_bias), start=1):
        layers.append(torch.nn.Linear(w.shape[1], w.shape[0], bias=has, dtype=torch.float64))
        if l < model.n_layers:
            layers.append(torch_activation(model.activation(l)))
    return torch.nn.Sequential(*layers)


def _add_module(chain: Chain, m, where: str) -> None:
    import torch.nn as nn

    act = _module_activation(m)
    if act is not None:
        chain.add_activation(act, where)
    elif isinstance(m, nn.Linear):
        chain.add_linear(_np(m.weight, chain, where), _np(m.bias, chain, where), where)
    elif isinstance(m, (nn.Dropout, nn.AlphaDropout, nn.Identity)):
        if isinstance(m, (nn.Dropout, nn.AlphaDropout)):
            chain.notes.append(f"{where}: {type(m).__name__} dropped (it is the identity in eval "
                               "mode)")
    elif isinstance(m, nn.BatchNorm1d):
        if m.running_mean is None or not m.track_running_stats:
            raise ImportRefused(f"{where}: BatchNorm1d without running statistics cannot be "
                                "folded")
        gamma = _np(m.weight, chain, where) if m.affine else np.ones(m.num_features)
        beta = _np(m.bias, chain, where) if m.affine else np.zeros(m.num_features)
        chain.fold_batchnorm(_np(m.running_mean, chain, where), _np(m.running_var, chain, where),
                             float(m.eps), gamma, beta, where)
    elif isinstance(m, nn.Flatten):
        if chain.weights:
            raise ImportRefused(f"{where}: a Flatten after the first Linear")
    elif isinstance(m, (nn.Softmax, nn.LogSoftmax)):
        chain.softmax_seen = "log_softmax" if isinstance(m, nn.LogSoftmax) else "softmax"
        chain.notes.append(f"{where}: {type(m).__name__} at the end taken as the output SoftMax")
    elif isinstance(m, nn.Sequential):
        for name, sub in m.named_children():
            _add_module(chain, sub, f"{where}.{name}")
    else:
        raise ImportRefused(f"{where}: {type(m).__name__} is not supported (a dense network is "
                            "Linear layers and element-wise activations; Dropout and "
                            "BatchNorm1d are handled)")


# torch.fx: functions and methods the graph may call, as activations or no-ops
def _fx_tables():
    import torch
    import torch.nn.functional as F

    def act(name, param=None):
        return lambda node: Activation(name, param)

    functions = {
        F.relu: act("relu"), torch.relu: act("relu"), torch.tanh: act("tanh"),
        F.tanh: act("tanh"), torch.sigmoid: act("sigmoid"), F.sigmoid: act("sigmoid"),
        F.silu: act("silu"),
        F.gelu: lambda node: Activation("gelu_tanh" if node.kwargs.get("approximate") == "tanh"
                                        else "gelu"),
        F.leaky_relu: lambda node: Activation("leaky_relu", float(
            node.kwargs.get("negative_slope", node.args[1] if len(node.args) > 1 else 0.01))),
        F.elu: lambda node: Activation("elu", float(
            node.kwargs.get("alpha", node.args[1] if len(node.args) > 1 else 1.0))),
        F.softplus: _fx_softplus,
    }
    methods = {"relu": act("relu"), "tanh": act("tanh"), "sigmoid": act("sigmoid")}
    passthrough_functions = {F.dropout}
    passthrough_methods = {"contiguous", "float"}
    softmax = {F.softmax, F.log_softmax, torch.softmax, torch.log_softmax}
    return functions, methods, passthrough_functions, passthrough_methods, softmax


def _affine_tables():
    """Arithmetic an input normalisation uses: {function: op}, {method: op}."""
    import torch

    functions = {operator.add: "add", operator.sub: "sub", operator.mul: "mul",
                 operator.truediv: "div", operator.neg: "neg", torch.add: "add",
                 torch.sub: "sub", torch.subtract: "sub", torch.mul: "mul",
                 torch.multiply: "mul", torch.div: "div", torch.divide: "div",
                 torch.true_divide: "div", torch.neg: "neg"}
    methods = {"add": "add", "add_": "add", "sub": "sub", "sub_": "sub", "subtract": "sub",
               "mul": "mul", "mul_": "mul", "multiply": "mul", "div": "div", "div_": "div",
               "divide": "div", "true_divide": "div", "neg": "neg"}
    return functions, methods


def _fx_softplus(node) -> Activation:
    beta = node.kwargs.get("beta", node.args[1] if len(node.args) > 1 else 1.0)
    threshold = node.kwargs.get("threshold", node.args[2] if len(node.args) > 2 else 20.0)
    if float(threshold) != 20.0:
        raise ImportRefused(f"softplus with threshold {threshold} (only PyTorch's default 20 "
                            "is supported)")
    return Activation("softplus", float(beta))


def _fx_attr(module, target: str, where: str):
    """The tensor a get_attr node reads (a buffer, a parameter, a tensor constant)."""
    import torch

    obj = module
    for part in target.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, torch.Tensor):
        raise ImportRefused(f"{where}: uses the attribute {target}, which is not a tensor")
    return obj


class _FxWalk:
    """The walk of a torch.fx graph into a :class:`Chain`: the nodes on the chain, the
    constant tensors (buffers) an input normalisation uses, and the shape queries
    (``x.size(0)``, ``x.shape[0]``) a flatten ``x.view(x.size(0), -1)`` uses."""

    def __init__(self, module, chain: Chain):
        self.module, self.chain, self.name = module, chain, type(module).__name__
        self.modules = dict(module.named_modules())
        self.current = None  # the node the chain has reached
        self.on_chain = set()
        self.constants = {}  # get_attr node -> its tensor
        self.shapes = {}  # shape-query node -> "batch" (the batch size), "shape" or "dim"
        self.tables, self.affine = _fx_tables(), _affine_tables()

    def walk(self, graph) -> None:
        for node in graph.nodes:
            where = f"{self.name}.{node.name}"
            if node.op == "output":
                if node.args[0] is not self.current:
                    raise ImportRefused(f"{where}: the output is not the end of the chain")
                return
            if node.op == "placeholder":
                if self.current is not None:
                    raise ImportRefused(f"{where}: a network with more than one input")
            elif node.op == "get_attr":
                self.constants[node] = _fx_attr(self.module, node.target, where)
                continue
            elif self._shape_query(node):
                continue
            else:
                self._check_inputs(node, where)
                self._step(node, where)
            self.current = node
            self.on_chain.add(node)

    def _shape_query(self, node) -> bool:
        """Record ``x.size(0)``, ``x.size()``, ``x.shape`` and an index into those."""
        args = node.args
        if node.op == "call_method" and node.target == "size" and args[0] in self.on_chain:
            dim = args[1] if len(args) > 1 else node.kwargs.get("dim")
            self.shapes[node] = "shape" if dim is None else "batch" if dim == 0 else "dim"
        elif (node.op == "call_function" and node.target is getattr
              and args[0] in self.on_chain and args[1] == "shape"):
            self.shapes[node] = "shape"
        elif (node.op == "call_function" and node.target is operator.getitem
              and self.shapes.get(args[0]) == "shape"):
            self.shapes[node] = "batch" if args[1] == 0 else "dim"
        else:
            return False
        return True

    def _check_inputs(self, node, where: str) -> None:
        """A node on the chain takes the chain's last node (and constants, shapes)."""
        inputs = [a for a in node.all_input_nodes
                  if a not in self.constants and a not in self.shapes]
        if inputs != [self.current]:
            what = ("a residual or branching connection" if len(inputs) > 1 else
                    "a branch off the chain")
            raise ImportRefused(f"{where}: {what} ({node.op} {node.target}); only a chain of "
                                "layers is supported")
        used = [a for a in node.all_input_nodes if a in self.constants]
        if used and self._affine_op(node) is None:
            raise ImportRefused(f"{where}: uses the parameter {used[0].target} outside a layer")

    def _affine_op(self, node) -> str | None:
        functions, methods = self.affine
        if node.op == "call_function":
            return functions.get(node.target)
        return methods.get(node.target) if node.op == "call_method" else None

    def _step(self, node, where: str) -> None:
        functions, methods, pass_f, pass_m, softmax = self.tables
        op, target = node.op, node.target
        if op == "call_module":
            _add_module(self.chain, self.modules[target], f"{self.name}.{target}")
        elif op == "call_function" and target in functions:
            self.chain.add_activation(functions[target](node), where)
        elif op == "call_method" and target in methods:
            self.chain.add_activation(methods[target](node), where)
        elif self._affine_op(node) is not None:
            self._affine(node, where)
        elif (op == "call_function" and target is _torch_flatten()) or (
                op == "call_method" and target == "flatten"):
            self._flatten(node, where)
        elif op == "call_method" and target in ("view", "reshape"):
            self._reshape(node, where)
        elif (op == "call_function" and target in pass_f) or (
                op == "call_method" and target in pass_m):
            pass
        elif op == "call_function" and target in softmax:
            self.chain.softmax_seen = "log_softmax" if "log" in target.__name__ else "softmax"
            self.chain.notes.append(f"{where}: {target.__name__} at the end taken as the "
                                    "output SoftMax")
        elif op == "call_function" and target is operator.getitem:
            raise ImportRefused(f"{where}: indexing inside the network is not supported")
        else:
            what = getattr(target, "__name__", target)
            raise ImportRefused(f"{where}: {op} {what} is not supported (a dense network "
                                "is Linear layers and element-wise activations)")

    def _affine(self, node, where: str) -> None:
        """``x - m``, ``x / s``, ``2 * x``, ``m.sub(x)``, ``-x`` ... before the first Linear."""
        op = self._affine_op(node)
        if op == "neg":
            self.chain.add_input_affine("mul", -1.0, where)
            return
        a = node.args[0]
        b = node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
        reverse = a is not self.current
        k = a if reverse else b
        alpha = node.kwargs.get("alpha", 1)
        number = isinstance(k, (int, float)) and not isinstance(k, bool)
        constant = hasattr(k, "op") and k in self.constants
        if not (number or constant) or node.kwargs.get("rounding_mode") is not None or (
                alpha != 1 and reverse):
            raise ImportRefused(f"{where}: {op} of {_describe(a)} and {_describe(b)} is not "
                                "supported (an input normalisation takes numbers or tensors)")
        k = _np(self.constants[k], self.chain, where) if constant else float(k)
        self.chain.add_input_affine(op, k * alpha if op in ("add", "sub") else k, where,
                                    reverse=reverse)

    def _flatten(self, node, where: str) -> None:
        """``torch.flatten(x, 1)`` / ``x.flatten(1)``: the input's flattening."""
        args, kwargs = node.args, node.kwargs
        start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
        end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
        if start != 1 or end != -1:
            raise ImportRefused(f"{where}: flatten from dimension {start} to {end} is not the "
                                "input's flattening to (batch, features); use "
                                "torch.flatten(x, 1)")
        if self.chain.weights:
            raise ImportRefused(f"{where}: a reshape after the first Linear")

    def _reshape(self, node, where: str) -> None:
        """``x.view(x.size(0), -1)``, ``x.reshape(x.shape[0], -1)``, ``x.view(-1, 784)``."""
        if self.chain.weights:
            raise ImportRefused(f"{where}: a reshape after the first Linear")
        rest = list(node.args[1:])
        if len(rest) == 1 and isinstance(rest[0], (tuple, list)):
            rest = list(rest[0])
        first, second = rest if len(rest) == 2 else (None, None)
        size = isinstance(second, int) and not isinstance(second, bool) and (
            second == -1 or second > 0)
        batch = (first == -1 and second != -1) if isinstance(first, int) else (
            hasattr(first, "op") and self.shapes.get(first) == "batch")
        if not (batch and size):
            shown = ", ".join(map(_describe, rest))
            raise ImportRefused(f"{where}: {node.target}({shown}) is not the input's flattening "
                                "to (batch, features), e.g. x.view(x.size(0), -1)")


def _describe(v) -> str:
    """A graph argument as the user wrote it, roughly: a node's name, or the value."""
    return getattr(v, "name", None) or repr(v)


def _torch_flatten():
    import torch

    return torch.flatten


def _walk_fx(module, chain: Chain) -> None:
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(module).graph
    except Exception as exc:
        raise ImportRefused(f"{type(module).__name__} could not be traced with torch.fx "
                            f"({str(exc)[:120]}); pass a torch.nn.Sequential") from None
    _FxWalk(module, chain).walk(graph)


def from_torch(module, input_shape=None, *, class_names=None, check_inputs=None,
               channels_first: bool = False) -> MLP:
    """A neuronatlas model computing what ``module`` (in eval mode) computes.

    ``input_shape`` (height, width, channels) says how the flat input is an image
    (default: 28x28x1-style square grey when the input size is a square, else a flat
    strip); ``channels_first`` when the module takes images flattened from (C, H, W)
    rather than (H, W, C): the first layer's columns are reordered so that the model takes
    channel-last pixels (``input_shape`` is then required). The logits are checked on
    ``check_inputs`` (N, inputs; default 256 uniform random images) and 64 wide random
    inputs; a difference above 1e-4 is an error. Example::

        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64),
                                  torch.nn.GELU(), torch.nn.Linear(64, 10))
        model = na.from_torch(net, input_shape=(28, 28, 1))
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise ImportRefused(f"from_torch takes a torch.nn.Module, got {type(module).__name__}")
    if channels_first and input_shape is None:
        raise ImportRefused("channels_first needs input_shape (height, width, channels): "
                            "without it the channel order cannot be undone")
    chain = Chain()
    name = type(module).__name__
    if isinstance(module, torch.nn.Sequential):
        _add_module(chain, module, name)
    else:
        _walk_fx(module, chain)
    if channels_first and chain.weights:
        chain.weights[0] = hwc_columns(chain.weights[0], input_shape)
    model = build_model(chain, name, input_shape=input_shape, class_names=class_names)
    x = check_inputs_for(model.sizes[0], check_inputs)
    src = chw(x, model.input_shape).reshape(len(x), -1) if channels_first else x
    ref = copy.deepcopy(module).double().eval()  # the user's module is left as it was
    try:
        with torch.no_grad():
            out = ref(torch.from_numpy(np.ascontiguousarray(src))).numpy()
    except Exception as exc:
        raise ImportRefused(f"{name} failed on a (N, {model.sizes[0]}) input: "
                            f"{str(exc)[:160]}") from None
    compare_outputs(model, out, x, chain.softmax_seen)
    model.notes[-1] = model.notes[-1].replace("the source's", "PyTorch's")
    return model
