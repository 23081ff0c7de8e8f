"""Tests for bayes_scaling.decide: risk measures, allocation, targets, constraints, batch size.

All tests run on synthetic posterior draws (no MCMC): point masses at published fits, constructed
skewed posteriors, and lognormal draws with fixed seeds.
"""

from __future__ import annotations

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from bayes_scaling import decide
from bayes_scaling.decide import (
    allocate,
    allocate_inference_aware,
    batch_size_for_cost,
    choose_batch_size,
    choose_batch_sizes,
    compute_for_target,
    cvar,
    expected,
    parse_risk,
    prob_below,
    quantile,
)
from bayes_scaling.laws import get_law

# Besiroglu et al. 2024 (Epoch) refit, ../shared/REFERENCE.md section 2
EPOCH = {"E": 1.817, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
KAPLAN = {"alpha_N": 0.076, "alpha_D": 0.095, "N_c": 8.8e13, "D_c": 5.4e13}


def closed_form_n(params: dict, compute: float, k: float = 6.0) -> float:
    """N*(C) = G (C/k)^(beta/(alpha+beta)), G = (alpha A / (beta B))^(1/(alpha+beta))."""
    a, b = params["alpha"], params["beta"]
    g = (a * params["A"] / (b * params["B"])) ** (1.0 / (a + b))
    return g * (compute / k) ** (b / (a + b))


def point_mass(params: dict, size: int = 1, sigma: float = 0.0) -> dict:
    out = {k: np.full(size, v, dtype=float) for k, v in params.items()}
    out["sigma"] = np.full(size, sigma)
    return out


def lognormal_draws(size: int = 1000, seed: int = 0, sigma: float = 0.02) -> dict:
    """Draws spread like the Epoch bootstrap (independent, for testing only)."""
    rng = np.random.default_rng(seed)
    return {
        "E": rng.normal(1.817, 0.026, size),
        "A": np.exp(rng.normal(math.log(482.0), 0.25, size)),
        "B": np.exp(rng.normal(math.log(2085.0), 0.5, size)),
        "alpha": rng.normal(0.348, 0.015, size),
        "beta": rng.normal(0.366, 0.021, size),
        "sigma": np.full(size, sigma),
    }


# --------------------------------------------------------------------------- risk measures


@pytest.fixture(scope="module")
def gamma_draws() -> np.ndarray:
    return np.random.default_rng(3).gamma(2.0, size=(1001, 5))


@pytest.mark.parametrize("q", [0.01, 0.3, 0.5, 0.9, 0.99])
def test_quantile_matches_numpy(gamma_draws, q):
    np.testing.assert_allclose(quantile(q)(gamma_draws), np.quantile(gamma_draws, q, axis=0))
    assert quantile(q)(gamma_draws[:, 0]) == pytest.approx(np.quantile(gamma_draws[:, 0], q))


def test_expected_and_prob_below(gamma_draws):
    np.testing.assert_allclose(expected()(gamma_draws), gamma_draws.mean(axis=0))
    r = prob_below(2.0)
    assert r.maximise and not expected().maximise and not cvar(0.9).maximise
    np.testing.assert_allclose(r(gamma_draws), (gamma_draws <= 2.0).mean(axis=0))


def test_cvar_is_exact_tail_mean():
    x = np.arange(1.0, 11.0)  # 10 draws
    assert cvar(0.8)(x) == pytest.approx((10 + 9) / 2)
    # tail mass 2.5 draws: 10 + 9 + 0.5 * 8, over 2.5
    assert cvar(0.75)(x) == pytest.approx((10 + 9 + 0.5 * 8) / 2.5)
    assert cvar(0.0)(x) == pytest.approx(x.mean())
    assert cvar(0.99)(x) == pytest.approx(10.0)


@pytest.mark.parametrize(
    "risk", [expected(), quantile(0.9), cvar(0.9), cvar(0.75), prob_below(2.0)], ids=str
)
def test_jax_reduce_matches_numpy(gamma_draws, risk):
    jax_value = np.asarray(risk.reduce(jnp.asarray(gamma_draws, jnp.float32), axis=0))
    np.testing.assert_allclose(jax_value, risk(gamma_draws), rtol=1e-5)


@pytest.mark.parametrize(
    "spelling", ["expected", "mean", "quantile:0.9", "cvar:0.9", "prob_below:2", " CVaR:0.95 "]
)
def test_parse_risk_round_trip(spelling):
    risk = parse_risk(spelling)
    assert parse_risk(risk.name) == risk
    assert parse_risk(risk) is risk


@pytest.mark.parametrize(
    ("factory", "arg", "exc", "match"),
    [
        (quantile, 0.0, ValueError, r"quantile level q must be in \(0, 1\); got 0"),
        (quantile, 1.5, ValueError, "got 1.5"),
        (quantile, True, TypeError, "must be a real number"),
        (quantile, "0.9", TypeError, "must be a real number"),
        (cvar, 1.0, ValueError, r"cvar level must be in \[0, 1\)"),
        (cvar, -0.1, ValueError, "cvar level"),
        (cvar, float("nan"), ValueError, "must be finite"),
        (prob_below, -1.0, ValueError, "target loss must be > 0"),
        (prob_below, float("inf"), ValueError, "must be finite"),
    ],
)
def test_risk_factory_errors(factory, arg, exc, match):
    with pytest.raises(exc, match=match):
        factory(arg)


@pytest.mark.parametrize(
    ("spelling", "match"),
    [
        ("cvar", r"needs an argument, e.g. 'cvar:0.9'"),
        ("cvar:abc", "'abc' is not a number"),
        ("var:0.9", "unknown risk 'var'; available: expected"),
        ("expected:1", "takes no argument"),
        ("quantile:2", "must be in"),
    ],
)
def test_parse_risk_errors(spelling, match):
    with pytest.raises(ValueError, match=match):
        parse_risk(spelling)


def test_risk_needs_draws():
    with pytest.raises(ValueError, match="needs an array of loss draws"):
        expected()(1.0)


# --------------------------------------------------------------------------- allocation


@pytest.mark.parametrize("compute", [1e20, 1e22, 5.9e23, 1e25, 1e27])
def test_point_mass_matches_closed_form(compute):
    result = allocate(point_mass(EPOCH), compute, predictive=False)
    n_star = closed_form_n(EPOCH, compute)
    assert result.N == pytest.approx(n_star, rel=0.02)
    assert result.D == pytest.approx(compute / (6 * n_star), rel=0.02)
    assert result.n_opt_interval == pytest.approx((n_star, n_star), rel=1e-6)
    assert result.regret == pytest.approx(0.0, abs=1e-5)


def test_epoch_chinchilla_budget():
    result = allocate(point_mass(EPOCH), 5.9e23, predictive=False)
    assert result.N == pytest.approx(73e9, rel=0.02)
    assert result.D == pytest.approx(1.34e12, rel=0.02)
    assert 17 < result.tokens_per_param < 20
    assert result.law == "chinchilla"
    assert not result.at_boundary


def test_flops_per_token_generalises_closed_form():
    result = allocate(point_mass(EPOCH), 1e23, predictive=False, flops_per_token=8.0)
    n_star = closed_form_n(EPOCH, 1e23, k=8.0)
    assert result.N == pytest.approx(n_star, rel=0.02)
    assert result.training_flops == pytest.approx(1e23, rel=1e-9)


def test_kaplan_matches_brute_force():
    compute = 1e21
    result = allocate(point_mass(KAPLAN), compute, predictive=False)
    assert result.law == "kaplan"
    spec = get_law("kaplan")
    n = np.exp(np.linspace(np.log(1e6), np.log(1e13), 200_001))
    loss = np.asarray(spec.predict(KAPLAN, {"N": n, "D": compute / (6 * n)}))
    assert result.N == pytest.approx(n[np.argmin(loss)], rel=0.02)
    assert result.n_opt_interval[0] == pytest.approx(n[np.argmin(loss)], rel=0.01)


def test_risk_curve_is_labelled():
    result = allocate(point_mass(EPOCH), 5.9e23, "cvar:0.9", predictive=False, num_candidates=64)
    curve = result.risk_curve
    assert isinstance(curve, xr.DataArray)
    assert curve.dims == ("N",) and curve.sizes["N"] == 64
    assert {"D", "tokens_per_param", "loss_mean"} <= set(curve.coords)
    np.testing.assert_allclose(curve["N"] * curve["D"] * 6, 5.9e23, rtol=1e-5)
    assert curve.attrs["risk"] == "cvar:0.9"
    assert float(curve.min()) == pytest.approx(result.risk_value)


def test_skewed_posterior_cvar_moves_to_the_bad_tail():
    """10% of draws have 4x the parameter-term amplitude: their optimum is a much larger model.

    The expected-loss choice sits between the two optima; CVaR at 0.9 averages exactly the bad
    tail and picks its optimum.
    """
    size, bad = 1000, 100
    draws = point_mass(EPOCH, size)
    draws["A"][:bad] *= 4.0
    bad_opt = closed_form_n({**EPOCH, "A": 4 * EPOCH["A"]}, 5.9e23)
    good_opt = closed_form_n(EPOCH, 5.9e23)
    mean_choice = allocate(draws, 5.9e23, "expected", predictive=False)
    tail_choice = allocate(draws, 5.9e23, "cvar:0.9", predictive=False)
    assert good_opt < mean_choice.N < bad_opt
    assert tail_choice.N > 2 * mean_choice.N
    assert tail_choice.N == pytest.approx(bad_opt, rel=0.02)
    # each is optimal under its own measure
    assert tail_choice.loss_mean > mean_choice.loss_mean
    assert tail_choice.regret > mean_choice.regret
    cvar_at_mean_choice = float(tail_choice.risk_curve.sel(N=mean_choice.N, method="nearest"))
    assert cvar_at_mean_choice > tail_choice.risk_value
    assert mean_choice.n_opt_interval == pytest.approx((good_opt, bad_opt), rel=1e-6)


def test_prob_below_ties_break_by_expected_loss():
    # a point mass reaching the target over a range of N: P = 1 on a plateau
    result = allocate(point_mass(EPOCH), 5.9e23, prob_below(2.5), predictive=False)
    assert result.risk_value == 1.0
    assert result.N == pytest.approx(closed_form_n(EPOCH, 5.9e23), rel=0.02)


def test_max_n_caps_the_choice():
    free = allocate(point_mass(EPOCH), 5.9e23, predictive=False)
    capped = allocate(point_mass(EPOCH), 5.9e23, predictive=False, max_n=2e10)
    assert capped.N == pytest.approx(2e10, rel=1e-6)
    assert capped.loss_mean > free.loss_mean
    assert capped.n_opt_interval == pytest.approx((2e10, 2e10))  # each draw's optimum is capped too
    assert capped.regret == pytest.approx(0.0, abs=1e-5)  # the cap binds for every draw
    assert capped.constraints["max_n"] == 2e10 and not capped.at_boundary


def test_unique_token_cap_without_excess_parameter_decay_shifts_to_more_params():
    """Repeated tokens are worth less: with only the data decay (R_N -> inf), a unique-token cap
    well below D* moves the choice to more parameters and raises the predicted loss."""
    free = allocate(point_mass(EPOCH), 5.9e23, predictive=False)
    capped = allocate(
        point_mass(EPOCH),
        5.9e23,
        predictive=False,
        unique_tokens=1e11,
        repetition={"R_D": 15.39, "R_N": 1e9},
    )
    assert capped.law == "data_constrained"
    assert capped.N > 1.3 * free.N
    assert capped.loss_mean > free.loss_mean
    assert capped.D > 1e11  # still repeats data


def test_unique_token_cap_with_muennighoff_constants():
    """With Muennighoff's R_N = 5.31, parameters beyond the optimum for the unique data decay
    faster than repeated tokens, so the law spends the budget on more epochs instead."""
    free = allocate(point_mass(EPOCH), 5.9e23, predictive=False)
    capped = allocate(
        point_mass(EPOCH), 5.9e23, predictive=False, unique_tokens=1e11, repetition="muennighoff"
    )
    assert capped.loss_mean > free.loss_mean + 0.02
    assert capped.D > free.D and capped.D / 1e11 > 10  # many epochs
    # the engine's choice is the law's minimum on the iso-compute line (brute force, float64)
    spec = get_law("data_constrained")
    n = np.exp(np.linspace(np.log(1e9), np.log(1e13), 100_001))
    params = dict(EPOCH, **decide.MUENNIGHOFF_REPETITION)
    loss = np.asarray(
        spec.predict(params, {"N": n, "D": 5.9e23 / (6 * n), "U": np.full_like(n, 1e11)})
    )
    assert capped.N == pytest.approx(n[np.argmin(loss)], rel=0.02)
    assert capped.loss_mean == pytest.approx(loss.min(), rel=1e-4)


def test_unique_tokens_with_data_constrained_draws():
    draws = point_mass(dict(EPOCH, R_D=15.39, R_N=5.31))
    result = allocate(draws, 5.9e23, predictive=False, unique_tokens=1e11)
    assert result.law == "data_constrained"
    no_cap = allocate(draws, 5.9e23, predictive=False)  # U = D: no repetition, Chinchilla
    assert no_cap.N == pytest.approx(closed_form_n(EPOCH, 5.9e23), rel=0.02)
    assert result.loss_mean > no_cap.loss_mean


def test_unique_tokens_needs_a_repetition_model():
    with pytest.raises(ValueError, match="needs a data_constrained fit.*repetition='muennighoff'"):
        allocate(point_mass(EPOCH), 5.9e23, unique_tokens=1e11)
    with pytest.raises(ValueError, match="only applies with unique_tokens"):
        allocate(point_mass(EPOCH), 5.9e23, repetition="muennighoff")
    with pytest.raises(ValueError, match="unknown repetition preset 'hoffmann'"):
        allocate(point_mass(EPOCH), 5.9e23, unique_tokens=1e11, repetition="hoffmann")


def test_inference_tokens_shrink_the_model():
    budget = 1e24
    base = allocate(point_mass(EPOCH), budget, predictive=False)
    served = allocate(point_mass(EPOCH), budget, predictive=False, inference_tokens=1e13)
    assert served.N < base.N
    assert served.training_flops + served.inference_flops == pytest.approx(budget, rel=1e-6)
    assert served.inference_flops == pytest.approx(2 * served.N * 1e13, rel=1e-6)


def test_predictive_noise_and_seed():
    draws = lognormal_draws(500, sigma=0.05)
    a = allocate(draws, 5.9e23, seed=1)
    b = allocate(draws, 5.9e23, seed=1)
    c = allocate(draws, 5.9e23, predictive=False)
    assert a.N == b.N and a.loss_quantiles == b.loss_quantiles

    def spread(r):
        return r.loss_quantiles["0.95"] - r.loss_quantiles["0.05"]

    assert spread(a) > spread(c)
    lo, hi = a.n_opt_interval
    assert lo < a.N < hi
    assert a.regret > 0


def test_student_t_noise_runs():
    draws = lognormal_draws(300)
    draws["nu"] = np.full(300, 4.0)
    assert allocate(draws, 1e22).N > 0


def test_custom_callable_risk_matches_builtin():
    draws = lognormal_draws(300)

    def p90(loss):
        return float(np.quantile(loss, 0.9))

    custom = allocate(draws, 1e22, p90, num_candidates=32, predictive=False)
    builtin = allocate(draws, 1e22, quantile(0.9), num_candidates=32, predictive=False)
    assert custom.N == builtin.N
    assert custom.risk == "p90"


def test_to_dict_is_json_with_documented_keys():
    result = allocate(lognormal_draws(200), 5.9e23, "cvar:0.9", dollars_per_flop=1e-18)
    out = json.loads(json.dumps(result.to_dict()))
    assert {
        "N",
        "D",
        "tokens_per_param",
        "loss_quantiles",
        "n_opt_interval",
        "regret",
        "risk",
        "compute",
    } <= set(out)
    assert out["risk"] == "cvar:0.9"
    assert set(out["loss_quantiles"]) == {"0.05", "0.25", "0.5", "0.75", "0.95"}
    assert out["dollars"] == pytest.approx(5.9e23 * 1e-18)
    assert len(out["n_opt_interval"]) == 2


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"compute": -1.0}, ValueError, "compute must be > 0"),
        ({"compute": float("nan")}, ValueError, "compute must be finite"),
        ({"compute": 1e22, "max_n": 0}, ValueError, "max_n must be > 0"),
        ({"compute": 1e22, "num_candidates": 4}, ValueError, "num_candidates must be >= 8"),
        ({"compute": 1e22, "flops_per_token": -6}, ValueError, "flops_per_token must be > 0"),
        ({"compute": 1e22, "law": "power_law"}, ValueError, "needs a law over N and D"),
        ({"compute": 1e22, "law": "kaplan"}, ValueError, r"missing \['alpha_N'"),
        ({"compute": 1e22, "risk": "cvar:1.2"}, ValueError, "cvar level"),
        ({"compute": 1e22, "n_range": (1e10, 1e9)}, ValueError, "low < high"),
    ],
)
def test_allocate_errors(kwargs, exc, match):
    compute = kwargs.pop("compute")
    with pytest.raises(exc, match=match):
        allocate(point_mass(EPOCH), compute, **kwargs)


