"""The calibration suite: rolling leave-future-out backtests over one data set.

Several cuts along a scale axis (compute ``C``, ``N`` or ``D``); at each, the law is fitted to
the runs at or below the cut and predicts the runs above it, as the OLMo model-ladder analysis
does with its rolling split by ``N``. Each cut is scored as :func:`~bayes_scaling.backtest.backtest`
scores a split (the new-run band with the extrapolation discrepancy, beside the point-fit
baseline), and the scores are pooled over every (cut, held-out run) pair. Keys and meanings are
in :data:`CALIBRATION_KEYS`.

All fits (each cut's training fit and the refits that calibrate its discrepancy) are padded to
the data set's size, so they share one compiled program.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling import __version__
from bayes_scaling import data as _data
from bayes_scaling import inference as _inference
from bayes_scaling import predict as _predict
from bayes_scaling.backtest.run import _baseline, _canonical_table, _jsonable
from bayes_scaling.backtest.scores import (
    LEVELS,
    absolute_relative_error,
    central_interval,
    crps,
    interval_score,
    log_predictive_density,
    pit,
)
from bayes_scaling.laws import LawSpec, get_law
from bayes_scaling.models import resolve_pooling

__all__ = ["CALIBRATION_KEYS", "RELIABILITY_LEVELS", "calibrate"]

#: Nominal levels of the reliability diagram (``reliability``).
RELIABILITY_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)

_SCORES: dict[str, str] = {
    "n_test": "held-out runs scored (pooled: cut and run pairs; a run above several cuts counts "
    "once per cut)",
    "coverage_50": "fraction of held-out runs inside the central 50% new-run interval",
    "coverage_80": "same for the 80% interval",
    "coverage_90": "same for the 90% interval",
    "coverage_95": "same for the 95% interval",
    "mean_width_rel": "mean 90% new-run interval width divided by the observed target",
    "interval_score_50": "mean interval score (Gneiting and Raftery 2007) of the 50% interval of "
    "the log target (lower is better)",
    "interval_score_80": "same for the 80% interval",
    "interval_score_90": "same for the 90% interval",
    "interval_score_95": "same for the 95% interval",
    "crps": "mean CRPS of the new-run draws of the log target (lower is better)",
    "log_pred_density": "mean log predictive density of the log target (nats per run)",
    "median_are": "median absolute relative error of the posterior predictive median",
    "max_are": "maximum absolute relative error of the posterior predictive median",
    "baseline": "the point fit (Huber loss, L-BFGS from a grid) on the same training runs: "
    "median_are, max_are",
    "pit": "PIT values of the held-out runs (predictive CDF at the observed target)",
}

CALIBRATION_KEYS: dict[str, str] = {
    "law": "law name",
    "target": "the predicted column (loss or steps)",
    "axis": "the scale axis the cuts are placed on (C, N, D or another covariate)",
    "group": "group column, or null",
    "likelihood": "likelihood of the Bayesian fits",
    "n_runs": "runs in the data set",
    "levels": "nominal levels of the coverage and interval-score keys",
    "cuts": "per cut: cut (quantile of the axis' distinct values), threshold (axis value; "
    "training runs are at or below it), n_train, discrepancy (method, tau_median, tau_q05, "
    "tau_q95), max_distance and the score keys",
    "skipped": "cuts not scored: cut, n_train, n_test, reason",
    "pooled": "the score keys over every scored (cut, held-out run) pair, and pit_histogram",
    "pooled.pit_histogram": "edges (10 bins on [0, 1]) and counts of the pooled PIT values",
    "reliability": "pooled nominal vs observed coverage of central intervals: nominal, observed",
    "discrepancy": "the discrepancy setting: calibrate (learned per cut from its training side), "
    "off, or a fixed tau",
    "sampler": "num_chains, num_warmup, num_samples, seed, method (laplace or nuts), "
    "trajectory_length (as asked: a number, 'auto' or null for NUTS), pilot (as asked: true, "
    "false or 'auto')",
    "bayes_scaling_version": "package version",
    **{f"cuts[].{k} / pooled.{k}": v for k, v in _SCORES.items()},
}

_DEFAULT_SPAN = (0.5, 0.9)


@dataclasses.dataclass(frozen=True)
class _Suite:
    """What every cut shares: the law, the data, the model, the sampler and the discrepancy."""

    spec: LawSpec
    frame: pd.DataFrame
    axis: np.ndarray
    group: str | None
    fit_options: Mapping[str, Any]
    discrepancy: Any
    calibration: Mapping[str, Any]
    point_fit_kwargs: Mapping[str, Any]
    min_train: int
    min_test: int
    seed: int


def _axis_values(frame: pd.DataFrame, spec: LawSpec, axis: str, flops_per_token: float):
    """Values of the scale axis per run: a covariate of the law, or compute ``C``."""
    if axis in spec.covariates:
        return frame[axis].to_numpy(dtype=float)
    if axis == "C" and {"N", "D"} <= set(spec.covariates):
        return flops_per_token * frame["N"].to_numpy(dtype=float) * frame["D"].to_numpy(float)
    choices = ", ".join([*spec.covariates, *(["C"] if {"N", "D"} <= set(spec.covariates) else [])])
    raise ValueError(
        f"axis {axis!r} is not a scale of law {spec.name!r}; expected one of {choices}"
    )


def _cut_quantiles(cuts: int | Sequence[float]) -> list[float]:
    """The cuts as quantiles: K evenly spaced from 0.5 to 0.9, or the given ones."""
    if isinstance(cuts, bool) or not isinstance(cuts, (int, np.integer, Sequence, np.ndarray)):
        raise TypeError(f"cuts must be a number of cuts or a sequence of quantiles; got {cuts!r}")
    if isinstance(cuts, (int, np.integer)):
        if cuts < 1:
            raise ValueError(f"cuts must be a number of cuts >= 1 or quantiles; got {cuts}")
        return [_DEFAULT_SPAN[1]] if cuts == 1 else list(np.linspace(*_DEFAULT_SPAN, int(cuts)))
    qs = [float(q) for q in cuts]
    if not qs or any(not 0 < q < 1 for q in qs):
        raise ValueError(f"cuts must be quantiles in (0, 1); got {qs}")
    return sorted(qs)


def _pointwise(core: Mapping[str, Any], observed: np.ndarray) -> dict[str, np.ndarray]:
    """Per held-out run: inside each interval, interval scores, width, CRPS, LPD, PIT, error."""
    log_draws = core["log_law_mean"] + core["delta"] + core["eps"]
    log_obs = np.log(observed)
    out: dict[str, np.ndarray] = {}
    for level in LEVELS:
        lo, hi = central_interval(log_draws, level)
        out[f"coverage_{round(level * 100)}"] = (log_obs >= lo) & (log_obs <= hi)
        out[f"interval_score_{round(level * 100)}"] = interval_score(log_draws, log_obs, level)
    lo, hi = central_interval(log_draws, 0.9)
    out["mean_width_rel"] = (np.exp(hi) - np.exp(lo)) / observed
    out["crps"] = crps(log_draws, log_obs)
    loc = core["log_law_mean"] + core["delta"]
    out["log_pred_density"] = log_predictive_density(log_obs, loc, core["sigma"], core["nu"])
    out["pit"] = pit(log_draws, log_obs)
    out["are"] = absolute_relative_error(np.exp(np.median(log_draws, axis=0)), observed)
    return out


def _summary(points: Mapping[str, np.ndarray], baseline_are: np.ndarray) -> dict[str, Any]:
    """The score keys from pointwise values (one cut's, or all cuts' concatenated)."""
    out: dict[str, Any] = {"n_test": int(points["are"].size)}
    for key, values in points.items():
        if key not in ("are", "pit"):
            out[key] = float(np.mean(values))
    out["median_are"] = float(np.median(points["are"]))
    out["max_are"] = float(np.max(points["are"]))
    out["baseline"] = {
        "median_are": float(np.median(baseline_are)),
        "max_are": float(np.max(baseline_are)),
    }
    out["pit"] = [float(v) for v in points["pit"]]
    return out


def _fit_side(suite: _Suite, train: pd.DataFrame, k: int):
    """The training side's fit and its discrepancy (calibrated from that side alone)."""
    options = dict(suite.fit_options)
    idata = _inference.fit(
        train,
        suite.spec,
        group="group" if suite.group is not None else None,
        seed=suite.seed + 1000 * k,
        prior_samples=0,
        pad_to=len(suite.frame),  # every cut and every calibration refit share one program
        **options,
    )
    calibration = {
        "seed": suite.seed + 1000 * k,
        "method": options["method"],
        "pad_to": len(suite.frame),
        **dict(suite.calibration),
    }
    disc = _predict.get_discrepancy(idata, suite.discrepancy, **calibration)
    return idata, disc


