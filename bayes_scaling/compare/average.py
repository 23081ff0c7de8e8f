"""Combining the compared laws: stacking weights and the model-averaged prediction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from bayes_scaling import draws as _draws
from bayes_scaling import inference as _inference
from bayes_scaling.compare.frames import _covariate_frame
from bayes_scaling.laws import LawSpec

if TYPE_CHECKING:
    from bayes_scaling.compare.laws import LawComparison


def stacking_weights(lpd: np.ndarray) -> np.ndarray:
    """Stacking weights from a pointwise log predictive density matrix.

    Maximises ``sum_i log sum_k w_k exp(lpd[i, k])`` over the simplex (Yao et al. 2018), with
    ``w = softmax(z)`` and L-BFGS. :func:`compare_laws` applies it to the held-out
    leave-future-out densities (``lfo_weight``); PSIS-LOO weights come from ArviZ.

    Parameters
    ----------
    lpd : ndarray of shape (points, models)

    Returns
    -------
    ndarray of shape (models,)
        Non-negative weights summing to 1.

    Examples
    --------
    >>> import numpy as np
    >>> stacking_weights(np.array([[0.0, -5.0], [0.0, -5.0]])).round(3).tolist()
    [1.0, 0.0]
    """
    from scipy.optimize import minimize

    lpd = np.asarray(lpd, dtype=float)
    if lpd.ndim != 2 or lpd.shape[1] < 1:
        raise ValueError(f"lpd must be a (points, models) matrix; got shape {lpd.shape}")
    k = lpd.shape[1]
    if k == 1:
        return np.ones(1)
    shifted = lpd - lpd.max(axis=1, keepdims=True)

    def objective(z):
        logw = z - logsumexp(z)
        mix = logsumexp(shifted + logw[None, :], axis=1)
        w = np.exp(logw)
        # (n, k) posterior model responsibilities
        resp = np.exp(shifted + logw[None, :] - mix[:, None])
        grad = -(resp.sum(axis=0) - lpd.shape[0] * w)
        return -mix.sum(), grad

    res = minimize(objective, np.zeros(k), jac=True, method="L-BFGS-B")
    w = np.exp(res.x - logsumexp(res.x))
    w[w < 1e-9] = 0.0
    return w / w.sum()


def _fit_laws(comparison: LawComparison) -> dict[str, LawSpec]:
    return {name: _inference.fit_spec(f)["law"] for name, f in comparison.fits.items()}


def _mixture_weights(comparison: LawComparison, names: Sequence[str], weights: str) -> np.ndarray:
    column = {"loo": "weight", "lfo": "lfo_weight"}.get(weights)
    if column is None:
        raise ValueError(f"weights must be 'loo' or 'lfo'; got {weights!r}")
    if column not in comparison.table.columns:
        raise ValueError(
            "weights='lfo' needs a comparison run with leave-future-out (holdout not None)"
        )
    w = np.clip(comparison.table[column].reindex(list(names)).to_numpy(dtype=float), 0, None)
    return w / w.sum()


def _observation_noise(
    rng: np.random.Generator, draws: Mapping[str, np.ndarray], likelihood: str, shape
) -> np.ndarray:
    """A new run's residual on the log scale, ``(S, P)``.

    The normal case is :func:`bayes_scaling.draws.noise`. The Student-t case keeps this
    function's own order of draws (a normal block, unused, then the t block), which differs
    from ``draws.noise`` (t block first): seeded model averages stay as they were.
    """
    if likelihood != "student_t":
        return _draws.noise(rng, draws["sigma"], None, shape)
    rng.standard_normal(shape)  # consumed, not used: keeps the seeded stream unchanged
    return draws["sigma"][:, None] * rng.standard_t(draws["nu"][:, None], size=shape)


def _law_mixture_part(
    comparison: LawComparison,
    name: str,
    spec: LawSpec,
    df: pd.DataFrame,
    count: int,
    rng: np.random.Generator,
    options: Mapping[str, Any],
) -> np.ndarray:
    """``count`` draws of the target from one law's fit at the rows of ``df``."""
    fit = comparison.fits[name]
    info = _inference.fit_spec(fit)
    group = options["group"]
    if info["groups"] and group is None:
        raise ValueError(f"the fits are hierarchical; pass group= one of {info['groups']} or 'new'")
    draws = _inference.posterior_draws(fit, group if info["groups"] else None, seed=options["seed"])
    total = draws["sigma"].shape[0]
    idx = rng.choice(total, size=count, replace=count > total)
    sub = {k: v[idx] for k, v in draws.items()}
    mu = _draws.log_law_at(spec, sub, {c: df[c].to_numpy(dtype=float) for c in spec.covariates})
    if options["observation_noise"]:
        mu = mu + _observation_noise(rng, sub, info["likelihood"], mu.shape)
    return np.exp(mu)


