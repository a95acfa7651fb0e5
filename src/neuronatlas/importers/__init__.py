"""Bring a network made elsewhere into neuronatlas: a live PyTorch module, an ONNX file, or
a safetensors state_dict with its architecture stated (``neuronatlas import``).

A live module's or an ONNX file's import is checked: the imported model's logits on real
inputs must equal the source's (PyTorch or onnxruntime) within 1e-4, and the largest
difference is reported. A state_dict holds only the tensors: its activations are stated
by the user and cannot be checked against the original network, so the import says so,
and warns when another activation fits the test images clearly better. Every import
reports its accuracy on the stated dataset's test images (recorded as ``test_accuracy``)
and warns when it is near chance (the wrong dataset?).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import Dataset, check_fits
from ..errors import ModelFileError, RunFolderError
from ..fileio import atomic_write_json
from ..layout import CONFIG, model_file
from ..nn.io import sequential_names
from ..nn.mlp import MLP, model_sha256
from ..runs import LOCK, writing
from ..shapes import default_input_shape
from .common import (
    TOLERANCE,
    ImportRefused,
    check_inputs_for,
    import_warnings,
    logit_gap,
    state_dict_metadata,
)
from .onnx import from_onnx
from .pytorch import from_torch

CHECK_IMAGES = 256  # test images the import is checked on


@dataclass
class ImportResult:
    model: MLP
    path: Path  # RUN/model.safetensors
    checked: str  # what was checked (and what was not), with the largest difference
    test_accuracy: float | None = None  # on the dataset's test images
    warnings: list[str] = field(default_factory=list)  # what the data say against it


def _from_state_dict(source: Path, *, activation, sizes, input_shape, class_names,
                     x: np.ndarray) -> tuple[MLP, str, bool]:
    """A safetensors state_dict with its architecture stated: (model, what was checked,
    whether its activations were stated rather than read from the file). With PyTorch
    installed, the same architecture built in PyTorch must compute the same logits."""
    meta = state_dict_metadata(source)
    stated = not ("activations" in meta or "hidden_activation" in meta)
    model = MLP.load(source, activation=activation, input_shape=input_shape,
                     class_names=class_names)
    if sizes is not None and tuple(sizes) != model.sizes:
        raise ImportRefused(f"{source}: --sizes {','.join(map(str, sizes))} does not match the "
                            f"tensors, which are {','.join(map(str, model.sizes))}")
    specs = ",".join(dict.fromkeys(a.spec for a in model.activation_fns)) or "none"
    checked = (f"the tensors were read; the activations were stated ({specs}), not checked "
               "against the original network (a state_dict does not record them)" if stated
               else f"the tensors and activations ({specs}) were read from the file")
    gap = _same_in_torch(source, model, x)
    if gap is not None:
        checked += f"; PyTorch computes the stated network as neuronatlas does (within {gap:.2g})"
    return model, checked, stated


def _same_in_torch(source: Path, model: MLP, x: np.ndarray) -> float | None:
    """The largest logit difference between ``model`` and the same architecture built in
    PyTorch from the file's tensors (None without PyTorch); :class:`ImportRefused` above
    the tolerance."""
    try:
        import torch
    except ImportError:
        return None
    from safetensors.torch import load_file

    from .pytorch import torch_sequential

    net = torch_sequential(model)
    try:
        net.load_state_dict({k: v.double() for k, v in
                             sequential_names(load_file(source)).items()})
    except RuntimeError as exc:
        raise ImportRefused(f"{source}: the tensors do not load into the stated architecture "
                            f"({str(exc)[:160]})") from None
    x = check_inputs_for(model.sizes[0], x)
    with torch.no_grad():
        out = net(torch.from_numpy(x)).numpy()
    gap = logit_gap(model, out, x)
    model.notes.pop()  # the check line says it instead
    return gap


def _read(source: Path, data: Dataset, *, activation, sizes, input_shape, class_names
          ) -> tuple[MLP, str, bool]:
    """The model of ``source``, checked, with what the check was; nothing is written."""
    x = data.test_x[:CHECK_IMAGES]
    if source.suffix.lower() == ".onnx":
        if activation is not None or sizes is not None:
            raise ImportRefused(f"{source.name}: --activation and --sizes are for a "
                                "state_dict; an ONNX file says its own")
        model = from_onnx(source, input_shape, class_names=class_names, check_inputs=x)
        checked = model.notes.pop().replace("the source's", "onnxruntime's")
        return model, checked, False
    return _from_state_dict(source, activation=activation, sizes=sizes,
                            input_shape=input_shape, class_names=class_names, x=x)


def _fit_to(model: MLP, source: Path, data: Dataset, input_shape, class_names) -> None:
    """The dataset's input shape, class names and identity recorded in the model."""
    check_fits(model, data, "imported model")
    if input_shape is None and model.input_shape != data.shape:
        if model.input_shape != default_input_shape(model.sizes[0]):  # the graph's own
            raise ImportRefused(f"{source.name} takes images of "
                                f"{'x'.join(map(str, model.input_shape))}, {data.name}'s are "
                                f"{'x'.join(map(str, data.shape))}")
        model.input_shape = data.shape  # a flat input: the dataset says what it is
    if class_names is None and len(data.class_names) == model.sizes[-1]:
        model.class_names = data.class_names
    model.metadata.update({"dataset": data.name, "dataset_sha256": data.identity["sha256"],
                           "imported_from": source.name})
    if data.spec and data.spec != data.name:
        model.metadata["dataset_path"] = data.spec


