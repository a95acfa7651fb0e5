"""neuronatlas: see what every neuron of a dense network does.

The curated public API (docs/api.md)::

    import neuronatlas as na
    data = na.load_mnist()
    result = na.train(data, na.TrainConfig(), run_dir="runs/paper")
    an = na.analyze(result.model, data)            # in memory: dead, examples, clusters, claims
    cmp = na.compare(model_a, model_b, data.test_x)  # matched neurons and CKA, per layer
    model = na.MLP.load("runs/paper/model.safetensors")
    acts = model.activations(data.test_x)          # {1: (N, 1250), ..., 8: (N, 10)}
    res = na.visualize(model, [(7, 1), (8, 3)], na.VisConfig(tv=0.016, l1=0.0016))
    res.images, res.activation, res.ratio, res.top3  # one row per target
"""

from .analysis import Analysis, analyze
from .config import TrainConfig, VisConfig
from .data import MNIST, Dataset, load_dataset, load_fashion_mnist, load_mnist, load_npz
from .errors import (
    CheckpointError,
    ConfigError,
    CorruptFileError,
    DataError,
    ModelFileError,
    ModelOverflowError,
    NeuronatlasError,
    RunFolderError,
    TrainingDivergedError,
    VisualizationDivergedError,
)
from .evaluate import Evaluation, evaluate
from .explanations import Attribution, Search, attribute, explain, search, training_maxima
from .importers import ImportRefused, from_onnx, from_torch, import_model
from .nn.activations import Activation
from .nn.mlp import MLP, PAPER_SIZES
from .similarity import Comparison, compare
from .train import TrainResult, train
from .vis import Objective, QueryResult, VisResult, log_prob, neuron, others, query, visualize
from .vis.adversarial import AdversarialResult, adversarial
from .vis.display import grid
from .vis.exact import Layer1Optimum, layer1_optimum

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "MNIST",
    "PAPER_SIZES",
    "Activation",
    "AdversarialResult",
    "Analysis",
    "Attribution",
    "CheckpointError",
    "Comparison",
    "ConfigError",
    "CorruptFileError",
    "DataError",
    "Dataset",
    "Evaluation",
    "ImportRefused",
    "Layer1Optimum",
    "ModelFileError",
    "ModelOverflowError",
    "NeuronatlasError",
    "Objective",
    "QueryResult",
    "RunFolderError",
    "Search",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "VisConfig",
    "VisResult",
    "VisualizationDivergedError",
    "adversarial",
    "analyze",
    "attribute",
    "compare",
    "evaluate",
    "explain",
    "from_onnx",
    "from_torch",
    "grid",
    "import_model",
    "layer1_optimum",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "load_npz",
    "log_prob",
    "neuron",
    "others",
    "query",
    "search",
    "train",
    "training_maxima",
    "visualize",
]
