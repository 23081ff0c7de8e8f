"""The one-call entry points: :func:`sample` (explicit key, xarray groups), :func:`fit` and
:func:`fit_many`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import jax
import xarray as xr

from bayes_scaling import engine as _engine
from bayes_scaling.engine import METHODS, SamplerSettings
from bayes_scaling.engine.progress import Progress
from bayes_scaling.engine.settings import MANY_TRAJECTORY_LENGTH
from bayes_scaling.inference.diagnostics import converged, diagnostics, warn_diagnostics
from bayes_scaling.inference.groups import _groups_from_run, _warn_few_runs, to_inference_data
from bayes_scaling.inference.prepare import FitInputs, prepare
from bayes_scaling.laws import LawSpec
from bayes_scaling.priors import PriorSet

__all__ = ["fit", "fit_law", "fit_many", "sample"]


def sample(
    inputs: FitInputs,
    rng_key: jax.Array,
    settings: SamplerSettings | None = None,
    *,
    prior_samples: int = 500,
    method: str = "nuts",
    pad_to: int | None = None,
) -> dict[str, xr.Dataset]:
    """Fit with an explicit key and return the InferenceData groups as xarray Datasets.

    Parameters
    ----------
    inputs : FitInputs
        From :func:`prepare`.
    rng_key : jax.Array
    settings : SamplerSettings
        Chains, warmup and draws (also the number of Laplace draws: chains x draws).
    prior_samples : int, default 500
        Draws for the ``prior`` and ``prior_predictive`` groups (0 to skip).
    method : {"nuts", "laplace"}
        ``"nuts"``: MCMC (NUTS, or static HMC as ``settings.trajectory_length`` says; by
        default static HMC for a hierarchical fit) in coordinates whitened by a Laplace fit at
        the mode (by its diagonal for a hierarchical fit; see :mod:`bayes_scaling.engine`).
        ``"laplace"``: independent draws from the Gaussian approximation at the mode on the
        unconstrained scale -- a quick look, narrower than the posterior where it is skewed
        (calibration in ``benchmarks/RESULTS.md``).
    pad_to : int, optional
        Pad the data (with masked rows) as if it had at least this many rows, so that fits of
        subsets of one data set reuse one compiled program.

    Returns
    -------
    dict of xarray.Dataset
        ``posterior``, ``sample_stats``, ``log_likelihood``, ``observed_data``,
        ``constant_data``, and ``prior``/``prior_predictive`` when ``prior_samples > 0``.
        Diagnostics problems are raised as warnings (R-hat > 1.01, bulk ESS < 400,
        divergences) for NUTS fits.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    spec = inputs.spec
    settings = _engine.resolve_settings(
        spec, SamplerSettings() if settings is None else settings, method
    )
    _engine.cache_from_environment()
    _warn_few_runs(inputs)
    out = _engine.run_fit(
        spec,
        inputs.x,
        inputs.y,
        inputs.group_index,
        rng_key,
        settings,
        prior_samples=prior_samples,
        method=method,
        pad_to=pad_to,
    )
    return _groups_from_run(
        inputs,
        out,
        method,
        settings.target_accept_prob,
        settings.static_length(),
        settings.whitening,
        settings.pilot,
        rewhitened_target=settings.rewhitened().target_accept_prob,
        adaptation_target=settings.adaptation_target(),
    )


