"""Targets: the least compute at which some allocation reaches a loss with a given probability."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax

from bayes_scaling.decide._common import (
    _check_common,
    _check_prob,
    _positive,
    _prepare,
    _repetition_label,
)
from bayes_scaling.decide._kernels import _bisect
from bayes_scaling.decide._line import _CostLine
from bayes_scaling.decide.allocation import Allocation, _allocate_prepared
from bayes_scaling.decide.risk import prob_below
from bayes_scaling.laws import LawSpec


@dataclasses.dataclass(frozen=True, eq=False)
class TargetCompute:
    """Least compute reaching a target loss with a given probability.

    Attributes
    ----------
    compute : float
        Least FLOPs (within ``rtol``) at which ``max_N P(loss <= target) >= prob``.
    N, D, tokens_per_param : float
        The allocation achieving it.
    target_loss, prob : float
        The request.
    achieved_prob : float
        ``P(loss <= target)`` at the returned allocation (>= ``prob``).
    max_prob : float
        Probability reached at the largest compute searched (the ceiling set by ``E`` and noise).
    allocation : Allocation
        Full allocation result at ``compute`` (risk ``prob_below:target``).
    """

    compute: float
    N: float
    D: float
    tokens_per_param: float
    target_loss: float
    prob: float
    achieved_prob: float
    max_prob: float
    allocation: Allocation

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary.

        Keys: ``compute``, ``N``, ``D``, ``tokens_per_param``, ``target_loss``, ``prob``,
        ``achieved_prob``, ``max_prob``, ``loss_quantiles``, ``n_opt_interval``, ``law``,
        ``interval_parts`` and ``discrepancy`` (as in :meth:`Allocation.to_dict`).
        """
        return {
            "compute": float(self.compute),
            "N": float(self.N),
            "D": float(self.D),
            "tokens_per_param": float(self.tokens_per_param),
            "target_loss": float(self.target_loss),
            "prob": float(self.prob),
            "achieved_prob": float(self.achieved_prob),
            "max_prob": float(self.max_prob),
            "loss_quantiles": dict(self.allocation.loss_quantiles),
            "n_opt_interval": [float(v) for v in self.allocation.n_opt_interval],
            "law": self.allocation.law,
            "interval_parts": {k: float(v) for k, v in self.allocation.interval_parts.items()},
            "discrepancy": self.allocation.discrepancy,
        }


