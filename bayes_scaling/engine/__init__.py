"""Compiled fitting programs: data arrays in, draws, log likelihood and prior draws out.

One jitted program per model structure, data size bucket and sampler settings does the whole
fit on device:

1. the potential ``U(u)`` over the flat unconstrained parameter vector, built from the numpyro
   model with the data as arguments, and draws from the prior (the ``prior`` groups; their
   median is where the mode search starts, as numpyro's ``init_to_median``);
2. the mode and the Hessian there (:func:`bayes_scaling.laplace.find_map`), giving a whitening
   ``u = m + L z`` (:func:`bayes_scaling.laplace.whitening`; for hierarchical fits ``L`` is
   diagonal, from the Hessian's diagonal, but for the population locations' block,
   :mod:`bayes_scaling.engine.whitening`, see ``SamplerSettings.whitening``);
3. NUTS or jittered static HMC in ``z`` with numpyro's functional kernel (mass matrix -- dense
   for small models -- and step size adapted in warmup; hierarchical fits' pooled offsets
   rescaled with their population scale, :class:`_ScaledOffsets`, or optionally partially
   centred per group, :class:`_PartialCentring`; chains started from independent Laplace
   draws), run as one ``lax.scan`` per chain (static HMC: one scan for warmup, then every
   chain at the smallest step size any chain adapted, then one for the draws) -- or, for
   ``method="laplace"``, independent draws of ``z ~ N(0, I)`` from the full whitening;
4. the draws mapped back to the model's sites (constrained values and deterministic sites),
   the pointwise log likelihood and draws from the prior and prior predictive.

With ``SamplerSettings(progress_bar=True)`` the same computation runs in stages so that
progress can be shown: a start program (steps 1-2 and the chains' initial states), NUTS in about
20 calls of one compiled chunk program with a bar on stderr between them, and an outputs
program (:mod:`bayes_scaling.engine.staged`, :mod:`bayes_scaling.engine.progress`).

Nothing here knows pandas or xarray. :mod:`bayes_scaling.inference` turns the arrays into an
``InferenceData``.

Why not ``numpyro.infer.MCMC``: on CPU its driver costs about 2 ms per iteration on top of the
leapfrog steps (measured with a 7-dimensional standard normal: 3 s for 1,300 iterations where
the same kernel in one ``lax.scan`` takes 0.05 s), and it cannot take the whitening as an
argument. The numpyro kernel itself (``numpyro.infer.hmc.hmc``) is used unchanged.

Data are padded to bucketed sizes (masked rows do not count) and the model's reference point is
an argument, so fits of different data of similar size -- backtest folds, bootstrap
resamples, ``fit_many`` -- reuse one compiled program.
"""

from bayes_scaling.engine.centring import (
    _PartialCentring,
    _pooled_blocks,
    _ScaledOffsets,
    offset_information,
)
from bayes_scaling.engine.programs import (
    _PROGRAMS,
    cache_from_environment,
    compiled,
    program_cache_dir,
)
from bayes_scaling.engine.run import resolve_settings, run_fit, run_many
from bayes_scaling.engine.sampler import _counted, _structure, joint_program, program
from bayes_scaling.engine.settings import (
    BATCHINGS,
    CENTRING_MIN_GROUPS,
    CHAIN_METHODS,
    DENSE_MASS_MAX_DIM,
    MEAN_CENTRING_MAX_GROUPS,
    MEAN_CENTRING_MIN_GROUPS,
    METHODS,
    PILOT_CONDITION,
    PILOT_CONDITION_MIN_GROUPS,
    PILOT_MIN_GROUPS,
    PILOT_TIE,
    REWHITENED_TARGET_ACCEPT,
    START_SCALE,
    TRACE_COUNTS,
    SamplerSettings,
    bucket_size,
    pad_inputs,
)

__all__ = [  # noqa: RUF022 - public names, then private names kept for existing callers
    "BATCHINGS",
    "CENTRING_MIN_GROUPS",
    "CHAIN_METHODS",
    "DENSE_MASS_MAX_DIM",
    "MEAN_CENTRING_MAX_GROUPS",
    "MEAN_CENTRING_MIN_GROUPS",
    "METHODS",
    "PILOT_CONDITION",
    "PILOT_CONDITION_MIN_GROUPS",
    "PILOT_MIN_GROUPS",
    "PILOT_TIE",
    "REWHITENED_TARGET_ACCEPT",
    "START_SCALE",
    "TRACE_COUNTS",
    "SamplerSettings",
    "bucket_size",
    "cache_from_environment",
    "compiled",
    "joint_program",
    "pad_inputs",
    "program",
    "program_cache_dir",
    "resolve_settings",
    "run_fit",
    "run_many",
    "_PROGRAMS",
    "_PartialCentring",
    "_ScaledOffsets",
    "offset_information",
    "_counted",
    "_pooled_blocks",
    "_structure",
]
