"""The static web atlas of every neuron (``neuronatlas atlas``)."""

from .build import SIZE_BUDGET, build_atlas

__all__ = ["SIZE_BUDGET", "build_atlas"]
