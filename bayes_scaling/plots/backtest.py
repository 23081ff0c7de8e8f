"""A backtest drawn: held-out runs against the predictions made without them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling.plots.style import AXIS_LABELS, LAW_COLOUR, RUN_COLOUR, log_ticks_125, new_axes

__all__ = ["backtest_chart", "backtest_points"]


def backtest_points(backtest: Mapping[str, Any]) -> pd.DataFrame | None:
    """Held-out points with observed and predicted values, wherever a backtest dict keeps them.

    Parameters
    ----------
    backtest : mapping
        A backtest report (:func:`bayes_scaling.backtest.backtest`, or its JSON loaded).

    Returns
    -------
    pandas.DataFrame or None
        One row per held-out run (from ``points``, ``test_points``, ``held_out``,
        ``predictions`` or ``rows``), or None when the report keeps no such list.
    """
    for key in ("points", "test_points", "held_out", "predictions", "rows"):
        rows = backtest.get(key)
        if isinstance(rows, list) and rows and isinstance(rows[0], Mapping):
            frame = pd.DataFrame(rows)
            if any(c in frame.columns for c in ("observed", "loss", "y")):
                return frame
    return None


def _first_column(frame: pd.DataFrame, names: Sequence[str]) -> str | None:
    return next((n for n in names if n in frame.columns), None)


def backtest_chart(backtest: Mapping[str, Any], *, flops_per_token: float = 6.0, ax=None):
    """Held-out runs of a backtest against the predictions made without them.

    Parameters
    ----------
    backtest : mapping
        A backtest report (:func:`bayes_scaling.backtest.backtest`, or its JSON loaded), with
        a ``points`` list: per held-out run its covariates, ``observed``, the new-run
        ``median`` and quantiles ``q05``, ``q25``, ``q75``, ``q95``, and optionally the
        point-fit ``baseline``. Other spellings (``predicted``, ``lower``/``upper``) are read too.
    flops_per_token : float, default 6.0
        ``k`` for the x axis ``C = k N D`` when the points have ``N`` and ``D`` but no ``C``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        When the report holds no per-point predictions.
    """
    frame = backtest_points(backtest)
    if frame is None:
        raise ValueError(
            "the backtest report has no per-point predictions (a 'points' list) to draw"
        )
    obs = _first_column(frame, ("observed", "loss", "y", "steps"))
    pred = _first_column(frame, ("median", "predicted", "pred_median", "mean", "prediction"))
    if pred is None or obs is None:
        raise ValueError(
            f"backtest points need observed and predicted values; columns: {list(frame.columns)}"
        )
    if "C" not in frame.columns and {"N", "D"} <= set(frame.columns):
        frame = frame.assign(C=flops_per_token * frame["N"] * frame["D"])
    x_name = _first_column(frame, ("C", "compute", "B", "N", "D", "loss_x", "distance"))
    fig, ax = new_axes(ax, figsize=(6.8, 4.2))
    x = frame[x_name].to_numpy(dtype=float) if x_name else np.arange(len(frame), dtype=float)
    _draw_points(ax, frame, x, pred, obs)
    if x_name and x_name != "distance":
        ax.set_xscale("log")
        if x.max() / x.min() < 1e3:
            log_ticks_125(ax.xaxis)
    ax.set_xlabel(AXIS_LABELS.get(x_name, x_name) if x_name else "held-out run")
    target = backtest.get("target")
    ax.set_ylabel("loss (nats/token)" if target == "loss" else str(target or obs))
    coverage = backtest.get("coverage_90")
    share = ""
    if isinstance(coverage, (int, float)):
        share = f": {coverage:.0%} inside their 90% interval"
    ax.set_title(f"Backtest, {len(frame)} held-out runs{share}", fontsize="medium")
    ax.legend(fontsize="x-small")
    return fig


def _draw_points(ax, frame: pd.DataFrame, x: np.ndarray, pred: str, obs: str) -> None:
    """Intervals (90% thin, 50% thick), medians, the point-fit baseline and the observed runs."""
    spellings = (
        (("q05", "lower", "low"), ("q95", "upper", "high"), 0.8),
        (("q25",), ("q75",), 3.0),
    )
    for lo_name, hi_name, width in spellings:
        lo, hi = _first_column(frame, lo_name), _first_column(frame, hi_name)
        if lo and hi:
            ax.vlines(
                x,
                frame[lo].to_numpy(float),
                frame[hi].to_numpy(float),
                color=LAW_COLOUR,
                linewidth=width,
                alpha=0.6,
            )
    y_pred = frame[pred].to_numpy(dtype=float)
    label = "prediction: median, 50% and 90%"
    ax.plot(x, y_pred, "o", markersize=3.5, color=LAW_COLOUR, label=label)
    if "baseline" in frame.columns and pd.api.types.is_numeric_dtype(frame["baseline"]):
        baseline = frame["baseline"].to_numpy(float)
        ax.plot(x, baseline, "D", markersize=3.5, color="grey", label="point-fit baseline")
    observed = frame[obs].to_numpy(dtype=float)
    ax.plot(x, observed, "x", color=RUN_COLOUR, markersize=6, markeredgewidth=1.5, label="observed")
