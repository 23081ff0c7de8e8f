"""Figures of a fit: data with fitted curves, extrapolation fans, frontiers, posteriors, risk.

Every function returns a :class:`matplotlib.figure.Figure` and takes an optional ``ax`` (or
``axes`` for multi-panel figures), so figures compose::

    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    plots.fan_chart(fit, ax=left)
    plots.frontier(fit, ax=right)

Without an ``ax`` a new figure is made with :class:`matplotlib.figure.Figure` (not ``pyplot``),
so building many figures keeps no global state. matplotlib is imported inside the functions.

The numbers come from the posterior draws (:func:`bayes_scaling.inference.posterior_draws`)
pushed through the law with ``jax.vmap``: the *law mean* is the law's value for each draw
(parameter uncertainty), a *new run* adds the fitted residual noise (Student-t or normal on the
log target), which is what one more training run would show.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling import inference as _inference
from bayes_scaling.laws import LawSpec, get_law

__all__ = [
    "backtest_chart",
    "compute_optimal_exponent",
    "exponent",
    "fan_chart",
    "fit_curves",
    "fit_frame",
    "frontier",
    "group_contrast",
    "group_curves",
    "iso_flop",
    "posteriors",
    "predictive",
    "predictive_check",
    "resolve_discrepancy",
    "risk_curve",
]

#: Colours used throughout (matplotlib's tab10, in a fixed order).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
LAW_COLOUR = PALETTE[0]
RUN_COLOUR = PALETTE[1]
STRUCTURAL_COLOUR = PALETTE[4]
DATA_COLOUR = "#444444"

#: Published values of the compute-optimal exponent a = beta / (alpha + beta), drawn as references.
EXPONENT_REFERENCES = (
    ("Hoffmann et al. 2022 (approach 3)", 0.4545),
    ("Besiroglu et al. 2024 refit", 0.513),
)

_MAX_DRAWS = 1000


# =========================================================================== numeric core


def _spec(fit) -> LawSpec:
    return get_law(fit.posterior.attrs["law"])


def _groups(fit) -> list[str]:
    return list(json.loads(fit.posterior.attrs.get("groups", "[]") or "[]"))


def _check_group(fit, group: str | None) -> str | None:
    labels = _groups(fit)
    if not labels:
        if group not in (None,):
            raise ValueError(f"group={group!r} given, but this fit has no groups")
        return None
    if group is None:
        raise ValueError(f"this fit has groups {labels}; pass group= one of them (or 'new')")
    if group != "new" and group not in labels:
        raise ValueError(f"unknown group {group!r}; the fit's groups are {labels} (or 'new')")
    return group


def _draws(fit, group: str | None, max_draws: int = _MAX_DRAWS, seed: int = 0) -> dict[str, np.ndarray]:
    """Posterior draws of one group, thinned evenly to at most ``max_draws``."""
    from bayes_scaling.predict import _finite_draws

    draws = _finite_draws(fit, group, seed=seed)
    size = draws["sigma"].size
    if size > max_draws:
        keep = np.linspace(0, size - 1, max_draws).round().astype(int)
        draws = {k: v[keep] for k, v in draws.items()}
    return draws


@functools.lru_cache(maxsize=64)
def _vmapped(fn):
    import jax

    return jax.jit(jax.vmap(fn, in_axes=(0, None)))


def _log_law(spec: LawSpec, draws: Mapping[str, np.ndarray], covariates: Mapping[str, Any]) -> np.ndarray:
    """Log target of every draw at points given in natural units: shape ``(S, P)``."""
    import jax.numpy as jnp

    params = {k: jnp.asarray(draws[k], dtype=jnp.float32) for k in spec.param_names}
    x = {k: jnp.log(jnp.asarray(np.asarray(covariates[k], dtype=float), dtype=jnp.float32))
         for k in spec.covariates}
    return np.asarray(_vmapped(spec.fn)(params, x), dtype=float)


def _new_run(log_law: np.ndarray, draws: Mapping[str, np.ndarray], seed: int = 0) -> np.ndarray:
    """Add the residual noise of the log target: what one more run at each point would give."""
    rng = np.random.default_rng(seed)
    sigma = np.asarray(draws["sigma"], dtype=float)[:, None]
    nu = draws.get("nu")
    if nu is None or not np.all(np.isfinite(nu)):
        eps = rng.standard_normal(log_law.shape)
    else:
        eps = rng.standard_t(np.asarray(nu, dtype=float)[:, None], size=log_law.shape)
    return log_law + sigma * eps


def resolve_discrepancy(fit, discrepancy: Any = "recorded"):
    """The extrapolation discrepancy to use: ``"recorded"`` is the fit's own or None.

    Other values go to :func:`bayes_scaling.predict.get_discrepancy` (``"auto"`` calibrates
    one when the fit has none, a number fixes ``tau``, None turns it off).
    """
    from bayes_scaling import predict as _predict

    if isinstance(discrepancy, str) and discrepancy == "recorded":
        stored = fit.posterior.attrs.get(_predict.DISCREPANCY_ATTR)
        return _predict.Discrepancy.from_json(stored) if stored else None
    return _predict.get_discrepancy(fit, discrepancy)


def predictive(fit, covariates: Mapping[str, Any], *, group: str | None = None,
               discrepancy: Any = "recorded", seed: int = 0):
    """Draws of the target at points, through :func:`bayes_scaling.predict.predict_draws`.

    Returns ``(law_mean, structural, new_run, discrepancy)``: arrays of shape ``(S, P)`` in
    natural units (``structural`` is None without a discrepancy) and the discrepancy used.
    """
    from bayes_scaling import predict as _predict

    disc = resolve_discrepancy(fit, discrepancy)
    points = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in covariates.items()})
    rng = np.random.default_rng(seed)
    core = _predict.predict_draws(fit, points, group=group, discrepancy=disc, rng=rng)
    log_mu, delta, eps = core["log_law_mean"], core["delta"], core["eps"]
    structural = np.exp(log_mu + delta) if disc is not None else None
    return np.exp(log_mu), structural, np.exp(log_mu + delta + eps), disc


def _interval(values: np.ndarray, prob: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.quantile(values, [(1 - prob) / 2, (1 + prob) / 2], axis=axis)
    return lo, hi


def _over_nd(spec: LawSpec) -> bool:
    return {"N", "D"} <= set(spec.covariates) and set(spec.covariates) <= {"N", "D", "U"}


def compute_optimal_exponent(fit, group: str | None = None) -> np.ndarray:
    """Posterior draws of the compute-optimal exponent ``a`` in ``N*(C) ~ C^a``.

    Parameters
    ----------
    fit : arviz.InferenceData
        A fit of a law over ``N`` and ``D`` with exponents ``alpha``/``beta`` (chinchilla,
        data_constrained) or ``alpha_N``/``alpha_D`` (kaplan).
    group : str, optional
        Group label of a hierarchical fit (or ``"new"``).

    Returns
    -------
    numpy.ndarray
        Shape ``(S,)``.

    Raises
    ------
    ValueError
        For a law without such an exponent.

    Notes
    -----
    With ``C = k N D`` the Chinchilla law ``E + A N^-alpha + B D^-beta`` is minimised at
    ``N* = G (C/k)^a`` with ``a = beta / (alpha + beta)``; for Kaplan's law
    ``a = alpha_D / (alpha_N + alpha_D)``. ``a = 0.5`` means parameters and tokens grow alike.

    References
    ----------
    Hoffmann et al. 2022, arXiv:2203.15556; Besiroglu et al. 2024, arXiv:2404.10102 (a = 0.513,
    SE 0.020, on the Chinchilla data).
    """
    spec = _spec(fit)
    d = _inference.posterior_draws(fit, _check_group(fit, group))
    names = set(spec.param_names)
    if {"alpha", "beta"} <= names and _over_nd(spec):
        return d["beta"] / (d["alpha"] + d["beta"])
    if {"alpha_N", "alpha_D"} <= names:
        return d["alpha_D"] / (d["alpha_N"] + d["alpha_D"])
    raise ValueError(
        f"the compute-optimal exponent is defined for laws over N and D with exponents alpha/beta "
        f"or alpha_N/alpha_D; law {spec.name!r} has parameters {list(spec.param_names)}"
    )


def _optimal_path(
    spec: LawSpec, draws: Mapping[str, np.ndarray], compute: np.ndarray, k: float, num: int = 241
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-draw and posterior-mean optimal ``log N`` on each iso-compute line.

    Returns ``(log_n_per_draw (S, m), log_n_mean (m,), law_mean_at_mean (S, m))``: a grid over
    tokens per parameter from 1e-3 to 1e5, refined by a parabola through the minimum's neighbours.
    """
    log_r = np.linspace(math.log(1e-3), math.log(1e5), num)  # log(D/N)
    lck = np.log(np.asarray(compute, dtype=float)) - math.log(k)  # log(N D)
    log_n = 0.5 * (lck[:, None] - log_r[None, :])  # (m, K)
    log_d = lck[:, None] - log_n
    cov = {"N": np.exp(log_n).ravel(), "D": np.exp(log_d).ravel()}
    if "U" in spec.covariates:
        cov["U"] = cov["D"]  # fresh data: no repetition
    law = np.exp(_log_law(spec, draws, cov)).reshape(-1, *log_n.shape)  # (S, m, K)
    h = log_n[:, 0] - log_n[:, 1]  # step in log N is constant per row (decreasing in r)

    def refine(values: np.ndarray) -> np.ndarray:  # values (..., m, K) -> log N (..., m)
        idx = np.clip(values.argmin(axis=-1), 1, num - 2)
        take = lambda j: np.take_along_axis(values, j[..., None], axis=-1)[..., 0]
        y0, y1, y2 = take(idx - 1), take(idx), take(idx + 1)
        denom = y0 - 2 * y1 + y2
        shift = np.where(denom > 0, 0.5 * (y0 - y2) / np.where(denom > 0, denom, 1.0), 0.0)
        base = np.take_along_axis(np.broadcast_to(log_n, values.shape), idx[..., None], axis=-1)[..., 0]
        return base - np.clip(shift, -1, 1) * h  # grid runs towards smaller N as r grows

    per_draw = refine(law)
    mean_opt = refine(law.mean(axis=0))
    return per_draw, mean_opt, law


