"""Short reprs for result records: arrays and long lists are summarised by their shape,
so that printing a result shows what it holds in a few lines, not its numbers."""

from __future__ import annotations

import dataclasses

import numpy as np

LIMIT = 80  # characters of one field's value


def summary(value) -> str:
    """A value in at most :data:`LIMIT` characters: ``float32 (10, 784)`` for an array,
    ``{1: float32 (1250,), ...}`` for a dict of arrays, ``[12 items]`` for a long list."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    if isinstance(value, dict):
        items = [f"{k!r}: {summary(v)}" for k, v in list(value.items())[:3]]
        more = ", ..." if len(value) > 3 else ""
        text = "{" + ", ".join(items) + more + "}"
        return text if len(text) <= LIMIT else f"{{{len(value)} entries}}"
    if isinstance(value, list | tuple) and len(value) > 3:
        return f"[{len(value)} items]"
    text = repr(value)
    return text if len(text) <= LIMIT else text[: LIMIT - 3] + "..."


def short_repr(record) -> str:
    """``Name(field=summary, ...)`` of a dataclass instance (a ``__repr__``)."""
    fields = ", ".join(f"{f.name}={summary(getattr(record, f.name))}"
                       for f in dataclasses.fields(record) if f.repr)
    return f"{type(record).__name__}({fields})"
