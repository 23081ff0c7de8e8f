"""Convergence diagnostics of a fit: the rank-normalised split R-hat and bulk ESS (arviz's
estimators, computed by :mod:`bayes_scaling.convergence`, as ``summarize`` and the report show
them), the divergence count, and the warnings a user acts on."""

from __future__ import annotations

import numpy as np
import xarray as xr

from bayes_scaling import convergence
from bayes_scaling._warnings import warn

__all__ = ["converged", "diagnostics", "divergence_advice", "warn_diagnostics"]

MIN_DRAWS_PER_CHAIN = 4  # split R-hat and ESS need at least two draws per half-chain
MAX_RHAT = 1.01  # above: the chains disagree (warned)
MIN_ESS = 400  # below: tail quantiles are unreliable (warned)


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
    names = list(names or posterior.data_vars)
    divergences = int(sample_stats["diverging"].sum())
    if posterior.sizes["draw"] < MIN_DRAWS_PER_CHAIN or not names:
        return {"max_rhat": float("nan"), "min_ess": float("nan"), "divergences": divergences}
    quantities = []
    for name in names:
        v = posterior[name].variable
        if v.dims[:2] != ("chain", "draw"):
            v = v.transpose("chain", "draw", ...)
        draws = v.values
        quantities.append(draws.reshape(*draws.shape[:2], -1).transpose(2, 0, 1))
    rhat, ess = convergence.rhat_and_ess_bulk_many(np.concatenate(quantities))
    return {
        "max_rhat": _extreme(np.max, rhat),
        "min_ess": _extreme(np.min, ess),
        "divergences": divergences,
    }


def converged(d: dict[str, float]) -> bool:
    """No divergences, R-hat <= ``MAX_RHAT`` and bulk ESS >= ``MIN_ESS``: what the warnings
    check. Draws too few to tell (NaN) count as converged.

    Examples
    --------
    >>> converged({"max_rhat": 1.002, "min_ess": 1500.0, "divergences": 0})
    True
    >>> converged({"max_rhat": 1.002, "min_ess": 350.0, "divergences": 0})
    False
    """
    return not (d["divergences"] or d["max_rhat"] > MAX_RHAT or d["min_ess"] < MIN_ESS)


def warn_diagnostics(
    posterior: xr.Dataset,
    stats: xr.Dataset,
    spec=None,
    *,
    found: dict | None = None,
    subject: str = "",
) -> None:
    """Warnings, each with what to try, for divergences, R-hat > 1.01 and bulk ESS < 400.

    ``spec`` (the model spec) is accepted for callers that pass it; the checks do not need it.
    ``found``: the :func:`diagnostics` of this posterior where the caller has them already.
    ``subject`` names the fit in each warning, after its figure (``fit_many``: which data set),
    so that the messages still start as filters expect them (``"max R-hat"``, ...).
    The NUTS target the fit ran at (the posterior's ``target_accept_prob`` attribute, where
    recorded) makes the divergence advice name a higher one, or say there is none.
    """
    d = diagnostics(posterior, stats) if found is None else found
    where = f" for {subject}" if subject else ""

    if np.isnan(d["min_ess"]):
        warn(
            f"{posterior.sizes['draw']} draws per chain{where} are too few to estimate R-hat "
            "or the effective sample size (at least 4 needed): convergence is unchecked. Draw "
            "more samples (num_samples).",
            RuntimeWarning,
        )
    if d["divergences"]:
        target = posterior.attrs.get("target_accept_prob")
        advice = divergence_advice(target, posterior.sizes.get("group", 0))
        warn(
            f"{d['divergences']} divergent transitions{where}: the posterior has regions the "
            f"sampler cannot explore reliably. {advice}",
            RuntimeWarning,
        )
    if d["max_rhat"] > MAX_RHAT:
        warn(
            f"max R-hat is {d['max_rhat']:.3f} (> {MAX_RHAT:g}){where}: chains disagree. Run "
            "more warmup and samples (num_warmup, num_samples), check for "
            "multimodality, or use more informative priors."
            + _pooling_advice(posterior)
            + _sampler_advice(posterior)
            + _pilot_advice(posterior),
            RuntimeWarning,
        )
    if d["min_ess"] < MIN_ESS:
        warn(
            f"min effective sample size is {d['min_ess']:.0f} (< {MIN_ESS}){where}: tail "
            "quantiles are unreliable. Draw more samples or chains (num_samples, num_chains)."
            + _pooling_advice(posterior)
            + _sampler_advice(posterior)
            + _pilot_advice(posterior),
            RuntimeWarning,
        )


