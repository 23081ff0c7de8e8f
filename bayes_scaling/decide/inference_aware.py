"""Inference-aware sizing: a model for training plus inference (Sardana et al. 2023).

Two modes of :func:`allocate_inference_aware`: the least total cost reaching a target loss
(:class:`InferenceAwareChoice`), or the best allocation of a total budget (an
:class:`~bayes_scaling.decide.Allocation`, :func:`allocate` with the inference cost).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from bayes_scaling.decide._common import (
    _check_common,
    _interval,
    _interval_parts,
    _positive,
    _prepare,
    _Prepared,
    _quantile_dict,
)
from bayes_scaling.decide._kernels import _bisect, _law_log, _pred_kernel, _refine_argmin
from bayes_scaling.decide._line import _CostLine
from bayes_scaling.decide.allocation import Allocation, _allocate_prepared
from bayes_scaling.decide.risk import RiskMeasure, _as_risk
from bayes_scaling.laws import LawSpec


@dataclasses.dataclass(frozen=True, eq=False)
class InferenceAwareChoice:
    """Least-cost model for a target loss when the model will also serve inference.

    Attributes
    ----------
    N, D : float
        Parameters and training tokens.
    tokens_per_param : float
        ``D / N``.
    inference_tokens : float
        Expected tokens served.
    training_flops, inference_flops, total_flops : float
        ``k N D``, ``k_inf N D_inference`` and their sum.
    cost : float
        Total cost in the units of the prices (FLOPs when unpriced, else dollars).
    dollars : float or None
        Total cost in dollars when priced.
    target_loss : float
        The loss to reach.
    risk : str
        Measure required to be ``<= target_loss`` (``quantile:0.9`` reads "reached with 90%
        probability").
    risk_value : float
        Its value at the choice.
    loss_mean : float
        Expected predictive loss at the choice.
    loss_quantiles : dict of str to float
        Loss quantiles at the choice.
    n_opt_draws : numpy.ndarray
        Each draw's own least-cost ``N`` for its law loss to reach the target (NaN where that
        draw cannot reach it in the searched range).
    n_opt_interval : tuple of float
        Central ``interval_prob`` interval of those (over draws that reach it).
    compute_optimal_N : float
        Cheapest ``N`` when inference is ignored (the Chinchilla-style answer), for comparison.
    cost_curve : xarray.DataArray
        Total cost of reaching the target at each candidate ``N`` (NaN where unreachable), with
        coord ``D`` (least training tokens).
    law : str
    """

    N: float
    D: float
    tokens_per_param: float
    inference_tokens: float
    training_flops: float
    inference_flops: float
    total_flops: float
    cost: float
    dollars: float | None
    target_loss: float
    risk: str
    risk_value: float
    loss_mean: float
    loss_quantiles: dict[str, float]
    n_opt_draws: np.ndarray
    n_opt_interval: tuple[float, float]
    interval_prob: float
    compute_optimal_N: float
    cost_curve: xr.DataArray
    law: str
    interval_parts: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary.

        Keys: ``N``, ``D``, ``tokens_per_param``, ``inference_tokens``, ``training_flops``,
        ``inference_flops``, ``total_flops``, ``cost``, ``dollars``, ``target_loss``, ``risk``,
        ``risk_value``, ``loss_mean``, ``loss_quantiles``, ``n_opt_interval``,
        ``interval_prob``, ``compute_optimal_N``, ``law``, ``interval_parts`` (90% widths by
        source, as in :meth:`~bayes_scaling.decide.Allocation.to_dict`).
        """
        return {
            "N": float(self.N),
            "D": float(self.D),
            "tokens_per_param": float(self.tokens_per_param),
            "inference_tokens": float(self.inference_tokens),
            "training_flops": float(self.training_flops),
            "inference_flops": float(self.inference_flops),
            "total_flops": float(self.total_flops),
            "cost": float(self.cost),
            "dollars": None if self.dollars is None else float(self.dollars),
            "target_loss": float(self.target_loss),
            "risk": self.risk,
            "risk_value": float(self.risk_value),
            "loss_mean": float(self.loss_mean),
            "loss_quantiles": dict(self.loss_quantiles),
            "n_opt_interval": [float(v) for v in self.n_opt_interval],
            "interval_prob": float(self.interval_prob),
            "compute_optimal_N": float(self.compute_optimal_N),
            "law": self.law,
            "interval_parts": {k: float(v) for k, v in self.interval_parts.items()},
        }


