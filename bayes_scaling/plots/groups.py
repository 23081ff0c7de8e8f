"""Groups of a hierarchical fit: paired differences and curves side by side."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bayes_scaling.plots.frame import check_group, fit_frame, group_labels, law_of
from bayes_scaling.plots.numeric import fan_path, interval, log_law, posterior_sample
from bayes_scaling.plots.style import AXIS_LABELS, PALETTE, new_axes

__all__ = ["group_contrast", "group_curves"]


def group_contrast(
    fit,
    groups: Sequence[str] | None = None,
    *,
    compute: float | None = None,
    tokens_per_param: float | None = None,
    flops_per_token: float = 6.0,
    prob: float = 0.9,
    ax=None,
):
    """Difference between two groups' predictions along compute, and P(first is lower).

    For laws over ``N`` and ``D`` both groups are compared at the same ``(N, D)`` path (the
    expected-loss-optimal split of the first group, or ``tokens_per_param``); for one-covariate
    laws along the covariate. Draw ``s`` of one group is paired with draw ``s`` of the other
    (the same joint posterior sample), so shared uncertainty cancels.

    Parameters
    ----------
    fit : arviz.InferenceData
        A hierarchical fit.
    groups : (str, str), optional
        Default: the first two groups.
    compute : float, optional
        Right end of the x axis (default 100x the largest run).
    tokens_per_param : float, optional
    flops_per_token : float, default 6.0
    prob : float, default 0.9
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    labels = group_labels(fit)
    if len(labels) < 2:
        raise ValueError("group_contrast needs a hierarchical fit with at least two groups")
    a, b = (labels[0], labels[1]) if groups is None else tuple(groups)
    for g in (a, b):
        check_group(fit, g)
    spec = law_of(fit)
    frame = fit_frame(fit, flops_per_token=flops_per_token)
    both = frame[frame["group"].isin([a, b])] if "group" in frame.columns else frame
    da, db = posterior_sample(fit, a), posterior_sample(fit, b)
    x_name, x, cov, note = fan_path(spec, da, both, compute, tokens_per_param, flops_per_token, 50)
    la, lb = np.exp(log_law(spec, da, cov)), np.exp(log_law(spec, db, cov))
    diff = la - lb
    fig, ax = new_axes(ax, figsize=(6.8, 4.0))
    lo, hi = interval(diff, prob)
    ax.fill_between(
        x, lo, hi, color=PALETTE[4], alpha=0.25, linewidth=0, label=f"{prob:.0%} interval"
    )
    ax.plot(x, np.median(diff, axis=0), color=PALETTE[4], linewidth=1.8, label="median difference")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(AXIS_LABELS.get(x_name, x_name))
    ax.set_ylabel(f"{spec.target}[{a}] − {spec.target}[{b}]")
    twin = ax.twinx()
    twin.plot(
        x,
        (diff < 0).mean(axis=0),
        color="black",
        linestyle="--",
        linewidth=1.2,
        label=f"P({a} lower)",
    )
    twin.set_ylim(-0.02, 1.02)
    twin.set_ylabel(f"P({spec.target}[{a}] < {spec.target}[{b}])")
    h1, n1 = ax.get_legend_handles_labels()
    h2, n2 = twin.get_legend_handles_labels()
    ax.legend(h1 + h2, n1 + n2, fontsize="x-small", loc="best")
    ax.set_title(f"{a} vs {b}{note}", fontsize="medium")
    return fig


def group_curves(
    fit,
    groups: Sequence[str] | None = None,
    *,
    prob: float = 0.9,
    x_range: tuple[float, float] | None = None,
    flops_per_token: float = 6.0,
    ax=None,
):
    """Each group's curve with its band and its runs, on one axis.

    For laws over ``N`` and ``D`` (or ``C``) the curve is each draw's compute-optimal loss
    against compute; for other one-covariate laws the target against the covariate. The numbers
    come from :func:`bayes_scaling.compare.contrast_plot_data`.

    Parameters
    ----------
    fit : arviz.InferenceData
        A hierarchical fit.
    groups : sequence of str, optional
        Default: all groups (up to 10 are drawn).
    prob : float, default 0.9
    x_range : (float, float), optional
        Default: the data's range, extended 10x at the top.
    flops_per_token : float, default 6.0
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from bayes_scaling import compare

    labels = group_labels(fit)
    if len(labels) < 2:
        raise ValueError("group_curves needs a hierarchical fit with at least two groups")
    chosen = list(groups) if groups is not None else labels[:10]
    numbers = compare.contrast_plot_data(
        fit, chosen, prob=prob, x_range=x_range, flops_per_token=flops_per_token
    )
    curves, points = numbers["curves"], numbers["points"]
    fig, ax = new_axes(ax, figsize=(6.8, 4.4))
    for i, g in enumerate(chosen):
        colour = PALETTE[i % len(PALETTE)]
        c = curves[curves["group"] == g]
        ax.fill_between(c["x"], c["lower"], c["upper"], color=colour, alpha=0.2, linewidth=0)
        ax.plot(c["x"], c["median"], color=colour, linewidth=1.6, label=g)
        pts = points[points["group"] == g]
        ax.scatter(pts["x"], pts["y"], s=8, color=colour, alpha=0.5)
    x_name = numbers["x_name"]
    ax.set_xscale("log")
    if law_of(fit).target != "loss":
        ax.set_yscale("log")
    ax.set_xlabel(AXIS_LABELS.get(x_name, x_name))
    ax.set_ylabel(str(numbers["y_name"]))
    ax.set_title(f"Groups side by side ({prob:.0%} bands)", fontsize="medium")
    ax.legend(fontsize="x-small", loc="best")
    return fig
