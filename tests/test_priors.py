"""Prior sets: every shipped file round-trips, the whitelist is enforced, overrides merge."""

import numpy as np
import pytest

from bayes_scaling.laws import LAWS, get_law
from bayes_scaling.priors import (
    DISTRIBUTIONS,
    Prior,
    PriorSet,
    available_prior_sets,
    load_prior_set,
    resolve_priors,
)


@pytest.mark.parametrize("name", available_prior_sets())
def test_shipped_prior_sets_round_trip(name, tmp_path):
    prior_set = load_prior_set(name)
    path = tmp_path / f"{name}.toml"
    path.write_text(prior_set.to_toml())
    again = PriorSet.from_toml(path)
    assert again.to_dict() == prior_set.to_dict()


@pytest.mark.parametrize("name", available_prior_sets())
def test_shipped_prior_sets_fit_their_law(name):
    prior_set = load_prior_set(name)
    law = get_law(prior_set.law)
    assert set(prior_set.params) == set(law.param_names)
    resolve_priors(law, prior_set)  # support checks pass


def test_a_literature_set_exists_for_chinchilla():
    assert "chinchilla-literature" in available_prior_sets()
    lit = load_prior_set("chinchilla-literature")
    # centred on the Besiroglu et al. 2024 refit
    assert np.exp(lit.params["alpha"].kwargs["loc"]) == pytest.approx(0.348, rel=1e-3)
    assert np.exp(lit.params["E"].kwargs["loc"]) == pytest.approx(1.817, rel=1e-3)


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_every_whitelisted_distribution_builds(name):
    required, _ = DISTRIBUTIONS[name]
    args = {"loc": 0.5, "scale": 1.0, "low": 0.0, "high": 2.0, "concentration": 2.0, "rate": 1.0, "df": 3.0, "value": 4.0}
    prior = Prior.from_dict({"dist": name, **{k: args[k] for k in required}})
    if name == "fixed":
        assert prior.support == (4.0, 4.0)
        return
    import jax

    d = prior.to_numpyro()
    draw = float(d.sample(jax.random.PRNGKey(0)))
    low, high = prior.support
    assert low <= draw <= high


def test_unknown_distribution_and_bad_arguments():
    with pytest.raises(ValueError, match="unknown distribution 'lognorm'; expected one of"):
        Prior.from_dict({"dist": "lognorm", "loc": 0, "scale": 1})
    with pytest.raises(ValueError, match=r"missing \['scale'\]"):
        Prior.from_dict({"dist": "normal", "loc": 0})
    with pytest.raises(ValueError, match=r"unexpected \['sd'\]"):
        Prior.from_dict({"dist": "normal", "loc": 0, "scale": 1, "sd": 2})
    with pytest.raises(ValueError, match="'scale' must be > 0"):
        Prior.from_dict({"dist": "halfnormal", "scale": -1})
    with pytest.raises(ValueError, match="finite number"):
        Prior.from_dict({"dist": "normal", "loc": "zero", "scale": 1})
    with pytest.raises(ValueError, match="low < high"):
        Prior.from_dict({"dist": "uniform", "low": 2, "high": 1})


def test_override_merges_and_rejects_unknown_parameter():
    law = LAWS["chinchilla"]
    merged = resolve_priors(law, {"alpha": {"dist": "lognormal", "loc": -1.0, "scale": 0.1}})
    assert merged.params["alpha"].kwargs == {"loc": -1.0, "scale": 0.1}
    assert merged.params["E"] == law.priors.params["E"]
    with pytest.raises(ValueError, match=r"parameters \['gamma'\] that law 'chinchilla' does not have"):
        resolve_priors(law, {"gamma": {"dist": "normal", "loc": 0, "scale": 1}})
    with pytest.raises(ValueError, match="must be positive"):
        resolve_priors(law, {"E": {"dist": "normal", "loc": 1.8, "scale": 1}})


def test_noise_override_and_fixed_nu():
    law = LAWS["chinchilla"]
    merged = resolve_priors(law, {"noise": {"nu": {"value": 4.0}}})
    assert merged.noise["nu"].dist == "fixed"
    assert merged.noise["sigma"] == law.priors.noise["sigma"]
    with pytest.raises(ValueError, match="unknown noise priors"):
        PriorSet.from_dict({"noise": {"tau": {"dist": "halfnormal", "scale": 1}}})


def test_toml_file_and_named_set(tmp_path):
    law = LAWS["chinchilla"]
    path = tmp_path / "mine.toml"
    path.write_text('[params]\nbeta = { dist = "lognormal", loc = -1.0, scale = 0.2 }\n')
    assert resolve_priors(law, path).params["beta"].kwargs["scale"] == 0.2
    assert resolve_priors(law, "chinchilla-literature").name == "chinchilla-literature"
    with pytest.raises(KeyError, match="unknown prior set 'nope'"):
        resolve_priors(law, "nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("[params\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        resolve_priors(law, bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_priors(law, tmp_path / "missing.toml")