_LOG_D_BOUNDS = (0.0, math.log(1e30))


_BISECTION_STEPS = 22  # log D over [0, 69]: resolution 2e-5
_SCAN_STEPS = 70  # with the discrepancy, a scan of log D (steps of 1) brackets the least D


def _min_tokens(prep: _Prepared, risk, log_n, target):
    """Per candidate N: least log D with ``risk(loss) <= target`` (bisection, all N at once).

    Each step evaluates the loss draws (with the discrepancy at each (N, D), when on) in JAX
    and reduces them with NumPy; NaN where even ``D = 1e30`` does not reach the target. With
    the discrepancy the risk is not monotone in ``D`` (it grows again far from the data), so a
    scan of ``log D`` brackets the least feasible ``D`` first (NaN where none is).
    """
    log_n32 = jnp.asarray(log_n, jnp.float32)

    def ok(log_d: np.ndarray) -> np.ndarray:
        x = {"N": log_n32, "D": jnp.asarray(log_d, jnp.float32)}
        noise = jnp.asarray(prep.noise_at(log_n, log_d))
        pred = np.asarray(_pred_kernel(prep.spec.fn, prep.params, x, noise))
        return risk.reduce_numpy(pred, axis=-1) <= target

    lo = np.full(log_n.shape, _LOG_D_BOUNDS[0])
    hi = np.full(log_n.shape, _LOG_D_BOUNDS[1])
    if prep.slope is None:
        feasible = ok(hi)
    else:  # far out the discrepancy grows with D: bracket the first feasible D by a scan
        grid = np.linspace(*_LOG_D_BOUNDS, _SCAN_STEPS)
        oks = np.stack([ok(np.full(log_n.shape, g)) for g in grid])
        feasible = np.asarray(oks.any(axis=0), dtype=bool)
        first = np.argmax(oks, axis=0)
        lo, hi = grid[np.maximum(first - 1, 0)], grid[first]
    _, hi = _bisect(ok, lo, hi, steps=_BISECTION_STEPS)
    return np.where(feasible, hi, np.nan)


@functools.partial(jax.jit, static_argnames=("fn", "iterations"))
def _min_tokens_per_draw_kernel(fn, params, log_n, target, iterations=_BISECTION_STEPS):
    """Per draw and candidate N: least log D with the law's loss <= target, shape (S, K)."""

    def ok(log_d):  # log_d (S, K)
        x = {"N": log_n, "D": log_d}
        return jnp.exp(_law_log(fn, params, x, {"N": None, "D": 0})) <= target

    shape = (next(iter(params.values())).shape[0], log_n.shape[0])
    lo = jnp.full(shape, _LOG_D_BOUNDS[0], dtype=log_n.dtype)
    hi = jnp.full(shape, _LOG_D_BOUNDS[1], dtype=log_n.dtype)
    feasible = ok(hi)
    _, hi = _bisect(ok, lo, hi, steps=iterations, xp=jnp)
    return jnp.where(feasible, hi, jnp.nan)


