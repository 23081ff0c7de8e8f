"""Scores on arrays: coverage, width, CRPS, log predictive density, relative error.

NumPy only, no labels: predictive draws have shape ``(S, P)`` (``S`` draws, ``P`` held-out
points) and observed values shape ``(P,)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bayes_scaling import draws as _draws

LEVELS = (0.5, 0.8, 0.9, 0.95)


def _check_draws(draws: Any, observed: Any) -> tuple[np.ndarray, np.ndarray]:
    draws = np.asarray(draws, dtype=float)
    observed = np.asarray(observed, dtype=float)
    if draws.ndim == 1:
        draws = draws[:, None]
    if draws.ndim != 2:
        raise ValueError(f"draws must have shape (draws, points); got shape {draws.shape}")
    if observed.ndim != 1 or observed.shape[0] != draws.shape[1]:
        raise ValueError(
            f"observed must have shape ({draws.shape[1]},) to match draws of shape {draws.shape}; "
            f"got {observed.shape}"
        )
    if draws.shape[0] < 2:
        raise ValueError(f"need at least 2 predictive draws; got {draws.shape[0]}")
    return draws, observed


def _check_level(level: float) -> float:
    level = float(level)
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1); got {level}")
    return level


def central_interval(draws: Any, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends of the central ``level`` interval of each column of ``draws``."""
    level = _check_level(level)
    draws = np.asarray(draws, dtype=float)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return lo, hi


def interval_coverage(
    draws: Any, observed: Any, levels: Sequence[float] = LEVELS
) -> dict[float, float]:
    """Fraction of observed values inside the central predictive intervals.

    Parameters
    ----------
    draws : array, shape (S, P)
        Predictive draws (any monotone scale: coverage is the same on loss and log loss).
    observed : array, shape (P,)
        Held-out values on the same scale.
    levels : sequence of float, default (0.5, 0.8, 0.9, 0.95)
        Nominal levels of the central intervals (quantiles ``(1 - level) / 2`` and
        ``(1 + level) / 2``).

    Returns
    -------
    dict of float to float
        ``{level: fraction covered}``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> cov = interval_coverage(rng.normal(size=(4000, 500)), rng.normal(size=500))
    >>> abs(cov[0.9] - 0.9) < 0.05
    True
    """
    draws, observed = _check_draws(draws, observed)
    out = {}
    for level in levels:
        lo, hi = central_interval(draws, level)
        out[float(level)] = float(np.mean((observed >= lo) & (observed <= hi)))
    return out


def interval_width(draws: Any, level: float = 0.9, *, relative_to: Any | None = None) -> np.ndarray:
    """Width of the central ``level`` interval per point, optionally divided by ``relative_to``.

    Parameters
    ----------
    draws : array, shape (S, P)
    level : float, default 0.9
    relative_to : array, shape (P,), optional
        Divide each width by this (the backtest uses the observed held-out loss).

    Returns
    -------
    ndarray, shape (P,)
    """
    draws = np.asarray(draws, dtype=float)
    lo, hi = central_interval(draws, level)
    width = hi - lo
    if relative_to is not None:
        width = width / np.asarray(relative_to, dtype=float)
    return width


def crps(draws: Any, observed: Any) -> np.ndarray:
    r"""Continuous ranked probability score of a sample forecast, per point (lower is better).

    Notes
    -----
    The sample estimator :math:`\mathrm{CRPS} = \frac1S\sum_s |x_s - y| - \frac{1}{2S^2}\sum_{s,t}
    |x_s - x_t|`, with the double sum computed from the sorted draws in :math:`O(S \log S)` as
    :math:`\frac{2}{S^2}\sum_i (2i - S - 1) x_{(i)}`. It has the units of the draws (nats when the
    draws are losses).

    References
    ----------
    Gneiting and Raftery 2007, "Strictly Proper Scoring Rules, Prediction, and Estimation",
    JASA 102.

    Examples
    --------
    >>> float(crps(np.array([[0.0], [0.0]]), np.array([1.0]))[0])
    1.0
    """
    draws, observed = _check_draws(draws, observed)
    s = draws.shape[0]
    term1 = np.mean(np.abs(draws - observed[None, :]), axis=0)
    xs = np.sort(draws, axis=0)
    weights = (2 * np.arange(1, s + 1) - s - 1)[:, None]
    mean_pair_diff = 2.0 * np.sum(weights * xs, axis=0) / s**2
    return term1 - 0.5 * mean_pair_diff


