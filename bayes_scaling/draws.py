"""The array core: a fit's posterior as arrays, the law over draws, noise and predictive density.

Everything that turns posterior draws into numbers goes through these functions, on plain
arrays: ``predict``, ``decide``, ``compare``, ``backtest`` and the plots wrap them with labels.
Shapes follow one convention: ``S`` draws, ``P`` points.

- :func:`law_over_draws`: the law's log target for every draw at every point, ``(S, P)``, in
  one jitted ``vmap`` per law function.
- :func:`noise` and :func:`noise_log_density`: the residual noise of the log target (normal or
  Student-t with per-draw ``sigma``, ``nu``), drawn or evaluated.
- :func:`log_predictive_density`: ``log mean_s p(y | draw s)`` per point.
- :func:`finite_draws`, :func:`fit_frame`: a fit's parameter draws (refusing non-finite ones)
  and the data it was made on.
- :func:`numpy_rng`: the one way a JAX key (or a seed) becomes a NumPy generator.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "finite_draws",
    "fit_frame",
    "law_over_draws",
    "log_law_at",
    "log_predictive_density",
    "noise",
    "noise_log_density",
    "numpy_rng",
]


# --------------------------------------------------------------------------- the law over draws


@functools.lru_cache(maxsize=64)
def _vmapped(fn):
    """``jit(vmap(fn, in_axes=(0, None)))``, one per law function (bounded cache)."""
    import jax

    return jax.jit(jax.vmap(fn, in_axes=(0, None)))


def law_over_draws(spec, params: Mapping[str, Any], log_x: Mapping[str, Any]) -> np.ndarray:
    """Log target of every draw at every point.

    Parameters
    ----------
    spec : LawSpec
        The law (its ``fn`` and ``param_names`` are used).
    params : mapping of str to array of shape (S,)
        Draws of the law's parameters (other keys are ignored).
    log_x : mapping of str to array of shape (P,)
        Log covariates.

    Returns
    -------
    numpy.ndarray
        Shape ``(S, P)``, float64 (computed in JAX's default precision).

    Examples
    --------
    >>> import numpy as np
    >>> from bayes_scaling.laws import get_law
    >>> d = {"E": np.array([1.7]), "A": np.array([400.0]), "alpha": np.array([0.3])}
    >>> law_over_draws(get_law("power_law"), d, {"C": np.log([1e20])}).shape
    (1, 1)
    """
    import jax.numpy as jnp

    p = {k: jnp.asarray(params[k]) for k in spec.param_names}
    x = {k: jnp.asarray(log_x[k]) for k in spec.covariates}
    return np.asarray(_vmapped(spec.fn)(p, x), dtype=float)


def log_law_at(spec, params: Mapping[str, Any], covariates: Mapping[str, Any]) -> np.ndarray:
    """:func:`law_over_draws` at covariates given in natural units (logs taken here)."""
    log_x = {k: np.log(np.asarray(covariates[k], dtype=float)) for k in spec.covariates}
    return law_over_draws(spec, params, log_x)


# --------------------------------------------------------------------------- noise


def noise(
    rng: np.random.Generator, sigma: Any, nu: Any | None, shape: tuple[int, int]
) -> np.ndarray:
    """Residual noise of the log target, ``sigma_s * eps_sp``, shape ``(S, P)``.

    ``eps`` is Student-t with ``nu_s`` degrees of freedom where ``nu`` is given and finite,
    standard normal elsewhere (and everywhere when ``nu`` is None).
    """
    sigma = np.asarray(sigma, dtype=float)
    if nu is None:
        return sigma[:, None] * rng.standard_normal(shape)
    nu = np.asarray(nu, dtype=float)
    finite = np.isfinite(nu)
    t = rng.standard_t(np.where(finite, nu, 1.0)[:, None], size=shape)
    return sigma[:, None] * np.where(finite[:, None], t, rng.standard_normal(shape))


def _log_density_parts(sigma: np.ndarray, nu: np.ndarray | None):
    from scipy.special import gammaln

    const_n = -np.log(sigma) - 0.5 * math.log(2 * math.pi)
    if nu is None:
        return None, const_n
    nu = np.asarray(nu, dtype=float)
    finite = np.isfinite(nu)
    nu_f = np.where(finite, nu, 1.0)
    const_t = (
        gammaln((nu_f + 1) / 2) - gammaln(nu_f / 2) - 0.5 * np.log(nu_f * math.pi) - np.log(sigma)
    )
    return (nu_f, finite), np.where(finite, const_t, const_n)


def noise_log_density(residual: Any, sigma: Any, nu: Any | None) -> np.ndarray:
    """Log density of residuals ``(S, P)`` of the log target under per-draw noise ``(S,)``.

    Student-t with ``nu_s`` where given and finite, normal otherwise.
    """
    residual = np.asarray(residual, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    parts, const = _log_density_parts(sigma, nu)
    z2 = (residual / sigma[:, None]) ** 2
    if parts is None:
        return const[:, None] - 0.5 * z2
    nu_f, finite = parts
    t = const[:, None] - 0.5 * (nu_f[:, None] + 1) * np.log1p(z2 / nu_f[:, None])
    return np.where(finite[:, None], t, const[:, None] - 0.5 * z2)


def log_predictive_density(
    observed: Any, loc: Any, scale: Any, df: Any | None = None
) -> np.ndarray:
    r"""Pointwise log predictive density from per-draw location, scale and degrees of freedom.

    :math:`\log \frac1S \sum_s p(y_i \mid \mu_{si}, \sigma_{s}, \nu_s)` with ``p`` the Student-t
    (or normal, when ``df`` is None or infinite) density, computed with a log-sum-exp.

    Parameters
    ----------
    observed : array, shape (P,)
        Held-out values on the model's scale (the log target).
    loc : array, shape (S, P)
        Per-draw location (the law's log target, plus any per-draw discrepancy draw).
    scale : array, shape (S,) or (S, P)
        Per-draw scale ``sigma``.
    df : array, shape (S,) or (S, P), optional
        Per-draw Student-t degrees of freedom ``nu``; ``None`` or ``inf`` for the normal.

    Returns
    -------
    numpy.ndarray, shape (P,)
        Log density of each observed value (nats, on the log-target scale: the density of the
        target itself is this minus its log).

    Examples
    --------
    >>> import numpy as np
    >>> float(log_predictive_density([0.0], np.zeros((4, 1)), np.ones(4))[0])  # doctest: +ELLIPSIS
    -0.918...
    """
    from scipy import special, stats

    observed = np.asarray(observed, dtype=float)
    loc = np.asarray(loc, dtype=float)
    if loc.ndim != 2 or loc.shape[1] != observed.shape[0]:
        raise ValueError(f"loc must have shape (draws, {observed.shape[0]}); got {loc.shape}")
    scale = np.asarray(scale, dtype=float)
    scale = scale[:, None] if scale.ndim == 1 else scale
    if df is None:
        logp = stats.norm.logpdf(observed[None, :], loc, scale)
    else:
        df = np.asarray(df, dtype=float)
        df = np.broadcast_to(df[:, None] if df.ndim == 1 else df, loc.shape)
        finite = np.isfinite(df)
        logp = np.where(
            finite,
            stats.t.logpdf(observed[None, :], np.where(finite, df, 1.0), loc, scale),
            stats.norm.logpdf(observed[None, :], loc, scale),
        )
    return special.logsumexp(logp, axis=0) - math.log(loc.shape[0])


# --------------------------------------------------------------------------- a fit as arrays


def finite_draws(fit, group: str | None = None, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Flat posterior draws ``{name: (S,)}`` of a fit, refusing non-finite values.

    A sampler that failed (or a damaged file) leaves NaN or infinite draws, which would turn
    every band into NaN; ``nu = inf`` (a normal likelihood) is the one non-finite value allowed.

    Raises
    ------
    ValueError
        Naming the first parameter with non-finite draws, how many and where.
    """
    from bayes_scaling.inference import posterior_draws

    draws = posterior_draws(fit, group, seed=seed)
    for name, values in draws.items():
        bad = np.isnan(values) | (np.isinf(values) & ((name != "nu") | (values < 0)))
        if bad.any():
            where = "" if group is None else f" (group {group!r})"
            raise ValueError(
                f"the fit has {int(bad.sum())} non-finite posterior draws of {name!r}{where}, of "
                f"{values.size} (first at flat draw {int(np.argmax(bad))}): the sampler failed or "
                "the file is damaged; check its diagnostics and refit (more warmup, tighter "
                "priors)"
            )
    return draws


def fit_frame(fit):
    """The canonical data frame a fit was made from (covariates, target, ``group`` when grouped)."""
    import pandas as pd

    from bayes_scaling.inference import fit_spec

    info = fit_spec(fit)
    law = info["law"]
    const = fit.constant_data
    frame = pd.DataFrame({c: np.asarray(const[c].values, dtype=float) for c in law.covariates})
    frame[law.target] = np.exp(
        np.asarray(fit.observed_data[f"log_{law.target}"].values, dtype=float)
    )
    if info["groups"]:
        labels = np.asarray(info["groups"], dtype=object)
        frame["group"] = labels[np.asarray(const["group_index"].values, dtype=int)]
    return frame


# --------------------------------------------------------------------------- random numbers


def numpy_rng(rng_key: Any = None, seed: int = 0) -> np.random.Generator:
    """A NumPy generator from a JAX key (raw ``uint32`` words or a typed key), else from ``seed``.

    The library's one convention: functions take ``seed`` (an int) and optionally ``rng_key``
    (a JAX key, which wins); NumPy-side randomness is drawn from this generator.
    """
    if rng_key is None:
        return np.random.default_rng(seed)
    import jax
    import jax.numpy as jnp

    key = jnp.asarray(rng_key) if not isinstance(rng_key, jax.Array) else rng_key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng([int(v) for v in np.asarray(key, dtype=np.uint32).ravel()])
