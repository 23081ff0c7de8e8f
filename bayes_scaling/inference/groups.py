"""The arrays of one run of the compiled program as labelled xarray groups (posterior,
sample_stats, log_likelihood, observed and constant data, prior), their attributes, and the
warnings about what the data and the draws say."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from bayes_scaling import __version__
from bayes_scaling import data as _data
from bayes_scaling._warnings import warn
from bayes_scaling.inference.diagnostics import warn_diagnostics
from bayes_scaling.inference.prepare import FitInputs
from bayes_scaling.models import ModelSpec

__all__ = ["groups_from_run", "to_inference_data"]


def _warn_few_runs(inputs: FitInputs) -> None:
    n_params = len(inputs.spec.law.param_names)
    if inputs.num_points < n_params:
        warn(
            f"{inputs.num_points} run{'s' if inputs.num_points != 1 else ''} for a law with "
            f"{n_params} parameters: the fit will mostly repeat the priors; add runs or choose a "
            "law with fewer parameters",
            UserWarning,
        )


def _groups_from_run(
    inputs: FitInputs,
    out: Mapping[str, Any],
    method: str,
    target_accept_prob: float | None = None,
    trajectory_length: float | None = None,
    whitening: str | None = None,
    pilot: bool | str = False,
    *,
    rewhitened_target: float | None = None,
    adaptation_target: float | None = None,
    warn: bool = True,
) -> dict[str, xr.Dataset]:
    """xarray groups from the arrays of one run of the compiled program.

    ``target_accept_prob`` (the target acceptance the run used; where it re-whitened,
    ``rewhitened_target``, that of the re-whitened chains, which made the kept draws;
    ``adaptation_target``, where the chains that made them aimed lower from half-way through
    warmup, :meth:`bayes_scaling.engine.SamplerSettings.adaptation_target`, is recorded beside
    it) and
    ``trajectory_length`` (static HMC's mean trajectory length; None for NUTS) are
    recorded in the posterior's attributes, where the diagnostics warnings and the report read
    them; so is ``whitening`` (the sampler's coordinates about the mode, ``"full"``,
    ``"diagonal"`` or ``"locations"``) when given; ``pilot`` is 1 when a pilot run
    re-whitened them (``SamplerSettings(pilot=True)``) or when the run's choice half-way
    through warmup did (``pilot="auto"``), 0 when that choice went on without, and
    ``pilot_correlation`` and ``pilot_condition`` are the correlation and the condition number
    the choice read; ``offset_scaling`` is the offsets' power where the run chose it at the
    mode (``SamplerSettings.tied_offsets_above``).
    ``warn=False`` leaves the diagnostics warnings to the caller (``fit_many``, which may
    replace a run before it is returned).
    """
    spec = inputs.spec
    samples = out["samples"]
    groups = _to_groups(inputs, samples, out["stats"])
    groups["posterior"].attrs["method"] = method
    if method == "nuts" and target_accept_prob is not None:
        groups["posterior"].attrs["target_accept_prob"] = float(target_accept_prob)
    if method == "nuts" and trajectory_length is not None:
        groups["posterior"].attrs["trajectory_length"] = float(trajectory_length)
    if method == "nuts" and whitening in ("full", "diagonal", "locations"):
        groups["posterior"].attrs["whitening"] = whitening
    # netCDF attributes take no booleans
    if method == "nuts" and pilot is True:
        groups["posterior"].attrs["pilot"] = 1
    elif method == "nuts" and "pilot_correlation" in out["stats"]:
        seen = float(np.asarray(out["stats"]["pilot_correlation"]))
        groups["posterior"].attrs["pilot_correlation"] = seen
        condition = float(np.asarray(out["stats"]["pilot_condition"]))
        groups["posterior"].attrs["pilot_condition"] = condition
        groups["posterior"].attrs["pilot"] = int(np.asarray(out["stats"]["pilot_rewhitened"]))
    if groups["posterior"].attrs.get("pilot") == 1 and rewhitened_target is not None:
        groups["posterior"].attrs["target_accept_prob"] = float(rewhitened_target)
    elif (
        method == "nuts"
        and adaptation_target is not None
        and adaptation_target != target_accept_prob
    ):
        groups["posterior"].attrs["adaptation_target"] = float(adaptation_target)
    if method == "nuts" and "offset_scaling" in out["stats"]:  # chosen at the mode
        power = float(np.asarray(out["stats"]["offset_scaling"]))
        groups["posterior"].attrs["offset_scaling"] = power
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
    if method == "nuts" and warn:
        warn_diagnostics(groups["posterior"], groups["sample_stats"])
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
    """Warn when the data barely moved the law's parameters (posterior spread near the prior's)."""
    names = [n for n in spec.law.param_names if n in posterior and n in prior]
    ratios = {
        n: _spread(posterior[n].values.ravel()) / _spread(prior[n].values.ravel()) for n in names
    }
    flat = [n for n, r in ratios.items() if np.isfinite(r) and r >= PRIOR_DOMINATED_RATIO]
    if names and len(flat) * 2 >= len(names):
        listed = ", ".join(f"{n} ({ratios[n]:.2f})" for n in flat)
        warn(
            f"the posterior is close to the prior for {listed} (posterior/prior spread): the "
            "data say little about them. Check the data's units and columns, add runs, or use "
            "informative priors.",
            RuntimeWarning,
        )


def _coords(inputs: FitInputs, nc: int, nd: int) -> dict[str, Any]:
    coords: dict[str, Any] = {
        "chain": np.arange(nc),
        "draw": np.arange(nd),
        "point": np.arange(inputs.num_points),
    }
    if inputs.group_labels:
        coords["group"] = list(inputs.group_labels)
    return coords


def _params_dataset(
    inputs: FitInputs, samples: Mapping[str, np.ndarray], nc: int, nd: int
) -> xr.Dataset:
    spec = inputs.spec
    keep = [*spec.law.param_names, "sigma", "nu"]
    keep += [f"{p}_pop_{s}" for p in spec.law.param_names for s in ("loc", "sd")]
    data_vars = {}
    for name in keep:
        if name not in samples:
            continue
        v = np.asarray(samples[name])
        dims = ("chain", "draw") + (("group",) if v.ndim == 3 else ())
        data_vars[name] = (dims, v)
    ds = xr.Dataset(
        data_vars, coords={k: v for k, v in _coords(inputs, nc, nd).items() if k != "point"}
    )
    return ds


def _to_groups(inputs: FitInputs, samples, extra) -> dict[str, xr.Dataset]:
    spec = inputs.spec
    nc, nd = next(iter(samples.values())).shape[:2]
    posterior = _params_dataset(inputs, {k: np.asarray(v) for k, v in samples.items()}, nc, nd)
    posterior.attrs.update(_attrs(inputs))
    stats_vars = {
        "diverging": (("chain", "draw"), np.asarray(extra["diverging"]).astype(bool)),
        "n_steps": (("chain", "draw"), np.asarray(extra["num_steps"])),
        "energy": (("chain", "draw"), np.asarray(extra["energy"])),
        "lp": (("chain", "draw"), -np.asarray(extra["potential_energy"])),
        "acceptance_rate": (("chain", "draw"), np.asarray(extra["accept_prob"])),
    }
    if "step_size" in extra:  # each chain's step size after warmup (0 for Laplace draws)
        step = np.asarray(extra["step_size"]).reshape(nc, 1)
        stats_vars["step_size"] = (("chain", "draw"), np.broadcast_to(step, (nc, nd)))
    stats = xr.Dataset(stats_vars, coords={"chain": np.arange(nc), "draw": np.arange(nd)})
    point = np.arange(inputs.num_points)
    target = spec.law.target
    observed = xr.Dataset({f"log_{target}": (("point",), inputs.y)}, coords={"point": point})
    const = {c: (("point",), inputs.frame[c].to_numpy(dtype=float)) for c in spec.law.covariates}
    if inputs.group_index is not None:
        const["group_index"] = (("point",), inputs.group_index)
    constant = xr.Dataset(
        const,
        coords={
            "point": point,
            **({"group": list(inputs.group_labels)} if inputs.group_labels else {}),
        },
    )
    return {
        "posterior": posterior,
        "sample_stats": stats,
        "observed_data": observed,
        "constant_data": constant,
    }


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
        "columns": json.dumps(dict(inputs.columns)),
        "groups": json.dumps(list(inputs.group_labels)),
        "covariates": json.dumps(list(spec.law.covariates)),
        "target": spec.law.target,
        "reference": json.dumps(spec.reference_map),
        "data_hash": _data.data_hash(inputs.frame),
        "num_points": str(inputs.num_points),
        "bayes_scaling_version": __version__,
        "inference_library": f"numpyro {_numpyro_version()}",
    }


def to_inference_data(groups: Mapping[str, xr.Dataset]):
    """Wrap groups in an ``arviz.InferenceData`` (arviz is imported here, lazily)."""
    import arviz as az

    return az.InferenceData(**dict(groups))  # type: ignore[arg-type]


groups_from_run = _groups_from_run
