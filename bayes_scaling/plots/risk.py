"""Risk along the iso-compute line: what :func:`bayes_scaling.decide.allocate` chose and why."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bayes_scaling.plots.style import AXIS_LABELS, PALETTE, log_ticks_125, new_axes

__all__ = ["risk_curve"]


def risk_curve(
    allocation, *, labels: Sequence[str] | None = None, show_interval: bool = True, ax=None
):
    """Risk along the iso-compute line, with the chosen model size and the optimum's interval.

    Parameters
    ----------
    allocation : Allocation, xarray.DataArray or a sequence of them
        Results of :func:`bayes_scaling.decide.allocate` (or their ``risk_curve``) at the same
        compute; several are drawn on one axis (measures that are maximised, such as
        ``prob_below``, on a second axis).
    labels : sequence of str, optional
        Legend labels; default the risk measures' names.
    show_interval : bool, default True
        Shade the credible interval of the optimal ``N*(C)`` (from the first allocation).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    items = list(allocation) if isinstance(allocation, (list, tuple)) else [allocation]
    if not items:
        raise ValueError("risk_curve needs at least one allocation")
    fig, ax = new_axes(ax, figsize=(6.8, 4.2))
    first_maximises = bool(getattr(items[0], "risk_curve", items[0]).attrs.get("maximise", 0))
    twin = None
    compute = None
    for i, item in enumerate(items):
        curve = getattr(item, "risk_curve", item)
        target = ax
        if bool(curve.attrs.get("maximise", 0)) and i > 0 and not first_maximises:
            twin = twin or ax.twinx()  # a maximised measure (a probability) on its own axis
            target = twin
            target.set_ylabel("probability")
        _draw_curve(target, curve, item, PALETTE[i % len(PALETTE)], labels, i)
        compute = compute or curve.attrs.get("compute")
    first = items[0]
    if show_interval and hasattr(first, "n_opt_interval"):
        lo, hi = first.n_opt_interval
        label = f"{first.interval_prob:.0%} interval of the optimal N*"
        ax.axvspan(lo, hi, color="grey", alpha=0.15, label=label)
    ax.set_xscale("log")
    log_ticks_125(ax.xaxis)
    ax.set_xlabel(AXIS_LABELS["N"])
    ax.set_ylabel("risk (loss, nats/token)" if not twin else "risk")
    if compute:
        _tokens_axis(ax, float(getattr(first, "flops_per_token", 6.0)), float(compute))
    handles, names = ax.get_legend_handles_labels()
    if twin is not None:
        h2, n2 = twin.get_legend_handles_labels()
        handles, names = handles + h2, names + n2
    ax.legend(handles, names, fontsize="x-small", loc="best")
    return fig


def _draw_curve(ax, curve, item, colour, labels: Sequence[str] | None, i: int) -> None:
    """One risk curve and a star at the chosen ``N``."""
    n = np.asarray(curve["N"].values, dtype=float)
    y = np.asarray(curve.values, dtype=float)
    name = labels[i] if labels is not None else str(curve.attrs.get("risk", f"risk {i + 1}"))
    ax.plot(n, y, color=colour, linewidth=1.8, label=name)
    chosen = curve.attrs.get("chosen_N", getattr(item, "N", None))
    if chosen is not None:
        j = int(np.argmin(np.abs(np.log(n) - math.log(float(chosen)))))
        ax.plot(
            [n[j]],
            [y[j]],
            marker="*",
            markersize=12,
            color=colour,
            markeredgecolor="black",
            linestyle="none",
            label=f"{name}: choose N = {float(chosen):.3g}",
        )


def _tokens_axis(ax, k: float, c: float) -> None:
    """Tokens per parameter ``D/N = C / (k N^2)`` on the top axis, and the title."""

    def forward(v):
        return c / (k * np.square(np.maximum(v, 1e-30)))

    def inverse(r):
        return np.sqrt(c / (k * np.maximum(r, 1e-30)))

    sec = ax.secondary_xaxis("top", functions=(forward, inverse))
    sec.set_xlabel("tokens per parameter D/N", fontsize="small")
    ax.set_title(f"Risk along the iso-compute line C = {c:.3g} FLOP", fontsize="medium")
