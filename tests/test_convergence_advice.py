"""Convergence warnings of grouped fits name the worst-mixing site and the pooling that removes it."""

import importlib
import warnings

import numpy as np
import xarray as xr

from bayes_scaling.cli._common import cli_words

D = importlib.import_module("bayes_scaling.inference.diagnostics")  # the module, not the function


def _posterior(stuck: str | None) -> xr.Dataset:
    """4 chains x 2000 draws of well-mixed normals; ``stuck`` gets chains at different levels."""
    rng = np.random.default_rng(0)
    data = {}
    for name in ("alpha_pop_loc", "alpha_pop_sd", "E_pop_sd", "sigma"):
        v = rng.standard_normal((4, 2000))
        if name == stuck:
            v = v + np.arange(4)[:, None]  # chains disagree: R-hat far above 1.01
        data[name] = (("chain", "draw"), v)
    data["alpha"] = (("chain", "draw", "group"), rng.standard_normal((4, 2000, 3)))
    return xr.Dataset(data, coords={"group": ["a", "b", "c"]})


def _messages(posterior: xr.Dataset) -> list[str]:
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((4, 2000), dtype=bool))})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        D.warn_diagnostics(posterior, stats)
    return [str(w.message) for w in caught]


def test_worst_site_is_the_stuck_one():
    name, rhat, _ = D.worst_site(_posterior("E_pop_sd"))
    assert name == "E_pop_sd" and rhat > 1.5


def test_a_stuck_population_scale_suggests_sharing_that_parameter():
    (rhat_message,) = [m for m in _messages(_posterior("alpha_pop_sd")) if m.startswith("max R-hat")]
    assert "'alpha_pop_sd'" in rhat_message and "over 3 groups" in rhat_message
    assert "pooling={'alpha': 'shared'}" in rhat_message
    assert "--pool alpha=shared" in cli_words(rhat_message)  # the CLI's words for it


def test_no_pooling_advice_when_a_shared_parameter_mixes_worst():
    messages = _messages(_posterior("sigma"))
    assert any("R-hat" in m for m in messages)
    assert not any("pooling=" in m for m in messages)
    assert _messages(_posterior(None)) == []  # well mixed: no warning at all


def _divergence_message(target_accept_prob, groups: bool) -> str:
    posterior = _posterior(None) if groups else _posterior(None).drop_vars(["alpha", "group"])
    posterior.attrs["target_accept_prob"] = target_accept_prob  # as a fit records it
    diverging = np.zeros((4, 2000), dtype=bool)
    diverging[0, :3] = True
    stats = xr.Dataset({"diverging": (("chain", "draw"), diverging)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        D.warn_diagnostics(posterior, stats)
    (message,) = [str(w.message) for w in caught if "divergent" in str(w.message)]
    return message


def test_divergence_advice_names_a_target_above_the_one_used():
    at_90 = _divergence_message(0.9, groups=False)
    assert at_90.startswith("3 divergent transitions")
    assert "target_accept_prob=0.95 or 0.99 (this fit used 0.9)" in at_90
    assert "across groups" not in at_90  # one curve: no pooling advice
    at_95 = _divergence_message(0.95, groups=True)
    assert "target_accept_prob=0.99 (this fit used 0.95)" in at_95 and "across groups" in at_95
    assert "--target-accept 0.99 (this fit used 0.95)" in cli_words(at_95)
    at_99 = _divergence_message(0.99, groups=False)
    assert "already used target_accept_prob=0.99" in at_99 and "0.95" not in at_99
    assert "already used --target-accept 0.99" in cli_words(at_99)


def test_a_static_hmc_fit_that_mixes_badly_suggests_nuts():
    posterior = _posterior("alpha_pop_sd")
    posterior.attrs["trajectory_length"] = 3.0  # as a grouped fit by static HMC records it
    (rhat_message,) = [m for m in _messages(posterior) if m.startswith("max R-hat")]
    assert "static HMC with a fixed mean trajectory length (3)" in rhat_message
    assert "NUTS (trajectory_length=None)" in rhat_message
    assert "NUTS (--trajectory-length nuts)" in cli_words(rhat_message)
    assert not any("trajectory" in m for m in _messages(_posterior("sigma")))  # NUTS fit: none


def test_trajectory_length_flag_reads_auto_nuts_or_a_length():
    import argparse

    import pytest

    from bayes_scaling.cli._common import trajectory_type

    assert trajectory_type("auto") == "auto" and trajectory_type("nuts") is None
    assert trajectory_type("2.5") == 2.5
    for bad in ("0", "-1", "inf", "nan", "long"):
        with pytest.raises(argparse.ArgumentTypeError, match="auto, nuts or a positive number"):
            trajectory_type(bad)


def test_cli_summary_line_agrees_with_the_warnings():
    """The line after sampling counts every site, as the warnings do: a stuck population scale
    shows in its R-hat even where the law's own parameters mix well."""
    from bayes_scaling.cli.fitting import sampled_line

    posterior = _posterior("E_pop_sd")
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((4, 2000), dtype=bool))})
    line = sampled_line({"posterior": posterior, "sample_stats": stats}, "nuts", 1.0)
    worst = D.diagnostics(posterior, stats)
    law_only = D.diagnostics(posterior, stats, ["alpha"])
    assert worst["max_rhat"] > 1.5 and law_only["max_rhat"] < 1.01  # the case the test needs
    assert f"max R-hat {worst['max_rhat']:.3f}," in line
    assert f"min ESS {worst['min_ess']:.0f}," in line and line.endswith("divergences 0")
    (message,) = [m for m in _messages(posterior) if m.startswith("max R-hat")]
    assert message.startswith(f"max R-hat is {worst['max_rhat']:.3f}")


