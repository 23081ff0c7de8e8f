"""Convergence diagnostics and the posterior summary table, in numpy alone.

The estimators are arviz's (0.23) definitions, written out so that commands which only read a fit
(``bayes-scaling summary``) start without importing arviz, SciPy or JAX:

* rank-normalised split R-hat (Vehtari et al. 2021): the larger of the split R-hat of the
  z-scaled draws and of the z-scaled folded draws (``arviz.rhat(method="rank")``);
* bulk ESS: the ESS of the z-scaled split chains (``arviz.ess(method="bulk")``);
* tail ESS: the smaller ESS of the indicators ``draw <= q05`` and ``draw <= q95`` over the split
  chains (``arviz.ess(method="tail")``).

This module is the one place the package computes them: the summary table, the warnings after a
fit and the report all read these functions. ``tests/test_convergence.py`` checks them against
arviz to 1e-10 on random chains, so a change in either shows up there.

References
----------
Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. and Bürkner, P.-C. (2021). Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of MCMC. Bayesian Analysis
16(2), 667-718.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from statistics import NormalDist

import numpy as np

__all__ = [
    "ess_bulk",
    "ess_tail",
    "rhat_and_ess_bulk",
    "rhat_and_ess_bulk_many",
    "rhat_rank",
    "summary_rows",
]

MIN_DRAWS = 4  # split chains need at least two draws per half
_NORMAL_PPF = np.frompyfunc(NormalDist().inv_cdf, 1, 1)


def _invalid(ary: np.ndarray, min_chains: int) -> bool:
    """arviz's ``_not_valid``: NaN anywhere, too few chains or too few draws."""
    return bool(np.isnan(ary).any()) or ary.shape[-2] < min_chains or ary.shape[-1] < MIN_DRAWS


def _split_chains(ary: np.ndarray) -> np.ndarray:
    """Each chain's first and last halves as separate chains (a middle draw of odd ones dropped);
    ``ary`` is ``(..., chain, draw)``."""
    half = ary.shape[-1] // 2
    return np.concatenate((ary[..., :half], ary[..., -half:]), axis=-2)