def _threshold(suite: _Suite, q: float) -> float:
    """The cut's axis value: the ``q`` quantile of the axis' distinct values (one of them)."""
    return float(np.quantile(np.unique(suite.axis), q, method="lower"))


def _run_cut(suite: _Suite, q: float, k: int):
    """One cut: (record, pointwise scores, baseline errors), or (skip record, None, None)."""
    threshold = _threshold(suite, q)
    past = suite.axis <= threshold
    train, test = suite.frame[past], suite.frame[~past]
    head = {"cut": q, "threshold": threshold, "n_train": len(train), "n_test": len(test)}
    if len(train) < suite.min_train or len(test) < suite.min_test:
        return {**head, "reason": "too few runs"}, None, None
    idata, disc = _fit_side(suite, train, k)
    grouped = suite.group is not None
    points = test[list(suite.spec.covariates) + (["group"] if grouped else [])]
    rng = np.random.default_rng([suite.seed, k, 20240521])
    core = _predict.predict_draws(idata, points, discrepancy=disc, rng=rng)
    observed = test[suite.spec.target].to_numpy(dtype=float)
    base_pred, _ = _baseline(suite.spec, train, test, grouped, suite.point_fit_kwargs)
    record = {
        **head,
        "discrepancy": None if disc is None else _disc_summary(disc),
        "max_distance": float(np.max(core["distance"])),
    }
    return record, _pointwise(core, observed), absolute_relative_error(base_pred, observed)


