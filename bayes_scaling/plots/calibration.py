"""A calibration suite drawn: the reliability diagram and the PIT histogram."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bayes_scaling.plots.style import DATA_COLOUR, LAW_COLOUR, RUN_COLOUR, new_axes

__all__ = ["calibration_chart", "pit_histogram", "reliability_diagram"]


def reliability_diagram(report: Mapping[str, Any], *, ax=None):
    """Nominal against observed coverage of the central new-run intervals.

    Parameters
    ----------
    report : mapping
        A calibration report (:func:`bayes_scaling.backtest.calibrate`, or its JSON loaded).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        The pooled curve (from the PIT values) with each cut's coverage at 50/80/90/95% as
        small markers; points below the diagonal are intervals too narrow.
    """
    fig, ax = new_axes(ax, figsize=(4.6, 4.2))
    rel = report["reliability"]
    ax.plot([0, 1], [0, 1], color=DATA_COLOUR, lw=0.8, ls="--", label="calibrated")
    levels = report.get("levels", [0.5, 0.8, 0.9, 0.95])
    for i, cut in enumerate(report.get("cuts", [])):
        observed = [cut[f"coverage_{round(lv * 100)}"] for lv in levels]
        ax.plot(
            levels,
            observed,
            "o",
            ms=3,
            color=RUN_COLOUR,
            alpha=0.5,
            label="per cut" if i == 0 else None,
        )
    ax.plot(rel["nominal"], rel["observed"], "-o", ms=4, color=LAW_COLOUR, label="pooled")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="nominal coverage of the central interval",
        ylabel="observed coverage",
        title=f"Reliability: {report.get('law', '')} over {len(report.get('cuts', []))} cuts",
    )
    ax.legend(loc="upper left", frameon=False, fontsize="small")
    return fig


def pit_histogram(report: Mapping[str, Any], *, ax=None):
    """Histogram of the pooled PIT values, with the uniform a calibrated forecast gives.

    Parameters
    ----------
    report : mapping
        A calibration report (:func:`bayes_scaling.backtest.calibrate`).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        Mass piled at the ends: intervals too narrow; in the middle: too wide; on one side: a
        biased median.
    """
    fig, ax = new_axes(ax, figsize=(4.6, 4.2))
    hist = report["pooled"]["pit_histogram"]
    edges = np.asarray(hist["edges"], dtype=float)
    counts = np.asarray(hist["counts"], dtype=float)
    total = max(counts.sum(), 1.0)
    density = counts / total / np.diff(edges)
    ax.bar(edges[:-1], density, width=np.diff(edges), align="edge", color=LAW_COLOUR, alpha=0.7)
    ax.axhline(1.0, color=DATA_COLOUR, lw=0.8, ls="--", label="uniform (calibrated)")
    ax.set(
        xlim=(0, 1),
        xlabel="PIT (predictive CDF at the observed run)",
        ylabel="density",
        title=f"PIT of {int(total)} held-out predictions",
    )
    ax.legend(loc="upper center", frameon=False, fontsize="small")
    return fig


def calibration_chart(report: Mapping[str, Any]):
    """Both figures side by side: the reliability diagram and the PIT histogram."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.2, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    reliability_diagram(report, ax=left)
    pit_histogram(report, ax=right)
    return fig