def test_draws_validation():
    bad = point_mass(EPOCH, 3)
    bad["E"] = np.array([1.8, np.nan, 1.8])
    with pytest.raises(
        ValueError, match=r"draws\['E'\] has 1 non-finite values \(first at draw 1\)"
    ):
        allocate(bad, 1e22)
    uneven = point_mass(EPOCH, 3)
    uneven["A"] = np.ones(4)
    with pytest.raises(ValueError, match="same length"):
        allocate(uneven, 1e22)
    with pytest.raises(TypeError, match="InferenceData"):
        allocate([1, 2, 3], 1e22)
    with pytest.raises(ValueError, match="cannot tell the law"):
        allocate({"foo": np.ones(3)}, 1e22)


def test_range_edge_warns():
    with pytest.warns(UserWarning, match=r"upper end of the candidate range.*n_range=\(low, high\)"):
        result = allocate(point_mass(EPOCH), 5.9e23, predictive=False, n_range=(1e9, 1e10))
    assert result.at_boundary


def test_heavy_student_t_tails_do_not_pick_the_allocation():
    # nu near 1 (as fitted on porian-discrepancies): exp(sigma t) has no finite mean, and with
    # Student-t noise one draw's huge noise decided 'expected' and 'cvar' alike (identical rows,
    # risk values of 1e15 or inf, the choice at the edge of the grid, regret NaN)
    draws = lognormal_draws(1000, sigma=0.03)
    draws["nu"] = np.full(1000, 0.8)
    mean = allocate(draws, 1e22, "expected", num_candidates=64)
    tail = allocate(draws, 1e22, "cvar:0.9", num_candidates=64)
    for r in (mean, tail):
        assert np.all(np.isfinite(r.risk_curve.values))
        assert 1.8 < r.risk_value < 3.0
        assert np.isfinite(r.regret) and not r.at_boundary
        lo, hi = r.n_opt_interval
        assert lo < r.N < hi
    assert tail.risk_value > mean.risk_value
    # the same as without nu: the noise is the normal core with the fitted sigma
    normal = allocate(lognormal_draws(1000, sigma=0.03), 1e22, "expected", num_candidates=64)
    assert normal.N == mean.N and normal.risk_value == pytest.approx(mean.risk_value)


