"""The data with the fitted law: curves along the runs' design (per model size, per
tokens-per-parameter ratio or iso-FLOP), one-covariate curves, observed vs predicted."""

from __future__ import annotations

import numpy as np

from bayes_scaling.plots.design import Design, curve_points, run_design
from bayes_scaling.plots.frame import (
    check_group,
    fit_frame,
    group_labels,
    group_rows,
    law_of,
    runs_over_n_and_d,
)
from bayes_scaling.plots.numeric import interval, log_law, new_run, posterior_sample
from bayes_scaling.plots.style import (
    AXIS_LABELS,
    DATA_COLOUR,
    LAW_COLOUR,
    PALETTE,
    RUN_COLOUR,
    new_axes,
    suffix,
    target_label,
)

__all__ = ["design_curves", "fit_curves", "iso_flop", "predictive_check"]


def fit_curves(
    fit,
    data=None,
    *,
    group: str | None = None,
    prob: float = 0.9,
    design: str = "auto",
    ax=None,
):
    """The data with the fitted law: the figure that fits the law's shape.

    For laws over exactly ``N`` and ``D``, curves along the runs' own design
    (:func:`design_curves`: per model size, per tokens-per-parameter ratio, or per compute
    budget, read from the data); the curve against the covariate for one-covariate laws; and
    observed against predicted (:func:`predictive_check`) otherwise.

    Parameters
    ----------
    fit : arviz.InferenceData
    data : DataFrame, str or Path, optional
        Default: the data stored in the fit.
    group : str, optional
        Group of a hierarchical fit (required for those).
    prob : float, default 0.9
        Mass of the bands.
    design : {"auto", "model_size", "ratio", "iso_flop"}, default "auto"
        The curves of a law over ``N`` and ``D`` (see :func:`design_curves`).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    spec = law_of(fit)
    if set(spec.covariates) == {"N", "D"}:
        return design_curves(fit, data, group=group, prob=prob, design=design, ax=ax)
    if len(spec.covariates) == 1:
        return _one_covariate(fit, data, group=group, prob=prob, ax=ax)
    return predictive_check(fit, data, group=group, prob=prob, ax=ax)


def iso_flop(
    fit,
    data=None,
    *,
    group: str | None = None,
    num_curves: int = 5,
    flops_per_token: float = 6.0,
    prob: float = 0.9,
    ax=None,
):
    """Iso-FLOP curves: loss against model size at the data's compute budgets, with the runs.

    :func:`design_curves` with ``design="iso_flop"``: readable when runs share budgets (IsoFLOP
    profiles); for other designs :func:`fit_curves` picks curves that pass through the runs.
    """
    return design_curves(
        fit,
        data,
        group=group,
        num_curves=num_curves,
        flops_per_token=flops_per_token,
        prob=prob,
        design="iso_flop",
        ax=ax,
    )


def design_curves(
    fit,
    data=None,
    *,
    group: str | None = None,
    design: str = "auto",
    num_curves: int = 6,
    flops_per_token: float = 6.0,
    prob: float = 0.9,
    ax=None,
):
    """The runs with the law drawn along their own design, one curve per shared level.

    Runs that share model sizes get one curve per size against tokens ``D``; runs that share
    tokens-per-parameter ratios one curve per ratio against ``N``; runs that share compute
    budgets one iso-FLOP curve per budget against ``N`` (:func:`bayes_scaling.plots.design.
    run_design` picks the design whose levels hold the most runs). Each curve spans its runs
    (1.2x beyond them each side); the band is the ``prob`` interval of the law mean; runs and
    curves share one colour scale, and the axes hold every curve and every run.

    Parameters
    ----------
    fit : arviz.InferenceData
        A fit of a law over ``N`` and ``D``.
    data : DataFrame, str or Path, optional
    group : str, optional
    design : {"auto", "model_size", "ratio", "iso_flop"}, default "auto"
    num_curves : int, default 6
    flops_per_token : float, default 6.0
    prob : float, default 0.9
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    spec, group, frame = runs_over_n_and_d(
        fit, data, group, flops_per_token, "a figure of curves along the runs' design"
    )
    found = run_design(frame, num_curves=num_curves, flops_per_token=flops_per_token, kind=design)
    fig, ax = new_axes(ax)
    medians = _draw_curves(ax, fit, spec, frame, found, group, prob, flops_per_token)
    _finish_axes(fig, ax, spec, frame, found, medians)
    ax.set_title(f"{spec.name}: runs and {_TITLES[found.kind]} ({prob:.0%} band){suffix(group)}")
    return fig


