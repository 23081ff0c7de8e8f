"""Hierarchical fits of 2 to 100 groups against the same points fitted as one curve.

Usage::

    python benchmarks/bench_hierarchical.py [--out results.json] [--cases gadre porian-15 ...]
        [--devices N] [--trajectory-length auto|nuts|L] [--seeds K]

Each case is fitted twice with the Python API at default settings (Chinchilla law, every
parameter partially pooled, 4 x (500 + 1000) draws), once hierarchically (``group="group"``) and
once as one curve of the same points; the second call of each is timed, as
``../shared/checks/hierarchical`` does. Printed per case: runs, groups, both times and their
ratio, the hierarchical fit's first call (compilation included; a case after another may reuse
some compiled parts), divergences, max R-hat and min bulk ESS over the population and group
parameters. ``--seeds K`` times K second calls of each form (seeds 1 to K, after the seed-0
call that compiles) and prints, below the seed-1 line, the range over those seeds of the grouped
fit's seconds, of its ratio to the one curve's median second call, and of its diagnostics: how
far a figure moves with the draws.
The package asks JAX for one CPU device per core when it is imported, so grouped fits split their
chains over the cores; ``--devices N`` asks for N instead (``--devices 1``: the chains
one after another, as before 2026-12-05). ``--trajectory-length nuts|L`` fits both forms of every
case with NUTS, or with jittered static HMC of mean length ``L`` (``fit(...,
trajectory_length=L)``), in place of the package's default (``auto``: static HMC of length 3
for the grouped fits, NUTS for one curve).

Cases (``CASES``):

- ``gadre``: the three ``gadre-overtraining`` corpora below 1e9 parameters (95 runs);
- ``porian-<setting>``: the two corpora (owt2, rw) of one ``porian-discrepancies`` setting, for
  the five settings that both corpora have;
- ``porian-15``: all 15 ``porian-discrepancies`` settings as groups;
- ``sim-<G>``: G groups simulated from the Epoch refit of Chinchilla's law, each group's five
  parameters perturbed (E by 3%, A and B by 20%, the exponents by 0.02), 90 runs per group for
  up to 10 groups and 24 per group above, 1% Student-t(4) noise on the loss.

Needs the published data (``BAYES_SCALING_DATA`` or the packaged tables).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import arviz as az
import numpy as np
import pandas as pd

from bayes_scaling import fit
from bayes_scaling.datasets import load_dataset

# the Epoch refit of Chinchilla's law (Besiroglu et al. 2024)
EPOCH = {"E": 1.817, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
PORIAN_PAIRS = (  # settings (hparams/warmup/decay/parameter count/loss split) both corpora have
    "base/long/kaplan/kaplan/train",
    "base/long/kaplan/standard/val",
    "base/short/chinchilla/standard/val",
    "base/short/kaplan/standard/val",
    "tuned/short/const/standard/val",
)
SIM_GROUPS = (2, 3, 6, 10, 30, 100)


def gadre() -> pd.DataFrame:
    data = load_dataset("gadre-overtraining")
    return data.loc[data["N"] < 1e9, ["N", "D", "loss", "group"]].reset_index(drop=True)


def porian(setting: str | None = None) -> pd.DataFrame:
    data = load_dataset("porian-discrepancies")
    if setting is not None:
        data = data[data["group"].isin([f"owt2/{setting}", f"rw/{setting}"])]
    return data[["N", "D", "loss", "group"]].reset_index(drop=True)


def simulated(groups: int, seed: int = 0) -> pd.DataFrame:
    per_group = 90 if groups <= 10 else 24
    rng = np.random.default_rng(seed)
    frames = []
    for g in range(groups):
        z = rng.standard_normal(5)
        E = EPOCH["E"] * np.exp(0.03 * z[0])
        A, B = EPOCH["A"] * np.exp(0.2 * z[1]), EPOCH["B"] * np.exp(0.2 * z[2])
        alpha, beta = EPOCH["alpha"] + 0.02 * z[3], EPOCH["beta"] + 0.02 * z[4]
        N = np.exp(rng.uniform(np.log(6e7), np.log(1.6e10), per_group))
        D = np.exp(rng.uniform(np.log(8e8), np.log(3e11), per_group))
        loss = (E + A * N**-alpha + B * D**-beta) * np.exp(0.01 * rng.standard_t(4, per_group))
        frames.append(pd.DataFrame({"N": N, "D": D, "loss": loss, "group": f"g{g:03d}"}))
    return pd.concat(frames, ignore_index=True)


def cases() -> dict:
    out = {"gadre": gadre}
    for setting in PORIAN_PAIRS:
        out["porian-" + setting.replace("/", "-")] = lambda s=setting: porian(s)
    out["porian-15"] = porian
    for g in SIM_GROUPS:
        out[f"sim-{g}"] = lambda g=g: simulated(g)
    return out


def timed_calls(data: pd.DataFrame, group: str | None, seeds: int = 1, **options):
    """Seconds of the first call (seed 0, compilation included; no persistent cache in a
    Python process unless one is configured), then the seconds and fits of the calls with seeds
    1 to ``seeds``, which reuse the compiled program."""
    seconds, fits = [], []
    for seed in range(seeds + 1):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = fit(data, "chinchilla", group=group, seed=seed, **options)
        seconds.append(time.perf_counter() - t)
        fits.append(idata)
    return seconds[0], seconds[1:], fits[1:]


def diagnostics(idata) -> dict:
    summary = az.summary(idata, kind="diagnostics")
    return {
        "divergences": int(idata.sample_stats["diverging"].sum()),
        "max_rhat": float(summary["r_hat"].max()),
        "min_ess_bulk": float(summary["ess_bulk"].min()),
    }


def run_case(data: pd.DataFrame, seeds: int = 1, **options) -> dict:
    _, one_s, _ = timed_calls(data.drop(columns=["group"]), None, seeds, **options)
    first_s, grouped_s, fits = timed_calls(data, "group", seeds, **options)
    one = float(np.median(one_s))
    per_seed = [
        {"seed": k + 1, "hierarchical_s": s, "ratio": s / one, **diagnostics(f)}
        for k, (s, f) in enumerate(zip(grouped_s, fits, strict=True))
    ]
    return {
        "runs": len(data),
        "groups": int(data["group"].nunique()),
        "one_curve_s": one_s[0],
        "hierarchical_first_s": first_s,
        "hierarchical_s": grouped_s[0],
        "ratio": grouped_s[0] / one_s[0],
        **diagnostics(fits[0]),
        **(
            {"one_curve_seeds_s": one_s, "one_curve_median_s": one, "seeds": per_seed}
            if seeds > 1
            else {}
        ),
    }


def seeds_line(r: dict) -> str:
    """The range over seeds of a case's grouped seconds, ratios and diagnostics."""
    rows = r["seeds"]

    def span(key: str, fmt: str) -> str:
        values = [row[key] for row in rows]
        return f"{min(values):{fmt}}-{max(values):{fmt}}"

    return (
        f"{'':28s} seeds 1-{len(rows)}: hierarchical={span('hierarchical_s', '.1f')}s "
        f"one curve median={r['one_curve_median_s']:.1f}s ratio={span('ratio', '.1f')} "
        f"div={sum(row['divergences'] for row in rows)} "
        f"max rhat={max(row['max_rhat'] for row in rows):.3f} ess={span('min_ess_bulk', '.0f')}"
    )


