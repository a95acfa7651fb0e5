"""Numbers to and from JSON: JSON has no NaN or infinity, so a number that is not finite
is written ``null``, and read back as NaN. One pair of converters for every JSON file
and page the package writes (comparisons, formation, the study page, query results)."""

from __future__ import annotations

import numpy as np


def to_json(v):
    """``v`` with every float finite or None, NumPy scalars and arrays as Python numbers
    and (nested) lists; dicts, lists and tuples converted throughout, anything else kept."""
    if isinstance(v, np.ndarray):
        return [to_json(x) for x in v.tolist()] if v.ndim else to_json(v.item())
    if isinstance(v, list | tuple):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    if isinstance(v, float | np.floating):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def floats_to_json(a) -> list:
    """Any array-like of numbers as a (nested) list of finite floats or None."""
    return to_json(np.asarray(a, np.float64))


def from_json(values) -> np.ndarray:
    """JSON numbers, nested or not (null: NaN), as float64."""
    return np.array(values, dtype=object).astype(np.float64)


def float_or_none(v) -> float | None:
    """A number (or None) as a finite float, or None."""
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None
