"""A fit's posterior as flat draws (per group, or for a new group from the population) and as a
summary table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_scaling import convergence
from bayes_scaling import labels as _labels
from bayes_scaling.inference.files import fit_spec
from bayes_scaling.laws import LawSpec, get_law

__all__ = ["posterior_draws", "summarize"]


def posterior_draws(idata, group: str | None = None, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Flat posterior draws of the law parameters, ``sigma`` and ``nu``, each of shape ``(S,)``.

    Parameters
    ----------
    idata : InferenceData
        A fit from :func:`fit`.
    group : str, optional
        For hierarchical fits: a group label, or ``"new"`` for a group not in the data, whose
        parameters are drawn from the fitted population distribution (pooled parameters) or
        taken as they are (shared parameters).
    seed : int, default 0
        Seed for the population draws of a new group.

    Raises
    ------
    ValueError
        For a grouped fit without ``group``, an unknown label, or ``"new"`` when a parameter
        is independent across groups (it has no population distribution).
    """
    info = fit_spec(idata)
    law: LawSpec = info["law"]
    post = idata.posterior
    labels = info["groups"]
    per_group = [n for n in law.param_names if "group" in post[n].dims]
    if per_group and group is None:
        raise ValueError(
            f"this fit has per-group parameters {per_group}; pass group= one of {labels} or 'new'"
        )
    if group is not None and group != "new":
        group = _labels.match_group(group, labels) or group
    if group is not None and group != "new" and group not in labels:
        raise ValueError(
            f"unknown group {group!r}; the fit's groups are {labels} (or 'new' for an unseen group)"
        )
    out: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(seed)
    for p in law.params:
        v = post[p.name]
        if "group" not in v.dims:
            out[p.name] = v.values.reshape(-1)
        elif group != "new":
            out[p.name] = v.sel(group=group).values.reshape(-1)
        else:
            if info["pooling"].get(p.name) != "pooled":
                raise ValueError(
                    f"parameter {p.name!r} is independent across groups, so a new group has no "
                    "population distribution to draw from; refit with it pooled"
                )
            loc = post[f"{p.name}_pop_loc"].values.reshape(-1)
            sd = post[f"{p.name}_pop_sd"].values.reshape(-1)
            u = loc + sd * rng.standard_normal(loc.shape)
            if p.centre is not None:
                cov, exponent = p.centre
                ref = info["reference"][cov]
                u = u + (ref if exponent is None else out[exponent] * ref)
            out[p.name] = np.exp(u) if p.constraint == "positive" else u
    out["sigma"] = post["sigma"].values.reshape(-1)
    if "nu" in post:
        out["nu"] = post["nu"].values.reshape(-1)
    elif info["likelihood"] == "student_t":
        nu = info["priors"].noise["nu"]
        out["nu"] = np.full_like(out["sigma"], nu.kwargs.get("value", np.inf))
    return out


def summarize(idata, var_names=None, quantiles=(0.05, 0.5, 0.95)) -> pd.DataFrame:
    """Posterior table: mean, sd, quantiles, R-hat and bulk/tail ESS.

    One row per parameter, or per parameter and group (``alpha[rw]``) for per-group ones.
    R-hat is the rank-normalised split R-hat and the ESS are arviz's bulk and tail estimators,
    computed by :mod:`bayes_scaling.convergence` (the same numbers ``bayes-scaling summary``
    prints without loading arviz).
    """
    post = idata.posterior
    if var_names is None:
        law = get_law(post.attrs["law"])
        var_names = [n for n in [*law.param_names, "sigma", "nu"] if n in post]
    unknown = [n for n in var_names if n not in post]
    if unknown:
        raise KeyError(f"unknown variables {unknown}; the posterior has {list(post.data_vars)}")
    variables: dict[str, tuple[np.ndarray, list[str] | None]] = {}
    for name in var_names:
        v = post[name]
        if "group" in v.dims:
            v = v.transpose("chain", "draw", "group")
            variables[name] = (v.values, [str(g) for g in v["group"].values])
        else:
            variables[name] = (v.transpose("chain", "draw").values, None)
    rows = convergence.summary_rows(variables, quantiles)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "parameter"
    return table
