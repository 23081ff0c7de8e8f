"""Can a grouped fit's own warmup tell whether it needs the pilot's re-whitening?

Usage::

    python benchmarks/probe_gate.py CASE [CASE ...] [--seeds 1 2 3] [--at 250] [--window 100]

A developer's diagnostic for the sampler (it reaches into ``bayes_scaling.engine.sampler``).
For each case of ``bench_hierarchical.py`` and seed it runs the default grouped sampler's chains
(static HMC, the package's coordinates, default settings) for the first ``--at`` warmup
iterations of the usual schedule and prints, from the four chains' pooled draws of the last
``--window`` of those iterations, the largest size of a population location's correlation with
one of its own groups' offsets: the statistic a gate would read to decide, part-way through
warmup, between going on with today's run and re-whitening as ``SamplerSettings(pilot=True)``
does. Also printed: the seconds those iterations took (second call) and their mean leapfrog
steps.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from bench_hierarchical import cases
from probe_geometry import _arguments, _potential_z

from bayes_scaling.engine import chains, sampler
from bayes_scaling.engine.centring import _pooled_blocks


def tie_statistic(data, seed: int, at: int, window: int) -> tuple[float, float, float]:
    spec, args, settings = _arguments(data)
    model = sampler._counted(spec)

    def run(key):
        f, potential = _potential_z(model, spec, settings, args, key)
        d, dtype = f["mode"].shape[0], f["mode"].dtype
        init, sample_kernel = chains._kernel(potential, d, settings)
        keys, starts = chains._chain_starts(f["k_fit"], settings, d, dtype)

        def one_chain(k, z0):
            state = init(k, z0)
            _, out = jax.lax.scan(chains._recorded(sample_kernel), state, None, length=at)
            return out[0][at - window :], out[2].mean()

        z, steps = jax.lax.map(lambda a: one_chain(*a), (keys, starts))
        ties = tuple((b[0], b[2]) for b in _pooled_blocks(spec, f["info"]))  # as program() has
        return chains._location_tie(z.reshape(-1, d), ties), steps.mean()

    jitted = jax.jit(run)
    jax.block_until_ready(jitted(jax.random.PRNGKey(seed + 100)))
    start = time.perf_counter()
    tie, steps = jax.device_get(jitted(jax.random.PRNGKey(seed)))
    return float(tie), time.perf_counter() - start, float(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--at", type=int, default=250)
    parser.add_argument("--window", type=int, default=100)
    args = parser.parse_args()
    known = cases()
    for name in args.cases:
        for seed in args.seeds:
            tie, seconds, steps = tie_statistic(known[name](), seed, args.at, args.window)
            print(
                f"{name} seed {seed}: largest |corr(location, own offset)| {tie:.3f} in warmup "
                f"iterations {args.at - args.window}-{args.at}; {seconds:.1f} s, "
                f"{steps:.0f} leapfrog steps per iteration",
                flush=True,
            )


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
