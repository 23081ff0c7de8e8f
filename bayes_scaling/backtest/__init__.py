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

* **The calibration suite** :func:`calibrate`: rolling leave-future-out backtests over one data
  set (several cuts along ``C``, ``N`` or ``D``), scored per cut and pooled, with PIT values and
  a reliability curve (:data:`CALIBRATION_KEYS`).

Layout: ``scores`` (the scores on arrays), ``pointfit`` (the baseline), ``run`` (the backtest),
``rolling`` (the calibration suite).
"""

from __future__ import annotations

from bayes_scaling._callable import make_callable as _make_callable
from bayes_scaling.backtest.pointfit import (
    _OBJECTIVES,
    GENERIC_GRID_QUANTILES,
    HOFFMANN_GRID,
    PointFit,
    _coordinates,
    _lbfgs,
    _objective_functions,
    _prior_quantiles,
    _to_theta,
    _x64,
    default_grid,
    huber,
    point_fit,
)
from bayes_scaling.backtest.rolling import CALIBRATION_KEYS, RELIABILITY_LEVELS, calibrate
from bayes_scaling.backtest.run import (
    REPORT_KEYS,
    _baseline,
    _json_number,
    _jsonable,
    _split_frame,
    backtest,
)
from bayes_scaling.backtest.scores import (
    LEVELS,
    _check_draws,
    _check_level,
    absolute_relative_error,
    central_interval,
    crps,
    interval_coverage,
    interval_score,
    interval_width,
    log_predictive_density,
    pit,
    score_draws,
)

__all__ = [
    "CALIBRATION_KEYS",
    "HOFFMANN_GRID",
    "RELIABILITY_LEVELS",
    "REPORT_KEYS",
    "PointFit",
    "absolute_relative_error",
    "backtest",
    "calibrate",
    "central_interval",
    "crps",
    "default_grid",
    "huber",
    "interval_coverage",
    "interval_score",
    "interval_width",
    "log_predictive_density",
    "pit",
    "point_fit",
    "score_draws",
]

# private names of the former module, kept importable
_PRIVATE = (
    _OBJECTIVES,
    GENERIC_GRID_QUANTILES,
    LEVELS,
    _baseline,
    _check_draws,
    _check_level,
    _coordinates,
    _json_number,
    _jsonable,
    _lbfgs,
    _objective_functions,
    _prior_quantiles,
    _split_frame,
    _to_theta,
    _x64,
)

# `from bayes_scaling import backtest` gives this module, called like its main function
_make_callable(__name__, "backtest")