def test_parameters_beyond_float32_refused():
    draws = lognormal_draws(100)
    draws["B"][[3, 7]] = 1e45
    with pytest.raises(ValueError, match=r"2 of 100 draws of 'B' exceed the float32 range"):
        allocate(draws, 1e22)


def test_prob_below_unreachable_warns_and_is_marked():
    draws = lognormal_draws(200)  # E near 1.82: a loss of 1.5 is out of reach at any size
    with pytest.warns(RuntimeWarning, match=r"loss 1.5 is out of reach.*best P\(loss <= 1.5\)"):
        result = allocate(draws, 1e22, "prob_below:1.5", num_candidates=32)
    assert result.target_unreachable and result.risk_value == 0.0
    assert result.to_dict()["target_unreachable"] is True
    reachable = allocate(draws, 1e22, "prob_below:2.6", num_candidates=32)
    assert not reachable.target_unreachable and reachable.risk_value > 0.5
    assert allocate(draws, 1e22, num_candidates=32).to_dict()["target_unreachable"] is False


def test_allocate_checks_the_law_before_the_group():
    import types

    fit = types.SimpleNamespace(posterior=xr.Dataset(attrs={"law": "batch_steps"}))
    with pytest.raises(ValueError, match="allocation needs a law over N and D.*'batch_steps'"):
        allocate(fit, 1e22, group=None)


