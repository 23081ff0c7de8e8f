"""Sampling benchmark: this engine against plain numpyro NUTS, the point fit with a bootstrap,
nutpie (when installed), plus scaling with data size, group count and batched fits.

    python benchmarks/bench_sampling.py            # full run (about 18 min on an idle 2-core CPU)
    python benchmarks/bench_sampling.py --quick    # reduced sizes (about 10 min)

Prints a table and writes the figures as JSON (``--out``, default
``benchmarks/results-<device>.json`` for a full run; a run with ``--skip`` writes only where
``--out`` says, so that it does not replace the recorded full run). Every figure comes from this one run on this machine;
ratios compare within the run. ESS is ArviZ's bulk ESS, min over E, A, B, alpha, beta. Times are
wall-clock seconds of a second call (compiled programs cached) unless marked "first".
Needs the published data (``BAYES_SCALING_DATA`` or ``../shared/datasets``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")  # one host device per core

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import jax  # noqa: E402
import jax.flatten_util  # noqa: E402

from bayes_scaling import inference  # noqa: E402

PARAMS = ["E", "A", "B", "alpha", "beta"]
EPOCH = dict(E=1.817, A=482.0, B=2085.0, alpha=0.348, beta=0.366)  # Besiroglu et al. 2024 refit


def _data_dir() -> None:
    if "BAYES_SCALING_DATA" not in os.environ:
        shared = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
        if shared.is_dir():
            os.environ["BAYES_SCALING_DATA"] = str(shared.resolve())


def epoch_chinchilla() -> pd.DataFrame:
    from bayes_scaling import datasets

    return datasets.load_dataset("epoch-chinchilla-240")[["N", "D", "C", "loss"]]


def min_ess(posterior, names=PARAMS) -> float:
    import arviz as az

    return float(az.ess(posterior[[n for n in names if n in posterior]], method="bulk").to_array().min())


def max_rhat(posterior, names=PARAMS) -> float:
    import arviz as az

    return float(az.rhat(posterior[[n for n in names if n in posterior]]).to_array().max())


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def timed_median(fn, *args, repeats: int = 3, **kwargs):
    """The last call's result and the median seconds of ``repeats`` calls (seeds 0, 1, ...):
    one second call on a shared 2-core machine moves by tens of percent."""
    seconds = []
    for seed in range(repeats):
        out, s = timed(fn, *args, seed=seed, **kwargs)
        seconds.append(s)
    return out, float(np.median(seconds))


def synthetic_chinchilla(n: int, seed: int, groups: int = 0) -> pd.DataFrame:
    """Points on the Epoch design's (N, D) range from the Epoch refit, 1% Student-t(4) noise."""
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(6e7), np.log(1.6e10), n))
    D = np.exp(rng.uniform(np.log(8e8), np.log(3e11), n))
    p = dict(EPOCH)
    g = rng.integers(0, groups, n) if groups else None
    E = p["E"] * (np.exp(0.03 * rng.standard_normal(groups))[g] if groups else 1.0)
    loss = (E + p["A"] * N ** -p["alpha"] + p["B"] * D ** -p["beta"]) * np.exp(0.01 * rng.standard_t(4, n))
    df = pd.DataFrame({"N": N, "D": D, "loss": loss})
    if groups:
        df["group"] = [f"g{k:03d}" for k in g]
    return df


def small_curve(seed: int, n: int = 30) -> pd.DataFrame:
    """A power law over compute whose reducible term falls from about 1.5 to 0.02 nats."""
    rng = np.random.default_rng(seed)
    E = 1.8 * np.exp(0.1 * rng.standard_normal())
    alpha = 0.3 * np.exp(0.1 * rng.standard_normal())
    A = 1.5 * np.exp(0.2 * rng.standard_normal()) * 1e15**alpha
    C = np.geomspace(1e15, 1e21, n)
    return pd.DataFrame({"C": C, "loss": (E + A * C**-alpha) * np.exp(0.01 * rng.standard_normal(n))})