def compute_for_target(
    draws_or_fit: Any,
    target_loss: float,
    prob: float = 0.9,
    *,
    law: str | LawSpec | None = None,
    flops_per_token: float = 6.0,
    max_n: float | None = None,
    unique_tokens: float | None = None,
    repetition: str | Mapping[str, float] | None = None,
    num_candidates: int = 512,
    predictive: bool = True,
    compute_bounds: tuple[float, float] = (1e6, 1e40),
    rtol: float = 1e-3,
    interval_prob: float = 0.9,
    group: Any = None,
    rng_key: jax.Array | None = None,
    seed: int = 0,
    discrepancy: Any = "auto",
) -> TargetCompute:
    """Least compute at which some allocation reaches ``target_loss`` with probability ``prob``.

    Parameters
    ----------
    draws_or_fit : mapping or arviz.InferenceData
        As in :func:`allocate`.
    target_loss : float
        Loss to reach (nats), > 0.
    prob : float, default 0.9
        Required probability in (0, 1).
    law, flops_per_token, max_n, unique_tokens, repetition, num_candidates, predictive, \
interval_prob, group, rng_key, seed, discrepancy
        As in :func:`allocate`; the discrepancy's draws ``b_s`` are the same at every compute
        searched.
    compute_bounds : (float, float), default (1e6, 1e40)
        Search range of compute in FLOPs.
    rtol : float, default 1e-3
        Relative precision of the returned compute.

    Returns
    -------
    TargetCompute
        The compute, its allocation and the achieved probability.

    Raises
    ------
    ValueError
        If the target is not reached with probability ``prob`` even at ``compute_bounds[1]``
        (the message gives the probability reached there), or for bad arguments.

    Notes
    -----
    ``p(C) = max_N P(L(N, C/(kN)) <= target)`` is evaluated with :func:`allocate`'s kernel and
    ``prob_below(target)``, with the same predictive noise at every ``C`` (common random
    numbers), and the least ``C`` with ``p(C) >= prob`` is found by bisection on ``log C``
    between the bounds. ``p`` is a step function of ``C`` for finitely many
    draws; the returned compute meets the requirement, within ``rtol`` of the least that does.

    Examples
    --------
    >>> epoch = dict(E=1.817, A=482.0, B=2085.0, alpha=0.348, beta=0.366, sigma=0.0)
    >>> t = compute_for_target(epoch, 2.0, prob=0.5, predictive=False)
    >>> f"{t.compute:.2g} FLOP, N = {t.N:.2g}"
    '2.4e+23 FLOP, N = 4.6e+10'
    """
    target_loss = _positive("target_loss", target_loss)
    prob = _check_prob("prob", prob)
    k, max_n, unique_tokens, num_candidates, interval_prob = _check_common(
        flops_per_token, max_n, unique_tokens, num_candidates, interval_prob
    )
    c_lo, c_hi = (_positive("compute_bounds", v) for v in compute_bounds)
    if not c_lo < c_hi:
        raise ValueError(
            f"compute_bounds must be (low, high) with low < high; got {compute_bounds}"
        )
    rtol = _positive("rtol", rtol)
    risk = prob_below(target_loss)
    prep = _prepare(
        draws_or_fit,
        law,
        unique_tokens,
        repetition,
        predictive,
        group,
        rng_key,
        seed,
        discrepancy,
    )
    line = _CostLine(
        k=k,
        c_inf=0.0,
        max_n=max_n,
        unique_tokens=unique_tokens,
        n_range=None,
        num_candidates=num_candidates,
        interval_prob=interval_prob,
        constraints={
            "max_n": max_n,
            "unique_tokens": unique_tokens,
            "inference_tokens": None,
            "repetition": _repetition_label(repetition),
        },
        warn_boundary=False,
    )
    allocations: dict[float, Allocation] = {}

    def at(c: float) -> Allocation:
        return _allocate_prepared(prep, c, risk, line)

    def reached(log_c: Any) -> bool:
        allocations[float(log_c)] = alloc = at(math.exp(log_c))
        return alloc.risk_value >= prob

    top = _check_bracket(at, target_loss, prob, c_lo, c_hi)
    # the least log C with p(C) >= prob; each midpoint's allocation is kept for the answer
    _, log_hi = _bisect(reached, math.log(c_lo), math.log(c_hi), tol=math.log1p(rtol))
    hi_alloc = allocations.get(float(log_hi), top)
    return TargetCompute(
        compute=hi_alloc.compute,
        N=hi_alloc.N,
        D=hi_alloc.D,
        tokens_per_param=hi_alloc.tokens_per_param,
        target_loss=target_loss,
        prob=prob,
        achieved_prob=hi_alloc.risk_value,
        max_prob=top.risk_value,
        allocation=hi_alloc,
    )


def _check_bracket(at, target_loss: float, prob: float, c_lo: float, c_hi: float) -> Allocation:
    """The allocation at ``c_hi``, after checking that the bounds bracket the least compute."""
    top = at(c_hi)
    if top.risk_value < prob:
        raise ValueError(
            f"target loss {target_loss:g} is reached with probability at most "
            f"{top.risk_value:.3g} (at compute {c_hi:.3g} FLOP), below prob={prob:g}; raise "
            "target_loss, lower prob or raise the upper compute bound (compute_bounds=(low, "
            "high))"
        )
    bottom = at(c_lo)
    if bottom.risk_value >= prob:
        raise ValueError(
            f"target loss {target_loss:g} is already reached with probability "
            f"{bottom.risk_value:.3g} at the lower compute bound {c_lo:.3g} FLOP; lower "
            "that bound (compute_bounds=(low, high))"
        )
    return top
