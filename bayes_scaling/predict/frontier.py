"""The compute frontier: loss per budget at each draw's optimal allocation and at a fixed one."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from bayes_scaling import draws as _draws
from bayes_scaling import inference as _inference
from bayes_scaling.laws import LawSpec
from bayes_scaling.predict.calibrate import get_discrepancy
from bayes_scaling.predict.predictive import _check_quantiles


def _optimal_log_n(
    law: LawSpec, params: Mapping[str, np.ndarray], log_c6: np.ndarray
) -> np.ndarray:
    """(S, K) log N minimising the law at N * D = C / k, per draw and budget.

    The law's closed form (``LawSpec.log_n_opt``) where it has one; otherwise a numerical
    search (:func:`_grid_log_n`).
    """
    if law.log_n_opt is not None:
        columns = {k: np.asarray(v, dtype=float)[:, None] for k, v in params.items()}
        return np.asarray(law.log_n_opt(columns, log_c6[None, :]), dtype=float)
    return _grid_log_n(law, params, log_c6)


def _grid_log_n(law: LawSpec, params: Mapping[str, np.ndarray], log_c6: np.ndarray) -> np.ndarray:
    """(S, K) log N minimising the law at N * D = C / k, searched numerically.

    A grid over tokens per parameter from 1e-2 to 1e5 (400 points) refined by a parabola
    through the best grid point and its neighbours.
    """
    log_r = np.linspace(math.log(1e-2), math.log(1e5), 400)
    vals = np.stack(  # (S, K, R), one budget at a time to bound memory
        [
            _draws.law_over_draws(law, params, {"N": 0.5 * (lc - log_r), "D": 0.5 * (lc + log_r)})
            for lc in log_c6
        ],
        axis=1,
    )
    vals = np.where(np.isfinite(vals), vals, np.inf)
    i = np.clip(np.argmin(vals, axis=-1), 1, log_r.size - 2)
    f0 = np.take_along_axis(vals, (i - 1)[..., None], -1)[..., 0]
    f1 = np.take_along_axis(vals, i[..., None], -1)[..., 0]
    f2 = np.take_along_axis(vals, (i + 1)[..., None], -1)[..., 0]
    h = log_r[1] - log_r[0]
    denom = f0 - 2 * f1 + f2
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(denom > 0, 0.5 * h * (f0 - f2) / denom, 0.0)
    best_log_r = log_r[i] + np.clip(np.nan_to_num(shift), -h, h)
    return 0.5 * (log_c6[None, :] - best_log_r)


def _check_frontier_args(info, compute, tokens_per_param, flops_per_token) -> np.ndarray:
    """The budgets as a 1-d array; refuses a law, budget or ratio the frontier cannot use."""
    law: LawSpec = info["law"]
    if set(law.covariates) != {"N", "D"}:
        raise ValueError(
            f"predict_frontier needs a law over N and D only; law {law.name!r} has covariates "
            f"{list(law.covariates)}"
        )
    c = np.atleast_1d(np.asarray(compute, dtype=float))
    if c.ndim != 1 or c.size == 0 or not np.all(np.isfinite(c) & (c > 0)):
        raise ValueError(
            f"compute must be a non-empty 1-d array of finite budgets > 0; got {compute!r}"
        )
    if not flops_per_token > 0:
        raise ValueError(f"flops_per_token must be > 0; got {flops_per_token}")
    if tokens_per_param is not None and not (
        math.isfinite(tokens_per_param) and tokens_per_param > 0
    ):
        raise ValueError(f"tokens_per_param must be a finite number > 0; got {tokens_per_param!r}")
    return c


def _allocations(law: LawSpec, params, log_c6: np.ndarray, tokens_per_param: float | None):
    """Log N and D: each draw's optimum ``(S, K)`` and the fixed allocation ``(K,)``."""
    log_n_opt = _optimal_log_n(law, params, log_c6)  # (S, K)
    log_d_opt = log_c6[None, :] - log_n_opt
    if tokens_per_param is None:
        log_ratio = np.median(log_d_opt - log_n_opt, axis=0)
    else:
        log_ratio = np.full(log_c6.size, math.log(tokens_per_param))
    log_n_fixed = 0.5 * (log_c6 - log_ratio)
    log_d_fixed = log_c6 - log_n_fixed
    return log_n_opt, log_d_opt, log_n_fixed, log_d_fixed


