"""Law functions: exact values, jit/grad/vmap contracts over every registered law, registration errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayes_scaling import laws
from bayes_scaling.laws import LAWS, LawSpec, ParamSpec, get_law, register_law
from bayes_scaling.priors import PriorSet

# a point inside every law's domain, in natural units, and plausible parameter values
COVARIATES = {"N": 1e9, "D": 2e10, "C": 1.2e20, "U": 5e9, "B": 512.0, "steps": 2e4}
PARAMS = {
    "chinchilla": dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28),
    "kaplan": dict(alpha_N=0.076, alpha_D=0.095, N_c=8.8e13, D_c=5.4e13),
    "power_law": dict(E=1.7, A=2.0e3, alpha=0.15),
    "broken_power_law": dict(E=1.7, A=2.0e3, alpha=0.15, c=0.1, d=1e19, f=0.5),
    "data_constrained": dict(E=1.869, A=520.8, B=1487.7, alpha=0.3527, beta=0.3527, R_D=15.39, R_N=5.31),
    "batch_steps": dict(S_min=1e4, B_noise=300.0),
}


def law_params():
    return [pytest.param(spec, id=spec.name) for spec in LAWS.values() if spec.name in PARAMS]


def test_every_builtin_law_has_test_values():
    assert set(PARAMS) <= set(LAWS)
    assert {"chinchilla", "kaplan", "power_law", "broken_power_law", "data_constrained", "batch_steps"} <= set(LAWS)


def _log_x(spec):
    return {c: jnp.log(COVARIATES[c]) for c in spec.covariates}


def test_chinchilla_hand_computed():
    p = PARAMS["chinchilla"]
    expected = 1.69 + 406.4 * 1e9**-0.34 + 410.7 * 2e10**-0.28
    got = float(LAWS["chinchilla"].predict(p, {"N": 1e9, "D": 2e10}))
    assert got == pytest.approx(expected, rel=1e-6)


def test_kaplan_hand_computed():
    p = PARAMS["kaplan"]
    expected = ((8.8e13 / 1e9) ** (0.076 / 0.095) + 5.4e13 / 2e10) ** 0.095
    assert float(LAWS["kaplan"].predict(p, {"N": 1e9, "D": 2e10})) == pytest.approx(expected, rel=1e-6)


def test_power_law_hand_computed_and_other_covariate():
    p = PARAMS["power_law"]
    assert float(LAWS["power_law"].predict(p, {"C": 1.2e20})) == pytest.approx(1.7 + 2e3 * 1.2e20**-0.15, rel=1e-6)
    spec_n = get_law("power_law:N")
    assert spec_n.covariates == ("N",)
    assert float(spec_n.predict(p, {"N": 1e9})) == pytest.approx(1.7 + 2e3 * 1e9**-0.15, rel=1e-6)


def test_broken_power_law_hand_computed():
    p = PARAMS["broken_power_law"]
    x = 1.2e20
    expected = 1.7 + 2e3 * x**-0.15 * (1 + (x / 1e19) ** (1 / 0.5)) ** (-0.1 * 0.5)
    assert float(LAWS["broken_power_law"].predict(p, {"C": x})) == pytest.approx(expected, rel=1e-5)


def test_data_constrained_hand_computed():
    p = PARAMS["data_constrained"]
    N, D, U = 1e9, 2e10, 5e9
    r_d = D / U - 1
    d_eff = U + U * 15.39 * (1 - math.exp(-r_d / 15.39))
    a, b = p["alpha"], p["beta"]
    g = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
    n_opt = g ** ((a + b) / a) * U ** (b / a)
    u_n = min(N, n_opt)
    r_n = N / u_n - 1
    n_eff = u_n + u_n * 5.31 * (1 - math.exp(-r_n / 5.31))
    expected = p["E"] + p["A"] * n_eff**-a + p["B"] * d_eff**-b
    got = float(LAWS["data_constrained"].predict(p, {"N": N, "D": D, "U": U}))
    assert got == pytest.approx(expected, rel=1e-5)


def test_data_constrained_equals_chinchilla_without_repetition():
    p = PARAMS["data_constrained"]
    small_n = {"N": 1e8, "D": 2e9, "U": 5e9}  # U > D: one epoch, and N below N_opt(U)
    chin = {k: p[k] for k in ("E", "A", "B", "alpha", "beta")}
    assert float(LAWS["data_constrained"].predict(p, small_n)) == pytest.approx(
        float(LAWS["chinchilla"].predict(chin, small_n)), rel=1e-6
    )


def test_batch_steps_hand_computed():
    got = float(LAWS["batch_steps"].predict(PARAMS["batch_steps"], {"B": 512.0}))
    assert got == pytest.approx(1e4 * (1 + 300 / 512), rel=1e-6)


def test_log_space_is_stable_for_huge_covariates():
    p = PARAMS["chinchilla"]
    out = LAWS["chinchilla"].predict(p, {"N": 1e30, "D": 1e30})
    assert float(out) == pytest.approx(1.69, rel=1e-6)


@pytest.mark.parametrize("spec", law_params())
def test_jit_matches_eager(spec):
    p = {k: jnp.asarray(v) for k, v in PARAMS[spec.name].items()}
    x = _log_x(spec)
    assert float(jax.jit(spec.fn)(p, x)) == pytest.approx(float(spec.fn(p, x)), rel=1e-6)


@pytest.mark.parametrize("spec", law_params())
def test_gradients_finite(spec):
    p = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in PARAMS[spec.name].items()}
    grads = jax.grad(lambda q: spec.fn(q, _log_x(spec)))(p)
    assert set(grads) == set(spec.param_names)
    assert all(np.isfinite(float(g)) for g in grads.values())


@pytest.mark.parametrize("spec", law_params())
def test_vmap_over_draws_shapes(spec):
    S, n = 7, 5
    p = {k: jnp.full((S,), v) for k, v in PARAMS[spec.name].items()}
    x = {c: jnp.log(jnp.full((n,), COVARIATES[c])) for c in spec.covariates}
    out = jax.vmap(spec.fn, in_axes=(0, None))(p, x)
    assert out.shape == (S, n)
    assert np.isfinite(np.asarray(out)).all()


@pytest.mark.parametrize("spec", law_params())
def test_spec_contract(spec):
    assert spec.param_names == tuple(spec.priors.params)
    assert spec.target in ("loss", "steps")
    for p in spec.params:
        spec.priors.params[p.name].check_support(p.constraint)


def _user_spec(**overrides):
    base = dict(
        name="user_law",
        fn=lambda p, x: jnp.log(p["A"]) - p["alpha"] * x["C"],
        params=(ParamSpec("alpha"), ParamSpec("A", centre=("C", "alpha"))),
        covariates=("C",),
        formula="L = A C^-alpha",
        reference="test",
        priors=PriorSet.from_dict({"alpha": {"dist": "lognormal", "loc": -1.0, "scale": 0.5},
                                   "A": {"dist": "lognormal", "loc": 3.0, "scale": 2.0}}),
    )
    base.update(overrides)
    return LawSpec(**base)


def test_register_user_law_and_refuse_duplicate():
    spec = register_law(_user_spec())
    try:
        assert get_law("user_law") is spec
        with pytest.raises(ValueError, match="already registered"):
            register_law(_user_spec())
    finally:
        LAWS.pop("user_law", None)


def test_register_refuses_prior_mismatch_and_names_missing():
    bad = _user_spec(priors=PriorSet.from_dict({"alpha": {"dist": "lognormal", "loc": -1.0, "scale": 0.5}}))
    with pytest.raises(ValueError, match=r"no prior for \['A'\]"):
        register_law(bad)
    extra = _user_spec(priors=PriorSet.from_dict({
        "alpha": {"dist": "lognormal", "loc": -1.0, "scale": 0.5},
        "A": {"dist": "lognormal", "loc": 3.0, "scale": 2.0},
        "Z": {"dist": "normal", "loc": 0.0, "scale": 1.0}}))
    with pytest.raises(ValueError, match=r"unknown parameters \['Z'\]"):
        register_law(extra)
    assert "user_law" not in LAWS


def test_register_refuses_bad_support_and_centre():
    neg = _user_spec(priors=PriorSet.from_dict({"alpha": {"dist": "normal", "loc": 0.3, "scale": 0.5},
                                                "A": {"dist": "lognormal", "loc": 3.0, "scale": 2.0}}))
    with pytest.raises(ValueError, match="must be positive"):
        register_law(neg)
    wrong_cov = _user_spec(params=(ParamSpec("alpha"), ParamSpec("A", centre=("N", "alpha"))))
    with pytest.raises(ValueError, match="not among the law's covariates"):
        register_law(wrong_cov)
    wrong_order = _user_spec(params=(ParamSpec("A", centre=("C", "alpha")), ParamSpec("alpha")))
    with pytest.raises(ValueError, match="listed before it"):
        register_law(wrong_order)
    dup = _user_spec(params=(ParamSpec("alpha"), ParamSpec("alpha")))
    with pytest.raises(ValueError, match="duplicated parameter names"):
        register_law(dup)


def test_unknown_law_lists_available():
    with pytest.raises(KeyError, match="unknown law 'chinchila'; available: .*chinchilla"):
        get_law("chinchila")
    with pytest.raises(KeyError, match="covariate 'Q'"):
        get_law("power_law:Q")


def test_module_exports():
    for name in laws.__all__:
        assert hasattr(laws, name)
