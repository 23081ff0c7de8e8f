"""Run NUTS on a scaling-law model and return a labelled ArviZ ``InferenceData``.

Layers: :func:`prepare` (validated frame -> arrays and a hashable :class:`ModelSpec`),
:func:`sample` (explicit ``rng_key`` -> dict of xarray groups), :func:`fit` (one call from data
to ``InferenceData``), :func:`fit_many` (K data sets in one vectorised run). The numeric work is
one compiled program per model structure, padded data size and sampler settings
(:mod:`bayes_scaling.engine`), so a second fit of same-shaped data -- or of another data set of
similar size -- does not trace or compile again.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling import __version__
from bayes_scaling._files import atomic_path
from bayes_scaling import data as _data
from bayes_scaling import engine as _engine
from bayes_scaling.engine import METHODS, TRACE_COUNTS, SamplerSettings  # noqa: F401 (TRACE_COUNTS re-exported)
from bayes_scaling.laws import LawSpec, get_law
from bayes_scaling.models import LIKELIHOODS, ModelSpec, build_model, resolve_pooling  # noqa: F401
from bayes_scaling.priors import PriorSet, resolve_priors

__all__ = [
    "FitInputs",
    "SamplerSettings",
    "prepare",
    "sample",
    "fit",
    "to_inference_data",
    "save_fit",
    "load_fit",
    "posterior_draws",
    "fit_law",
    "fit_many",
    "fit_spec",
    "summarize",
    "diagnostics",
]


@dataclasses.dataclass(frozen=True)
class FitInputs:
    """Arrays for the model (log covariates, log target, group codes) and their labels."""

    spec: ModelSpec
    frame: pd.DataFrame
    x: dict[str, np.ndarray]
    y: np.ndarray
    group_index: np.ndarray | None
    group_labels: tuple[str, ...]
    group_column: str | None

    @property
    def num_points(self) -> int:
        return int(self.y.shape[0])


def prepare(
    data,
    law: str | LawSpec = "chinchilla",
    *,
    priors=None,
    group: str | None = None,
    pooling=None,
    likelihood: str = "student_t",
    columns: Mapping[str, str] | None = None,
    derive_tokens: bool = False,
    flops_per_token: float = 6.0,
) -> FitInputs:
    """Validate data and build the static model spec plus the arrays it is run on."""
    spec_law = get_law(law)
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {', '.join(LIKELIHOODS)}")
    prior_set = resolve_priors(spec_law, priors)
    pool = resolve_pooling(spec_law, pooling, grouped=group is not None)
    frame = _data.validate(
        data, spec_law, group=group, columns=columns, derive_tokens=derive_tokens,
        flops_per_token=flops_per_token, pooling=pool,
    )
    x = {c: np.log(frame[c].to_numpy(dtype=float)) for c in spec_law.covariates}
    y = np.log(frame[spec_law.target].to_numpy(dtype=float))
    if group is not None:
        codes, labels = pd.factorize(frame["group"], sort=True)
        group_index = codes.astype(np.int32)
        group_labels = tuple(str(v) for v in labels)
    else:
        group_index, group_labels = None, ()
    reference = tuple((c, float(np.round(x[c].mean(), 6))) for c in spec_law.covariates)
    spec = ModelSpec(
        law=spec_law,
        priors=prior_set,
        likelihood=likelihood,
        pooling=tuple(sorted(pool.items())),
        num_groups=len(group_labels),
        reference=reference,
    )
    return FitInputs(spec, frame, x, y, group_index, group_labels, group)


# --------------------------------------------------------------------------- sampling


def sample(
    inputs: FitInputs,
    rng_key: jax.Array,
    settings: SamplerSettings = SamplerSettings(),
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
        ``"nuts"``: NUTS in coordinates whitened by a Laplace fit at the mode (see
        :mod:`bayes_scaling.engine`). ``"laplace"``: independent draws from the Gaussian
        approximation at the mode on the unconstrained scale -- a quick look, narrower than the
        posterior where it is skewed (calibration in ``benchmarks/RESULTS.md``).
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
    _warn_few_runs(inputs)
    out = _engine.run_fit(
        spec, inputs.x, inputs.y, inputs.group_index, rng_key, settings,
        prior_samples=prior_samples, method=method, pad_to=pad_to,
    )
    return _groups_from_run(inputs, out, method)


def _warn_few_runs(inputs: FitInputs) -> None:
    n_params = len(inputs.spec.law.param_names)
    if inputs.num_points < n_params:
        warnings.warn(
            f"{inputs.num_points} run{'s' if inputs.num_points != 1 else ''} for a law with {n_params} parameters: "
            "the fit will mostly repeat the priors; add runs or choose a law with fewer parameters",
            UserWarning, stacklevel=4,
        )


def _groups_from_run(inputs: FitInputs, out: Mapping[str, Any], method: str) -> dict[str, xr.Dataset]:
    """xarray groups from the arrays of one run of the compiled program."""
    spec = inputs.spec
    samples = out["samples"]
    groups = _to_groups(inputs, samples, out["stats"])
    groups["posterior"].attrs["method"] = method
    nc, nd = next(iter(samples.values())).shape[:2]
    site = f"log_{spec.law.target}"
    groups["log_likelihood"] = xr.Dataset(
        {site: (("chain", "draw", "point"), np.asarray(out["log_likelihood"]))},
        coords=_coords(inputs, nc, nd),
    )
    if out.get("prior"):
        prior = dict(out["prior"])
        prior_pred = np.asarray(prior.pop(site))[None]
        prior_params = {k: np.asarray(v)[None] for k, v in prior.items()}
        n_prior = prior_pred.shape[1]
        groups["prior"] = _params_dataset(inputs, prior_params, 1, n_prior)
        groups["prior_predictive"] = xr.Dataset(
            {site: (("chain", "draw", "point"), prior_pred)},
            coords=_coords(inputs, 1, n_prior),
        )
    if method == "nuts":
        _warn_diagnostics(groups["posterior"], groups["sample_stats"], spec)
    if "prior" in groups:
        _warn_prior_dominated(groups["posterior"], groups["prior"], spec)
    return groups


PRIOR_DOMINATED_RATIO = 0.9


def _spread(values: np.ndarray) -> float:
    """Standard deviation, on the log scale for positive quantities (scale-free)."""
    values = values[np.isfinite(values)]
    if values.size < 2:
        return float("nan")
    return float(np.std(np.log(values)) if (values > 0).all() else np.std(values))


def _warn_prior_dominated(posterior: xr.Dataset, prior: xr.Dataset, spec: ModelSpec) -> None:
    """Warn when the data barely moved the law's parameters: posterior spread close to the prior's."""
    names = [n for n in spec.law.param_names if n in posterior and n in prior]
    ratios = {n: _spread(posterior[n].values.ravel()) / _spread(prior[n].values.ravel()) for n in names}
    flat = [n for n, r in ratios.items() if np.isfinite(r) and r >= PRIOR_DOMINATED_RATIO]
    if names and len(flat) * 2 >= len(names):
        listed = ", ".join(f"{n} ({ratios[n]:.2f})" for n in flat)
        warnings.warn(
            f"the posterior is close to the prior for {listed} (posterior/prior spread): the data say "
            "little about them. Check the data's units and columns, add runs, or use informative priors.",
            RuntimeWarning, stacklevel=3,
        )


def _coords(inputs: FitInputs, nc: int, nd: int) -> dict[str, Any]:
    coords: dict[str, Any] = {"chain": np.arange(nc), "draw": np.arange(nd), "point": np.arange(inputs.num_points)}
    if inputs.group_labels:
        coords["group"] = list(inputs.group_labels)
    return coords


def _params_dataset(inputs: FitInputs, samples: Mapping[str, np.ndarray], nc: int, nd: int) -> xr.Dataset:
    spec = inputs.spec
    keep = list(spec.law.param_names) + ["sigma", "nu"]
    keep += [f"{p}_pop_{s}" for p in spec.law.param_names for s in ("loc", "sd")]
    data_vars = {}
    for name in keep:
        if name not in samples:
            continue
        v = np.asarray(samples[name])
        dims = ("chain", "draw") + (("group",) if v.ndim == 3 else ())
        data_vars[name] = (dims, v)
    ds = xr.Dataset(data_vars, coords={k: v for k, v in _coords(inputs, nc, nd).items() if k != "point"})
    return ds


def _to_groups(inputs: FitInputs, samples, extra) -> dict[str, xr.Dataset]:
    spec = inputs.spec
    nc, nd = next(iter(samples.values())).shape[:2]
    posterior = _params_dataset(inputs, {k: np.asarray(v) for k, v in samples.items()}, nc, nd)
    posterior.attrs.update(_attrs(inputs))
    stats = xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.asarray(extra["diverging"]).astype(bool)),
            "n_steps": (("chain", "draw"), np.asarray(extra["num_steps"])),
            "energy": (("chain", "draw"), np.asarray(extra["energy"])),
            "lp": (("chain", "draw"), -np.asarray(extra["potential_energy"])),
            "acceptance_rate": (("chain", "draw"), np.asarray(extra["accept_prob"])),
        },
        coords={"chain": np.arange(nc), "draw": np.arange(nd)},
    )
    point = np.arange(inputs.num_points)
    target = spec.law.target
    observed = xr.Dataset({f"log_{target}": (("point",), inputs.y)}, coords={"point": point})
    const = {c: (("point",), inputs.frame[c].to_numpy(dtype=float)) for c in spec.law.covariates}
    if inputs.group_index is not None:
        const["group_index"] = (("point",), inputs.group_index)
    constant = xr.Dataset(const, coords={"point": point, **({"group": list(inputs.group_labels)} if inputs.group_labels else {})})
    return {"posterior": posterior, "sample_stats": stats, "observed_data": observed, "constant_data": constant}


@functools.cache
def _numpyro_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("numpyro")
    except PackageNotFoundError:  # pragma: no cover - numpyro is a dependency
        return "unknown"


def _attrs(inputs: FitInputs) -> dict[str, str]:
    spec = inputs.spec
    return {
        "law": spec.law.name,
        "formula": spec.law.formula,
        "priors": spec.priors.to_json(),
        "likelihood": spec.likelihood,
        "pooling": json.dumps(spec.pooling_map),
        "group_column": inputs.group_column or "",
        "groups": json.dumps(list(inputs.group_labels)),
        "covariates": json.dumps(list(spec.law.covariates)),
        "target": spec.law.target,
        "reference": json.dumps(spec.reference_map),
        "data_hash": _data.data_hash(inputs.frame),
        "num_points": str(inputs.num_points),
        "bayes_scaling_version": __version__,
        "inference_library": f"numpyro {_numpyro_version()}",
    }


# numpyro's split R-hat and ESS estimators (numpyro.diagnostics), transcribed to numpy: the
# CLI fit path calls them and must not import numpyro (0.5 s) or arviz (2 s) to do so. A test
# checks they agree with numpyro's to rounding. Reports and `summarize` use arviz's.


def _chain_variances(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[1]
    within = x.var(axis=1, ddof=1).mean(axis=0)
    estimator = within * (n - 1) / n
    if x.shape[0] > 1:
        estimator = estimator + x.mean(axis=1).var(axis=0, ddof=1)
    else:
        within = estimator
    return within, estimator


def _split_rhat(v: np.ndarray) -> np.ndarray:
    """Split R-hat over (chain, draw, ...) draws (Gelman et al.; numpyro's estimator)."""
    v = np.asarray(v, dtype=np.float64)
    half = v.shape[1] // 2
    if half < 2:  # undefined for fewer than 4 draws per chain
        return np.full(v.shape[2:], np.nan)
    within, estimator = _chain_variances(np.concatenate([v[:, :half], v[:, -half:]], axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(estimator / within)


def _ess(v: np.ndarray) -> np.ndarray:
    """Effective sample size over (chain, draw, ...) draws (Geyer's initial monotone sequence
    on the multi-chain autocorrelation of the Stan manual; numpyro's estimator)."""
    x = np.asarray(v, dtype=np.float64)
    n = x.shape[1]
    if n < 4:  # undefined for fewer than 4 draws per chain
        return np.full(x.shape[2:], np.nan)
    m = 1 << (n - 1).bit_length()  # FFT length >= n, padded to 2m against wrap-around
    centred = np.moveaxis(x - x.mean(axis=1, keepdims=True), 1, -1)
    f = np.fft.rfft(centred, n=2 * m, axis=-1)
    autocov = np.moveaxis(np.fft.irfft(f * np.conjugate(f), n=2 * m, axis=-1)[..., :n] / n, -1, 1)
    within, estimator = _chain_variances(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (within - autocov.mean(axis=0)) / estimator
    rho[0] = 1.0
    pairs = rho[:-1:2] + rho[1::2]
    pairs = np.concatenate([pairs[:1], np.minimum.accumulate(np.clip(pairs[1:], 0, None), axis=0)], axis=0)
    tau = -1.0 + 2.0 * pairs.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return x.shape[0] * n / tau


def _nan_extreme(fn, values: np.ndarray) -> float:
    """``fn`` over the finite-or-infinite values, NaN when all are NaN (without numpy's warning)."""
    values = np.asarray(values, dtype=float).ravel()
    values = values[~np.isnan(values)]
    return float(fn(values)) if values.size else float("nan")


def diagnostics(posterior: xr.Dataset, sample_stats: xr.Dataset, names=None) -> dict[str, float]:
    """Max split R-hat, min ESS (numpyro's estimators, in numpy) and the divergence count.

    R-hat and ESS are NaN with fewer than 4 draws per chain (too few to estimate them).
    """
    names = names or [n for n in posterior.data_vars]
    rhat, ess = [], []
    for name in names:
        v = posterior[name].values
        if v.shape[0] > 1:
            rhat.append(_nan_extreme(np.max, _split_rhat(v)))
        ess.append(_nan_extreme(np.min, _ess(v)))
    return {
        "max_rhat": _nan_extreme(np.max, np.asarray(rhat)) if rhat else float("nan"),
        "min_ess": _nan_extreme(np.min, np.asarray(ess)),
        "divergences": int(sample_stats["diverging"].sum()),
    }


def _warn_diagnostics(posterior: xr.Dataset, stats: xr.Dataset, spec: ModelSpec) -> None:
    names = [n for n in posterior.data_vars]
    d = diagnostics(posterior, stats, names)
    if np.isnan(d["min_ess"]):
        warnings.warn(
            f"{posterior.sizes['draw']} draws per chain are too few to estimate R-hat or the effective "
            "sample size (at least 4 needed): convergence is unchecked. Draw more samples (--samples).",
            RuntimeWarning, stacklevel=3,
        )
    if d["divergences"]:
        warnings.warn(
            f"{d['divergences']} divergent transitions: the posterior has regions NUTS cannot explore "
            "reliably. Try target_accept_prob=0.95 or 0.99 (CLI --target-accept), more informative "
            "priors, or sharing poorly identified parameters across groups.",
            RuntimeWarning, stacklevel=3,
        )
    if d["max_rhat"] > 1.01:
        warnings.warn(
            f"max R-hat is {d['max_rhat']:.3f} (> 1.01): chains disagree. Run more warmup and samples "
            "(--warmup, --samples), check for multimodality, or use more informative priors.",
            RuntimeWarning, stacklevel=3,
        )
    if d["min_ess"] < 400:
        warnings.warn(
            f"min effective sample size is {d['min_ess']:.0f} (< 400): tail quantiles are unreliable. "
            "Draw more samples (--samples) or more chains (--chains).",
            RuntimeWarning, stacklevel=3,
        )


# --------------------------------------------------------------------------- one-call API


def to_inference_data(groups: Mapping[str, xr.Dataset]):
    """Wrap groups in an ``arviz.InferenceData`` (arviz is imported here, lazily)."""
    import arviz as az

    return az.InferenceData(**dict(groups))


def fit(
    data,
    law: str | LawSpec = "chinchilla",
    *,
    priors: None | str | Path | Mapping | PriorSet = None,
    group: str | None = None,
    pooling: None | str | Mapping[str, str] = None,
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
):
    """Fit a scaling law with NUTS (or a Laplace approximation) and return ``InferenceData``.

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
        Column defining groups (datasets, architectures, settings) for a hierarchical fit.
    pooling : None, str or mapping
        Per-parameter ``"shared"``, ``"pooled"`` (default with groups) or ``"independent"``.
    likelihood : {"student_t", "normal"}
        Likelihood of the log target; Student-t (degrees of freedom learned) is robust to outliers.
    num_chains, num_warmup, num_samples : int
        NUTS budget. Defaults give bulk ESS well above 1000 for the Chinchilla law.
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
        Ignored: the fit runs as one compiled call (kept for compatibility).
    method : {"nuts", "laplace"}, default "nuts"
        ``"laplace"`` draws ``num_chains x num_samples`` independent draws from the Gaussian
        approximation at the posterior mode (unconstrained scale): same layout, milliseconds
        once compiled, narrower than NUTS where the posterior is skewed.
    pad_to : int, optional
        Pad the data (masked rows, which do not enter the likelihood) as if it had at least
        this many rows. Fits of subsets of one data set given the same ``pad_to`` share one
        compiled program instead of compiling one per size.

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
    >>> idata = fit(load_dataset("demo"), "chinchilla", num_chains=2, num_warmup=200,
    ...             num_samples=200, seed=0)  # doctest: +SKIP
    >>> float(idata.posterior["alpha"].median())  # doctest: +SKIP
    0.35...
    """
    inputs = prepare(
        data, law, priors=priors, group=group, pooling=pooling, likelihood=likelihood,
        columns=columns, derive_tokens=derive_tokens, flops_per_token=flops_per_token,
    )
    settings = SamplerSettings(
        num_chains=num_chains, num_warmup=num_warmup, num_samples=num_samples,
        target_accept_prob=target_accept_prob, progress_bar=progress_bar,
    )
    key = jax.random.PRNGKey(seed) if rng_key is None else rng_key
    groups = sample(inputs, key, settings, prior_samples=prior_samples, method=method, pad_to=pad_to)
    return to_inference_data(groups)


fit_law = fit  # alias used in docs


def fit_many(
    datasets,
    law: str | LawSpec = "chinchilla",
    *,
    priors: None | str | Path | Mapping | PriorSet = None,
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

    Returns
    -------
    list or dict of arviz.InferenceData
        One fit per data set, in order (a dict with the mapping's keys when given a mapping).

    Raises
    ------
    ValueError
        For no data sets, an unknown method or an unknown batching.

    Examples
    --------
    >>> from bayes_scaling import inference, datasets
    >>> demo = datasets.load_dataset("demo")
    >>> fits = inference.fit_many([demo, demo.iloc[::2]], "chinchilla", num_chains=2,
    ...                           num_warmup=200, num_samples=200)  # doctest: +SKIP
    >>> len(fits)  # doctest: +SKIP
    2
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if batching not in _engine.BATCHINGS:
        raise ValueError(f"batching must be one of {', '.join(_engine.BATCHINGS)}; got {batching!r}")
    names = list(datasets) if isinstance(datasets, Mapping) else None
    items = [datasets[k] for k in names] if names is not None else list(datasets)
    if not items:
        raise ValueError("fit_many needs at least one data set; got none")
    inputs = [
        prepare(d, law, priors=priors, likelihood=likelihood, columns=columns,
                derive_tokens=derive_tokens, flops_per_token=flops_per_token)
        for d in items
    ]
    settings = SamplerSettings(
        num_chains=num_chains, num_warmup=num_warmup, num_samples=num_samples,
        target_accept_prob=target_accept_prob, chain_method=chain_method,
    )
    key = jax.random.PRNGKey(seed) if rng_key is None else rng_key
    outs = _engine.run_many(
        inputs[0].spec, [i.x for i in inputs], [i.y for i in inputs],
        [i.spec.reference_map for i in inputs], key, settings,
        prior_samples=prior_samples, method=method, batching=batching,
    )
    fits = [to_inference_data(_groups_from_run(i, o, method)) for i, o in zip(inputs, outs)]
    return dict(zip(names, fits)) if names is not None else fits



def fit_spec(idata) -> dict[str, Any]:
    """The decoded ``posterior.attrs`` of a fit: law spec, priors, pooling, groups, reference."""
    attrs = dict(idata.posterior.attrs)
    missing = [k for k in ("law", "priors") if k not in attrs]
    if missing:
        raise ValueError(
            f"the fit's posterior has no {' or '.join(repr(m) for m in missing)} attribute; "
            "it was not written by bayes-scaling fit, or its attributes were removed"
        )
    law = get_law(attrs["law"])
    try:
        priors = PriorSet.from_dict(json.loads(attrs["priors"]))
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"the fit's 'priors' attribute cannot be read: {exc}") from None
    return {
        "law": law,
        "priors": priors,
        "pooling": json.loads(attrs.get("pooling", "{}")),
        "groups": json.loads(attrs.get("groups", "[]")),
        "reference": json.loads(attrs.get("reference", "{}")),
        "likelihood": attrs.get("likelihood", "student_t"),
        "group_column": attrs.get("group_column", ""),
    }


# --------------------------------------------------------------------------- files


def _netcdf_engine() -> str:
    """netCDF4 when installed (3x faster than h5netcdf at appending groups), else h5netcdf.

    Both write the same netCDF-4/HDF5 file; either reads what the other wrote.
    """
    try:
        import netCDF4  # noqa: F401
    except ImportError:
        return "h5netcdf"
    return "netcdf4"


def save_fit(fit_or_groups, path: str | Path) -> Path:
    """Write a fit to netCDF atomically (a temporary file renamed on success; never pickle).

    An existing file at ``path`` is replaced only once the new one is complete; the file gets
    the permissions of an ordinary new file (the user's umask).
    """
    path = Path(path)
    groups = fit_or_groups if isinstance(fit_or_groups, Mapping) else {g: fit_or_groups[g] for g in fit_or_groups.groups()}
    engine = _netcdf_engine()
    with atomic_path(path, suffix=".nc") as tmp:
        mode = "w"
        for name, ds in groups.items():
            ds.to_netcdf(tmp, mode=mode, group=name, engine=engine)
            mode = "a"
    return path


def load_fit(path: str | Path):
    """Read a fit saved by :func:`save_fit` (or ``InferenceData.to_netcdf``) as InferenceData."""
    import arviz as az

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fit file {str(path)!r} does not exist")
    try:
        idata = az.from_netcdf(path)
    except Exception as exc:  # noqa: BLE001 - any reader error means "not a fit file"
        raise ValueError(f"{str(path)!r} is not a bayes-scaling fit file (netCDF): {exc}") from None
    if "posterior" not in idata.groups() or "law" not in idata.posterior.attrs:
        raise ValueError(f"{str(path)!r} has no posterior with a 'law' attribute; was it written by bayes-scaling fit?")
    return idata


# --------------------------------------------------------------------------- draws


def posterior_draws(idata, group: str | None = None, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Flat posterior draws of the law parameters, ``sigma`` and ``nu``, each of shape ``(S,)``.

    Parameters
    ----------
    idata : InferenceData
        A fit from :func:`fit`.
    group : str, optional
        For hierarchical fits: a group label, or ``"new"`` for a group not in the data, whose
        parameters are drawn from the fitted population distribution (pooled parameters) or
        taken as they are (shared parameters).
    seed : int, default 0
        Seed for the population draws of a new group.

    Raises
    ------
    ValueError
        For a grouped fit without ``group``, an unknown label, or ``"new"`` when a parameter
        is independent across groups (it has no population distribution).
    """
    info = fit_spec(idata)
    law: LawSpec = info["law"]
    post = idata.posterior
    labels = info["groups"]
    per_group = [n for n in law.param_names if "group" in post[n].dims]
    if per_group and group is None:
        raise ValueError(f"this fit has per-group parameters {per_group}; pass group= one of {labels} or 'new'")
    if group is not None and group != "new" and group not in labels:
        raise ValueError(f"unknown group {group!r}; the fit's groups are {labels} (or 'new' for an unseen group)")
    out: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(seed)
    for p in law.params:
        v = post[p.name]
        if "group" not in v.dims:
            out[p.name] = v.values.reshape(-1)
        elif group != "new":
            out[p.name] = v.sel(group=group).values.reshape(-1)
        else:
            if info["pooling"].get(p.name) != "pooled":
                raise ValueError(
                    f"parameter {p.name!r} is independent across groups, so a new group has no "
                    "population distribution to draw from; refit with it pooled"
                )
            loc = post[f"{p.name}_pop_loc"].values.reshape(-1)
            sd = post[f"{p.name}_pop_sd"].values.reshape(-1)
            u = loc + sd * rng.standard_normal(loc.shape)
            if p.centre is not None:
                cov, exponent = p.centre
                ref = info["reference"][cov]
                u = u + (ref if exponent is None else out[exponent] * ref)
            out[p.name] = np.exp(u) if p.constraint == "positive" else u
    out["sigma"] = post["sigma"].values.reshape(-1)
    if "nu" in post:
        out["nu"] = post["nu"].values.reshape(-1)
    elif info["likelihood"] == "student_t":
        nu = info["priors"].noise["nu"]
        out["nu"] = np.full_like(out["sigma"], nu.kwargs.get("value", np.inf))
    return out




def summarize(idata, var_names=None, quantiles=(0.05, 0.5, 0.95)) -> pd.DataFrame:
    """Posterior table: mean, sd, quantiles, R-hat and bulk/tail ESS (ArviZ's estimators).

    One row per parameter, or per parameter and group (``alpha[rw]``) for per-group ones.
    """
    import arviz as az

    post = idata.posterior
    if var_names is None:
        law = get_law(post.attrs["law"])
        var_names = [n for n in list(law.param_names) + ["sigma", "nu"] if n in post]
    unknown = [n for n in var_names if n not in post]
    if unknown:
        raise KeyError(f"unknown variables {unknown}; the posterior has {list(post.data_vars)}")
    ds = post[var_names]
    rhat = az.rhat(ds) if post.sizes["chain"] > 1 else None
    ess_bulk = az.ess(ds, method="bulk")
    ess_tail = az.ess(ds, method="tail")
    rows = []
    for name in var_names:
        v = ds[name]
        labels = [None] if "group" not in v.dims else list(v["group"].values)
        for label in labels:
            sel = v if label is None else v.sel(group=label)
            values = sel.values.reshape(-1)
            row = {"parameter": name if label is None else f"{name}[{label}]",
                   "mean": float(values.mean()), "sd": float(values.std(ddof=1))}
            for q, qv in zip(quantiles, np.quantile(values, quantiles)):
                row[f"q{round(q * 100):02d}"] = float(qv)
            pick = (lambda d: d[name]) if label is None else (lambda d: d[name].sel(group=label))
            row["r_hat"] = float(pick(rhat)) if rhat is not None else float("nan")
            row["ess_bulk"] = float(pick(ess_bulk))
            row["ess_tail"] = float(pick(ess_tail))
            rows.append(row)
    return pd.DataFrame(rows).set_index("parameter")
