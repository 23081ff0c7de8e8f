"""The compiled fitting programs: padding, the Laplace step, retracing, fit_many, method="laplace".

Budgets are small and shared (``BUDGET``) so the tests reuse one compiled program per method.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import jax
import jax.numpy as jnp

from bayes_scaling import engine, inference
from bayes_scaling.laplace import find_map, whitening

BUDGET = dict(num_chains=2, num_warmup=200, num_samples=250, prior_samples=20)
TRUE = dict(E=1.8, alpha=0.3)


def _curve(seed: int, n: int = 30, noise: float = 0.01):
    """A power law over compute whose reducible term falls from about 1.5 to 0.02 nats."""
    rng = np.random.default_rng(seed)
    E = TRUE["E"] * np.exp(0.1 * rng.standard_normal())
    alpha = TRUE["alpha"] * np.exp(0.1 * rng.standard_normal())
    A = 1.5 * np.exp(0.2 * rng.standard_normal()) * 1e15**alpha
    C = np.geomspace(1e15, 1e21, n)
    loss = (E + A * C**-alpha) * np.exp(noise * rng.standard_normal(n))
    return pd.DataFrame({"C": C, "loss": loss}), {"E": E, "A": A, "alpha": alpha}


def _fit(df, **kw):
    return inference.fit(df, "power_law", **{**BUDGET, **kw})


# --------------------------------------------------------------------------- padding


def test_bucket_sizes_waste_at_most_an_eighth():
    sizes = {n: engine.bucket_size(n) for n in range(1, 5000)}
    assert all(b >= n for n, b in sizes.items())
    assert all(b - n < max(8, n / 8) for n, b in sizes.items())
    assert len(set(sizes.values())) < 60  # few programs for many sizes
    with pytest.raises(ValueError, match="at least one data point"):
        engine.bucket_size(0)


def test_padding_masks_rows_with_finite_values():
    x, y, g, mask = engine.pad_inputs({"C": np.log([1e18, 1e19, 1e20])}, np.log([2.5, 2.2, 2.0]), np.array([0, 1, 1]), 8)
    assert x["C"].shape == y.shape == g.shape == mask.shape == (8,)
    assert mask.tolist() == [True] * 3 + [False] * 5
    assert np.all(np.isfinite(x["C"])) and np.all(np.isfinite(y))
    assert g[3:].tolist() == [0] * 5


# --------------------------------------------------------------------------- Laplace step


def test_find_map_and_whitening_on_a_gaussian():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((4, 4))
    precision = jnp.asarray(q @ q.T + np.diag([1e4, 1.0, 1e-1, 10.0]), jnp.float32)  # badly scaled
    mode = jnp.asarray([0.5, -3.0, 20.0, 1.0], jnp.float32)

    def potential(u):
        d = u - mode
        return 0.5 * d @ precision @ d

    result = jax.jit(lambda u0: find_map(potential, u0))(jnp.zeros(4, jnp.float32))
    assert bool(result.converged)
    np.testing.assert_allclose(result.u, mode, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(result.hessian, precision, rtol=2e-3, atol=2e-2)
    L = whitening(result.hessian)
    np.testing.assert_allclose(L @ L.T @ precision, np.eye(4), atol=5e-3)


def test_whitening_survives_indefinite_and_nonfinite_hessians():
    L = whitening(jnp.asarray([[2.0, 0.0], [0.0, -4.0]]))
    np.testing.assert_allclose(np.abs(np.diag(L @ L.T)), [0.5, 0.25], rtol=1e-5)
    np.testing.assert_allclose(whitening(jnp.asarray([[np.nan, 0.0], [0.0, 1.0]])), np.eye(2), atol=1e-6)


# --------------------------------------------------------------------------- diagnostics


def test_diagnostics_are_arviz_estimators():
    """The warnings and the summary table read the same numbers: arviz's rank-normalised split
    R-hat and bulk ESS (the diagnostics once had their own numpy estimators, which could disagree)."""
    import arviz as az
    import xarray as xr

    rng = np.random.default_rng(1)
    x = np.zeros((3, 500, 2))
    for t in range(1, 500):  # AR(1) chains: ESS well below the draw count
        x[:, t] = 0.8 * x[:, t - 1] + rng.standard_normal((3, 2))
    x[2] += 0.3  # one chain shifted: R-hat above 1
    post = xr.Dataset({"E": (("chain", "draw", "k"), x)})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((3, 500), bool))})
    d = inference.diagnostics(post, stats)
    assert d["min_ess"] == pytest.approx(float(az.ess(post, method="bulk")["E"].min()), rel=1e-12)
    assert d["max_rhat"] == pytest.approx(float(az.rhat(post, method="rank")["E"].max()), rel=1e-12)
    assert d["max_rhat"] > 1.01 and d["min_ess"] < 500


# --------------------------------------------------------------------------- compiled programs


@pytest.mark.filterwarnings("ignore:max R-hat:RuntimeWarning")  # about tracing, not convergence
def test_same_shaped_fits_trace_the_model_once():
    df, _ = _curve(0)
    _fit(df, seed=0)
    before = dict(inference.TRACE_COUNTS)
    other, _ = _curve(1, n=27)  # other values, other size, same bucket (32 rows)
    idata = _fit(other, seed=1)
    assert inference.TRACE_COUNTS == before
    assert idata.posterior.sizes["chain"] == 2 and idata.posterior.sizes["draw"] == 250
    assert idata.log_likelihood["log_loss"].shape == (2, 250, 27)
    assert idata.prior_predictive["log_loss"].shape == (1, 20, 27)


@pytest.mark.filterwarnings("ignore:max R-hat:RuntimeWarning")  # about tracing, not convergence
def test_power_law_over_n_traces_once_for_two_same_shaped_data_sets():
    """``get_law("power_law:N")`` returns one spec per covariate, so the compiled program is reused."""
    from bayes_scaling.laws import get_law

    assert get_law("power_law:N") is get_law("power_law:N")
    a = inference.prepare(_curve(0)[0].rename(columns={"C": "N"}), "power_law:N")
    b = inference.prepare(_curve(1)[0].rename(columns={"C": "N"}), "power_law:N")
    assert a.spec.structure == b.spec.structure
    inference.fit(_curve(0)[0].rename(columns={"C": "N"}), "power_law:N", **BUDGET, seed=0)
    before = inference.TRACE_COUNTS["power_law:N"]
    inference.fit(_curve(2)[0].rename(columns={"C": "N"}), "power_law:N", **BUDGET, seed=1)
    assert inference.TRACE_COUNTS["power_law:N"] == before


def test_subset_fits_with_pad_to_share_one_program():
    """Fits of 20, 26 and 40 rows (three buckets) padded to 40 rows trace the model once, and a
    discrepancy calibration over three cuts of the 40 rows runs on that same program."""
    from bayes_scaling import predict

    budget = dict(num_chains=2, num_warmup=200, num_samples=250)
    df, _ = _curve(3, n=40)
    before = inference.TRACE_COUNTS.get("power_law", 0)
    first = inference.fit(df.iloc[:20], "power_law", seed=0, prior_samples=0, pad_to=len(df), **budget)
    once = inference.TRACE_COUNTS["power_law"] - before
    assert once > 0
    inference.fit(df.iloc[:26], "power_law", seed=1, prior_samples=0, pad_to=len(df), **budget)
    inference.fit(df, "power_law", seed=2, prior_samples=0, **budget)
    # masked padding rows do not enter the likelihood: 20 pointwise terms, all finite
    assert first.log_likelihood["log_loss"].shape == (2, 250, 20)
    assert np.isfinite(first.log_likelihood["log_loss"].values).all()
    disc = predict.calibrate_discrepancy(df, "power_law", method="nuts", **budget)
    assert len(disc.details["cuts"]) == 3, disc.details
    for cut in disc.details["cuts"]:  # each NUTS refit records how well its chains agree
        assert cut["max_rhat"] >= 0.99 and cut["min_ess"] > 0 and cut["divergences"] >= 0
    assert inference.TRACE_COUNTS["power_law"] - before == once


@pytest.mark.filterwarnings("ignore:max R-hat:RuntimeWarning")  # about program files, not convergence
def test_program_files_are_written_and_reused(tmp_path, monkeypatch):
    """With a program-file directory, a fit saves its traced program; a process that finds the
    file runs it without tracing the model, and gets the same draws."""
    monkeypatch.setenv("BAYES_SCALING_PROGRAM_CACHE", str(tmp_path))
    df, _ = _curve(4)
    first = _fit(df, seed=0)
    files = list(tmp_path.glob("*.jaxprog"))
    assert len(files) == 1
    for key in [k for k in engine._PROGRAMS if k[0] == "file"]:
        engine._PROGRAMS.pop(key)  # as in a new process: only the file remains
    before = dict(inference.TRACE_COUNTS)
    again = _fit(df, seed=0)
    assert inference.TRACE_COUNTS == before
    np.testing.assert_array_equal(again.posterior["alpha"].values, first.posterior["alpha"].values)


def test_nuts_fit_recovers_a_curve_without_divergences():
    df, true = _curve(2)
    idata = _fit(df, seed=2)
    post = idata.posterior
    assert int(idata.sample_stats["diverging"].sum()) == 0
    assert float(idata.sample_stats["n_steps"].mean()) < 20  # whitened: short trajectories
    d = inference.diagnostics(post, idata.sample_stats, ["E", "A", "alpha"])
    # 2 chains x 250 draws: over seeds 0-15 this fit's max R-hat ran from 1.001 to 1.018 (90%
    # of them below 1.009), and 1.021 once the last bit of rounding changed; a sampler that
    # does not mix reads far above 1.03
    assert d["max_rhat"] < 1.03 and d["min_ess"] > 150
    for name, value in true.items():
        draws = post[name].values.ravel()
        assert abs(np.median(draws) - value) < 4 * draws.std(), name


@pytest.mark.filterwarnings("ignore:max R-hat:RuntimeWarning")  # 2 short chains; agreement checked below
def test_laplace_method_has_the_nuts_layout_and_agrees():
    df, _ = _curve(3)
    nuts = _fit(df, seed=3)
    laplace = _fit(df, seed=3, method="laplace")
    assert laplace.posterior.attrs["method"] == "laplace" and nuts.posterior.attrs["method"] == "nuts"
    assert set(laplace.groups()) == set(nuts.groups())
    for group in nuts.groups():
        a, b = nuts[group], laplace[group]
        assert set(a.data_vars) == set(b.data_vars), group
        for name in a.data_vars:
            assert a[name].dims == b[name].dims and a[name].shape == b[name].shape, (group, name)
    for name in ("E", "alpha"):
        ref = nuts.posterior[name].values.ravel()
        approx = laplace.posterior[name].values.ravel()
        assert abs(np.median(approx) - np.median(ref)) < 0.5 * ref.std(), name
        assert 0.5 < approx.std() / ref.std() < 2.0, name


def test_unknown_batching_is_refused():
    with pytest.raises(ValueError, match="batching must be one of vmap, joint; got 'lockstep'"):
        inference.fit_many([_curve(0)[0]], "power_law", batching="lockstep")


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown method 'mcmc'"):
        _fit(_curve(0)[0], method="mcmc")


@pytest.mark.filterwarnings("ignore:max R-hat:RuntimeWarning")  # 2 short chains; bounded below
@pytest.mark.parametrize("batching", ["vmap", "joint"])
def test_fit_many_recovers_every_curve(batching):
    curves = [_curve(10 + k, n=25 + 3 * k) for k in range(3)]  # one bucket: 32 rows
    fits = inference.fit_many({f"c{k}": df for k, (df, _) in enumerate(curves)}, "power_law",
                              num_chains=2, num_warmup=200, num_samples=250, seed=0, batching=batching)
    assert list(fits) == ["c0", "c1", "c2"]
    for (df, true), idata in zip(curves, fits.values()):
        assert idata.log_likelihood["log_loss"].shape[-1] == len(df)
        assert "prior" not in idata.groups()
        d = inference.diagnostics(idata.posterior, idata.sample_stats, ["E", "A", "alpha"])
        assert d["max_rhat"] < 1.05 and d["divergences"] == 0
        for name, value in true.items():
            draws = idata.posterior[name].values.ravel()
            assert abs(np.median(draws) - value) < 4 * draws.std(), name
    # each curve is its own posterior: same data fitted alone gives the same answer
    alone = _fit(curves[1][0])  # the program of the tests above
    many = fits["c1"].posterior["alpha"].values.ravel()
    ref = alone.posterior["alpha"].values.ravel()
    assert abs(np.median(many) - np.median(ref)) < 0.5 * ref.std()


def test_diagnostics_with_too_few_draws_are_nan_and_warned():
    import xarray as xr

    post = xr.Dataset({"E": (("chain", "draw"), np.random.default_rng(0).normal(size=(4, 2)))})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((4, 2), bool))})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warnings on the way
        d = inference.diagnostics(post, stats)
    assert np.isnan(d["max_rhat"]) and np.isnan(d["min_ess"]) and d["divergences"] == 0
    with pytest.warns(RuntimeWarning, match="2 draws per chain are too few"):
        inference._warn_diagnostics(post, stats, None)


# --------------------------------------------------------------------------- jittered static HMC


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), True, "long"])
def test_bad_trajectory_length_is_refused(bad):
    with pytest.raises(ValueError, match="trajectory_length must be a positive number, .auto. or None"):
        engine.SamplerSettings(trajectory_length=bad)


def test_jittered_hmc_draws_the_nuts_posterior():
    """Static HMC with a jittered trajectory samples the same posterior as NUTS: medians within
    half a posterior SD and spreads within 25% (each from 2 x 1,000 draws, whose Monte Carlo
    errors are a few hundredths of an SD), its trajectories vary in length and none runs past
    NUTS's deepest tree."""
    df = _curve(3)[0]
    budget = dict(num_chains=2, num_warmup=300, num_samples=1000, prior_samples=0, seed=0)
    nuts = _fit(df, **budget)
    hmc = _fit(df, trajectory_length=3.0, **budget)
    d = inference.diagnostics(hmc.posterior, hmc.sample_stats, ["E", "A", "alpha"])
    assert d["divergences"] == 0 and d["max_rhat"] < 1.02
    for name in ("E", "A", "alpha"):
        ref = np.log(nuts.posterior[name].values.ravel())
        new = np.log(hmc.posterior[name].values.ravel())
        assert abs(np.median(new) - np.median(ref)) < 0.5 * ref.std(), name
        assert 0.75 < new.std() / ref.std() < 1.25, name
    steps = hmc.sample_stats["n_steps"].values
    assert len(np.unique(steps)) > 3 and steps.max() <= 2**10 - 1
    assert not np.array_equal(steps[0], steps[1])  # one fit: each chain draws its own lengths
    assert hmc.posterior.attrs["trajectory_length"] == 3.0
    assert "trajectory_length" not in nuts.posterior.attrs  # one curve: NUTS by default
    # static HMC's chains share the smallest adapted step size; NUTS's chains keep their own
    assert np.unique(hmc.sample_stats["step_size"].values).size == 1
    assert np.unique(nuts.sample_stats["step_size"].values).size == 2