def _path_covariates(spec: LawSpec, log_n: np.ndarray, compute: np.ndarray, k: float) -> dict[str, np.ndarray]:
    n = np.exp(log_n)
    d = compute / (k * n)
    out = {"N": n, "D": d}
    if "U" in spec.covariates:
        out["U"] = d
    return out


# =========================================================================== data


def fit_frame(fit, data=None, *, flops_per_token: float = 6.0) -> pd.DataFrame:
    """The runs a fit was made on, as a frame: covariates, target, ``group`` and ``C``.

    Parameters
    ----------
    fit : arviz.InferenceData
    data : DataFrame, str or Path, optional
        The data to show instead of the fit's own ``constant_data``/``observed_data`` (validated
        against the fit's law; a warning is issued when it differs from the data fitted).
    flops_per_token : float, default 6.0
        ``k`` in ``C = k N D``, used when the data have ``N`` and ``D`` but no ``C``.

    Returns
    -------
    pandas.DataFrame
    """
    spec = _spec(fit)
    attrs = fit.posterior.attrs
    group_column = attrs.get("group_column") or None
    if data is not None:
        from bayes_scaling import data as _data

        raw = _data.read_table(data)
        frame = _data.validate(raw, spec, group=group_column)
        recorded = attrs.get("data_hash")
        if recorded and _data.data_hash(frame) != recorded:
            warnings.warn(
                "the data given differ from the data this fit was made on (data hash "
                f"{_data.data_hash(frame)} vs {recorded}); the figures show the data given",
                UserWarning, stacklevel=2,
            )
        if "C" in raw.columns and "C" not in frame.columns:
            frame["C"] = pd.to_numeric(raw.loc[frame.index, "C"], errors="coerce").to_numpy(dtype=float)
    else:
        const = fit.constant_data
        frame = pd.DataFrame({c: const[c].values.astype(float) for c in spec.covariates})
        frame[spec.target] = np.exp(fit.observed_data[f"log_{spec.target}"].values.astype(float))
        if "group_index" in const:
            labels = np.asarray(_groups(fit), dtype=object)
            frame["group"] = labels[const["group_index"].values.astype(int)]
    if {"N", "D"} <= set(frame.columns) and ("C" not in frame.columns or frame["C"].isna().any()):
        frame["C"] = flops_per_token * frame["N"] * frame["D"]
    return frame


