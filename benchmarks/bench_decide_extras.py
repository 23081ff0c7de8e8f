"""Timing of the decision extras: next-runs ranking and the misallocation cost, on a real fit.

Usage: python benchmarks/bench_decide_extras.py [--repeats 3]

Fits ``epoch-chinchilla-240`` (Chinchilla law, 4 x (500 + 1000), seed 0) once, then times, in
one process and after a first call that compiles:

- ``next_runs(fit, compute=5.9e23, budget=1e21)``: the ranked candidates and the greedy batch;
- ``misallocation_cost`` of the expected-loss allocation and of Hoffmann et al.'s 70B x 1.4T.

Prints the medians and the misallocation figures (median and 90% interval, as fractions of the
compute). Needs the published data (``BAYES_SCALING_DATA``) for ``epoch-chinchilla``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings


def _timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # compile
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import bayes_scaling as bs
    from bayes_scaling import decide, misallocation, next_runs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bs.fit(bs.load_dataset("epoch-chinchilla-240"), "chinchilla", seed=0)
    compute = 5.9e23
    t_next, result = _timed(lambda: next_runs.next_runs(fit, compute=compute, budget=1e21), args.repeats)
    chosen = decide.allocate(fit, compute, discrepancy=None)  # the fit stores none: say so
    t_waste, waste = _timed(lambda: misallocation.misallocation_cost(fit, chosen), args.repeats)
    planned = misallocation.misallocation_cost(fit, (70e9, 1.4e12))
    out = {
        "next_runs_seconds": t_next,
        "next_runs_candidates": len(result.to_dict()["candidates"]),
        "misallocation_seconds": t_waste,
        "expected_loss_allocation": {"N": chosen.N, "D": chosen.D, **waste.to_dict()},
        "hoffmann_70B_1.4T": planned.to_dict(),
    }
    print(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
