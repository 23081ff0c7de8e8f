"""How far do pseudo-pasts cut along different axes miss their pseudo-futures, and in which
direction do those pseudo-futures leave the pseudo-past?

Usage::

    python ../shared/checks/_suites.py "$BAYES_SCALING_DATA" /tmp/suites
    python benchmarks/probe_cut_directions.py /tmp/suites [--axes scale D N] [--cases ...]

A developer's diagnostic for the calibration issue. The discrepancy's ``tau`` is learned from
pseudo-pasts cut along the law's scale axis (``log N*D``, :mod:`bayes_scaling.predict.calibrate`);
a user's held-out runs may leave the training runs along another direction (Gemstones' held-out
runs are later checkpoints of the training models: more tokens at a seen size). For each
single-curve case of ``../shared/checks/calibration`` and each axis, the training runs are cut at
the 0.7, 0.8 and 0.9 quantiles of the axis (``scale``: as the calibration cuts them; ``N``,
``D``: the covariate), each pseudo-past is fitted by NUTS with a settled budget (4 chains x
(1,000 warmup + 300 draws) by default, so no refit's chains disagree), and the pseudo-future's
runs are scored at the posterior median of the law: median absolute and median signed log
residual (positive: the run's loss above the prediction), grouped by which of the pseudo-past's
ranges the run leaves (``N out``: a larger model; ``D out``: more tokens at a seen size; ``corner``:
inside both ranges, beyond the pseudo-past only in ``N*D``). Last, the whole training side and
the case's real held-out runs, the same way. ``per span`` is the median absolute residual over
the median distance in spans of the pseudo-past (:func:`bayes_scaling.predict.data_span`), the
distance being the box distance the discrepancy uses.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from bench_calibration_suites import CHECK_CASES

from bayes_scaling import fit, get_law
from bayes_scaling.predict import calibrate as _calibrate
from bayes_scaling.predict.discrepancy import (
    Discrepancy,
    _coordinate_values,
    extrapolation_coordinates,
)
from bayes_scaling.predict.points import _log_mu_draws

LAW = get_law("chinchilla")
CUTS = (0.7, 0.8, 0.9)


def _axis(frame: pd.DataFrame, axis: str) -> np.ndarray:
    if axis == "scale":
        return _calibrate._scale_axis(LAW, frame)
    return np.log(frame[axis].to_numpy(dtype=float))


def _kind(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    n_out = np.log(test["N"].to_numpy(float)) > np.log(train["N"].to_numpy(float)).max() + 1e-9
    d_out = np.log(test["D"].to_numpy(float)) > np.log(train["D"].to_numpy(float)).max() + 1e-9
    return np.where(n_out, "N out", np.where(d_out, "D out", "corner"))


def _score(train, test, seed: int, budget: dict) -> dict:
    """Fit ``train``, score ``test``: rows per direction of leaving the box."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = fit(train, LAW, seed=seed, prior_samples=0, **budget)
    mu, _, _ = _log_mu_draws(idata, LAW, test, None)
    resid = np.log(test["loss"].to_numpy(float)) - np.median(mu, axis=0)
    coords = extrapolation_coordinates(LAW)
    z = _coordinate_values(coords, train)
    box = Discrepancy((0.0,), (1.0,), coords, tuple(z.min(0)), tuple(z.max(0)), "fixed")
    span = _calibrate.data_span(LAW, train)
    dist = box.distance(test) / span
    kind = _kind(train, test)
    rows = {}
    for k in ("N out", "D out", "corner"):
        m = (kind == k) & (dist > 0)
        if m.any():
            med_abs = float(np.median(np.abs(resid[m])))
            rows[k] = (int(m.sum()), med_abs, float(np.median(resid[m])), float(np.median(dist[m])))
    e_median = float(idata.posterior["E"].median())
    return {"rows": rows, "E": e_median, "seconds": time.perf_counter() - start}


def _print(label: str, n_past: int, out: dict) -> None:
    print(f"  {label:<14} past {n_past:>3}  E {out['E']:.3f}  ({out['seconds']:.0f} s)")
    for k, (n, med_abs, med, dist) in out["rows"].items():
        print(
            f"      {k:<7} {n:>4} runs  median |r| {med_abs:.4f}  median r {med:+.4f}  "
            f"distance {dist:.2f} spans  per span {med_abs / dist:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suites", help="folder written by ../shared/checks/_suites.py")
    parser.add_argument("--axes", nargs="+", default=["scale", "D", "N"])
    names = [c[0] for c in CHECK_CASES if c[3] is None]
    parser.add_argument("--cases", nargs="+", default=names, choices=names)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    args = parser.parse_args()
    budget = {"num_chains": args.chains, "num_warmup": args.warmup, "num_samples": 300}
    for name, file, corpus, _ in CHECK_CASES:
        if name not in args.cases:
            continue
        frame = pd.read_csv(f"{args.suites}/{file}")
        if corpus is not None:
            frame = frame[frame["group"] == corpus]
        train = frame[frame["train"]].drop(columns="train").reset_index(drop=True)
        held = frame[~frame["train"]].drop(columns="train").reset_index(drop=True)
        print(f"{name}: {len(train)} training runs, {len(held)} held out")
        for axis in args.axes:
            values = _axis(train, axis)
            seen = set()
            for k, q in enumerate(CUTS):
                past = values <= float(np.quantile(values, q))
                if tuple(np.flatnonzero(past)) in seen or past.all():
                    continue
                seen.add(tuple(np.flatnonzero(past)))
                out = _score(train[past], train[~past], 1 + k, budget)
                _print(f"{axis} cut {q}", int(past.sum()), out)
        _print("held-out runs", len(train), _score(train, held, 0, budget))


if __name__ == "__main__":
    main()