def _group_rows(frame: pd.DataFrame, group: str | None) -> pd.DataFrame:
    if group is None or group == "new" or "group" not in frame.columns:
        return frame
    return frame[frame["group"] == group]


def _new_axes(ax, figsize=(6.4, 4.2)):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _target_label(spec: LawSpec) -> str:
    return "loss (nats/token)" if spec.target == "loss" else spec.target


_AXIS_LABELS = {
    "C": "training compute C (FLOP)", "N": "parameters N", "D": "training tokens D",
    "B": "batch size B", "steps": "optimiser steps", "U": "unique tokens U",
}


def _suffix(group: str | None) -> str:
    return "" if group is None else f" [{group}]"


# =========================================================================== data and fitted curves


def fit_curves(fit, data=None, *, group: str | None = None, prob: float = 0.9, ax=None):
    """The data with the fitted law: the figure that fits the law's shape.

    Iso-FLOP curves (:func:`iso_flop`) for laws over exactly ``N`` and ``D``, the curve against
    the covariate for one-covariate laws, and observed against predicted
    (:func:`predictive_check`) otherwise.

    Parameters
    ----------
    fit : arviz.InferenceData
    data : DataFrame, str or Path, optional
        Default: the data stored in the fit.
    group : str, optional
        Group of a hierarchical fit (required for those).
    prob : float, default 0.9
        Mass of the bands.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    spec = _spec(fit)
    if set(spec.covariates) == {"N", "D"}:
        return iso_flop(fit, data, group=group, prob=prob, ax=ax)
    if len(spec.covariates) == 1:
        return _one_covariate(fit, data, group=group, prob=prob, ax=ax)
    return predictive_check(fit, data, group=group, prob=prob, ax=ax)


def _compute_levels(c: np.ndarray, num_curves: int) -> np.ndarray:
    """Compute levels for iso-FLOP curves: the data's budgets when discrete, else bin medians."""
    logc = np.log10(c)
    distinct = np.unique(np.round(logc, 2))
    if distinct.size <= num_curves:
        return 10.0 ** distinct
    if distinct.size <= 3 * num_curves:  # a few budgets: keep an evenly spread subset
        pick = np.linspace(0, distinct.size - 1, num_curves).round().astype(int)
        return 10.0 ** distinct[np.unique(pick)]
    edges = np.quantile(logc, np.linspace(0, 1, num_curves + 1))
    mids = [np.median(logc[(logc >= lo) & (logc <= hi)]) for lo, hi in itertools.pairwise(edges)]
    return 10.0 ** np.unique(np.round(mids, 2))


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
    """Iso-FLOP curves: loss against model size at fixed compute, with the runs.

    Each curve is the law along ``C = k N D`` at one compute level (the data's budgets when they
    are discrete, else medians of compute bins); the band is the ``prob`` interval of the law
    mean. Runs are coloured by their compute on the same colour scale.

    Parameters
    ----------
    fit : arviz.InferenceData
        A fit of a law over ``N`` and ``D``.
    data : DataFrame, str or Path, optional
    group : str, optional
    num_curves : int, default 5
    flops_per_token : float, default 6.0
    prob : float, default 0.9
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib import cm, colors

    spec = _spec(fit)
    if not _over_nd(spec):
        raise ValueError(f"iso-FLOP curves need a law over N and D; law {spec.name!r} has {list(spec.covariates)}")
    group = _check_group(fit, group)
    frame = _group_rows(fit_frame(fit, data, flops_per_token=flops_per_token), group)
    draws = _draws(fit, group)
    fig, ax = _new_axes(ax)
    c = frame["C"].to_numpy(dtype=float)
    norm = colors.LogNorm(vmin=c.min(), vmax=max(c.max(), c.min() * 1.0001))
    cmap = cm.viridis
    levels = _compute_levels(c, num_curves)
    n_lo, n_hi = frame["N"].min(), frame["N"].max()
    for level in levels:
        near = np.abs(np.log10(c) - np.log10(level)) < 0.3
        lo = frame["N"][near].min() / 2 if near.any() else n_lo
        hi = frame["N"][near].max() * 2 if near.any() else n_hi
        n = np.geomspace(lo, hi, 60)
        cov = {"N": n, "D": level / (flops_per_token * n)}
        if "U" in spec.covariates:
            cov["U"] = cov["D"]
        law = np.exp(_log_law(spec, draws, cov))
        lo_q, hi_q = _interval(law, prob)
        colour = cmap(norm(level))
        ax.fill_between(n, lo_q, hi_q, color=colour, alpha=0.18, linewidth=0)
        ax.plot(n, np.median(law, axis=0), color=colour, linewidth=1.6)
    sc = ax.scatter(frame["N"], frame[spec.target], c=c, cmap=cmap, norm=norm, s=14,
                    edgecolors="black", linewidths=0.3, zorder=3)
    fig.colorbar(sc, ax=ax, label=_AXIS_LABELS["C"])
    ax.set_xscale("log")
    ax.set_xlabel(_AXIS_LABELS["N"])
    ax.set_ylabel(_target_label(spec))
    lo_y, hi_y = np.quantile(frame[spec.target], [0.0, 1.0])
    pad = 0.08 * (hi_y - lo_y)
    ax.set_ylim(lo_y - pad, hi_y + pad)
    ax.set_title(f"{spec.name}: runs and iso-FLOP curves ({prob:.0%} band){_suffix(group)}")
    return fig


def _one_covariate(fit, data=None, *, group=None, prob=0.9, ax=None):
    spec = _spec(fit)
    group = _check_group(fit, group)
    (name,) = spec.covariates
    frame = _group_rows(fit_frame(fit, data), group)
    draws = _draws(fit, group)
    x = np.geomspace(frame[name].min() / 1.5, frame[name].max() * 1.5, 80)
    log_law = _log_law(spec, draws, {name: x})
    fig, ax = _new_axes(ax)
    _bands(ax, x, log_law, draws, prob=prob)
    ax.scatter(frame[name], frame[spec.target], s=14, color=DATA_COLOUR, zorder=3, label="runs")
    ax.set_xscale("log")
    if spec.target != "loss":
        ax.set_yscale("log")
    ax.set_xlabel(_AXIS_LABELS.get(name, name))
    ax.set_ylabel(_target_label(spec))
    ax.legend(loc="best", fontsize="small")
    ax.set_title(f"{spec.name}: runs and fitted curve{_suffix(group)}")
    return fig


def _bands(ax, x, log_law, draws, *, prob=0.9, inner=0.5, seed=0, label_prefix=""):
    """Law-mean bands (``inner`` and ``prob``), its median, and the new-run ``prob`` band."""
    law = np.exp(log_law)
    run = np.exp(_new_run(log_law, draws, seed=seed))
    lo, hi = _interval(law, prob)
    ax.fill_between(x, lo, hi, color=LAW_COLOUR, alpha=0.18, linewidth=0,
                    label=f"{label_prefix}law mean, {prob:.0%}")
    if inner:
        lo_i, hi_i = _interval(law, inner)
        ax.fill_between(x, lo_i, hi_i, color=LAW_COLOUR, alpha=0.35, linewidth=0,
                        label=f"{label_prefix}law mean, {inner:.0%}")
    ax.plot(x, np.median(law, axis=0), color=LAW_COLOUR, linewidth=1.8, label=f"{label_prefix}median")
    rlo, rhi = _interval(run, prob)
    ax.plot(x, rlo, color=RUN_COLOUR, linestyle="--", linewidth=1.2, label=f"{label_prefix}new run, {prob:.0%}")
    ax.plot(x, rhi, color=RUN_COLOUR, linestyle="--", linewidth=1.2)
    return law, run


def predictive_check(fit, data=None, *, group: str | None = None, prob: float = 0.9, seed: int = 0, ax=None):
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
    spec = _spec(fit)
    frame = fit_frame(fit, data)
    labels = _groups(fit)
    if labels and group is not None:
        _check_group(fit, group)
    todo = ([group] if group is not None else labels) if labels else [None]
    fig, ax = _new_axes(ax, figsize=(5.2, 4.6))
    inside = total = 0
    for i, g in enumerate(todo):
        rows = _group_rows(frame, g)
        if rows.empty:
            continue
        draws = _draws(fit, g)
        run = np.exp(_new_run(_log_law(spec, draws, {c: rows[c].to_numpy() for c in spec.covariates}), draws, seed))
        med = np.median(run, axis=0)
        lo, hi = _interval(run, prob)
        y = rows[spec.target].to_numpy(dtype=float)
        inside += int(((y >= lo) & (y <= hi)).sum())
        total += y.size
        colour = PALETTE[i % len(PALETTE)] if labels else LAW_COLOUR
        ax.errorbar(med, y, xerr=[med - lo, hi - med], fmt="o", markersize=3, color=colour,
                    ecolor=colour, elinewidth=0.6, alpha=0.8, label=g if labels and len(todo) <= 10 else None)
    lims = ax.get_xlim()
    lo_all, hi_all = min(lims[0], ax.get_ylim()[0]), max(lims[1], ax.get_ylim()[1])
    ax.plot([lo_all, hi_all], [lo_all, hi_all], color="black", linewidth=0.8, linestyle=":")
    if spec.target != "loss":
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"predicted {spec.target} (new run: median, {prob:.0%} interval)")
    ax.set_ylabel(f"observed {spec.target}")
    share = inside / total if total else float("nan")
    ax.set_title(f"{share:.0%} of {total} runs inside their {prob:.0%} interval{_suffix(group)}")
    if labels and len(todo) > 1:
        ax.legend(fontsize="x-small", loc="best")
    return fig


# =========================================================================== extrapolation


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
    discrepancy : "recorded", "auto", None, float or Discrepancy, default "recorded"
        Extrapolation discrepancy: ``"recorded"`` uses the one stored in the fit (by
        :func:`bayes_scaling.predict.attach_discrepancy` or an earlier ``"auto"``) and none
        otherwise; ``"auto"`` calibrates one by leave-future-out when none is stored (several
        small refits); None turns it off; a number fixes ``tau``.
    seed : int, default 0
        Seed of the new-run noise.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    spec = _spec(fit)
    group = _check_group(fit, group)
    frame = _group_rows(fit_frame(fit, data, flops_per_token=flops_per_token), group)
    draws = _draws(fit, group, seed=seed)
    x_name, x, cov, path_note = _fan_path(spec, draws, frame, compute, tokens_per_param,
                                          flops_per_token, num_points)
    law, structural, run, _disc = predictive(fit, cov, group=group, discrepancy=discrepancy, seed=seed)
    fig, ax = _new_axes(ax, figsize=(7.0, 4.4))
    lo, hi = _interval(law, prob)
    ax.fill_between(x, lo, hi, color=LAW_COLOUR, alpha=0.18, linewidth=0, label=f"law mean, {prob:.0%}")
    lo_i, hi_i = _interval(law, inner)
    ax.fill_between(x, lo_i, hi_i, color=LAW_COLOUR, alpha=0.35, linewidth=0, label=f"law mean, {inner:.0%}")
    ax.plot(x, np.median(law, axis=0), color=LAW_COLOUR, linewidth=1.8, label="median")
    if structural is not None:
        slo, shi = _interval(structural, prob)
        ax.plot(x, slo, color=STRUCTURAL_COLOUR, linewidth=1.2, label=f"with discrepancy, {prob:.0%}")
        ax.plot(x, shi, color=STRUCTURAL_COLOUR, linewidth=1.2)
    rlo, rhi = _interval(run, prob)
    ax.plot(x, rlo, color=RUN_COLOUR, linestyle="--", linewidth=1.2, label=f"new run, {prob:.0%}")
    ax.plot(x, rhi, color=RUN_COLOUR, linestyle="--", linewidth=1.2)
    if x_name in frame.columns:
        ax.scatter(frame[x_name], frame[spec.target], s=9, color=DATA_COLOUR, alpha=0.6, zorder=3,
                   label="runs")
        ax.axvline(frame[x_name].max(), color="grey", linestyle=":", linewidth=1)
        ax.annotate("largest run", (frame[x_name].max(), 0.98), xycoords=("data", "axes fraction"),
                    ha="right", va="top", fontsize="x-small", color="grey", rotation=90)
    end_law = _interval(law[:, -1], prob)
    end_run = _interval(run[:, -1], prob)
    extra = ""
    if structural is not None:
        end_s = _interval(structural[:, -1], prob)
        extra = f"\nwith discrepancy {end_s[0]:.3f}–{end_s[1]:.3f}"
    ax.annotate(
        f"at {x[-1]:.2g}: median {np.median(law[:, -1]):.3f}\n"
        f"law mean {end_law[0]:.3f}–{end_law[1]:.3f}{extra}\n"
        f"new run {end_run[0]:.3f}–{end_run[1]:.3f}",
        (0.99, 0.97 if spec.target == "loss" else 0.03), xycoords="axes fraction",
        ha="right", va="top" if spec.target == "loss" else "bottom", fontsize="x-small",
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "edgecolor": "lightgrey"},
    )
    ax.set_xscale("log")
    if spec.target != "loss":
        ax.set_yscale("log")
    else:
        top = np.quantile(frame[spec.target], 0.9) if len(frame) else np.max(law)
        bottom = min(float(np.min(rlo)), float(np.min(lo)))
        ax.set_ylim(bottom * 0.98, max(top, float(np.max(rhi[:1]))) * 1.02)
    ax.set_xlabel(_AXIS_LABELS.get(x_name, x_name))
    ax.set_ylabel(_target_label(spec))
    ax.set_title(f"{spec.name}: extrapolation{path_note}{_suffix(group)}", fontsize="medium")
    ax.legend(loc="lower left" if spec.target == "loss" else "upper right", fontsize="x-small")
    return fig


def _fan_path(spec, draws, frame, compute, tokens_per_param, k, num_points):
    if _over_nd(spec):
        c_data = frame["C"].to_numpy(dtype=float) if "C" in frame.columns and len(frame) else np.array([1e18])
        end = float(compute) if compute is not None else float(c_data.max()) * 100
        start = min(float(c_data.min()), end / 10)
        x = np.geomspace(start, end, num_points)
        if tokens_per_param is not None:
            r = float(tokens_per_param)
            log_n = 0.5 * (np.log(x / k) - math.log(r))
            note = f" at {r:g} tokens/parameter"
        else:
            _, log_n, _ = _optimal_path(spec, draws, x, k)
            note = " along the expected-loss-optimal split"
        return "C", x, _path_covariates(spec, log_n, x, k), note
    if len(spec.covariates) == 1:
        (name,) = spec.covariates
        values = frame[name].to_numpy(dtype=float) if name in frame.columns and len(frame) else np.array([1.0])
        end = float(compute) if compute is not None else float(values.max()) * 100
        x = np.geomspace(min(values.min(), end / 10), end, num_points)
        return name, x, {name: x}, ""
    raise ValueError(
        f"no extrapolation path for law {spec.name!r} with covariates {list(spec.covariates)}; "
        "predict at chosen covariates instead"
    )


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
    spec = _spec(fit)
    if not _over_nd(spec):
        raise ValueError(f"a compute-optimal frontier needs a law over N and D; law {spec.name!r} has {list(spec.covariates)}")
    group = _check_group(fit, group)
    frame = _group_rows(fit_frame(fit, data, flops_per_token=flops_per_token), group)
    draws = _draws(fit, group, max_draws=600)
    if compute_range is None:
        compute_range = (float(frame["C"].min()), float(frame["C"].max()) * 1000)
    c = np.geomspace(compute_range[0], compute_range[1], 40)
    per_draw, _, _ = _optimal_path(spec, draws, c, flops_per_token)
    n_opt = np.exp(per_draw)
    d_opt = c[None, :] / (flops_per_token * n_opt)
    fig, ax = _new_axes(ax, figsize=(6.4, 4.4))
    for values, colour, name in ((n_opt, PALETTE[0], "N*"), (d_opt, PALETTE[2], "D*")):
        lo, hi = _interval(values, prob)
        ax.fill_between(c, lo, hi, color=colour, alpha=0.18, linewidth=0)
        lo_i, hi_i = _interval(values, inner)
        ax.fill_between(c, lo_i, hi_i, color=colour, alpha=0.35, linewidth=0)
        ax.plot(c, np.median(values, axis=0), color=colour, linewidth=1.8,
                label=f"{name}(C), median, {inner:.0%} and {prob:.0%} bands")
    ax.scatter(frame["C"], frame["N"], s=7, color=PALETTE[0], alpha=0.4, label="runs: N")
    ax.scatter(frame["C"], frame["D"], s=7, color=PALETTE[2], alpha=0.4, marker="s", label="runs: D")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(_AXIS_LABELS["C"])
    ax.set_ylabel("parameters / tokens")
    a_med = None
    try:
        a_med = float(np.median(compute_optimal_exponent(fit, group)))
    except ValueError:
        pass
    extra = f", median a = {a_med:.3f}" if a_med is not None else ""
    ax.set_title(f"{spec.name}: compute-optimal N*(C), D*(C){extra}{_suffix(group)}", fontsize="medium")
    ax.legend(loc="upper left", fontsize="x-small")
    return fig


# =========================================================================== posteriors


def _grid(n: int, figsize_per=(2.6, 2.1), max_cols: int = 4):
    from matplotlib.figure import Figure

    cols = min(max_cols, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(figsize_per[0] * cols, figsize_per[1] * rows + 0.4), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


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
    spec = _spec(fit)
    post = fit.posterior
    names = list(var_names) if var_names is not None else [
        n for n in (*spec.param_names, "sigma") if n in post]
    unknown = [n for n in names if n not in post]
    if unknown:
        raise KeyError(f"unknown variables {unknown}; the posterior has {list(post.data_vars)}")
    labels = _groups(fit)
    chosen = list(groups) if groups is not None else labels[:10]
    if axes is None:
        fig, axes = _grid(len(names))
    else:
        axes = list(np.ravel(axes))
        if len(axes) < len(names):
            raise ValueError(f"{len(names)} variables need {len(names)} axes; got {len(axes)}")
        fig = axes[0].figure
    prior = fit.prior if include_prior and "prior" in fit.groups() else None
    for ax, name in zip(axes, names):
        v = post[name]
        series = ([(g, v.sel(group=g).values.ravel()) for g in chosen] if "group" in v.dims
                  else [(None, v.values.ravel())])
        everything = np.concatenate([s for _, s in series])
        lo, hi = np.quantile(everything, [0.002, 0.998])
        log_axis = lo > 0 and hi / lo > 20
        edges = np.geomspace(lo, hi, bins + 1) if log_axis else np.linspace(lo, hi, bins + 1)
        if prior is not None and name in prior:
            p = prior[name].values.ravel()
            p = p[(p >= lo) & (p <= hi)]
            if p.size:
                weights = np.full(p.size, 1.0 / prior[name].values.size)
                ax.hist(p, bins=edges, weights=weights * len(everything) / len(series), histtype="step",
                        color="grey", linewidth=1.0, label="prior")
        for i, (g, s) in enumerate(series):
            colour = PALETTE[i % len(PALETTE)]
            ax.hist(s, bins=edges, color=colour, alpha=0.55 if len(series) > 1 else 0.8, label=g)
        if log_axis:
            ax.set_xscale("log")
        ax.set_yticks([])
        med = np.median(everything) if len(series) == 1 else None
        ax.set_title(name if med is None else f"{name}: median {med:.4g}", fontsize="small")
    for ax in axes[len(names):]:
        ax.set_visible(False)
    handles, legend_labels = axes[0].get_legend_handles_labels()
    if len(handles) > 1:
        fig.legend(handles, legend_labels, loc="outside lower center", ncols=min(6, len(handles)),
                   fontsize="x-small")
    return fig


def exponent(fit, *, groups: Sequence[str] | None = None, references: bool = True, bins: int = 50, ax=None):
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
    labels = _groups(fit)
    todo = (list(groups) if groups is not None else labels[:10]) if labels else [None]
    values = [(g, compute_optimal_exponent(fit, g)) for g in todo]
    fig, ax = _new_axes(ax, figsize=(6.0, 3.6))
    everything = np.concatenate([v for _, v in values])
    lo, hi = np.quantile(everything, [0.002, 0.998])
    if references:
        lo, hi = min(lo, 0.44), max(hi, 0.53)
    edges = np.linspace(lo, hi, bins + 1)
    for i, (g, v) in enumerate(values):
        q = np.quantile(v, [0.05, 0.5, 0.95])
        label = f"{g + ': ' if g else ''}median {q[1]:.3f}, 90% {q[0]:.3f}–{q[2]:.3f}"
        ax.hist(v, bins=edges, color=PALETTE[i % len(PALETTE)], alpha=0.6 if len(values) > 1 else 0.8,
                label=label)
    if references:
        for (name, value), style in zip(EXPONENT_REFERENCES, ("--", ":")):
            ax.axvline(value, color="black", linestyle=style, linewidth=1, label=f"{name}: {value:.3f}")
    ax.axvline(0.5, color="grey", linewidth=0.6)
    ax.set_yticks([])
    ax.set_xlabel("compute-optimal exponent a  (N* ∝ C^a, D* ∝ C^(1-a))")
    ax.set_title("How parameters should grow with compute", fontsize="medium")
    ax.legend(fontsize="x-small", loc="upper left")
    return fig


# =========================================================================== decisions


def risk_curve(allocation, *, labels: Sequence[str] | None = None, show_interval: bool = True, ax=None):
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
    fig, ax = _new_axes(ax, figsize=(6.8, 4.2))
    twin = None
    compute = None
    for i, item in enumerate(items):
        curve = getattr(item, "risk_curve", item)
        n = np.asarray(curve["N"].values, dtype=float)
        y = np.asarray(curve.values, dtype=float)
        name = labels[i] if labels is not None else str(curve.attrs.get("risk", f"risk {i + 1}"))
        maximise = bool(curve.attrs.get("maximise", 0))
        target = ax
        if maximise and i > 0 and not bool(getattr(items[0], "risk_curve", items[0]).attrs.get("maximise", 0)):
            twin = twin or ax.twinx()
            target = twin
            target.set_ylabel("probability")
        colour = PALETTE[i % len(PALETTE)]
        target.plot(n, y, color=colour, linewidth=1.8, label=name)
        chosen = curve.attrs.get("chosen_N", getattr(item, "N", None))
        if chosen is not None:
            j = int(np.argmin(np.abs(np.log(n) - math.log(float(chosen)))))
            target.plot([n[j]], [y[j]], marker="*", markersize=12, color=colour, markeredgecolor="black",
                        linestyle="none", label=f"{name}: choose N = {float(chosen):.3g}")
        compute = compute or curve.attrs.get("compute")
    first = items[0]
    if show_interval and hasattr(first, "n_opt_interval"):
        lo, hi = first.n_opt_interval
        ax.axvspan(lo, hi, color="grey", alpha=0.15,
                   label=f"{first.interval_prob:.0%} interval of the optimal N*")
    ax.set_xscale("log")
    _log_ticks_125(ax.xaxis)
    ax.set_xlabel(_AXIS_LABELS["N"])
    ax.set_ylabel("risk (loss, nats/token)" if not twin else "risk")
    if compute:
        k = float(getattr(first, "flops_per_token", 6.0))
        c = float(compute)
        sec = ax.secondary_xaxis("top", functions=(lambda v: c / (k * np.square(np.maximum(v, 1e-30))),
                                                   lambda r: np.sqrt(c / (k * np.maximum(r, 1e-30)))))
        sec.set_xlabel("tokens per parameter D/N", fontsize="small")
        ax.set_title(f"Risk along the iso-compute line C = {c:.3g} FLOP", fontsize="medium")
    handles, names = ax.get_legend_handles_labels()
    if twin is not None:
        h2, n2 = twin.get_legend_handles_labels()
        handles, names = handles + h2, names + n2
    ax.legend(handles, names, fontsize="x-small", loc="best")
    return fig


def _log_ticks_125(axis) -> None:
    """Labels at 1, 2 and 5 times powers of ten, none on minor ticks: readable on short log axes."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    def label(value, _pos):
        if value <= 0:
            return ""
        exponent = math.floor(math.log10(value) + 1e-9)
        mantissa = round(value / 10**exponent)
        return f"$10^{{{exponent}}}$" if mantissa == 1 else f"${mantissa}\\times10^{{{exponent}}}$"

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(label))
    axis.set_minor_formatter(NullFormatter())


