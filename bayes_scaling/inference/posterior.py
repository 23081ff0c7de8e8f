"""A fit's posterior as flat draws (per group, or for a new group from the population) and as a
summary table."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
    """Posterior table: mean, sd, quantiles, R-hat and bulk/tail ESS (ArviZ's estimators).

    One row per parameter, or per parameter and group (``alpha[rw]``) for per-group ones.
    """
    import arviz as az

    post = idata.posterior
    if var_names is None:
        law = get_law(post.attrs["law"])
        var_names = [n for n in [*law.param_names, "sigma", "nu"] if n in post]
    unknown = [n for n in var_names if n not in post]
    if unknown:
        raise KeyError(f"unknown variables {unknown}; the posterior has {list(post.data_vars)}")
    ds = post[var_names]
    rhat = az.rhat(ds) if post.sizes["chain"] > 1 else None
    ess_bulk = az.ess(ds, method="bulk")
    ess_tail = az.ess(ds, method="tail")
    rows = []
    for name in var_names:
        v = ds[name]
        labels = [None] if "group" not in v.dims else list(v["group"].values)
        for label in labels:
            sel = v if label is None else v.sel(group=label)
            values = sel.values.reshape(-1)
            row = {
                "parameter": name if label is None else f"{name}[{label}]",
                "mean": float(values.mean()),
                "sd": float(values.std(ddof=1)),
            }
            for q, qv in zip(quantiles, np.quantile(values, quantiles), strict=True):
                row[f"q{round(q * 100):02d}"] = float(qv)
            row["r_hat"] = float(_pick(rhat, name, label)) if rhat is not None else float("nan")
            row["ess_bulk"] = float(_pick(ess_bulk, name, label))
            row["ess_tail"] = float(_pick(ess_tail, name, label))
            rows.append(row)
    return pd.DataFrame(rows).set_index("parameter")


def _pick(ds, name: str, label):
    return ds[name] if label is None else ds[name].sel(group=label)