def test_missing_sigma_warns():
    draws = {k: np.full(3, v) for k, v in EPOCH.items()}
    with pytest.warns(UserWarning, match="no 'sigma'"):
        allocate(draws, 1e22)


# --------------------------------------------------------------------------- targets


def test_compute_for_target_point_mass():
    result = compute_for_target(point_mass(EPOCH), 2.0, prob=0.5, predictive=False)
    # deterministic: the least C whose optimal loss is 2.0
    opt = allocate(point_mass(EPOCH), result.compute, predictive=False)
    assert opt.loss_mean == pytest.approx(2.0, abs=2e-4)
    assert result.achieved_prob == 1.0
    assert result.N * result.D * 6 == pytest.approx(result.compute, rel=1e-6)


def test_compute_for_target_monotone_in_prob():
    draws = lognormal_draws(400, seed=2)
    results = [compute_for_target(draws, 2.0, prob=p, num_candidates=128) for p in (0.2, 0.5, 0.8)]
    computes = [r.compute for r in results]
    assert computes[0] < computes[1] < computes[2]
    for r, p in zip(results, (0.2, 0.5, 0.8)):
        assert r.achieved_prob >= p
    json.dumps(results[0].to_dict())


def test_compute_for_target_unreachable():
    with pytest.raises(
        ValueError, match=r"reached with probability at most.*compute_bounds=\(low, high\)\)"
    ):
        compute_for_target(point_mass(EPOCH), 1.7, prob=0.5, predictive=False)
    with pytest.raises(ValueError, match=r"prob must be in \(0, 1\)"):
        compute_for_target(point_mass(EPOCH), 2.0, prob=1.0)