def fit(
    data,
    law: str | LawSpec = "chinchilla",
    *,
    priors: str | Path | Mapping | PriorSet | None = None,
    group: str | None = None,
    pooling: str | Mapping[str, str] | None = None,
    likelihood: str = "student_t",
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 1000,
    target_accept_prob: float = 0.9,
    seed: int = 0,
    rng_key: jax.Array | None = None,
    columns: Mapping[str, str] | None = None,
    derive_tokens: bool = False,
    flops_per_token: float = 6.0,
    prior_samples: int = 500,
    progress_bar: bool = False,
    method: str = "nuts",
    pad_to: int | None = None,
    trajectory_length: float | str | None = "auto",
    pilot: bool | str = "auto",
):
    """Fit a scaling law by MCMC (or a Laplace approximation) and return ``InferenceData``.

    Parameters
    ----------
    data : DataFrame, str or Path
        Runs with canonical columns (``N``, ``D``, ``C``, ``U``, ``B``, ``steps``, ``loss``), a CSV
        path, or a dataset name (see :func:`bayes_scaling.datasets.list_datasets`).
    law : str or LawSpec, default "chinchilla"
        A registered law (``bayes-scaling laws`` lists them).
    priors : None, str, path, mapping or PriorSet
        Overrides of the law's default priors (a shipped set name such as
        ``"chinchilla-literature"``, a TOML file, or a dict naming some parameters).
    group : str, optional
        Column defining groups (datasets, architectures, settings) for a hierarchical fit. A
        numeric column's labels are written short (``85000000``, not ``85000000.0``) and kept
        in numeric order; later calls may name a group by any spelling of its number.
    pooling : None, str or mapping
        Per-parameter ``"shared"``, ``"pooled"`` (default with groups) or ``"independent"``.
    likelihood : {"student_t", "normal"}
        Likelihood of the log target; Student-t (degrees of freedom learned) is robust to outliers.
    num_chains : int, default 4
        Chains. The warnings say when the draws fall short: on a few dozen runs the
        defaults can leave a bulk ESS under 1,000 or a few divergent transitions.
    num_warmup : int, default 500
        Warmup iterations per chain.
    num_samples : int, default 1000
        Kept draws per chain.
    target_accept_prob : float, default 0.9
    seed : int, default 0
        Used when ``rng_key`` is not given.
    rng_key : jax.Array, optional
    columns : mapping, optional
        Renames to canonical columns.
    derive_tokens : bool, default False
        Compute ``D = C / (flops_per_token * N)`` when ``D`` is missing.
    flops_per_token : float, default 6.0
    prior_samples : int, default 500
        Draws for the ``prior`` and ``prior_predictive`` groups (0 to skip).
    progress_bar : bool, default False
        Show progress on stderr (plain text, so it shows in a notebook too): compilation and
        mode search as phase messages, then a bar for warmup and sampling with percentage,
        iterations, elapsed and remaining time, updated between compiled chunks of NUTS
        iterations. Same kernel and keys as without it (draws equal to float rounding; see
        :mod:`bayes_scaling.engine.staged`); the chunks cost a few milliseconds each.
        ``method="laplace"`` shows phase messages only.
    method : {"nuts", "laplace"}, default "nuts"
        ``"laplace"`` draws ``num_chains x num_samples`` independent draws from the Gaussian
        approximation at the posterior mode (unconstrained scale): same layout, milliseconds
        once compiled, narrower than NUTS where the posterior is skewed.
    pad_to : int, optional
        Pad the data (masked rows, which do not enter the likelihood) as if it had at least
        this many rows. Fits of subsets of one data set given the same ``pad_to`` share one
        compiled program instead of compiling one per size.
    trajectory_length : float, "auto" or None, default "auto"
        A number samples with static HMC instead of NUTS, each iteration's trajectory drawn
        uniformly between 0.5 and 1.5 times this length in the sampler's coordinates (scaled at
        the mode, so the posterior's scales there are near 1: by the whole Hessian for one
        curve, by its diagonal for a hierarchical fit, see ``SamplerSettings.whitening``); the
        step size is adapted as for NUTS. None: NUTS. ``"auto"``: 3.0 for a hierarchical fit,
        NUTS for one curve. In a few-group fit NUTS's trees run to their depth limit along the
        funnels of the population scales and the groups' curved ``E``-``A``-exponent ridges,
        turning back early; on the ``gadre-overtraining`` corpora (3 groups) and on 2, 3 and 6
        simulated groups the fixed length gave more effective draws in less time
        (``benchmarks/RESULTS.md``). Where the posterior is far from its Gaussian approximation
        at the mode a fixed length can mix worse than NUTS: the diagnostics say so, and None
        brings NUTS back.
    pilot : bool or "auto", default "auto"
        Whether the coordinates of a hierarchical fit are re-whitened by the covariance of
        draws the sampler has already made (``SamplerSettings.pilot``). Where each group's data
        are strong, each population location is tied to its groups' offsets and the sampler
        crawls; re-whitening about halved the time on 3 and 6 simulated groups and the 15
        Porian settings and converged ten groups where the plain run did not, but cost time and
        mixing on ``gadre-overtraining``'s strongly pooled corpora (``benchmarks/RESULTS.md``).
        ``"auto"``: from three groups up, the run looks at its draws half-way through warmup and
        re-whitens only where a location's correlation with its own offsets exceeds 0.85, else
        goes on unchanged (the run ``pilot=False`` makes, draw for draw). True: a short pilot
        run first, always re-whitened; False: never. With ``progress_bar``, a fit with
        ``pilot=True`` shows phases, not a bar; where ``"auto"`` applies the bar runs on
        through the choice (which then compiles only the branch it takes).

    Returns
    -------
    arviz.InferenceData
        Groups posterior (law parameters by the paper's symbols, per-group ones with a ``group``
        dim, plus ``sigma`` and ``nu``), sample_stats, log_likelihood, observed_data,
        constant_data, prior, prior_predictive; ``posterior.attrs`` record the law, priors,
        likelihood, pooling, reference point, package version and a data hash.

    Raises
    ------
    bayes_scaling.data.DataError
        For bad data (the message names the column, rule and first offending row).
    KeyError
        For an unknown law.

    Warns
    -----
    RuntimeWarning
        When R-hat > 1.01, bulk ESS < 400 or there are divergences, with what to try.

    Examples
    --------
    >>> from bayes_scaling import fit, load_dataset
    >>> idata = fit(load_dataset("demo"), "chinchilla", num_chains=2, num_warmup=300,
    ...             num_samples=300, target_accept_prob=0.95, seed=0)
    >>> alpha = float(idata.posterior["alpha"].median())  # the demo was simulated with 0.348
    >>> 0.25 < alpha < 0.45
    True
    """
    inputs = prepare(
        data,
        law,
        priors=priors,
        group=group,
        pooling=pooling,
        likelihood=likelihood,
        columns=columns,
        derive_tokens=derive_tokens,
        flops_per_token=flops_per_token,
    )
    settings = SamplerSettings(
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_samples=num_samples,
        target_accept_prob=target_accept_prob,
        progress_bar=progress_bar,
        trajectory_length=trajectory_length,
        pilot=pilot,
    )
    key = jax.random.PRNGKey(seed) if rng_key is None else rng_key
    groups = sample(
        inputs, key, settings, prior_samples=prior_samples, method=method, pad_to=pad_to
    )
    return to_inference_data(groups)


