"""Decisions under uncertainty: risk measures, compute allocation, targets, constraints, batch size.

Everything here works on **posterior draws**: a mapping ``{param_name: array of shape (S,)}``
holding the law's parameters (``E``, ``A``, ``B``, ``alpha``, ``beta``, ...) plus ``sigma``, the
residual standard deviation of the log target, and optionally ``nu``, the Student-t degrees of
freedom. A fitted ``arviz.InferenceData`` is accepted wherever draws are: it is turned into draws
with :func:`bayes_scaling.inference.posterior_draws` (``group=`` selects a group). This module
never runs inference.

Layers
------
* **Risk measures** are validated factories returning a :class:`RiskMeasure`, a callable
  ``risk(loss_draws) -> float``: :func:`expected`, :func:`quantile`, :func:`cvar` (lower is
  better) and :func:`prob_below` (higher is better, ``maximise=True``). :func:`parse_risk` reads
  the command-line spelling (``"cvar:0.9"``).
* **Allocation** (:func:`allocate`) evaluates the law for every draw at ``num_candidates``
  log-spaced model sizes on the iso-compute line ``C = k N D`` in one jitted, vmapped JAX call,
  applies the risk measure across draws and picks the best candidate. It also reports the
  posterior of each draw's own optimum ``N*(C)`` and the expected regret of the choice.
* **Targets** (:func:`compute_for_target`): the least compute reaching a loss with a given
  probability. **Inference-aware sizing** (:func:`allocate_inference_aware`).
* **Batch size** (:func:`choose_batch_size`, :func:`batch_size_for_cost`,
  :func:`choose_batch_sizes`) from ``batch_steps`` draws.

Results are frozen dataclasses with a ``to_dict()`` of JSON-ready values for the CLI.

Modules
-------
* :mod:`~bayes_scaling.decide.risk`: risk measures and :func:`parse_risk`.
* :mod:`~bayes_scaling.decide.allocation`: :class:`Allocation` and :func:`allocate` (the cost line
  and its kernel are in ``_line``).
* :mod:`~bayes_scaling.decide.target`: :class:`TargetCompute` and :func:`compute_for_target`.
* :mod:`~bayes_scaling.decide.inference_aware`: :class:`InferenceAwareChoice` and
  :func:`allocate_inference_aware`.
* :mod:`~bayes_scaling.decide.batch`: batch sizes.
* ``_common`` (argument checks, draws, the law, the predictive noise) and ``_kernels`` (the law
  inside the jitted kernels, bisection, refined argmins) are shared.
"""

from __future__ import annotations

from bayes_scaling.decide._common import LOSS_QUANTILE_LEVELS, MUENNIGHOFF_REPETITION
from bayes_scaling.decide.allocation import Allocation, allocate
from bayes_scaling.decide.batch import (
    BatchSizeChoice,
    batch_size_for_cost,
    choose_batch_size,
    choose_batch_sizes,
)
from bayes_scaling.decide.inference_aware import InferenceAwareChoice, allocate_inference_aware
from bayes_scaling.decide.risk import (
    RISK_NAMES,
    RiskMeasure,
    cvar,
    expected,
    parse_risk,
    prob_below,
    quantile,
)
from bayes_scaling.decide.target import TargetCompute, compute_for_target

__all__ = [
    "LOSS_QUANTILE_LEVELS",
    "MUENNIGHOFF_REPETITION",
    "RISK_NAMES",
    "Allocation",
    "BatchSizeChoice",
    "InferenceAwareChoice",
    "RiskMeasure",
    "TargetCompute",
    "allocate",
    "allocate_inference_aware",
    "batch_size_for_cost",
    "choose_batch_size",
    "choose_batch_sizes",
    "compute_for_target",
    "cvar",
    "expected",
    "parse_risk",
    "prob_below",
    "quantile",
]
