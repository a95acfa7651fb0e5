"""Bring a network made elsewhere into neuronatlas: a live PyTorch module, an ONNX file, or
a safetensors state_dict with its architecture stated (``neuronatlas import``).

Every import is checked: the imported model's logits on real inputs must equal the
source's (PyTorch or onnxruntime) within 1e-4, and the largest difference is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import Dataset, check_fits
from ..errors import ModelFileError, RunFolderError
from ..fileio import atomic_write_json, ensure_dir
from ..nn.io import sequential_names
from ..nn.mlp import MLP, default_input_shape, model_sha256
from ..runs import locks_run
from .common import TOLERANCE, ImportRefused, check_inputs_for, logit_gap
from .onnx import from_onnx
from .pytorch import from_torch

CHECK_IMAGES = 256  # test images the import is checked on


@dataclass
class ImportResult:
    model: MLP
    path: Path  # RUN/model.safetensors
    checked: str  # how the logits were checked, with the largest difference


def _from_state_dict(source: Path, *, activation, sizes, input_shape, class_names,
                     x: np.ndarray) -> tuple[MLP, str]:
    """A safetensors state_dict with its architecture stated; checked against the same
    architecture built in PyTorch when PyTorch is installed."""
    model = MLP.load(source, activation=activation, input_shape=input_shape,
                     class_names=class_names)
    if sizes is not None and tuple(sizes) != model.sizes:
        raise ImportRefused(f"{source}: --sizes {','.join(map(str, sizes))} does not match the "
                            f"tensors, which are {','.join(map(str, model.sizes))}")
    try:
        import torch
    except ImportError:
        return model, "not checked against PyTorch (not installed)"
    from safetensors.torch import load_file

    from .pytorch import torch_sequential

    net = torch_sequential(model)
    try:
        net.load_state_dict({k: v.double() for k, v in
                             sequential_names(load_file(source)).items()})
    except RuntimeError as exc:
        raise ImportRefused(f"{source}: the tensors do not load into the stated architecture "
                            f"({str(exc)[:160]})") from None
    import torch

    x = check_inputs_for(model.sizes[0], x)
    with torch.no_grad():
        out = net(torch.from_numpy(x)).numpy()
    logit_gap(model, out, x)
    return model, model.notes[-1].replace("the source's", "PyTorch's")


@locks_run("import into")
def import_model(source: str | Path, run_dir: str | Path, data: Dataset, *, activation=None,
                 sizes=None, input_shape=None, class_names=None,
                 overwrite: bool = False) -> ImportResult:
    """Import ``source`` (``.onnx``, or a safetensors state_dict) as ``RUN/model.safetensors``
    for ``data`` (its input shape and class names, unless given), checked on its first test
    images. Example::

        na.import_model("net.onnx", "runs/net", na.load_dataset("fashion-mnist"))
    """
    source, run = Path(source), Path(run_dir)
    x = data.test_x[:CHECK_IMAGES]
    if source.suffix.lower() == ".onnx":
        if activation is not None or sizes is not None:
            raise ImportRefused(f"{source.name}: --activation and --sizes are for a "
                                "state_dict; an ONNX file says its own")
        model = from_onnx(source, input_shape, class_names=class_names, check_inputs=x)
        checked = model.notes[-1].replace("the source's", "onnxruntime's")
    else:
        model, checked = _from_state_dict(source, activation=activation, sizes=sizes,
                                          input_shape=input_shape, class_names=class_names,
                                          x=x)
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
    ensure_dir(run)
    path = run / "model.safetensors"
    if path.is_file() and not overwrite:
        try:
            same = model_sha256(MLP.load(path)) == model_sha256(model)
        except ModelFileError:
            same = False
        if not same:
            raise RunFolderError(f"{run} already holds another model; pass --overwrite to "
                                 "replace it, or choose another --run")
    model.save(path)
    atomic_write_json(run / "config.json", {"import": {
        "source": str(source), "checked": checked, "tolerance": TOLERANCE,
        "notes": model.notes}, "dataset": data.identity})
    return ImportResult(model, path, checked)


__all__ = ["ImportRefused", "ImportResult", "from_onnx", "from_torch", "import_model"]
