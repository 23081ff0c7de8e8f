"""The numbers behind the figures: posterior draws, the law over them, new runs, intervals.

Everything here works on arrays; the figure modules only draw. The law is evaluated over the
draws by :func:`bayes_scaling.draws.law_over_draws` and the residual noise drawn by
:func:`bayes_scaling.draws.noise`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling import draws as _core
from bayes_scaling import inference as _inference
from bayes_scaling.laws import LawSpec
from bayes_scaling.plots.frame import check_group, law_of, over_n_and_d

__all__ = [
    "MAX_DRAWS",
    "compute_optimal_exponent",
    "fan_path",
    "interval",
    "log_law",
    "new_run",
    "optimal_path",
    "path_covariates",
    "posterior_sample",
    "predictive",
    "resolve_discrepancy",
]

#: Figures thin the posterior evenly to at most this many draws.
MAX_DRAWS = 1000


def posterior_sample(
    fit, group: str | None, max_draws: int = MAX_DRAWS, seed: int = 0
) -> dict[str, np.ndarray]:
    """Posterior draws of one group, thinned evenly to at most ``max_draws``.

    Parameters
    ----------
    fit : arviz.InferenceData
    group : str or None
        Group label (``"new"`` for an unseen group), None for a fit without groups.
    max_draws : int, default 1000
    seed : int, default 0
        Seed of the draws of a new group.

    Returns
    -------
    dict of str to numpy.ndarray
        ``{name: (S,)}``, finite (see :func:`bayes_scaling.draws.finite_draws`).
    """
    draws = _core.finite_draws(fit, group, seed=seed)
    size = draws["sigma"].size
    if size > max_draws:
        keep = np.linspace(0, size - 1, max_draws).round().astype(int)
        draws = {k: v[keep] for k, v in draws.items()}
    return draws


def log_law(
    spec: LawSpec, draws: Mapping[str, np.ndarray], covariates: Mapping[str, Any]
) -> np.ndarray:
    """Log target of every draw at points given in natural units: shape ``(S, P)``.

    The draws and the logs of the covariates are taken in float32 before
    :func:`bayes_scaling.draws.law_over_draws`, as the figures always did: the curves match the
    allocation kernels of :mod:`bayes_scaling.decide` (float32 too) and do not change inside a
    float64 (``jax_enable_x64``) context.
    """
    import jax.numpy as jnp

    params = {k: jnp.asarray(draws[k], dtype=jnp.float32) for k in spec.param_names}
    log_x = {
        k: jnp.log(jnp.asarray(np.asarray(covariates[k], dtype=float), dtype=jnp.float32))
        for k in spec.covariates
    }
    return _core.law_over_draws(spec, params, log_x)


def new_run(log_mu: np.ndarray, draws: Mapping[str, np.ndarray], seed: int = 0) -> np.ndarray:
    """Add the residual noise of the log target: what one more run at each point would give.

    Parameters
    ----------
    log_mu : numpy.ndarray, shape (S, P)
        The law's log target per draw (:func:`log_law`).
    draws : mapping
        Per-draw ``sigma`` and optionally ``nu``.
    seed : int, default 0

    Returns
    -------
    numpy.ndarray, shape (S, P)

    Notes
    -----
    The noise is Student-t with ``nu_s`` degrees of freedom when every ``nu`` draw is finite,
    and normal for every draw otherwise (a fit with a normal likelihood stores ``nu = inf``).
    :func:`bayes_scaling.draws.noise` would mix the two per draw; it is asked for normal noise
    (``nu=None``) whenever any ``nu`` is infinite, so the figures draw exactly the numbers they
    always drew for a given seed.
    """
    rng = _core.numpy_rng(seed=seed)
    nu = draws.get("nu")
    if nu is not None and not np.all(np.isfinite(nu)):
        nu = None
    return log_mu + _core.noise(rng, draws["sigma"], nu, log_mu.shape)


def resolve_discrepancy(fit, discrepancy: Any = "recorded"):
    """The extrapolation discrepancy to use: ``"recorded"`` is the fit's own or None.

    Other values go to :func:`bayes_scaling.predict.get_discrepancy` (``"auto"`` is the fit's
    own, with a warning when it has none; ``"calibrate"`` learns one, a number fixes ``tau``,
    None turns it off).
    """
    from bayes_scaling import predict as _predict

    if isinstance(discrepancy, str) and discrepancy == "recorded":
        stored = fit.posterior.attrs.get(_predict.DISCREPANCY_ATTR)
        return _predict.Discrepancy.from_json(stored) if stored else None
    return _predict.get_discrepancy(fit, discrepancy)


def predictive(
    fit,
    covariates: Mapping[str, Any],
    *,
    group: str | None = None,
    discrepancy: Any = "recorded",
    seed: int = 0,
):
    """Draws of the target at points, through :func:`bayes_scaling.predict.predict_draws`.

    Returns ``(law_mean, structural, new_run, discrepancy)``: arrays of shape ``(S, P)`` in
    natural units (``structural`` is None without a discrepancy) and the discrepancy used.
    """
    from bayes_scaling import predict as _predict

    disc = resolve_discrepancy(fit, discrepancy)
    points = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in covariates.items()})
    rng = _core.numpy_rng(seed=seed)
    core = _predict.predict_draws(fit, points, group=group, discrepancy=disc, rng=rng)
    log_mu, delta, eps = core["log_law_mean"], core["delta"], core["eps"]
    structural = np.exp(log_mu + delta) if disc is not None else None
    return np.exp(log_mu), structural, np.exp(log_mu + delta + eps), disc


def interval(values: np.ndarray, prob: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Central ``prob`` interval over ``axis`` (the draws): ``(lower, upper)`` quantiles."""
    lo, hi = np.quantile(values, [(1 - prob) / 2, (1 + prob) / 2], axis=axis)
    return lo, hi


