"""Predictions at new covariates: bands, groups, the discrepancy, the frontier, bad points."""

import dataclasses
import json
import math
import warnings

import arviz as az
import jax
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_scaling import inference
from bayes_scaling import predict as P
from bayes_scaling.data import DataError
from bayes_scaling.laws import LAWS
from bayes_scaling.predict import calibrate as PC
from bayes_scaling.predict import refits as PR

CHIN = LAWS["chinchilla"]
EPOCH = {
    "E": 1.817,
    "A": 482.0,
    "B": 2085.0,
    "alpha": 0.348,
    "beta": 0.366,
}  # Besiroglu et al. 2024
SMALL = {"num_chains": 2, "num_warmup": 300, "num_samples": 300, "prior_samples": 0}


def fake_fit(params, *, sigma=0.01, nu=None, chains=2, draws=500, train=None, law=CHIN, seed=0):
    """An InferenceData with the contract's layout whose posterior is given (constants or arrays)."""
    rng = np.random.default_rng(seed)
    if train is None:
        n = np.geomspace(1e8, 1e9, 5).repeat(3)
        train = pd.DataFrame({"N": n, "D": n * np.tile([10.0, 20.0, 40.0], 5)})
        train["loss"] = np.asarray(law.predict({k: np.median(v) for k, v in params.items()}, train))
    post = {}
    for k in list(law.param_names) + ["sigma"] + (["nu"] if nu is not None else []):
        v = params.get(k, sigma if k == "sigma" else nu)
        post[k] = (
            ("chain", "draw"),
            np.broadcast_to(np.asarray(v, dtype=float), (chains * draws,))
            .reshape(chains, draws)
            .copy(),
        )
    posterior = xr.Dataset(post, coords={"chain": np.arange(chains), "draw": np.arange(draws)})
    posterior.attrs.update(
        {
            "law": law.name,
            "priors": law.priors.to_json(),
            "likelihood": "student_t" if nu is not None else "normal",
            "pooling": json.dumps({p: "shared" for p in law.param_names}),
            "group_column": "",
            "groups": "[]",
            "covariates": json.dumps(list(law.covariates)),
            "target": law.target,
            "reference": json.dumps({c: float(np.log(train[c]).mean()) for c in law.covariates}),
        }
    )
    point = np.arange(len(train))
    const = xr.Dataset(
        {c: (("point",), train[c].to_numpy(dtype=float)) for c in law.covariates},
        coords={"point": point},
    )
    obs = xr.Dataset(
        {f"log_{law.target}": (("point",), np.log(train[law.target].to_numpy(dtype=float)))},
        coords={"point": point},
    )
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool))})
    del rng
    return az.InferenceData(
        posterior=posterior, constant_data=const, observed_data=obs, sample_stats=stats
    )


# --------------------------------------------------------------------------- predict on fixed draws


