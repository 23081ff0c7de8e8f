"""How skewed the training runs' residuals about the point fit are, per calibration-check case.

Usage::

    python ../shared/checks/_suites.py "$BAYES_SCALING_DATA" /tmp/suites
    python benchmarks/probe_residual_skew.py /tmp/suites

For each single-curve case of ``../shared/checks/calibration`` (Epoch, the three gadre corpora
below 1e9 parameters, Gemstones hot and cool), the training runs are fitted by the point fit
(:func:`bayes_scaling.backtest.point_fit`, Chinchilla law) and their log residuals ``log y -
log fit`` (positive: the run lies above the curve) are summarised: the 10/50/90% quantiles, the
largest and smallest residual, and two quantile skewness figures, Bowley's (quartiles) and
Kelly's (10% and 90%), each 0 for a symmetric distribution and positive when the upper tail is
the longer. The point fit minimises absolute deviations in effect, so its residuals' median is
near 0 and the skewness reads the tails' shape, not a shift.

A developer's diagnostic for the noise model (``benchmarks/RESULTS.md``, "Skewed residuals and a
two-piece Student-t likelihood"); it fits no posterior.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling.backtest import point_fit

CASES = (
    ("epoch", None),
    ("gadre", "group == 'c4_original'"),
    ("gadre", "group == 'rpj'"),
    ("gadre", "group == 'rw_original'"),
    ("gemstones_hot", None),
    ("gemstones_cool", None),
)


def residual_summary(train: pd.DataFrame) -> dict[str, float]:
    """Quantiles and skewness of ``log y - log fit`` over the training runs."""
    fit = point_fit("chinchilla", train, train["loss"])
    r = np.log(train["loss"].to_numpy(float)) - np.log(fit.predict(train))
    q10, q25, q50, q75, q90 = np.quantile(r, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {
        "n": len(r),
        "q10": q10,
        "q50": q50,
        "q90": q90,
        "min": float(r.min()),
        "max": float(r.max()),
        "bowley": (q75 + q25 - 2 * q50) / (q75 - q25),
        "kelly": (q90 + q10 - 2 * q50) / (q90 - q10),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suites", type=Path, help="folder written by ../shared/checks/_suites.py")
    args = parser.parse_args()
    print(
        f"{'case':34s} {'n':>4s} {'q10':>8s} {'q50':>8s} {'q90':>8s} {'min':>8s} {'max':>8s}"
        f" {'bowley':>7s} {'kelly':>6s}"
    )
    for name, query in CASES:
        data = pd.read_csv(args.suites / f"{name}.csv")
        if query:
            data = data.query(query)
        s = residual_summary(data[data["train"]])
        label = name + (f" [{query}]" if query else "")
        print(
            f"{label:34s} {s['n']:4d} {s['q10']:+8.4f} {s['q50']:+8.4f} {s['q90']:+8.4f}"
            f" {s['min']:+8.4f} {s['max']:+8.4f} {s['bowley']:+7.2f} {s['kelly']:+6.2f}"
        )


if __name__ == "__main__":
    main()
