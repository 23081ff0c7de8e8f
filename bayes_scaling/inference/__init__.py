"""Run NUTS on a scaling-law model and return a labelled ArviZ ``InferenceData``.

Layers: :func:`prepare` (validated frame -> arrays and a hashable :class:`ModelSpec`),
:func:`sample` (explicit ``rng_key`` -> dict of xarray groups), :func:`fit` (one call from data
to ``InferenceData``), :func:`fit_many` (K data sets in one vectorised run). The numeric work is
one compiled program per model structure, padded data size and sampler settings
(:mod:`bayes_scaling.engine`), so a second fit of same-shaped data -- or of another data set of
similar size -- does not trace or compile again.

Modules: ``prepare`` (data to arrays), ``api`` (sample, fit, fit_many), ``groups`` (arrays to
labelled groups and their warnings), ``diagnostics`` (R-hat, ESS, divergences), ``files``
(netCDF and the recorded spec), ``posterior`` (flat draws and the summary table).
"""

from bayes_scaling.engine import METHODS, TRACE_COUNTS, SamplerSettings
from bayes_scaling.inference.api import fit, fit_law, fit_many, sample
from bayes_scaling.inference.diagnostics import diagnostics
from bayes_scaling.inference.diagnostics import warn_diagnostics as _warn_diagnostics
from bayes_scaling.inference.files import fit_spec, load_fit, save_fit
from bayes_scaling.inference.groups import _groups_from_run, _to_groups, to_inference_data
from bayes_scaling.inference.posterior import posterior_draws, summarize
from bayes_scaling.inference.prepare import FitInputs, prepare
from bayes_scaling.models import LIKELIHOODS, ModelSpec, build_model, resolve_pooling

__all__ = [  # noqa: RUF022 - public names first, then private names kept for existing callers
    "LIKELIHOODS",
    "METHODS",
    "TRACE_COUNTS",
    "FitInputs",
    "ModelSpec",
    "SamplerSettings",
    "build_model",
    "diagnostics",
    "fit",
    "fit_law",
    "fit_many",
    "fit_spec",
    "load_fit",
    "posterior_draws",
    "prepare",
    "resolve_pooling",
    "sample",
    "save_fit",
    "summarize",
    "to_inference_data",
    "_groups_from_run",
    "_to_groups",
    "_warn_diagnostics",
]