def _losses(law: LawSpec, params, alloc, disc, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Log loss ``(S, K)`` at the optimal and fixed allocations, without and with discrepancy."""
    log_n_opt, log_d_opt, log_n_fixed, log_d_fixed = alloc
    jparams = {k: jnp.asarray(v) for k, v in params.items()}
    loss_opt = np.asarray(  # each draw at its own optimum: both arguments mapped
        jax.vmap(law.fn)(jparams, {"N": jnp.asarray(log_n_opt), "D": jnp.asarray(log_d_opt)}),
        dtype=float,
    )
    loss_fixed = _draws.law_over_draws(law, params, {"N": log_n_fixed, "D": log_d_fixed})
    s, k = loss_opt.shape
    if disc is None:
        b = np.zeros(s)
        dist_opt = np.zeros_like(loss_opt)
        dist_fixed = np.zeros(k)
    else:
        b = disc.sample_slope(rng, s)
        dist_opt = disc.distance({"N": np.exp(log_n_opt), "D": np.exp(log_d_opt)})
        dist_fixed = disc.distance({"N": np.exp(log_n_fixed), "D": np.exp(log_d_fixed)})
    return {
        "loss_opt": loss_opt,
        "loss_opt_structural": loss_opt + b[:, None] * dist_opt,
        "loss_fixed": np.broadcast_to(loss_fixed, (s, k)),
        "loss_fixed_structural": loss_fixed + b[:, None] * dist_fixed[None, :],
    }


def _frontier_dataset(fit, c, qs, alloc, variables) -> xr.Dataset:
    log_n_opt, log_d_opt, log_n_fixed, log_d_fixed = alloc
    nc, nd = fit.posterior.sizes["chain"], fit.posterior.sizes["draw"]
    shape = (nc, nd, c.size)
    dims = ("chain", "draw", "budget")
    ds = xr.Dataset(
        coords={
            "chain": np.arange(nc),
            "draw": np.arange(nd),
            "budget": np.arange(c.size),
            "quantile": qs,
            "C": ("budget", c),
        }
    )
    ds["N_opt"] = (dims, np.exp(log_n_opt).reshape(shape))
    ds["D_opt"] = (dims, np.exp(log_d_opt).reshape(shape))
    ds["N_fixed"] = (("budget",), np.exp(log_n_fixed))
    ds["D_fixed"] = (("budget",), np.exp(log_d_fixed))
    for name, log_values in variables.items():
        values = np.exp(log_values)
        ds[name] = (dims, values.reshape(shape))
        ds[f"{name}_quantiles"] = (("quantile", "budget"), np.quantile(values, qs, axis=0))
    return ds


def predict_frontier(
    fit,
    compute: Sequence[float] | np.ndarray,
    tokens_per_param: float | None = None,
    *,
    group: str | None = None,
    discrepancy: Any = "auto",
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
    flops_per_token: float = 6.0,
    rng_key: jax.Array | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """Loss per compute budget at each draw's compute-optimal allocation and at a fixed one.

    Parameters
    ----------
    fit : InferenceData
        A fit of a law over ``N`` and ``D`` only (``chinchilla``, ``kaplan``, or a registered law
        with those covariates).
    compute : array of float
        Training compute budgets ``C`` (FLOP), with ``C = flops_per_token * N * D``.
    tokens_per_param : float, optional
        The fixed allocation ``D / N``. Default: the posterior median of the optimal ``D / N`` at
        each budget (the allocation a planner would commit to).
    group : str, optional
        For hierarchical fits: a group label or ``"new"``.
    discrepancy : "auto", "calibrate", None, float or Discrepancy, default "auto"
        As for :func:`predict` (``"auto"``: the fit's stored one, else none with a warning);
        ``structural`` variables include it.
    quantiles : sequence of float, default (0.05, 0.5, 0.95)
    flops_per_token : float, default 6.0
    rng_key : jax.Array, optional
    seed : int, default 0

    Returns
    -------
    xarray.Dataset
        Dims ``(chain, draw, budget)``: ``N_opt``, ``D_opt`` (the draw's optimal allocation),
        ``loss_opt`` (law at it, parameter uncertainty), ``loss_opt_structural`` (with the
        discrepancy); ``loss_fixed``, ``loss_fixed_structural`` at the fixed allocation
        ``N_fixed``, ``D_fixed`` (dims ``(budget,)``). Each loss variable ``V`` also has
        ``V_quantiles`` ``(quantile, budget)``. Coordinate ``C`` on ``budget``.

    Raises
    ------
    ValueError
        A law not over exactly ``N`` and ``D``, or non-positive budgets or ratio.

    Notes
    -----
    Where the law has a closed-form optimum (``LawSpec.log_n_opt``) it is used: for the
    Chinchilla law :math:`N^* = G (C/k)^{\\beta/(\\alpha+\\beta)}` with
    :math:`G = (\\alpha A / \\beta B)^{1/(\\alpha+\\beta)}` (Hoffmann et al. 2022, eq. 4), and
    Kaplan's likewise; other laws are searched numerically per draw and budget.
    """
    info = _inference.fit_spec(fit)
    law: LawSpec = info["law"]
    c = _check_frontier_args(info, compute, tokens_per_param, flops_per_token)
    qs = _check_quantiles(quantiles)
    if info["groups"] and group is None:
        raise ValueError(
            f"this fit is hierarchical over groups {info['groups']}: pass group= one of them or "
            "'new'"
        )
    rng = _draws.numpy_rng(rng_key if rng_key is not None else jax.random.PRNGKey(seed), seed)
    draws = _draws.finite_draws(fit, group, seed=int(rng.integers(2**31 - 1)))
    params = {k: np.asarray(draws[k], dtype=float) for k in law.param_names}
    alloc = _allocations(law, params, np.log(c / flops_per_token), tokens_per_param)
    disc = get_discrepancy(fit, discrepancy)
    ds = _frontier_dataset(fit, c, qs, alloc, _losses(law, params, alloc, disc, rng))
    ds.attrs.update(
        {
            "law": law.name,
            "target": law.target,
            "group": "" if group is None else str(group),
            "flops_per_token": flops_per_token,
            "tokens_per_param": "posterior median of the optimum"
            if tokens_per_param is None
            else float(tokens_per_param),
            "discrepancy": "" if disc is None else disc.to_json(),
        }
    )
    return ds