def import_model(source: str | Path, run_dir: str | Path, data: Dataset, *, activation=None,
                 sizes=None, input_shape=None, class_names=None,
                 overwrite: bool = False) -> ImportResult:
    """Import ``source`` (``.onnx``, or a safetensors state_dict) as ``RUN/model.safetensors``
    for ``data`` (its input shape and class names, unless given), checked on its first test
    images; the run folder is made (and locked) only once the model has been read and
    checked. The result says what was checked, the test accuracy and any warnings. Example::

        na.import_model("net.onnx", "runs/net", na.load_dataset("fashion-mnist"))
    """
    source, run = Path(source), Path(run_dir)
    model, checked, stated = _read(source, data, activation=activation, sizes=sizes,
                                   input_shape=input_shape, class_names=class_names)
    _fit_to(model, source, data, input_shape, class_names)
    accuracy, warnings = import_warnings(model, data, activations_stated=stated)
    if accuracy is not None:
        model.metadata["test_accuracy"] = f"{accuracy:.4f}"
    model.notes.append(checked)
    path = _write(model, run, source, checked, data, overwrite)
    return ImportResult(model, path, checked, accuracy, warnings)


def _write(model: MLP, run: Path, source: Path, checked: str, data: Dataset,
           overwrite: bool) -> Path:
    """Save the model and its config.json in ``run``, under the folder's lock; a folder
    this made is removed again when the write fails."""
    made = not run.exists()
    try:
        with writing(run, "import into"):
            path = model_file(run)
            if path.is_file() and not overwrite:
                try:
                    same = model_sha256(MLP.load(path)) == model_sha256(model)
                except ModelFileError:
                    same = False
                if not same:
                    raise RunFolderError(f"{run} already holds another model; pass --overwrite "
                                         "to replace it, or choose another --run")
            model.save(path)
            atomic_write_json(run / CONFIG, {"import": {
                "source": str(source), "checked": checked, "tolerance": TOLERANCE,
                "notes": model.notes}, "dataset": data.identity})
    except BaseException:
        if made:
            _remove_if_empty(run)
        raise
    return path


def _remove_if_empty(run: Path) -> None:
    """Remove a run folder that holds nothing but its lock."""
    try:
        if run.is_dir() and {p.name for p in run.iterdir()} <= {LOCK}:
            shutil.rmtree(run)
    except OSError:
        pass


__all__ = ["ImportRefused", "ImportResult", "from_onnx", "from_torch", "import_model"]