def test_grouped_static_hmc_chains_aim_lower_from_half_way_through_warmup(monkeypatch):
    """The targets the chains' step-size adaptation is given, in the order the run sets them
    up: NUTS and static HMC aim at ``target_accept_prob`` throughout; with
    ``adapt_below_target=True`` (a grouped fit's static HMC, resolved from "auto") static HMC
    aims at it in the first half of warmup and at twice the rejection rate it allows from there
    (0.8 for 0.9, not below one half); a pilot aims at the target and the re-whitened chains at
    their own (0.95)."""
    import numpyro.infer.hmc as numpyro_hmc

    from bayes_scaling.engine import chains

    seen = []
    real = numpyro_hmc.hmc

    def spy(potential_fn, algo):
        init_kernel, sample_kernel = real(potential_fn, algo=algo)

        def init(*args, **kwargs):
            seen.append(round(float(kwargs["target_accept_prob"]), 6))
            return init_kernel(*args, **kwargs)

        return init, sample_kernel

    monkeypatch.setattr(numpyro_hmc, "hmc", spy)

    def targets(**options):
        seen.clear()
        budget = dict(num_chains=2, num_warmup=10, num_samples=5, chain_method="sequential")
        settings = engine.SamplerSettings(**budget, **options)
        chains._nuts(lambda z: 0.5 * jnp.sum(z**2), 2, jax.random.PRNGKey(0), settings, jnp.float32)
        return list(dict.fromkeys(seen))  # in order, each once

    static = dict(trajectory_length=3.0)
    assert targets(trajectory_length=None, adapt_below_target=True, pilot=False) == [0.9]
    assert targets(**static, adapt_below_target=False, pilot=False) == [0.9]
    assert targets(**static, adapt_below_target=True, pilot=False) == [0.9, 0.8]
    assert targets(**static, adapt_below_target=True, pilot=False, target_accept_prob=0.95) == [0.95, 0.9]
    assert targets(**static, adapt_below_target=True, pilot=False, target_accept_prob=0.6) == [0.6, 0.5]
    assert targets(**static, adapt_below_target=True, pilot=True) == [0.9, 0.95]
    # "auto" resolves to True for a grouped fit's static HMC only
    grouped = inference.prepare(_grouped_curves(), "power_law", group="group").spec
    one = inference.prepare(_curve(1)[0], "power_law").spec
    auto = engine.SamplerSettings()
    assert engine.resolve_settings(grouped, auto, "nuts").adapt_below_target is True
    nuts = engine.SamplerSettings(trajectory_length=None)
    assert engine.resolve_settings(grouped, nuts, "nuts").adapt_below_target is False
    assert engine.resolve_settings(one, auto, "nuts").adapt_below_target is False
    with pytest.raises(ValueError, match="adapt_below_target"):
        engine.SamplerSettings(adapt_below_target="yes")


