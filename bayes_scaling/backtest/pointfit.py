"""The point-fit baseline: least-Huber fit of a law's log target from a grid of starts.

The procedure of Hoffmann et al. (2022, approach 3) as replicated by Besiroglu et al. (2024):
Huber loss (``delta = 1e-3``) on the residuals of the log target, minimised with L-BFGS from the
best-scoring points of a grid of starting values.
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

from bayes_scaling.laws import LawSpec, get_law

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
    r"""Huber loss :math:`\frac12 r^2` for :math:`|r| \le \delta`, else
    :math:`\delta(|r| - \delta/2)` (jnp)."""
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
    """Starting values per parameter (natural units): Hoffmann's grid for a law over ``N`` and
    ``D`` with Chinchilla's parameters (``E``, ``A``, ``B``, ``alpha``, ``beta``), else the
    10/50/90% quantiles of the law's default priors."""
    law = get_law(law)
    if set(law.param_names) == set(HOFFMANN_GRID) and law.allocates_compute:
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
        for s, y in zip(reversed(s_hist), reversed(y_hist), strict=True):
            a = (s @ q) / (y @ s)
            alphas.append(a)
            q -= a * y
        if s_hist:
            q *= (s_hist[-1] @ y_hist[-1]) / (y_hist[-1] @ y_hist[-1])
        else:
            q /= max(1.0, float(np.max(np.abs(g))))
        for (s, y), a in zip(zip(s_hist, y_hist, strict=True), reversed(alphas), strict=True):
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
    L-BFGS (a small NumPy implementation, :func:`_lbfgs`; gradients from JAX, float64) started
    from the best points of a grid.

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
    x, y = _check_inputs(law, covariates, target, delta, max_starts)
    fixed_values, free = _free_parameters(law, fixed)
    grid_values = _grid_values(law, grid)
    coord = _coordinates(law)
    ref = {c: float(np.mean(np.log(x[c]))) for c in law.covariates}
    starts = _starts(law, grid_values, free, fixed_values, coord, ref)
    problem = _Problem(law, free, tuple(sorted(coord.items())), delta, fixed_values, ref, x, y)
    best, tried = _best_fit(problem, starts, max_starts, maxiter)
    return PointFit(
        law=law.name,
        params=best[0],
        objective=float(best[1]),
        delta=float(delta),
        num_grid=len(starts),
        num_starts=tried,
        converged=bool(best[2]),
    )


def _check_inputs(law: LawSpec, covariates, target, delta, max_starts):
    """Covariates and target as 1-d positive finite arrays; checks ``delta`` and ``max_starts``."""
    if not delta > 0:
        raise ValueError(f"delta must be > 0; got {delta}")
    if max_starts is not None and (isinstance(max_starts, bool) or int(max_starts) < 1):
        raise ValueError(f"max_starts must be a positive integer or None; got {max_starts!r}")
    y = np.asarray(target, dtype=float).reshape(-1)
    x: dict[str, np.ndarray] = {}
    for c in law.covariates:
        if c not in covariates:
            raise ValueError(
                f"covariate {c!r} required by law {law.name!r} is missing; got "
                f"{sorted(map(str, covariates))}"
            )
        v = np.asarray(covariates[c], dtype=float).reshape(-1)
        if v.shape != y.shape:
            raise ValueError(f"covariate {c!r} has {v.size} values but the target has {y.size}")
        x[c] = v
    for name, v in [*x.items(), (law.target, y)]:
        bad = ~(np.isfinite(v) & (v > 0))
        if bad.any():
            raise ValueError(
                f"{name!r} must be finite and > 0; found {int(bad.sum())} bad values (first at "
                f"position {int(np.flatnonzero(bad)[0])})"
            )
    if y.size == 0:
        raise ValueError("point_fit needs at least one data point")
    return x, y


def _free_parameters(law: LawSpec, fixed: Mapping[str, float] | None):
    """Held values (given, or priors fixed to a value) and the names left to optimise."""
    fixed = dict(fixed or {})
    unknown = sorted(set(fixed) - set(law.param_names))
    if unknown:
        raise ValueError(
            f"fixed names {unknown}, which law {law.name!r} does not have; its parameters: "
            f"{list(law.param_names)}"
        )
    for p in law.params:  # priors fixed to a value count as fixed
        prior = law.priors.params[p.name]
        if prior.dist == "fixed" and p.name not in fixed:
            fixed[p.name] = float(prior.kwargs["value"] or 0.0)
    free = tuple(n for n in law.param_names if n not in fixed)
    if not free:
        raise ValueError("every parameter is fixed: nothing to fit")
    return fixed, free


