"""The runs' design, read from the data, and the fitted curves drawn along it.

Scaling-law experiments come in three shapes, and a curve is only readable when it passes through
the runs it summarises:

* ``"model_size"`` -- a few model sizes, each trained for several token counts (an ``N x
  tokens-per-parameter`` grid, or checkpoints along training): one curve per model size,
  loss against tokens ``D``;
* ``"ratio"`` -- a few tokens-per-parameter ratios ``D / N`` shared by many sizes: one curve per
  ratio, loss against ``N`` with ``D = ratio N``;
* ``"iso_flop"`` -- a few compute budgets, each spent on several model sizes (IsoFLOP profiles):
  one curve per budget, loss against ``N`` with ``D = C / (k N)``.

:func:`run_design` picks the one whose levels hold the most runs each (ties in the order above).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

__all__ = ["DESIGNS", "Design", "run_design"]

DESIGNS = ("model_size", "ratio", "iso_flop")
TOLERANCE = 0.02  # decades: runs within 5% of each other share a level
WIDEN = 1.2  # each curve runs this factor beyond its smallest and largest run


@dataclasses.dataclass(frozen=True)
class Design:
    """How the runs were laid out, and where to draw curves.

    Attributes
    ----------
    kind : {"model_size", "ratio", "iso_flop"}
    levels : ndarray
        The level of each curve (a model size, a ratio ``D / N`` or a budget ``C``).
    members : list of ndarray
        For each level, the positions (in the frame) of the runs at it.
    """

    kind: str
    levels: np.ndarray
    members: list[np.ndarray]

    @property
    def label(self) -> str:
        """The legend of the levels' colour scale."""
        return {
            "model_size": "parameters N",
            "ratio": "tokens per parameter D/N",
            "iso_flop": "training compute C (FLOP)",
        }[self.kind]


def _clusters(log_values: np.ndarray) -> list[np.ndarray]:
    """Positions grouped into runs of sorted values no more than TOLERANCE apart."""
    order = np.argsort(log_values, kind="mergesort")
    breaks = np.flatnonzero(np.diff(log_values[order]) > TOLERANCE) + 1
    return np.split(order, breaks)


def _design_values(frame: pd.DataFrame, flops_per_token: float) -> dict[str, np.ndarray]:
    n = frame["N"].to_numpy(dtype=float)
    d = frame["D"].to_numpy(dtype=float)
    c = frame["C"].to_numpy(dtype=float) if "C" in frame else flops_per_token * n * d
    return {"model_size": n, "ratio": d / n, "iso_flop": c}


def run_design(
    frame: pd.DataFrame,
    *,
    num_curves: int = 6,
    flops_per_token: float = 6.0,
    kind: str = "auto",
) -> Design:
    """The design of the runs in ``frame`` (columns ``N`` and ``D``, optionally ``C``).

    Parameters
    ----------
    frame : DataFrame
        The runs.
    num_curves : int, default 6
        At most this many levels are kept, evenly spread over those with two runs or more.
    flops_per_token : float, default 6.0
        ``k`` in ``C = k N D`` when ``frame`` has no ``C``.
    kind : {"auto", "model_size", "ratio", "iso_flop"}, default "auto"
        ``"auto"`` picks the design whose levels hold the most runs each.

    Returns
    -------
    Design

    Examples
    --------
    >>> import pandas as pd
    >>> grid = pd.DataFrame({"N": [1e8, 1e8, 1e9, 1e9], "D": [2e9, 8e9, 2e10, 8e10]})
    >>> run_design(grid).kind
    'model_size'
    """
    if kind != "auto" and kind not in DESIGNS:
        raise ValueError(f"unknown design {kind!r}; expected auto or one of {', '.join(DESIGNS)}")
    values = _design_values(frame, flops_per_token)
    clusters = {k: _clusters(np.log10(v)) for k, v in values.items()}
    if kind == "auto":
        kind = max(DESIGNS, key=lambda k: (len(frame) / len(clusters[k]), -DESIGNS.index(k)))
    shared = [m for m in clusters[kind] if m.size >= 2] or clusters[kind]
    if len(shared) > num_curves:
        pick = np.unique(np.linspace(0, len(shared) - 1, num_curves).round().astype(int))
        shared = [shared[i] for i in pick]
    levels = np.array([float(np.median(values[kind][m])) for m in shared])
    return Design(kind, levels, shared)


def curve_points(design: Design, frame: pd.DataFrame, i: int, flops_per_token: float = 6.0):
    """The x values of curve ``i`` (spanning its runs, 1.2x beyond them each side) and ``N, D``.

    Curves stay near their runs: an iso-FLOP curve far beyond its largest model (few tokens per
    parameter) climbs steeply and would set the axis for the whole figure.
    """
    rows = frame.iloc[design.members[i]]
    level = design.levels[i]
    axis = "D" if design.kind == "model_size" else "N"
    x = np.geomspace(rows[axis].min() / WIDEN, rows[axis].max() * WIDEN, 60)
    if design.kind == "model_size":
        return x, {"N": np.full_like(x, level), "D": x}
    if design.kind == "ratio":
        return x, {"N": x, "D": level * x}
    return x, {"N": x, "D": level / (flops_per_token * x)}