def _rank_average(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n within each row of a ``(series, n)`` array, ties given their average rank
    (``rankdata`` per row)."""
    rows, n = values.shape
    order = np.argsort(values, axis=1)  # the order among ties does not change their average rank
    ordered = np.take_along_axis(values, order, axis=1)
    position = np.broadcast_to(np.arange(n), (rows, n))
    differs = ordered[:, 1:] != ordered[:, :-1]
    if differs.all():  # no ties (continuous draws): the ranks are the positions
        average = position + 1.0
    else:
        opens = np.concatenate((np.ones((rows, 1), bool), differs), axis=1)  # a run of ties starts
        closes = np.concatenate((differs, np.ones((rows, 1), bool)), axis=1)  # ... and ends
        first = np.maximum.accumulate(np.where(opens, position, 0), axis=1)
        last = np.minimum.accumulate(np.where(closes, position, n)[:, ::-1], axis=1)[:, ::-1]
        average = 0.5 * (first + last) + 1
    ranks = np.empty((rows, n))
    np.put_along_axis(ranks, order, average, axis=1)
    return ranks


@lru_cache(maxsize=8)
def _normal_scores(n: int) -> np.ndarray:
    """The normal scores of the ranks 1, 1.5, 2, ..., n of ``n`` values (averaged ranks of ties
    are multiples of one half): one table per draw count, shared by every quantity."""
    rank = 1 + 0.5 * np.arange(2 * n - 1)
    prob = (rank - 3 / 8) / (n - 2 * (3 / 8) + 1)
    scores = np.asarray(_NORMAL_PPF(prob), dtype=float)
    scores.flags.writeable = False
    return scores


def _z_scale(ary: np.ndarray) -> np.ndarray:
    """Normal scores of each series' pooled ranks (Blom's offset 3/8); ``(series, chain, draw)``."""
    rank = _rank_average(ary.reshape(ary.shape[0], -1))
    index = np.rint(2 * rank - 2).astype(np.intp)
    return _normal_scores(rank.shape[1])[index].reshape(ary.shape)


def _rhat(ary: np.ndarray) -> np.ndarray:
    """Classic R-hat of each series of a ``(series, chain, draw)`` array."""
    num_draws = ary.shape[-1]
    between = num_draws * np.var(ary.mean(axis=-1), axis=-1, ddof=1)
    within = np.mean(np.var(ary, axis=-1, ddof=1), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + num_draws - 1) / num_draws)


def rhat_rank(ary) -> float:
    """Rank-normalised split R-hat of one quantity's draws.

    Parameters
    ----------
    ary : array_like, shape (chain, draw)
        Posterior draws of one scalar quantity.

    Returns
    -------
    float
        ``max(R-hat of z-scaled split chains, R-hat of z-scaled folded split chains)``; NaN with
        fewer than 2 chains or 4 draws, or when a draw is NaN.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((4, 500))
    >>> bool(abs(rhat_rank(x) - 1) < 0.01)
    True
    """
    return rhat_and_ess_bulk(ary)[0]


def rhat_and_ess_bulk(ary) -> tuple[float, float]:
    """:func:`rhat_rank` and :func:`ess_bulk` of one quantity's draws, computed together.

    Both read the z-scaled split chains; this computes them once (the summary table needs
    both for every quantity). :func:`rhat_and_ess_bulk_many` does the same for many
    quantities at once.

    Parameters
    ----------
    ary : array_like, shape (chain, draw)
        Posterior draws of one scalar quantity.

    Returns
    -------
    tuple of float
        ``(rhat_rank(ary), ess_bulk(ary))``, each NaN where that function gives NaN.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((4, 500))
    >>> rhat_and_ess_bulk(x) == (rhat_rank(x), ess_bulk(x))
    True
    """
    ary = np.atleast_2d(np.asarray(ary, dtype=float))
    rhat, ess = rhat_and_ess_bulk_many(ary[None])
    return float(rhat[0]), float(ess[0])


def rhat_and_ess_bulk_many(draws) -> tuple[np.ndarray, np.ndarray]:
    """Rank-normalised split R-hat and bulk ESS of many quantities in one vectorised pass.

    What a fit's convergence check needs for every parameter: each quantity's numbers equal
    :func:`rhat_rank` and :func:`ess_bulk` of its own draws (to rounding).

    Parameters
    ----------
    draws : array_like, shape (quantity, chain, draw)
        Posterior draws of each scalar quantity, on one draw grid.

    Returns
    -------
    rhat, ess : ndarray, shape (quantity,)
        NaN as in :func:`rhat_rank` and :func:`ess_bulk`: for too few chains or draws, and for
        a quantity with a NaN draw (the other quantities are unaffected).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((3, 4, 500))
    >>> x[2, 0, 0] = np.nan
    >>> rhat, ess = rhat_and_ess_bulk_many(x)
    >>> bool(np.all(abs(rhat[:2] - 1) < 0.01)), bool(np.isnan(ess[2]))
    (True, True)
    """
    ary = np.asarray(draws, dtype=float)
    if ary.ndim != 3:
        raise ValueError(f"draws must have shape (quantity, chain, draw); got {ary.shape}")
    rhat = np.full(ary.shape[0], np.nan)
    ess = np.full(ary.shape[0], np.nan)
    valid = ~np.isnan(ary).any(axis=(1, 2))
    if ary.shape[-1] < MIN_DRAWS or not valid.any():
        return rhat, ess
    split = _split_chains(ary[valid])
    scaled = _z_scale(split)
    ess[valid] = _ess(scaled)
    if ary.shape[1] >= 2:
        folded = np.abs(split - np.median(split, axis=(1, 2), keepdims=True))
        plain, fold = _rhat(scaled), _rhat(_z_scale(folded))
        rhat[valid] = np.where(fold > plain, fold, plain)  # Python's max(plain, fold)
    return rhat, ess


def _next_fast_len(target: int) -> int:
    """The smallest 5-smooth integer (factors 2, 3, 5 only) >= target, as ``scipy.fftpack``."""
    n = max(int(target), 1)
    while True:
        rest = n
        for factor in (2, 3, 5):
            while rest % factor == 0:
                rest //= factor
        if rest == 1:
            return n
        n += 1


def _autocov(ary: np.ndarray) -> np.ndarray:
    """Autocovariance of each chain at every lag, by FFT (along the last axis)."""
    n = ary.shape[-1]
    m = _next_fast_len(2 * n)
    centred = ary - ary.mean(axis=-1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=m, axis=-1)
    spectrum *= np.conjugate(spectrum)
    return np.fft.irfft(spectrum, n=m, axis=-1)[..., :n] / n


def _ess(ary: np.ndarray) -> np.ndarray:
    """ESS of each series of a ``(series, chain, draw)`` array without NaN: Geyer's initial
    monotone sequence of the autocorrelations over the chains.

    Geyer's sequence is read in pairs of lags ``(2k, 2k + 1)``: the pairs are summed while each
    sum stays positive (at most up to lag ``draw - 2``), each pair's sum made no larger than the
    one before, and the first lag of the pair that stopped the sum is added on its own where it
    is positive (or where that pair's sum is zero).
    """
    series, num_chains, num_draws = ary.shape
    acov = _autocov(ary).mean(axis=1)  # (series, lag): averaged over the chains
    mean_var = acov[:, 0] * num_draws / (num_draws - 1.0)
    var_plus = mean_var * (num_draws - 1.0) / num_draws
    if num_chains > 1:
        var_plus = var_plus + np.var(ary.mean(axis=-1), axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var[:, None] - acov) / var_plus[:, None]
    rho[:, 0] = 1.0
    last_pair = (num_draws - 3) // 2  # the last pair of lags the sum may reach
    pairs = max(last_pair, 0) + 1
    pair_sums = rho[:, 0 : 2 * pairs : 2] + rho[:, 1 : 2 * pairs : 2]
    stops = ~(pair_sums > 0)
    first_stop = np.where(stops.any(axis=1), stops.argmax(axis=1), pairs)
    end = np.clip(np.minimum(first_stop, last_pair), 0, None)  # pairs 0 .. end - 1 are summed
    monotone = np.minimum.accumulate(pair_sums, axis=1)
    summed = np.where(np.arange(pairs) < end[:, None], monotone, 0.0).sum(axis=1)
    rows = np.arange(series)
    tail = rho[rows, 2 * end]
    tail = np.where((pair_sums[rows, end] >= 0) | (tail > 0), tail, 0.0)
    size = num_chains * num_draws
    tau = np.maximum(-1.0 + 2.0 * summed + tail, 1 / np.log10(size))
    ess = np.where(np.isnan(rho[:, 1]), np.nan, size / tau)
    constant = np.ptp(ary.reshape(series, -1), axis=1) < np.finfo(float).resolution
    return np.where(constant, float(size), ess)


def ess_bulk(ary) -> float:
    """Bulk effective sample size: the ESS of the rank-normalised split chains.

    Parameters
    ----------
    ary : array_like, shape (chain, draw)
        Posterior draws of one scalar quantity.

    Returns
    -------
    float
        NaN with fewer than 4 draws per chain or when a draw is NaN.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((4, 500))
    >>> bool(1500 < ess_bulk(x) < 2500)
    True
    """
    return rhat_and_ess_bulk(ary)[1]


def ess_tail(ary, prob: tuple[float, float] = (0.05, 0.95)) -> float:
    """Tail effective sample size: the smaller ESS of the 5% and 95% quantile indicators.

    Parameters
    ----------
    ary : array_like, shape (chain, draw)
        Posterior draws of one scalar quantity.
    prob : tuple of float, default (0.05, 0.95)
        The two quantiles.

    Returns
    -------
    float
        NaN with fewer than 4 draws per chain or when a draw is NaN.
    """
    ary = np.atleast_2d(np.asarray(ary, dtype=float))
    if _invalid(ary, min_chains=1):
        return float("nan")
    quantiles = np.quantile(ary, prob)  # type 7, as arviz's mquantiles(alphap=1, betap=1)
    indicators = (ary[None] <= np.reshape(quantiles, (-1, 1, 1))).astype(float)
    return float(np.min(_ess(_split_chains(indicators))))


def summary_rows(
    variables: Mapping[str, tuple[np.ndarray, Sequence[str] | None]],
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
) -> dict[str, dict[str, float]]:
    """The posterior table: mean, sd, quantiles, R-hat and bulk/tail ESS of each quantity.

    Parameters
    ----------
    variables : mapping of str to (ndarray, list of str or None)
        Per name, draws of shape ``(chain, draw)`` and no labels, or of shape
        ``(chain, draw, group)`` and the group labels (one row per group, ``name[label]``).
    quantiles : sequence of float, default (0.05, 0.5, 0.95)
        Columns ``q05``, ``q50``, ``q95``.

    Returns
    -------
    dict
        Row name to ``{"mean", "sd", "qNN"..., "r_hat", "ess_bulk", "ess_tail"}``, in order.
    """
    rows: dict[str, dict[str, float]] = {}
    for name, (values, labels) in variables.items():
        values = np.asarray(values, dtype=float)
        slices = [(name, values)] if labels is None else []
        for i, label in enumerate(labels or []):
            slices.append((f"{name}[{label}]", values[:, :, i]))
        for row_name, draws in slices:
            flat = draws.reshape(-1)
            row = {"mean": float(flat.mean()), "sd": float(flat.std(ddof=1))}
            for q, qv in zip(quantiles, np.quantile(flat, quantiles), strict=True):
                row[f"q{round(q * 100):02d}"] = float(qv)
            row["r_hat"], row["ess_bulk"] = rhat_and_ess_bulk(draws)
            row["ess_tail"] = ess_tail(draws)
            rows[row_name] = row
    return rows
