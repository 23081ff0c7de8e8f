"""Batch size from ``batch_steps`` draws ``S = S_min (1 + B_noise / B)``.

:func:`choose_batch_size` (fewest steps under a cap on compute overhead),
:func:`batch_size_for_cost` (least combined cost of time and compute) and
:func:`choose_batch_sizes` (per group of a grouped fit).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from bayes_scaling.decide._common import (
    _check_prob,
    _coerce_draws,
    _interval,
    _positive,
    _quantile_dict,
    _require,
)


@dataclasses.dataclass(frozen=True, eq=False)
class BatchSizeChoice:
    """A batch size chosen from ``batch_steps`` draws ``S = S_min (1 + B_noise / B)``.

    Attributes
    ----------
    B : float
        Chosen batch size, in the units of the fit's ``B`` column (sequences or tokens).
    B_interval : tuple of float
        Central ``interval_prob`` interval of each draw's own optimal batch size.
    B_opt_draws : numpy.ndarray
        Each draw's own optimum, shape (S,).
    interval_prob : float
    steps_quantiles : dict of str to float
        Steps to the target at ``B`` (law, no residual noise), keyed by level.
    examples_quantiles : dict of str to float
        Data consumed, ``B * steps``, at ``B``.
    overhead_mean : float
        Expected compute overhead ``E/E_min - 1 = B / B_noise``.
    prob_within : float or None
        ``P(B / B_noise <= max_overhead)`` (None for the cost objective).
    max_overhead : float or None
    method : str
        ``"overhead"`` or ``"cost"``.
    group : str or None
        Group label (model size) when from a grouped fit.
    """

    B: float
    B_interval: tuple[float, float]
    B_opt_draws: np.ndarray
    interval_prob: float
    steps_quantiles: dict[str, float]
    examples_quantiles: dict[str, float]
    overhead_mean: float
    prob_within: float | None
    max_overhead: float | None
    method: str
    group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary.

        Keys: ``B``, ``B_interval``, ``interval_prob``, ``steps_quantiles``,
        ``examples_quantiles``, ``overhead_mean``, ``prob_within``, ``max_overhead``,
        ``method``, ``group``.
        """
        return {
            "B": float(self.B),
            "B_interval": [float(v) for v in self.B_interval],
            "interval_prob": float(self.interval_prob),
            "steps_quantiles": dict(self.steps_quantiles),
            "examples_quantiles": dict(self.examples_quantiles),
            "overhead_mean": float(self.overhead_mean),
            "prob_within": None if self.prob_within is None else float(self.prob_within),
            "max_overhead": None if self.max_overhead is None else float(self.max_overhead),
            "method": self.method,
            "group": None if self.group is None else str(self.group),
        }


def _batch_draws(obj: Any, group: Any) -> dict[str, np.ndarray]:
    draws, fit_law = _coerce_draws(obj, group)
    if fit_law is not None and fit_law != "batch_steps":
        raise ValueError(
            f"batch-size decisions need a batch_steps fit; this fit's law is {fit_law!r}"
        )
    _require(draws, ("S_min", "B_noise"), "batch-size decisions (a batch_steps fit)")
    for name in ("S_min", "B_noise"):
        if np.any(draws[name] <= 0):
            raise ValueError(f"draws[{name!r}] must be > 0")
    return draws


def _batch_result(draws, b, b_opt, interval_prob, max_overhead, method, group) -> BatchSizeChoice:
    s_min, b_noise = draws["S_min"], draws["B_noise"]
    steps = s_min * (1.0 + b_noise / b)
    overhead = b / b_noise
    return BatchSizeChoice(
        B=float(b),
        B_interval=_interval(b_opt, interval_prob),
        B_opt_draws=b_opt,
        interval_prob=interval_prob,
        steps_quantiles=_quantile_dict(steps),
        examples_quantiles=_quantile_dict(b * steps),
        overhead_mean=float(overhead.mean()),
        prob_within=None if max_overhead is None else float(np.mean(overhead <= max_overhead)),
        max_overhead=max_overhead,
        method=method,
        group=None if group is None else str(group),
    )