def compute_optimal_exponent(fit, group: str | None = None) -> np.ndarray:
    """Posterior draws of the compute-optimal exponent ``a`` in ``N*(C) ~ C^a``.

    Parameters
    ----------
    fit : arviz.InferenceData
        A fit of a law with a compute-optimal frontier (its ``LawSpec.optimal_exponent``):
        chinchilla, data_constrained, kaplan.
    group : str, optional
        Group label of a hierarchical fit (or ``"new"``).

    Returns
    -------
    numpy.ndarray
        Shape ``(S,)``.

    Raises
    ------
    ValueError
        For a law without such an exponent.

    Notes
    -----
    With ``C = k N D`` the Chinchilla law ``E + A N^-alpha + B D^-beta`` is minimised at
    ``N* = G (C/k)^a`` with ``a = beta / (alpha + beta)``; for Kaplan's law
    ``a = alpha_D / (alpha_N + alpha_D)``. ``a = 0.5`` means parameters and tokens grow alike.

    References
    ----------
    Hoffmann et al. 2022, arXiv:2203.15556; Besiroglu et al. 2024, arXiv:2404.10102 (a = 0.513,
    SE 0.020, on the Chinchilla data).
    """
    spec = law_of(fit)
    d = _inference.posterior_draws(fit, check_group(fit, group))
    if spec.optimal_exponent is None:
        raise ValueError(
            "the compute-optimal exponent is defined for laws over N and D with a "
            f"compute-optimal frontier N* ~ C^a; law {spec.name!r} (parameters "
            f"{list(spec.param_names)}, covariates {list(spec.covariates)}) has none"
        )
    return np.asarray(spec.optimal_exponent(d))