_TITLES = {
    "model_size": "curves per model size",
    "ratio": "curves per ratio D/N",
    "iso_flop": "iso-FLOP curves",
}


def _design_colours(found: Design, frame):
    from matplotlib import cm, colors

    values = _run_levels(found, frame)
    lo, hi = min(values.min(), found.levels.min()), max(values.max(), found.levels.max())
    return cm.viridis, colors.LogNorm(vmin=lo, vmax=max(hi, lo * 1.0001)), values


def _run_levels(found: Design, frame) -> np.ndarray:
    n, d = frame["N"].to_numpy(dtype=float), frame["D"].to_numpy(dtype=float)
    if found.kind == "model_size":
        return n
    return d / n if found.kind == "ratio" else frame["C"].to_numpy(dtype=float)


def _draw_curves(ax, fit, spec, frame, found, group, prob, flops_per_token) -> list[np.ndarray]:
    """The curves and their bands; returns the curves' medians (for the axis limits)."""
    draws = posterior_sample(fit, group)
    cmap, norm, _ = _design_colours(found, frame)
    medians = []
    for i, level in enumerate(found.levels):
        x, cov = curve_points(found, frame, i, flops_per_token)
        if "U" in spec.covariates:
            cov["U"] = cov["D"]
        law = np.exp(log_law(spec, draws, cov))
        lo_q, hi_q = interval(law, prob)
        colour = cmap(norm(level))
        ax.fill_between(x, lo_q, hi_q, color=colour, alpha=0.18, linewidth=0)
        medians.append(np.median(law, axis=0))
        ax.plot(x, medians[-1], color=colour, linewidth=1.6)
    return medians


def _finish_axes(fig, ax, spec, frame, found, medians) -> None:
    """Runs on the curves' colour scale; limits holding every run and every curve's median."""
    cmap, norm, values = _design_colours(found, frame)
    x_name = "D" if found.kind == "model_size" else "N"
    sc = ax.scatter(
        frame[x_name],
        frame[spec.target],
        c=values,
        cmap=cmap,
        norm=norm,
        s=14,
        edgecolors="black",
        linewidths=0.3,
        zorder=3,
    )
    fig.colorbar(sc, ax=ax, label=found.label)
    ax.set_xscale("log")
    ax.set_xlabel(AXIS_LABELS[x_name])
    ax.set_ylabel(target_label(spec))
    y = np.concatenate([frame[spec.target].to_numpy(dtype=float), *medians])
    y = y[np.isfinite(y)]
    lo_y, hi_y = y.min(), y.max()
    pad = 0.08 * (hi_y - lo_y)
    ax.set_ylim(lo_y - pad, hi_y + pad)


def _one_covariate(fit, data=None, *, group=None, prob=0.9, ax=None):
    spec = law_of(fit)
    group = check_group(fit, group)
    (name,) = spec.covariates
    frame = group_rows(fit_frame(fit, data), group)
    draws = posterior_sample(fit, group)
    x = np.geomspace(frame[name].min() / 1.5, frame[name].max() * 1.5, 80)
    log_mu = log_law(spec, draws, {name: x})
    fig, ax = new_axes(ax)
    _bands(ax, x, log_mu, draws, prob=prob)
    ax.scatter(frame[name], frame[spec.target], s=14, color=DATA_COLOUR, zorder=3, label="runs")
    ax.set_xscale("log")
    if spec.target != "loss":
        ax.set_yscale("log")
    ax.set_xlabel(AXIS_LABELS.get(name, name))
    ax.set_ylabel(target_label(spec))
    ax.legend(loc="best", fontsize="small")
    ax.set_title(f"{spec.name}: runs and fitted curve{suffix(group)}")
    return fig


