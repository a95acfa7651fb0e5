"""Exceptions: one kind per user mistake, all under :class:`NeuronatlasError`.

The command line turns any of these into one line on stderr and exit status 2;
library users can catch the base class.
"""

from __future__ import annotations


class NeuronatlasError(Exception):
    """Base of every error neuronatlas raises for a problem the user can fix."""


class ConfigError(NeuronatlasError, ValueError):
    """A hyper-parameter is out of range (non-positive batch size, NaN rate, ...)."""


class DataError(NeuronatlasError):
    """MNIST could not be found, fetched or verified from any source."""


class CorruptFileError(DataError):
    """An IDX file has the wrong magic number, dimensions, length or checksum."""


class ModelFileError(NeuronatlasError):
    """A model file is missing, not safetensors, truncated, or holds wrong tensors."""


class RunFolderError(NeuronatlasError):
    """A run folder is missing, unwritable, or already holds what would be overwritten."""


class CheckpointError(NeuronatlasError):
    """No checkpoint to resume from, or one written under a different config."""


class TrainingDivergedError(NeuronatlasError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