def optimal_path(
    spec: LawSpec, draws: Mapping[str, np.ndarray], compute: np.ndarray, k: float, num: int = 241
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-draw and posterior-mean optimal ``log N`` on each iso-compute line.

    Returns ``(log_n_per_draw (S, m), log_n_mean (m,), law_mean_at_mean (S, m))``: a grid over
    tokens per parameter from 1e-3 to 1e5, refined by a parabola through the minimum's
    neighbours. A search rather than ``spec.log_n_opt``, so that it works for every law over
    ``N`` and ``D`` (including data-constrained laws where the repetition binds).
    """
    log_r = np.linspace(math.log(1e-3), math.log(1e5), num)  # log(D/N)
    lck = np.log(np.asarray(compute, dtype=float)) - math.log(k)  # log(N D)
    log_n = 0.5 * (lck[:, None] - log_r[None, :])  # (m, K)
    log_d = lck[:, None] - log_n
    cov = {"N": np.exp(log_n).ravel(), "D": np.exp(log_d).ravel()}
    if "U" in spec.covariates:
        cov["U"] = cov["D"]  # fresh data: no repetition
    law = np.exp(log_law(spec, draws, cov)).reshape(-1, *log_n.shape)  # (S, m, K)
    h = log_n[:, 0] - log_n[:, 1]  # step in log N is constant per row (decreasing in r)
    per_draw = _refine_minimum(law, log_n, h)
    mean_opt = _refine_minimum(law.mean(axis=0), log_n, h)
    return per_draw, mean_opt, law


def _refine_minimum(values: np.ndarray, log_n: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``log N`` at the minimum of ``values (..., m, K)`` over the grid, refined by a parabola."""
    num = values.shape[-1]
    idx = np.clip(values.argmin(axis=-1), 1, num - 2)

    def take(j: np.ndarray) -> np.ndarray:
        return np.take_along_axis(values, j[..., None], axis=-1)[..., 0]

    y0, y1, y2 = take(idx - 1), take(idx), take(idx + 1)
    denom = y0 - 2 * y1 + y2
    shift = np.where(denom > 0, 0.5 * (y0 - y2) / np.where(denom > 0, denom, 1.0), 0.0)
    grid = np.broadcast_to(log_n, values.shape)
    base = np.take_along_axis(grid, idx[..., None], axis=-1)[..., 0]
    return base - np.clip(shift, -1, 1) * h  # grid runs towards smaller N as r grows


def path_covariates(
    spec: LawSpec, log_n: np.ndarray, compute: np.ndarray, k: float
) -> dict[str, np.ndarray]:
    """Covariates along a path ``log N`` at compute ``C``: ``D = C / (k N)``, ``U = D``."""
    n = np.exp(log_n)
    d = compute / (k * n)
    out = {"N": n, "D": d}
    if "U" in spec.covariates:
        out["U"] = d
    return out


def fan_path(spec, draws, frame, compute, tokens_per_param, k, num_points):
    """The x axis of an extrapolation and the covariates along it.

    Parameters
    ----------
    spec : LawSpec
    draws : mapping
        Posterior draws (:func:`posterior_sample`), for the expected-loss-optimal split.
    frame : pandas.DataFrame
        The runs (:func:`~bayes_scaling.plots.fit_frame`), for the start of the axis.
    compute : float or None
        End of the axis; default 100x the largest run.
    tokens_per_param : float or None
        Fixed ``D/N`` for laws over ``N`` and ``D``; None for the expected-loss-optimal split.
    k : float
        FLOPs per parameter per token.
    num_points : int

    Returns
    -------
    (str, numpy.ndarray, dict, str)
        The axis' covariate (``"C"`` for laws over ``N`` and ``D``), its values, the
        covariates at them, and a note for the title.

    Raises
    ------
    ValueError
        For a law over several covariates that cannot be put on one axis.
    """
    if over_n_and_d(spec):
        has_c = "C" in frame.columns and len(frame)
        c_data = frame["C"].to_numpy(dtype=float) if has_c else np.array([1e18])
        end = float(compute) if compute is not None else float(c_data.max()) * 100
        start = min(float(c_data.min()), end / 10)
        x = np.geomspace(start, end, num_points)
        if tokens_per_param is not None:
            r = float(tokens_per_param)
            log_n = 0.5 * (np.log(x / k) - math.log(r))
            note = f" at {r:g} tokens/parameter"
        else:
            _, log_n, _ = optimal_path(spec, draws, x, k)
            note = " along the expected-loss-optimal split"
        return "C", x, path_covariates(spec, log_n, x, k), note
    if len(spec.covariates) == 1:
        (name,) = spec.covariates
        has_x = name in frame.columns and len(frame)
        values = frame[name].to_numpy(dtype=float) if has_x else np.array([1.0])
        end = float(compute) if compute is not None else float(values.max()) * 100
        x = np.geomspace(min(values.min(), end / 10), end, num_points)
        return name, x, {name: x}, ""
    raise ValueError(
        f"no extrapolation path for law {spec.name!r} with covariates {list(spec.covariates)}; "
        "predict at chosen covariates instead"
    )