# --------------------------------------------------------------------------- inference-aware


def test_inference_aware_target_mode():
    results = [
        allocate_inference_aware(
            point_mass(EPOCH), tokens, target_loss=2.0, predictive=False, num_candidates=128
        )
        for tokens in (1e9, 1e12, 1e14)
    ]
    sizes = [r.N for r in results]
    assert sizes[0] > sizes[1] > sizes[2]
    small = results[0]
    # negligible inference demand: the Chinchilla compute-optimal model for the target
    assert small.N == pytest.approx(small.compute_optimal_N, rel=0.03)
    for r in results:
        assert r.loss_mean == pytest.approx(2.0, abs=1e-3)
        assert r.total_flops == pytest.approx(r.training_flops + r.inference_flops)
    json.dumps(results[-1].to_dict())


def test_inference_aware_budget_mode_and_prices():
    result = allocate_inference_aware(
        point_mass(EPOCH),
        1e13,
        budget=100.0,
        predictive=False,
        dollars_per_flop=1e-22,
        inference_dollars_per_flop=3e-22,
    )
    assert result.dollars == pytest.approx(100.0, rel=1e-5)
    assert result.training_flops * 1e-22 + result.inference_flops * 3e-22 == pytest.approx(100.0)


def test_inference_aware_errors():
    with pytest.raises(ValueError, match="exactly one of target_loss"):
        allocate_inference_aware(point_mass(EPOCH), 1e12)
    with pytest.raises(ValueError, match="use quantile"):
        allocate_inference_aware(point_mass(EPOCH), 1e12, target_loss=2.0, risk="prob_below:2")


