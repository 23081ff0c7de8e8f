"""Backtests of the developer-visible suites with the discrepancy learned per span and per e-fold.

Usage::

    python ../shared/checks/_suites.py "$BAYES_SCALING_DATA" /tmp/suites
    python benchmarks/bench_calibration_suites.py /tmp/suites [--out r.json] [--variants span-t3]
        [--cases check porian porian-pairs datablations]

The ``check`` cases (the default) are the seven that the shared calibration check runs (Chinchilla
law, default settings, seed 0): ``epoch`` (train C <= 1e21), the three ``gadre`` corpora (train
N < 1e9) alone and as groups, ``gemstones_hot`` (train D <= 100e9) and ``gemstones_cool``. The
other suites of the calibration issue are written into the same folder from the package's own
data sets: ``porian`` (each of the 15 ``porian-discrepancies`` settings, trained on the budgets
up to 1e19 FLOP, predicting the budgets above: 1.3e19, and 2.6e19 where measured),
``porian-pairs`` (the five recipes measured on both corpora, each pair as two groups) and
``datablations`` (the single-epoch runs, trained on N < 1e9, predicting the 25 runs of 1.1B-8.7B
parameters). By default each case is backtested
with five discrepancy models (``DEFAULT_VARIANTS``): the default (distances in spans, Student-t
slope with 3 degrees of freedom), spans with slopes of 2 and 4 degrees of freedom and normal, and
the earlier model (e-folds, normal slope); ``--variants`` also takes the other entries of
``VARIANTS`` (the joint score and five cuts; normal noise, Student-t with fixed or differently
learned degrees of freedom);
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

CHECK_CASES = (
    ("epoch", "epoch.csv", None, None),
    ("gadre c4_original", "gadre.csv", "c4_original", None),
    ("gadre rpj", "gadre.csv", "rpj", None),
    ("gadre rw_original", "gadre.csv", "rw_original", None),
    ("gadre 3 groups", "gadre.csv", None, "group"),
    ("gemstones hot", "gemstones_hot.csv", None, None),
    ("gemstones cool", "gemstones_cool.csv", None, None),
)
CASES = CHECK_CASES  # the name earlier scripts imported
PORIAN_TRAIN_MAX_C = 1e19  # budgets 1.26e16-8e18 train; 1.3e19 and 2.6e19 are held out
DATABLATIONS_TRAIN_MAX_N = 1e9


def write_extra_suites(folder: str) -> dict[str, tuple]:
    """Write the porian and datablations suites as canonical CSVs; their cases by suite name."""
    from bayes_scaling.datasets import load_dataset

    porian = load_dataset("porian-discrepancies")
    frame = pd.DataFrame(
        {"N": porian["N"], "D": porian["D"], "loss": porian["loss"], "group": porian["group"]}
    )
    frame["train"] = porian["C"] <= PORIAN_TRAIN_MAX_C
    frame.to_csv(f"{folder}/porian.csv", index=False)
    settings = sorted(frame["group"].unique())
    single = tuple((f"porian {s}", "porian.csv", s, None) for s in settings)
    # settings measured on both corpora (rw and owt2) with the same recipe: one pair each
    recipe = {s: s.split("/", 1)[1] for s in settings}
    pairs = []
    for rest in sorted(set(recipe.values())):
        both = sorted(s for s in settings if recipe[s] == rest)
        if len(both) == 2:
            pair = frame[frame["group"].isin(both)]
            name = "porian_pair_" + rest.replace("/", "_") + ".csv"
            pair.to_csv(f"{folder}/{name}", index=False)
            pairs.append((f"porian {rest} x2", name, None, "group"))
    blat = load_dataset("datablations")
    one = blat[blat["epochs"] <= 1.0 + 1e-9]
    dframe = pd.DataFrame({"N": one["N"], "D": one["D"], "loss": one["loss"]})
    dframe["group"] = "datablations"
    dframe["train"] = one["N"] < DATABLATIONS_TRAIN_MAX_N
    dframe.to_csv(f"{folder}/datablations.csv", index=False)
    return {
        "porian": single,
        "porian-pairs": tuple(pairs),
        "datablations": (("datablations 1 epoch", "datablations.csv", None, None),),
    }


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
# ``priors`` and ``likelihood`` for the noise model). The first eight vary the discrepancy with the
# default noise model (Student-t with nu learned under a Gamma(2, 0.1) prior): its form, then the
# joint score and five cuts (0.5-0.9) in place of three; the rest vary the noise model (the
# ``nu-`` ones fix nu, ``nu-gamma2-1`` learns it under Gamma(2, 1)); ``laplace`` fits every model
# by the Laplace approximation at the posterior mode in place of NUTS; ``E-wide`` and
# ``amplitudes-wide`` widen the default priors of ``E`` (log scale 0.5 to 1.0) and of ``A`` and
# ``B`` (3 to 8).
FIVE_CUTS = (0.5, 0.6, 0.7, 0.8, 0.9)
VARIANTS: dict[str, dict] = {
    "span-t3": {},
    "span-t2": {"calibration": {"slope_df": 2.0}},
    "span-t4": {"calibration": {"slope_df": 4.0}},
    "span-normal": {"calibration": {"slope_df": None}},
    "efold-normal": {"calibration": {"unit": "e-fold", "slope_df": None}},
    "joint": {"calibration": {"score": "joint"}},
    "joint-5cuts": {"calibration": {"score": "joint", "cuts": FIVE_CUTS}},
    "span-t3-5cuts": {"calibration": {"cuts": FIVE_CUTS}},
    "axes-scale-N-D": {"calibration": {"axes": ("scale", "N", "D")}},
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
    "laplace": {"method": "laplace"},
    "E-wide": {"priors": {"params": {"E": {"dist": "lognormal", "loc": 0.5, "scale": 1.0}}}},
    "amplitudes-wide": {
        "priors": {
            "params": {
                "A": {"dist": "lognormal", "loc": 6.0, "scale": 8.0},
                "B": {"dist": "lognormal", "loc": 7.0, "scale": 8.0},
            }
        }
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


def _pooled(rows: list[dict]) -> dict:
    """Coverages and interval scores pooled over held-out runs; cases whose 90% coverage is
    under 0.75 or whose posterior median is less accurate than the point fit (by over 5e-4)."""
    n = sum(r["n_test"] for r in rows)
    out = {
        k: sum(r[k] * r["n_test"] for r in rows) / n
        for k in ("coverage_50", "coverage_90", "interval_score_50", "interval_score_90")
    }
    out["n_test"] = n
    out["cases"] = len(rows)
    out["cases_cov90_below_0.75"] = sum(r["coverage_90"] < 0.75 for r in rows)
    out["cases_less_accurate"] = sum(
        r["median_are"] > r["point_fit_median_are"] + 5e-4 for r in rows
    )
    return out


def _print_pooled(head: str, pooled: dict) -> None:
    print(
        f"{head} pooled over {pooled['n_test']} runs of {pooled['cases']} cases: "
        + " ".join(f"{k}={pooled[k]:.3f}" for k in ("coverage_50", "coverage_90"))
        + " "
        + " ".join(f"{k}={pooled[k]:.4f}" for k in ("interval_score_50", "interval_score_90"))
        + f"; cov90 < 0.75 in {pooled['cases_cov90_below_0.75']}, less accurate than the point"
        f" fit in {pooled['cases_less_accurate']}",
        flush=True,
    )


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
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=("check", "porian", "porian-pairs", "datablations"),
        default=["check"],
        help="suites to run (default: the seven cases of the shared calibration check)",
    )
    args = parser.parse_args()
    suites = {"check": CHECK_CASES}
    if set(args.cases) - {"check"}:
        suites.update(write_extra_suites(args.suites))
    cases = [case for name in args.cases for case in suites[name]]
    results: dict[str, dict] = {}
    for unit in args.variants:
        options = VARIANTS[unit]
        rows = {}
        for name, file, corpus, group in cases:
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
        by_suite = {suite: [case[0] for case in suites[suite]] for suite in args.cases}
        if len(by_suite) > 1:
            for suite, names in by_suite.items():
                _print_pooled(f"{unit:12s} {suite}", _pooled([rows[n] for n in names]))
        pooled = _pooled(list(rows.values()))
        _print_pooled(f"{unit:12s}", pooled)
        results[unit] = {"cases": rows, "pooled": pooled}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
