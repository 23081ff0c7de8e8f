"""The population locations' tails of a four-group fit under given sampler settings.

Usage::

    python benchmarks/population_tails.py [--seeds 1 2] [--draws 4000] [--set NAME=VALUE ...]

The data are those of the test suite's posterior-agreement tests (``tests/test_centring.py``):
four power laws over compute whose irreducible loss differs by 5% between groups, every
parameter pooled. With four groups the population locations are heavy-tailed, so short fits
say little about their spread; this runs 4 chains x ``--draws`` after 1,000 warmup and prints,
per seed, the SD and the 1%, 50% and 99% quantiles of each population location and the lowest
bulk ESS among them. ``--set`` changes a field of ``SamplerSettings`` as in
``sweep_settings.py`` (``--set trajectory_length=None target_accept_prob=0.95`` gives a NUTS
reference). Compare settings by running this once for each.
"""

from __future__ import annotations

import argparse
import ast
import time
import warnings

import jax
import numpy as np
import pandas as pd
from numpyro.diagnostics import effective_sample_size

from bayes_scaling import engine, inference

LOCATIONS = ("E_pop_loc", "A_pop_loc", "alpha_pop_loc")


def four_groups(n: int = 12, seed: int = 0) -> pd.DataFrame:
    """The test suite's ``grouped_curves(groups=4)``."""
    rng = np.random.default_rng(seed)
    C = np.geomspace(1e15, 1e21, n)
    rows = []
    for g in range(4):
        E = 1.8 * np.exp(0.05 * rng.standard_normal())
        loss = (E + 1.5 * (C / 1e15) ** -0.3) * np.exp(0.01 * rng.standard_normal(n))
        rows += [(f"g{g}", c, v) for c, v in zip(C, loss, strict=True)]
    return pd.DataFrame(rows, columns=["run", "C", "loss"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--draws", type=int, default=4000, help="kept draws per chain")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    options = {}
    for item in args.set:
        name, _, value = item.partition("=")
        options[name] = ast.literal_eval(value)
    pooled = {"E": "pooled", "A": "pooled", "alpha": "pooled"}
    inputs = inference.prepare(four_groups(), "power_law", group="run", pooling=pooled)
    budget = {"num_chains": 4, "num_warmup": 1000, "num_samples": args.draws}
    settings = engine.SamplerSettings(**{"pilot": False, **budget, **options})
    print(f"settings changed: {args.set or 'none'} (pilot=False unless set)", flush=True)
    for seed in args.seeds:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = inference.sample(inputs, jax.random.PRNGKey(seed), settings, prior_samples=0)
        seconds = time.perf_counter() - start
        posterior = fit["posterior"]
        ess = min(float(effective_sample_size(posterior[k].values).min()) for k in LOCATIONS)
        parts = []
        for name in LOCATIONS:
            draws = posterior[name].values.reshape(-1)
            q = np.quantile(draws, [0.01, 0.5, 0.99])
            parts.append(f"{name} sd={draws.std():.4f} q01/50/99={q[0]:.3f}/{q[1]:.3f}/{q[2]:.3f}")
        divergences = int(fit["sample_stats"]["diverging"].values.sum())
        print(f"seed {seed}: {seconds:.1f}s div={divergences} min ess={ess:.0f}", flush=True)
        for part in parts:
            print(f"    {part}", flush=True)


if __name__ == "__main__":
    main()