fit_law = fit  # alias used in docs


def fit_many(
    datasets,
    law: str | LawSpec = "chinchilla",
    *,
    priors: str | Path | Mapping | PriorSet | None = None,
    likelihood: str = "student_t",
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 1000,
    target_accept_prob: float = 0.9,
    seed: int = 0,
    rng_key: jax.Array | None = None,
    columns: Mapping[str, str] | None = None,
    derive_tokens: bool = False,
    flops_per_token: float = 6.0,
    prior_samples: int = 0,
    method: str = "nuts",
    chain_method: str | None = None,
    batching: str = "vmap",
    trajectory_length: float | str | None = "auto",
    progress_bar: bool = False,
):
    """Fit one law to K independent data sets in a single vectorised run.

    Each data set gets its own posterior (as if fitted alone with :func:`fit`): its own
    reference point, mode, whitening and adapted sampler. The sets share one compiled program,
    run with ``jax.vmap`` over sets, so K small fits cost far less than K calls of :func:`fit`
    (on a GPU the sets run in parallel; on CPU the NUTS trees run in lockstep).

    Parameters
    ----------
    datasets : sequence or mapping of DataFrame / CSV path / dataset name
        The data sets; a mapping's keys name the results.
    law, priors, likelihood, columns, derive_tokens, flops_per_token
        As for :func:`fit` (no groups: fit a hierarchical model with :func:`fit` instead).
    num_chains, num_warmup, num_samples, target_accept_prob, seed, rng_key
        As for :func:`fit`; the same settings for every set.
    prior_samples : int, default 0
        Prior draws per set (0: no ``prior`` groups, the usual choice for many fits).
    method : {"nuts", "laplace"}, default "nuts"
    chain_method : {"sequential", "vectorized"} or None
        How the chains of one set run inside the vectorised program.
    batching : {"vmap", "joint"}, default "vmap"
        How the NUTS runs of the sets are combined (``method="nuts"`` only).

        - ``"vmap"``: one sampler per set, all in lockstep (``jax.vmap``), sets split over the
          local devices; each set has its own step size and mass matrix.
        - ``"joint"``: one sampler over all sets' (whitened) parameters at once, chains split
          over the local devices. The sets' posteriors are independent, so each set's draws
          are still draws of its own posterior, but the sets share one step size and one
          trajectory: a hard set slows (and protects) all of them. Measured on a 2-core CPU
          (``benchmarks/RESULTS.md``): about 2x faster than ``"vmap"`` for 10 small curves,
          about as fast for 100, and 3x slower (with no divergences where ``"vmap"`` had 38)
          on the 15 settings of ``porian-discrepancies``.
    trajectory_length : float, "auto" or None, default "auto"
        A number: jittered static HMC in place of NUTS, as for :func:`fit`; None: NUTS.
        ``"auto"``: static HMC of length ``MANY_TRAJECTORY_LENGTH`` (3.0) for all sets, then
        NUTS, in a second compiled call, for the sets that did not converge (divergences,
        R-hat > 1.01 or bulk ESS < 400); a set keeps its NUTS refit when that converged or has
        the lower max R-hat, and the refit's ``posterior.attrs["refitted"]`` says why it was
        run. In lockstep every set waits for the longest NUTS tree of the iteration; with a
        fixed length, which every set reads from one schedule, the sets' work is alike.
        Measured on a 2-core CPU (``benchmarks/RESULTS.md``): 100 small power-law curves took
        3.00 s against NUTS's 4.74 s, and 2.84 s once the sets shared one schedule (median of
        three calls, a slower hour); seven real training sets converged with static HMC (bulk
        ESS >= 1,111) where NUTS left four under 1,000 and one at R-hat 1.02, in 11.3 s
        against 8.7 s, on that seed; on other seeds some real set fell short of 400 bulk ESS
        with either sampler, as the warnings then say.
    progress_bar : bool, default False
        Say on stderr when the fits start and how long they took (the sets run as one
        compiled call, so there is no bar).

    Returns
    -------
    list or dict of arviz.InferenceData
        One fit per data set, in order (a dict with the mapping's keys when given a mapping).

    Raises
    ------
    ValueError
        For no data sets, an unknown method or an unknown batching.

    Warns
    -----
    RuntimeWarning
        For each set whose kept draws did not converge (divergences, R-hat > 1.01, bulk ESS
        < 400), what to try, naming the set after the figure (``max R-hat is 1.016 (> 1.01)
        for data set 'key'``, or ``data set 3 of 15`` for a sequence); where the NUTS refit
        did no better, the set keeps its static-HMC draws and its
        ``posterior.attrs["nuts_refit"]`` says so.

    Examples
    --------
    >>> from bayes_scaling import inference, datasets
    >>> demo = datasets.load_dataset("demo")
    >>> fits = inference.fit_many([demo, demo.iloc[::2]], "chinchilla", num_chains=2,
    ...                           num_warmup=200, num_samples=200)
    >>> len(fits), fits[1].posterior.sizes["draw"]
    (2, 200)
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if batching not in _engine.BATCHINGS:
        raise ValueError(
            f"batching must be one of {', '.join(_engine.BATCHINGS)}; got {batching!r}"
        )
    names = list(datasets) if isinstance(datasets, Mapping) else None
    items = [datasets[k] for k in names] if names is not None else list(datasets)
    if not items:
        raise ValueError("fit_many needs at least one data set; got none")
    inputs = [
        prepare(
            d,
            law,
            priors=priors,
            likelihood=likelihood,
            columns=columns,
            derive_tokens=derive_tokens,
            flops_per_token=flops_per_token,
        )
        for d in items
    ]
    auto = trajectory_length == "auto" and method == "nuts"
    settings = SamplerSettings(
        num_chains=num_chains,
        num_warmup=num_warmup,
        num_samples=num_samples,
        target_accept_prob=target_accept_prob,
        chain_method=chain_method,
        progress_bar=progress_bar,
        trajectory_length=MANY_TRAJECTORY_LENGTH if auto else trajectory_length,
    )
    _engine.cache_from_environment()
    key = jax.random.PRNGKey(seed) if rng_key is None else rng_key
    what = f"fitting {len(inputs)} data sets in one compiled call (compiled on first use)"
    with Progress(progress_bar).phase(what):
        fits = _fits_of_many(inputs, key, settings, prior_samples, method, batching)
    checks = [_diagnosed(f, method) for f in fits]
    if auto:
        _refit_unconverged(inputs, fits, checks, (key, settings, prior_samples, method, batching))
    if method == "nuts":
        for k, (f, d) in enumerate(zip(fits, checks, strict=True)):
            subject = (
                f"data set {names[k]!r}" if names is not None else f"data set {k} of {len(fits)}"
            )
            warn_diagnostics(f.posterior, f.sample_stats, found=d, subject=subject)
    return dict(zip(names, fits, strict=True)) if names is not None else fits


def _refit_unconverged(inputs, fits, checks, run) -> None:
    """Refit with NUTS, in one more compiled call, the sets whose static-HMC fit did not
    converge; each keeps the better of its two fits (:func:`_better_of`). ``fits`` and
    ``checks`` (their diagnostics) are updated in place; ``run`` is ``(key, settings,
    prior_samples, method, batching)`` of the first call."""
    key, settings, prior_samples, method, batching = run
    stuck = [k for k, d in enumerate(checks) if not _converged(d)]
    if not stuck:
        return
    what = f"{len(stuck)} of {len(fits)} sets did not converge with static HMC; refitting with NUTS"
    with Progress(settings.progress_bar).phase(what):
        again = _fits_of_many(
            [inputs[k] for k in stuck],
            jax.random.fold_in(key, 1),
            dataclasses.replace(settings, trajectory_length=None),
            prior_samples,
            method,
            batching,
        )
    for k, refit in zip(stuck, again, strict=True):
        fits[k], checks[k] = _better_of(fits[k], checks[k], refit, _diagnosed(refit, method))


def _fits_of_many(inputs, key, settings, prior_samples, method, batching):
    """One ``run_many`` call over ``inputs``; the fits without their diagnostics warnings."""
    outs = _engine.run_many(
        inputs[0].spec,
        [i.x for i in inputs],
        [i.y for i in inputs],
        [i.spec.reference_map for i in inputs],
        key,
        settings,
        prior_samples=prior_samples,
        method=method,
        batching=batching,
    )
    return [
        to_inference_data(
            _groups_from_run(
                i,
                o,
                method,
                settings.target_accept_prob,
                settings.static_length(),
                warn=False,
            )
        )
        for i, o in zip(inputs, outs, strict=True)
    ]


def _diagnosed(idata, method: str) -> dict[str, float] | None:
    """The fit's diagnostics (:func:`diagnostics`), None for Laplace draws."""
    return diagnostics(idata.posterior, idata.sample_stats) if method == "nuts" else None