def model_average_draws(
    comparison: LawComparison,
    covariates: Mapping[str, Any] | pd.DataFrame,
    *,
    group: str | None = None,
    weights: str = "loo",
    num_draws: int = 4000,
    observation_noise: bool = False,
    flops_per_token: float = 6.0,
    seed: int = 0,
) -> np.ndarray:
    """Draws of the target from the weighted mixture of the laws' posterior predictions.

    Each draw comes from law ``k`` with probability equal to its weight (stacking by
    default), so the mixture keeps the disagreement between laws.

    Parameters
    ----------
    comparison : LawComparison
    covariates : mapping or DataFrame
        Points to predict at, natural units; ``C`` is filled as ``flops_per_token N D`` for
        laws over compute when only ``N`` and ``D`` are given.
    group : str, optional
        Group label for hierarchical fits (``"new"`` for an unseen group).
    weights : {"loo", "lfo"}, default "loo"
        The table's ``weight`` (PSIS-LOO stacking) or ``lfo_weight`` (stacking on the held-out
        leave-future-out densities: weights for extrapolation). The fits on all rows are mixed
        either way.
    num_draws : int, default 4000
    observation_noise : bool, default False
        Add the likelihood's noise (a new run's loss) rather than the law's mean curve.
    flops_per_token : float, default 6.0
    seed : int, default 0

    Returns
    -------
    ndarray
        ``(num_draws, points)`` draws of the target (loss) in natural units.
    """
    specs = _fit_laws(comparison)
    df = _covariate_frame(covariates, list(specs.values()), flops_per_token)
    w = _mixture_weights(comparison, list(specs), weights)
    rng = _draws.numpy_rng(seed=seed)
    counts = rng.multinomial(int(num_draws), w)
    options = {"group": group, "seed": seed, "observation_noise": observation_noise}
    parts = [
        _law_mixture_part(comparison, name, spec, df, int(count), rng, options)
        for (name, spec), count in zip(specs.items(), counts, strict=True)
        if count
    ]
    out = np.concatenate(parts, axis=0)
    return out[rng.permutation(out.shape[0])]


def model_average(
    comparison: LawComparison,
    covariates: Mapping[str, Any] | pd.DataFrame,
    *,
    group: str | None = None,
    weights: str = "loo",
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
    num_draws: int = 4000,
    observation_noise: bool = False,
    flops_per_token: float = 6.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Model-averaged prediction: mean and quantiles of the stacking mixture at each point.

    Also gives each law's own posterior median (``median_<law>``) for reference. Arguments as
    in :func:`model_average_draws`.

    Examples
    --------
    >>> model_average(result, {"N": [70e9], "D": [1.4e12]})  # doctest: +SKIP
    """
    draws = model_average_draws(
        comparison,
        covariates,
        group=group,
        weights=weights,
        num_draws=num_draws,
        observation_noise=observation_noise,
        flops_per_token=flops_per_token,
        seed=seed,
    )
    specs = _fit_laws(comparison)
    df = _covariate_frame(covariates, list(specs.values()), flops_per_token)
    out = df.copy()
    out["mean"] = draws.mean(axis=0)
    for q, v in zip(quantiles, np.quantile(draws, quantiles, axis=0), strict=False):
        out[f"q{q * 100:g}"] = v
    for name, spec in specs.items():
        fit = comparison.fits[name]
        g = group if _inference.fit_spec(fit)["groups"] else None
        mu = _draws.log_law_at(
            spec,
            _inference.posterior_draws(fit, g, seed=seed),
            {c: df[c].to_numpy(dtype=float) for c in spec.covariates},
        )
        out[f"median_{name}"] = np.exp(np.median(mu, axis=0))
    return out
