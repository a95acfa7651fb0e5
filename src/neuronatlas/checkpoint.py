"""The training checkpoint, beside the model format it extends (:mod:`.nn.io`): a model
file (safetensors, docs/format.md) whose metadata also holds the training state and the
config, written atomically after every epoch and on Ctrl-C; ``train --resume`` continues
from it bit-exactly. Every field is checked on reading: a damaged file is one
:class:`~neuronatlas.errors.CheckpointError` that says which field."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .errors import CheckpointError, ModelFileError
from .fileio import atomic_write_bytes
from .nn.activations import parse_activations
from .nn.io import model_to_bytes, parts_from_tensors, read_safetensors
from .nn.mlp import MLP


@dataclass
class TrainState:
    """Where training stands; everything besides the weights that resume needs."""

    epoch: int = 0  # epochs fully done
    step_in_epoch: int = 0  # batches done in the current epoch
    global_step: int = 0
    ema_raw: float = 0.0  # zero-initialised EMA accumulator of the batch loss
    rng_state: dict = field(default_factory=dict)  # generator state at the epoch's start
    epoch_seconds: float = 0.0  # time spent so far in the current epoch

    def ema_loss(self, decay: float) -> float:
        """The EMA of the loss, bias-corrected: raw / (1 - decay^t), a weighted mean of
        the recent batch losses (at the paper's 46,875 steps the correction is < 1%)."""
        if self.global_step == 0:
            return float("nan")
        return self.ema_raw / (1.0 - decay**self.global_step)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def save_checkpoint(path: Path, model: MLP, state: TrainState, config: TrainConfig) -> None:
    """The model file format plus the training state and config in its metadata, written
    atomically (a kill leaves the previous checkpoint)."""
    meta = {"checkpoint": json.dumps({"state": state.to_dict(), "config": config.to_dict()})}
    atomic_write_bytes(path, model_to_bytes(model, {"config": json.dumps(config.to_dict()),
                                                    **meta}))


def load_checkpoint(path: Path) -> tuple[MLP, TrainState, TrainConfig]:
    """The model, state and config of a checkpoint, every field checked; anything else is
    one :class:`CheckpointError`."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint to resume from: {path} does not exist")
    try:
        tensors, meta, _ = read_safetensors(path)
        info = json.loads(meta["checkpoint"])
        model = MLP.from_parts(parts_from_tensors(tensors, meta, source=str(path)), str(path))
        state = _checked_state(info["state"])
        config = TrainConfig.from_dict(info["config"])
    except ModelFileError as exc:
        raise CheckpointError(f"checkpoint unusable: {exc}") from None
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"checkpoint {path} has no readable training state "
                              f"({str(exc)[:120]})") from None
    acts = ",".join(a.spec for a in model.activation_fns)
    n_hidden = len(model.activation_fns)
    if (state.epoch > config.total_epochs or model.sizes != config.sizes
            or (n_hidden and parse_activations(config.activation, n_hidden)
                != model.activation_fns)):
        raise CheckpointError(f"checkpoint {path} does not fit its own config (epoch "
                              f"{state.epoch} of {config.total_epochs}, sizes {model.sizes}, "
                              f"activations {acts or 'none'} vs {config.activation})")
    model.metadata.pop("checkpoint", None)
    return model, state, config


def _checked_state(d) -> TrainState:
    """A TrainState from JSON, every field checked (a damaged file says which)."""
    if not isinstance(d, dict) or set(d) != set(TrainState().to_dict()):
        raise ValueError("the training state's fields are not those of this version")
    for name in ("epoch", "step_in_epoch", "global_step"):
        v = d[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {str(v)[:40]}")
    for name in ("ema_raw", "epoch_seconds"):
        v = d[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {str(v)[:40]}")
    rng = np.random.default_rng()
    try:
        rng.bit_generator.state = d["rng_state"]
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"rng_state is not a generator state ({exc})") from None
    return TrainState(**d)