def _sampler_advice(posterior: xr.Dataset) -> str:
    """For a fit drawn by static HMC, that NUTS is the other sampler to try, or, where
    ``fit_many`` tried it on this set already (attribute ``nuts_refit``), how that went."""
    length = posterior.attrs.get("trajectory_length")
    if length is None:
        return ""
    if posterior.attrs.get("nuts_refit"):
        return (
            f" This fit ran static HMC with a fixed mean trajectory length ({length:g}); "
            f"{posterior.attrs['nuts_refit']}."
        )
    return (
        f" This fit ran static HMC with a fixed mean trajectory length ({length:g}); NUTS "
        "(trajectory_length=None) adapts each trajectory and may mix better here."
    )


def _pilot_advice(posterior: xr.Dataset) -> str:
    """For a hierarchical NUTS fit whose coordinates were not re-whitened, that a pilot run may
    help (``pilot`` 0 or absent: ``"auto"`` went on without, or none was asked for)."""
    if not posterior.sizes.get("group", 0) or posterior.attrs.get("pilot"):
        return ""
    if posterior.attrs.get("method", "nuts") != "nuts":
        return ""
    return (
        " Where each group has strong data of its own, the population locations are tied to "
        "the groups' offsets and the sampler crawls: re-whitening the coordinates by a pilot "
        "run's draws (pilot=True) converged ten simulated groups where the plain run did not."
    )


def divergence_advice(target_accept_prob: float | None, num_groups: int = 0) -> str:
    """What to try after divergent transitions, given the target acceptance the fit used.

    Examples
    --------
    >>> divergence_advice(0.9)
    'Try target_accept_prob=0.95 or 0.99 (this fit used 0.9), or more informative priors.'
    >>> divergence_advice(0.95, num_groups=3)  # doctest: +NORMALIZE_WHITESPACE
    'Try target_accept_prob=0.99 (this fit used 0.95), more informative priors, or sharing
    poorly identified parameters across groups.'
    >>> divergence_advice(0.99)
    'This fit already used target_accept_prob=0.99; try more informative priors.'
    """
    others = ["more informative priors"]
    if num_groups:
        others.append("sharing poorly identified parameters across groups")
    if target_accept_prob is not None and target_accept_prob >= 0.99:
        used = f"already used target_accept_prob={target_accept_prob:g}"
        return f"This fit {used}; try {_either(others)}."
    higher = "0.95 or 0.99" if target_accept_prob is None or target_accept_prob < 0.95 else "0.99"
    first = f"target_accept_prob={higher}"
    if target_accept_prob is not None:
        first += f" (this fit used {target_accept_prob:g})"
    return f"Try {_either([first, *others])}."


def _either(options: list[str]) -> str:
    """``a``, ``a or b`` (``a, or b`` where ``a`` has an "or" of its own), ``a, b, or c``."""
    if len(options) <= 2:
        return (", or " if " or " in options[0] else " or ").join(options)
    return ", ".join(options[:-1]) + ", or " + options[-1]


def worst_site(posterior: xr.Dataset) -> tuple[str, float, float]:
    """The variable with the highest R-hat (the lowest bulk ESS for one chain): name, R-hat,
    ESS."""
    rows = []
    for name in posterior.data_vars:
        d = diagnostics(posterior, _NO_STATS, [name])
        rows.append((str(name), d["max_rhat"], d["min_ess"]))
    rows = [r for r in rows if np.isfinite(r[2])]
    if not rows:
        return "", float("nan"), float("nan")
    multi = posterior.sizes["chain"] > 1
    return max(rows, key=lambda r: (r[1] if multi else 0.0, -r[2]))


_POP_SUFFIXES = ("_pop_sd", "_pop_loc")
_NO_STATS = xr.Dataset({"diverging": xr.DataArray(np.zeros(1, dtype=bool))})


def _pooling_advice(posterior: xr.Dataset) -> str:
    """Where a pooled parameter mixes worst in a grouped fit, the pooling that removes it."""
    groups = posterior.sizes.get("group", 0)
    if not groups:
        return ""
    name, rhat, ess = worst_site(posterior)
    param = next((name[: -len(s)] for s in _POP_SUFFIXES if name.endswith(s)), None)
    if param is None:
        return ""
    return (
        f" The worst-mixing site is {name!r} (R-hat {rhat:.3f}, bulk ESS {ess:.0f}), the "
        f"population of {param!r} over {groups} groups, which they pin down poorly; if "
        f"{param!r} need not differ between groups, share it (pooling={{'{param}': 'shared'}})."
    )