def test_predict_layout_and_law_mean_is_exact():
    fit = fake_fit(EPOCH, sigma=0.01)
    pts = pd.DataFrame({"N": [1e9, 7e10], "D": [2e10, 1.4e12]})
    pred = P.predict(fit, pts, discrepancy=None, quantiles=(0.05, 0.5, 0.95), seed=1)
    for k in P.KINDS:
        assert pred[k].dims == ("chain", "draw", "point")
        assert pred[f"{k}_quantiles"].dims == ("quantile", "point")
        assert pred[f"{k}_mean"].dims == ("point",)
    expected = np.asarray(CHIN.predict(EPOCH, pts))
    np.testing.assert_allclose(pred["law_mean"].values[0, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(pred["law_mean"].std(("chain", "draw")).values, 0.0, atol=1e-6)
    # no discrepancy: the structural mean is the law mean; the new run adds normal noise of sd sigma (log scale)
    np.testing.assert_allclose(pred["structural_mean"].values, pred["law_mean"].values)
    log_noise = np.log(pred["new_run"].values / pred["law_mean"].values).reshape(-1, 2)
    se = 0.01 / math.sqrt(2 * 1000)
    assert abs(log_noise.std(axis=0) - 0.01).max() < 4 * se * math.sqrt(2)
    assert abs(log_noise.mean(axis=0)).max() < 4 * se
    np.testing.assert_allclose(pred["N"].values, pts["N"].values)
    assert pred.attrs["law"] == "chinchilla" and pred.attrs["discrepancy"] == ""


def test_predict_student_t_noise_quantiles():
    fit = fake_fit(EPOCH, sigma=0.02, nu=4.0, chains=4, draws=2000)
    pred = P.predict(fit, {"N": [1e9], "D": [2e10]}, discrepancy=None, seed=0)
    z = np.log(pred["new_run"].values / pred["law_mean"].values).reshape(-1) / 0.02
    from scipy import stats

    q = np.quantile(z, [0.05, 0.95])
    np.testing.assert_allclose(
        q, stats.t.ppf([0.05, 0.95], 4.0), atol=0.12
    )  # MC error of 8000 draws


def test_predict_kind_and_quantile_validation():
    fit = fake_fit(EPOCH)
    pred = P.predict(fit, {"N": [1e9], "D": [2e10]}, kind="new_run", discrepancy=None)
    assert "new_run" in pred and "law_mean" not in pred
    with pytest.raises(ValueError, match="unknown kind"):
        P.predict(fit, {"N": [1e9], "D": [2e10]}, kind="posterior", discrepancy=None)
    with pytest.raises(ValueError, match=r"quantiles must be in \(0, 1\)"):
        P.predict(fit, {"N": [1e9], "D": [2e10]}, quantiles=(0.5, 1.5), discrepancy=None)
    with pytest.raises(ValueError, match="discrepancy must be"):
        P.predict(fit, {"N": [1e9], "D": [2e10]}, discrepancy="big")


@pytest.mark.parametrize(
    "points, match",
    [
        (pd.DataFrame({"N": [1e9]}), r"points lack covariate 'D' required by law 'chinchilla'"),
        (pd.DataFrame({"N": [1e9], "C": [1e21]}), r"derive it as D = C / \(6 N\)"),
        (
            pd.DataFrame({"N": [1e9, -1.0], "D": [2e10, 2e10]}),
            r"points column 'N' must be > 0 .*first at row 1",
        ),
        (pd.DataFrame({"N": [1e9, 0.0, 0.0], "D": [2e10] * 3}), r"found 2 non-positive values"),
        (
            pd.DataFrame({"N": [1e9], "D": [np.nan]}),
            r"points column 'D' has 1 missing or non-numeric value",
        ),
        (pd.DataFrame({"N": [], "D": []}), r"no points to predict at"),
    ],
)
def test_predict_rejects_points_outside_the_domain(points, match):
    fit = fake_fit(EPOCH)
    with pytest.raises(DataError, match=match):
        P.predict(fit, points, discrepancy=None)


def test_predict_group_errors_for_ungrouped_fit():
    fit = fake_fit(EPOCH)
    with pytest.raises(ValueError, match="this fit has no groups"):
        P.predict(fit, {"N": [1e9], "D": [2e10]}, group="a", discrepancy=None)


def test_predict_is_reproducible_with_rng_key():
    fit = fake_fit(EPOCH)
    pts = {"N": [1e9, 1e11], "D": [2e10, 3e12]}
    a = P.predict(fit, pts, discrepancy=0.01, rng_key=jax.random.PRNGKey(3))
    b = P.predict(fit, pts, discrepancy=0.01, rng_key=jax.random.PRNGKey(3))
    c = P.predict(fit, pts, discrepancy=0.01, rng_key=jax.random.PRNGKey(4))
    np.testing.assert_array_equal(a["new_run"].values, b["new_run"].values)
    assert not np.array_equal(a["new_run"].values, c["new_run"].values)


# --------------------------------------------------------------------------- the discrepancy


def test_discrepancy_distance_and_json_roundtrip():
    train = pd.DataFrame({"N": [1e8, 1e9], "D": [1e9, 1e10]})
    disc = P.Discrepancy.fixed(0.01, CHIN, train)
    assert disc.coordinates == ("N", "D", "N*D")
    inside = disc.distance({"N": [3e8], "D": [3e9]})
    np.testing.assert_allclose(inside, 0.0)
    # N at 1e10 is one decade above the largest N; N*D = 1e20 is 1 decade above 1e19
    d = disc.distance({"N": [1e10, 1e7, 1e9], "D": [1e10, 1e9, 1e11]})
    np.testing.assert_allclose(d, [math.log(10), math.log(10), math.log(10)], rtol=1e-12)
    # the largest excess over the coordinates: here N*D is two decades out
    np.testing.assert_allclose(
        disc.distance({"N": [1e10], "D": [1e11]}), [2 * math.log(10)], rtol=1e-12
    )
    again = P.Discrepancy.from_json(disc.to_json())
    assert (
        again == dataclasses.replace(disc, details=again.details) and again.details == disc.details
    )
    assert again.tau_quantile(0.5) == 0.01
    with pytest.raises(ValueError, match="tau must be a finite number >= 0"):
        P.Discrepancy.fixed(-0.1, CHIN, train)


def test_discrepancy_widens_with_distance_and_leaves_the_median():
    fit = fake_fit(EPOCH, sigma=0.005, chains=4, draws=2000)
    train = P.fit_data(fit)
    n_max, d_max = train["N"].max(), train["D"].max()
    pts = {"N": [n_max, n_max * 10, n_max * 100], "D": [d_max, d_max * 10, d_max * 100]}
    pred = P.predict(fit, pts, discrepancy=0.01, seed=2)
    dist = pred["distance"].values
    np.testing.assert_allclose(dist, [0.0, 2 * math.log(10), 4 * math.log(10)], atol=1e-9)
    log_delta = np.log(pred["structural_mean"].values / pred["law_mean"].values).reshape(-1, 3)
    sd = log_delta.std(axis=0)
    assert sd[0] == 0.0
    np.testing.assert_allclose(sd[1:], 0.01 * dist[1:], rtol=0.08)  # 8000 draws: sd error about 1%
    # one random slope per draw: the discrepancy is a straight line in distance
    np.testing.assert_allclose(log_delta[:, 2], 2 * log_delta[:, 1], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(pred["discrepancy_sd"].values, 0.01 * dist)
    w = pred["new_run_quantiles"].sel(quantile=0.95) - pred["new_run_quantiles"].sel(quantile=0.05)
    assert np.all(np.diff(w.values / pred["law_mean"].values[0, 0]) > 0)


def test_discrepancy_is_recorded_on_the_fit():
    fit = fake_fit(EPOCH)
    disc = P.Discrepancy.fixed(0.02, CHIN, P.fit_data(fit))
    P.attach_discrepancy(fit, disc)
    assert P.get_discrepancy(fit, "auto") == P.Discrepancy.from_json(disc.to_json())
    assert P.get_discrepancy(fit, None) is None
    P.attach_discrepancy(fit, None)
    assert P.DISCREPANCY_ATTR not in fit.posterior.attrs


def test_predict_on_the_command_line_names_directions_the_calibration_never_saw():
    """``bayes-scaling predict`` says when its points leave the training runs in a direction that
    none of the stored discrepancy's pseudo-futures left theirs in, and is silent otherwise."""
    from bayes_scaling.cli.predicting import _unlearned_directions

    fit = fake_fit(EPOCH)
    train = P.fit_data(fit)
    box = P.Discrepancy.fixed(0.02, CHIN, train)
    cuts = [{"cut": 0.7, "beyond_in": {"N*D": 12}}, {"cut": 0.8, "beyond_in": {"N,D": 3}}]
    P.attach_discrepancy(fit, dataclasses.replace(box, details={"cuts": cuts}))
    n_mid, d_max = float(np.median(train["N"])), float(train["D"].max())
    more_tokens = P.predict(fit, {"N": [n_mid], "D": [d_max * 4]}, seed=0)
    assert _unlearned_directions(more_tokens) == (
        "the points leave the training runs in D (1); the discrepancy's pseudo-futures left "
        "theirs in N*D (12), N and D (3): its width beyond in D is carried over, not learned; "
        "cuts along D as well learn it there (--calibration-axes scale,D)"
    )
    both = P.predict(fit, {"N": [train["N"].max() * 4], "D": [d_max * 4]}, seed=0)
    assert _unlearned_directions(both) == ""  # N and D: seen in the cut at 0.8
    P.attach_discrepancy(fit, box)  # a fixed tau: no cuts, nothing to compare
    assert _unlearned_directions(P.predict(fit, {"N": [n_mid], "D": [d_max * 4]})) == ""


def test_calibration_with_too_few_runs_warns_and_uses_the_prior():
    train = pd.DataFrame({"N": [1e8, 2e8, 4e8, 8e8], "D": [2e9, 4e9, 8e9, 1.6e10]})
    train["loss"] = np.asarray(CHIN.predict(EPOCH, train))
    with pytest.warns(RuntimeWarning, match="could not calibrate the extrapolation discrepancy"):
        disc = P.calibrate_discrepancy(train, "chinchilla")
    assert disc.method == "prior" and disc.tau_quantile(0.5) > 0
    with pytest.raises(ValueError, match="needs law="):
        P.calibrate_discrepancy(train)
    with pytest.raises(ValueError, match="cuts must be quantiles"):
        P.calibrate_discrepancy(train, "chinchilla", cuts=(0.5, 1.2))


def test_a_calibration_learned_from_unsettled_refits_says_which():
    """Refits whose chains disagree (R-hat above 1.05) are named, with their figures; settled
    ones and Laplace refits (no chains, no figures) are not."""
    settled = {"cut": 0.8, "n_past": 158, "max_rhat": 1.004, "min_ess": 420.0, "divergences": 0}
    unsettled = {"cut": 0.7, "n_past": 138, "max_rhat": 1.8676, "min_ess": 2.9, "divergences": 0}
    laplace = {"cut": 0.9, "n_past": 178}
    with pytest.warns(RuntimeWarning, match="whose chains disagree") as seen:
        PR.warn_unsettled([unsettled, settled, laplace])
    (message,) = [str(w.message) for w in seen]
    assert "at cut 0.7 on 138 runs, R-hat 1.87 and bulk ESS 3" in message
    assert "cut 0.8" not in message and "cut 0.9" not in message
    # on the command line the advice names the refits' own flags, not the training fit's
    from bayes_scaling._warnings import cli_words

    advice = cli_words(message)
    assert "(--calibration-warmup, --calibration-chains)" in advice and "--warmup" not in advice
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PR.warn_unsettled([settled, laplace])


def test_calibration_cuts_along_each_axis_asked_for():
    """``axes`` adds cuts along a covariate: their pseudo-futures are the larger models, beyond
    the pseudo-past in N; the scale axis's cuts are those of the default, in the same order."""
    n = np.geomspace(1e7, 1e9, 24)
    frame = pd.DataFrame({"N": n, "D": 20 * n * np.tile([0.5, 1.0, 2.0], 8)})
    frame["loss"] = 1.8 + 400 * frame.N**-0.34 + 2000 * frame.D**-0.36
    frame["loss"] *= np.exp(0.01 * np.random.default_rng(0).standard_normal(len(frame)))
    default = P.calibrate_discrepancy(frame, "chinchilla", num_samples=100, seed=0)
    both = P.calibrate_discrepancy(frame, "chinchilla", axes=("scale", "N"), num_samples=100, seed=0)
    by_axis = [c for c in both.details["cuts"] if c.get("axis") == "N"]
    scale = [c for c in both.details["cuts"] if "axis" not in c]
    assert scale == default.details["cuts"] and by_axis
    for cut in by_axis:
        assert set(cut["beyond_in"]) <= {"N", "N,D"} and sum(cut["beyond_in"].values()) > 0
    with pytest.raises(ValueError, match="axes must be among scale, N, D"):
        P.calibrate_discrepancy(frame, "chinchilla", axes=("U",))


def test_points_beyond_the_box_are_counted_by_the_direction_they_leave_it():
    """A point is counted by the covariate ranges it leaves (above or below), and by ``N*D``
    only where it lies inside both ranges; points inside the box are not counted."""
    train = {"N": [1e8, 1e9, 1e8, 1e9], "D": [1e9, 1e9, 1e11, 1e10]}  # no 1e9 run on 1e11 tokens
    box = P.Discrepancy.fixed(0.0, "chinchilla", train)
    points = {
        "N": [5e8, 5e9, 5e7, 5e8, 5e9, 9e8, 2e8],
        "D": [5e9, 1e10, 1e10, 4e11, 4e11, 8e10, 1e9],
    }
    # inside; N above; N below; D above; N and D above; inside both ranges, beyond in N*D; inside
    assert box.beyond_in(points) == {"N": 2, "D": 1, "N,D": 1, "N*D": 1}
    distance = box.distance(points)
    assert (distance > 0).sum() == 5 and distance[0] == distance[6] == 0
    assert box.beyond_in({"N": [5e8], "D": [5e9]}) == {}
    one_axis = P.Discrepancy.fixed(0.0, "power_law", {"C": [1e18, 1e20]})
    assert one_axis.beyond_in({"C": [1e17, 1e19, 1e21, 1e22]}) == {"C": 3}


def test_directions_the_calibration_never_saw_are_named():
    """Held-out runs or points that leave the training runs in a direction none of the
    pseudo-futures did are named with both counts; records without directions say nothing."""
    cuts = [{"cut": 0.7, "beyond_in": {"N*D": 60}}, {"cut": 0.8, "beyond_in": {"N*D": 40, "D": 2}}]
    assert PR.learned_directions(cuts) == {"N*D": 100, "D": 2}
    words = PR.unlearned_directions({"N": 3, "D": 1}, cuts)
    assert words == (
        "held-out runs leave the training runs in N (3), D (1); the discrepancy's "
        "pseudo-futures left theirs in N*D (100), D (2): its width beyond in N is carried over, "
        "not learned; cuts along N as well learn it there (the calibration's axes=('scale', 'N'))"
    )
    # a direction whose axis was cut along already (too few runs left that way): no remedy
    along_n = [*cuts, {"cut": 0.9, "axis": "N", "beyond_in": {"D": 1}}]
    assert PR.unlearned_directions({"N": 3}, along_n).endswith("is carried over, not learned")
    # on the command line the remedy reads as the flag
    from bayes_scaling._warnings import cli_words

    assert cli_words(words).endswith("learn it there (--calibration-axes scale,N)")
    assert PR.unlearned_directions({"N,D": 2}, cuts, what="the points").startswith(
        "the points leave the training runs in N and D (2);"
    )
    assert PR.unlearned_directions({"D": 352}, cuts) == ""  # seen, even if rarely
    assert PR.unlearned_directions({}, cuts) == ""  # nothing outside
    assert PR.unlearned_directions({"D": 3}, [{"cut": 0.7}]) == ""  # an older record
    assert PR.unlearned_directions(None, cuts) == ""  # an older backtest report


def test_tau_likelihood_peaks_near_the_truth():
    """The composite likelihood of tau recovers the scale of a simulated random-slope discrepancy."""
    rng = np.random.default_rng(0)
    s, j, sigma, tau = 400, 300, 0.005, 0.02
    d = rng.uniform(0.2, 2.0, j)
    mu = np.zeros((s, j))
    y = tau * d * rng.standard_normal(j) + sigma * rng.standard_normal(j)
    grid = np.asarray(P._TAU_GRID)
    ll = P._tau_log_likelihood(
        [(y, mu, np.full(s, sigma), None, d)], grid, np.random.default_rng(1)
    )
    best = grid[np.argmax(ll)]
    assert 0.8 * tau < best < 1.25 * tau  # sd of the MLE about tau / sqrt(2 j) = 4%


def _joint_by_quadrature(y, mu, sigma, d, tau, slope_df):
    """p(block | tau) by brute force: the shared slope integrated on a fine grid, per draw."""
    from scipy.special import logsumexp
    from scipy.stats import norm, t

    b = np.linspace(-0.5, 0.5, 20001)
    db = b[1] - b[0]
    prior = norm.pdf(b, scale=tau) if slope_df is None else t.pdf(b / tau, slope_df) / tau
    out = []
    for s in range(mu.shape[0]):
        resid = (y - mu[s])[None, :] - b[:, None] * d[None, :]
        ll = norm.logpdf(resid, scale=sigma[s]).sum(axis=1)
        out.append(logsumexp(ll + np.log(prior * db)))
    return logsumexp(out) - math.log(mu.shape[0])


@pytest.mark.parametrize("slope_df", [None, 3.0])
def test_joint_tau_likelihood_matches_quadrature(slope_df):
    """With normal noise the closed-form joint score is exact in b for each draw; the Student-t
    slope enters as a 64-point scale mixture, so the two agree to quadrature error."""
    rng = np.random.default_rng(3)
    s, j = 5, 12
    d = rng.uniform(0.1, 1.0, j)
    mu = 0.01 * rng.standard_normal((s, j))
    sigma = rng.uniform(0.01, 0.02, s)
    y = 0.05 * d + 0.01 * rng.standard_normal(j)
    grid = np.array([0.02, 0.05, 0.2])
    got = PC._tau_log_likelihood_joint([(y, mu, sigma, None, d)], grid, slope_df)
    want = [_joint_by_quadrature(y, mu, sigma, d, tau, slope_df) for tau in grid]
    np.testing.assert_allclose(got, want, atol=0.01)  # log scale; the mixture errs by ~0.002


def test_joint_score_counts_a_block_once():
    """Runs that share one slope: pointwise scoring grows sure of tau with the runs in a block,
    the joint score does not (one slope per block is one look at tau)."""
    rng = np.random.default_rng(0)
    grid = np.asarray(P._TAU_GRID)
    sigma, tau = 0.005, 0.05

    def curvature(j, score):
        blocks = []
        for _ in range(3):  # three pseudo-futures, one shared slope each
            d = rng.uniform(0.2, 1.0, j)
            y = tau * rng.standard_normal() * d + sigma * rng.standard_normal(j)
            blocks.append((y, np.zeros((200, j)), np.full(200, sigma), None, d))
        if score == "joint":
            ll = PC._tau_log_likelihood_joint(blocks, grid, None)
        else:
            ll = P._tau_log_likelihood(blocks, grid, np.random.default_rng(1), None)
        return ll.max() - ll[np.searchsorted(grid, 0.5)]  # how sure tau is not 0.5

    assert curvature(100, "pointwise") > 5 * curvature(10, "pointwise")
    assert curvature(100, "joint") < 2 * curvature(10, "joint") + 1.0


def test_joint_score_with_too_few_runs_uses_the_prior():
    train = pd.DataFrame({"N": [1e8, 2e8, 4e8, 8e8], "D": [2e9, 4e9, 8e9, 1.6e10]})
    train["loss"] = np.asarray(CHIN.predict(EPOCH, train))
    with pytest.warns(RuntimeWarning, match="drawn from its half-normal prior"):
        disc = P.calibrate_discrepancy(train, "chinchilla", score="joint")
    assert disc.method == "prior" and disc.details["tau_mle"] is None
    span = P.data_span("chinchilla", train)
    weights = np.asarray(disc.tau_weights)
    grid = np.asarray(disc.tau_grid) * span  # per span again
    prior_mean = np.sqrt(2 / np.pi) * P.DEFAULT_TAU_PRIOR_SCALE  # half-normal mean
    assert abs(float(weights @ grid) - prior_mean) < 0.05 * prior_mean  # grid truncation only
    with pytest.raises(ValueError, match="score must be one of"):
        P.calibrate_discrepancy(train, "chinchilla", score="together")


def test_data_span_is_the_width_along_the_scale_axis():
    """tau is learned per span of the data: the width of log(N*D), else the widest coordinate."""
    frame = pd.DataFrame({"N": [1e8, 1e9, 4e9], "D": [2e9, 5e9, 8e10]})
    expected = math.log(4e9 * 8e10) - math.log(1e8 * 2e9)
    assert P.data_span("chinchilla", frame) == pytest.approx(expected)
    # an IsoFLOP sweep: one compute, so the span is the widest of log N and log D
    iso = pd.DataFrame({"N": [1e8, 1e9, 1e10], "D": [1e11, 1e10, 1e9]})
    assert P.data_span("chinchilla", iso) == pytest.approx(math.log(100.0))
    assert P.data_span("chinchilla", iso.iloc[:1]) == 1.0  # one run: no width, unit span
    assert P.data_span("power_law", pd.DataFrame({"C": [1e18, 1e21]})) == pytest.approx(
        math.log(1e3)
    )


def test_calibrated_tau_is_per_span_divided_by_the_data_span():
    """The stored tau grid is the per-span grid over the whole data's span, as the details say."""
    n = np.geomspace(1e7, 1e9, 24)
    frame = pd.DataFrame({"N": n, "D": 20 * n * np.tile([0.5, 1.0, 2.0], 8)})
    frame["loss"] = 1.8 + 400 * frame.N**-0.34 + 2000 * frame.D**-0.36
    frame["loss"] *= np.exp(0.01 * np.random.default_rng(0).standard_normal(len(frame)))
    disc = P.calibrate_discrepancy(frame, "chinchilla", num_samples=100, seed=0)  # span, t3
    span = P.data_span("chinchilla", frame)
    assert disc.details["span"] == pytest.approx(span)
    np.testing.assert_allclose(np.asarray(disc.tau_grid) * span, P._TAU_GRID, rtol=1e-12)
    assert disc.tau_quantile(0.5) == pytest.approx(disc.details["tau_per_span_median"] / span)
    assert all(c["span"] < span for c in disc.details["cuts"])  # pseudo-pasts are narrower
    for cut in disc.details["cuts"]:  # every pseudo-future run outside is counted once
        assert sum(cut["beyond_in"].values()) == cut["n_outside"] > 0
        assert set(cut["beyond_in"]) <= {"N", "D", "N,D", "N*D"}
    assert disc.details["unit"] == "span" and disc.slope_df == 3.0
    assert P.Discrepancy.from_json(disc.to_json()) == disc  # the slope's df is saved with it
    by_efold = P.calibrate_discrepancy(
        frame, "chinchilla", unit="e-fold", slope_df=None, num_samples=100, seed=0
    )
    assert by_efold.details["unit"] == "e-fold" and by_efold.details["span"] == 1.0
    assert by_efold.tau_grid == P._TAU_GRID and by_efold.slope_df is None  # the earlier model
    with pytest.raises(ValueError, match="unit must be one of"):
        P.calibrate_discrepancy(frame, "chinchilla", unit="decade")
    with pytest.raises(ValueError, match="slope_df must be"):
        P.calibrate_discrepancy(frame, "chinchilla", slope_df=0)


def test_student_t_slope_has_the_tails_of_its_df():
    """sample_slope: tau z with z normal (slope_df None, as saved fits read) or Student-t."""
    box = ("N", "D", "N*D"), (0.0, 0.0, 0.0), (1.0, 1.0, 2.0)
    normal = P.Discrepancy((0.01,), (1.0,), *box)
    heavy = dataclasses.replace(normal, slope_df=4.0)
    n = 200_000
    b_normal = normal.sample_slope(np.random.default_rng(0), n)
    b_heavy = heavy.sample_slope(np.random.default_rng(0), n)
    # sd of t4 is sqrt(2); the 99.5% quantile of |t4| is 5.60 against 2.81 for a normal
    assert np.std(b_normal) == pytest.approx(0.01, rel=0.01)
    assert np.std(b_heavy) == pytest.approx(0.01 * math.sqrt(2), rel=0.05)
    assert np.quantile(np.abs(b_heavy), 0.995) == pytest.approx(0.056, rel=0.05)
    assert np.quantile(np.abs(b_normal), 0.995) == pytest.approx(0.0281, rel=0.03)
    with pytest.raises(ValueError, match="slope_df"):
        dataclasses.replace(normal, slope_df=-1.0)


# --------------------------------------------------------------------------- the frontier


def test_frontier_matches_the_closed_form_and_reference():
    fit = fake_fit(EPOCH, chains=1, draws=10)
    fr = P.predict_frontier(fit, [5.9e23, 1e21], discrepancy=None)
    n_opt = fr["N_opt"].values[0, 0]
    # REFERENCE.md: at 5.9e23 FLOP, N* about 73e9 and D* about 1.34e12 (about 18 tokens per parameter)
    assert n_opt[0] == pytest.approx(73e9, rel=0.03)
    assert fr["D_opt"].values[0, 0, 0] == pytest.approx(1.34e12, rel=0.03)
    np.testing.assert_allclose(
        6 * fr["N_opt"] * fr["D_opt"], np.broadcast_to([5.9e23, 1e21], (1, 10, 2)), rtol=1e-6
    )
    # fixed allocation defaults to the posterior median optimum: same loss here (no spread)
    np.testing.assert_allclose(fr["loss_fixed"].values, fr["loss_opt"].values, rtol=1e-6)
    fr20 = P.predict_frontier(fit, [5.9e23], tokens_per_param=20.0, discrepancy=None)
    np.testing.assert_allclose(fr20["D_fixed"] / fr20["N_fixed"], 20.0)
    assert np.all(fr20["loss_fixed"].values >= fr20["loss_opt"].values * (1 - 1e-7))


def test_frontier_numeric_optimum_agrees_with_closed_form():
    rng = np.random.default_rng(0)
    params = {k: v * np.exp(0.05 * rng.standard_normal(50)) for k, v in EPOCH.items()}
    log_c6 = np.log(np.array([1e19, 1e22, 1e25]) / 6)
    closed = P._optimal_log_n(CHIN, params, log_c6)
    numeric = P._optimal_log_n(
        dataclasses.replace(CHIN, name="chinchilla_copy", log_n_opt=None), params, log_c6
    )
    np.testing.assert_allclose(numeric, closed, atol=0.02)  # within 2% in N


def test_frontier_bands_and_errors():
    rng = np.random.default_rng(1)
    params = {k: v * np.exp(0.03 * rng.standard_normal(1000)) for k, v in EPOCH.items()}
    fit = fake_fit(params, chains=2, draws=500)
    fr = P.predict_frontier(fit, np.geomspace(1e20, 1e25, 4), discrepancy=0.01, seed=0)
    q = fr["loss_opt_structural_quantiles"]
    assert np.all(q.sel(quantile=0.95) > q.sel(quantile=0.05))
    width_law = fr["loss_opt_quantiles"].sel(quantile=0.95) - fr["loss_opt_quantiles"].sel(
        quantile=0.05
    )
    width_struct = q.sel(quantile=0.95) - q.sel(quantile=0.05)
    assert width_struct.values[-1] > width_law.values[-1]
    assert np.all(fr["loss_fixed"].values >= fr["loss_opt"].values * (1 - 1e-6))
    with pytest.raises(ValueError, match="compute must be"):
        P.predict_frontier(fit, [0.0, 1e21], discrepancy=None)
    with pytest.raises(ValueError, match="tokens_per_param must be"):
        P.predict_frontier(fit, [1e21], tokens_per_param=-3.0, discrepancy=None)
    pl = LAWS["power_law"]
    pfit = fake_fit(
        {"E": 1.8, "A": 300.0, "alpha": 0.12},
        law=pl,
        train=pd.DataFrame({"C": [1e18, 1e19, 1e20], "loss": [3.0, 2.8, 2.6]}),
    )
    with pytest.raises(ValueError, match="needs a law over N and D only"):
        P.predict_frontier(pfit, [1e21], discrepancy=None)


# --------------------------------------------------------------------------- real fits


def grouped_data(seed=0, shifts=(0.0, 0.15, -0.1, 0.25)):
    rng = np.random.default_rng(seed)
    rows = []
    for i, shift in enumerate(shifts):
        for n in np.geomspace(3e7, 2e9, 5):
            for r in (5, 20, 80):
                p = dict(EPOCH, E=EPOCH["E"] + shift)
                loss = float(CHIN.predict(p, {"N": n, "D": n * r})) * np.exp(
                    0.01 * rng.standard_normal()
                )
                rows.append((f"g{i}", n, n * r, loss))
    return pd.DataFrame(rows, columns=["dataset", "N", "D", "loss"])


def _small_grouped_fit(data, group):
    """Four groups at the test budget, E pooled and the rest shared."""
    with warnings.catch_warnings():
        # tiny budget and four groups: what is tested is the ordering of bands, not convergence
        warnings.filterwarnings("ignore", message="max R-hat", category=RuntimeWarning)
        warnings.filterwarnings(
            "ignore", message=".*divergent transitions", category=RuntimeWarning
        )
        return inference.fit(
            data,
            "chinchilla",
            group=group,
            pooling={
                "E": "pooled",
                "alpha": "shared",
                "beta": "shared",
                "A": "shared",
                "B": "shared",
            },
            seed=1,
            pilot=False,  # the sampler's choice half-way is tested in test_centring
            **SMALL,
        )


@pytest.fixture(scope="module")
def grouped_fit():
    return _small_grouped_fit(grouped_data(), "dataset")


def test_new_group_bands_are_wider_than_a_seen_group(grouped_fit):
    pts = pd.DataFrame({"N": [1e8, 1e9, 1e10], "D": [2e9, 2e10, 2e11]})
    seen = P.predict(grouped_fit, pts, group="g1", discrepancy=None, seed=0)
    new = P.predict(grouped_fit, pts, group="new", discrepancy=None, seed=0)
    for kind in ("law_mean", "new_run"):
        w_seen = seen[f"{kind}_quantiles"].sel(quantile=0.95) - seen[f"{kind}_quantiles"].sel(
            quantile=0.05
        )
        w_new = new[f"{kind}_quantiles"].sel(quantile=0.95) - new[f"{kind}_quantiles"].sel(
            quantile=0.05
        )
        assert np.all(w_new.values > 1.5 * w_seen.values), (kind, w_new.values, w_seen.values)


def test_grouped_predict_needs_a_group_and_accepts_a_group_column(grouped_fit):
    pts = pd.DataFrame({"N": [1e9, 1e9], "D": [2e10, 2e10]})
    with pytest.raises(ValueError, match="pass group= one of them or 'new'"):
        P.predict(grouped_fit, pts, discrepancy=None)
    with pytest.raises(ValueError, match="unknown group 'zz'"):
        P.predict(grouped_fit, pts, group="zz", discrepancy=None)
    pts["group"] = ["g0", "g3"]
    pred = P.predict(grouped_fit, pts, discrepancy=None)
    med = pred["law_mean_quantiles"].sel(quantile=0.5).values
    assert med[1] > med[0] + 0.15  # g3's E is 0.25 above g0's


def test_numeric_groups_read_as_numbers_and_are_named_by_value():
    # groups by a numeric column (a sequence length, a model size) as a user writes them
    sizes = {"g0": 3e8, "g1": 1.2e9, "g2": 8.5e7, "g3": 6e8}
    data = grouped_data().assign(size=lambda f: f["dataset"].map(sizes))
    fit = _small_grouped_fit(data, "size")
    labels = inference.fit_spec(fit)["groups"]
    assert list(labels) == ["85000000", "300000000", "600000000", "1200000000"]
    e = fit.posterior["E"].median(("chain", "draw")).values
    assert e[3] > e[0] + 0.15  # g3 (6e8) has E 0.25 above g0 (3e8), as in grouped_data
    pts = pd.DataFrame({"N": [1e9], "D": [2e10]})
    by_label = P.predict(fit, pts, group="600000000", discrepancy=None, seed=0)
    for spelling in ("6e8", 6e8, "600000000.0"):
        same = P.predict(fit, pts, group=spelling, discrepancy=None, seed=0)
        np.testing.assert_array_equal(
            same["law_mean_quantiles"].values, by_label["law_mean_quantiles"].values
        )
    # a points file's numeric group column names the same groups (not a new one)
    column = P.predict(fit, pts.assign(group=[6e8]), discrepancy=None, seed=0)
    np.testing.assert_array_equal(
        column["law_mean_quantiles"].values, by_label["law_mean_quantiles"].values
    )
    with pytest.raises(ValueError, match="unknown group '7e8'"):
        P.predict(fit, pts, group="7e8", discrepancy=None)


@pytest.mark.filterwarnings("ignore:max R-hat:RuntimeWarning")  # small test budget
def test_predict_on_a_real_fit_covers_its_own_law():
    rng = np.random.default_rng(2)
    n = np.geomspace(3e7, 3e9, 10).repeat(4)
    train = pd.DataFrame({"N": n, "D": n * np.tile([5.0, 15.0, 40.0, 120.0], 10)})
    train["loss"] = np.asarray(CHIN.predict(EPOCH, train)) * np.exp(
        0.01 * rng.standard_normal(len(train))
    )
    fit = inference.fit(train, "chinchilla", seed=3, **SMALL)
    pts = pd.DataFrame({"N": [1e9, 1e10], "D": [2e10, 2e11]})
    pred = P.predict(fit, pts, discrepancy=None, quantiles=(0.025, 0.975))
    truth = np.asarray(CHIN.predict(EPOCH, pts))
    lo, hi = pred["law_mean_quantiles"].values
    assert np.all((lo < truth) & (truth < hi))


def test_predict_refuses_non_finite_draws():
    e = np.full(1000, EPOCH["E"])
    e[[10, 20, 30]] = np.nan
    fit = fake_fit(dict(EPOCH, E=e))
    with pytest.raises(ValueError, match=r"the fit has 3 non-finite posterior draws of 'E'"):
        P.predict(fit, {"N": [1e10], "D": [2e11]}, discrepancy=None)
    sigma = np.full(1000, 0.01)
    sigma[5] = np.inf
    fit = fake_fit(EPOCH, sigma=sigma, nu=np.inf)  # nu = inf (normal) stays allowed
    with pytest.raises(ValueError, match=r"1 non-finite posterior draws of 'sigma'"):
        P.predict(fit, {"N": [1e10], "D": [2e11]}, discrepancy=None)
    fine = P.predict(fake_fit(EPOCH, nu=np.inf), {"N": [1e10], "D": [2e11]}, discrepancy=None)
    assert np.isfinite(fine["new_run_mean"].values).all()
