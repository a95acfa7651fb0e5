"""Networks compared neuron by neuron (matching) and layer by layer (CKA)."""

from .comparison import LAYER_FIELDS, Comparison, compare

__all__ = ["LAYER_FIELDS", "Comparison", "compare"]