def _grouped_curves():
    frames = [_curve(40 + k)[0].assign(group=f"g{k}") for k in range(3)]
    return pd.concat(frames, ignore_index=True)


def test_fit_many_takes_a_trajectory_length():
    # the shapes and budget of test_fit_many_recovers_every_curve[vmap], whose compiled program
    # (static HMC of length 3, the default) this fit reuses: what differs is the length asked
    sets = [_curve(20 + k, n=25 + 3 * k) for k in range(3)]
    fits = inference.fit_many([df for df, _ in sets], "power_law", num_chains=2, num_warmup=200,
                              num_samples=250, seed=0, trajectory_length=3.0)
    for (df, true), idata in zip(sets, fits):
        assert idata.posterior.attrs["trajectory_length"] == 3.0  # a length asked: no refits
        assert "refitted" not in idata.posterior.attrs
        # the sets read one schedule of lengths (SamplerSettings.shared_jitter) and a set's
        # chains share one step size after warmup: its chains take the same steps draw for draw
        steps = idata.sample_stats["n_steps"].values
        np.testing.assert_array_equal(steps[0], steps[1])
        assert len(np.unique(steps)) > 3
        draws = idata.posterior["alpha"].values.ravel()
        assert abs(np.median(draws) - true["alpha"]) < 4 * draws.std()