@dataclasses.dataclass(frozen=True)
class _Serving:
    """Training plus inference costs: ``p_t k N D + p_i k_inf N D_inference``.

    ``priced`` says whether ``p_t`` and ``p_i`` are dollars per FLOP (else both are 1).
    """

    inference_tokens: float
    k: float
    k_inf: float
    p_t: float
    p_i: float
    priced: bool
    max_n: float | None
    num_candidates: int
    interval_prob: float

    @property
    def c_inf(self) -> float:
        """Inference cost per parameter, in the units of the prices."""
        return self.p_i * self.k_inf * self.inference_tokens

    def cost(self, log_n: np.ndarray, log_d: np.ndarray, c_inf: float) -> np.ndarray:
        """Total cost at (N, D), with ``c_inf`` per parameter for inference (0: ignore it)."""
        n, d = np.exp(log_n), np.exp(log_d)
        return self.p_t * self.k * n * d + c_inf * n

    @property
    def constraints(self) -> dict[str, Any]:
        return {
            "max_n": self.max_n,
            "unique_tokens": None,
            "inference_tokens": self.inference_tokens,
            "repetition": None,
        }


def _serving(
    inference_tokens,
    flops_per_token,
    inference_flops_per_token,
    dollars_per_flop,
    inference_dollars_per_flop,
    max_n,
    num_candidates,
    interval_prob,
) -> _Serving:
    """Checked costs of :func:`allocate_inference_aware` (in the order its arguments are read)."""
    k, max_n, _, num_candidates, interval_prob = _check_common(
        flops_per_token, max_n, None, num_candidates, interval_prob
    )
    k_inf = _positive("inference_flops_per_token", inference_flops_per_token)
    p_t = 1.0 if dollars_per_flop is None else _positive("dollars_per_flop", dollars_per_flop)
    p_i = (
        p_t
        if inference_dollars_per_flop is None
        else _positive("inference_dollars_per_flop", inference_dollars_per_flop)
    )
    if inference_dollars_per_flop is not None and dollars_per_flop is None:
        raise ValueError("inference_dollars_per_flop needs dollars_per_flop as well")
    return _Serving(
        inference_tokens=inference_tokens,
        k=k,
        k_inf=k_inf,
        p_t=p_t,
        p_i=p_i,
        priced=dollars_per_flop is not None,
        max_n=max_n,
        num_candidates=num_candidates,
        interval_prob=interval_prob,
    )


def _budget_mode(prep: _Prepared, risk: RiskMeasure, budget: Any, serving: _Serving) -> Allocation:
    """The allocation optimising ``risk`` on the line ``cost = budget``."""
    budget = _positive("budget", budget)
    # p_t k N D + p_i k_inf N D_inf = budget  <=>  k N D + c N = budget / p_t
    line = _CostLine(
        k=serving.k,
        c_inf=(serving.p_i / serving.p_t) * serving.k_inf * serving.inference_tokens,
        max_n=serving.max_n,
        unique_tokens=None,
        n_range=None,
        num_candidates=serving.num_candidates,
        interval_prob=serving.interval_prob,
        constraints=serving.constraints,
        stacklevel=5,
    )
    result = _allocate_prepared(prep, budget / serving.p_t, risk, line)
    inference = serving.k_inf * result.N * serving.inference_tokens
    return dataclasses.replace(
        result,
        compute=result.training_flops + inference,
        inference_flops=inference,
        dollars=serving.p_t * result.training_flops + serving.p_i * inference
        if serving.priced
        else None,
    )


def _search_range(n_range: tuple[float, float], max_n: float | None) -> tuple[float, float]:
    lo, hi = (math.log(_positive("n_range bound", v)) for v in n_range)
    if max_n is not None:
        hi = min(hi, math.log(max_n))
    if not lo < hi:
        raise ValueError(f"n_range {n_range} is empty after the max_n cap {max_n}")
    return lo, hi


@dataclasses.dataclass(frozen=True)
class _Cheapest:
    """The candidates around the cheapest N: least tokens, total cost, and the choice."""

    log_n: np.ndarray
    log_d: np.ndarray
    cost: np.ndarray
    idx: int