# =========================================================================== groups


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
    labels = _groups(fit)
    if len(labels) < 2:
        raise ValueError("group_contrast needs a hierarchical fit with at least two groups")
    a, b = (labels[0], labels[1]) if groups is None else tuple(groups)
    for g in (a, b):
        _check_group(fit, g)
    spec = _spec(fit)
    frame = fit_frame(fit, flops_per_token=flops_per_token)
    both = frame[frame["group"].isin([a, b])] if "group" in frame.columns else frame
    da, db = _draws(fit, a), _draws(fit, b)
    x_name, x, cov, note = _fan_path(spec, da, both, compute, tokens_per_param, flops_per_token, 50)
    la, lb = np.exp(_log_law(spec, da, cov)), np.exp(_log_law(spec, db, cov))
    diff = la - lb
    fig, ax = _new_axes(ax, figsize=(6.8, 4.0))
    lo, hi = _interval(diff, prob)
    ax.fill_between(x, lo, hi, color=PALETTE[4], alpha=0.25, linewidth=0, label=f"{prob:.0%} interval")
    ax.plot(x, np.median(diff, axis=0), color=PALETTE[4], linewidth=1.8, label="median difference")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(_AXIS_LABELS.get(x_name, x_name))
    ax.set_ylabel(f"{spec.target}[{a}] − {spec.target}[{b}]")
    twin = ax.twinx()
    twin.plot(x, (diff < 0).mean(axis=0), color="black", linestyle="--", linewidth=1.2,
              label=f"P({a} lower)")
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

    labels = _groups(fit)
    if len(labels) < 2:
        raise ValueError("group_curves needs a hierarchical fit with at least two groups")
    chosen = list(groups) if groups is not None else labels[:10]
    numbers = compare.contrast_plot_data(fit, chosen, prob=prob, x_range=x_range,
                                         flops_per_token=flops_per_token)
    curves, points = numbers["curves"], numbers["points"]
    fig, ax = _new_axes(ax, figsize=(6.8, 4.4))
    for i, g in enumerate(chosen):
        colour = PALETTE[i % len(PALETTE)]
        c = curves[curves["group"] == g]
        ax.fill_between(c["x"], c["lower"], c["upper"], color=colour, alpha=0.2, linewidth=0)
        ax.plot(c["x"], c["median"], color=colour, linewidth=1.6, label=g)
        pts = points[points["group"] == g]
        ax.scatter(pts["x"], pts["y"], s=8, color=colour, alpha=0.5)
    x_name = numbers["x_name"]
    ax.set_xscale("log")
    if _spec(fit).target != "loss":
        ax.set_yscale("log")
    ax.set_xlabel(_AXIS_LABELS.get(x_name, x_name))
    ax.set_ylabel(str(numbers["y_name"]))
    ax.set_title(f"Groups side by side ({prob:.0%} bands)", fontsize="medium")
    ax.legend(fontsize="x-small", loc="best")
    return fig


