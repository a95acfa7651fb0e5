"""The network: pure forward/backward functions (functional.py), the MLP (mlp.py), its
file format (io.py) and the training step (sgd_step.py)."""

from .mlp import MLP, PAPER_SIZES

__all__ = ["MLP", "PAPER_SIZES"]