def _disc_summary(disc) -> dict[str, Any]:
    summary = disc.summary()
    summary.pop("coordinates")
    return summary


def _pooled(points: list[dict[str, np.ndarray]], base: list[np.ndarray]) -> dict[str, Any]:
    """Scores over all scored cuts, the PIT histogram and the reliability curve."""
    merged = {key: np.concatenate([p[key] for p in points]) for key in points[0]}
    pooled = _summary(merged, np.concatenate(base))
    counts, edges = np.histogram(merged["pit"], bins=10, range=(0.0, 1.0))
    pooled["pit_histogram"] = {"edges": edges.tolist(), "counts": counts.tolist()}
    centred = np.abs(merged["pit"] - 0.5)
    reliability = {
        "nominal": list(RELIABILITY_LEVELS),
        "observed": [float(np.mean(centred <= lv / 2)) for lv in RELIABILITY_LEVELS],
    }
    return {"pooled": pooled, "reliability": reliability}


def calibrate(
    data,
    law: str | LawSpec = "chinchilla",
    *,
    group: str | None = None,
    axis: str = "C",
    cuts: int | Sequence[float] = 5,
    priors=None,
    pooling=None,
    likelihood: str = "student_t",
    discrepancy: Any = "calibrate",
    columns: Mapping[str, str] | None = None,
    derive_tokens: bool = False,
    flops_per_token: float = 6.0,
    method: str = "laplace",
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 1000,
    target_accept_prob: float = 0.9,
    seed: int = 0,
    calibration: Mapping[str, Any] | None = None,
    point_fit_kwargs: Mapping[str, Any] | None = None,
    min_test: int = 3,
    trajectory_length: float | str | None = "auto",
    pilot: bool | str = "auto",
) -> dict[str, Any]:
    """Rolling leave-future-out backtests over one data set: is the model calibrated there?

    Parameters
    ----------
    data : DataFrame, str or Path
        Runs in canonical columns (CSV path or dataset name accepted).
    law : str or LawSpec, default "chinchilla"
    group : str, optional
        Group column for a hierarchical fit (held-out runs of unseen groups are predicted as a
        new group).
    axis : str, default "C"
        The scale along which the cuts are placed: ``"C"`` (``flops_per_token * N * D``),
        ``"N"``, ``"D"`` or another covariate of the law.
    cuts : int or sequence of float, default 5
        A number of cuts, placed at quantiles evenly spaced from 0.5 to 0.9 of the axis'
        distinct values (one cut: 0.9), or the quantiles themselves. Training runs are those at
        or below the cut; the rest are predicted.
    priors, pooling, likelihood, columns, derive_tokens, flops_per_token
        As for :func:`bayes_scaling.inference.fit`.
    discrepancy : "calibrate", None, float or Discrepancy, default "calibrate"
        Extrapolation discrepancy of the predictions: learned per cut from its training side by
        leave-future-out (:func:`bayes_scaling.predict.calibrate_discrepancy`), off (None) or
        fixed.
    method : {"laplace", "nuts"}, default "laplace"
        Posterior of every fit: Gaussian draws at the mode (fast: all fits share one program),
        or NUTS (``num_chains``, ``num_warmup``, ``num_samples``, ``target_accept_prob``).
    seed : int, default 0
    calibration : mapping, optional
        Keyword arguments of :func:`~bayes_scaling.predict.calibrate_discrepancy` (``cuts``,
        ``num_samples``, ...).
    point_fit_kwargs : mapping, optional
        Keyword arguments of :func:`point_fit`.
    min_test : int, default 3
        Fewest held-out runs a cut must leave (also: at least 2 runs per parameter plus 4 to
        fit); other cuts are listed under ``skipped``.
    trajectory_length : float, "auto" or None, default "auto"
        MCMC kernel of every NUTS fit, as for :func:`bayes_scaling.inference.fit`: static HMC of
        this mean length, NUTS (None), or ``"auto"`` (static HMC for a hierarchical fit, NUTS
        for one curve).
    pilot : bool or "auto", default "auto"
        Re-whitening of every NUTS fit's coordinates by draws already made, as for
        :func:`bayes_scaling.inference.fit` (hierarchical fits); no effect with ``"laplace"``.

    Returns
    -------
    dict
        JSON-serialisable report; keys and meanings in :data:`CALIBRATION_KEYS`: per cut and
        pooled coverage of the 50/80/90/95% new-run intervals, relative width, interval scores,
        CRPS, log predictive density, PIT values, median and maximum absolute relative error of
        the predictive median and of the point fit, and the reliability curve.

    Raises
    ------
    ValueError
        An axis the law does not have, bad cuts, or no cut that leaves enough runs on both
        sides.

    Examples
    --------
    >>> report = calibrate("epoch-chinchilla-240", "chinchilla", cuts=5)  # doctest: +SKIP
    >>> report["pooled"]["coverage_90"], report["reliability"]["observed"]  # doctest: +SKIP
    """
    spec = get_law(law)
    raw = _canonical_table(data, columns, derive_tokens, flops_per_token)
    pooled = resolve_pooling(spec, pooling, grouped=group is not None)
    frame = _data.validate(raw, spec, group=group, pooling=pooled)
    fit_options = {
        "priors": priors,
        "pooling": pooling if group is not None else None,
        "likelihood": likelihood,
        "num_chains": num_chains,
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "target_accept_prob": target_accept_prob,
        "method": method,
        "trajectory_length": trajectory_length,
        "pilot": pilot,
    }
    suite = _Suite(
        spec=spec,
        frame=frame,
        axis=_axis_values(frame, spec, axis, flops_per_token),
        group=group,
        fit_options=fit_options,
        discrepancy=discrepancy,
        calibration=dict(calibration or {}),
        point_fit_kwargs=dict(point_fit_kwargs or {}),
        min_train=2 * len(spec.params) + 4,
        min_test=min_test,
        seed=seed,
    )
    report = _run_suite(suite, _cut_quantiles(cuts))
    report.update(
        {
            "law": spec.name,
            "target": spec.target,
            "axis": axis,
            "group": group,
            "likelihood": likelihood,
            "n_runs": len(frame),
            "levels": list(LEVELS),
            "discrepancy": discrepancy if isinstance(discrepancy, (str, float, int)) else "given",
            "sampler": {
                "num_chains": num_chains,
                "num_warmup": num_warmup,
                "num_samples": num_samples,
                "seed": seed,
                "method": method,
                "trajectory_length": trajectory_length,
                "pilot": pilot,
            },
            "bayes_scaling_version": __version__,
        }
    )
    return _jsonable(report)


