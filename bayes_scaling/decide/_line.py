"""The cost line of an allocation: candidate model sizes, the loss draws there, each draw's optimum.

An allocation searches ``num_candidates`` log-spaced model sizes on the line
``k N D + c_inf N = compute`` (:class:`_CostLine`), evaluates the law and the predictive loss
for every draw at every candidate in one jitted kernel, reduces the draws with the risk measure,
and finds each draw's own optimum (the law's closed form where exact, else a refined argmin).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayes_scaling.decide._common import _positive, _Prepared
from bayes_scaling.decide._kernels import _law_at_points, _law_log, _parabola_vertex
from bayes_scaling.decide.risk import RiskMeasure, _risk_maximise, _risk_name
from bayes_scaling.laws import LawSpec

# --------------------------------------------------------------------------- the cost line


@dataclasses.dataclass(frozen=True)
class _CostLine:
    """What an allocation searches: the cost line ``k N D + c_inf N = compute`` and its limits.

    Attributes
    ----------
    k : float
        FLOPs per parameter per training token.
    c_inf : float
        Cost per parameter beyond training (inference), in the budget's units.
    max_n, unique_tokens : float or None
        Constraints (``unique_tokens`` feeds the repetition law's ``U``).
    n_range : (float, float) or None
        Candidate range of ``N``; None for the default around the draws' optima.
    num_candidates : int
    interval_prob : float
    constraints : dict
        Reported with the result.
    dollars_per_flop : float or None
        Price of training and inference FLOPs, for the result's ``dollars``.
    warn_boundary : bool
        Warn when the choice sits at an end of the range or the target is out of reach.
    stacklevel : int
        Of those warnings: 4 points at the caller of a public function that calls
        :func:`_allocate_prepared` directly.
    """

    k: float
    c_inf: float
    max_n: float | None
    unique_tokens: float | None
    n_range: tuple[float, float] | None
    num_candidates: int
    interval_prob: float
    constraints: dict[str, Any]
    dollars_per_flop: float | None = None
    warn_boundary: bool = True
    stacklevel: int = 4


def _log_d_on_line(log_n: np.ndarray, compute: float, k: float, c_inf: float) -> np.ndarray:
    """log D on the cost line ``k N D + c_inf N = compute``."""
    n = np.exp(log_n)
    return np.log(compute - c_inf * n) - math.log(k) - log_n


def _closed_form_log_n_opt(
    spec: LawSpec, draws: Mapping[str, np.ndarray], compute: float, k: float
) -> np.ndarray | None:
    """Per-draw log N*(C) on ``C = k N D`` from the law's closed form (None where it has none).

    For a law with covariates beyond N and D (the data-constrained law) it is the optimum
    where those do not bind (no repetition).
    """
    if spec.log_n_opt is None:
        return None
    return np.asarray(spec.log_n_opt(draws, math.log(compute) - math.log(k)))


def _exact_optimum(spec: LawSpec, line: _CostLine) -> bool:
    """Whether the closed form is each draw's exact optimum on this line (law over N, D only)."""
    return spec.log_n_opt is not None and set(spec.covariates) == {"N", "D"} and line.c_inf == 0.0


@dataclasses.dataclass(frozen=True)
class _Grid:
    log_n: np.ndarray
    upper_is_constraint: bool
    lower_is_constraint: bool


def _default_range(spec, draws, compute: float, line: _CostLine) -> tuple[float, float]:
    """Log N range around the draws' closed-form optima (factor 4 each way), else D/N 1e-2..1e4."""
    log_opt = _closed_form_log_n_opt(spec, draws, compute, line.k)
    if log_opt is not None and np.all(np.isfinite(log_opt)):
        q_lo, q_hi = np.quantile(log_opt, [0.005, 0.995])
        lo, hi = q_lo - math.log(4.0), q_hi + math.log(4.0)
    else:  # tokens per parameter from 1e-2 to 1e4
        log_ck = math.log(compute) - math.log(line.k)
        lo, hi = 0.5 * (log_ck - math.log(1e4)), 0.5 * (log_ck + math.log(1e2))
    if line.unique_tokens is not None:
        hi = max(hi, math.log(compute / (line.k * line.unique_tokens)) + math.log(4.0))
    return lo, hi


def _candidate_grid(spec, draws, compute: float, line: _CostLine) -> _Grid:
    if line.n_range is not None:
        lo, hi = (math.log(_positive("n_range bound", v)) for v in line.n_range)
        if lo >= hi:
            raise ValueError(f"n_range must be (low, high) with low < high; got {line.n_range}")
    else:
        lo, hi = _default_range(spec, draws, compute, line)
    cap = math.log(compute / line.k)  # at least one token
    if line.max_n is not None:
        cap = min(cap, math.log(line.max_n))
    if line.c_inf > 0:
        cap = min(cap, math.log(compute / line.c_inf) + math.log(0.999))
    upper_is_constraint = hi >= cap
    hi = min(hi, cap)
    lower_is_constraint = lo <= 0.0
    lo = max(lo, 0.0)
    if lo >= hi:
        lo = hi - math.log(16.0)
        if lo < 0.0:
            raise ValueError(
                f"no feasible model size on the cost line: compute {compute:g} with the given "
                "constraints leaves N < 1"
            )
    return _Grid(np.linspace(lo, hi, line.num_candidates), upper_is_constraint, lower_is_constraint)


def _covariates(spec: LawSpec, log_n: Any, log_d: Any, log_u: Any) -> dict[str, Any]:
    x = {"N": log_n, "D": log_d}
    if "U" in spec.covariates:
        x["U"] = log_d if log_u is None else log_u
    return x


# --------------------------------------------------------------------------- the candidates


@functools.partial(jax.jit, static_argnames=("fn",))
def _loss_matrix_kernel(fn, params, x, log_noise):
    """Law and predictive loss draws over candidates, as ``(K, S)`` arrays, and per-draw argmins.

    ``params`` holds ``(S,)`` arrays, ``x`` the log covariates ``(K,)``; ``log_noise`` is the
    per-draw residual ``(S,)``, or ``(K, S)`` with the extrapolation discrepancy added. The
    output is candidate-major so that reductions over draws run along contiguous rows.
    """
    law_log = _law_log(fn, params, x).T  # (K, S)
    pred = jnp.exp(law_log + log_noise)
    num = law_log.shape[0]
    per_idx = jnp.argmin(law_log, axis=0)  # (S,) each draw's best candidate
    cols = jnp.arange(law_log.shape[1])
    nbrs = jnp.stack([law_log[jnp.clip(per_idx + o, 0, num - 1), cols] for o in (-1, 0, 1)], axis=1)
    return {"law_log": law_log, "pred": pred, "per_idx": per_idx, "per_nbrs": nbrs}


def _risk_curve(risk: Any, pred: np.ndarray) -> np.ndarray:
    """Risk over draws for each candidate row of ``pred`` (K, S)."""
    if isinstance(risk, RiskMeasure):
        curve = np.asarray(risk.reduce_numpy(pred, axis=-1), dtype=float)
    else:
        curve = np.array([float(risk(row)) for row in pred])
    if not np.all(np.isfinite(curve)):
        bad = ~np.all(np.isfinite(pred), axis=0)
        raise ValueError(
            f"risk {_risk_name(risk)!r} is not finite at {int((~np.isfinite(curve)).sum())} of "
            f"{curve.size} candidates"
            + (
                f": {int(bad.sum())} of {bad.size} draws give a non-finite loss there (beyond "
                "the float32 range); their parameters are extreme (e.g. a new group drawn from "
                "a wide population)"
                if bad.any()
                else ""
            )
        )
    return curve


def _run_allocation(spec, params, x, log_noise, risk):
    out = jax.device_get(_loss_matrix_kernel(spec.fn, params, x, log_noise))
    pred = out["pred"]
    curve = _risk_curve(risk, pred)
    mean_pred = pred.mean(axis=-1, dtype=np.float64)
    score = -curve if _risk_maximise(risk) else curve
    # ties (e.g. a probability equal to 1 over a range) go to the lowest expected loss
    idx = int(np.argmin(np.where(score <= score.min(), mean_pred, np.inf)))
    return {
        "curve": curve,
        "mean": mean_pred,
        "idx": idx,
        "pred_at": pred[idx],
        "law_at": np.exp(out["law_log"][idx].astype(np.float64)),
        "per_idx": out["per_idx"],
        "per_nbrs": out["per_nbrs"],
    }


def _evaluate_candidates(prep: _Prepared, log_n, log_d, unique_tokens, risk) -> dict[str, Any]:
    log_u = None if unique_tokens is None else np.full_like(log_n, math.log(unique_tokens))
    x = {
        key: jnp.asarray(v, dtype=jnp.float32)
        for key, v in _covariates(prep.spec, log_n, log_d, log_u).items()
    }
    noise = prep.noise_at(log_n, log_d, log_u)
    return _run_allocation(prep.spec, prep.params, x, jnp.asarray(noise), risk)


def _per_draw_optimum(
    prep: _Prepared, log_n: np.ndarray, out: Mapping[str, Any], compute: float, line: _CostLine
) -> tuple[np.ndarray, np.ndarray]:
    """Each draw's own optimum under the same constraints: (log N*, law loss there).

    Closed form where the law has an exact one on this line (clipped to the constraints), else
    the draw's argmin over the candidates refined by a parabola in log N.
    """
    spec = prep.spec
    if _exact_optimum(spec, line):
        closed_form = _closed_form_log_n_opt(spec, prep.draws, compute, line.k)
        assert closed_form is not None  # _exact_optimum checked it
        upper = math.log(line.max_n) if line.max_n is not None else math.inf
        log_opt = np.clip(closed_form, 0.0, min(upper, math.log(compute / line.k)))
        log_d_opt = _log_d_on_line(log_opt, compute, line.k, 0.0)
        xs = {"N": jnp.asarray(log_opt, jnp.float32), "D": jnp.asarray(log_d_opt, jnp.float32)}
        law_opt = np.exp(np.asarray(_law_at_points(spec.fn, prep.params, xs), dtype=float))
        return log_opt, law_opt
    nb = np.asarray(out["per_nbrs"], dtype=float)
    return _parabola_vertex(log_n, np.asarray(out["per_idx"]), nb), np.exp(nb[:, 1])
