"""The numpy diagnostics equal arviz's rank-normalised split R-hat, bulk ESS and tail ESS."""

import warnings

import numpy as np
import pytest

from bayes_scaling import convergence


def _chains(seed, num_chains, num_draws, rho=0.8, shift=0.0):
    rng = np.random.default_rng(seed)
    x = np.zeros((num_chains, num_draws))
    x[:, 0] = rng.standard_normal(num_chains)
    for t in range(1, num_draws):  # AR(1): ESS well below the draw count
        x[:, t] = rho * x[:, t - 1] + rng.standard_normal(num_chains)
    x[-1] += shift
    return x


CASES = [
    pytest.param(_chains(0, 4, 500), id="ar1-4x500"),
    pytest.param(_chains(1, 3, 201, rho=0.95, shift=0.5), id="shifted-odd-draws"),
    pytest.param(_chains(2, 2, 8, rho=0.0), id="short"),
    pytest.param(_chains(3, 1, 300), id="one-chain"),
    pytest.param(np.exp(_chains(4, 4, 1000, rho=-0.3)), id="skewed-antithetic"),
    pytest.param(np.round(_chains(5, 4, 300), 1), id="ties"),
    pytest.param(np.ones((4, 100)), id="constant"),
    pytest.param(_chains(6, 4, 3), id="too-few-draws"),
]


@pytest.mark.parametrize("draws", CASES)
def test_equal_to_arviz(draws):
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = {
            "rhat": az.rhat(draws, method="rank"),
            "bulk": az.ess(draws, method="bulk"),
            "tail": az.ess(draws, method="tail"),
        }
        got = {
            "rhat": convergence.rhat_rank(draws),
            "bulk": convergence.ess_bulk(draws),
            "tail": convergence.ess_tail(draws),
        }
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], float(value), rtol=1e-10, atol=0, equal_nan=True,
                                   err_msg=key)
    # the two computed together (a fit's diagnostics, the summary table) are the same numbers
    np.testing.assert_array_equal(convergence.rhat_and_ess_bulk(draws), (got["rhat"], got["bulk"]))


def test_summary_rows_per_group():
    draws = np.stack([_chains(7, 2, 100), _chains(8, 2, 100)], axis=-1)
    rows = convergence.summary_rows({"E": (draws, ["a", "b"]), "sigma": (draws[..., 0], None)})
    assert list(rows) == ["E[a]", "E[b]", "sigma"]
    assert list(rows["sigma"]) == ["mean", "sd", "q05", "q50", "q95", "r_hat", "ess_bulk", "ess_tail"]
    assert rows["E[a]"] == rows["sigma"]
    assert rows["E[b]"]["mean"] == pytest.approx(draws[..., 1].mean())


@pytest.mark.parametrize("num_draws", [4, 5, 6, 7, 9, 40])
def test_short_chains_equal_to_arviz(num_draws):
    # the draw counts where Geyer's pairs of lags run into the end of the chain
    import arviz as az

    for seed in range(5):
        draws = _chains(10 + seed, 3, num_draws, rho=0.9)
        np.testing.assert_allclose(convergence.ess_bulk(draws), az.ess(draws, method="bulk"),
                                   rtol=1e-10)
        np.testing.assert_allclose(convergence.rhat_rank(draws), az.rhat(draws, method="rank"),
                                   rtol=1e-10)


def test_many_quantities_at_once_equal_one_at_a_time():
    quantities = np.stack([_chains(20 + k, 4, 300, rho=r) for k, r in enumerate([0.0, 0.5, 0.95, -0.4])]
                          + [np.round(_chains(30, 4, 300), 1), np.ones((4, 300))])
    quantities[1, 2, 7] = np.nan  # a NaN spoils its own quantity only
    rhat, ess = convergence.rhat_and_ess_bulk_many(quantities)
    for k, draws in enumerate(quantities):
        np.testing.assert_allclose((rhat[k], ess[k]), convergence.rhat_and_ess_bulk(draws),
                                   rtol=1e-12, equal_nan=True)
    assert np.isnan(rhat[1]) and np.isnan(ess[1])
    assert np.isfinite(rhat[[0, 2, 3, 4]]).all() and ess[5] == 4 * 300
    with pytest.raises(ValueError, match="quantity, chain, draw"):
        convergence.rhat_and_ess_bulk_many(quantities[0])
