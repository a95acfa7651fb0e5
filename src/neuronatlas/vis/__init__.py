"""Activation maximisation (the paper's "Visualiser"), query, and adversarial examples."""

from .objectives import Objective, log_prob, neuron, others, parse_target
from .query import QueryResult, query
from .visualize import VisResult, visualize

__all__ = ["Objective", "QueryResult", "VisResult", "log_prob", "neuron", "others",
           "parse_target", "query", "visualize"]
