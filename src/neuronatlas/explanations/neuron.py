"""One neuron explained from numbers: how it is built from the layer below, what it votes
for, what its strongest images are, and how far its picture agrees with them.

Every number is computed, none estimated where an exact one is cheap: the incoming
contributions add up (with the bias) to the mean pre-activation over the neuron's top
images exactly; the ablation is a forward pass with the neuron set to 0, not a
gradient. The images are the neuron's top examples over the dataset's training then
test images, found as the analysis finds them (:func:`analysis.examples.top_k`), so they
are the atlas's.
"""

from __future__ import annotations

import numpy as np

from ..analysis.activations import dataset_labels
from ..analysis.examples import top_k
from ..data import Dataset
from ..errors import ConfigError
from ..nn import functional as F
from ..nn.mlp import MLP
from ..vis.objectives import check_neuron

K = 16  # top images the contributions, the filter and the effects are taken over
TOP_CLASSES = 100  # top images whose classes are counted
ABLATION_IMAGES = 1000  # the first test images the ablation is measured on


def neuron_activations(model: MLP, x: np.ndarray, layer: int, batch: int = 4096
                       ) -> np.ndarray:
    """Every hidden or output layer's activations up to ``layer``, kept for ``layer`` only:
    (N, size) float32 (a forward pass stopped at the layer)."""
    out = np.empty((len(x), model.sizes[layer]), model.dtype)
    for s in range(0, len(x), batch):
        a = x[s:s + batch]
        for l in range(1, layer + 1):
            z = F.linear_forward(a, model.weights[l - 1], model.biases[l - 1])
            a = (model.activation_fns[l - 1].forward(z) if l < model.n_layers
                 else F.softmax_forward(z))
        out[s:s + batch] = a
    return out


def incoming(model: MLP, layer: int, index: int, below: np.ndarray) -> dict:
    """How neuron ``index`` of ``layer`` is built from the layer below over some images:
    ``below`` (n, size of layer-1) holds that layer's activations (the pixels for layer 1).
    Each source j's ``weight`` W[i, j] and ``contribution``, the mean of W[i, j] a_j(x),
    sorted by |contribution|; in float64, the contributions plus the bias are the mean
    pre-activation (Appendix item 1: z = W a + b)."""
    w = model.weights[layer - 1][index].astype(np.float64)
    contrib = w * below.astype(np.float64).mean(axis=0)
    order = np.argsort(-np.abs(contrib), kind="stable")
    bias = float(model.biases[layer - 1][index])
    return {"bias": bias, "mean_pre_activation": float(contrib.sum() + bias),
            "sources": [{"neuron": int(j), "weight": float(w[j]),
                         "contribution": float(contrib[j])} for j in order]}


def input_filter(model: MLP, layer: int, index: int, x: np.ndarray) -> np.ndarray:
    """The neuron's effective input filter: for layer 1 its weight row, exactly; deeper, the
    mean over ``x`` of dz/dx, backpropagated from z through the layers below (Appendix
    item 2: dz_t/dI = w_t f'(z^{t-1}) w^{t-1} ... f'(z^1) w^1); float64."""
    if layer == 1:
        return model.weights[0][index].astype(np.float64)
    trace = model.trace(x.astype(model.dtype))
    g = np.repeat(model.weights[layer - 1][index][None].astype(np.float64), len(x), axis=0)
    for l in range(layer - 1, 0, -1):  # dL/da_l -> dL/dz_l -> dL/da_{l-1}
        g = model.activation_fns[l - 1].backward(g, trace.z[l - 1].astype(np.float64),
                                                 trace.a[l - 1].astype(np.float64))
        g = g @ model.weights[l - 1].astype(np.float64)
    return g.mean(axis=0)


