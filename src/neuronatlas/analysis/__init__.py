"""Analysis over the dataset: activations, dead neurons, dataset examples, clusters, claims."""

from .activations import ActivationStore, activation_store, compute_activations, model_sha256
from .dead import DeadReport, dead_neurons
from .examples import LayerExamples, dataset_examples, load_examples
from .pipeline import Analysis, analyze
from .run import AnalysisResult, analyze_run

__all__ = ["ActivationStore", "Analysis", "AnalysisResult", "DeadReport", "LayerExamples",
           "activation_store", "analyze", "analyze_run", "compute_activations",
           "dataset_examples", "dead_neurons", "load_examples", "model_sha256"]