def _cheapest(prep, risk, target_loss, serving: _Serving, bounds, n_range) -> _Cheapest:
    """Least tokens per N reaching the target, and the N of least total cost.

    The least tokens for each N do not depend on the inference cost: one coarse pass over
    ``n_range``, then one fine pass spanning the cheapest N with and without inference.
    """
    lo, hi = bounds
    coarse = np.linspace(lo, hi, 96)
    coarse_d = _min_tokens(prep, risk, coarse, target_loss)
    if not np.any(np.isfinite(coarse_d)):
        raise ValueError(
            f"no model size in n_range {n_range} reaches {risk.name} <= {target_loss:g} "
            "(even with 1e30 tokens); raise target_loss"
        )
    best = [int(np.nanargmin(serving.cost(coarse, coarse_d, c))) for c in (serving.c_inf, 0.0)]
    log_n = np.linspace(
        coarse[max(min(best) - 2, 0)],
        coarse[min(max(best) + 2, coarse.size - 1)],
        serving.num_candidates,
    )
    log_d = _min_tokens(prep, risk, log_n, target_loss)
    cost = serving.cost(log_n, log_d, serving.c_inf)
    idx = int(np.nanargmin(cost))
    if idx in (0, log_n.size - 1) and log_n[idx] in (lo, hi):
        warnings.warn(
            f"the cheapest N={float(np.exp(log_n[idx])):.3g} is at an end of n_range {n_range}; "
            "widen n_range",
            stacklevel=4,
        )
    return _Cheapest(log_n, log_d, cost, idx)


def _own_optima(prep, target_loss, serving: _Serving, bounds, log_n_choice, max_draws):
    """Each draw's own least-cost N (law loss, no residual noise) on a grid around the choice.

    On at most ``max_draws`` draws, evenly thinned; NaN for a draw that cannot reach the
    target in the range.
    """
    lo, hi = bounds
    size = next(iter(prep.draws.values())).size
    take = np.unique(np.linspace(0, size - 1, min(size, max_draws)).astype(int))
    sub = {key: v[take] for key, v in prep.params.items()}
    per_grid = np.linspace(
        max(lo, log_n_choice - math.log(100.0)),
        min(hi, log_n_choice + math.log(100.0)),
        serving.num_candidates,
    )
    per_log_d = np.asarray(
        _min_tokens_per_draw_kernel(
            prep.spec.fn, sub, jnp.asarray(per_grid, jnp.float32), jnp.float32(target_loss)
        ),
        dtype=float,
    )
    per_cost = (
        serving.p_t * serving.k * np.exp(per_grid[None, :] + per_log_d)
        + serving.c_inf * np.exp(per_grid)[None, :]
    )
    reach = np.any(np.isfinite(per_cost), axis=1)
    n_opt = np.full(take.size, np.nan)
    if reach.any():
        filled = np.where(np.isfinite(per_cost[reach]), np.log(per_cost[reach]), np.inf)
        n_opt[reach] = np.exp(_refine_argmin(per_grid, filled))
    return n_opt, reach


def _target_mode(prep, risk, target_loss, serving: _Serving, n_range, max_draws):
    """The least-cost (N, D) with ``risk(loss) <= target_loss``."""
    target_loss = _positive("target_loss", target_loss)
    if risk.maximise:
        raise ValueError(
            f"target mode needs a lower-is-better risk held <= target_loss; got {risk.name!r}. "
            f"For 'reach the target with probability p' use quantile(p), e.g. 'quantile:0.9'"
        )
    bounds = _search_range(n_range, serving.max_n)
    found = _cheapest(prep, risk, target_loss, serving, bounds, n_range)
    log_n, log_d, idx = found.log_n, found.log_d, found.idx
    n_opt, reach = _own_optima(prep, target_loss, serving, bounds, log_n[idx], max_draws)
    interval = _interval(n_opt[reach], serving.interval_prob) if reach.any() else (math.nan,) * 2
    xs = {
        "N": jnp.full((1,), log_n[idx], jnp.float32),
        "D": jnp.full((1,), log_d[idx], jnp.float32),
    }
    noise = jnp.asarray(prep.noise_at(log_n[idx : idx + 1], log_d[idx : idx + 1]))
    pred = np.asarray(_pred_kernel(prep.spec.fn, prep.params, xs, noise), dtype=float)[0]
    law_at = np.asarray(_pred_kernel(prep.spec.fn, prep.params, xs, jnp.zeros(pred.size)))[0]
    dist = float(prep.distance(log_n[idx], log_d[idx]))
    delta = np.zeros(pred.size) if prep.slope is None else prep.slope * dist
    parts = _interval_parts(law_at, prep.log_noise, delta)
    choice = _choice(prep, risk, target_loss, serving, found, pred, n_opt, interval)
    return dataclasses.replace(choice, interval_parts=parts)


