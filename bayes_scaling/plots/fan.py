"""Extrapolation fan: the predicted target from the data out to a compute budget."""

from __future__ import annotations

from typing import Any

import numpy as np

from bayes_scaling.plots.frame import check_group, fit_frame, group_rows, law_of
from bayes_scaling.plots.numeric import fan_path, interval, posterior_sample, predictive
from bayes_scaling.plots.style import (
    AXIS_LABELS,
    DATA_COLOUR,
    LAW_COLOUR,
    RUN_COLOUR,
    STRUCTURAL_COLOUR,
    new_axes,
    suffix,
    target_label,
)

__all__ = ["fan_chart"]


def fan_chart(
    fit,
    data=None,
    *,
    group: str | None = None,
    compute: float | None = None,
    tokens_per_param: float | None = None,
    flops_per_token: float = 6.0,
    prob: float = 0.9,
    inner: float = 0.5,
    num_points: int = 60,
    discrepancy: Any = "recorded",
    seed: int = 0,
    ax=None,
):
    """Extrapolation fan: the predicted target from the data out to ``compute``.

    For laws over ``N`` and ``D`` the x axis is training compute and each compute is split
    between ``N`` and ``D`` by the allocation minimising the posterior-mean loss (or at a fixed
    ``tokens_per_param``); for one-covariate laws the x axis is the covariate. Bands: the law
    mean (parameter uncertainty, ``inner`` and ``prob`` intervals), with the extrapolation
    discrepancy when one is used (solid purple lines: the law's own error away from the data,
    see :mod:`bayes_scaling.predict`), and a new run (adding the residual noise, dashed).

    Parameters
    ----------
    fit : arviz.InferenceData
    data : DataFrame, str or Path, optional
        Runs to show (default the fit's own).
    group : str, optional
        Group of a hierarchical fit (``"new"`` for an unseen group).
    compute : float, optional
        Right end of the x axis: compute in FLOPs for laws over ``N`` and ``D``, else the
        largest value of the covariate. Default 100x the largest run.
    tokens_per_param : float, optional
        Fixed ``D/N`` along the path instead of the optimal split.
    flops_per_token : float, default 6.0
    prob, inner : float, default 0.9 and 0.5
        Band masses.
    num_points : int, default 60
    discrepancy : "recorded", "auto", "calibrate", None, float or Discrepancy, default "recorded"
        Extrapolation discrepancy: ``"recorded"`` uses the one stored in the fit (by
        ``bayes-scaling fit``, :func:`bayes_scaling.predict.attach_discrepancy` or an earlier
        ``"calibrate"``) and none otherwise; ``"auto"`` likewise, with a warning when there is
        none; ``"calibrate"`` learns one by leave-future-out (several small refits); None turns
        it off; a number fixes ``tau``.
    seed : int, default 0
        Seed of the new-run noise.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    spec = law_of(fit)
    group = check_group(fit, group)
    frame = group_rows(fit_frame(fit, data, flops_per_token=flops_per_token), group)
    draws = posterior_sample(fit, group, seed=seed)
    x_name, x, cov, path_note = fan_path(
        spec, draws, frame, compute, tokens_per_param, flops_per_token, num_points
    )
    law, structural, run, _disc = predictive(
        fit, cov, group=group, discrepancy=discrepancy, seed=seed
    )
    fig, ax = new_axes(ax, figsize=(7.0, 4.4))
    lo, (rlo, rhi) = _draw_bands(ax, x, law, structural, run, prob, inner)
    if x_name in frame.columns:
        _mark_runs(ax, frame[x_name], frame[spec.target])
    _annotate_end(ax, x, law, structural, run, prob, top=spec.target == "loss")
    ax.set_xscale("log")
    if spec.target != "loss":
        ax.set_yscale("log")
    else:
        top = np.quantile(frame[spec.target], 0.9) if len(frame) else np.max(law)
        bottom = min(float(np.min(rlo)), float(np.min(lo)))
        ax.set_ylim(bottom * 0.98, max(top, float(np.max(rhi[:1]))) * 1.02)
    ax.set_xlabel(AXIS_LABELS.get(x_name, x_name))
    ax.set_ylabel(target_label(spec))
    ax.set_title(f"{spec.name}: extrapolation{path_note}{suffix(group)}", fontsize="medium")
    ax.legend(loc="lower left" if spec.target == "loss" else "upper right", fontsize="x-small")
    return fig


def _draw_bands(ax, x, law, structural, run, prob: float, inner: float):
    """Law-mean bands and median, the discrepancy's lines, the new-run lines.

    Returns the lower end of the law-mean band and the new-run interval (for the y limits).
    """
    lo, hi = interval(law, prob)
    ax.fill_between(
        x, lo, hi, color=LAW_COLOUR, alpha=0.18, linewidth=0, label=f"law mean, {prob:.0%}"
    )
    lo_i, hi_i = interval(law, inner)
    ax.fill_between(
        x, lo_i, hi_i, color=LAW_COLOUR, alpha=0.35, linewidth=0, label=f"law mean, {inner:.0%}"
    )
    ax.plot(x, np.median(law, axis=0), color=LAW_COLOUR, linewidth=1.8, label="median")
    if structural is not None:
        slo, shi = interval(structural, prob)
        ax.plot(
            x, slo, color=STRUCTURAL_COLOUR, linewidth=1.2, label=f"with discrepancy, {prob:.0%}"
        )
        ax.plot(x, shi, color=STRUCTURAL_COLOUR, linewidth=1.2)
    rlo, rhi = interval(run, prob)
    ax.plot(x, rlo, color=RUN_COLOUR, linestyle="--", linewidth=1.2, label=f"new run, {prob:.0%}")
    ax.plot(x, rhi, color=RUN_COLOUR, linestyle="--", linewidth=1.2)
    return lo, (rlo, rhi)


def _mark_runs(ax, x, y) -> None:
    """The runs, and a line at the largest."""
    ax.scatter(x, y, s=9, color=DATA_COLOUR, alpha=0.6, zorder=3, label="runs")
    ax.axvline(x.max(), color="grey", linestyle=":", linewidth=1)
    ax.annotate(
        "largest run",
        (x.max(), 0.98),
        xycoords=("data", "axes fraction"),
        ha="right",
        va="top",
        fontsize="x-small",
        color="grey",
        rotation=90,
    )


def _value(v) -> str:
    """A target value for the figure: three decimals for losses, four digits for counts.

    >>> _value(2.01234), _value(1287.593), _value(4.2e5)
    ('2.012', '1288', '4.2e+05')
    """
    v = float(v)
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.4g}"


def _annotate_end(ax, x, law, structural, run, prob: float, *, top: bool) -> None:
    """The numbers at the end of the fan, in a box at the top (loss) or bottom right."""
    end_law = interval(law[:, -1], prob)
    end_run = interval(run[:, -1], prob)
    extra = ""
    if structural is not None:
        end_s = interval(structural[:, -1], prob)
        extra = f"\nwith discrepancy {_value(end_s[0])}–{_value(end_s[1])}"
    ax.annotate(
        f"at {x[-1]:.2g}: median {_value(np.median(law[:, -1]))}\n"
        f"law mean {_value(end_law[0])}–{_value(end_law[1])}{extra}\n"
        f"new run {_value(end_run[0])}–{_value(end_run[1])}",
        (0.99, 0.97 if top else 0.03),
        xycoords="axes fraction",
        ha="right",
        va="top" if top else "bottom",
        fontsize="x-small",
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "edgecolor": "lightgrey"},
    )
