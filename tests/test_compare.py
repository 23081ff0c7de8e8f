"""Law comparison (PSIS-LOO, leave-future-out, stacking) and between-group contrasts."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from bayes_scaling import compare as C
from bayes_scaling.data import DataError
from bayes_scaling.inference import fit, posterior_draws
from bayes_scaling.laws import get_law

BUDGET = {"num_chains": 2, "num_warmup": 300, "num_samples": 300}


def _power_law_runs(
    seed: int, groups: dict[str, float], n: int = 36, sigma: float = 0.01
) -> pd.DataFrame:
    """Runs on a (N, D) grid whose loss follows E_g + A C^-alpha, C = 6 N D; groups differ in E only."""
    rng = np.random.default_rng(seed)
    rows = []
    for g, e in groups.items():
        n_ = np.exp(rng.uniform(np.log(1e7), np.log(3e9), n))
        d_ = np.exp(rng.uniform(np.log(2e8), np.log(1e11), n))
        c_ = 6 * n_ * d_
        loss = (e + 1.5e3 * c_**-0.17) * np.exp(sigma * rng.standard_normal(n))
        rows.append(pd.DataFrame({"N": n_, "D": d_, "loss": loss, "dataset": g}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def two_group_fit():
    """Two groups that differ only in E (1.8 vs 2.0); alpha and A equal, A shared in the fit.

    E and alpha are independent per group: with two groups a learned population spread is a
    funnel that costs divergences at this small budget, and the contrast logic is the same.
    A target acceptance of 0.95 keeps this fit free of divergences over seeds 0-5 (at 0.9, two
    of those six seeds give one divergent transition).
    """
    df = _power_law_runs(1, {"rw": 1.8, "owt2": 2.0})
    df["C"] = 6 * df["N"] * df["D"]
    pooling = {"A": "shared", "E": "independent", "alpha": "independent"}
    return fit(
        df,
        "power_law",
        group="dataset",
        pooling=pooling,
        prior_samples=0,
        seed=3,
        target_accept_prob=0.95,
        **BUDGET,
    )


# ------------------------------------------------------------------ contrasts


def test_contrast_on_E_excludes_zero_and_on_alpha_includes_it(two_group_fit):
    e = C.contrast(two_group_fit, "E", ["rw", "owt2"], prob=0.9)
    row = e.table.loc["rw - owt2"]
    assert row["upper"] < 0  # E_rw < E_owt2, interval excludes zero
    assert row["p_less"] > 0.99
    sd = row["sd"]
    assert abs(row["mean"] - (-0.2)) < 4 * sd + 0.01  # the true difference
    a = C.contrast(two_group_fit, "alpha", ["rw", "owt2"], prob=0.9)
    arow = a.table.loc["rw - owt2"]
    assert arow["lower"] < 0 < arow["upper"]
    assert 0.02 < arow["p_greater"] < 0.98


def test_contrast_rope_ratio_and_draw_alignment(two_group_fit):
    c = C.contrast(two_group_fit, "E", "owt2,rw", rope=0.05)
    row = c.table.loc["owt2 - rw"]
    assert c.rope == (-0.05, 0.05)
    assert row["p_below_rope"] + row["p_in_rope"] + row["p_above_rope"] == pytest.approx(1.0)
    assert row["p_above_rope"] > 0.95
    # the contrast is computed draw by draw from the joint posterior
    d = c.draws["owt2 - rw"]
    assert np.allclose(
        d, posterior_draws(two_group_fit, "owt2")["E"] - posterior_draws(two_group_fit, "rw")["E"]
    )
    r = C.contrast(two_group_fit, "E", ["owt2", "rw"], kind="ratio", rope=0.02)
    assert r.table.loc["owt2 / rw", "p_greater"] > 0.99
    assert r.rope == pytest.approx((1 / 1.02, 1.02))
    json.dumps(r.to_dict())  # serialisable


def test_contrast_loss_at_compute_and_crossing(two_group_fit):
    c = C.contrast(two_group_fit, "loss", ["rw", "owt2"], compute=1e21)
    assert c.quantity == "loss@C=1e+21"
    assert c.table.loc["rw - owt2", "p_less"] > 0.99
    at = C.contrast(two_group_fit, "loss", ["rw", "owt2"], at={"C": 1e21})
    assert np.allclose(at.draws["rw - owt2"], c.draws["rw - owt2"], rtol=1e-5, atol=1e-6)
    x = C.contrast(two_group_fit, "crossing", ["rw", "owt2"], compute_range=(1e17, 1e26))
    row = x.table.loc["rw x owt2"]
    assert row["p_first_lower_at_high"] > 0.99  # rw stays lower: its E is lower
    assert row["p_cross"] < 0.2


def test_contrast_plot_data(two_group_fit):
    e = C.contrast(two_group_fit, "E", ["rw", "owt2"])
    out = C.contrast_plot_data(two_group_fit, contrast_result=e, num=20, bins=15)
    assert out["x_name"] == "C"
    curves = out["curves"]
    assert set(curves["group"]) == {"rw", "owt2"} and len(curves) == 40
    assert (curves["lower"] <= curves["median"]).all() and (
        curves["median"] <= curves["upper"]
    ).all()
    assert len(out["points"]) == 72
    hist = out["contrast"]
    widths = hist["right"] - hist["left"]
    assert (hist["density"] * widths).sum() == pytest.approx(1.0)
    assert out["reference"] == 0.0


def test_contrast_bad_input(two_group_fit):
    with pytest.raises(
        KeyError, match=r"unknown group \['c4'\]; the fit's groups \(dataset\) are \['owt2', 'rw'\]"
    ):
        C.contrast(two_group_fit, "E", ["rw", "c4"])
    with pytest.raises(ValueError, match="parameter 'A' is shared across groups.*--pool A=pooled"):
        C.contrast(two_group_fit, "A", ["rw", "owt2"])
    with pytest.raises(
        KeyError, match="unknown quantity 'beta' for law 'power_law'; parameters: alpha, E, A"
    ):
        C.contrast(two_group_fit, "beta", ["rw", "owt2"])
    with pytest.raises(
        ValueError, match="compute-optimal exponent 'a' is defined for laws over N and D"
    ):
        C.contrast(two_group_fit, "a", ["rw", "owt2"])
    with pytest.raises(ValueError, match="at least two groups"):
        C.contrast(two_group_fit, "E", ["rw"])
    with pytest.raises(ValueError, match="listed more than once"):
        C.contrast(two_group_fit, "E", ["rw", "rw"])
    with pytest.raises(ValueError, match="exactly one of compute="):
        C.contrast(two_group_fit, "loss", ["rw", "owt2"])
    with pytest.raises(ValueError, match="rope needs low < high"):
        C.contrast(two_group_fit, "E", rope=(0.1, -0.1))
    with pytest.raises(ValueError, match="prob must be in"):
        C.contrast(two_group_fit, "E", prob=1.5)


def test_contrast_needs_groups():
    df = _power_law_runs(2, {"x": 1.9}, n=20)
    df["C"] = 6 * df["N"] * df["D"]
    idata = fit(
        df, "power_law", prior_samples=0, seed=0, num_chains=1, num_warmup=100, num_samples=100
    )
    with pytest.raises(ValueError, match="needs a hierarchical fit.*--group"):
        C.contrast(idata, "E")


# ------------------------------------------------------------------ derived quantities (exact)


def _draws(**kw):
    return {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in kw.items()}


def test_optimal_loss_closed_forms_match_grid_search():
    chin = _draws(
        E=[1.817, 1.7], A=[482.0, 406.4], B=[2085.0, 410.7], alpha=[0.348, 0.34], beta=[0.366, 0.28]
    )
    # a law without a closed-form optimum is searched on a grid
    grid_law = dataclasses.replace(get_law("chinchilla"), name="chinchilla_grid", log_n_opt=None)
    computes = np.array([1e19, 5.9e23])
    exact = C.optimal_loss("chinchilla", chin, computes)
    numeric = C.optimal_loss(grid_law, chin, computes)
    assert exact.shape == (2, 2)
    np.testing.assert_allclose(numeric, exact, rtol=2e-5)
    # REFERENCE.md: the Epoch refit at 5.9e23 FLOP puts N* near 73e9 and D* near 1.34e12
    e = (
        chin["E"][0]
        + chin["A"][0] * 73e9 ** -chin["alpha"][0]
        + chin["B"][0] * 1.34e12 ** -chin["beta"][0]
    )
    assert exact[0, 1] == pytest.approx(e, rel=1e-3)
    kap = _draws(alpha_N=[0.076], alpha_D=[0.095], N_c=[8.8e13], D_c=[5.4e13])
    kgrid = dataclasses.replace(get_law("kaplan"), name="kaplan_grid", log_n_opt=None)
    np.testing.assert_allclose(
        C.optimal_loss(kgrid, kap, computes), C.optimal_loss("kaplan", kap, computes), rtol=2e-5
    )
    assert C.optimal_loss("chinchilla", chin, 1e21).shape == (2,)


def test_compute_optimal_exponent():
    spec = get_law("chinchilla")
    a = C._compute_optimal_exponent(spec, _draws(alpha=0.348, beta=0.366))
    assert a[0] == pytest.approx(0.366 / 0.714)
    k = C._compute_optimal_exponent(get_law("kaplan"), _draws(alpha_N=0.076, alpha_D=0.095))
    assert k[0] == pytest.approx(0.095 / 0.171)
    with pytest.raises(ValueError, match="law 'power_law'"):
        C._compute_optimal_exponent(get_law("power_law"), _draws(alpha=0.1, E=1.0, A=1.0))


def test_crossings_interpolate_first_sign_change():
    grid = np.array([1.0, 10.0, 100.0, 1000.0])
    diff = np.array([[1.0, -1.0, -2.0, -3.0], [1.0, 2.0, 3.0, 4.0], [-1.0, -1.0, 1.0, -1.0]])
    out = C._crossings(diff, grid)
    assert out[0] == pytest.approx(10**0.5)
    assert np.isnan(out[1])
    assert out[2] == pytest.approx(10**1.5)


def test_stacking_weights():
    assert C.stacking_weights(np.array([[0.0, -5.0]] * 3)).round(3).tolist() == [1.0, 0.0]
    rng = np.random.default_rng(0)
    lpd = rng.normal(size=(40, 3))
    w = C.stacking_weights(lpd)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    from scipy.special import logsumexp

    best = logsumexp(lpd, b=w[None, :], axis=1).sum()
    for trial in rng.dirichlet(np.ones(3), size=200):  # no random point on the simplex does better
        assert logsumexp(lpd, b=trial[None, :], axis=1).sum() <= best + 1e-6


def test_future_split_keeps_compute_levels_together():
    f = pd.DataFrame({"C": [1.0, 2, 3, 4, 5, 5, 5], "loss": 1.0})
    assert C.future_split(f, 0.3).tolist() == [True] * 4 + [False] * 3
    assert C.future_split(f, 0.05).tolist() == [True] * 4 + [False] * 3  # at least the top level
    assert C.future_split(
        pd.DataFrame({"N": [1.0, 2], "D": [1.0, 3], "loss": 1.0}), 0.5
    ).tolist() == [True, False]
    assert C.future_split(f, "C<=2").tolist() == [True, True] + [False] * 5
    with pytest.raises(DataError, match="fraction in"):
        C.future_split(f, 1.5)
    with pytest.raises(DataError, match="two distinct"):
        C.future_split(pd.DataFrame({"C": [1.0, 1.0], "loss": 1.0}), 0.5)


def test_log_predictive_density_matches_fit_log_likelihood(two_group_fit):
    const = two_group_fit.constant_data
    labels = list(two_group_fit.posterior["group"].values)
    frame = pd.DataFrame(
        {
            "C": const["C"].values,
            "loss": np.exp(two_group_fit.observed_data["log_loss"].values),
            "group": [labels[i] for i in const["group_index"].values],
        }
    )
    mine = C.log_predictive_density(two_group_fit, frame, pointwise_draws=True)
    ref = two_group_fit.log_likelihood["log_loss"].values.reshape(mine.shape[0], -1)
    np.testing.assert_allclose(mine, ref, rtol=1e-3, atol=2e-3)
    lpd = C.log_predictive_density(two_group_fit, frame)
    assert lpd.shape == (len(frame),) and np.all(np.isfinite(lpd))


# ------------------------------------------------------------------ law comparison


def test_compare_laws_refuses_a_law_the_data_cannot_feed():
    df = _power_law_runs(0, {"x": 1.9}, n=20)
    with pytest.raises(DataError, match="missing column 'U' required by law 'data_constrained'"):
        C.compare_laws(df, ["chinchilla", "data_constrained"], **BUDGET)
    with pytest.raises(ValueError, match="at least two laws"):
        C.compare_laws(df, ["chinchilla"])
    with pytest.raises(ValueError, match="different targets"):
        C.compare_laws(df, ["chinchilla", "batch_steps"])
    with pytest.raises(KeyError, match="unknown law 'chinchila'"):
        C.compare_laws(df, ["chinchila", "kaplan"])
    with pytest.raises(ValueError, match="pooling names \\['R_D'\\]"):
        C.compare_laws(df, ["chinchilla", "power_law"], group="dataset", pooling={"R_D": "shared"})


def test_compare_laws_ranks_the_true_law(recwarn):
    # truth: a power law in C = 6 N D; the data have no C column (derived), and power_law:N is wrong
    df = _power_law_runs(4, {"x": 1.9}, n=60)
    res = C.compare_laws(df, ["power_law:N", "power_law"], holdout=0.25, seed=1, **BUDGET)
    t = res.table
    assert res.notes == ["C derived as 6 N D (the data has no C column)"]
    assert t.index[0] == "power_law"
    assert t.loc["power_law:N", "elpd_diff"] > 3 * t.loc["power_law:N", "dse"]
    assert t["weight"].sum() == pytest.approx(1.0)
    assert t.loc["power_law", "weight"] > 0.9
    split = res.split
    assert split["test_points"] == 15 and split["train_points"] == 45
    assert t.loc["power_law", "lfo_rank"] == 0 and t.loc["power_law", "lfo_diff"] == 0
    assert t.loc["power_law:N", "lfo_diff"] > 0 and t.loc["power_law:N", "lfo_dse"] > 0
    assert t.loc["power_law", "lfo_rmse"] < 0.02
    assert set(res.future_lpd.columns) == {"power_law", "power_law:N"} and len(res.future_lpd) == 15
    d = res.to_dict()
    assert {r["law"] for r in d["laws"]} == {"power_law", "power_law:N"} and "elpd_loo" in d[
        "laws"
    ][0]
    json.dumps(d)
    # sampler warnings name the fit they come from
    assert all("[law " in str(w.message) for w in recwarn if issubclass(w.category, RuntimeWarning))
    # model-averaged prediction: mostly the power law over C
    avg = C.model_average(res, {"N": [1e10], "D": [2e11]}, num_draws=2000)
    truth = 1.9 + 1.5e3 * (6 * 1e10 * 2e11) ** -0.17
    assert avg.loc[0, "q5"] < truth < avg.loc[0, "q95"]
    assert avg.loc[0, "median_power_law"] == pytest.approx(truth, rel=0.02)
    draws = C.model_average_draws(res, {"N": [1e10], "D": [2e11]}, weights="lfo", num_draws=500)
    assert draws.shape == (500, 1) and np.all(draws > 0)
    with pytest.raises(ValueError, match="weights must be"):
        C.model_average_draws(res, {"N": [1e10], "D": [2e11]}, weights="bma")


# ------------------------------------------------------------------ command line


@pytest.mark.filterwarnings(
    "ignore:max R-hat:RuntimeWarning"
)  # the wrong law mixes poorly at this budget
@pytest.mark.filterwarnings("ignore:.*divergent transitions:RuntimeWarning")
def test_cli_compare_and_contrast(tmp_path, two_group_fit, capsys):
    from bayes_scaling.cli import main
    from bayes_scaling.inference import save_fit

    df = _power_law_runs(4, {"x": 1.9}, n=60)
    csv = tmp_path / "runs.csv"
    df.to_csv(csv, index=False)
    args = [
        "compare",
        str(csv),
        "--laws",
        "power_law:N,power_law",
        "--chains",
        "2",
        "--warmup",
        "300",
        "--samples",
        "300",
        "--seed",
        "1",
        "--holdout",
        "0.25",
    ]
    assert main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["laws"][0]["law"] == "power_law" and out["leave_future_out"]["test_points"] == 15
    assert main(args + ["--no-future"]) == 0
    text = capsys.readouterr().out
    assert "elpd_loo" in text and "leave-future-out" not in text
    assert main(["compare", str(csv), "--laws", "power_law,data_constrained"]) == 2
    assert "missing column 'U' required by law 'data_constrained'" in capsys.readouterr().err

    path = save_fit(two_group_fit, tmp_path / "g.nc")
    assert (
        main(["contrast", str(path), "--param", "E,alpha", "--groups", "rw,owt2", "--rope", "0.05"])
        == 0
    )
    text = capsys.readouterr().out
    assert "rw - owt2" in text and "P(in ROPE)" in text
    assert main(["contrast", str(path), "--param", "E", "--groups", "rw,owt2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (
        d["quantity"] == "E"
        and d["contrasts"][0]["pair"] == "rw - owt2"
        and d["contrasts"][0]["p_less"] > 0.99
    )
    assert main(["contrast", str(path), "--param", "E", "--groups", "rw,c4"]) == 2
    assert "unknown group ['c4']" in capsys.readouterr().err
    assert main(["contrast", str(path), "--param", "A"]) == 2
    assert "shared across groups" in capsys.readouterr().err
    # a grouped fit drawn without a group: the error names the flag, not Python's argument
    assert main(["plot", str(path), "--out", str(tmp_path / "fan.png")]) == 2
    err = capsys.readouterr().err
    assert "pass --group with one of them (or 'new')" in err and "group=" not in err


# ------------------------------------------------------------------ loss-to-loss


def test_loss_to_loss_law_values_and_fit():
    spec = get_law("loss_to_loss")
    assert spec.covariates == ("loss_x",) and spec.target == "loss"
    p = {"E_x": 1.5, "E_y": 2.0, "K": 1.2, "kappa": 0.9}
    got = float(spec.predict(p, {"loss_x": 3.0}))
    assert got == pytest.approx(1.2 * 1.5**0.9 + 2.0, rel=1e-6)
    # below E_x the reducible term vanishes smoothly instead of producing NaN
    assert float(spec.predict(p, {"loss_x": 1.4})) == pytest.approx(2.0, abs=1e-6)
    rng = np.random.default_rng(0)
    lx = rng.uniform(2.2, 4.0, 40)
    ly = (0.8 * (lx - 1.7) ** 1.1 + 2.1) * np.exp(0.005 * rng.standard_normal(40))
    # E_x and E_y come from each dataset's own scaling fit (here: known to about 3%), as in the paper
    priors = {
        "E_x": {"dist": "lognormal", "loc": float(np.log(1.7)), "scale": 0.03},
        "E_y": {"dist": "lognormal", "loc": float(np.log(2.1)), "scale": 0.03},
    }
    frame = pd.DataFrame({"loss_x": lx, "loss": ly})
    idata = fit(frame, "loss_to_loss", priors=priors, prior_samples=0, seed=0, **BUDGET)
    d = posterior_draws(idata)
    pred = np.exp(np.median(C._log_mu(spec, d, {"loss_x": np.array([2.5, 4.5])}), axis=0))
    truth = 0.8 * (np.array([2.5, 4.5]) - 1.7) ** 1.1 + 2.1
    np.testing.assert_allclose(pred, truth, rtol=0.02)


# ------------------------------------------------------------------ slow: the Chinchilla law


@pytest.mark.slow
def test_chinchilla_two_groups_contrast_on_E_and_exponent():
    rng = np.random.default_rng(7)
    rows = []
    for g, e in {"a": 1.8, "b": 2.0}.items():
        n = np.exp(rng.uniform(np.log(3e7), np.log(3e9), 60))
        d = np.exp(rng.uniform(np.log(5e8), np.log(1e11), 60))
        loss = (e + 482.0 * n**-0.348 + 2085.0 * d**-0.366) * np.exp(0.01 * rng.standard_normal(60))
        rows.append(pd.DataFrame({"N": n, "D": d, "loss": loss, "dataset": g}))
    idata = fit(
        pd.concat(rows),
        "chinchilla",
        group="dataset",
        # two groups: per-group values without a learned population spread (no funnel)
        pooling={
            "A": "shared",
            "B": "shared",
            "E": "independent",
            "alpha": "independent",
            "beta": "independent",
        },
        prior_samples=0,
        seed=0,
        num_chains=2,
        num_warmup=500,
        num_samples=500,
    )
    e = C.contrast(idata, "E", ["a", "b"]).table.loc["a - b"]
    assert e["upper"] < 0
    a = C.contrast(idata, "a", ["a", "b"]).table.loc["a - b"]
    assert a["lower"] < 0 < a["upper"]
    x = C.contrast(idata, "crossing", ["a", "b"]).table.loc["a x b"]
    assert x["p_first_lower_at_high"] > 0.95


def test_paired_losses_and_loss_to_loss_priors(two_group_fit):
    df = pd.DataFrame(
        {
            "N": [1, 1, 2, 2, 3],
            "D": [5, 5, 5, 5, 5],
            "loss": [3.0, 3.4, 2.9, 3.2, 2.5],
            "ds": list("ababa"),
        }
    )
    pairs = C.paired_losses(df, "ds", "a", "b")
    assert pairs[["loss_x", "loss"]].to_numpy().tolist() == [[3.0, 3.4], [2.9, 3.2]]
    with pytest.raises(DataError, match=r"'ds' has no rows for \['c'\]"):
        C.paired_losses(df, "ds", "a", "c")
    priors = C.loss_to_loss_priors(two_group_fit, group_x="rw", group_y="owt2")
    e_rw = posterior_draws(two_group_fit, "rw")["E"]
    assert priors["E_x"]["dist"] == "lognormal"
    assert priors["E_x"]["loc"] == pytest.approx(np.log(e_rw).mean())
    assert np.exp(priors["E_y"]["loc"]) == pytest.approx(2.0, abs=0.1)
    from bayes_scaling.priors import resolve_priors

    resolved = resolve_priors(get_law("loss_to_loss"), priors)  # accepted as a fit's priors
    assert resolved.params["E_x"].kwargs["loc"] == pytest.approx(priors["E_x"]["loc"])


def test_contrast_table_columns_stay_apart_when_numbers_are_wide():
    from bayes_scaling.cli.comparing import _aligned

    rows = [["pair", "median", "lower"], ["85000000 - 1200000000", "-8994", "-1.092e+04"], ["a - b", "0.5", "1"]]
    lines = _aligned(rows)
    assert [line.split() for line in lines] == [["pair", "median", "lower"], ["85000000", "-", "1200000000", "-8994", "-1.092e+04"], ["a", "-", "b", "0.5", "1"]]
    assert len({line.index("median") + len("median") for line in lines[:1]} | {lines[1].index("-8994") + 5}) == 1