# =========================================================================== backtest


def _backtest_points(backtest: Mapping[str, Any]) -> pd.DataFrame | None:
    """Held-out points with observed and predicted values, wherever a backtest dict keeps them."""
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
    frame = _backtest_points(backtest)
    if frame is None:
        raise ValueError("the backtest report has no per-point predictions (a 'points' list) to draw")
    obs = _first_column(frame, ("observed", "loss", "y", "steps"))
    pred = _first_column(frame, ("median", "predicted", "pred_median", "mean", "prediction"))
    if pred is None or obs is None:
        raise ValueError(f"backtest points need observed and predicted values; columns: {list(frame.columns)}")
    if "C" not in frame.columns and {"N", "D"} <= set(frame.columns):
        frame = frame.assign(C=flops_per_token * frame["N"] * frame["D"])
    x_name = _first_column(frame, ("C", "compute", "B", "N", "D", "loss_x", "distance"))
    fig, ax = _new_axes(ax, figsize=(6.8, 4.2))
    x = frame[x_name].to_numpy(dtype=float) if x_name else np.arange(len(frame), dtype=float)
    y_pred = frame[pred].to_numpy(dtype=float)
    for lo_name, hi_name, width in ((("q05", "lower", "low"), ("q95", "upper", "high"), 0.8),
                                    (("q25",), ("q75",), 3.0)):
        lo, hi = _first_column(frame, lo_name), _first_column(frame, hi_name)
        if lo and hi:
            ax.vlines(x, frame[lo].to_numpy(float), frame[hi].to_numpy(float), color=LAW_COLOUR,
                      linewidth=width, alpha=0.6)
    ax.plot(x, y_pred, "o", markersize=3.5, color=LAW_COLOUR, label="prediction: median, 50% and 90%")
    if "baseline" in frame.columns and pd.api.types.is_numeric_dtype(frame["baseline"]):
        ax.plot(x, frame["baseline"].to_numpy(float), "D", markersize=3.5, color="grey",
                label="point-fit baseline")
    ax.plot(x, frame[obs].to_numpy(dtype=float), "x", color=RUN_COLOUR, markersize=6,
            markeredgewidth=1.5, label="observed")
    if x_name and x_name != "distance":
        ax.set_xscale("log")
        if x.max() / x.min() < 1e3:
            _log_ticks_125(ax.xaxis)
    ax.set_xlabel(_AXIS_LABELS.get(x_name, x_name) if x_name else "held-out run")
    target = backtest.get("target")
    ax.set_ylabel("loss (nats/token)" if target == "loss" else str(target or obs))
    coverage = backtest.get("coverage_90")
    share = f": {coverage:.0%} inside their 90% interval" if isinstance(coverage, (int, float)) else ""
    ax.set_title(f"Backtest, {len(frame)} held-out runs{share}", fontsize="medium")
    ax.legend(fontsize="x-small")
    return fig
