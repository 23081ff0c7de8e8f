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

__all__ = ["ess_bulk", "ess_tail", "rhat_and_ess_bulk", "rhat_rank", "summary_rows"]

MIN_DRAWS = 4  # split chains need at least two draws per half
_NORMAL_PPF = np.frompyfunc(NormalDist().inv_cdf, 1, 1)


def _invalid(ary: np.ndarray, min_chains: int) -> bool:
    """arviz's ``_not_valid``: NaN anywhere, too few chains or too few draws."""
    return bool(np.isnan(ary).any()) or ary.shape[0] < min_chains or ary.shape[1] < MIN_DRAWS


def _split_chains(ary: np.ndarray) -> np.ndarray:
    """Each chain's first and last halves as separate chains (a middle draw of odd ones dropped)."""
    half = ary.shape[1] // 2
    return np.vstack((ary[:, :half], ary[:, -half:]))


def _rank_average(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of the flattened values, ties given their average rank (``rankdata``)."""
    flat = values.ravel()
    order = np.argsort(flat)  # the order among ties does not change their average rank
    inverse = np.empty(flat.size, dtype=np.intp)
    inverse[order] = np.arange(flat.size)
    ordered = flat[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    dense = np.cumsum(first)[inverse]
    bounds = np.r_[np.nonzero(first)[0], first.size]
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


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
    """Normal scores of the pooled ranks (Blom's offset 3/8)."""
    rank = _rank_average(ary)
    index = np.rint(2 * rank - 2).astype(np.intp)
    return _normal_scores(rank.size)[index].reshape(ary.shape)


def _rhat(ary: np.ndarray) -> float:
    """Classic R-hat of a (chain, draw) array."""
    num_draws = ary.shape[1]
    between = num_draws * np.var(ary.mean(axis=1), ddof=1)
    within = np.mean(np.var(ary, axis=1, ddof=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sqrt((between / within + num_draws - 1) / num_draws))


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

    Both read the z-scaled split chains; this computes them once (what a fit's diagnostics
    and the summary table need for every quantity).

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
    if _invalid(ary, min_chains=1):
        return float("nan"), float("nan")
    split = _split_chains(ary)
    scaled = _z_scale(split)
    ess = _ess(scaled)
    if ary.shape[0] < 2:
        return float("nan"), ess
    folded = np.abs(split - np.median(split))
    return max(_rhat(scaled), _rhat(_z_scale(folded))), ess


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
    """Autocovariance of each chain at every lag, by FFT."""
    n = ary.shape[1]
    m = _next_fast_len(2 * n)
    centred = ary - ary.mean(axis=1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=m, axis=1)
    spectrum *= np.conjugate(spectrum)
    return np.fft.irfft(spectrum, n=m, axis=1)[:, :n] / n


def _ess(ary: np.ndarray) -> float:
    """ESS of a (chain, draw) array: Geyer's initial monotone sequence over the chains."""
    ary = np.asarray(ary, dtype=float)
    if np.isnan(ary).any():
        return float("nan")
    if np.max(ary) - np.min(ary) < np.finfo(float).resolution:
        return float(ary.size)
    num_chains, num_draws = ary.shape
    acov = _autocov(ary)
    mean_var = np.mean(acov[:, 0]) * num_draws / (num_draws - 1.0)
    var_plus = mean_var * (num_draws - 1.0) / num_draws
    if num_chains > 1:
        var_plus += np.var(ary.mean(axis=1), ddof=1)
    rho = np.zeros(num_draws)
    rho[0], even = 1.0, 1.0
    odd = rho[1] = 1.0 - (mean_var - np.mean(acov[:, 1])) / var_plus
    t = 1
    while t < num_draws - 3 and even + odd > 0.0:  # Geyer's initial positive sequence
        even = 1.0 - (mean_var - np.mean(acov[:, t + 1])) / var_plus
        odd = 1.0 - (mean_var - np.mean(acov[:, t + 2])) / var_plus
        if even + odd >= 0:
            rho[t + 1], rho[t + 2] = even, odd
        t += 2
    max_t = t - 2
    if even > 0:
        rho[max_t + 1] = even
    t = 1
    while t <= max_t - 2:  # ... made monotone
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = rho[t + 2] = (rho[t - 1] + rho[t]) / 2.0
        t += 2
    size = num_chains * num_draws
    tau = -1.0 + 2.0 * np.sum(rho[: max_t + 1]) + np.sum(rho[max_t + 1 : max_t + 2])
    tau = max(tau, 1 / np.log10(size))
    return float("nan") if np.isnan(rho).any() else float(size / tau)


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
    values = []
    for p in prob:
        quantile = np.quantile(ary, p)  # type 7, as arviz's mquantiles(alphap=1, betap=1)
        values.append(_ess(_split_chains((ary <= quantile).astype(float))))
    return min(values)


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