def _converged(d: dict[str, float] | None) -> bool:
    """:func:`converged` (the warnings' thresholds); Laplace draws (None) have nothing to
    refit, and draws too few to tell would be no better placed in a refit."""
    return d is None or converged(d)


def _better_of(static, static_d, nuts, nuts_d):
    """Of a set's static-HMC fit and its NUTS refit (each with its diagnostics), the converged
    one, else the one with the lower max R-hat (both are draws of the same posterior); the
    NUTS refit's ``posterior`` records why it was run (attribute ``refitted``)."""
    if not _converged(nuts_d) and not nuts_d["max_rhat"] < static_d["max_rhat"]:
        static.posterior.attrs["nuts_refit"] = (
            f"fit_many refitted this set with NUTS, which did no better (max R-hat "
            f"{nuts_d['max_rhat']:.3f}, min bulk ESS {nuts_d['min_ess']:.0f}, "
            f"{nuts_d['divergences']} divergences), and kept these draws: more warmup and "
            "draws (num_warmup, num_samples) are what is left to try"
        )
        return static, static_d
    nuts.posterior.attrs["refitted"] = (
        f"static HMC (trajectory_length={MANY_TRAJECTORY_LENGTH:g}) did not converge "
        f"(max R-hat {static_d['max_rhat']:.3f}, min bulk ESS {static_d['min_ess']:.0f}, "
        f"{static_d['divergences']} divergences); refitted with NUTS"
    )
    return nuts, nuts_d
