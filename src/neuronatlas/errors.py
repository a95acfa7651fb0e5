"""Exceptions: one kind per user mistake, all under :class:`NeuronatlasError`.

The command line turns any of these into one line on stderr and exit status 2;
library users can catch the base class.
"""

from __future__ import annotations


class NeuronatlasError(Exception):
    """Base of every error neuronatlas raises for a problem the user can fix. Example::

        try:
            model = na.MLP.load("model.safetensors")
        except na.NeuronatlasError as exc:
            print(f"error: {exc}")   # one line that says what is wrong
    """


class ConfigError(NeuronatlasError, ValueError):
    """A hyper-parameter is out of range (non-positive batch size, NaN rate, ...), naming
    the field. Example: ``na.VisConfig(lr=float("nan"))`` raises ``ConfigError("lr must be
    a finite number in (0.0, inf], got nan")``."""


class DataError(NeuronatlasError):
    """A dataset could not be found, fetched, verified or read, or does not fit the model.
    Example: ``na.load_dataset("cifar")`` raises ``DataError("unknown dataset 'cifar': ...")``."""


class CorruptFileError(DataError):
    """An IDX file has the wrong magic number, dimensions, length or checksum. Example:
    ``neuronatlas.data.verify(b"garbage", spec)`` raises it with the reason."""


class ModelFileError(NeuronatlasError):
    """A model file is missing, not safetensors, truncated, holds wrong tensors, or does not
    record what is needed to compute it. Example: ``na.MLP.load("state_dict.safetensors")``
    raises it when the file does not say its activations (pass ``activation=``)."""


class RunFolderError(NeuronatlasError):
    """A run folder is missing, unwritable, full, or already holds what would be
    overwritten (another run, another model's artefacts). Example: ``na.train(data,
    run_dir="runs/paper")`` raises it when that folder already holds a run."""


class CheckpointError(NeuronatlasError):
    """No checkpoint to resume from, a damaged one, or one written under a different config
    or dataset. Example: ``na.train(data, run_dir="runs/new", resume=True)`` raises it."""


class VisualizationDivergedError(NeuronatlasError):
    """An optimisation's images or activations became NaN or infinite (a learning rate far
    too large, or a network whose huge weights overflow): never returned as numbers.
    Example: ``na.visualize(model, [(1, 0)], na.VisConfig(lr=1e30))`` raises it."""


class TrainingDivergedError(NeuronatlasError):
    """The loss became NaN or infinite; the last good checkpoint is kept. Example:
    ``na.train(data, na.TrainConfig(lr=1e6))`` raises it after the first bad step."""


class ModelOverflowError(NeuronatlasError):
    """The model's outputs are NaN or infinite on some inputs: weights within float32's
    range whose products overflow in the forward pass. No accuracy or prediction is made
    of them. Example: ``na.evaluate(model, x, y)`` raises it for a model with weights of
    3e37."""
