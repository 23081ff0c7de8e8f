"""The numbers for the group-comparison figure (drawn by :mod:`bayes_scaling.plots`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling import draws as _draws
from bayes_scaling import inference as _inference
from bayes_scaling.compare.contrast import Contrast, _load, _resolve_groups
from bayes_scaling.compare.optimal import optimal_loss
from bayes_scaling.laws import LawSpec


def contrast_plot_data(
    fit,
    groups: Sequence[str] | str | None = None,
    *,
    contrast_result: Contrast | None = None,
    prob: float = 0.9,
    num: int = 60,
    x_range: tuple[float, float] | None = None,
    bins: int = 60,
    flops_per_token: float = 6.0,
) -> dict[str, Any]:
    """The numbers for the group-comparison figure (drawn by ``bayes_scaling.plots``).

    Panel 1: each group's curve with a band: the compute-optimal loss against compute for laws
    over ``N`` and ``D`` (or ``C``), the loss against the covariate for other one-covariate
    laws, with the observed points. Panel 2: the posterior of a contrast as a histogram.

    Parameters
    ----------
    fit : InferenceData, str or Path
        A hierarchical fit.
    groups : sequence of str, optional
        Default: all groups.
    contrast_result : Contrast, optional
        Adds its posterior histogram(s).
    prob : float, default 0.9
        Band mass.
    num : int, default 60
        Grid points along the x axis.
    x_range : (float, float), optional
        Default: the data's range, extended 10x at the top.
    bins : int, default 60
    flops_per_token : float, default 6.0

    Returns
    -------
    dict
        ``x_name`` (``"C"`` or the covariate), ``y_name``; ``curves``: DataFrame with columns
        ``group, x, median, lower, upper``; ``points``: DataFrame ``group, x, y`` of the
        observed runs; ``contrast`` (when given): DataFrame ``pair, left, right, density`` and
        ``contrast_summary`` (its table as records), ``rope``, ``reference`` (0 or 1).
    """
    fit = _load(fit)
    info = _inference.fit_spec(fit)
    spec: LawSpec = info["law"]
    groups = _resolve_groups(fit, groups)
    x_name, x_obs = _x_axis(fit, spec, flops_per_token)
    frontier = x_name == "C" and set(spec.covariates) != {"C"}
    if x_range is None:
        x_range = (float(x_obs.min()), float(x_obs.max()) * 10)
    grid = np.geomspace(x_range[0], x_range[1], int(num))
    gi = fit.constant_data["group_index"].values.astype(int)
    labels = list(info["groups"])
    y_obs = np.exp(fit.observed_data[f"log_{spec.target}"].values)
    rows, pts = [], []
    for g in groups:
        d = _inference.posterior_draws(fit, g)
        if frontier:
            curve = optimal_loss(spec, d, grid, flops_per_token=flops_per_token)
        else:
            curve = np.exp(_draws.log_law_at(spec, d, {x_name: grid}))
        rows.append(_band(g, grid, curve, prob))
        sel = gi == labels.index(g)
        pts.append(pd.DataFrame({"group": g, "x": x_obs[sel], "y": y_obs[sel]}))
    out: dict[str, Any] = {
        "x_name": x_name,
        "y_name": spec.target + (" (compute-optimal)" if frontier else ""),
        "prob": prob,
        "curves": pd.concat(rows, ignore_index=True),
        "points": pd.concat(pts, ignore_index=True),
    }
    if contrast_result is not None:
        out["contrast"] = _histograms(contrast_result, bins)
        out["contrast_summary"] = contrast_result.to_dict()
        out["rope"] = contrast_result.rope
        out["reference"] = 1.0 if contrast_result.kind == "ratio" else 0.0
    return out


def _x_axis(fit, spec: LawSpec, flops_per_token: float) -> tuple[str, np.ndarray]:
    """The figure's x axis and the observed runs on it.

    Compute for laws over ``N`` and ``D`` (along the compute-optimal frontier) or over ``C``;
    the covariate itself for other one-covariate laws.
    """
    const = fit.constant_data
    covs = set(spec.covariates)
    if covs in ({"N", "D"}, {"C"}):
        if "C" in const:
            return "C", const["C"].values
        return "C", flops_per_token * const["N"].values * const["D"].values
    if len(spec.covariates) == 1:
        return spec.covariates[0], const[spec.covariates[0]].values
    raise ValueError(
        f"no one-dimensional curve for law {spec.name!r} with covariates {list(spec.covariates)}"
    )


def _band(group: str, grid: np.ndarray, curve: np.ndarray, prob: float) -> pd.DataFrame:
    """Median and equal-tailed band of a group's curve draws ``(S, m)`` along ``grid``."""
    q = np.quantile(curve, [0.5, (1 - prob) / 2, (1 + prob) / 2], axis=0)
    return pd.DataFrame({"group": group, "x": grid, "median": q[0], "lower": q[1], "upper": q[2]})


def _histograms(result: Contrast, bins: int) -> pd.DataFrame:
    """Density histograms of a contrast's draws per pair (crossings on a log10 scale)."""
    hist = []
    for label, v in result.draws.items():
        v = v[np.isfinite(v)]
        if not v.size:
            continue
        if result.kind == "crossing":
            dens, edges = np.histogram(np.log10(v), bins=bins, density=True)
            edges = 10**edges
        else:
            dens, edges = np.histogram(v, bins=bins, density=True)
        hist.append(
            pd.DataFrame({"pair": label, "left": edges[:-1], "right": edges[1:], "density": dens})
        )
    if not hist:
        return pd.DataFrame(columns=["pair", "left", "right", "density"])
    return pd.concat(hist, ignore_index=True)
