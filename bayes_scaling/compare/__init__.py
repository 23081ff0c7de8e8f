"""Comparing laws and groups: PSIS-LOO, leave-future-out, stacking, contrasts between groups.

Two questions users bring:

* *Which law describes my runs best?* :func:`compare_laws` fits each law to the same rows and
  ranks them by PSIS-LOO (ArviZ) and by a leave-future-out score (fit on the lower-compute
  part, score the held-out higher-compute part by its log predictive density), with standard
  errors of the differences, stacking weights and a model-averaged prediction
  (:func:`model_average`).
* *Does dataset A scale better than dataset B?* :func:`contrast` reads a hierarchical fit and
  gives the posterior of the difference (or ratio) of a parameter, or of a derived quantity
  (compute-optimal exponent, compute-optimal loss at a budget, the compute at which two
  curves cross), between groups, with P(difference > 0) and an optional region of practical
  equivalence (ROPE). :func:`contrast_plot_data` returns the numbers a figure needs.
* *What will the loss on dataset y be, given the loss on x?* The ``loss_to_loss`` law
  (:mod:`bayes_scaling.laws`) with :func:`paired_losses` (its input table) and
  :func:`loss_to_loss_priors` (``E_x``, ``E_y`` from each dataset's scaling fit).

All scores are on the log scale of the target (log loss), the scale the likelihood is on, so
elpd values of different laws fitted to the same rows are comparable.

The package, by job:

* :mod:`~bayes_scaling.compare.laws`: :func:`compare_laws`, :class:`LawComparison`, PSIS-LOO and
  leave-future-out scoring.
* :mod:`~bayes_scaling.compare.frames`: the common frame of a comparison, :func:`future_split`.
* :mod:`~bayes_scaling.compare.density`: :func:`log_predictive_density` of new rows.
* :mod:`~bayes_scaling.compare.average`: :func:`stacking_weights`, :func:`model_average`,
  :func:`model_average_draws`.
* :mod:`~bayes_scaling.compare.optimal`: :func:`optimal_loss` and the compute-optimal exponent.
* :mod:`~bayes_scaling.compare.contrast`: :class:`Contrast`, :func:`contrast`.
* :mod:`~bayes_scaling.compare.plot_data`: :func:`contrast_plot_data`.
* :mod:`~bayes_scaling.compare.loss_to_loss`: :func:`paired_losses`, :func:`loss_to_loss_priors`.
"""

from __future__ import annotations

from bayes_scaling.compare.average import (
    _covariate_frame,
    model_average,
    model_average_draws,
    stacking_weights,
)
from bayes_scaling.compare.contrast import (
    DERIVED_QUANTITIES,
    Contrast,
    _check_per_group,
    _crossing_contrast,
    _crossings,
    _data_compute_range,
    _resolve_groups,
    _resolve_rope,
    _summarise,
    contrast,
)
from bayes_scaling.compare.density import _draws_for, _rmse, log_predictive_density
from bayes_scaling.compare.frames import _common_frame, _future_axis, _law_pooling, future_split
from bayes_scaling.compare.laws import (
    DEFAULT_LAWS,
    LawComparison,
    _add_future_columns,
    _loo_with_advice,
    compare_laws,
)
from bayes_scaling.compare.loss_to_loss import loss_to_loss_priors, paired_losses
from bayes_scaling.compare.optimal import _compute_optimal_exponent, optimal_loss
from bayes_scaling.compare.plot_data import contrast_plot_data
from bayes_scaling.draws import log_law_at as _log_mu  # the law over draws, natural units

__all__ = [
    "DERIVED_QUANTITIES",
    "Contrast",
    "LawComparison",
    "compare_laws",
    "contrast",
    "contrast_plot_data",
    "future_split",
    "log_predictive_density",
    "loss_to_loss_priors",
    "model_average",
    "model_average_draws",
    "optimal_loss",
    "paired_losses",
    "stacking_weights",
]

# private names kept importable from here (tests and older callers use them)
_PRIVATE = (
    DEFAULT_LAWS,
    _add_future_columns,
    _check_per_group,
    _common_frame,
    _compute_optimal_exponent,
    _covariate_frame,
    _crossing_contrast,
    _crossings,
    _data_compute_range,
    _draws_for,
    _future_axis,
    _law_pooling,
    _log_mu,
    _loo_with_advice,
    _resolve_groups,
    _resolve_rope,
    _rmse,
    _summarise,
)
