"""Every neuron explained: how it is built from the layer below, what it votes for, and
how far its picture agrees with its data (:func:`explain`); which neurons one input used
(:func:`attribute`) and the neurons an image drives hardest (:func:`search`)."""

from .attribution import Attribution, attribute
from .neuron import explain
from .search import Search, search, training_maxima

__all__ = ["Attribution", "Search", "attribute", "explain", "search", "training_maxima"]
