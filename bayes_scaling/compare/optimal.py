"""Compute-optimal quantities per posterior draw: the loss ``L*(C)`` and the exponent ``a``.

What a law knows about its compute-optimal frontier lives on its
:class:`~bayes_scaling.laws.LawSpec` (``log_n_opt``, ``optimal_exponent``); nothing here
branches on a law's name.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from bayes_scaling import draws as _draws
from bayes_scaling.laws import LawSpec, get_law

# grid over log(D/N) for laws over N and D without a closed-form optimum: 1e-4 to 1e6 tokens
# per parameter
_RATIO_GRID = np.linspace(math.log(1e-4), math.log(1e6), 256)


def _compute_optimal_exponent(spec: LawSpec, d: Mapping[str, np.ndarray]) -> np.ndarray:
    """Draws of ``a`` in ``N* ~ C^a`` (the law's ``optimal_exponent``)."""
    _check_optimal_exponent(spec)
    assert spec.optimal_exponent is not None
    return spec.optimal_exponent(d)


def _check_optimal_exponent(spec: LawSpec) -> None:
    """Refuse laws without a compute-optimal exponent."""
    if spec.optimal_exponent is None:
        raise ValueError(
            f"the compute-optimal exponent 'a' is defined for laws over N and D with exponents "
            f"alpha/beta (chinchilla, data_constrained) or alpha_N/alpha_D (kaplan); law "
            f"{spec.name!r} has parameters {list(spec.param_names)} and covariates "
            f"{list(spec.covariates)}"
        )


def _exponent_parameters(spec: LawSpec) -> list[str]:
    """The parameters ``a`` depends on (for the per-group check of a contrast)."""
    exponents: list[str] = [
        p for p in ("alpha", "beta", "alpha_N", "alpha_D") if p in spec.param_names
    ]
    return exponents or list(spec.param_names)


def _check_optimal_loss(spec: LawSpec) -> None:
    """Refuse laws without a compute-optimal loss (not over exactly N and D, nor over C)."""
    if set(spec.covariates) not in ({"C"}, {"N", "D"}):
        raise ValueError(
            f"a compute-optimal loss needs a law over N and D or over C; law {spec.name!r} has "
            f"covariates {list(spec.covariates)} (use at={{...}} to predict at given covariates)"
        )


@functools.lru_cache(maxsize=64)
def _vmapped_per_draw(fn):
    """``jit(vmap(fn))`` over draws of both parameters and covariates (bounded cache)."""
    import jax

    return jax.jit(jax.vmap(fn, in_axes=(0, 0)))


def _law_on_frontier(spec: LawSpec, params: Mapping[str, np.ndarray], lck: np.ndarray):
    """The law at the closed-form optimum ``N*``, ``D* = C / (k N*)`` of each draw, ``(S, m)``."""
    import jax.numpy as jnp

    assert spec.log_n_opt is not None
    p = {k: np.asarray(params[k], dtype=float) for k in spec.param_names}
    log_n = np.asarray(spec.log_n_opt({k: v[:, None] for k, v in p.items()}, lck[None, :]))
    x = {"N": jnp.asarray(log_n), "D": jnp.asarray(lck[None, :] - log_n)}
    out = _vmapped_per_draw(spec.fn)({k: jnp.asarray(v) for k, v in p.items()}, x)
    return np.exp(np.asarray(out, dtype=float))


def _law_min_over_grid(spec: LawSpec, params: Mapping[str, np.ndarray], lck: np.ndarray):
    """The law minimised over a grid of ``log N`` on each line ``N D = C / k``, ``(S, m)``."""
    out = np.empty((np.asarray(params[spec.param_names[0]]).shape[0], lck.shape[0]))
    for j, lc in enumerate(lck):
        log_n = 0.5 * (lc - _RATIO_GRID)
        mu = _draws.law_over_draws(spec, params, {"N": log_n, "D": lc - log_n})
        out[:, j] = np.exp(mu.min(axis=1))
    return out


def optimal_loss(
    spec: LawSpec | str,
    draws: Mapping[str, np.ndarray],
    compute: float | Sequence[float] | np.ndarray,
    *,
    flops_per_token: float = 6.0,
) -> np.ndarray:
    """Compute-optimal loss ``L*(C) = min over N of L(N, C / (k N))`` for each draw.

    The law at its closed-form optimum ``N*`` (:attr:`LawSpec.log_n_opt`, e.g. Chinchilla and
    Kaplan); a grid search over ``log N`` (256 points spanning 1e-4 to 1e6 tokens per
    parameter) for other laws over exactly ``N`` and ``D``; the law itself for laws over ``C``.

    Parameters
    ----------
    spec : LawSpec or str
    draws : mapping of str to (S,) arrays
        Posterior draws of the law's parameters.
    compute : float or array of shape (m,)
        FLOPs.
    flops_per_token : float, default 6.0
        ``k`` in ``C = k N D``.

    Returns
    -------
    ndarray
        ``(S, m)`` losses (``(S,)`` for a scalar compute).

    Notes
    -----
    Chinchilla: with ``G = (alpha A / (beta B))^(1/(alpha+beta))``,
    ``N* = G (C/k)^(beta/(alpha+beta))`` and ``D* = (C/k) / N*``. Kaplan: ``D_c/D = r (N_c/N)^r``
    at the optimum, ``r = alpha_N/alpha_D``, so ``L* = ((1 + r)(N_c/N*)^r)^alpha_D``.

    Examples
    --------
    >>> import numpy as np
    >>> p = dict(E=1.817, A=482.0, B=2085.0, alpha=0.348, beta=0.366)
    >>> d = {k: np.array([v]) for k, v in p.items()}
    >>> float(optimal_loss("chinchilla", d, 5.9e23)[0])  # doctest: +ELLIPSIS
    1.9...
    """
    spec = get_law(spec)
    scalar = np.ndim(compute) == 0
    logc = np.log(np.atleast_1d(np.asarray(compute, dtype=float)))  # (m,)
    if np.any(~np.isfinite(logc)):
        raise ValueError(f"compute must be positive and finite; got {compute!r}")
    _check_optimal_loss(spec)
    lck = logc - math.log(flops_per_token)  # log(N D)
    if set(spec.covariates) == {"C"}:
        out = np.exp(_draws.law_over_draws(spec, draws, {"C": logc}))
    elif spec.log_n_opt is not None:
        out = _law_on_frontier(spec, draws, lck)
    else:
        out = _law_min_over_grid(spec, draws, lck)
    return out[:, 0] if scalar else out