def _run_suite(suite: _Suite, quantiles: list[float]) -> dict[str, Any]:
    """Every cut (one fit per distinct training side), then the pooled scores."""
    cuts: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    points: list[dict[str, np.ndarray]] = []
    base: list[np.ndarray] = []
    seen: set[float] = set()
    for k, q in enumerate(quantiles):
        if _threshold(suite, q) in seen:
            continue  # the same training side as an earlier cut
        seen.add(_threshold(suite, q))
        record, pw, base_are = _run_cut(suite, q, k)
        if pw is None or base_are is None:
            skipped.append(record)
            continue
        cuts.append({**record, **_summary(pw, base_are)})
        points.append(pw)
        base.append(base_are)
    if not cuts:
        need = suite.min_train + suite.min_test
        shown = ", ".join(f"{q:.3g}" for q in quantiles)
        advice = (
            f"a calibration needs at least {need} runs"
            if len(suite.frame) < need
            else "place the cuts by hand (cuts=[...])"
        )
        raise ValueError(
            f"no cut along the axis left at least {suite.min_train} runs to fit and "
            f"{suite.min_test} to predict ({len(suite.frame)} runs; cuts at quantiles {shown}); "
            + advice
        )
    return {"cuts": cuts, "skipped": skipped, **_pooled(points, base)}