# --------------------------------------------------------------------------- batch size


def batch_draws(size: int = 2000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "S_min": np.exp(rng.normal(math.log(1000.0), 0.2, size)),
        "B_noise": np.exp(rng.normal(math.log(500.0), 0.3, size)),
        "sigma": np.full(size, 0.05),
    }


def test_batch_size_point_mass():
    choice = choose_batch_size({"S_min": [1000.0], "B_noise": [500.0]}, max_overhead=0.2)
    assert choice.B == pytest.approx(100.0)
    assert choice.steps_quantiles["0.5"] == pytest.approx(1000.0 * (1 + 5.0))
    assert choice.overhead_mean == pytest.approx(0.2)
    assert choice.B_interval == pytest.approx((100.0, 100.0))


def test_batch_size_under_uncertainty():
    draws = batch_draws()
    mean_choice = choose_batch_size(draws, 0.2)
    assert mean_choice.overhead_mean == pytest.approx(0.2)
    lo, hi = mean_choice.B_interval
    assert lo < mean_choice.B < hi
    np.testing.assert_allclose(mean_choice.B_opt_draws, 0.2 * draws["B_noise"])
    safe = choose_batch_size(draws, 0.2, prob=0.9)
    assert safe.B < mean_choice.B
    assert safe.prob_within == pytest.approx(0.9, abs=0.005)
    # larger batches cost more data, fewer steps
    assert safe.steps_quantiles["0.5"] > mean_choice.steps_quantiles["0.5"]
    json.dumps(safe.to_dict())


