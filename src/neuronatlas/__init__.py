"""neuronatlas: see what every neuron of a dense ReLU network does.

The curated public API (DESIGN.md section 7)::

    import neuronatlas as na
    data = na.load_mnist()
    result = na.train(data, na.TrainConfig(), run_dir="runs/paper")
    model = na.MLP.load("runs/paper/model.safetensors")
    acts = model.activations(data.test_x)          # {1: (N, 1250), ..., 8: (N, 10)}
"""

from .config import TrainConfig
from .data import MNIST, load_mnist
from .errors import (
    CheckpointError,
    ConfigError,
    CorruptFileError,
    DataError,
    ModelFileError,
    NeuronatlasError,
    RunFolderError,
    TrainingDivergedError,
)
from .evaluate import Evaluation, evaluate
from .nn.mlp import MLP, PAPER_SIZES
from .train import TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "MNIST",
    "PAPER_SIZES",
    "CheckpointError",
    "ConfigError",
    "CorruptFileError",
    "DataError",
    "Evaluation",
    "ModelFileError",
    "NeuronatlasError",
    "RunFolderError",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "evaluate",
    "load_mnist",
    "train",
]