def output_effects(model: MLP, layer: int, index: int, x: np.ndarray) -> np.ndarray:
    """For each class, the mean over ``x`` of d logit_c / d a_i: which classes the neuron
    votes for (float64, backpropagated from each logit to its layer)."""
    L = model.n_layers
    trace = model.trace(x.astype(model.dtype))
    n, c = len(x), model.sizes[-1]
    g = np.repeat(np.eye(c)[None], n, axis=0).reshape(n * c, c)  # row (image, class)
    for l in range(L, layer, -1):  # dlogit/dz_l -> dlogit/da_{l-1}
        g = g @ model.weights[l - 1].astype(np.float64)
        if l - 1 > layer:
            z = np.repeat(trace.z[l - 2].astype(np.float64), c, axis=0)
            a = np.repeat(trace.a[l - 2].astype(np.float64), c, axis=0)
            g = model.activation_fns[l - 2].backward(g, z, a)
    return g[:, index].reshape(n, c).mean(axis=0)


def ablation(model: MLP, layer: int, index: int, x: np.ndarray, labels: np.ndarray
             ) -> dict:
    """The exact change, over images ``x`` with ``labels``, of each class's mean
    log-probability and of the accuracy when the neuron's activation is set to 0 (a
    forward pass from its layer on)."""
    a = neuron_activations(model, x, layer)
    cut = a.copy()
    cut[:, index] = 0
    before, after = (_log_softmax_from(model, layer, v) for v in (a, cut))
    return {"log_prob": (after.mean(axis=0) - before.mean(axis=0)).tolist(),
            "accuracy": float(np.mean(after.argmax(1) == labels)
                              - np.mean(before.argmax(1) == labels))}


def _log_softmax_from(model: MLP, layer: int, a: np.ndarray) -> np.ndarray:
    """Log SoftMax of the network run on from layer ``layer``'s activations ``a``, float64."""
    z = F.linear_forward(a, model.weights[layer], model.biases[layer])
    return log_softmax_on(model, layer + 1, z)


def log_softmax_on(model: MLP, m: int, z: np.ndarray) -> np.ndarray:
    """Log SoftMax (float64) of the network run on from layer m's pre-activations ``z``."""
    for k in range(m, model.n_layers):
        a = model.activation_fns[k - 1].forward(z)
        z = F.linear_forward(a, model.weights[k], model.biases[k])
    return F.log_softmax(z.astype(np.float64))


def trust(model: MLP, layer: int, index: int, picture: np.ndarray, data: Dataset,
          train_max: float, top_class: int, seed: int = 0) -> dict:
    """How far the neuron's ``picture`` agrees with its data: ``reach``, its activation on
    the picture over its strongest training image's; ``two_choice``, the share of (strong,
    middle) pairs of test images where the strong one is more like the picture (the
    readability benchmark's test, :func:`vis.quality.two_choice`; NaN when its test images
    have no clear strong ones); ``class_agreement``, 1 when the network reads the picture
    as ``top_class`` (the class most of its top images have), else 0."""
    from ..vis import quality as Q

    x = model.check_input(np.asarray(picture, model.dtype).reshape(1, -1))
    if not np.isfinite(x).all():
        raise ConfigError("the picture has NaN or infinite pixels")
    got = float(neuron_activations(model, x, layer)[0, index])
    test_acts = neuron_activations(model, data.test_x, layer)[:, [index]]
    strong, mid = Q.two_choice_pairs(test_acts, np.random.default_rng([seed, layer, index]))
    tc = float(Q.two_choice(x, data.test_x, strong, mid)[0])
    return {"picture_activation": got,
            "reach": got / train_max if train_max > 0 else float("nan"),
            "two_choice": tc,
            "class_agreement": float(int(model.predict(x)[0]) == top_class)}


