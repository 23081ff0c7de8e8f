"""Posterior predictive draws at new covariates: the law, the discrepancy and a new run's noise."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling import draws as _draws
from bayes_scaling import inference as _inference
from bayes_scaling import labels as _labels
from bayes_scaling.laws import LawSpec
from bayes_scaling.predict.calibrate import get_discrepancy
from bayes_scaling.predict.discrepancy import Discrepancy
from bayes_scaling.predict.points import _as_frame, _log_mu_draws, _validate_points, map_points

KINDS = ("law_mean", "structural_mean", "new_run")


def _check_group(info, points, group) -> bool:
    """Whether the fit is grouped; refuses a group the fit cannot predict."""
    grouped = bool(info["groups"])
    if (
        grouped
        and group is None
        and not (isinstance(points, pd.DataFrame) and "group" in points.columns)
    ):
        raise ValueError(
            f"this fit is hierarchical over groups {info['groups']}: pass group= one of them or "
            "'new' (a group drawn from the population), or give points a 'group' column"
        )
    if not grouped and group not in (None, "new"):
        raise ValueError(f"group={group!r} given, but this fit has no groups")
    if (
        grouped
        and group is not None
        and group != "new"
        and _labels.match_group(group, info["groups"]) is None
    ):
        raise ValueError(
            f"unknown group {group!r}; the fit's groups are {info['groups']} (or 'new' for an "
            "unseen group)"
        )
    return grouped


def predict_draws(
    fit,
    points,
    *,
    group: str | None = None,
    discrepancy: Discrepancy | None = None,
    rng: np.random.Generator,
    columns: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The array core of :func:`predict`: flat draws ``(S, P)`` on the log scale.

    ``columns`` renames the points' columns to canonical ones; without it the mapping the fit
    recorded applies (see :func:`bayes_scaling.predict.points.map_points`).

    Returns a dict with ``log_law_mean``, ``delta`` (discrepancy draws), ``eps`` (noise draws),
    ``sigma`` and ``nu`` (``(S,)``; ``nu`` None for a normal likelihood), ``distance`` (P,),
    ``covariates`` (natural units) and ``index`` (the points' labels).
    """
    info = _inference.fit_spec(fit)
    law: LawSpec = info["law"]
    points = map_points(
        _as_frame(points), columns, info.get("columns"), info.get("group_column", "")
    )
    grouped = _check_group(info, points, group)
    covariates, index, labels = _validate_points(law, points, grouped=grouped, group=group)
    pop_seed = int(rng.integers(2**31 - 1))
    log_mu, sigma, nu = _log_mu_draws(fit, law, covariates, labels, seed=pop_seed)
    s, p = log_mu.shape
    if discrepancy is None:
        distance = np.zeros(p)
        delta = np.zeros((s, p))
    else:
        distance = discrepancy.distance(covariates)
        b = discrepancy.sample_slope(rng, s)
        delta = b[:, None] * distance[None, :]
    return {
        "log_law_mean": log_mu,
        "delta": delta,
        "eps": _draws.noise(rng, sigma, nu, (s, p)),
        "sigma": sigma,
        "nu": nu,
        "distance": distance,
        "covariates": covariates,
        "index": index,
    }


def _check_quantiles(quantiles: Sequence[float]) -> list[float]:
    qs = [float(q) for q in quantiles]
    bad = [q for q in qs if not 0 < q < 1]
    if bad:
        raise ValueError(f"quantiles must be in (0, 1); got {bad}")
    return qs


def _check_kinds(kind: str | Sequence[str]) -> tuple[str, ...]:
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown kind {unknown or kinds!r}; expected some of {', '.join(KINDS)}")
    return kinds


def _draws_dataset(fit, core: dict[str, Any], kinds: tuple[str, ...], qs: list[float]):
    """The requested kinds' draws ``(chain, draw, point)``, means and quantiles; coordinates."""
    nc, nd = fit.posterior.sizes["chain"], fit.posterior.sizes["draw"]
    logs = {
        "law_mean": core["log_law_mean"],
        "structural_mean": core["log_law_mean"] + core["delta"],
        "new_run": core["log_law_mean"] + core["delta"] + core["eps"],
    }
    p = core["distance"].size
    coords: dict[str, Any] = {
        "chain": np.arange(nc),
        "draw": np.arange(nd),
        "point": np.arange(p),
        "quantile": qs,
    }
    for c, v in core["covariates"].items():
        coords[c] = ("point", v)
    ds = xr.Dataset(coords=coords)
    for k in kinds:
        with np.errstate(over="ignore"):  # Student-t tails: a draw may exceed the float range
            values = np.exp(logs[k])
        ds[k] = (("chain", "draw", "point"), values.reshape(nc, nd, p))
        ds[f"{k}_mean"] = (("point",), values.mean(axis=0))
        ds[f"{k}_quantiles"] = (("quantile", "point"), np.quantile(values, qs, axis=0))
    return ds