def choose_batch_size(
    draws_or_fit: Any,
    max_overhead: float = 0.2,
    *,
    prob: float | None = None,
    interval_prob: float = 0.9,
    group: Any = None,
) -> BatchSizeChoice:
    """Fewest steps subject to a cap on compute overhead, under uncertainty in ``B_noise``.

    Parameters
    ----------
    draws_or_fit : mapping or arviz.InferenceData
        ``batch_steps`` draws ``{"S_min": (S,), "B_noise": (S,)}`` for one group, or a fit
        (``group=`` picks the model size).
    max_overhead : float, default 0.2
        Allowed extra data/compute over the minimum, ``E / E_min - 1``.
    prob : float, optional
        If given, the cap must hold with this probability; by default it must hold in
        expectation.
    interval_prob : float, default 0.9
        Probability of ``B_interval``.
    group : optional
        Group label for a grouped fit.

    Returns
    -------
    BatchSizeChoice

    Raises
    ------
    ValueError
        For draws without ``S_min``/``B_noise``, a fit of another law, or bad arguments.

    Notes
    -----
    With ``S = S_min (1 + B_noise/B)`` the data used is ``E = B S = E_min (1 + B/B_noise)``,
    ``E_min = S_min B_noise``, so the overhead is ``B / B_noise``. Steps fall with ``B``, so the
    best batch is the largest one meeting the cap: per draw ``B* = max_overhead * B_noise``
    (the interval). Across draws, "in expectation" gives ``B = max_overhead / E[1/B_noise]``;
    "with probability p" gives ``B = max_overhead * quantile_{1-p}(B_noise)``.

    References
    ----------
    McCandlish et al. 2018, arXiv:1812.06162; Zhang et al. 2025, arXiv:2410.21676.

    Examples
    --------
    >>> c = choose_batch_size({"S_min": [1000.0], "B_noise": [2000.0]}, max_overhead=0.2)
    >>> c.B, round(c.steps_quantiles["0.5"])
    (400.0, 6000)
    """
    max_overhead = _positive("max_overhead", max_overhead)
    interval_prob = _check_prob("interval_prob", interval_prob)
    draws = _batch_draws(draws_or_fit, group)
    b_noise = draws["B_noise"]
    b_opt = max_overhead * b_noise
    if prob is None:
        b = max_overhead / float(np.mean(1.0 / b_noise))
    else:
        prob = _check_prob("prob", prob)
        b = max_overhead * float(np.quantile(b_noise, 1.0 - prob))
    return _batch_result(draws, b, b_opt, interval_prob, max_overhead, "overhead", group)


def batch_size_for_cost(
    draws_or_fit: Any,
    step_cost: float,
    example_cost: float,
    *,
    interval_prob: float = 0.9,
    max_overhead: float | None = None,
    group: Any = None,
) -> BatchSizeChoice:
    """Batch size minimising the expected combined cost of time (steps) and compute (data).

    Parameters
    ----------
    draws_or_fit : mapping or arviz.InferenceData
        ``batch_steps`` draws or a fit, as in :func:`choose_batch_size`.
    step_cost : float
        Cost of one optimiser step (time: seconds or dollars of wall-clock), > 0.
    example_cost : float
        Cost of one unit of batch (one sequence or token, as in the fit's ``B``), > 0.
    interval_prob : float, default 0.9
    max_overhead : float, optional
        Only reported: ``prob_within`` is ``P(B/B_noise <= max_overhead)``.
    group : optional

    Returns
    -------
    BatchSizeChoice

    Notes
    -----
    Cost ``= w_t S + w_c B S = S_min [w_t (1 + B_noise/B) + w_c (B + B_noise)]``. Per draw the
    optimum is ``B* = sqrt(w_t B_noise / w_c)``; the expected cost over draws is minimised by
    ``B = sqrt(w_t E[S_min B_noise] / (w_c E[S_min]))``.

    Examples
    --------
    >>> c = batch_size_for_cost({"S_min": [1000.0], "B_noise": [400.0]}, 1.0, 0.01)
    >>> c.B
    200.0
    """
    w_t = _positive("step_cost", step_cost)
    w_c = _positive("example_cost", example_cost)
    interval_prob = _check_prob("interval_prob", interval_prob)
    max_overhead = None if max_overhead is None else _positive("max_overhead", max_overhead)
    draws = _batch_draws(draws_or_fit, group)
    s_min, b_noise = draws["S_min"], draws["B_noise"]
    b_opt = np.sqrt(w_t * b_noise / w_c)
    b = math.sqrt(w_t * float(np.mean(s_min * b_noise)) / (w_c * float(np.mean(s_min))))
    return _batch_result(draws, b, b_opt, interval_prob, max_overhead, "cost", group)


