"""A dataset: train and test images with labels, and what identifies it.

Images are float32 ``(N, H*W*C)`` in [0, 1], flattened channel-last; labels int64 ``(N,)``
in ``0..len(class_names)-1``. Its identity is its ``name`` and the ``sha256`` of its
contents (the verified files it came from, or the arrays themselves): every cache key
and every artefact records it, so results made on one dataset are never taken for
another's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..shapes import default_input_shape

MAX_CLASSES = 100_000  # labels are class indices; a larger one is a mistake, not a class


@dataclass
class Dataset:
    """Images float32 (N, H*W*C) in [0, 1] and labels int64 (N,), train and test.

    Example::

        data = na.load_dataset("fashion-mnist")
        data.name, data.shape        # 'fashion-mnist', (28, 28, 1)
        data.class_names[:2]         # ('T-shirt/top', 'Trouser')
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    sources: dict[str, str] = field(default_factory=dict)
    cache_dir: Path | None = None
    name: str = "arrays"  # "mnist", "fashion-mnist", a file's name, or "arrays"
    shape: tuple[int, int, int] | None = None  # (height, width, channels)
    class_names: tuple[str, ...] | None = None
    sha256: str | None = None  # of the contents; computed from the arrays when None
    spec: str | None = None  # how to load it again: "mnist", "fashion-mnist" or a path
    notes: tuple[str, ...] = ()  # what loading did that the file does not say (a transpose)

    def __post_init__(self):
        n = self.train_x.shape[1] if self.train_x.ndim == 2 else -1
        if self.shape is None:
            self.shape = default_input_shape(n)
        self.shape = tuple(int(v) for v in self.shape)
        if self.class_names is None:
            k = int(max(self.train_y.max(initial=0), self.test_y.max(initial=0))) + 1
            if k > MAX_CLASSES:
                raise DataError(f"labels go up to {k - 1}; at most {MAX_CLASSES} classes")
            self.class_names = tuple(str(c) for c in range(k))
        self.class_names = tuple(self.class_names)

    @property
    def n_inputs(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def identity(self) -> dict[str, str]:
        """``{"name", "sha256"}``: what every cache key and artefact records."""
        if self.sha256 is None:
            h = hashlib.sha256(f"{self.shape}|{self.class_names}".encode())
            for a in (self.train_x, self.train_y, self.test_x, self.test_y):
                h.update(str(a.dtype).encode() + str(a.shape).encode())
                h.update(np.ascontiguousarray(a).tobytes())
            self.sha256 = h.hexdigest()
        return {"name": self.name, "sha256": self.sha256}

    def rows(self, index) -> np.ndarray:
        """Images by row of train-then-test (the order of every analysis array), gathered
        from the two splits without concatenating them: ``index`` of any shape -> its
        shape + (n_inputs,)."""
        index = np.asarray(index)
        n = len(self.train_x)
        out = np.empty((*index.shape, self.n_inputs), self.train_x.dtype)
        train = index < n
        out[train] = self.train_x[index[train]]
        out[~train] = self.test_x[index[~train] - n]
        return out

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The images and labels of ``"train"`` or ``"test"``."""
        if name not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {name!r}")
        return (self.train_x, self.train_y) if name == "train" else (self.test_x, self.test_y)

    def __repr__(self) -> str:
        h, w, c = self.shape
        return (f"Dataset({self.name}: {len(self.train_x)} train + {len(self.test_x)} test "
                f"images of {h}x{w}x{c}, {self.n_classes} classes, sha256 "
                f"{self.identity['sha256'][:12]})")


def check_fits(model, data: Dataset, what: str = "model") -> None:
    """The model must take the dataset's images and have an output for every label."""
    if model.sizes[0] != data.n_inputs:
        raise DataError(f"the {what} takes {model.sizes[0]} inputs but {data.name}'s images "
                        f"have {data.n_inputs} values ({'x'.join(map(str, data.shape))}); "
                        "choose the dataset it was made for with --dataset")
    shape = tuple(model.input_shape)
    if shape != default_input_shape(model.sizes[0]) and shape != tuple(data.shape):
        # the same count of inputs in another order: every picture would be scrambled
        raise DataError(f"the {what} takes {'x'.join(map(str, shape))} images but "
                        f"{data.name}'s are {'x'.join(map(str, data.shape))}; choose the "
                        "dataset it was made for with --dataset")
    top = int(max(data.train_y.max(initial=0), data.test_y.max(initial=0)))
    if top >= model.sizes[-1]:
        raise DataError(f"{data.name} has labels up to {top} but the {what} has only "
                        f"{model.sizes[-1]} outputs; choose the dataset it was made for with "
                        "--dataset")