def gradient_seconds(curves: list[pd.DataFrame], repeats: int = 2000) -> float:
    """Seconds per value-and-gradient of the summed potential of all curves (power law, the
    package's priors), vectorised over curves and run in a compiled loop: the arithmetic that
    any sampler of these K posteriors pays per leapfrog step, without the sampler's own work."""
    from bayes_scaling.engine import bucket_size, pad_inputs
    from bayes_scaling.engine.sampler import _counted, _potential, _structure

    inputs = [inference.prepare(c, "power_law") for c in curves]
    size = bucket_size(max(len(c) for c in curves))
    pads = [pad_inputs(i.x, i.y, None, size) for i in inputs]
    x = {k: np.stack([p[0][k] for p in pads]) for k in pads[0][0]}
    y, mask = np.stack([p[1] for p in pads]), np.stack([p[3] for p in pads])
    ref = {k: np.asarray([i.spec.reference_map[k] for i in inputs], np.float32) for k in inputs[0].spec.reference_map}
    model = _counted(inputs[0].spec)
    info, unravel = _structure(model, jax.tree.map(lambda a: a[0], (x, y, None, mask, ref)), jax.random.PRNGKey(0))
    d = jax.flatten_util.ravel_pytree(info.param_info.z)[0].shape[0]

    def total(u):
        return jax.vmap(lambda uu, xx, yy, mm, rr: _potential(info, unravel, (xx, yy, None, mm, rr))(uu))(u, x, y, mask, ref).sum()

    @jax.jit
    def loop(u):
        return jax.lax.fori_loop(0, repeats, lambda _, c: c + 1e-6 * jax.grad(total)(c), u)

    u = jax.numpy.zeros((len(curves), d))
    loop(u).block_until_ready()
    t = time.perf_counter()
    loop(u).block_until_ready()
    return (time.perf_counter() - t) / repeats


# --------------------------------------------------------------------------- competitors


