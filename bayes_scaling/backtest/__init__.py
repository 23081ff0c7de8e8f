"""Backtests of extrapolation: split, fit, predict the held-out side, score; the point-fit baseline.

Three layers, each usable on its own:

* **Scores on arrays** (numpy, no labels): :func:`interval_coverage`, :func:`interval_width`,
  :func:`crps`, :func:`log_predictive_density`, :func:`absolute_relative_error`. They take
  predictive draws of shape ``(S, P)`` (``S`` draws, ``P`` held-out points) and observed values
  of shape ``(P,)``.
* **The point-fit baseline** :func:`point_fit`: the procedure of Hoffmann et al. (2022, approach
  3) as replicated by Besiroglu et al. (2024): Huber loss (``delta = 1e-3``) on the residuals of
  the log target, minimised with L-BFGS from a grid of starting points.
* **The backtest** :func:`backtest`: fit the Bayesian model on the training side of a split,
  predict the held-out side with :func:`bayes_scaling.predict.predict` (new-run band, with the
  extrapolation discrepancy), score it, and put the baseline's errors on the same split beside
  it in one JSON-serialisable report (:data:`REPORT_KEYS`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayes_scaling.laws import LawSpec, get_law

__all__ = [
    "HOFFMANN_GRID",
    "REPORT_KEYS",
    "PointFit",
    "absolute_relative_error",
    "backtest",
    "central_interval",
    "crps",
    "default_grid",
    "huber",
    "interval_coverage",
    "interval_width",
    "log_predictive_density",
    "point_fit",
    "score_draws",
]

# --------------------------------------------------------------------------- scores on arrays

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
        Nominal levels of the central intervals (quantiles ``(1 - level) / 2`` and ``(1 + level) / 2``).

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
    Gneiting and Raftery 2007, "Strictly Proper Scoring Rules, Prediction, and Estimation", JASA 102.

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


def log_predictive_density(
    observed: Any,
    loc: Any,
    scale: Any,
    df: Any | None = None,
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
    ndarray, shape (P,)
        Log density of each observed value (nats; on the log-target scale, so the density of the
        loss itself is this minus ``log(loss)``).
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
        df = df[:, None] if df.ndim == 1 else df
        df = np.broadcast_to(df, loc.shape)
        finite = np.isfinite(df)
        logp = np.where(
            finite,
            stats.t.logpdf(observed[None, :], np.where(finite, df, 1.0), loc, scale),
            stats.norm.logpdf(observed[None, :], loc, scale),
        )
    return special.logsumexp(logp, axis=0) - math.log(loc.shape[0])


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


# --------------------------------------------------------------------------- point-fit baseline

# Hoffmann et al. 2022 (appendix D.2), as run by Besiroglu et al. 2024: e = log E, a = log A,
# b = log B on these grids, alpha and beta on theirs; 6 * 6 * 5 * 5 * 5 = 4500 starting points.
HOFFMANN_GRID: dict[str, tuple[float, ...]] = {
    "E": tuple(float(np.exp(v)) for v in np.arange(-1.0, 1.01, 0.5)),
    "A": tuple(float(np.exp(v)) for v in np.arange(0.0, 25.1, 5.0)),
    "B": tuple(float(np.exp(v)) for v in np.arange(0.0, 25.1, 5.0)),
    "alpha": tuple(float(v) for v in np.arange(0.0, 2.01, 0.5)),
    "beta": tuple(float(v) for v in np.arange(0.0, 2.01, 0.5)),
}

GENERIC_GRID_QUANTILES = (0.1, 0.5, 0.9)


@dataclasses.dataclass(frozen=True)
class PointFit:
    """Result of :func:`point_fit`.

    Attributes
    ----------
    law : str
        Name of the law.
    params : dict of str to float
        Best parameters found (natural units, the paper's symbols).
    objective : float
        Summed Huber loss at ``params``.
    delta : float
        Huber threshold used.
    num_grid : int
        Starting points in the grid.
    num_starts : int
        Starting points L-BFGS was run from (the best-scoring ones of the grid).
    converged : bool
        Whether L-BFGS reported convergence for the best run.
    """

    law: str
    params: dict[str, float]
    objective: float
    delta: float
    num_grid: int
    num_starts: int
    converged: bool

    def predict(self, covariates: Mapping[str, Any]) -> np.ndarray:
        """Target (loss) at covariates in natural units."""
        return np.asarray(get_law(self.law).predict(self.params, covariates), dtype=float)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary."""
        return dataclasses.asdict(self)


def huber(residual: Any, delta: float = 1e-3) -> Any:
    r"""Huber loss :math:`\frac12 r^2` for :math:`|r| \le \delta`, else :math:`\delta(|r| - \delta/2)` (jnp)."""
    a = jnp.abs(residual)
    return jnp.where(a <= delta, 0.5 * residual**2, delta * (a - 0.5 * delta))


def _x64():
    """Context manager enabling float64 in JAX (the API moved between JAX versions)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # pragma: no cover - older JAX

    return enable_x64()  # pragma: no cover


def _coordinates(law: LawSpec) -> dict[str, str]:
    """How each parameter is optimised: ``identity``, ``log`` or ``centred`` (log at the reference).

    Exponents (parameters named as the exponent of another's centring hint, e.g. Chinchilla's
    ``alpha`` and ``beta``) and real parameters are optimised as they are, as Hoffmann et al.
    did; amplitudes with a centring hint as their log value at the data's reference point
    (better conditioned, same optimum); other positive parameters on the log scale.
    """
    exponents = {
        p.centre[1] for p in law.params if p.centre is not None and p.centre[1] is not None
    }
    out = {}
    for p in law.params:
        if p.constraint == "real" or p.name in exponents:
            out[p.name] = "identity"
        elif p.centre is not None:
            out[p.name] = "centred"
        else:
            out[p.name] = "log"
    return out


_OBJECTIVES: dict[Any, tuple[Callable, Callable, Callable]] = {}


def _objective_functions(
    law: LawSpec, free: tuple[str, ...], coords: tuple[tuple[str, str], ...], delta: float
):
    """Jitted ``value_and_grad(theta)`` and a vmapped value over many ``theta``; cached."""
    key = (law.name, id(law.fn), free, coords, float(delta))
    if key in _OBJECTIVES:
        return _OBJECTIVES[key]
    coord = dict(coords)
    by_name = {p.name: p for p in law.params}
    index = {name: i for i, name in enumerate(free)}

    def to_params(theta, fixed, ref):
        values = {}
        for p in law.params:  # law order: an exponent comes before the amplitude it centres
            if p.name not in index:
                values[p.name] = fixed[p.name]
                continue
            t = theta[index[p.name]]
            kind = coord[p.name]
            if kind == "identity":
                values[p.name] = t
            elif kind == "log":
                values[p.name] = jnp.exp(t)
            else:
                cov, exponent = by_name[p.name].centre
                shift = ref[cov] if exponent is None else values[exponent] * ref[cov]
                values[p.name] = jnp.exp(t + shift)
        return values

    def objective(theta, fixed, ref, x, y, weight):
        pred = law.fn(to_params(theta, fixed, ref), x)
        return jnp.sum(weight * huber(pred - y, delta))

    value_and_grad = jax.jit(jax.value_and_grad(objective))
    batch = jax.jit(jax.vmap(objective, in_axes=(0, None, None, None, None, None)))
    fns = (value_and_grad, batch, to_params)
    _OBJECTIVES[key] = fns
    return fns


def _prior_quantiles(prior, quantiles: Sequence[float]) -> list[float]:
    if prior.dist == "fixed":
        return [prior.kwargs["value"]]
    draws = np.asarray(prior.to_numpyro().sample(jax.random.PRNGKey(0), (4001,)), dtype=float)
    return [float(v) for v in np.quantile(draws, quantiles)]


def default_grid(law: str | LawSpec) -> dict[str, tuple[float, ...]]:
    """Starting values per parameter (natural units): Hoffmann's grid for ``chinchilla``, else
    the 10/50/90% quantiles of the law's default priors."""
    law = get_law(law)
    if law.name == "chinchilla":
        return dict(HOFFMANN_GRID)
    return {
        p.name: tuple(_prior_quantiles(law.priors.params[p.name], GENERIC_GRID_QUANTILES))
        for p in law.params
    }


def _to_theta(
    law: LawSpec, values: Mapping[str, float], coord: Mapping[str, str], free, ref
) -> np.ndarray | None:
    theta = []
    for name in free:
        v = float(values[name])
        kind = coord[name]
        if kind == "identity":
            theta.append(v)
            continue
        if not v > 0:
            return None
        if kind == "log":
            theta.append(math.log(v))
        else:
            centre = next(p.centre for p in law.params if p.name == name)
            assert centre is not None  # "centred" coordinates come from a centring hint
            cov, exponent = centre
            shift = ref[cov] if exponent is None else float(values[exponent]) * ref[cov]
            theta.append(math.log(v) - shift)
    return np.asarray(theta, dtype=float)


def _lbfgs(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    *,
    maxiter: int = 1000,
    memory: int = 10,
    ftol: float = 2.2e-9,
    gtol: float = 1e-5,
) -> tuple[np.ndarray, float, bool, int]:
    """Minimise with L-BFGS (two-loop recursion, backtracking Armijo line search).

    A small numpy implementation instead of ``scipy.optimize.minimize(method="L-BFGS-B")``:
    scipy's compiled L-BFGS-B calls multithreaded BLAS for 5-vectors, which costs about 10 ms per
    iteration on a loaded machine, 50 times the objective's own cost. Stopping rules follow
    scipy's defaults: relative reduction of ``f`` below ``ftol`` or max-norm of the gradient below
    ``gtol``. A non-finite objective counts as a failed step.

    Returns
    -------
    x, f, converged, iterations
    """
    x = np.asarray(x0, dtype=float).copy()
    f, g = fun(x)
    if not (math.isfinite(f) and np.all(np.isfinite(g))):
        return x, math.inf, False, 0
    s_hist: list[np.ndarray] = []
    y_hist: list[np.ndarray] = []
    for it in range(1, maxiter + 1):
        if np.max(np.abs(g)) <= gtol:
            return x, f, True, it - 1
        q = g.copy()
        alphas = []
        for s, y in zip(reversed(s_hist), reversed(y_hist)):
            a = (s @ q) / (y @ s)
            alphas.append(a)
            q -= a * y
        if s_hist:
            q *= (s_hist[-1] @ y_hist[-1]) / (y_hist[-1] @ y_hist[-1])
        else:
            q /= max(1.0, float(np.max(np.abs(g))))
        for (s, y), a in zip(zip(s_hist, y_hist), reversed(alphas)):
            b = (y @ q) / (y @ s)
            q += s * (a - b)
        d = -q
        slope = float(g @ d)
        if not slope < 0:  # not a descent direction: restart from steepest descent
            s_hist.clear()
            y_hist.clear()
            d = -g / max(1.0, float(np.max(np.abs(g))))
            slope = float(g @ d)
        step = 1.0
        for _ in range(40):
            x_new = x + step * d
            f_new, g_new = fun(x_new)
            if (
                math.isfinite(f_new)
                and np.all(np.isfinite(g_new))
                and f_new <= f + 1e-4 * step * slope
            ):
                break
            step *= 0.5
        else:
            return x, f, False, it
        s, y = x_new - x, g_new - g
        if s @ y > 1e-12 * max(1.0, float(y @ y)):
            s_hist.append(s)
            y_hist.append(y)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        converged = (f - f_new) <= ftol * max(abs(f), abs(f_new), 1.0)
        x, f, g = x_new, f_new, g_new
        if converged:
            return x, f, True, it
    return x, f, False, maxiter


def point_fit(
    law: str | LawSpec,
    covariates: Mapping[str, Any],
    target: Any,
    *,
    delta: float = 1e-3,
    grid: Mapping[str, Sequence[float]] | None = None,
    fixed: Mapping[str, float] | None = None,
    max_starts: int | None = 32,
    maxiter: int = 1000,
) -> PointFit:
    r"""Least-Huber point fit of a law to the log target: the Hoffmann et al. / Epoch baseline.

    Minimises :math:`\sum_i \mathrm{Huber}_\delta(\log \hat y(x_i; \theta) - \log y_i)` with
    scipy's L-BFGS-B (gradients from JAX, float64) started from the best points of a grid.

    Parameters
    ----------
    law : str or LawSpec
        Any registered law.
    covariates : mapping of str to array
        The law's covariates in natural units (e.g. ``{"N": ..., "D": ...}``); a DataFrame works.
    target : array
        Observed target (loss, or steps for ``batch_steps``), natural units.
    delta : float, default 1e-3
        Huber threshold on the log residual (Hoffmann et al.'s value).
    grid : mapping of str to sequence of float, optional
        Starting values per parameter in natural units; their Cartesian product is the grid.
        Default: Hoffmann's grid for ``chinchilla`` (:data:`HOFFMANN_GRID`, 4500 points: log E in
        {-1, -0.5, ..., 1}, log A and log B in {0, 5, ..., 25}, alpha and beta in {0, 0.5, ..., 2}),
        and the 10/50/90% quantiles of the default priors for other laws. Parameters missing from
        a user grid take their prior median.
    fixed : mapping of str to float, optional
        Parameters held at a value (not optimised).
    max_starts : int or None, default 32
        The whole grid is scored in one vectorised pass; L-BFGS then runs from this many
        best-scoring starting points. ``None`` runs it from every grid point (Hoffmann's exact
        procedure; minutes for the 4500-point grid).
    maxiter : int, default 1000
        L-BFGS iteration cap per start.

    Returns
    -------
    PointFit
        Best parameters and objective (see :class:`PointFit`).

    Raises
    ------
    ValueError
        Missing covariates, non-positive or non-finite values, mismatched lengths, a grid naming
        unknown parameters, or no starting point with a finite objective.

    Notes
    -----
    Exponents and real parameters are optimised as they are (lower bound 0 for positive
    exponents), amplitudes with a centring hint as their log at the data's mean log covariate,
    other positive parameters on the log scale. On ``epoch-chinchilla`` (240 points) this gives
    E = 1.817, A = 478, B = 2144, alpha = 0.347, beta = 0.367, Epoch's replication of Hoffmann's
    procedure.

    References
    ----------
    Hoffmann et al. 2022, arXiv:2203.15556, appendix D.2; Besiroglu, Erdil, Barnett, You 2024,
    "Chinchilla Scaling: A replication attempt", arXiv:2404.10102.

    Examples
    --------
    >>> from bayes_scaling.laws import get_law
    >>> truth = dict(E=1.8, A=480.0, B=2000.0, alpha=0.35, beta=0.37)
    >>> N = np.geomspace(1e8, 1e10, 12).repeat(3); D = N * np.tile([5.0, 20.0, 80.0], 12)
    >>> loss = np.asarray(get_law("chinchilla").predict(truth, {"N": N, "D": D}))
    >>> pf = point_fit("chinchilla", {"N": N, "D": D}, loss, max_starts=8)
    >>> round(pf.params["E"], 2)
    1.8
    """
    law = get_law(law)
    if not delta > 0:
        raise ValueError(f"delta must be > 0; got {delta}")
    if max_starts is not None and (isinstance(max_starts, bool) or int(max_starts) < 1):
        raise ValueError(f"max_starts must be a positive integer or None; got {max_starts!r}")
    y = np.asarray(target, dtype=float).reshape(-1)
    x: dict[str, np.ndarray] = {}
    for c in law.covariates:
        if c not in covariates:
            raise ValueError(
                f"covariate {c!r} required by law {law.name!r} is missing; got {sorted(map(str, covariates))}"
            )
        v = np.asarray(covariates[c], dtype=float).reshape(-1)
        if v.shape != y.shape:
            raise ValueError(f"covariate {c!r} has {v.size} values but the target has {y.size}")
        x[c] = v
    for name, v in list(x.items()) + [(law.target, y)]:
        bad = ~(np.isfinite(v) & (v > 0))
        if bad.any():
            raise ValueError(
                f"{name!r} must be finite and > 0; found {int(bad.sum())} bad values (first at position "
                f"{int(np.flatnonzero(bad)[0])})"
            )
    if y.size == 0:
        raise ValueError("point_fit needs at least one data point")

    fixed = dict(fixed or {})
    unknown = sorted(set(fixed) - set(law.param_names))
    if unknown:
        raise ValueError(
            f"fixed names {unknown}, which law {law.name!r} does not have; its parameters: {list(law.param_names)}"
        )
    for p in law.params:  # priors fixed to a value count as fixed
        prior = law.priors.params[p.name]
        if prior.dist == "fixed" and p.name not in fixed:
            fixed[p.name] = float(prior.kwargs["value"] or 0.0)
    free = tuple(n for n in law.param_names if n not in fixed)
    if not free:
        raise ValueError("every parameter is fixed: nothing to fit")
    if grid is None:
        grid_values = default_grid(law)
    else:
        unknown = sorted(set(grid) - set(law.param_names))
        if unknown:
            raise ValueError(
                f"grid names {unknown}, which law {law.name!r} does not have; its parameters: {list(law.param_names)}"
            )
        grid_values = {
            n: tuple(_prior_quantiles(law.priors.params[n], (0.5,))) for n in law.param_names
        }
        grid_values.update({k: tuple(float(v) for v in vals) for k, vals in grid.items()})
        empty = [k for k, vals in grid_values.items() if len(vals) == 0]
        if empty:
            raise ValueError(f"grid values for {empty} are empty")

    coord = _coordinates(law)
    ref = {c: float(np.mean(np.log(x[c]))) for c in law.covariates}
    combos = itertools.product(*(grid_values[n] for n in free))
    starts = []
    for combo in combos:
        values = dict(zip(free, combo))
        values.update(fixed)
        theta = _to_theta(law, values, coord, free, ref)
        if theta is not None:
            starts.append(theta)
    if not starts:
        raise ValueError(
            "no valid starting point in the grid (positive parameters need values > 0)"
        )
    starts_arr = np.stack(starts)

    coords_key = tuple(sorted(coord.items()))
    with _x64():
        value_and_grad, batch, to_params = _objective_functions(law, free, coords_key, delta)
        xj = {k: jnp.asarray(np.log(v)) for k, v in x.items()}
        yj = jnp.asarray(np.log(y))
        wj = jnp.ones_like(yj)
        fixed_j = {k: jnp.asarray(float(v)) for k, v in fixed.items()}
        ref_j = {k: jnp.asarray(v) for k, v in ref.items()}
        scores = np.asarray(batch(jnp.asarray(starts_arr), fixed_j, ref_j, xj, yj, wj), dtype=float)
        finite = np.isfinite(scores)
        if not finite.any():
            raise ValueError(
                f"the objective is not finite at any of the {len(starts_arr)} grid points"
            )
        order = np.argsort(np.where(finite, scores, np.inf), kind="stable")[: int(finite.sum())]
        if max_starts is not None:
            order = order[: int(max_starts)]

        def fun(theta):
            v, g = value_and_grad(jnp.asarray(theta), fixed_j, ref_j, xj, yj, wj)
            return float(v), np.asarray(g, dtype=float)

        best = None
        for i in order:
            theta, value, converged, _ = _lbfgs(fun, starts_arr[i], maxiter=maxiter)
            if not math.isfinite(value):
                continue
            values = {k: float(v) for k, v in to_params(jnp.asarray(theta), fixed_j, ref_j).items()}
            if any(not values[p.name] > 0 for p in law.params if p.constraint == "positive"):
                continue  # an exponent wandered below zero: outside the law's parameter space
            if best is None or value < best[1]:
                best = (values, value, converged)
    if best is None:
        raise ValueError(
            f"L-BFGS found no valid optimum from the {len(order)} best of {len(starts_arr)} starting points"
        )
    return PointFit(
        law=law.name,
        params=best[0],
        objective=float(best[1]),
        delta=float(delta),
        num_grid=len(starts_arr),
        num_starts=len(order),
        converged=bool(best[2]),
    )


# --------------------------------------------------------------------------- the backtest

REPORT_KEYS: dict[str, str] = {
    "coverage_50": "fraction of held-out runs inside the central 50% new-run interval",
    "coverage_80": "same for the 80% interval",
    "coverage_90": "same for the 90% interval",
    "coverage_95": "same for the 95% interval",
    "mean_width_rel": "mean over held-out runs of the 90% new-run interval's width divided by the observed target",
    "crps": "mean continuous ranked probability score of the new-run draws of the log target (lower is better)",
    "log_pred_density": "mean log predictive density of the held-out log target (nats per run, higher is better)",
    "median_are": "median absolute relative error of the new-run predictive median",
    "max_are": "maximum absolute relative error of the new-run predictive median",
    "baseline": "point-fit baseline on the same split: median_are, max_are, method, delta, params, objective",
    "without_discrepancy": "the same scores for the new-run band without the extrapolation discrepancy",
    "law_mean": "coverage and errors of the law-mean band (parameter uncertainty only)",
    "discrepancy": "the extrapolation discrepancy used: enabled, method, tau_median, tau_q05, tau_q95, coordinates, details",
    "law": "law name",
    "target": "the predicted column (loss or steps)",
    "split": "the split as given (text, or a description of a mask)",
    "group": "group column, or null",
    "likelihood": "likelihood of the Bayesian fit",
    "n_train": "runs on the training side",
    "n_test": "held-out runs",
    "n_test_new_group": "held-out runs in groups absent from the training side (predicted as a new group)",
    "max_distance": "largest distance of a held-out run outside the training range (natural-log units)",
    "train_range": "per covariate, [min, max] on the training side",
    "test_range": "per covariate, [min, max] on the held-out side",
    "sampler": "num_chains, num_warmup, num_samples, seed, method (nuts or laplace)",
    "diagnostics": "max_rhat, min_ess, divergences of the training fit",
    "bayes_scaling_version": "package version",
    "points": "per held-out run: index, covariates, group, observed, median, q05, q25, q75, q95, distance, baseline",
}


def _json_number(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _json_number(obj)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def _split_frame(
    data, law: LawSpec, split, *, group, columns, derive_tokens, flops_per_token, pooling
):
    """Validated frame and boolean training mask; C is derived as k N D for a split on C."""
    from bayes_scaling import data as _data

    raw = _data.read_table(data)
    if columns:
        absent = [k for k in columns if k not in raw.columns]
        if absent:
            raise _data.DataError(
                f"column mapping names {absent}, which the data does not have; found columns: {list(raw.columns)}"
            )
        raw = raw.rename(columns=dict(columns))
    if derive_tokens and "D" not in raw.columns and {"C", "N"} <= set(raw.columns):
        raw["D"] = _numeric(raw["C"]) / (flops_per_token * _numeric(raw["N"]))
    if "C" not in raw.columns and {"N", "D"} <= set(raw.columns):
        raw["C"] = flops_per_token * _numeric(raw["N"]) * _numeric(raw["D"])
    raw = raw.reset_index(drop=True)
    mask = _data.parse_split(raw, split)
    frame = _data.validate(raw, law, group=group, pooling=pooling)
    return frame, np.asarray(mask, dtype=bool), raw


def _numeric(series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


def _baseline(
    law: LawSpec, train, test, grouped: bool, point_fit_kwargs: Mapping[str, Any]
) -> tuple[np.ndarray, dict[str, Any]]:
    cov = lambda f: {c: f[c].to_numpy(dtype=float) for c in law.covariates}
    pooled = point_fit(law, cov(train), train[law.target].to_numpy(dtype=float), **point_fit_kwargs)
    pred = pooled.predict(cov(test)) if len(test) else np.zeros(0)
    info: dict[str, Any] = {
        "params": pooled.params,
        "objective": pooled.objective,
        "converged": pooled.converged,
    }
    if grouped:
        per_group: dict[str, Any] = {}
        for g in sorted(set(test["group"])):
            rows = train[train["group"] == g]
            if len(rows) <= len(law.params):
                continue  # too few runs for a separate fit: the pooled one predicts this group
            fit_g = point_fit(
                law, cov(rows), rows[law.target].to_numpy(dtype=float), **point_fit_kwargs
            )
            sel = (test["group"] == g).to_numpy()
            pred[sel] = fit_g.predict(cov(test[sel]))
            per_group[g] = {
                "params": fit_g.params,
                "objective": fit_g.objective,
                "converged": fit_g.converged,
            }
        info = {"pooled": info, "groups": per_group}
    return pred, info


def backtest(
    data,
    law: str | LawSpec = "chinchilla",
    split: Any = "C<=1e21",
    *,
    group: str | None = None,
    priors=None,
    pooling=None,
    likelihood: str = "student_t",
    discrepancy: Any = "auto",
    columns: Mapping[str, str] | None = None,
    derive_tokens: bool = False,
    flops_per_token: float = 6.0,
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 1000,
    target_accept_prob: float = 0.9,
    seed: int = 0,
    calibration: Mapping[str, Any] | None = None,
    point_fit_kwargs: Mapping[str, Any] | None = None,
    include_points: bool = True,
    method: str = "nuts",
) -> dict[str, Any]:
    """Fit on the training side of a split, predict the held-out side, score; baseline beside it.

    Parameters
    ----------
    data : DataFrame, str or Path
        Runs in canonical columns (CSV path or dataset name accepted). ``C`` is derived as
        ``flops_per_token * N * D`` when absent, so ``"C<=1e21"`` works on N/D data.
    law : str or LawSpec, default "chinchilla"
    split : str or boolean array, default "C<=1e21"
        Training side: ``"COLUMN OP NUMBER"`` (``<=``, ``<``, ``>=``, ``>``) on any column, the
        name of a boolean column (True = training), or a boolean array.
    group : str, optional
        Group column for a hierarchical fit. Held-out runs of groups absent from the training
        side are predicted as a new group.
    priors, pooling, likelihood
        As for :func:`bayes_scaling.inference.fit`.
    discrepancy : "auto", None, float or Discrepancy, default "auto"
        Extrapolation discrepancy of the predictions (see :mod:`bayes_scaling.predict`):
        ``"auto"`` learns it from the training side by leave-future-out; None turns it off; a
        number fixes ``tau``.
    columns, derive_tokens, flops_per_token
        Column renames and ``D = C / (k N)`` derivation, as for ``fit``.
    num_chains, num_warmup, num_samples, target_accept_prob, seed
        NUTS settings of the training fit; ``seed`` also seeds the calibration and the draws.
    calibration : mapping, optional
        Keyword arguments for :func:`bayes_scaling.predict.calibrate_discrepancy` (``cuts``,
        ``num_samples``, ...).
    point_fit_kwargs : mapping, optional
        Keyword arguments for :func:`point_fit` (``delta``, ``max_starts``, ...).
    include_points : bool, default True
        Add the per-run table under ``points``.
    method : {"nuts", "laplace"}, default "nuts"
        Posterior of the training fit and of the discrepancy calibration's fits: NUTS, or
        Gaussian draws at the mode (a quick look; its backtest scores are in
        ``benchmarks/RESULTS.md``).

    Returns
    -------
    dict
        JSON-serialisable report; keys and meanings in :data:`REPORT_KEYS`. Scores are for the
        new-run band (a new run's target: parameter uncertainty, extrapolation discrepancy and
        run-to-run noise), fractions in [0, 1].

    Raises
    ------
    DataError
        A split that leaves either side empty, a split on a missing column, bad data (a
        ``ValueError`` subclass).

    Notes
    -----
    The baseline is :func:`point_fit` (Hoffmann et al.'s Huber/L-BFGS procedure) on the same
    training runs; with groups, one fit per group that has more runs than parameters, the
    pooled fit for the rest.

    Examples
    --------
    >>> report = backtest("epoch-chinchilla-240", "chinchilla", "C<=1e21")  # doctest: +SKIP
    >>> report["coverage_90"], report["median_are"], report["baseline"]["median_are"]  # doctest: +SKIP
    """
    from bayes_scaling import __version__
    from bayes_scaling import inference as _inference
    from bayes_scaling import predict as _predict
    from bayes_scaling.models import resolve_pooling

    spec = get_law(law)
    pool = resolve_pooling(spec, pooling, grouped=group is not None)
    frame, mask, _ = _split_frame(
        data,
        spec,
        split,
        group=group,
        columns=columns,
        derive_tokens=derive_tokens,
        flops_per_token=flops_per_token,
        pooling=pool,
    )
    train, test = frame[mask], frame[~mask]
    grouped = group is not None
    fit_group = "group" if grouped else None
    idata = _inference.fit(
        train,
        spec,
        priors=priors,
        group=fit_group,
        pooling=pooling if grouped else None,
        likelihood=likelihood,
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_samples=num_samples,
        target_accept_prob=target_accept_prob,
        seed=seed,
        prior_samples=0,
        method=method,
    )
    if discrepancy is True or (isinstance(discrepancy, str) and discrepancy == "auto"):
        disc = _predict.calibrate_discrepancy(
            train,
            spec,
            group=fit_group,
            priors=priors,
            pooling=pooling if grouped else None,
            likelihood=likelihood,
            seed=seed,
            **{"method": method, **dict(calibration or {})},
        )
    elif discrepancy is None or discrepancy is False:
        disc = None
    elif isinstance(discrepancy, _predict.Discrepancy):
        disc = discrepancy
    elif isinstance(discrepancy, (int, float)):
        disc = _predict.Discrepancy.fixed(float(discrepancy), spec, train)
    else:
        raise ValueError(
            f"discrepancy must be 'auto', None, a number (tau) or a Discrepancy; got {discrepancy!r}"
        )

    rng = np.random.default_rng([seed, 20240521])
    points = test[list(spec.covariates) + (["group"] if grouped else [])]
    core = _predict.predict_draws(idata, points, discrepancy=disc, rng=rng)
    observed = test[spec.target].to_numpy(dtype=float)
    log_mu, delta, eps = core["log_law_mean"], core["delta"], core["eps"]
    log_new_run = log_mu + delta + eps  # on the log scale: Student-t tails may overflow exp
    report: dict[str, Any] = score_draws(
        None,
        observed,
        loc=log_mu + delta,
        scale=core["sigma"],
        df=core["nu"],
        log_draws=log_new_run,
    )

    base_pred, base_info = _baseline(spec, train, test, grouped, dict(point_fit_kwargs or {}))
    base_are = absolute_relative_error(base_pred, observed)
    report["baseline"] = {
        "median_are": float(np.median(base_are)),
        "max_are": float(np.max(base_are)),
        "method": "Huber loss on log target, L-BFGS from a grid (Hoffmann et al. 2022; Besiroglu et al. 2024)",
        "delta": float(dict(point_fit_kwargs or {}).get("delta", 1e-3)),
        **base_info,
    }
    report["without_discrepancy"] = score_draws(
        None, observed, loc=log_mu, scale=core["sigma"], df=core["nu"], log_draws=log_mu + eps
    )
    law_scores = score_draws(None, observed, log_draws=log_mu)
    report["law_mean"] = {k: v for k, v in law_scores.items() if k != "crps"}
    report["discrepancy"] = (
        {"enabled": False}
        if disc is None
        else {"enabled": True, **disc.summary(), "details": dict(disc.details)}
    )
    known = set(train["group"]) if grouped else set()
    report.update(
        {
            "law": spec.name,
            "target": spec.target,
            "split": split
            if isinstance(split, str)
            else f"boolean mask ({int(mask.sum())} training rows)",
            "group": group,
            "likelihood": likelihood,
            "n_train": int(mask.sum()),
            "n_test": int((~mask).sum()),
            "n_test_new_group": int(sum(g not in known for g in test["group"])) if grouped else 0,
            "max_distance": float(np.max(core["distance"])),
            "train_range": {
                c: [float(train[c].min()), float(train[c].max())] for c in spec.covariates
            },
            "test_range": {
                c: [float(test[c].min()), float(test[c].max())] for c in spec.covariates
            },
            "sampler": {
                "num_chains": num_chains,
                "num_warmup": num_warmup,
                "num_samples": num_samples,
                "seed": seed,
                "method": method,
            },
            "diagnostics": _inference.diagnostics(
                idata.posterior, idata.sample_stats, list(spec.param_names)
            ),
            "bayes_scaling_version": __version__,
        }
    )
    if include_points:
        qs = np.exp(np.quantile(log_new_run, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0))
        rows = []
        for j, idx in enumerate(test.index):
            row = {"index": idx}
            row.update({c: float(test[c].iloc[j]) for c in spec.covariates})
            if grouped:
                row["group"] = str(test["group"].iloc[j])
            row.update(
                {
                    "observed": float(observed[j]),
                    "median": float(qs[2, j]),
                    "q05": float(qs[0, j]),
                    "q25": float(qs[1, j]),
                    "q75": float(qs[3, j]),
                    "q95": float(qs[4, j]),
                    "distance": float(core["distance"][j]),
                    "baseline": float(base_pred[j]),
                }
            )
            rows.append(row)
        report["points"] = rows
    return _jsonable(report)