def _bands(ax, x, log_mu, draws, *, prob=0.9, inner=0.5, seed=0, label_prefix=""):
    """Law-mean bands (``inner`` and ``prob``), its median, and the new-run ``prob`` band."""
    law = np.exp(log_mu)
    run = np.exp(new_run(log_mu, draws, seed=seed))
    lo, hi = interval(law, prob)
    ax.fill_between(
        x,
        lo,
        hi,
        color=LAW_COLOUR,
        alpha=0.18,
        linewidth=0,
        label=f"{label_prefix}law mean, {prob:.0%}",
    )
    if inner:
        lo_i, hi_i = interval(law, inner)
        ax.fill_between(
            x,
            lo_i,
            hi_i,
            color=LAW_COLOUR,
            alpha=0.35,
            linewidth=0,
            label=f"{label_prefix}law mean, {inner:.0%}",
        )
    ax.plot(
        x, np.median(law, axis=0), color=LAW_COLOUR, linewidth=1.8, label=f"{label_prefix}median"
    )
    rlo, rhi = interval(run, prob)
    ax.plot(
        x,
        rlo,
        color=RUN_COLOUR,
        linestyle="--",
        linewidth=1.2,
        label=f"{label_prefix}new run, {prob:.0%}",
    )
    ax.plot(x, rhi, color=RUN_COLOUR, linestyle="--", linewidth=1.2)
    return law, run


def predictive_check(
    fit, data=None, *, group: str | None = None, prob: float = 0.9, seed: int = 0, ax=None
):
    """Observed against predicted (new-run median and ``prob`` interval) for every run.

    The title gives the share of runs inside their interval; for a calibrated fit it is close
    to ``prob``.

    Parameters
    ----------
    fit : arviz.InferenceData
    data : DataFrame, str or Path, optional
    group : str, optional
        One group; default all runs (each with its own group's draws).
    prob : float, default 0.9
    seed : int, default 0
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    spec = law_of(fit)
    frame = fit_frame(fit, data)
    labels = group_labels(fit)
    if labels and group is not None:
        check_group(fit, group)
    todo = ([group] if group is not None else labels) if labels else [None]
    fig, ax = new_axes(ax, figsize=(5.2, 4.6))
    inside = total = 0
    for i, g in enumerate(todo):
        rows = group_rows(frame, g)
        if rows.empty:
            continue
        draws = posterior_sample(fit, g)
        run = np.exp(
            new_run(
                log_law(spec, draws, {c: rows[c].to_numpy() for c in spec.covariates}), draws, seed
            )
        )
        med = np.median(run, axis=0)
        lo, hi = interval(run, prob)
        y = rows[spec.target].to_numpy(dtype=float)
        inside += int(((y >= lo) & (y <= hi)).sum())
        total += y.size
        colour = PALETTE[i % len(PALETTE)] if labels else LAW_COLOUR
        ax.errorbar(
            med,
            y,
            xerr=[med - lo, hi - med],
            fmt="o",
            markersize=3,
            color=colour,
            ecolor=colour,
            elinewidth=0.6,
            alpha=0.8,
            label=g if labels and len(todo) <= 10 else None,
        )
    lims = ax.get_xlim()
    lo_all, hi_all = min(lims[0], ax.get_ylim()[0]), max(lims[1], ax.get_ylim()[1])
    ax.plot([lo_all, hi_all], [lo_all, hi_all], color="black", linewidth=0.8, linestyle=":")
    if spec.target != "loss":
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"predicted {spec.target} (new run: median, {prob:.0%} interval)")
    ax.set_ylabel(f"observed {spec.target}")
    share = inside / total if total else float("nan")
    ax.set_title(f"{share:.0%} of {total} runs inside their {prob:.0%} interval{suffix(group)}")
    if labels and 1 < len(todo) <= 10:  # more groups are drawn unlabelled
        ax.legend(fontsize="x-small", loc="best")
    return fig
