"""The static web atlas of every neuron, written from a run's artefacts (``neuronatlas
atlas``; :func:`neuronatlas.make_atlas.build_atlas` makes what is missing first)."""

from .build import SIZE_BUDGET, write_atlas

__all__ = ["SIZE_BUDGET", "write_atlas"]
