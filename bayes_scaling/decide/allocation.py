"""Compute allocation: split a budget between parameters ``N`` and tokens ``D`` under a risk.

:func:`allocate` evaluates the law for every draw at ``num_candidates`` log-spaced model sizes on
the cost line ``C = k N D`` (plus ``c N`` for inference) in one jitted, vmapped JAX call, applies
the risk measure across draws and picks the best candidate. It also reports the posterior of each
draw's own optimum ``N*(C)`` and the expected regret of the choice.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import xarray as xr

from bayes_scaling.decide._common import (
    _check_common,
    _interval,
    _interval_parts,
    _optional_positive,
    _positive,
    _prepare,
    _Prepared,
    _quantile_dict,
    _repetition_label,
)
from bayes_scaling.decide._line import (
    _candidate_grid,
    _CostLine,
    _evaluate_candidates,
    _Grid,
    _log_d_on_line,
    _per_draw_optimum,
)
from bayes_scaling.decide.risk import RiskMeasure, _as_risk, _risk_maximise, _risk_name
from bayes_scaling.laws import LawSpec

#: Below this best probability, prob_below's target counts as out of reach.
_UNREACHABLE_PROB = 0.01


# --------------------------------------------------------------------------- the result


@dataclasses.dataclass(frozen=True, eq=False)
class Allocation:
    """A chosen split of a compute budget between parameters and tokens.

    Attributes
    ----------
    compute : float
        Budget on the cost line, FLOPs: training compute ``k N D``, plus the inference compute
        ``2 N D_inference`` when inference tokens are given.
    N, D : float
        Chosen parameters and training tokens.
    tokens_per_param : float
        ``D / N``.
    risk : str
        Risk measure optimised (``"expected"``, ``"cvar:0.9"``, ...).
    risk_value : float
        Its value at the choice.
    loss_mean : float
        Expected (predictive) loss at the choice.
    loss_quantiles : dict of str to float
        Loss quantiles at the choice, keyed by level (``"0.05"``, ``"0.25"``, ``"0.5"``, ...).
    n_opt_draws : numpy.ndarray
        Each draw's own optimum ``N*(C)`` under the same constraints, shape (S,).
    n_opt_interval, d_opt_interval : tuple of float
        Central ``interval_prob`` credible interval of ``N*(C)`` and the matching ``D``.
    interval_prob : float
        Probability of those intervals (default 0.9).
    regret : float
        Expected regret in loss (nats): mean over draws of the law's loss at the choice minus the
        loss at that draw's own optimum (>= 0).
    regret_draws : numpy.ndarray
        Per-draw regret, shape (S,).
    risk_curve : xarray.DataArray
        Risk over the candidates, dim ``N``; coords ``D``, ``tokens_per_param`` and
        ``loss_mean`` along ``N``; attrs ``risk``, ``maximise``, ``compute``, ``law``.
    law : str
        Law used (``data_constrained`` when a unique-token cap was applied).
    flops_per_token : float
        ``k`` in ``C = k N D``.
    constraints : dict
        ``max_n``, ``unique_tokens``, ``inference_tokens``, ``repetition`` (None when unused).
    training_flops, inference_flops : float
        ``k N D`` and the inference part of the cost.
    dollars : float or None
        Cost in dollars when a price per FLOP was given.
    at_boundary : bool
        True when the choice sits on an end of the candidate range that is not a constraint
        (a warning was issued).
    target_unreachable : bool
        With ``prob_below(target)``: True when the best probability over the candidates is
        below 1%, so the target is out of reach and the choice says little (a
        ``RuntimeWarning`` was issued).
    interval_parts : dict of str to float
        Width of the 90% loss interval at the choice from each source alone: ``parameter``
        (the law over the posterior draws), ``noise`` (the median law loss times the run-to-run
        noise), ``structural`` (the median law loss times the extrapolation discrepancy
        ``exp(b d)``, 0 when it is off) and ``total`` (all three: ``loss_quantiles``' range).
        Widths from single sources do not add up to the total.
    discrepancy : dict or None
        The extrapolation discrepancy used (``method``, ``tau_median``, ``tau_q05``,
        ``tau_q95`` and ``distance``, the choice's distance outside the fit's data), or None.
    """

    compute: float
    N: float
    D: float
    tokens_per_param: float
    risk: str
    risk_value: float
    loss_mean: float
    loss_quantiles: dict[str, float]
    n_opt_draws: np.ndarray
    n_opt_interval: tuple[float, float]
    d_opt_interval: tuple[float, float]
    interval_prob: float
    regret: float
    regret_draws: np.ndarray
    risk_curve: xr.DataArray
    law: str
    flops_per_token: float
    constraints: dict[str, Any]
    training_flops: float
    inference_flops: float
    dollars: float | None = None
    at_boundary: bool = False
    target_unreachable: bool = False
    interval_parts: dict[str, float] = dataclasses.field(default_factory=dict)
    discrepancy: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary.

        Keys: ``N``, ``D``, ``tokens_per_param``, ``compute``, ``risk``, ``risk_value``,
        ``loss_mean``, ``loss_quantiles`` (level string -> loss), ``n_opt_median``,
        ``n_opt_interval`` ([low, high]), ``d_opt_interval``, ``interval_prob``, ``regret``,
        ``law``, ``flops_per_token``, ``constraints``, ``training_flops``, ``inference_flops``,
        ``dollars`` (null unless priced), ``at_boundary``, ``target_unreachable``,
        ``interval_parts`` (90% widths by source: ``parameter``, ``noise``, ``structural``,
        ``total``) and ``discrepancy`` (null when off).
        """
        return {
            "N": float(self.N),
            "D": float(self.D),
            "tokens_per_param": float(self.tokens_per_param),
            "compute": float(self.compute),
            "risk": self.risk,
            "risk_value": float(self.risk_value),
            "loss_mean": float(self.loss_mean),
            "loss_quantiles": dict(self.loss_quantiles),
            "n_opt_median": float(np.median(self.n_opt_draws)),
            "n_opt_interval": [float(v) for v in self.n_opt_interval],
            "d_opt_interval": [float(v) for v in self.d_opt_interval],
            "interval_prob": float(self.interval_prob),
            "regret": float(self.regret),
            "law": self.law,
            "flops_per_token": float(self.flops_per_token),
            "constraints": {
                k: (v if v is None or isinstance(v, (str, dict)) else float(v))
                for k, v in self.constraints.items()
            },
            "training_flops": float(self.training_flops),
            "inference_flops": float(self.inference_flops),
            "dollars": None if self.dollars is None else float(self.dollars),
            "at_boundary": bool(self.at_boundary),
            "target_unreachable": bool(self.target_unreachable),
            "interval_parts": {k: float(v) for k, v in self.interval_parts.items()},
            "discrepancy": None if self.discrepancy is None else dict(self.discrepancy),
        }


def _at_boundary(grid: _Grid, idx: int, line: _CostLine) -> bool:
    """Whether the choice is at an end of the range that is not a constraint (warns then)."""
    log_n = grid.log_n
    at_lower = idx == 0 and not grid.lower_is_constraint
    at_upper = idx == log_n.size - 1 and not grid.upper_is_constraint
    if (at_lower or at_upper) and line.warn_boundary:
        warnings.warn(
            f"the chosen N={math.exp(log_n[idx]):.3g} is at the "
            f"{'lower' if at_lower else 'upper'} end of the candidate range "
            f"[{math.exp(log_n[0]):.3g}, {math.exp(log_n[-1]):.3g}]; the optimum may lie outside "
            "it: widen the candidate range (n_range=(low, high))",
            stacklevel=line.stacklevel,
        )
    return bool(at_lower or at_upper)


def _target_unreachable(risk: Any, out: Mapping[str, Any], compute: float, line: _CostLine) -> bool:
    """With ``prob_below``: whether the best probability is below 1% (warns then)."""
    idx = out["idx"]
    risk_value = float(out["curve"][idx])
    unreachable = (
        isinstance(risk, RiskMeasure)
        and risk.kind == "prob_below"
        and risk_value < _UNREACHABLE_PROB
    )
    if unreachable and line.warn_boundary:
        size = int(np.asarray(out["pred_at"]).size)
        n_choice = float(np.exp(out["log_n"][idx]))
        warnings.warn(
            f"loss {risk.param:g} is out of reach at compute {compute:.3g} FLOP: the best "
            f"P(loss <= {risk.param:g}) over the {out['log_n'].size} candidates is "
            f"{risk_value:.3g} ({round(risk_value * size)} of {size} draws reach it); the choice "
            f"N={n_choice:.3g} (expected loss {float(np.asarray(out['mean'])[idx]):.4g}) says "
            "little. Raise the compute or the target loss",
            RuntimeWarning,
            stacklevel=line.stacklevel,
        )
    return bool(unreachable)


def _risk_curve_array(out: Mapping[str, Any], log_d, risk, compute, law: str) -> xr.DataArray:
    log_n = out["log_n"]
    return xr.DataArray(
        np.asarray(out["curve"], dtype=float),
        dims=("N",),
        coords={
            "N": np.exp(log_n),
            "D": ("N", np.exp(log_d)),
            "tokens_per_param": ("N", np.exp(log_d - log_n)),
            "loss_mean": ("N", np.asarray(out["mean"], dtype=float)),
        },
        name="risk",
        attrs={
            "risk": _risk_name(risk),
            "maximise": int(_risk_maximise(risk)),
            "compute": compute,
            "law": law,
            "chosen_N": float(np.exp(log_n[out["idx"]])),
        },
    )


def _allocate_prepared(prep: _Prepared, compute: float, risk: Any, line: _CostLine) -> Allocation:
    """The allocation of ``compute`` on ``line`` for prepared draws."""
    grid = _candidate_grid(prep.spec, prep.draws, compute, line)
    log_n = grid.log_n
    log_d = _log_d_on_line(log_n, compute, line.k, line.c_inf)
    out = dict(_evaluate_candidates(prep, log_n, log_d, line.unique_tokens, risk), log_n=log_n)
    idx = int(out["idx"])
    log_opt, law_opt = _per_draw_optimum(prep, log_n, out, compute, line)
    n_opt = np.exp(log_opt)
    d_opt = np.exp(_log_d_on_line(log_opt, compute, line.k, line.c_inf))
    regret_draws = np.maximum(np.asarray(out["law_at"], dtype=float) - law_opt, 0.0)
    n_choice, d_choice = float(np.exp(log_n[idx])), float(np.exp(log_d[idx]))
    at_boundary = _at_boundary(grid, idx, line)
    target_unreachable = _target_unreachable(risk, out, compute, line)
    pred_at = np.asarray(out["pred_at"], dtype=float)
    d_lo, d_hi = sorted(_interval(d_opt, line.interval_prob))
    training = line.k * n_choice * d_choice
    inference = compute - training if line.c_inf > 0 else 0.0
    price = line.dollars_per_flop
    parts, disc = _sources(prep, out, log_d[idx], line)
    return Allocation(
        compute=compute,
        N=n_choice,
        D=d_choice,
        tokens_per_param=d_choice / n_choice,
        risk=_risk_name(risk),
        risk_value=float(out["curve"][idx]),
        loss_mean=float(pred_at.mean()),
        loss_quantiles=_quantile_dict(pred_at),
        n_opt_draws=n_opt,
        n_opt_interval=_interval(n_opt, line.interval_prob),
        d_opt_interval=(d_lo, d_hi),
        interval_prob=line.interval_prob,
        regret=float(regret_draws.mean()),
        regret_draws=regret_draws,
        risk_curve=_risk_curve_array(out, log_d, risk, compute, prep.spec.name),
        law=prep.spec.name,
        flops_per_token=line.k,
        constraints=line.constraints,
        training_flops=training,
        inference_flops=inference,
        dollars=None if price is None else price * training + price * inference,
        at_boundary=at_boundary,
        target_unreachable=target_unreachable,
        interval_parts=parts,
        discrepancy=disc,
    )


def _sources(prep: _Prepared, out: Mapping[str, Any], log_d_choice: float, line: _CostLine):
    """The 90% widths by source at the choice, and a summary of the discrepancy used."""
    log_n_choice = float(out["log_n"][out["idx"]])
    log_u = None if line.unique_tokens is None else math.log(line.unique_tokens)
    dist = float(prep.distance(log_n_choice, log_d_choice, log_u))
    delta = np.zeros(prep.log_noise.size) if prep.slope is None else prep.slope * dist
    parts = _interval_parts(out["law_at"], prep.log_noise, delta)
    if prep.discrepancy is None:
        return parts, None
    summary = prep.discrepancy.summary()
    summary.pop("coordinates")
    return parts, {**summary, "distance": dist}


def allocate(
    draws_or_fit: Any,
    compute: float,
    risk: RiskMeasure | str | Callable = "expected",
    *,
    law: str | LawSpec | None = None,
    flops_per_token: float = 6.0,
    max_n: float | None = None,
    unique_tokens: float | None = None,
    repetition: str | Mapping[str, float] | None = None,
    inference_tokens: float | None = None,
    dollars_per_flop: float | None = None,
    num_candidates: int = 512,
    n_range: tuple[float, float] | None = None,
    predictive: bool = True,
    interval_prob: float = 0.9,
    group: Any = None,
    rng_key: jax.Array | None = None,
    seed: int = 0,
    discrepancy: Any = "auto",
) -> Allocation:
    r"""Split a compute budget between parameters and tokens, optimising a risk measure.

    Parameters
    ----------
    draws_or_fit : mapping or arviz.InferenceData
        Posterior draws ``{name: array (S,)}`` of the law's parameters plus ``sigma`` (and
        ``nu``), or a fit (read with ``posterior_draws(fit, group=group)``).
    compute : float
        Budget ``C`` in FLOPs. With ``inference_tokens`` it is the total lifetime compute.
    risk : RiskMeasure, str or callable, default "expected"
        Measure over the loss draws at each candidate: :func:`expected`, :func:`quantile`,
        :func:`cvar`, :func:`prob_below`, a spelling for :func:`parse_risk`, or any
        ``f(loss_draws) -> float`` (minimised unless it has ``maximise = True``; evaluated per
        candidate outside JAX, so slower).
    law : str or LawSpec, optional
        Law of the draws; default the fit's recorded law, else inferred from the parameter names.
        Must be over ``N`` and ``D`` (chinchilla, kaplan, data_constrained).
    flops_per_token : float, default 6.0
        ``k`` in ``C = k N D``.
    max_n : float, optional
        Cap on parameters (memory, serving).
    unique_tokens : float, optional
        Unique tokens available ``U``; tokens beyond ``U`` are repeats, valued with the
        data-constrained law. Needs draws with ``R_D``, ``R_N`` or ``repetition``.
    repetition : {"muennighoff"} or mapping, optional
        With chinchilla draws and ``unique_tokens``: fixed repetition constants, either
        Muennighoff et al. 2023's (``R_D=15.39, R_N=5.31``) or ``{"R_D": ..., "R_N": ...}``.
    inference_tokens : float, optional
        Expected tokens served over the model's life; the cost line becomes
        ``k N D + 2 N D_inference = compute`` (Sardana et al. 2023).
    dollars_per_flop : float, optional
        Price per FLOP; adds the dollar cost of the choice (``dollars``).
    num_candidates : int, default 512
        Log-spaced model sizes on the cost line.
    n_range : (float, float), optional
        Candidate range of ``N``. Default: the 0.5%-99.5% range of the draws' closed-form optima
        widened by a factor 4 each way (tokens per parameter 1e-2..1e4 for laws without one),
        clipped to the constraints.
    predictive : bool, default True
        Add the residual noise ``exp(sigma * eps)``, ``eps`` standard normal, to each draw's
        loss. One ``eps`` per draw is shared by all candidates (common random numbers), so the
        risk curve is smooth and each candidate sees the same predictive distribution. A
        Student-t fit's ``nu`` is not used: its heavy tails model outlying records, and under
        them the mean and CVaR of the loss are infinite at every candidate.
    interval_prob : float, default 0.9
        Probability of the central credible intervals reported.
    group : optional
        Group of a grouped fit (``"new"`` for a new group); only with a fit.
    rng_key : jax.Array, optional
        Key for the predictive noise; default ``jax.random.PRNGKey(seed)``.
    seed : int, default 0
        Used when ``rng_key`` is None.
    discrepancy : "auto", None, float or Discrepancy, default "auto"
        Extrapolation discrepancy added to the loss draws (see :mod:`bayes_scaling.predict`):
        ``"auto"`` is the fit's stored one (a fit without one gets none, with a warning; raw
        draws get none); None turns it off; a number fixes ``tau`` with the fit's data; a
        :class:`~bayes_scaling.predict.Discrepancy` is used as given. At each candidate the
        log loss of draw ``s`` gains ``b_s d(x)``, ``b_s ~ N(0, tau_s^2)`` drawn once per draw
        and shared by all candidates (common random numbers), ``d(x)`` the candidate's distance
        outside the fit's data (:meth:`~bayes_scaling.predict.Discrepancy.distance`). Off, the
        draws and the choice are exactly those without it.

    Returns
    -------
    Allocation
        The choice, its loss distribution and risk, the risk curve over ``N`` (xarray), the
        posterior of each draw's own optimum ``N*(C)`` with a credible interval, and the expected
        regret. ``to_dict()`` gives JSON-ready keys ``N``, ``D``, ``tokens_per_param``,
        ``loss_quantiles``, ``n_opt_interval``, ``regret``, ``risk``, ``compute`` and more.

    Raises
    ------
    ValueError
        For bad budgets or constraints, draws missing the law's parameters, a law not over N and
        D, or ``unique_tokens`` without a repetition model.

    Warns
    -----
    UserWarning
        When the choice is at an end of the candidate range that is not a constraint, or when
        ``predictive=True`` but the draws have no ``sigma``.
    RuntimeWarning
        With ``prob_below(target)`` when the best probability over the candidates is below 1%
        (``target_unreachable``).

    Notes
    -----
    For every draw ``s`` and candidate ``N_j`` (with ``D_j = (C - c N_j)/(k N_j)``, ``c`` the
    inference cost per parameter) the loss is ``L_s(N_j, D_j) exp(sigma_s eps_s)``; the risk
    measure reduces over ``s``; the best candidate wins, ties going to the lower expected loss.
    Each draw's own optimum is the law's closed form (``LawSpec.log_n_opt``) where it is exact
    (a law over N and D only, without inference cost); under Chinchilla

    .. math:: N^*(C) = G (C/k)^{\beta/(\alpha+\beta)},\quad
              G = \left(\frac{\alpha A}{\beta B}\right)^{1/(\alpha+\beta)}

    clipped to ``max_n``; for Kaplan ``N* = (a N_c^a C/(k D_c))^{1/(a+1)}``, ``a = alpha_N /
    alpha_D``; otherwise it is the argmin over the candidates, refined by a parabola in log N.
    Regret uses the law's loss without the residual noise.

    References
    ----------
    Hoffmann et al. 2022, arXiv:2203.15556; Besiroglu et al. 2024, arXiv:2404.10102;
    Muennighoff et al. 2023, arXiv:2305.16264; Sardana et al. 2023, arXiv:2401.00448.

    Examples
    --------
    >>> epoch = dict(E=1.817, A=482.0, B=2085.0, alpha=0.348, beta=0.366, sigma=0.0)
    >>> a = allocate(epoch, 5.9e23, predictive=False)
    >>> round(a.N / 1e9), round(a.tokens_per_param)
    (73, 18)
    """
    compute = _positive("compute", compute)
    k, max_n, unique_tokens, num_candidates, interval_prob = _check_common(
        flops_per_token, max_n, unique_tokens, num_candidates, interval_prob
    )
    inference_tokens = _optional_positive("inference_tokens", inference_tokens)
    dollars_per_flop = _optional_positive("dollars_per_flop", dollars_per_flop)
    risk = _as_risk(risk)
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
        c_inf=0.0 if inference_tokens is None else 2.0 * inference_tokens,
        max_n=max_n,
        unique_tokens=unique_tokens,
        n_range=n_range,
        num_candidates=num_candidates,
        interval_prob=interval_prob,
        constraints={
            "max_n": max_n,
            "unique_tokens": unique_tokens,
            "inference_tokens": inference_tokens,
            "repetition": _repetition_label(repetition),
        },
        dollars_per_flop=dollars_per_flop,
    )
    return _allocate_prepared(prep, compute, risk, line)