def test_fit_many_refits_with_nuts_the_sets_static_hmc_leaves_unconverged(monkeypatch, capsys):
    """By default fit_many samples every set with static HMC, then refits with NUTS, in one more
    compiled call over those sets only, the sets whose diagnostics fail. Here the diagnostics
    of one set's static run are made to fail (R-hat 1.5): that set alone is refitted, keeps the
    converged NUTS fit and says why; the other keeps its static-HMC fit."""
    from bayes_scaling.inference import api

    curves = {"c0": _curve(30, n=25)[0], "c1": _curve(31, n=28)[0]}  # one bucket: 32 rows
    real_diagnosed = api._diagnosed

    def diagnosed(idata, method):
        d = real_diagnosed(idata, method)
        static = "trajectory_length" in idata.posterior.attrs
        if static and idata.observed_data.sizes["point"] == 28:
            d = {**d, "max_rhat": 1.5}
        return d

    calls = []
    real_run_many = api._engine.run_many

    def run_many(spec, xs, *args, **kwargs):
        calls.append((len(xs), args[3].static_length()))
        return real_run_many(spec, xs, *args, **kwargs)

    monkeypatch.setattr(api, "_diagnosed", diagnosed)
    monkeypatch.setattr(api._engine, "run_many", run_many)
    fits = inference.fit_many(curves, "power_law", num_chains=2, num_warmup=200, num_samples=500,
                              seed=0, progress_bar=True)
    assert calls == [(2, 3.0), (1, None)]
    assert "1 of 2 sets did not converge with static HMC; refitting with NUTS" in capsys.readouterr().err
    kept, refit = fits["c0"].posterior.attrs, fits["c1"].posterior.attrs
    assert kept["trajectory_length"] == 3.0 and "refitted" not in kept
    assert "trajectory_length" not in refit
    assert refit["refitted"].startswith("static HMC (trajectory_length=3) did not converge "
                                        "(max R-hat 1.500")
    d = inference.diagnostics(fits["c1"].posterior, fits["c1"].sample_stats, ["E", "A", "alpha"])
    assert d["divergences"] == 0 and d["max_rhat"] < 1.05

    # where the NUTS refit does no better (made to fail worse here), the set keeps its static
    # draws, and its warnings name it and say that NUTS was tried (both programs are reused)
    def diagnosed_both(idata, method):
        d = real_diagnosed(idata, method)
        if idata.observed_data.sizes["point"] == 28:
            d = {**d, "max_rhat": 1.5 if "trajectory_length" in idata.posterior.attrs else 1.6}
        return d

    monkeypatch.setattr(api, "_diagnosed", diagnosed_both)
    with pytest.warns(RuntimeWarning, match=r"^max R-hat is 1\.500 \(> 1\.01\) for data set 'c1': ") as record:
        fits = inference.fit_many(curves, "power_law", num_chains=2, num_warmup=200,
                                  num_samples=500, seed=0)
    kept = fits["c1"].posterior.attrs
    assert kept["trajectory_length"] == 3.0 and "refitted" not in kept
    assert "refitted this set with NUTS, which did no better (max R-hat 1.600" in kept["nuts_refit"]
    messages = [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]
    assert all(" for data set 'c1': " in m for m in messages)
    assert any("which did no better" in m and "(num_warmup, num_samples)" in m for m in messages)
    assert not any("trajectory_length=None" in m for m in messages)  # NUTS was tried already


def test_a_covariate_fixed_within_every_group_is_named_with_the_parameters_it_hides():
    # one model size per group (a group per model): A and alpha act through N only, so within
    # a group they are one constant beside E
    rows = [
        {"model": f"m{i}", "N": n, "D": d, "loss": 2.0 + 400 * n**-0.34 + 400 * d**-0.28}
        for i, n in enumerate((1e8, 3e8, 1e9))
        for d in np.geomspace(2e9, 4e10, 6)
    ]
    data = pd.DataFrame(rows)
    with pytest.warns(RuntimeWarning, match="N takes a single value within each of the 3 groups"):
        inference.prepare(data, "chinchilla", group="model")
    with pytest.warns(RuntimeWarning) as seen:
        inference.prepare(data, "chinchilla", group="model")
    message = str(seen[0].message)
    assert "per-group alpha, A " in message and "'alpha': 'shared', 'A': 'shared'" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inference.prepare(data, "chinchilla", group="model", pooling={"A": "shared", "alpha": "shared"})
        # groups that span sizes: nothing to say
        spread = data.assign(model=np.tile(["a", "b", "c"], 6))
        inference.prepare(spread, "chinchilla", group="model")
