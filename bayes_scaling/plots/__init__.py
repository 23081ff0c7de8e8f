"""Figures of a fit: data with fitted curves, extrapolation fans, frontiers, posteriors, risk.

Every function returns a :class:`matplotlib.figure.Figure` and takes an optional ``ax`` (or
``axes`` for multi-panel figures), so figures compose::

    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    plots.fan_chart(fit, ax=left)
    plots.frontier(fit, ax=right)

Without an ``ax`` a new figure is made with :class:`matplotlib.figure.Figure` (not ``pyplot``),
so building many figures keeps no global state. matplotlib is imported inside the functions.

The numbers come from the posterior draws (:func:`bayes_scaling.inference.posterior_draws`)
pushed through the law with ``jax.vmap`` (:func:`bayes_scaling.draws.law_over_draws`): the
*law mean* is the law's value for each draw (parameter uncertainty), a *new run* adds the fitted
residual noise (Student-t or normal on the log target), which is what one more training run
would show.

Besides the figures, a few helpers give the numbers behind them to other modules (the report):
:func:`law_of`, :func:`group_labels`, :func:`check_group`, :func:`over_n_and_d`,
:func:`fit_frame`, :func:`group_rows`, :func:`posterior_sample`, :func:`fan_path`,
:func:`interval`, :func:`predictive`, :func:`resolve_discrepancy` and :func:`backtest_points`.

The package by job: ``frame`` (a fit's law, groups and runs), ``numeric`` (draws, the law
over them, new runs, intervals, the compute-optimal path), ``style`` (colours, labels, ticks),
``curves`` (fitted curves and the predictive check), ``design`` (the runs' design: per model
size, per tokens-per-parameter ratio or iso-FLOP), ``fan`` (extrapolation), ``optimum``
(frontier and exponent), ``distributions`` (posteriors), ``risk`` (allocations), ``groups``
(group contrasts), ``backtest`` and ``calibration`` (the reliability diagram and PIT histogram
of :func:`bayes_scaling.backtest.calibrate`).
"""

from __future__ import annotations

from bayes_scaling.plots.backtest import backtest_chart, backtest_points
from bayes_scaling.plots.calibration import calibration_chart, pit_histogram, reliability_diagram
from bayes_scaling.plots.curves import design_curves, fit_curves, iso_flop, predictive_check
from bayes_scaling.plots.design import Design, run_design
from bayes_scaling.plots.distributions import posteriors
from bayes_scaling.plots.fan import fan_chart
from bayes_scaling.plots.frame import (
    check_group,
    fit_frame,
    group_labels,
    group_rows,
    law_of,
    over_n_and_d,
)
from bayes_scaling.plots.groups import group_contrast, group_curves
from bayes_scaling.plots.numeric import (
    compute_optimal_exponent,
    fan_path,
    interval,
    log_law,
    new_run,
    optimal_path,
    posterior_sample,
    predictive,
    resolve_discrepancy,
)
from bayes_scaling.plots.optimum import exponent, frontier
from bayes_scaling.plots.risk import risk_curve
from bayes_scaling.plots.style import (
    DATA_COLOUR,
    EXPONENT_REFERENCES,
    LAW_COLOUR,
    PALETTE,
    RUN_COLOUR,
    STRUCTURAL_COLOUR,
)

__all__ = [
    "DATA_COLOUR",
    "EXPONENT_REFERENCES",
    "LAW_COLOUR",
    "PALETTE",
    "RUN_COLOUR",
    "STRUCTURAL_COLOUR",
    "Design",
    "backtest_chart",
    "backtest_points",
    "calibration_chart",
    "check_group",
    "compute_optimal_exponent",
    "design_curves",
    "exponent",
    "fan_chart",
    "fan_path",
    "fit_curves",
    "fit_frame",
    "frontier",
    "group_contrast",
    "group_curves",
    "group_labels",
    "group_rows",
    "interval",
    "iso_flop",
    "law_of",
    "over_n_and_d",
    "pit_histogram",
    "posterior_sample",
    "posteriors",
    "predictive",
    "predictive_check",
    "reliability_diagram",
    "resolve_discrepancy",
    "risk_curve",
    "run_design",
]

# The names the figures used before the package was split (tests import them).
_draws = posterior_sample
_fan_path = fan_path
_log_law = log_law
_new_run = new_run
_optimal_path = optimal_path