def main() -> None:
    known = cases()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the figures as JSON")
    parser.add_argument(
        "--cases", nargs="+", choices=list(known), default=list(known), help="default: all"
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=None,
        help="CPU devices to ask JAX for (default: the package's, one per core); grouped fits "
        "split their chains over the devices",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="second calls to time per form of each case, seeds 1 to K (default 1); with more "
        "than one, a line of their ranges follows each case's",
    )
    parser.add_argument(
        "--trajectory-length",
        default="auto",
        help="the MCMC kernel of both fits of each case: auto (the package's default: static HMC "
        "of length 3 for grouped fits, NUTS for one curve), nuts, or jittered static HMC of this "
        "mean trajectory length (whitened coordinates)",
    )
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1; got {args.seeds}")
    import jax

    if args.devices is not None:
        import numpyro

        numpyro.set_host_device_count(args.devices)  # before the first computation
    print(f"{len(jax.local_devices())} CPU devices", flush=True)
    results = {}
    for name in args.cases:
        length = args.trajectory_length
        length = None if length == "nuts" else length if length == "auto" else float(length)
        r = results[name] = run_case(known[name](), args.seeds, trajectory_length=length)
        converged = r["divergences"] == 0 and r["max_rhat"] <= 1.01 and r["min_ess_bulk"] >= 1000
        print(
            f"{name:28s} runs={r['runs']:4d} groups={r['groups']:3d} "
            f"hierarchical={r['hierarchical_s']:6.1f}s (first {r['hierarchical_first_s']:5.1f}s) "
            f"one curve={r['one_curve_s']:5.1f}s "
            f"ratio={r['ratio']:5.1f} div={r['divergences']} rhat={r['max_rhat']:.3f} "
            f"ess={r['min_ess_bulk']:.0f} {'converged' if converged else 'NOT converged'}",
            flush=True,
        )
        if args.seeds > 1:
            print(seeds_line(r), flush=True)
        if args.out:
            with open(args.out, "w") as fh:
                json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