def interval_score(draws: Any, observed: Any, level: float) -> np.ndarray:
    r"""Interval score of the central ``level`` interval per point (lower is better).

    Notes
    -----
    With ``l, u`` the interval's ends and :math:`\alpha = 1 - \text{level}`,
    :math:`S = (u - l) + \frac{2}{\alpha}(l - y)\,1\{y < l\} + \frac{2}{\alpha}(y - u)\,
    1\{y > u\}`: the width, plus a penalty for a miss that grows with the level. In the units
    of the draws (on the log target: about relative error).

    References
    ----------
    Gneiting and Raftery 2007, "Strictly Proper Scoring Rules, Prediction, and Estimation",
    JASA 102, section 6.2.

    Examples
    --------
    >>> float(interval_score(np.array([[0.0], [1.0]]), np.array([3.0]), 0.5)[0])
    9.5
    """
    draws, observed = _check_draws(draws, observed)
    level = _check_level(level)
    lo, hi = central_interval(draws, level)
    alpha = 1.0 - level
    below = np.maximum(lo - observed, 0.0)
    above = np.maximum(observed - hi, 0.0)
    return (hi - lo) + (2.0 / alpha) * (below + above)


def pit(draws: Any, observed: Any) -> np.ndarray:
    """Probability integral transform per point: the predictive CDF at the observed value.

    The share of draws below the observed value (ties count half). Uniform on [0, 1] for a
    calibrated forecast; piled at the ends when intervals are too narrow, in the middle when
    too wide. The run lies inside the central ``level`` interval when
    ``|pit - 0.5| <= level / 2``.

    Examples
    --------
    >>> pit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([1.5])).tolist()
    [0.5]
    """
    draws, observed = _check_draws(draws, observed)
    below = np.mean(draws < observed[None, :], axis=0)
    ties = np.mean(draws == observed[None, :], axis=0)
    return below + 0.5 * ties


def log_predictive_density(
    observed: Any,
    loc: Any,
    scale: Any,
    df: Any | None = None,
) -> np.ndarray:
    """Pointwise log predictive density, ``log mean_s p(y_i | draw s)``, shape ``(P,)``.

    Kept here under its former name; see :func:`bayes_scaling.draws.log_predictive_density` for
    the parameters (observed log targets, per-draw location, scale and degrees of freedom).
    """
    return _draws.log_predictive_density(observed, loc, scale, df)


def absolute_relative_error(prediction: Any, observed: Any) -> np.ndarray:
    """``|prediction - observed| / observed`` per point."""
    prediction = np.asarray(prediction, dtype=float)
    observed = np.asarray(observed, dtype=float)
    return np.abs(prediction - observed) / np.abs(observed)


def score_draws(
    draws: Any,
    observed: Any,
    *,
    loc: Any | None = None,
    scale: Any | None = None,
    df: Any | None = None,
    levels: Sequence[float] = LEVELS,
    width_level: float = 0.9,
    log_draws: Any | None = None,
) -> dict[str, float]:
    """All backtest scores of predictive draws of a positive target (loss, steps).

    The scores are computed from the draws' logs (intervals and medians commute with the
    logarithm), so heavy-tailed draws that overflow as target values do no harm when their logs
    are passed as ``log_draws``.

    Parameters
    ----------
    draws : array, shape (S, P) or None
        Predictive draws of the held-out target (loss, not log loss); may be None when
        ``log_draws`` is given.
    observed : array, shape (P,)
        The held-out target.
    loc, scale, df : arrays, optional
        Per-draw location (log target), scale and Student-t degrees of freedom of the predictive
        distribution of the log target; when given, ``log_pred_density`` is computed exactly
        from them (see :func:`log_predictive_density`), else it is omitted.
    levels : sequence of float, default (0.5, 0.8, 0.9, 0.95)
    width_level : float, default 0.9
        Level of the interval whose width is reported as ``mean_width_rel``.
    log_draws : array, shape (S, P), optional
        ``log(draws)``, computed without overflow.

    Returns
    -------
    dict
        ``coverage_50`` ... ``coverage_95`` (fractions), ``mean_width_rel`` (mean over points of
        the ``width_level`` interval's width divided by the observed value), ``crps`` (mean CRPS
        of the log target: about relative-error units, and finite where the target's own
        predictive has no mean, as a Student-t on the log scale implies), ``log_pred_density``
        (mean per point, log-target scale, when ``loc`` and ``scale`` are given), ``median_are``
        and ``max_are`` (absolute relative error of the predictive median).
    """
    if log_draws is None:
        draws, observed = _check_draws(draws, observed)
        with np.errstate(divide="ignore"):
            log_draws = np.log(draws)
    log_draws, observed = _check_draws(log_draws, observed)
    if np.any(observed <= 0):
        raise ValueError("observed values must be > 0 (scores are computed on the log scale)")
    log_obs = np.log(observed)
    out: dict[str, float] = {}
    for level, value in interval_coverage(log_draws, log_obs, levels).items():
        out[f"coverage_{round(level * 100)}"] = value
    lo, hi = central_interval(log_draws, width_level)
    out["mean_width_rel"] = float(np.mean((np.exp(hi) - np.exp(lo)) / observed))
    out["crps"] = float(np.mean(crps(log_draws, log_obs)))
    if loc is not None and scale is not None:
        out["log_pred_density"] = float(np.mean(log_predictive_density(log_obs, loc, scale, df)))
    are = absolute_relative_error(np.exp(np.median(log_draws, axis=0)), observed)
    out["median_are"] = float(np.median(are))
    out["max_are"] = float(np.max(are))
    return out
