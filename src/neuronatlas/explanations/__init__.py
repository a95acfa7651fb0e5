"""Every neuron explained: how it is built from the layer below, what it votes for, and
how far its picture agrees with its data (:func:`explain`)."""

from .neuron import explain

__all__ = ["explain"]
