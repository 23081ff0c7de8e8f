"""Where a grouped fit's step size is set, and whether a pilot re-whitening would help.

Usage::

    python benchmarks/probe_geometry.py CASE [--seed S] [--points 200] [--pilot W1 K1 W2]

``CASE`` is one of ``bench_hierarchical.py``'s cases (``gadre``, ``sim-6``, ``porian-15``, ...).
A diagnostic for developers of the sampler, not a benchmark of the package: it reaches into
``bayes_scaling.engine.sampler`` and runs the grouped fit's sampler (default settings, chains
one after another) in the coordinates the package samples in. It prints

- the leapfrog steps per draw and the step size of the run;
- the spread of the draws in each sampler coordinate (the adapted diagonal mass matrix estimates
  the same), and the strongest posterior correlations of each population location;
- the largest eigenvalue of the potential's Hessian scaled by those spreads, at ``--points``
  draws: leapfrog integration is stable only for step sizes below ``2 / sqrt(eigenvalue)``, so
  its upper quantiles set the step size, and its eigenvector names the direction that does.

With ``--pilot W1 K1 W2`` it also runs a two-phase sampler: ``W1`` warmup iterations and ``K1``
kept draws per chain in the package's coordinates, then the coordinates whitened by the pooled
covariance of those draws as ``SamplerSettings(pilot=True)`` whitens them (correlations shrunk by
``PILOT_SHRINK`` towards none), ``W2`` warmup iterations and the usual 1,000 draws; the package's
pilot fixes ``W1``, ``K1`` and ``W2`` at 30%, 20% and 60% of ``num_warmup``. It prints both
runs' time, leapfrog steps per kept draw and min bulk ESS over the sampler's coordinates (not the
model's sites), from one process, second calls.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from bench_hierarchical import cases

from bayes_scaling.engine import chains, sampler
from bayes_scaling.engine.run import resolve_settings
from bayes_scaling.engine.settings import SamplerSettings, bucket_size, pad_inputs
from bayes_scaling.inference.prepare import prepare


def _arguments(data):
    inputs = prepare(data, "chinchilla", group="group")
    spec = inputs.spec
    size = bucket_size(len(inputs.y))
    xp, yp, gp, mask = pad_inputs(inputs.x, inputs.y, inputs.group_index, size)
    reference = {k: np.float32(v) for k, v in spec.reference_map.items()}
    settings = resolve_settings(spec, SamplerSettings(chain_method="sequential"), "nuts")
    return spec, (xp, yp, gp, mask, reference), settings


def _coordinate_names(info, unravel) -> list[str]:
    """The sampler's flat coordinates named by site (``A_z[2]``: group 2's offset of ``A``)."""
    sizes = {k: int(np.size(v)) for k, v in info.param_info.z.items()}
    index = unravel(jnp.arange(sum(sizes.values()), dtype=jnp.float32))
    names: dict[int, str] = {}
    for site, values in index.items():
        flat = np.atleast_1d(np.asarray(values)).ravel().astype(int)
        for j, i in enumerate(flat):
            names[int(i)] = f"{site}[{j}]" if flat.size > 1 else site
    return [names[i] for i in range(len(names))]


def _potential_z(model, spec, settings, args, key):
    f = sampler._setup(model, spec, settings, "nuts", 0, args, key)
    potential = sampler._whitened_potential(
        f["potential"], f["centring"], f["mode_w"], f["scale_w"]
    )
    return f, potential


def probe(data, seed: int, points: int) -> None:
    spec, args, settings = _arguments(data)
    model = sampler._counted(spec)

    def run(key):
        f, potential = _potential_z(model, spec, settings, args, key)
        return chains._nuts(potential, f["mode"].shape[0], f["k_fit"], settings, f["mode"].dtype)

    z, stats = jax.jit(run)(jax.random.PRNGKey(seed))
    print(
        f"leapfrog steps per draw {float(stats['num_steps'].mean()):.0f}, "
        f"step size {float(stats['step_size'][0]):.4f}"
    )
    f, potential = _potential_z(model, spec, settings, args, jax.random.PRNGKey(seed))
    names = _coordinate_names(f["info"], f["unravel"])
    draws = np.asarray(z).reshape(-1, len(names))
    spread = draws.std(0)
    print(
        "spread of the draws:",
        ", ".join(f"{n} {s:.2f}" for n, s in zip(names, spread, strict=True)),
    )
    corr = np.corrcoef(draws.T)
    for k, name in enumerate(names):
        if name.endswith("_pop_loc"):
            top = np.argsort(-np.abs(corr[k]))[1:5]
            print(f"  {name}:", ", ".join(f"{names[t]} {corr[k, t]:+.2f}" for t in top))
    hessian = jax.jit(jax.hessian(potential))
    picks = np.random.default_rng(0).choice(len(draws), min(points, len(draws)), replace=False)
    top_values, top_vectors = [], []
    for i in picks:
        scaled = spread[:, None] * np.asarray(hessian(jnp.asarray(draws[i]))) * spread[None, :]
        values, vectors = np.linalg.eigh(scaled)
        top_values.append(values[-1])
        top_vectors.append(vectors[:, -1])
    top_values = np.asarray(top_values)
    q = np.percentile(top_values, [50, 90, 99])
    print(
        "largest scaled eigenvalue, 50/90/99%: "
        + " / ".join(f"{v:.0f}" for v in q)
        + " (stable step below "
        + " / ".join(f"{2 / np.sqrt(v):.3f}" for v in q)
        + ")"
    )
    for j in np.argsort(-top_values)[:3]:
        v = top_vectors[j]
        lead = np.argsort(-np.abs(v))[:4]
        print(
            f"  eigenvalue {top_values[j]:.0f}:", ", ".join(f"{names[t]} {v[t]:+.2f}" for t in lead)
        )


def pilot(data, seed: int, w1: int, k1: int, w2: int) -> None:
    spec, args, settings = _arguments(data)
    model = sampler._counted(spec)
    first = dataclasses.replace(settings, num_warmup=w1, num_samples=k1)
    second = dataclasses.replace(settings, num_warmup=w2)

    def summary(z):
        posterior = {f"c{i}": z[:, :, i] for i in range(z.shape[-1])}
        return float(
            az.summary(az.from_dict(posterior=posterior), kind="diagnostics").ess_bulk.min()
        )

    def plain(key):
        f, potential = _potential_z(model, spec, settings, args, key)
        z, stats = chains._nuts(
            potential, f["mode"].shape[0], f["k_fit"], settings, f["mode"].dtype
        )
        return z, stats["num_steps"].mean(), jnp.nan

    def two_phase(key):
        f, potential = _potential_z(model, spec, settings, args, key)
        d, dtype = f["mode"].shape[0], f["mode"].dtype
        k1_, k2_ = jax.random.split(f["k_fit"])
        z1, stats1 = chains._nuts(potential, d, k1_, first, dtype)
        mean, chol = chains._pilot_whitening(z1, dtype)  # as SamplerSettings.pilot

        def rewhitened(v):  # an elementwise product and a sum: no dot call in the leapfrog loop
            return potential(mean + (chol * v[None, :]).sum(1))

        z2, stats2 = chains._nuts(rewhitened, d, k2_, second, dtype)
        z = mean + jnp.einsum("ij,csj->csi", chol, z2)
        return z, stats2["num_steps"].mean(), stats1["num_steps"].mean()

    for label, fn in (("package's coordinates", plain), ("pilot, then re-whitened", two_phase)):
        jitted = jax.jit(fn)
        jax.block_until_ready(jitted(jax.random.PRNGKey(seed + 1)))
        start = time.perf_counter()
        z, steps, pilot_steps = jax.device_get(jitted(jax.random.PRNGKey(seed)))
        seconds = time.perf_counter() - start
        before = "" if np.isnan(pilot_steps) else f"{float(pilot_steps):.0f} in the pilot's draws, "
        print(
            f"{label}: {seconds:.1f} s, leapfrog steps per draw {before}{float(steps):.0f}, "
            f"min bulk ESS {summary(z):.0f} (sampler coordinates)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted(cases()))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--pilot", type=int, nargs=3, metavar=("W1", "K1", "W2"))
    a = parser.parse_args()
    numpyro.enable_validation(False)
    warnings.simplefilter("ignore")
    data = cases()[a.case]()
    probe(data, a.seed, a.points)
    if a.pilot:
        pilot(data, a.seed, *a.pilot)


if __name__ == "__main__":
    main()
