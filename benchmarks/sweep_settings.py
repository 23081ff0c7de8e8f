"""A grouped fit's sampler over several seeds, at the default settings or with some changed.

Usage::

    python benchmarks/sweep_settings.py CASE [--seeds 1 2 3] [--set NAME=VALUE ...]

``CASE`` is one of ``bench_hierarchical.py``'s cases (``gadre``, ``sim-6``, ``porian-15``, ...).
``--set`` changes a field of ``SamplerSettings`` (``--set target_accept_prob=0.8``; values are
read as Python literals). The sampler alone runs (Chinchilla law, every parameter pooled, no
prior draws, the package's host devices), first once at seed 99 to compile, then once per seed,
each timed. Printed per seed: seconds, divergences, max R-hat and min bulk ESS over every
sampled site (and the site with the lowest ESS), mean leapfrog steps per draw, the step size
the chains ran at, and the mean acceptance probability of the draws.

A developer's tool for comparing sampler settings on the benchmark's cases; leapfrog steps per
draw and ESS do not depend on the machine, seconds do.
"""

from __future__ import annotations

import argparse
import ast
import time
import warnings

import arviz as az
import jax
import numpy as np
from bench_hierarchical import cases

from bayes_scaling import inference
from bayes_scaling.engine.settings import SamplerSettings


def _settings(pairs: list[str]) -> SamplerSettings:
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set takes NAME=VALUE; got {pair!r}")
        try:
            options[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[name] = value
    return SamplerSettings(**options)


def _line(seconds: float, groups) -> str:
    stats = groups["sample_stats"]
    summary = az.summary(az.InferenceData(posterior=groups["posterior"]), kind="diagnostics")
    steps = float(stats["n_steps"].mean())
    step_size = np.unique(np.round(np.asarray(stats["step_size"]).reshape(-1), 5))
    accept = float(stats["acceptance_rate"].mean())
    return (
        f"{seconds:6.2f}s div={int(stats['diverging'].sum())} "
        f"rhat={summary['r_hat'].max():.3f} ess={summary['ess_bulk'].min():.0f} "
        f"({summary['ess_bulk'].idxmin()}) steps={steps:.0f} step={step_size} accept={accept:.3f}"
    )


def main() -> None:
    known = cases()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=list(known))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    settings = _settings(args.set)
    inputs = inference.prepare(known[args.case](), "chinchilla", group="group")
    warnings.simplefilter("ignore")  # the diagnostics are printed below
    inference.sample(inputs, jax.random.PRNGKey(99), settings, prior_samples=0)
    print(f"{args.case}: {len(inputs.y)} runs, settings changed: {args.set or 'none'}", flush=True)
    for seed in args.seeds:
        start = time.perf_counter()
        groups = inference.sample(inputs, jax.random.PRNGKey(seed), settings, prior_samples=0)
        print(f"seed {seed}: {_line(time.perf_counter() - start, groups)}", flush=True)


if __name__ == "__main__":
    main()