def test_batch_size_for_cost_minimises_expected_cost():
    draws = batch_draws()
    w_t, w_c = 1.0, 0.004
    choice = batch_size_for_cost(draws, step_cost=w_t, example_cost=w_c)
    grid = np.exp(np.linspace(np.log(10), np.log(1e4), 4001))
    steps = draws["S_min"][:, None] * (1 + draws["B_noise"][:, None] / grid)
    cost = (w_t * steps + w_c * grid * steps).mean(axis=0)
    assert choice.B == pytest.approx(grid[np.argmin(cost)], rel=0.01)
    np.testing.assert_allclose(choice.B_opt_draws, np.sqrt(w_t * draws["B_noise"] / w_c))
    assert choice.method == "cost" and choice.prob_within is None


def test_choose_batch_sizes_per_group():
    groups = {"85M": batch_draws(seed=1), "1.2B": batch_draws(seed=2)}
    groups["1.2B"]["B_noise"] = groups["1.2B"]["B_noise"] * 4
    out = choose_batch_sizes(groups, 0.2)
    assert list(out) == ["85M", "1.2B"]
    assert out["1.2B"].B > 3 * out["85M"].B
    assert out["85M"].group == "85M"
    cost = choose_batch_sizes(groups, step_cost=1.0, example_cost=0.01)
    assert all(c.method == "cost" for c in cost.values())
    single = choose_batch_sizes(batch_draws(), 0.2)
    assert list(single) == ["all"]


