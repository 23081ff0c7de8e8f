"""Posterior histograms of the law's parameters, with their priors."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bayes_scaling.plots.frame import group_labels, law_of
from bayes_scaling.plots.style import PALETTE, grid

__all__ = ["posteriors"]


def posteriors(
    fit,
    var_names: Sequence[str] | None = None,
    *,
    groups: Sequence[str] | None = None,
    include_prior: bool = True,
    bins: int = 40,
    axes=None,
):
    """Histograms of the posterior of each parameter, with the prior behind them.

    Per-group parameters show one histogram per group; parameters spanning more than a factor
    20 are drawn on a log axis.

    Parameters
    ----------
    fit : arviz.InferenceData
    var_names : sequence of str, optional
        Default: the law's parameters and ``sigma``.
    groups : sequence of str, optional
        Groups to draw for per-group parameters (default all, up to 10).
    include_prior : bool, default True
        Draw the prior (from the fit's ``prior`` group) as a grey outline.
    bins : int, default 40
    axes : sequence of matplotlib Axes, optional
        One per variable.

    Returns
    -------
    matplotlib.figure.Figure
    """
    spec = law_of(fit)
    post = fit.posterior
    names = (
        list(var_names)
        if var_names is not None
        else [n for n in (*spec.param_names, "sigma") if n in post]
    )
    unknown = [n for n in names if n not in post]
    if unknown:
        raise KeyError(f"unknown variables {unknown}; the posterior has {list(post.data_vars)}")
    labels = group_labels(fit)
    chosen = list(groups) if groups is not None else labels[:10]
    if axes is None:
        fig, axes = grid(len(names))
    else:
        axes = list(np.ravel(axes))
        if len(axes) < len(names):
            raise ValueError(f"{len(names)} variables need {len(names)} axes; got {len(axes)}")
        fig = axes[0].figure
    prior = fit.prior if include_prior and "prior" in fit.groups() else None
    for ax, name in zip(axes, names, strict=False):
        _histogram(ax, post[name], name, chosen, prior, bins)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    handles, legend_labels = axes[0].get_legend_handles_labels()
    if len(handles) > 1:
        fig.legend(
            handles,
            legend_labels,
            loc="outside lower center",
            ncols=min(6, len(handles)),
            fontsize="x-small",
        )
    return fig


def _histogram(ax, v, name: str, chosen: Sequence[str], prior, bins: int) -> None:
    """One parameter's posterior (per group when it has one) over its prior, on ``ax``.

    Parameters spanning more than a factor 20 get a log axis; the prior histogram is scaled to
    the posterior's number of draws per series.
    """
    series: list[tuple[str | None, np.ndarray]]
    if "group" in v.dims:
        series = [(g, v.sel(group=g).values.ravel()) for g in chosen]
    else:
        series = [(None, v.values.ravel())]
    everything = np.concatenate([s for _, s in series])
    lo, hi = np.quantile(everything, [0.002, 0.998])
    log_axis = lo > 0 and hi / lo > 20
    edges = np.geomspace(lo, hi, bins + 1) if log_axis else np.linspace(lo, hi, bins + 1)
    if prior is not None and name in prior:
        p = prior[name].values.ravel()
        p = p[(p >= lo) & (p <= hi)]
        if p.size:
            weights = np.full(p.size, 1.0 / prior[name].values.size)
            ax.hist(
                p,
                bins=edges,
                weights=weights * len(everything) / len(series),
                histtype="step",
                color="grey",
                linewidth=1.0,
                label="prior",
            )
    for i, (g, s) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        ax.hist(s, bins=edges, color=colour, alpha=0.55 if len(series) > 1 else 0.8, label=g)
    if log_axis:
        ax.set_xscale("log")
    ax.set_yticks([])
    med = np.median(everything) if len(series) == 1 else None
    ax.set_title(name if med is None else f"{name}: median {med:.4g}", fontsize="small")