def _grid_values(law: LawSpec, grid: Mapping[str, Sequence[float]] | None):
    """Starting values per parameter: the default grid, or a user grid over prior medians."""
    if grid is None:
        return default_grid(law)
    unknown = sorted(set(grid) - set(law.param_names))
    if unknown:
        raise ValueError(
            f"grid names {unknown}, which law {law.name!r} does not have; its parameters: "
            f"{list(law.param_names)}"
        )
    grid_values = {
        n: tuple(_prior_quantiles(law.priors.params[n], (0.5,))) for n in law.param_names
    }
    grid_values.update({k: tuple(float(v) for v in vals) for k, vals in grid.items()})
    empty = [k for k, vals in grid_values.items() if len(vals) == 0]
    if empty:
        raise ValueError(f"grid values for {empty} are empty")
    return grid_values


def _starts(law: LawSpec, grid_values, free, fixed, coord, ref) -> np.ndarray:
    """The grid's valid starting points as optimiser coordinates, ``(G, len(free))``."""
    starts = []
    for combo in itertools.product(*(grid_values[n] for n in free)):
        values = dict(zip(free, combo, strict=True))
        values.update(fixed)
        theta = _to_theta(law, values, coord, free, ref)
        if theta is not None:
            starts.append(theta)
    if not starts:
        raise ValueError(
            "no valid starting point in the grid (positive parameters need values > 0)"
        )
    return np.stack(starts)


@dataclasses.dataclass(frozen=True)
class _Problem:
    """One point fit: the law, its free parameters' coordinates, the held values and the data."""

    law: LawSpec
    free: tuple[str, ...]
    coords: tuple[tuple[str, str], ...]
    delta: float
    fixed: Mapping[str, float]
    ref: Mapping[str, float]
    x: Mapping[str, np.ndarray]
    y: np.ndarray


def _best_fit(problem: _Problem, starts: np.ndarray, max_starts, maxiter: int):
    """L-BFGS from the best-scoring starts: ((params, objective, converged), starts tried)."""
    law = problem.law
    with _x64():
        value_and_grad, batch, to_params = _objective_functions(
            law, problem.free, problem.coords, problem.delta
        )
        log_y = jnp.asarray(np.log(problem.y))
        data = (  # fixed values, reference point, log covariates, log target, weights
            {k: jnp.asarray(float(v)) for k, v in problem.fixed.items()},
            {k: jnp.asarray(v) for k, v in problem.ref.items()},
            {k: jnp.asarray(np.log(v)) for k, v in problem.x.items()},
            log_y,
            jnp.ones_like(log_y),
        )
        order = _best_starts(np.asarray(batch(jnp.asarray(starts), *data), dtype=float), max_starts)

        def fun(theta):
            v, g = value_and_grad(jnp.asarray(theta), *data)
            return float(v), np.asarray(g, dtype=float)

        best = None
        for i in order:
            theta, value, converged, _ = _lbfgs(fun, starts[i], maxiter=maxiter)
            if not math.isfinite(value):
                continue
            values = {k: float(v) for k, v in to_params(jnp.asarray(theta), *data[:2]).items()}
            if any(not values[p.name] > 0 for p in law.params if p.constraint == "positive"):
                continue  # an exponent wandered below zero: outside the law's parameter space
            if best is None or value < best[1]:
                best = (values, value, converged)
    if best is None:
        raise ValueError(
            f"L-BFGS found no valid optimum from the {len(order)} best of {len(starts)} starting "
            "points"
        )
    return best, len(order)


def _best_starts(scores: np.ndarray, max_starts) -> np.ndarray:
    """Indices of the starts with finite objective, best first, at most ``max_starts``."""
    finite = np.isfinite(scores)
    if not finite.any():
        raise ValueError(f"the objective is not finite at any of the {len(scores)} grid points")
    order = np.argsort(np.where(finite, scores, np.inf), kind="stable")[: int(finite.sum())]
    if max_starts is not None:
        order = order[: int(max_starts)]
    return order
