"""Model layer and the InferenceData layout: pooling modes, new-group draws, files."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from bayes_scaling import inference
from bayes_scaling.laws import LAWS
from bayes_scaling.models import resolve_pooling

CHIN = LAWS["chinchilla"]
TRUTH = dict(E=1.8, A=480.0, B=2000.0, alpha=0.35, beta=0.37)
SMALL = dict(num_chains=2, num_warmup=300, num_samples=300, prior_samples=50)


def two_group_data(seed=0, e_shift=0.3):
    rng = np.random.default_rng(seed)
    rows = []
    for g, E in (("a", TRUTH["E"]), ("b", TRUTH["E"] + e_shift)):
        for n in np.geomspace(3e7, 2e9, 6):
            for r in (5, 20, 80):
                p = dict(TRUTH, E=E)
                loss = float(CHIN.predict(p, {"N": n, "D": n * r})) * np.exp(0.01 * rng.standard_normal())
                rows.append((g, n, n * r, loss))
    return pd.DataFrame(rows, columns=["dataset", "N", "D", "loss"])


def test_resolve_pooling_rules():
    assert set(resolve_pooling(CHIN, None, grouped=True).values()) == {"pooled"}
    assert set(resolve_pooling(CHIN, None, grouped=False).values()) == {"shared"}
    mixed = resolve_pooling(CHIN, {"alpha": "shared"}, grouped=True)
    assert mixed["alpha"] == "shared" and mixed["E"] == "pooled"
    with pytest.raises(ValueError, match="unknown pooling 'partial'"):
        resolve_pooling(CHIN, "partial", grouped=True)
    with pytest.raises(ValueError, match=r"pooling names \['gamma'\]"):
        resolve_pooling(CHIN, {"gamma": "pooled"}, grouped=True)
    with pytest.raises(ValueError, match="needs a group column"):
        resolve_pooling(CHIN, "pooled", grouped=False)


@pytest.fixture(scope="module")
def grouped_fit():
    data = two_group_data()
    with warnings.catch_warnings():
        # two groups and a tiny budget: the population sd converges slowly; not what these tests check
        warnings.filterwarnings("ignore", message="max R-hat", category=RuntimeWarning)
        return inference.fit(data, "chinchilla", group="dataset",
                         pooling={"E": "pooled", "alpha": "shared", "beta": "shared", "A": "shared", "B": "shared"},
                         seed=1, **SMALL)


def test_inference_data_layout(grouped_fit):
    idata = grouped_fit
    for g in ("posterior", "sample_stats", "log_likelihood", "observed_data", "constant_data", "prior", "prior_predictive"):
        assert g in idata.groups()
    post = idata.posterior
    assert post["E"].dims == ("chain", "draw", "group")
    assert list(post["group"].values) == ["a", "b"]
    assert post["alpha"].dims == ("chain", "draw")
    assert {"sigma", "nu", "E_pop_loc", "E_pop_sd"} <= set(post.data_vars)
    attrs = post.attrs
    assert attrs["law"] == "chinchilla" and attrs["group_column"] == "dataset"
    assert json.loads(attrs["pooling"])["E"] == "pooled"
    assert json.loads(attrs["priors"])["params"]["alpha"]["dist"] == "lognormal"
    assert attrs["bayes_scaling_version"] and len(attrs["data_hash"]) == 16
    assert attrs["trajectory_length"] == 3.0  # a grouped fit: static HMC by default
    assert attrs["whitening"] == "locations"  # ... diagonal scales, population locations together
    assert idata.log_likelihood["log_loss"].shape == (2, 300, 36)
    assert idata.observed_data["log_loss"].shape == (36,)


def test_per_group_E_separates(grouped_fit):
    post = grouped_fit.posterior
    diff = (post["E"].sel(group="b") - post["E"].sel(group="a")).values.reshape(-1)
    # the simulated shift is 0.3; the estimate must be within 4 posterior sds of it
    assert abs(np.median(diff) - 0.3) < 4 * diff.std()
    assert (diff > 0).mean() > 0.99


def test_new_group_is_wider_than_seen_group(grouped_fit):
    seen = inference.posterior_draws(grouped_fit, group="a")
    new = inference.posterior_draws(grouped_fit, group="new", seed=3)
    assert new["E"].std() > seen["E"].std()
    np.testing.assert_array_equal(new["alpha"], seen["alpha"])  # shared parameters are shared
    with pytest.raises(ValueError, match="unknown group 'c'"):
        inference.posterior_draws(grouped_fit, group="c")
    with pytest.raises(ValueError, match="pass group="):
        inference.posterior_draws(grouped_fit)


def test_save_load_round_trip(grouped_fit, tmp_path):
    path = inference.save_fit(grouped_fit, tmp_path / "fit.nc")
    again = inference.load_fit(path)
    np.testing.assert_array_equal(again.posterior["E"].values, grouped_fit.posterior["E"].values)
    assert again.posterior.attrs["law"] == "chinchilla"
    assert not list(tmp_path.glob(".bayes-scaling-*"))  # no temporary file left behind
    with pytest.raises(FileNotFoundError):
        inference.load_fit(tmp_path / "missing.nc")
    bogus = tmp_path / "bogus.nc"
    bogus.write_text("not netcdf")
    with pytest.raises(ValueError, match="not a bayes-scaling fit file"):
        inference.load_fit(bogus)


def test_independent_parameters_have_no_new_group():
    data = two_group_data(seed=2)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="max R-hat", category=RuntimeWarning)
        idata = inference.fit(data, "chinchilla", group="dataset",
                          pooling={"E": "independent", "alpha": "shared", "beta": "shared", "A": "shared", "B": "shared"},
                          seed=0, **SMALL)
    assert idata.posterior["E"].dims[-1] == "group"
    with pytest.raises(ValueError, match="independent across groups"):
        inference.posterior_draws(idata, group="new")


@pytest.mark.filterwarnings("ignore:.*divergent transitions:RuntimeWarning")  # 2 short chains: the layout is the test
def test_normal_likelihood_and_prior_group():
    data = two_group_data().query("dataset == 'a'")
    idata = inference.fit(data, "chinchilla", likelihood="normal", seed=0, **SMALL)
    assert "nu" not in idata.posterior
    assert idata.prior["E"].shape == (1, 50)
    assert idata.prior_predictive["log_loss"].shape == (1, 50, len(data))
    with pytest.raises(ValueError, match="unknown likelihood"):
        inference.fit(data, "chinchilla", likelihood="cauchy")


def test_the_block_layout_has_the_gathered_layouts_density():
    # the engine runs grouped fits with each group's rows in a block (no gather); the model's
    # log density there must equal the one on the data's own rows, at any parameter values
    from numpyro.infer.util import log_density

    from bayes_scaling.engine.settings import group_blocks, pad_inputs
    from bayes_scaling.models import build_model

    data = two_group_data().sample(frac=1.0, random_state=3)  # groups interleaved
    extra = data[data["dataset"] == "a"].iloc[:5].assign(loss=lambda f: f["loss"] * 1.01)
    data = pd.concat([data, extra])  # unequal group sizes
    inputs = inference.prepare(data, "chinchilla", group="dataset")
    model = build_model(inputs.spec)
    flat = pad_inputs(inputs.x, inputs.y, inputs.group_index, inputs.num_points + 3)
    blocks = group_blocks(inputs.x, inputs.y, inputs.group_index, inputs.spec.num_groups)
    assert len(blocks.y) > inputs.num_points and blocks.mask.sum() == inputs.num_points
    rng = np.random.default_rng(0)
    for i in range(3):
        params = {
            "alpha_pop_loc": np.log(0.3) + 0.1 * rng.standard_normal(),
            "alpha_pop_sd": 0.1 + rng.random(),
            "alpha_z": rng.standard_normal(2),
            "beta_pop_loc": np.log(0.3) + 0.1 * rng.standard_normal(),
            "beta_pop_sd": 0.1 + rng.random(),
            "beta_z": rng.standard_normal(2),
            "E_pop_loc": np.log(1.8) + 0.1 * rng.standard_normal(),
            "E_pop_sd": 0.1 + rng.random(),
            "E_z": rng.standard_normal(2),
            "A_pop_loc": 6.0 + rng.standard_normal(),
            "A_pop_sd": 0.1 + rng.random(),
            "A_z": rng.standard_normal(2),
            "B_pop_loc": 7.0 + rng.standard_normal(),
            "B_pop_sd": 0.1 + rng.random(),
            "B_z": rng.standard_normal(2),
            "sigma": 0.01 + 0.02 * rng.random(),
            "nu": 2.0 + 5 * rng.random(),
        }
        gathered, trace_g = log_density(model, (flat[0], flat[1], flat[2], flat[3]), {}, params)
        blocked, trace_b = log_density(model, (blocks.x, blocks.y, None, blocks.mask), {}, params)
        np.testing.assert_allclose(float(blocked), float(gathered), rtol=1e-5)
        # and point by point, in the data's order once put back
        site = "log_loss"
        per_g = np.asarray(trace_g[site]["fn"].log_prob(trace_g[site]["value"]))[: inputs.num_points]
        per_b = blocks.pointwise(np.asarray(trace_b[site]["fn"].log_prob(trace_b[site]["value"])))
        np.testing.assert_allclose(per_b, per_g, rtol=1e-5, atol=1e-5)


def test_a_grouped_fits_pointwise_log_likelihood_is_in_the_datas_order(grouped_fit):
    from scipy import stats

    data = two_group_data()
    post = grouped_fit.posterior.isel(chain=0, draw=slice(0, 5))
    ll = grouped_fit.log_likelihood["log_loss"].isel(chain=0, draw=slice(0, 5)).values
    assert ll.shape == (5, len(data))
    for s in range(5):
        group = post["E"].isel(draw=s).sel(group=data["dataset"].to_numpy()).values
        p = {k: float(post[k].isel(draw=s)) for k in ("alpha", "beta", "A", "B")}
        mu = np.log(group + p["A"] * data["N"] ** -p["alpha"] + p["B"] * data["D"] ** -p["beta"])
        expected = stats.t.logpdf(
            np.log(data["loss"]), float(post["nu"].isel(draw=s)), mu, float(post["sigma"].isel(draw=s))
        )
        np.testing.assert_allclose(ll[s], expected, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("df, wrong_df", [(0.8, 1.6), (2.0, 4.0), (5.0, 10.0), (40.0, 4.0)])
def test_the_likelihoods_student_t_draws_are_student_t(df, wrong_df):
    """The model's Student-t draws (prior and posterior predictive) follow Student's t: a
    Kolmogorov-Smirnov test at 20,000 draws (fixed seed), with a threshold far from chance
    (p < 1e-4 would be rejected), and a wrong degree of freedom is told apart."""
    import jax
    from scipy import stats

    from bayes_scaling.models import _polar_student_t

    t = _polar_student_t()(df, 1.5, 0.2)
    draws = np.asarray(t.sample(jax.random.PRNGKey(3), (20_000,)), dtype=np.float64)
    assert np.all(np.isfinite(draws))
    assert stats.kstest(draws, stats.t(df, 1.5, 0.2).cdf).pvalue > 1e-4
    assert stats.kstest(draws, stats.t(wrong_df, 1.5, 0.2).cdf).pvalue < 1e-4
    # the density is numpyro's Student-t
    import numpyro.distributions as dist

    x = np.linspace(0.0, 3.0, 7)
    np.testing.assert_allclose(t.log_prob(x), dist.StudentT(df, 1.5, 0.2).log_prob(x), rtol=1e-6)


def test_student_t_draws_stay_finite_at_tiny_degrees_of_freedom():
    import jax

    from bayes_scaling.models import _polar_student_t

    draws = _polar_student_t()(0.05, 0.0, 1.0).sample(jax.random.PRNGKey(0), (10_000,))
    assert np.all(np.isfinite(np.asarray(draws)))
