"""Convergence diagnostics of a fit: arviz's rank-normalised split R-hat and bulk ESS (the same
estimators ``summarize`` and the report show), the divergence count, and the warnings a user
acts on."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from bayes_scaling._warnings import warn

__all__ = ["diagnostics", "warn_diagnostics"]

MIN_DRAWS_PER_CHAIN = 4  # split R-hat and ESS need at least two draws per half-chain


def _extreme(fn, values: np.ndarray) -> float:
    """``fn`` over the finite values (NaN when there are none)."""
    values = np.asarray(values, dtype=float).ravel()
    values = values[np.isfinite(values)]
    return float(fn(values)) if values.size else float("nan")


def diagnostics(posterior: xr.Dataset, sample_stats: xr.Dataset, names=None) -> dict[str, float]:
    """Max rank-normalised split R-hat, min bulk ESS (arviz's estimators) and the divergence count.

    R-hat and ESS are NaN with fewer than 4 draws per chain (too few to estimate them); R-hat is
    NaN for a single chain.
    """
    import arviz as az

    names = list(names or posterior.data_vars)
    ds = posterior[names]
    divergences = int(sample_stats["diverging"].sum())
    if posterior.sizes["draw"] < MIN_DRAWS_PER_CHAIN:
        return {"max_rhat": float("nan"), "min_ess": float("nan"), "divergences": divergences}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arviz warns about shapes of short or single chains
        ess = az.ess(ds, method="bulk")
        rhat = az.rhat(ds, method="rank") if posterior.sizes["chain"] > 1 else None
    return {
        "max_rhat": _extreme(np.max, np.concatenate([rhat[n].values.ravel() for n in names]))
        if rhat
        else float("nan"),
        "min_ess": _extreme(np.min, np.concatenate([ess[n].values.ravel() for n in names])),
        "divergences": divergences,
    }


def warn_diagnostics(posterior: xr.Dataset, stats: xr.Dataset, spec=None) -> None:
    """Warnings, each with what to try, for divergences, R-hat > 1.01 and bulk ESS < 400.

    ``spec`` (the model spec) is accepted for callers that pass it; the checks do not need it.
    """
    d = diagnostics(posterior, stats)
    if np.isnan(d["min_ess"]):
        _warn(
            f"{posterior.sizes['draw']} draws per chain are too few to estimate R-hat or the "
            "effective sample size (at least 4 needed): convergence is unchecked. Draw more "
            "samples (num_samples)."
        )
    if d["divergences"]:
        _warn(
            f"{d['divergences']} divergent transitions: the posterior has regions NUTS cannot "
            "explore reliably. Try target_accept_prob=0.95 or 0.99, more "
            "informative priors, or sharing poorly identified parameters across groups."
        )
    if d["max_rhat"] > 1.01:
        _warn(
            f"max R-hat is {d['max_rhat']:.3f} (> 1.01): chains disagree. Run more warmup and "
            "samples (num_warmup, num_samples), check for "
            "multimodality, or use more informative priors."
        )
    if d["min_ess"] < 400:
        _warn(
            f"min effective sample size is {d['min_ess']:.0f} (< 400): tail quantiles are "
            "unreliable. Draw more samples or chains (num_samples, num_chains)."
        )


def _warn(message: str) -> None:
    warn(message, RuntimeWarning)