def explain(model: MLP, target: tuple[int, int], data: Dataset, *,
            picture: np.ndarray | None = None) -> dict:
    """One record for neuron ``target`` = (layer, index) of ``model`` on ``data`` (the names
    of docs/explain.md); ``picture``: the neuron's picture the trust numbers judge
    (default: rendered now with the ``readable`` preset, as the atlas's tiles). Example::

        rec = na.explain(model, (5, 12), na.load_mnist())
        rec["description"], rec["incoming"][:3], rec["outputs"]["effect"]
    """
    layer, index = target
    check_neuron(layer, index, model.sizes)
    if data.n_inputs != model.sizes[0]:
        raise ConfigError(f"{data.name}'s images have {data.n_inputs} values but the model "
                          f"takes {model.sizes[0]}")
    labels = dataset_labels(data)
    acts = np.concatenate([neuron_activations(model, x, layer)[:, [index]]
                           for x in (data.train_x, data.test_x)])
    # a dataset smaller than TOP_CLASSES: all its images (argpartition would wrap around)
    top, vals = top_k(acts, min(max(K, TOP_CLASSES), len(acts)))
    top, vals = top[0], vals[0]
    images = top[:K]
    x = data.rows(images)
    below = x if layer == 1 else neuron_activations(model, x, layer - 1)
    built = incoming(model, layer, index, below)
    classes = np.bincount(labels[top[:TOP_CLASSES]], minlength=model.sizes[-1])
    floor = model.activation_fns[layer - 1].floor if layer < model.n_layers else 0.0
    record = {
        "layer": layer, "neuron": index, "images": images.tolist(),
        "activations": vals[:K].tolist(),
        "bias": built["bias"], "mean_pre_activation": built["mean_pre_activation"],
        "incoming": built["sources"],
        "filter": input_filter(model, layer, index, x).tolist(),
        "classes": classes.tolist(),
        "selectivity": float(classes.max() / classes.sum()),
        "sparsity": float(np.mean(acts[:, 0] > floor)),
    }
    if layer < model.n_layers:
        n = min(ABLATION_IMAGES, len(data.test_x))
        cut = ablation(model, layer, index, data.test_x[:n], data.test_y[:n])
        record["outputs"] = {"effect": output_effects(model, layer, index, x).tolist(),
                             "ablation": cut["log_prob"], "accuracy_change": cut["accuracy"],
                             "ablation_images": n}
    else:
        record["outputs"] = None  # an output votes for itself
    if picture is None:
        from ..config import VisConfig
        from ..vis.prototypes import data_prototypes
        from ..vis.visualize import visualize

        picture = visualize(model, [(layer, index)], VisConfig.preset("readable"),
                            prototypes=data_prototypes(data)).images[0]
    n_train = len(data.train_x)
    train_max = float(acts[:n_train, 0].max())
    record["trust"] = trust(model, layer, index, picture, data, train_max,
                            int(classes.argmax()))
    record["description"] = describe(record)
    return record


def describe(record: dict) -> str:
    """One line from the record's numbers: the classes of its top images, what it votes
    for, the neurons (or pixels) below it that it is built from most."""
    classes = np.asarray(record["classes"])
    total = classes.sum()
    order = np.argsort(-classes, kind="stable")
    shown, share = [], 0
    for c in order[:3]:
        shown.append(int(c))
        share += classes[c]
        if share >= 0.8 * total:
            break
    names = ", ".join(map(str, shown[:-1])) + (" and " if len(shown) > 1 else "") + str(shown[-1])
    fires = (f"fires on {names} "
             f"({round(100 * share / total)}% of its top {total})")
    parts = [fires]
    if record["outputs"] is not None:
        effect = np.asarray(record["outputs"]["effect"])
        parts.append(f"votes for {int(effect.argmax())}")
    below = "pixels" if record["layer"] == 1 else f"{record['layer'] - 1}:"
    top = [s["neuron"] for s in record["incoming"][:2]]
    if record["layer"] == 1:
        parts.append(f"built mostly from pixels {top[0]} and {top[1]}" if len(top) > 1 else
                     f"built mostly from pixel {top[0]}")
    else:
        parts.append("built mostly from " + " and ".join(f"{below}{j}" for j in top))
    return "; ".join(parts)
