"""Group labels: how a group column's values are written, ordered and named back by a user.

A hierarchical fit keeps its groups as strings. A numeric column (a sequence length, a model
size) is written short, ordered by value, and a user may name a group by any spelling of its
number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["group_order", "group_strings", "match_group"]


def group_strings(values) -> np.ndarray:
    """Group labels as strings; numbers written short, so ``8.5e7`` reads ``85000000``.

    A numeric column (sequence length, learning rate, model size) would otherwise read
    ``85000000.0``; whole numbers lose the ``.0`` and other numbers keep Python's shortest
    round-trip form, so no two distinct values share a label.

    >>> group_strings(pd.Series([85e6, 1.2e9, 3e-4])).tolist()
    ['85000000', '1200000000', '0.0003']
    >>> group_strings(pd.Series(["c4", "rpj"])).tolist()
    ['c4', 'rpj']
    """
    series = pd.Series(values)
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return series.astype(str).to_numpy(dtype=object)
    return np.array([_number_label(float(v)) for v in series], dtype=object)


def _number_label(v: float) -> str:
    if np.isfinite(v) and v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _as_number(label: str) -> float | None:
    try:
        value = float(label)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def group_order(labels) -> list[str]:
    """Distinct labels in the order a fit keeps them: by value where all are numbers, else sorted.

    >>> group_order(["1200000000", "85000000", "302000000"])
    ['85000000', '302000000', '1200000000']
    >>> group_order(["rpj", "c4"])
    ['c4', 'rpj']
    """
    distinct = sorted({str(v) for v in labels})
    numbers = [_as_number(v) for v in distinct]
    if distinct and all(n is not None for n in numbers):
        return [v for _, v in sorted(zip(numbers, distinct, strict=True))]
    return distinct


def match_group(group, labels) -> str | None:
    """The label of ``labels`` that a user's ``group`` names, or None.

    The same string first; else, where both read as numbers, the same number, so ``8.5e7``,
    ``85000000`` and ``85000000.0`` name one group.

    >>> match_group("8.5e7", ["85000000", "151000000"])
    '85000000'
    >>> match_group(85000000.0, ["85000000.0"])
    '85000000.0'
    >>> match_group("c4", ["rpj"]) is None
    True
    """
    labels = [str(v) for v in labels]
    text = _number_label(float(group)) if isinstance(group, (int, float)) else str(group)
    if text in labels:
        return text
    value = _as_number(text)
    if value is None:
        return None
    same = [v for v in labels if _as_number(v) == value]
    return same[0] if len(same) == 1 else None
