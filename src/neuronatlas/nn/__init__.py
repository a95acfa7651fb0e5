"""The network: pure forward/backward functions, the MLP, its file format, the fused SGD step."""

from .mlp import MLP, PAPER_SIZES

__all__ = ["MLP", "PAPER_SIZES"]
