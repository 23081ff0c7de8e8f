"""Compute-optimal scaling: the frontier N*(C), D*(C) and the exponent a in N* ~ C^a."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bayes_scaling.plots.frame import (
    group_labels,
    runs_over_n_and_d,
)
from bayes_scaling.plots.numeric import (
    compute_optimal_exponent,
    interval,
    optimal_path,
    posterior_sample,
)
from bayes_scaling.plots.style import (
    AXIS_LABELS,
    EXPONENT_REFERENCES,
    PALETTE,
    new_axes,
    suffix,
)

__all__ = ["exponent", "frontier"]


def frontier(
    fit,
    data=None,
    *,
    group: str | None = None,
    compute_range: tuple[float, float] | None = None,
    flops_per_token: float = 6.0,
    prob: float = 0.9,
    inner: float = 0.5,
    ax=None,
):
    """Compute-optimal frontiers ``N*(C)`` and ``D*(C)`` with credible bands.

    Each posterior draw has its own optimum on every iso-compute line (closed form for the
    Chinchilla law; the figure uses a refined grid search so it works for every law over ``N``
    and ``D``); the bands are quantiles over draws. The runs are shown at their ``(C, N)`` and
    ``(C, D)``.

    Parameters
    ----------
    fit : arviz.InferenceData
    data : DataFrame, str or Path, optional
    group : str, optional
    compute_range : (float, float), optional
        Default: the smallest run to 1000x the largest.
    flops_per_token : float, default 6.0
    prob, inner : float
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    spec, group, frame = runs_over_n_and_d(
        fit, data, group, flops_per_token, "a compute-optimal frontier"
    )
    draws = posterior_sample(fit, group, max_draws=600)
    if compute_range is None:
        compute_range = (float(frame["C"].min()), float(frame["C"].max()) * 1000)
    c = np.geomspace(compute_range[0], compute_range[1], 40)
    per_draw, _, _ = optimal_path(spec, draws, c, flops_per_token)
    n_opt = np.exp(per_draw)
    d_opt = c[None, :] / (flops_per_token * n_opt)
    fig, ax = new_axes(ax, figsize=(6.4, 4.4))
    for values, colour, name in ((n_opt, PALETTE[0], "N*"), (d_opt, PALETTE[2], "D*")):
        lo, hi = interval(values, prob)
        ax.fill_between(c, lo, hi, color=colour, alpha=0.18, linewidth=0)
        lo_i, hi_i = interval(values, inner)
        ax.fill_between(c, lo_i, hi_i, color=colour, alpha=0.35, linewidth=0)
        ax.plot(
            c,
            np.median(values, axis=0),
            color=colour,
            linewidth=1.8,
            label=f"{name}(C), median, {inner:.0%} and {prob:.0%} bands",
        )
    ax.scatter(frame["C"], frame["N"], s=7, color=PALETTE[0], alpha=0.4, label="runs: N")
    ax.scatter(
        frame["C"], frame["D"], s=7, color=PALETTE[2], alpha=0.4, marker="s", label="runs: D"
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(AXIS_LABELS["C"])
    ax.set_ylabel("parameters / tokens")
    extra = ""
    if spec.optimal_exponent is not None:  # the law has a closed-form exponent
        extra = f", median a = {float(np.median(compute_optimal_exponent(fit, group))):.3f}"
    title = f"{spec.name}: compute-optimal N*(C), D*(C){extra}{suffix(group)}"
    ax.set_title(title, fontsize="medium")
    ax.legend(loc="upper left", fontsize="x-small")
    return fig


def exponent(
    fit, *, groups: Sequence[str] | None = None, references: bool = True, bins: int = 50, ax=None
):
    """Posterior of the compute-optimal exponent ``a`` (``N*(C) ~ C^a``), per group.

    Parameters
    ----------
    fit : arviz.InferenceData
        A fit of chinchilla, data_constrained or kaplan.
    groups : sequence of str, optional
        Default: all groups of a hierarchical fit.
    references : bool, default True
        Mark published values (Hoffmann et al. 2022; Besiroglu et al. 2024).
    bins : int, default 50
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    ``a = beta / (alpha + beta)`` for the Chinchilla law; see :func:`compute_optimal_exponent`.
    """
    labels = group_labels(fit)
    todo = (list(groups) if groups is not None else labels[:10]) if labels else [None]
    values = [(g, compute_optimal_exponent(fit, g)) for g in todo]
    fig, ax = new_axes(ax, figsize=(6.0, 3.6))
    everything = np.concatenate([v for _, v in values])
    lo, hi = np.quantile(everything, [0.002, 0.998])
    if references:
        lo, hi = min(lo, 0.44), max(hi, 0.53)
    edges = np.linspace(lo, hi, bins + 1)
    for i, (g, v) in enumerate(values):
        q = np.quantile(v, [0.05, 0.5, 0.95])
        label = f"{g + ': ' if g else ''}median {q[1]:.3f}, 90% {q[0]:.3f}–{q[2]:.3f}"
        ax.hist(
            v,
            bins=edges,
            color=PALETTE[i % len(PALETTE)],
            alpha=0.6 if len(values) > 1 else 0.8,
            label=label,
        )
    if references:
        for (name, value), style in zip(EXPONENT_REFERENCES, ("--", ":"), strict=True):
            ax.axvline(
                value, color="black", linestyle=style, linewidth=1, label=f"{name}: {value:.3f}"
            )
    ax.axvline(0.5, color="grey", linewidth=0.6)
    ax.set_yticks([])
    ax.set_xlabel("compute-optimal exponent a  (N* ∝ C^a, D* ∝ C^(1-a))")
    ax.set_title("How parameters should grow with compute", fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper left")
    return fig