def _choice(prep, risk, target_loss, serving: _Serving, found: _Cheapest, pred, n_opt, interval):
    n_choice = float(np.exp(found.log_n[found.idx]))
    d_choice = float(np.exp(found.log_d[found.idx]))
    training = serving.k * n_choice * d_choice
    inference = serving.k_inf * n_choice * serving.inference_tokens
    total_cost = float(found.cost[found.idx])
    cheapest_training = int(np.nanargmin(serving.cost(found.log_n, found.log_d, 0.0)))
    curve = xr.DataArray(
        found.cost,
        dims=("N",),
        coords={"N": np.exp(found.log_n), "D": ("N", np.exp(found.log_d))},
        name="total_cost",
        attrs={
            "target_loss": target_loss,
            "risk": risk.name,
            "law": prep.spec.name,
            "units": "dollars" if serving.priced else "FLOPs",
        },
    )
    return InferenceAwareChoice(
        N=n_choice,
        D=d_choice,
        tokens_per_param=d_choice / n_choice,
        inference_tokens=serving.inference_tokens,
        training_flops=training,
        inference_flops=inference,
        total_flops=training + inference,
        cost=total_cost,
        dollars=total_cost if serving.priced else None,
        target_loss=target_loss,
        risk=risk.name,
        risk_value=float(risk(pred)),
        loss_mean=float(pred.mean()),
        loss_quantiles=_quantile_dict(pred),
        n_opt_draws=n_opt,
        n_opt_interval=interval,
        interval_prob=serving.interval_prob,
        compute_optimal_N=float(np.exp(found.log_n[cheapest_training])),
        cost_curve=curve,
        law=prep.spec.name,
    )


