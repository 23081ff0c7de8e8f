"""Posterior predictions at new covariates, with an extrapolation discrepancy; the compute frontier.

Three kinds of draw, each with dims ``(chain, draw, point)`` and in the target's natural units:

``law_mean``
    The fitted law at the point: parameter uncertainty only.
``structural_mean``
    ``law_mean`` times ``exp(delta)``, where ``delta`` is the extrapolation discrepancy (below): the
    expected target of a run there once the law's own error away from the data is allowed for.
``new_run``
    ``structural_mean`` times ``exp(eps)``, with ``eps`` the run-to-run noise of the fit's
    likelihood (Student-t with the draw's ``sigma`` and ``nu``, or normal): what one new run
    will measure. Backtests score this band.

Extrapolation discrepancy
-------------------------
Intervals from parameter and noise uncertainty alone are too narrow far from the data, because
the law is only approximately right. The discrepancy adds, on the log scale,

.. math:: \\delta(x) = b\\, d(x), \\qquad b = \\tau z,

one ``b`` per posterior draw, ``z`` standard normal or Student-t (see below): a random change of
log-log slope at the edge of the training data, so a predicted curve stays a curve. ``d(x)`` is
the distance (natural-log units) of ``x`` outside the box the training data span in log-covariate
coordinates: each covariate, plus ``N*D`` (that is, compute ``C / 6``) for laws over ``N`` and
``D``, whose runs at the largest compute are not at the largest ``N`` or ``D``. ``d`` is the
largest excess over any coordinate, zero inside the data. Inside the data the predictive is the
fit's own.

Where it comes from: ``discrepancy="auto"`` (the default of :func:`predict`,
:func:`predict_frontier` and the decisions) is the one stored in the fit (``bayes-scaling fit``
calibrates and stores it; :func:`attach_discrepancy` stores one); a fit without one gets none,
with a one-line warning. Nothing here refits unless asked: ``discrepancy="calibrate"`` or
:func:`calibrate_discrepancy` do.

``tau`` is learned from the training data by leave-future-out (:func:`calibrate_discrepancy`):
the runs are ordered along the scale axis (log ``N*D``, or the single covariate), oriented so the
target falls along it; for each cut (default: the 70%, 80% and 90% quantiles) the law is refitted
on the runs below the cut, and the runs above it are predicted, with their distance from the
smaller box. As in leave-future-out cross-validation (Bürkner, Gabry and Vehtari 2020), the score
of ``tau`` is the sum of the pseudo-future runs' pointwise log predictive densities, here with the
discrepancy added: a composite likelihood for ``tau``. Its posterior is computed on a grid and
``tau`` is drawn from it per posterior draw. With data from a correct law ``tau`` concentrates
near zero and the bands are the fit's own.

Two choices make the learned discrepancy carry over from the pseudo-pasts to the whole data:

* **Distances in spans of the data** (``unit="span"``, the default). A pseudo-past spans fewer
  e-folds of compute than the whole training data, and a law fitted over a narrow span
  extrapolates worse, per e-fold, than one fitted over a wide span. Each pseudo-future distance
  is divided by its pseudo-past's span (:func:`data_span`, the width of the data along the scale
  axis), the scale is learned per span (half-normal prior, scale 0.2), and the stored ``tau`` is
  that divided by the whole data's span. ``unit="e-fold"`` learns it per natural-log unit as it
  is (half-normal prior, scale 0.05).
* **A heavy-tailed slope** (``slope_df=3``, the default): ``b = tau z`` with ``z`` Student-t with 3
  degrees of freedom, so a pseudo-future that misses by much does not widen every interval
  through ``tau``; the band is narrower near its centre and keeps its tails.

On the developer-visible backtests (``benchmarks/bench_calibration_suites.py``), the two together
brought the pooled 50% coverage from about 0.75 to about 0.6 and lowered the pooled interval
scores, while keeping each case's 90% coverage (figures in ``benchmarks/RESULTS.md``).

The cuts sit near the top of the data, as validation windows do in time-series backtests: each
pseudo-past keeps most of the data, as the real fit does, and the pseudo-futures are the largest
runs, where a law's error matters and, in practice, grows.

Limitations: runs of one pseudo-future share the refit's parameter error, which the pointwise
score counts as discrepancy, so ``tau`` errs on the wide side when a refit happens to miss, most
in weakly identified designs (where ``E`` trades off against the exponents). Its posterior is
narrower than it should be. ``calibrate_discrepancy(..., score="joint")`` scores a
pseudo-future's runs together, under the one slope per draw that the model gives them, so each
pseudo-future counts once and the prior of ``tau`` weighs more (and stands alone where no cut is
usable); it is an option, not the default (its figures are in ``benchmarks/RESULTS.md``). ``d``
grows linearly: the data rarely say more than that.

References
----------
Bürkner, Gabry, Vehtari 2020, "Approximate leave-future-out cross-validation for Bayesian time
series models", Journal of Statistical Computation and Simulation 90(14).

Layout
------
``discrepancy`` (:class:`Discrepancy`, the training box and distances), ``calibrate`` (the
leave-future-out calibration and :func:`get_discrepancy`), ``points`` (points and the law's draws
there), ``predictive`` (:func:`predict`, :func:`predict_draws`), ``frontier``
(:func:`predict_frontier`). Arrays go through :mod:`bayes_scaling.draws`.
"""

from __future__ import annotations

from bayes_scaling._callable import make_callable as _make_callable
from bayes_scaling.draws import fit_frame as fit_data
from bayes_scaling.draws import noise_log_density as _noise_logpdf
from bayes_scaling.predict.calibrate import (
    _TAU_GRID,
    DEFAULT_CUTS,
    DEFAULT_TAU_PRIOR_SCALE,
    _scale_axis,
    _tau_log_likelihood,
    calibrate_discrepancy,
    data_span,
    get_discrepancy,
)
from bayes_scaling.predict.discrepancy import (
    DISCREPANCY_ATTR,
    Discrepancy,
    _coordinate_values,
    attach_discrepancy,
    extrapolation_coordinates,
)
from bayes_scaling.predict.frontier import _grid_log_n, _optimal_log_n, predict_frontier
from bayes_scaling.predict.points import (
    _finite_draws,
    _log_mu_draws,
    _rng_from,
    _validate_points,
)
from bayes_scaling.predict.predictive import KINDS, _check_quantiles, predict, predict_draws

__all__ = [
    "KINDS",
    "Discrepancy",
    "attach_discrepancy",
    "calibrate_discrepancy",
    "data_span",
    "extrapolation_coordinates",
    "fit_data",
    "get_discrepancy",
    "predict",
    "predict_draws",
    "predict_frontier",
]

# private names kept importable for callers of the former module (plots, tests)
_PRIVATE = (
    _TAU_GRID,
    DEFAULT_CUTS,
    DEFAULT_TAU_PRIOR_SCALE,
    DISCREPANCY_ATTR,
    _check_quantiles,
    _coordinate_values,
    _finite_draws,
    _grid_log_n,
    _log_mu_draws,
    _noise_logpdf,
    _optimal_log_n,
    _rng_from,
    _scale_axis,
    _tau_log_likelihood,
    _validate_points,
)

# `from bayes_scaling import predict` gives this module, called like its main function
_make_callable(__name__, "predict")
