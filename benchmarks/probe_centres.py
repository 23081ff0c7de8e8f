"""Which central estimate of a held-out run is accurate: the posterior median, the mode, or the
point fit?

Usage::

    python ../shared/checks/_suites.py "$BAYES_SCALING_DATA" /tmp/suites
    python benchmarks/probe_centres.py /tmp/suites [--seed 0]

A developer's diagnostic for the calibration issue's accuracy question, on the seven cases of
``../shared/checks/calibration`` (``bench_calibration_suites.CHECK_CASES``). Each case's training
runs are fitted three ways (Chinchilla law, default settings and priors): NUTS (``fit``), the
Laplace approximation at the posterior mode (``fit(..., method="laplace")``), both
hierarchically for the three gadre corpora as groups, and the built-in Huber point fit (per
group). Printed per case: the median
absolute relative error on the held-out runs of the law's prediction at the NUTS draws' median,
at the NUTS draw of highest log density, at the Laplace draws' median (the mode, in the
unconstrained coordinates) and of the point fit; then the three fits' ``E`` and ``beta`` (per
group). The highest-density draw is the draw of highest joint log density, read at each
group's own values.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
from bench_calibration_suites import CHECK_CASES

from bayes_scaling import fit, get_law, posterior_draws
from bayes_scaling.backtest.pointfit import point_fit
from bayes_scaling.predict import predict

LAW = get_law("chinchilla")
NAMES = ("E", "A", "B", "alpha", "beta")


def _median_prediction(idata, points: pd.DataFrame, group: str | None) -> np.ndarray:
    """The posterior median of the law's mean at ``points`` (no discrepancy, no noise)."""
    band = predict(idata, points, group=group, kind="law_mean", discrepancy=None, quantiles=(0.5,))
    return band["law_mean_quantiles"].sel(quantile=0.5).to_numpy()


def probe(folder: str, file: str, corpus: str | None, group: str | None, seed: int) -> dict:
    data = pd.read_csv(f"{folder}/{file}")
    if corpus is not None:
        data = data[data["group"] == corpus]
    if group is None:
        data = data.assign(group="all")
    train = data[data["train"]].drop(columns=["train"]).reset_index(drop=True)
    held = data[~data["train"]].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = train if group else train.drop(columns=["group"])
        nuts = fit(runs, "chinchilla", group=group, seed=seed)
        laplace = fit(runs, "chinchilla", group=group, seed=seed, method="laplace")
    lp = nuts.sample_stats["lp"].values.reshape(-1)
    errors: dict[str, list] = {
        k: [] for k in ("posterior_median", "highest_density_draw", "laplace_median", "point_fit")
    }
    values: dict[str, dict[str, list]] = {
        p: {"nuts": [], "laplace": [], "point_fit": []} for p in ("E", "beta")
    }
    for name, part in held.groupby("group"):
        at = part[["N", "D"]].reset_index(drop=True)
        covariates = {"N": at["N"].to_numpy(), "D": at["D"].to_numpy()}
        observed = part["loss"].to_numpy()
        own = train[train["group"] == name]
        own_group = name if group else None
        nuts_draws = posterior_draws(nuts, group=own_group)
        laplace_draws = posterior_draws(laplace, group=own_group)
        best = {k: np.asarray(nuts_draws[k])[int(np.argmax(lp))] for k in NAMES}
        points = point_fit("chinchilla", {"N": own["N"], "D": own["D"]}, own["loss"])
        for key, prediction in (
            ("posterior_median", _median_prediction(nuts, at, own_group)),
            ("highest_density_draw", LAW.predict(best, covariates)),
            ("laplace_median", _median_prediction(laplace, at, own_group)),
            ("point_fit", points.predict(covariates)),
        ):
            errors[key] += list(np.abs(np.asarray(prediction) / observed - 1))
        for p in ("E", "beta"):
            values[p]["nuts"].append(float(np.median(nuts_draws[p])))
            values[p]["laplace"].append(float(np.median(laplace_draws[p])))
            values[p]["point_fit"].append(float(points.params[p]))
    return {
        "n_held_out": len(held),
        "are": {k: float(np.median(v)) for k, v in errors.items()},
        **values,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", help="folder written by ../shared/checks/_suites.py")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name, file, corpus, group in CHECK_CASES:
        r = probe(args.suites, file, corpus, group, args.seed)
        a = r["are"]
        print(
            f"{name:18s} held out {r['n_held_out']:3d}  ARE: posterior median {a['posterior_median']:.4f}"
            f"  highest-density draw {a['highest_density_draw']:.4f}"
            f"  Laplace (mode) {a['laplace_median']:.4f}"
            f"  point fit {a['point_fit']:.4f} | "
            + "  ".join(
                f"{p} "
                + " / ".join(
                    ",".join(f"{v:.3f}" for v in r[p][how])
                    for how in ("nuts", "laplace", "point_fit")
                )
                for p in ("E", "beta")
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