def allocate_inference_aware(
    draws_or_fit: Any,
    inference_tokens: float,
    *,
    target_loss: float | None = None,
    budget: float | None = None,
    risk: RiskMeasure | str = "expected",
    law: str | LawSpec | None = None,
    flops_per_token: float = 6.0,
    inference_flops_per_token: float = 2.0,
    dollars_per_flop: float | None = None,
    inference_dollars_per_flop: float | None = None,
    max_n: float | None = None,
    n_range: tuple[float, float] = (1e5, 1e15),
    num_candidates: int = 512,
    predictive: bool = True,
    interval_prob: float = 0.9,
    max_draws_per_draw_optimum: int = 1000,
    group: Any = None,
    rng_key: jax.Array | None = None,
    seed: int = 0,
    discrepancy: Any = "auto",
) -> InferenceAwareChoice | Allocation:
    """Size a model for training plus inference (Sardana et al. 2023).

    Two modes; give exactly one of ``target_loss`` and ``budget``:

    * ``target_loss``: the least total cost ``p_t k N D + p_i k_inf N D_inference`` such that
      ``risk(loss) <= target_loss``. ``risk`` must be lower-is-better (``expected``,
      ``quantile:Q``, ``cvar:L``); ``quantile(0.9)`` reads "reach the target with 90%
      probability". Returns an :class:`InferenceAwareChoice`.
    * ``budget``: the allocation optimising ``risk`` on the line ``cost = budget``, i.e.
      :func:`allocate` with the inference cost. Returns an :class:`Allocation`.

    Parameters
    ----------
    draws_or_fit : mapping or arviz.InferenceData
        As in :func:`allocate`; the law must be chinchilla or kaplan style (over N and D only).
    inference_tokens : float
        Expected tokens served over the model's life, ``D_inference``.
    target_loss : float, optional
        Loss to reach.
    budget : float, optional
        Total budget, in dollars if ``dollars_per_flop`` is given, else FLOPs.
    risk : RiskMeasure or str, default "expected"
        See the modes above.
    law, flops_per_token, max_n, num_candidates, predictive, interval_prob, group, rng_key, seed
        As in :func:`allocate`.
    discrepancy : "auto", None, float or Discrepancy, default "auto"
        As in :func:`allocate`: the loss draws at each (N, D) searched include ``b_s d(N, D)``,
        one ``b_s`` per draw shared by all candidates.
    inference_flops_per_token : float, default 2.0
        ``k_inf``: FLOPs per parameter per served token.
    dollars_per_flop, inference_dollars_per_flop : float, optional
        Prices ``p_t`` and ``p_i`` (``p_i`` defaults to ``p_t``; inference often runs at lower
        utilisation, hence a higher price per FLOP). Unpriced, costs are FLOPs.
    n_range : (float, float), default (1e5, 1e15)
        Model sizes searched in the target mode (a coarse pass over the range, then
        ``num_candidates`` around the cheapest).
    max_draws_per_draw_optimum : int, default 1000
        In the target mode, each draw's own optimum is computed on at most this many draws
        (evenly thinned) to bound the cost.

    Returns
    -------
    InferenceAwareChoice or Allocation

    Raises
    ------
    ValueError
        For both or neither of ``target_loss``/``budget``, a higher-is-better risk in the target
        mode, a target no candidate reaches, or bad arguments.

    Notes
    -----
    Target mode: for each candidate ``N`` the least training tokens ``D(N)`` with
    ``risk(L(N, D)) <= target`` are found by bisection on ``log D`` (loss falls with ``D`` for
    every draw and the measures are monotone), vectorised over candidates; the cheapest
    candidate wins. Larger inference demand moves the choice to smaller, longer-trained models.

    References
    ----------
    Sardana et al. 2023, "Beyond Chinchilla-Optimal: Accounting for Inference in Language Model
    Scaling Laws", arXiv:2401.00448.

    Examples
    --------
    >>> epoch = dict(E=1.817, A=482.0, B=2085.0, alpha=0.348, beta=0.366, sigma=0.0)
    >>> c = allocate_inference_aware(epoch, 1e13, target_loss=2.0, predictive=False)
    >>> c.N < c.compute_optimal_N
    True
    """
    inference_tokens = _positive("inference_tokens", inference_tokens)
    if (target_loss is None) == (budget is None):
        raise ValueError("give exactly one of target_loss= (least cost) and budget= (best loss)")
    serving = _serving(
        inference_tokens,
        flops_per_token,
        inference_flops_per_token,
        dollars_per_flop,
        inference_dollars_per_flop,
        max_n,
        num_candidates,
        interval_prob,
    )
    measure = _as_risk(risk)
    if not isinstance(measure, RiskMeasure):
        raise TypeError("allocate_inference_aware needs a RiskMeasure (e.g. 'quantile:0.9')")
    prep = _prepare(draws_or_fit, law, None, None, predictive, group, rng_key, seed, discrepancy)
    if "U" in prep.spec.covariates:
        raise ValueError(
            "allocate_inference_aware supports laws over N and D only "
            f"(chinchilla, kaplan); got {prep.spec.name!r}"
        )
    if budget is not None:
        return _budget_mode(prep, measure, budget, serving)
    return _target_mode(prep, measure, target_loss, serving, n_range, max_draws_per_draw_optimum)