def test_a_grouped_fit_that_mixes_badly_suggests_the_pilot_unless_it_ran_one():
    (rhat_message,) = [m for m in _messages(_posterior("sigma")) if m.startswith("max R-hat")]
    assert "(pilot=True)" in rhat_message
    assert "(--pilot)" in cli_words(rhat_message) and "pilot=True" not in cli_words(rhat_message)
    piloted = _posterior("sigma")
    piloted.attrs["pilot"] = 1  # as a fit with a pilot run records it
    assert not any("pilot" in m for m in _messages(piloted))
    one_curve = _posterior("sigma").drop_vars(["alpha", "group"])
    assert not any("pilot" in m for m in _messages(one_curve))


def test_cli_words_for_the_decisions_and_the_calibration():
    """The messages of ``target`` and ``calibrate`` name the command line's flags there."""
    target = ("target loss 0.5 is reached with probability at most 0.001 (at compute 1e+40 FLOP), "
              "below prob=0.9; raise target_loss, lower prob or raise the upper compute bound "
              "(compute_bounds=(low, high))")
    assert cli_words(target).endswith(
        "below --prob 0.9; raise --loss, lower --prob or raise the upper compute bound "
        "(--compute-bounds LOW,HIGH)")
    assert cli_words("place the cuts by hand (cuts=[...])") == (
        "place the cuts by hand (--cuts Q1,Q2,...)")
    assert cli_words("this fit has groups ['a']; pass group= one of them (or 'new')") == (
        "this fit has groups ['a']; pass --group with one of them (or 'new')")
    # a Python argument that merely ends in the same letters is left alone
    assert cli_words("target_accept_prob=0.95") == "--target-accept 0.95"


def test_a_re_whitened_fit_records_the_target_its_kept_draws_ran_at():
    """The kept draws of a re-whitened run come from chains that aim at an acceptance of at
    least ``REWHITENED_TARGET_ACCEPT``: the fit records that target, so that the divergence
    advice names one above it (raising the target to 0.95 would change nothing there)."""
    import jax
    import pandas as pd

    from bayes_scaling import inference
    from bayes_scaling.engine import REWHITENED_TARGET_ACCEPT, SamplerSettings

    rng = np.random.default_rng(0)
    C = np.geomspace(1e15, 1e21, 8)
    noise = np.exp(0.01 * rng.standard_normal((3, C.size)))
    rows = [(f"g{g}", c, (1.8 + 0.1 * g + 1.5 * (c / 1e15) ** -0.3) * noise[g, i])
            for g in range(3) for i, c in enumerate(C)]
    data = pd.DataFrame(rows, columns=["run", "C", "loss"])
    pooling = {"E": "pooled", "A": "shared", "alpha": "shared"}
    inputs = inference.prepare(data, "power_law", group="run", pooling=pooling)
    budget = {"num_chains": 2, "num_warmup": 40, "num_samples": 20, "chain_method": "sequential"}
    recorded = {}
    for target, pilot in ((0.9, True), (0.99, True), (0.9, False)):
        settings = SamplerSettings(**budget, target_accept_prob=target, pilot=pilot)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a short run: its diagnostics are not the point
            groups = inference.sample(inputs, jax.random.PRNGKey(0), settings, prior_samples=0)
        recorded[target, pilot] = groups["posterior"].attrs["target_accept_prob"]
    assert REWHITENED_TARGET_ACCEPT > 0.9
    assert recorded[0.9, True] == REWHITENED_TARGET_ACCEPT  # the re-whitened chains' own
    assert recorded[0.99, True] == 0.99  # a higher target of the user's is kept
    assert recorded[0.9, False] == 0.9  # no re-whitening: the run's one target
