"""The backtest: split, fit the training side, predict the held-out side, score; the baseline."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling import __version__
from bayes_scaling import data as _data
from bayes_scaling import inference as _inference
from bayes_scaling import predict as _predict
from bayes_scaling.backtest.pointfit import point_fit
from bayes_scaling.backtest.scores import absolute_relative_error, score_draws
from bayes_scaling.laws import LawSpec, get_law
from bayes_scaling.models import resolve_pooling

REPORT_KEYS: dict[str, str] = {
    "coverage_50": "fraction of held-out runs inside the central 50% new-run interval",
    "coverage_80": "same for the 80% interval",
    "coverage_90": "same for the 90% interval",
    "coverage_95": "same for the 95% interval",
    "mean_width_rel": (
        "mean over held-out runs of the 90% new-run interval's width divided by the observed target"
    ),
    "crps": (
        "mean continuous ranked probability score of the new-run draws of the log target "
        "(lower is better)"
    ),
    "log_pred_density": (
        "mean log predictive density of the held-out log target (nats per run, higher is better)"
    ),
    "median_are": "median absolute relative error of the new-run predictive median",
    "max_are": "maximum absolute relative error of the new-run predictive median",
    "baseline": (
        "point-fit baseline on the same split: median_are, max_are, method, delta, "
        "params, objective"
    ),
    "without_discrepancy": (
        "the same scores for the new-run band without the extrapolation discrepancy"
    ),
    "law_mean": "coverage and errors of the law-mean band (parameter uncertainty only)",
    "discrepancy": (
        "the extrapolation discrepancy used: enabled, method, tau_median, tau_q05, "
        "tau_q95, coordinates, details"
    ),
    "law": "law name",
    "target": "the predicted column (loss or steps)",
    "split": "the split as given (text, or a description of a mask)",
    "group": "group column, or null",
    "likelihood": "likelihood of the Bayesian fit",
    "n_train": "runs on the training side",
    "n_test": "held-out runs",
    "n_test_new_group": (
        "held-out runs in groups absent from the training side (predicted as a new group)"
    ),
    "max_distance": (
        "largest distance of a held-out run outside the training range (natural-log units)"
    ),
    "held_out_beyond_in": (
        "how the held-out runs outside the training range leave it: counts by the covariates "
        "whose range they leave ('N', 'D', 'N,D') or, inside every covariate's range, by the "
        "combined coordinate ('N*D'); compare the discrepancy's details.cuts[].beyond_in, how "
        "the pseudo-futures that tau was learned from left theirs"
    ),
    "train_range": "per covariate, [min, max] on the training side",
    "test_range": "per covariate, [min, max] on the held-out side",
    "sampler": "num_chains, num_warmup, num_samples, seed, method (nuts or laplace), "
    "trajectory_length (as asked: a number, 'auto' or null for NUTS), pilot (as asked: true, "
    "false or 'auto')",
    "diagnostics": "max_rhat, min_ess (over every sampled site), divergences of the training fit",
    "bayes_scaling_version": "package version",
    "points": (
        "per held-out run: index, covariates, group, observed, median, q05, q25, q75, "
        "q95, distance, baseline"
    ),
}


def _json_number(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _json_number(obj)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def _split_frame(
    data, law: LawSpec, split, *, group, columns, derive_tokens, flops_per_token, pooling
):
    """Validated frame and boolean training mask; C is derived as k N D for a split on C."""
    raw = _canonical_table(data, columns, derive_tokens, flops_per_token)
    mask = _data.parse_split(raw, split)
    frame = _data.validate(raw, law, group=group, pooling=pooling)
    return frame, np.asarray(mask, dtype=bool), raw


def _canonical_table(data, columns, derive_tokens: bool, flops_per_token: float) -> pd.DataFrame:
    """The data with columns renamed, ``D`` derived when asked and ``C = k N D`` when absent."""
    raw = _data.read_table(data)
    if columns:
        absent = [k for k in columns if k not in raw.columns]
        if absent:
            raise _data.DataError(
                f"column mapping names {absent}, which the data does not have; found columns: "
                f"{list(raw.columns)}"
            )
        raw = raw.rename(columns=dict(columns))
    if derive_tokens and "D" not in raw.columns and {"C", "N"} <= set(raw.columns):
        raw["D"] = _numeric(raw["C"]) / (flops_per_token * _numeric(raw["N"]))
    if "C" not in raw.columns and {"N", "D"} <= set(raw.columns):
        raw["C"] = flops_per_token * _numeric(raw["N"]) * _numeric(raw["D"])
    return raw.reset_index(drop=True)


def _numeric(series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


def _baseline(
    law: LawSpec, train, test, grouped: bool, point_fit_kwargs: Mapping[str, Any]
) -> tuple[np.ndarray, dict[str, Any]]:
    def cov(f):
        return {c: f[c].to_numpy(dtype=float) for c in law.covariates}

    pooled = point_fit(law, cov(train), train[law.target].to_numpy(dtype=float), **point_fit_kwargs)
    pred = pooled.predict(cov(test)) if len(test) else np.zeros(0)
    info: dict[str, Any] = {
        "params": pooled.params,
        "objective": pooled.objective,
        "converged": pooled.converged,
    }
    if grouped:
        per_group: dict[str, Any] = {}
        for g in sorted(set(test["group"])):
            rows = train[train["group"] == g]
            if len(rows) <= len(law.params):
                continue  # too few runs for a separate fit: the pooled one predicts this group
            fit_g = point_fit(
                law, cov(rows), rows[law.target].to_numpy(dtype=float), **point_fit_kwargs
            )
            sel = (test["group"] == g).to_numpy()
            pred[sel] = fit_g.predict(cov(test[sel]))
            per_group[g] = {
                "params": fit_g.params,
                "objective": fit_g.objective,
                "converged": fit_g.converged,
            }
        info = {"pooled": info, "groups": per_group}
    return pred, info


def backtest(
    data,
    law: str | LawSpec = "chinchilla",
    split: Any = "C<=1e21",
    *,
    group: str | None = None,
    priors=None,
    pooling=None,
    likelihood: str = "student_t",
    discrepancy: Any = "auto",
    columns: Mapping[str, str] | None = None,
    derive_tokens: bool = False,
    flops_per_token: float = 6.0,
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 1000,
    target_accept_prob: float = 0.9,
    seed: int = 0,
    calibration: Mapping[str, Any] | None = None,
    point_fit_kwargs: Mapping[str, Any] | None = None,
    include_points: bool = True,
    method: str = "nuts",
    trajectory_length: float | str | None = "auto",
    pilot: bool | str = "auto",
) -> dict[str, Any]:
    """Fit on the training side of a split, predict the held-out side, score; baseline beside it.

    Parameters
    ----------
    data : DataFrame, str or Path
        Runs in canonical columns (CSV path or dataset name accepted). ``C`` is derived as
        ``flops_per_token * N * D`` when absent, so ``"C<=1e21"`` works on N/D data.
    law : str or LawSpec, default "chinchilla"
    split : str or boolean array, default "C<=1e21"
        Training side: ``"COLUMN OP NUMBER"`` (``<=``, ``<``, ``>=``, ``>``) on any column, the
        name of a boolean column (True = training), or a boolean array.
    group : str, optional
        Group column for a hierarchical fit. Held-out runs of groups absent from the training
        side are predicted as a new group.
    priors, pooling, likelihood
        As for :func:`bayes_scaling.inference.fit`.
    discrepancy : "auto", None, float or Discrepancy, default "auto"
        Extrapolation discrepancy of the predictions (see :mod:`bayes_scaling.predict`):
        ``"auto"`` (or ``"calibrate"``) learns it from the training side by leave-future-out
        (refits of the training side with ``method``); None turns it off; a number fixes
        ``tau``.
    columns, derive_tokens, flops_per_token
        Column renames and ``D = C / (k N)`` derivation, as for ``fit``.
    num_chains, num_warmup, num_samples, target_accept_prob, seed
        NUTS settings of the training fit; ``seed`` also seeds the calibration and the draws.
    calibration : mapping, optional
        Keyword arguments for :func:`bayes_scaling.predict.calibrate_discrepancy` (``cuts``,
        ``num_samples``, ...).
    point_fit_kwargs : mapping, optional
        Keyword arguments for :func:`point_fit` (``delta``, ``max_starts``, ...).
    include_points : bool, default True
        Add the per-run table under ``points``.
    method : {"nuts", "laplace"}, default "nuts"
        Posterior of the training fit and of the discrepancy calibration's fits: NUTS, or
        Gaussian draws at the mode (a quick look; its backtest scores are in
        ``benchmarks/RESULTS.md``).
    trajectory_length : float, "auto" or None, default "auto"
        MCMC kernel of the training fit, as for :func:`bayes_scaling.inference.fit`: static HMC of
        this mean length, NUTS (None), or ``"auto"`` (static HMC for a hierarchical fit, NUTS
        for one curve).
    pilot : bool or "auto", default "auto"
        Re-whitening of the training fit's coordinates by draws already made, as for
        :func:`bayes_scaling.inference.fit` (hierarchical fits).

    Returns
    -------
    dict
        JSON-serialisable report; keys and meanings in :data:`REPORT_KEYS`. Scores are for the
        new-run band (a new run's target: parameter uncertainty, extrapolation discrepancy and
        run-to-run noise), fractions in [0, 1].

    Raises
    ------
    DataError
        A split that leaves either side empty, a split on a missing column, bad data (a
        ``ValueError`` subclass).

    Notes
    -----
    The baseline is :func:`point_fit` (Hoffmann et al.'s Huber/L-BFGS procedure) on the same
    training runs; with groups, one fit per group that has more runs than parameters, the
    pooled fit for the rest.

    Examples
    --------
    >>> report = backtest("epoch-chinchilla-240", "chinchilla", "C<=1e21")  # doctest: +SKIP
    >>> report["coverage_90"], report["baseline"]["median_are"]  # doctest: +SKIP
    """
    spec = get_law(law)
    grouped = group is not None
    frame, mask, _ = _split_frame(
        data,
        spec,
        split,
        group=group,
        columns=columns,
        derive_tokens=derive_tokens,
        flops_per_token=flops_per_token,
        pooling=resolve_pooling(spec, pooling, grouped=grouped),
    )
    train, test = frame[mask], frame[~mask]
    sampler = _Sampler(
        num_chains,
        num_warmup,
        num_samples,
        target_accept_prob,
        seed,
        method,
        trajectory_length,
        pilot,
    )
    idata = _train_fit(train, spec, priors, pooling, likelihood, sampler, grouped=grouped)
    # the training fit's own data, priors, pooling and likelihood calibrate the discrepancy:
    # a backtest calibrates explicitly ("auto" here is "calibrate"; the training fit is new)
    disc = _predict.get_discrepancy(
        idata,
        "calibrate" if isinstance(discrepancy, str) and discrepancy == "auto" else discrepancy,
        **{"seed": seed, "method": method, **dict(calibration or {})},
    )
    # a stream of its own for the predictive draws (not the fit's or the calibration's)
    rng = np.random.default_rng([seed, 20240521])
    points = test[list(spec.covariates) + (["group"] if grouped else [])]
    core = _predict.predict_draws(idata, points, discrepancy=disc, rng=rng)
    observed = test[spec.target].to_numpy(dtype=float)
    report = _scores(core, observed)
    point_fit_kwargs = dict(point_fit_kwargs or {})
    base_pred, base_info = _baseline(spec, train, test, grouped, point_fit_kwargs)
    base_are = absolute_relative_error(base_pred, observed)
    report["baseline"] = {
        "median_are": float(np.median(base_are)),
        "max_are": float(np.max(base_are)),
        "method": "Huber loss on log target, L-BFGS from a grid (Hoffmann et al. 2022; "
        "Besiroglu et al. 2024)",
        "delta": float(point_fit_kwargs.get("delta", 1e-3)),
        **base_info,
    }
    report.update(_scores_without(core, observed))
    report["discrepancy"] = (
        {"enabled": False}
        if disc is None
        else {"enabled": True, **disc.summary(), "details": dict(disc.details)}
    )
    fitted = {
        "max_distance": float(np.max(core["distance"])),
        "held_out_beyond_in": _predict.Discrepancy.fixed(0.0, spec, train).beyond_in(test),
        "diagnostics": _inference.diagnostics(idata.posterior, idata.sample_stats),
    }
    report.update(_setting(spec, split, mask, group, likelihood, (train, test), sampler, fitted))
    if include_points:
        report["points"] = _points(spec, test, grouped, observed, core, base_pred)
    return _jsonable(report)


@dataclasses.dataclass(frozen=True)
class _Sampler:
    """Settings of the training fit (and, for ``seed`` and ``method``, of the calibration)."""

    num_chains: int
    num_warmup: int
    num_samples: int
    target_accept_prob: float
    seed: int
    method: str
    trajectory_length: float | str | None = "auto"
    pilot: bool | str = "auto"


def _train_fit(train, spec: LawSpec, priors, pooling, likelihood, sampler: _Sampler, *, grouped):
    return _inference.fit(
        train,
        spec,
        priors=priors,
        group="group" if grouped else None,
        pooling=pooling if grouped else None,
        likelihood=likelihood,
        num_chains=sampler.num_chains,
        num_warmup=sampler.num_warmup,
        num_samples=sampler.num_samples,
        target_accept_prob=sampler.target_accept_prob,
        seed=sampler.seed,
        prior_samples=0,
        method=sampler.method,
        trajectory_length=sampler.trajectory_length,
        pilot=sampler.pilot,
    )


def _scores(core: Mapping[str, Any], observed: np.ndarray) -> dict[str, Any]:
    """Scores of the new-run band: law, discrepancy and noise."""
    log_mu, delta, eps = core["log_law_mean"], core["delta"], core["eps"]
    return score_draws(
        None,
        observed,
        loc=log_mu + delta,
        scale=core["sigma"],
        df=core["nu"],
        log_draws=log_mu + delta + eps,  # on the log scale: Student-t tails may overflow exp
    )


def _scores_without(core: Mapping[str, Any], observed: np.ndarray) -> dict[str, Any]:
    """The new-run band without the discrepancy, and the law-mean band."""
    log_mu, eps = core["log_law_mean"], core["eps"]
    law_scores = score_draws(None, observed, log_draws=log_mu)
    return {
        "without_discrepancy": score_draws(
            None, observed, loc=log_mu, scale=core["sigma"], df=core["nu"], log_draws=log_mu + eps
        ),
        "law_mean": {k: v for k, v in law_scores.items() if k != "crps"},
    }


def _setting(spec: LawSpec, split, mask, group, likelihood, sides, sampler: _Sampler, fitted):
    """What was fitted to what: law, split, sizes, ranges, sampler settings and diagnostics."""
    train, test = sides
    grouped = group is not None
    known = set(train["group"]) if grouped else set()
    return {
        "law": spec.name,
        "target": spec.target,
        "split": split
        if isinstance(split, str)
        else f"boolean mask ({int(mask.sum())} training rows)",
        "group": group,
        "likelihood": likelihood,
        "n_train": int(mask.sum()),
        "n_test": int((~mask).sum()),
        "n_test_new_group": int(sum(g not in known for g in test["group"])) if grouped else 0,
        "max_distance": fitted["max_distance"],
        "held_out_beyond_in": fitted["held_out_beyond_in"],
        "train_range": {c: [float(train[c].min()), float(train[c].max())] for c in spec.covariates},
        "test_range": {c: [float(test[c].min()), float(test[c].max())] for c in spec.covariates},
        "sampler": {
            "num_chains": sampler.num_chains,
            "num_warmup": sampler.num_warmup,
            "num_samples": sampler.num_samples,
            "seed": sampler.seed,
            "method": sampler.method,
            "trajectory_length": sampler.trajectory_length,
            "pilot": sampler.pilot,
        },
        "diagnostics": fitted["diagnostics"],
        "bayes_scaling_version": __version__,
    }


def _points(spec: LawSpec, test, grouped: bool, observed, core, base_pred) -> list[dict[str, Any]]:
    """Per held-out run: covariates, group, observed, new-run quantiles, distance, baseline."""
    log_new_run = core["log_law_mean"] + core["delta"] + core["eps"]
    qs = np.exp(np.quantile(log_new_run, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0))
    rows = []
    for j, idx in enumerate(test.index):
        row = {"index": idx}
        row.update({c: float(test[c].iloc[j]) for c in spec.covariates})
        if grouped:
            row["group"] = str(test["group"].iloc[j])
        row.update(
            {
                "observed": float(observed[j]),
                "median": float(qs[2, j]),
                "q05": float(qs[0, j]),
                "q25": float(qs[1, j]),
                "q75": float(qs[3, j]),
                "q95": float(qs[4, j]),
                "distance": float(core["distance"][j]),
                "baseline": float(base_pred[j]),
            }
        )
        rows.append(row)
    return rows