def predict(
    fit,
    points,
    *,
    group: str | None = None,
    kind: str | Sequence[str] = KINDS,
    discrepancy: Any = "auto",
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
    rng_key: jax.Array | None = None,
    seed: int = 0,
    columns: Mapping[str, str] | None = None,
) -> xr.Dataset:
    """Posterior predictive draws of the target at new covariates, with bands.

    Parameters
    ----------
    fit : InferenceData
        A fit from :func:`bayes_scaling.inference.fit`.
    points : DataFrame or mapping
        The law's covariates in natural units (e.g. columns ``N`` and ``D``), one row per point;
        for a hierarchical fit optionally a ``group`` column (labels the fit does not know are
        predicted as a new group).
    group : str, optional
        For a hierarchical fit: a group label, or ``"new"`` for a group drawn from the fitted
        population (wider bands: the between-group spread is added).
    kind : str or sequence of str, default all of ``("law_mean", "structural_mean", "new_run")``
        Which draws to return (see the module docstring).
    discrepancy : "auto", "calibrate", None, float or Discrepancy, default "auto"
        Extrapolation discrepancy: ``"auto"`` uses the one stored in the fit (``bayes-scaling
        fit`` stores one); a fit without one gets none, with a one-line warning: predicting
        never refits unless asked. ``"calibrate"`` learns it now by leave-future-out
        (:func:`calibrate_discrepancy`; several small refits, stored in ``fit.posterior.attrs``
        for later calls); None turns it off; a number fixes ``tau``.
    quantiles : sequence of float, default (0.05, 0.5, 0.95)
        Quantiles for the summary variables.
    rng_key : jax.Array, optional
        Key for the noise, discrepancy and population draws; default ``PRNGKey(seed)``.
    seed : int, default 0
    columns : mapping, optional
        Renames from the points' column names to canonical ones (``{"params": "N"}``). Without
        it, the mapping the fit was given applies to points that use the same names.

    Returns
    -------
    xarray.Dataset
        For each requested kind ``K``: ``K`` with dims ``(chain, draw, point)``, ``K_mean``
        ``(point,)`` and ``K_quantiles`` ``(quantile, point)``. (A Student-t on the log scale
        gives the target itself no finite mean: ``new_run_mean`` is unstable when ``nu`` is
        small; the quantiles are the robust summary.) Also ``distance`` (point): the
        distance outside the training range in natural-log units, and ``discrepancy_sd`` (point):
        the posterior median of ``tau`` times ``distance``. The covariates are coordinates on
        ``point``; ``attrs`` record the law, target, group and discrepancy.

    Raises
    ------
    DataError
        Points missing a covariate of the law, or with non-positive or non-finite values.
    ValueError
        A group that the fit does not have, a missing group for a hierarchical fit, bad quantiles
        or kind.

    Examples
    --------
    >>> from bayes_scaling import fit, load_dataset  # doctest: +SKIP
    >>> idata = fit(load_dataset("demo"), "chinchilla", num_chains=2, num_warmup=300,
    ...             num_samples=300)  # doctest: +SKIP
    >>> pred = predict(idata, {"N": [7e10], "D": [1.4e12]}, discrepancy=0.01)  # doctest: +SKIP
    >>> pred["new_run_quantiles"].sel(quantile=0.5).values  # doctest: +SKIP
    """
    kinds = _check_kinds(kind)
    qs = _check_quantiles(quantiles)
    law: LawSpec = _inference.fit_spec(fit)["law"]
    disc = get_discrepancy(fit, discrepancy)
    rng = _draws.numpy_rng(rng_key if rng_key is not None else jax.random.PRNGKey(seed), seed)
    core = predict_draws(fit, points, group=group, discrepancy=disc, rng=rng, columns=columns)
    ds = _draws_dataset(fit, core, kinds, qs)
    ds["distance"] = (("point",), core["distance"])
    tau_med = disc.tau_quantile(0.5) if disc is not None else 0.0
    ds["discrepancy_sd"] = (("point",), tau_med * core["distance"])
    ds.attrs.update(
        {
            "law": law.name,
            "target": law.target,
            "group": "" if group is None else str(group),
            "discrepancy": "" if disc is None else disc.to_json(),
            "kinds": json.dumps(list(kinds)),
        }
    )
    return ds