def plain_numpyro(df: pd.DataFrame, num_warmup: int, num_samples: int, seed: int = 0):
    """numpyro NUTS as a user would write it: raw log covariates, A and B sampled directly,
    the package's default priors and Student-t likelihood, diagonal mass matrix, 4 chains."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    logN = np.log(df["N"].to_numpy())
    logD = np.log(df["D"].to_numpy())
    y = np.log(df["loss"].to_numpy())

    def model(logN, logD, y):
        alpha = numpyro.sample("alpha", dist.LogNormal(-1.2, 0.7))
        beta = numpyro.sample("beta", dist.LogNormal(-1.2, 0.7))
        E = numpyro.sample("E", dist.LogNormal(0.5, 0.5))
        A = numpyro.sample("A", dist.LogNormal(6.0, 3.0))
        B = numpyro.sample("B", dist.LogNormal(7.0, 3.0))
        sigma = numpyro.sample("sigma", dist.HalfNormal(0.1))
        nu = numpyro.sample("nu", dist.Gamma(2.0, 0.1))
        mu = jax.numpy.logaddexp(jax.numpy.log(E), jax.numpy.logaddexp(jax.numpy.log(A) - alpha * logN, jax.numpy.log(B) - beta * logD))
        numpyro.sample("y", dist.StudentT(nu, mu, sigma), obs=y)

    mcmc = MCMC(NUTS(model, dense_mass=False, target_accept_prob=0.9), num_warmup=num_warmup,
                num_samples=num_samples, num_chains=4, chain_method="sequential", progress_bar=False)
    t = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), logN, logD, y, extra_fields=("diverging",))
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    seconds = time.perf_counter() - t
    import arviz as az

    post = az.from_dict(posterior={k: np.asarray(v) for k, v in samples.items()}).posterior
    return post, seconds, int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())


def pymc_nutpie(df: pd.DataFrame, num_warmup: int, num_samples: int, seed: int = 0):
    """PyMC's model of the same law, priors and likelihood as :func:`plain_numpyro` (raw log
    covariates), sampled by nutpie (its default numba backend), 4 chains. Returns the posterior,
    the compile seconds and the sampling seconds."""
    import nutpie
    import pymc as pm
    import pytensor.tensor as pt

    logN = np.log(df["N"].to_numpy())
    logD = np.log(df["D"].to_numpy())
    y = np.log(df["loss"].to_numpy())
    with pm.Model() as model:
        alpha = pm.LogNormal("alpha", -1.2, 0.7)
        beta = pm.LogNormal("beta", -1.2, 0.7)
        E = pm.LogNormal("E", 0.5, 0.5)
        A = pm.LogNormal("A", 6.0, 3.0)
        B = pm.LogNormal("B", 7.0, 3.0)
        sigma = pm.HalfNormal("sigma", 0.1)
        nu = pm.Gamma("nu", 2.0, 0.1)
        mu = pt.logaddexp(pt.log(E), pt.logaddexp(pt.log(A) - alpha * logN, pt.log(B) - beta * logD))
        pm.StudentT("y", nu=nu, mu=mu, sigma=sigma, observed=y)
    t = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model)
    t_compile = time.perf_counter() - t
    t = time.perf_counter()
    trace = nutpie.sample(compiled, draws=num_samples, tune=num_warmup, chains=4, seed=seed, progress_bar=False)
    t_sample = time.perf_counter() - t
    return trace.posterior, t_compile, t_sample, int(trace.sample_stats["diverging"].sum())


def point_fit_bootstrap(df: pd.DataFrame, resamples: int, seed: int = 0):
    from bayes_scaling.backtest import point_fit

    cov = {"N": df["N"].to_numpy(), "D": df["D"].to_numpy()}
    best, t_fit = timed(point_fit, "chinchilla", cov, df["loss"].to_numpy())
    rng = np.random.default_rng(seed)
    draws = []
    t = time.perf_counter()
    for _ in range(resamples):
        idx = rng.integers(0, len(df), len(df))
        fit = point_fit("chinchilla", {k: v[idx] for k, v in cov.items()}, df["loss"].to_numpy()[idx], max_starts=4)
        draws.append(fit.params)
    t_boot = time.perf_counter() - t
    return best.params, t_fit, t_boot, pd.DataFrame(draws)


# --------------------------------------------------------------------------- run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (see the docstring)")
    parser.add_argument("--out", help="JSON file for the figures")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: plain,nutpie,bootstrap,size,groups,many,calibration")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    _data_dir()
    warnings.filterwarnings("ignore")
    device = f"{jax.default_backend()}:{jax.devices()[0].device_kind}"
    res: dict = {"device": device, "platform": platform.platform(), "cpu_count": os.cpu_count(),
                 "jax": jax.__version__, "quick": args.quick, "when": time.strftime("%Y-%m-%d %H:%M")}
    say = lambda *a: print(*a, flush=True)  # noqa: E731
    say(f"device {device}, {os.cpu_count()} CPUs, jax {jax.__version__}")

    df = epoch_chinchilla()
    budget = dict(num_chains=4, num_warmup=500, num_samples=1000)

    # this engine, NUTS
    _, first = timed(inference.fit, df, "chinchilla", seed=1, **budget)
    fit, second = timed(inference.fit, df, "chinchilla", seed=0, **budget)
    ess = min_ess(fit.posterior)
    res["engine"] = dict(first_s=first, second_s=second, min_ess=ess, ess_per_s=ess / second,
                         max_rhat=max_rhat(fit.posterior), divergences=int(fit.sample_stats["diverging"].sum()),
                         steps=float(fit.sample_stats["n_steps"].mean()),
                         medians={k: float(fit.posterior[k].median()) for k in PARAMS},
                         sds={k: float(fit.posterior[k].std()) for k in PARAMS})
    say(f"engine NUTS       : first {first:6.1f} s, second {second:5.2f} s, min ESS {ess:6.0f}, "
        f"ESS/s {ess / second:7.0f}, R-hat {res['engine']['max_rhat']:.3f}, steps {res['engine']['steps']:.1f}")

    # this engine, Laplace
    _, first_l = timed(inference.fit, df, "chinchilla", method="laplace", seed=1, **budget)
    lap, second_l = timed(inference.fit, df, "chinchilla", method="laplace", seed=0, **budget)
    res["laplace"] = dict(first_s=first_l, second_s=second_l,
                          medians={k: float(lap.posterior[k].median()) for k in PARAMS},
                          sd_ratio={k: float(lap.posterior[k].std() / fit.posterior[k].std()) for k in PARAMS})
    say(f"engine Laplace    : first {first_l:6.1f} s, second {second_l:5.2f} s, sd ratio to NUTS "
        + ", ".join(f"{k} {v:.2f}" for k, v in res["laplace"]["sd_ratio"].items()))

    if "plain" not in skip:
        post, t_plain, div = plain_numpyro(df, 1000, 1000)
        ess_p = min_ess(post)
        shift = {k: float((post[k].median() - fit.posterior[k].median()) / fit.posterior[k].std()) for k in PARAMS}
        res["plain_numpyro"] = dict(seconds_incl_compile=t_plain, min_ess=ess_p, ess_per_s=ess_p / t_plain,
                                    max_rhat=max_rhat(post), divergences=div, median_shift_in_sd=shift)
        say(f"plain numpyro NUTS: {t_plain:6.1f} s (1000+1000, compile incl.), min ESS {ess_p:6.0f}, ESS/s {ess_p / t_plain:7.1f}; "
            f"engine is {t_plain / second:.0f}x faster, {(ess / second) / (ess_p / t_plain):.0f}x in ESS/s; "
            "median shifts (plain - engine, in posterior SD): " + ", ".join(f"{k} {v:+.2f}" for k, v in shift.items()))

    if "bootstrap" not in skip:
        try:
            resamples = 20 if args.quick else 100
            best, t_fit, t_boot, boot = point_fit_bootstrap(df, resamples)
            res["point_fit_bootstrap"] = dict(point_fit_s=t_fit, bootstrap_s=t_boot, resamples=resamples,
                                              per_resample_s=t_boot / resamples, params=best,
                                              bootstrap_sd={k: float(boot[k].std()) for k in PARAMS})
            say(f"point fit + boot  : fit {t_fit:5.2f} s, {resamples} resamples {t_boot:6.1f} s "
                f"({t_boot / resamples:.2f} s each; 1000 would take {1000 * t_boot / resamples:.0f} s)")
        except ImportError as exc:
            res["point_fit_bootstrap"] = f"skipped: {exc}"
            say(f"point fit + boot  : skipped ({exc})")

    if "nutpie" not in skip:
        try:
            post_n, t_comp, t_samp, div_n = pymc_nutpie(df, 1000, 1000)
        except ImportError as exc:
            res["nutpie"] = f"skipped: {exc} (pip install pymc nutpie)"
            say(f"PyMC + nutpie     : {res['nutpie']}")
        else:
            total = t_comp + t_samp
            ess_n = min_ess(post_n)
            shift = {k: float((post_n[k].median() - fit.posterior[k].median()) / fit.posterior[k].std()) for k in PARAMS}
            res["nutpie"] = dict(compile_s=t_comp, sample_s=t_samp, seconds_incl_compile=total, min_ess=ess_n,
                                 ess_per_s=ess_n / total, max_rhat=max_rhat(post_n), divergences=div_n,
                                 median_shift_in_sd=shift, ratio_time=total / second,
                                 ratio_ess_per_s=(ess / second) / (ess_n / total))
            say(f"PyMC + nutpie     : {total:6.1f} s (compile {t_comp:.1f} s + sampling {t_samp:.1f} s, 1000+1000), "
                f"min ESS {ess_n:6.0f}, ESS/s {ess_n / total:7.1f}, divergences {div_n}; engine is "
                f"{total / second:.0f}x faster, {res['nutpie']['ratio_ess_per_s']:.0f}x in ESS/s")

    if "size" not in skip:
        res["data_size"] = {}
        for n in ([240, 2400] if args.quick else [240, 2400, 24000]):
            d = synthetic_chinchilla(n, seed=n)
            _, t1 = timed(inference.fit, d, "chinchilla", seed=1, prior_samples=100, **budget)
            f, t2 = timed(inference.fit, d, "chinchilla", seed=0, prior_samples=100, **budget)
            e = min_ess(f.posterior)
            res["data_size"][n] = dict(first_s=t1, second_s=t2, min_ess=e)
            say(f"data size {n:6d}  : first {t1:6.1f} s, second {t2:6.2f} s, min ESS {e:6.0f}")

    if "groups" not in skip:
        res["groups"] = {}
        for G in ([1, 10] if args.quick else [1, 10, 100]):
            d = synthetic_chinchilla(24 * G, seed=G, groups=G) if G > 1 else synthetic_chinchilla(24, seed=1)
            kw = dict(group="group", pooling={"E": "pooled", "A": "shared", "B": "shared", "alpha": "shared", "beta": "shared"}) if G > 1 else {}
            _, t1 = timed(inference.fit, d, "chinchilla", seed=1, prior_samples=100, **kw, **budget)
            f, t2 = timed(inference.fit, d, "chinchilla", seed=0, prior_samples=100, **kw, **budget)
            e = min_ess(f.posterior)
            res["groups"][G] = dict(points=len(d), first_s=t1, second_s=t2, min_ess=e,
                                    divergences=int(f.sample_stats["diverging"].sum()))
            say(f"groups {G:4d} ({len(d):5d} pts): first {t1:6.1f} s, second {t2:6.2f} s, min ESS {e:6.0f}")

    if "many" not in skip:
        res["fit_many"] = {}
        one_df = small_curve(0)
        _, t1 = timed(inference.fit, one_df, "power_law", seed=1, prior_samples=0, **budget)
        one, t_one = timed_median(inference.fit, one_df, "power_law", prior_samples=0, **budget)
        steps = float(one.sample_stats["n_steps"].mean())
        res["fit_many"]["one_fit"] = dict(first_s=t1, second_s=t_one, steps=steps)
        say(f"one small curve   : first {t1:6.1f} s, second {t_one:5.2f} s (median of 3), {steps:.1f} leapfrog steps per draw")
        for K in ([10, 100] if not args.quick else [10, 30]):
            curves = [small_curve(k) for k in range(K)]
            row = res["fit_many"][K] = {}
            for batching in ("vmap", "joint"):
                _, f1 = timed(inference.fit_many, curves, "power_law", seed=1, batching=batching, **budget)
                fits, f2 = timed_median(inference.fit_many, curves, "power_law", batching=batching, **budget)
                worst = min(min_ess(f.posterior, ["E", "A", "alpha"]) for f in fits)
                div = sum(int(f.sample_stats["diverging"].sum()) for f in fits)
                row[batching] = dict(first_s=f1, second_s=f2, ratio_second=f2 / t_one, ratio_first=f1 / t1,
                                     worst_min_ess=worst, divergences=div)
                say(f"fit_many K={K:4d} {batching:5s}: first {f1:6.1f} s ({f1 / t1:.1f}x one first fit), second "
                    f"{f2:6.2f} s (median of 3; {f2 / t_one:.1f}x one compiled fit), worst min ESS {worst:.0f}, {div} divergences")
            # the arithmetic floor: K sets' gradients alone, vectorised, for one fit's leapfrog count
            g = gradient_seconds(curves)
            floor = g * steps * budget["num_chains"] * (budget["num_warmup"] + budget["num_samples"]) / len(jax.local_devices())
            row["gradient_floor"] = dict(gradient_s=g, floor_s=floor, ratio=floor / t_one)
            say(f"fit_many K={K:4d} floor: one vectorised gradient of all {K} sets {g * 1e6:.1f} us; x {steps:.1f} steps x "
                f"{budget['num_chains'] * (budget['num_warmup'] + budget['num_samples'])} iterations / "
                f"{len(jax.local_devices())} devices = {floor:.2f} s ({floor / t_one:.1f}x one compiled fit)")

    if "calibration" not in skip:
        M = 10 if args.quick else 30
        sets = [synthetic_chinchilla(240, seed=1000 + m) for m in range(M)]
        cover = {}
        for method in ("nuts", "laplace"):
            fits = inference.fit_many(sets, "chinchilla", method=method, seed=0, **budget)
            hits = {k: [] for k in ("E", "alpha", "beta")}
            widths = {k: [] for k in hits}
            for f in fits:
                for k in hits:
                    lo, hi = np.quantile(f.posterior[k].values.ravel(), [0.05, 0.95])
                    hits[k].append(lo <= EPOCH[k] <= hi)
                    widths[k].append(hi - lo)
            cover[method] = {k: dict(coverage90=float(np.mean(v)), mean_width=float(np.mean(widths[k]))) for k, v in hits.items()}
        res["laplace_calibration"] = dict(datasets=M, **cover)
        say(f"calibration ({M} simulated sets, 90% intervals): " + "; ".join(
            f"{m}: " + ", ".join(f"{k} cover {v['coverage90']:.2f} width {v['mean_width']:.3g}" for k, v in c.items())
            for m, c in cover.items()))

    if skip and not args.out:
        say("a partial run (--skip): figures not written (give --out to keep them)")
        return 0
    out = Path(args.out or Path(__file__).with_name(f"results-{jax.default_backend()}{'-quick' if args.quick else ''}.json"))
    out.write_text(json.dumps(res, indent=2, default=float))
    say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
