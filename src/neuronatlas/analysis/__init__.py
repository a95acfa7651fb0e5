"""Analysis over the dataset: activations, dead neurons, dataset examples, clusters, claims."""

from .activations import ActivationStore, activation_store, model_sha256
from .dead import DeadReport, dead_neurons
from .examples import LayerExamples, dataset_examples, load_examples
from .run import AnalysisResult, analyze

__all__ = ["ActivationStore", "AnalysisResult", "DeadReport", "LayerExamples",
           "activation_store", "analyze", "dataset_examples", "dead_neurons",
           "load_examples", "model_sha256"]
