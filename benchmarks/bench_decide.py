"""Benchmark: ``allocate`` over 4,000 posterior draws x 512 candidate model sizes, warm.

Run with ``python benchmarks/bench_decide.py [--draws 4000] [--candidates 512] [--repeats 7]``.
Prints the median wall time of ``repeats`` warm calls (after one call that compiles) for each
risk measure, and the first-call time. The target is under 0.5 s warm on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np

from bayes_scaling.decide import allocate


def synthetic_draws(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Draws spread like the Epoch refit's bootstrap, with Student-t residuals."""
    rng = np.random.default_rng(seed)
    return {
        "E": rng.normal(1.817, 0.026, size),
        "A": np.exp(rng.normal(math.log(482.0), 0.25, size)),
        "B": np.exp(rng.normal(math.log(2085.0), 0.5, size)),
        "alpha": rng.normal(0.348, 0.015, size),
        "beta": rng.normal(0.366, 0.021, size),
        "sigma": np.abs(rng.normal(0.01, 0.002, size)),
        "nu": rng.gamma(8.0, 1.0, size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--candidates", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compute", type=float, default=5.9e23)
    args = parser.parse_args()
    draws = synthetic_draws(args.draws)
    print(
        f"allocate: {args.draws} draws x {args.candidates} candidates, C = {args.compute:.3g} FLOP"
    )
    for risk in ("expected", "cvar:0.9", "quantile:0.9", "prob_below:2.0"):
        start = time.perf_counter()
        allocate(draws, args.compute, risk, num_candidates=args.candidates)
        first = time.perf_counter() - start
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = allocate(draws, args.compute, risk, num_candidates=args.candidates)
            times.append(time.perf_counter() - start)
        print(
            f"  {risk:<15} warm median {statistics.median(times):.3f} s "
            f"(min {min(times):.3f}, max {max(times):.3f}; first call {first:.2f} s)  "
            f"N = {result.N:.3g}, D/N = {result.tokens_per_param:.1f}"
        )


if __name__ == "__main__":
    main()