def test_batch_size_errors():
    with pytest.raises(ValueError, match=r"missing \['B_noise'\]"):
        choose_batch_size({"S_min": [1.0]}, 0.2)
    with pytest.raises(ValueError, match="max_overhead must be > 0"):
        choose_batch_size(batch_draws(10), 0.0)
    with pytest.raises(ValueError, match=r"prob must be in \(0, 1\)"):
        choose_batch_size(batch_draws(10), 0.2, prob=1.5)
    with pytest.raises(ValueError, match=r"draws\['B_noise'\] must be > 0"):
        choose_batch_size({"S_min": [1.0], "B_noise": [-1.0]}, 0.2)
    with pytest.raises(ValueError, match="both step_cost and example_cost"):
        choose_batch_sizes(batch_draws(10), step_cost=1.0)


def test_infinite_nu_means_normal_noise_and_bad_noise_params():
    draws = lognormal_draws(200, sigma=0.05)
    draws["nu"] = np.full(200, np.inf)
    normal = allocate(draws, 1e22, seed=4)
    assert normal.loss_quantiles["0.95"] > normal.loss_quantiles["0.05"]
    draws["nu"] = np.full(200, -1.0)
    with pytest.raises(ValueError, match=r"draws\['nu'\] must be > 0"):
        allocate(draws, 1e22)
    draws = lognormal_draws(200)
    draws["sigma"][0] = -0.1
    with pytest.raises(ValueError, match=r"draws\['sigma'\] must be >= 0"):
        allocate(draws, 1e22)


def test_rng_key_is_used():
    import jax

    draws = lognormal_draws(200, sigma=0.05)
    a = allocate(draws, 1e22, rng_key=jax.random.PRNGKey(7))
    b = allocate(draws, 1e22, rng_key=jax.random.key(7))
    c = allocate(draws, 1e22, rng_key=jax.random.PRNGKey(8))
    assert a.loss_quantiles == b.loss_quantiles != c.loss_quantiles


# --------------------------------------------------------------------------- fits (slow)


def _quiet_fit(*args, **kwargs):
    import warnings

    inference = pytest.importorskip("bayes_scaling.inference")
    with warnings.catch_warnings():  # tiny budgets: R-hat / ESS warnings are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        return inference.fit(
            *args, num_chains=2, num_warmup=300, num_samples=300, seed=0, prior_samples=0, **kwargs
        )


@pytest.mark.slow
def test_allocate_accepts_a_fit():
    from bayes_scaling.datasets import load_dataset

    idata = _quiet_fit(load_dataset("demo"), "chinchilla")
    result = allocate(idata, 1e22)
    lo, hi = result.n_opt_interval
    assert lo <= result.N <= hi
    assert result.law == "chinchilla"
    assert compute_for_target(idata, result.loss_quantiles["0.5"], 0.5).compute < 1e23
    json.dumps(result.to_dict())


@pytest.mark.slow
def test_batch_sizes_from_a_grouped_fit():
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = [
        {"B": b, "steps": s_min * (1 + b_noise / b) * math.exp(rng.normal(0, 0.03)), "group": g}
        for g, b_noise, s_min in (("small", 300.0, 2000.0), ("large", 1200.0, 5000.0))
        for b in (32, 64, 128, 256, 512, 1024, 2048, 4096)
    ]
    idata = _quiet_fit(pd.DataFrame(rows), "batch_steps", group="group")
    out = choose_batch_sizes(idata, 0.2)
    assert set(out) == {"small", "large"}
    for label, b_noise in (("small", 300.0), ("large", 1200.0)):
        lo, hi = out[label].B_interval
        assert 0.7 * 0.2 * b_noise < out[label].B < 1.3 * 0.2 * b_noise
        assert lo <= out[label].B <= hi
    assert choose_batch_size(idata, 0.2, group="large").B == pytest.approx(out["large"].B)
    with pytest.raises(ValueError, match="needs a law over N and D.*'batch_steps'"):
        allocate(idata, 1e22, group="small")
