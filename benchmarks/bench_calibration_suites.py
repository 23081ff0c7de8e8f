"""Backtests of the developer-visible suites with the discrepancy learned per span and per e-fold.

Usage::

    python ../shared/checks/_suites.py "$BAYES_SCALING_DATA" /tmp/suites
    python benchmarks/bench_calibration_suites.py /tmp/suites [--out r.json] [--variants span-t3]

Seven cases, as the shared calibration check runs them (Chinchilla law, default settings, seed 0):
``epoch`` (train C <= 1e21), the three ``gadre`` corpora (train N < 1e9) alone and as groups,
``gemstones_hot`` (train D <= 100e9) and ``gemstones_cool``. By default each case is backtested
with five discrepancy models (``DEFAULT_VARIANTS``): the default (distances in spans, Student-t
slope with 3 degrees of freedom), spans with slopes of 2 and 4 degrees of freedom and normal, and
the earlier model (e-folds, normal slope); ``--variants`` also takes the noise models of
``VARIANTS`` (normal noise, Student-t with fixed or differently learned degrees of freedom);
the coverages, the 50% and 90% interval scores of the log target, and the median absolute
relative errors of the posterior median and the point fit are printed per case and pooled over
held-out runs.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd

from bayes_scaling.backtest import backtest

CASES = (
    ("epoch", "epoch.csv", None, None),
    ("gadre c4_original", "gadre.csv", "c4_original", None),
    ("gadre rpj", "gadre.csv", "rpj", None),
    ("gadre rw_original", "gadre.csv", "rw_original", None),
    ("gadre 3 groups", "gadre.csv", None, "group"),
    ("gemstones hot", "gemstones_hot.csv", None, None),
    ("gemstones cool", "gemstones_cool.csv", None, None),
)


def interval_score(report: dict, level: float) -> float:
    """Mean interval score (Gneiting and Raftery 2007) of the log target's central interval."""
    lo_key, hi_key = ("q25", "q75") if level == 0.5 else ("q05", "q95")
    pts = report["points"]
    y = np.log([p["observed"] for p in pts])
    lo, hi = np.log([p[lo_key] for p in pts]), np.log([p[hi_key] for p in pts])
    a = 1 - level
    return float(np.mean(hi - lo + 2 / a * ((lo - y) * (y < lo) + (y - hi) * (y > hi))))


def _nu(value: float) -> dict:
    """Priors that fix the Student-t degrees of freedom of the noise at ``value``."""
    return {"noise": {"nu": {"dist": "fixed", "value": value}}}


# Each variant: keyword arguments of ``backtest`` (``calibration`` for the discrepancy model,
# ``priors`` and ``likelihood`` for the noise model). The first five vary the discrepancy with the
# default noise model (Student-t with nu learned under a Gamma(2, 0.1) prior); the rest vary the
# noise model (the ``nu-`` ones fix nu, ``nu-gamma2-1`` learns it under Gamma(2, 1)).
VARIANTS: dict[str, dict] = {
    "span-t3": {},
    "span-t2": {"calibration": {"slope_df": 2.0}},
    "span-t4": {"calibration": {"slope_df": 4.0}},
    "span-normal": {"calibration": {"slope_df": None}},
    "efold-normal": {"calibration": {"unit": "e-fold", "slope_df": None}},
    "noise-normal": {"likelihood": "normal"},
    "nu-4": {"priors": _nu(4.0)},
    "nu-2": {"priors": _nu(2.0)},
    "nu-1.5": {"priors": _nu(1.5)},
    "nu-1": {"priors": _nu(1.0)},
    "nu-1-span-normal": {"priors": _nu(1.0), "calibration": {"slope_df": None}},
    "nu-1-span-t4": {"priors": _nu(1.0), "calibration": {"slope_df": 4.0}},
    "nu-gamma2-1": {
        "priors": {"noise": {"nu": {"dist": "gamma", "concentration": 2.0, "rate": 1.0}}}
    },
}
DEFAULT_VARIANTS = ("span-t3", "span-t2", "span-t4", "span-normal", "efold-normal")


def run_case(folder: str, file: str, corpus, group, options: dict) -> dict:
    data = pd.read_csv(f"{folder}/{file}")
    if corpus is not None:
        data = data[data["group"] == corpus]
    if group is None:
        data = data.drop(columns=["group"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = backtest(
            data.reset_index(drop=True),
            "chinchilla",
            "train",
            group=group,
            seed=0,
            **options,
        )
    return {
        "n_test": rep["n_test"],
        **{f"coverage_{k}": rep[f"coverage_{k}"] for k in (50, 80, 90, 95)},
        "interval_score_50": interval_score(rep, 0.5),
        "interval_score_90": interval_score(rep, 0.9),
        "median_are": rep["median_are"],
        "point_fit_median_are": rep["baseline"]["median_are"],
        "tau_median": rep["discrepancy"].get("tau_median"),
        "diagnostics": rep.get("diagnostics"),
    }


def _diagnostics(d: dict | None) -> str:
    """R-hat, ESS and divergences of the backtest's fit, in one short field."""
    if not d:
        return ""
    return f"rhat={d['max_rhat']:.3f} ess={d['min_ess']:.0f} div={d['divergences']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", help="folder written by ../shared/checks/_suites.py")
    parser.add_argument("--out", help="write the figures as JSON")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=sorted(VARIANTS),
        default=list(DEFAULT_VARIANTS),
        help="discrepancy and noise models to run (default: the five discrepancy models)",
    )
    args = parser.parse_args()
    results: dict[str, dict] = {}
    for unit in args.variants:
        options = VARIANTS[unit]
        rows = {}
        for name, file, corpus, group in CASES:
            t = time.perf_counter()
            rows[name] = run_case(args.suites, file, corpus, group, options)
            r = rows[name]
            print(
                f"{unit:12s} {name:18s} n={r['n_test']:3d} cov50={r['coverage_50']:.2f} "
                f"cov90={r['coverage_90']:.2f} IS50={r['interval_score_50']:.4f} "
                f"IS90={r['interval_score_90']:.4f} ARE={r['median_are']:.4f} "
                f"point fit={r['point_fit_median_are']:.4f} {_diagnostics(r['diagnostics'])} "
                f"({time.perf_counter() - t:.0f} s)",
                flush=True,
            )
        n = sum(r["n_test"] for r in rows.values())
        pooled = {
            k: sum(r[k] * r["n_test"] for r in rows.values()) / n
            for k in ("coverage_50", "coverage_90", "interval_score_50", "interval_score_90")
        }
        print(
            f"{unit:12s} pooled over {n} runs: "
            + " ".join(f"{k}={v:.3f}" for k, v in pooled.items())
        )
        results[unit] = {"cases": rows, "pooled": pooled}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