def _fit_groups(fit: Any) -> list[Any]:
    post = fit.posterior
    for name in ("S_min", "B_noise"):
        if name in post:
            extra = [d for d in post[name].dims if d not in ("chain", "draw")]
            if extra:
                return list(post[extra[0]].values)
    return []


def choose_batch_sizes(
    fit_or_groups: Any,
    max_overhead: float = 0.2,
    *,
    prob: float | None = None,
    step_cost: float | None = None,
    example_cost: float | None = None,
    interval_prob: float = 0.9,
) -> dict[str, BatchSizeChoice]:
    """Batch size per group (model size) of a grouped ``batch_steps`` fit.

    Parameters
    ----------
    fit_or_groups : arviz.InferenceData or mapping
        A ``batch_steps`` fit (grouped or not), ``{group: draws}``, or one draws mapping.
    max_overhead, prob, interval_prob
        As in :func:`choose_batch_size`.
    step_cost, example_cost : float, optional
        Give both to use :func:`batch_size_for_cost` instead.

    Returns
    -------
    dict of str to BatchSizeChoice
        Keyed by group label (``"all"`` for an ungrouped fit or a single draws mapping).

    Examples
    --------
    >>> out = choose_batch_sizes({"85M": {"S_min": [1e3], "B_noise": [500.0]},
    ...                           "1.2B": {"S_min": [1e4], "B_noise": [2000.0]}})
    >>> {g: c.B for g, c in out.items()}
    {'85M': 100.0, '1.2B': 400.0}
    """
    if (step_cost is None) != (example_cost is None):
        raise ValueError("give both step_cost and example_cost for the cost objective, or neither")

    def one(obj: Any, group: Any, label: Any) -> BatchSizeChoice:
        if step_cost is not None and example_cost is not None:
            res = batch_size_for_cost(
                obj,
                step_cost,
                example_cost,
                interval_prob=interval_prob,
                max_overhead=max_overhead,
                group=group,
            )
        else:
            res = choose_batch_size(
                obj, max_overhead, prob=prob, interval_prob=interval_prob, group=group
            )
        return dataclasses.replace(res, group=str(label))

    if hasattr(fit_or_groups, "posterior"):
        groups = _fit_groups(fit_or_groups)
        if not groups:
            return {"all": one(fit_or_groups, None, "all")}
        return {str(g): one(fit_or_groups, g, g) for g in groups}
    if isinstance(fit_or_groups, Mapping):
        values = list(fit_or_groups.values())
        if values and all(isinstance(v, Mapping) for v in values):
            return {str(g): one(v, None, g) for g, v in fit_or_groups.items()}
        return {"all": one(fit_or_groups, None, "all")}
    raise TypeError(
        f"expected a batch_steps fit or a mapping of draws; got {type(fit_or_groups).__name__}"
    )
