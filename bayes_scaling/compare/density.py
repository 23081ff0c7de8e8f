"""Predictive densities and errors of a fit on new rows (the leave-future-out scores)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from bayes_scaling import data as _data
from bayes_scaling import draws as _draws
from bayes_scaling import inference as _inference
from bayes_scaling import labels as _labels
from bayes_scaling.laws import LawSpec


def _draws_for(fit, group: Any, labels: Sequence[str]) -> dict[str, np.ndarray]:
    if group is not None and labels:
        # a group the fit has not seen: drawn from the population
        group = _labels.match_group(group, labels) or "new"
    return _inference.posterior_draws(fit, group)


def _per_group(
    fit, spec: LawSpec, labels: Sequence[str], frame: pd.DataFrame
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
    """For each group in ``frame``: its row positions, its draws and the law there ``(S, n_g)``."""
    keys = (
        _labels.group_strings(frame["group"]) if labels else np.full(len(frame), None, dtype=object)
    )
    for g in pd.unique(keys):
        rows = np.flatnonzero(keys == g)
        draws = _draws_for(fit, g, labels)
        covariates = {c: frame[c].to_numpy(dtype=float)[rows] for c in spec.covariates}
        yield rows, draws, _draws.log_law_at(spec, draws, covariates)


def log_predictive_density(
    fit, frame: pd.DataFrame, *, pointwise_draws: bool = False
) -> np.ndarray:
    """Pointwise log predictive density of new rows under a fit.

    ``lpd_i = log( mean_s p(log y_i | theta_s) )`` with the fit's likelihood (Student-t or
    normal on the log target), averaging over the posterior draws ``theta_s``.

    Parameters
    ----------
    fit : InferenceData
        A fit from :func:`bayes_scaling.inference.fit`.
    frame : DataFrame
        Canonical columns: the law's covariates, its target and, for grouped fits, ``group``.
        Groups the fit has not seen are scored with parameters drawn from the population.
    pointwise_draws : bool, default False
        Return the ``(S, n)`` matrix of ``log p(log y_i | theta_s)`` instead.

    Returns
    -------
    ndarray
        ``(n,)`` log predictive densities (or ``(S, n)`` when ``pointwise_draws``).

    Raises
    ------
    DataError
        When the frame lacks a column the law needs.
    """
    info = _inference.fit_spec(fit)
    spec: LawSpec = info["law"]
    labels = info["groups"]
    needed = list(spec.covariates) + [spec.target] + (["group"] if labels else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise _data.DataError(
            f"rows to score lack columns {missing} needed by the fit of law {spec.name!r}"
        )
    y = np.log(frame[spec.target].to_numpy(dtype=float))
    out = None
    for rows, draws, mu in _per_group(fit, spec, labels, frame):
        nu = draws["nu"] if info["likelihood"] == "student_t" else None
        logp = _draws.noise_log_density(y[rows][None, :] - mu, draws["sigma"], nu)
        if out is None:
            out = np.empty((logp.shape[0], len(frame)))
        out[:, rows] = logp
    assert out is not None
    if pointwise_draws:
        return out
    return logsumexp(out, axis=0) - math.log(out.shape[0])


def _rmse(idata, test: pd.DataFrame) -> float:
    """Root mean squared error of the posterior-mean log prediction on ``test``."""
    info = _inference.fit_spec(idata)
    spec = info["law"]
    y = np.log(test[spec.target].to_numpy(dtype=float))
    pred = np.empty(len(test))
    for rows, _, mu in _per_group(idata, spec, info["groups"], test):
        pred[rows] = mu.mean(axis=0)
    return float(np.sqrt(np.mean((pred - y) ** 2)))
