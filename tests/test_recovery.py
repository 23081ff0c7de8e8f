"""Recovery: simulate from known parameters with a fixed key, fit, and find the truth.

Every true value must lie within 4 posterior SDs of the posterior median, with R-hat <= 1.01 and
at most 1 divergent transition in 1,000 draws.
"""

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

from bayes_scaling import inference
from bayes_scaling.laws import LAWS

pytestmark = pytest.mark.slow


def _grid_nd(sizes, ratios):
    rows = [(n, n * r) for n, r in itertools.product(sizes, ratios)]
    return pd.DataFrame(rows, columns=["N", "D"])


def _simulate(law_name, frame, truth, sigma, seed):
    spec = LAWS[law_name]
    rng = np.random.default_rng(seed)
    mean = np.asarray(spec.log_predict(truth, {c: frame[c].to_numpy() for c in spec.covariates}))
    frame = frame.copy()
    frame[spec.target] = np.exp(mean + sigma * rng.standard_normal(len(frame)))
    return frame


CASES = {
    "chinchilla": (
        lambda: _grid_nd(np.geomspace(2e7, 3e9, 8), [5, 10, 20, 40, 80]),
        dict(E=1.817, A=482.0, B=2085.0, alpha=0.348, beta=0.366),
    ),
    "kaplan": (
        lambda: _grid_nd(np.geomspace(2e7, 3e9, 8), [2, 5, 10, 20, 40, 80, 200]),
        dict(alpha_N=0.076, alpha_D=0.095, N_c=8.8e13, D_c=5.4e13),
    ),
    "power_law": (
        lambda: pd.DataFrame({"C": np.geomspace(1e17, 1e22, 30)}),
        dict(E=1.8, A=300.0, alpha=0.12),
    ),
    "broken_power_law": (
        lambda: pd.DataFrame({"C": np.geomspace(1e15, 1e23, 60)}),
        dict(E=1.5, A=500.0, alpha=0.1, c=0.15, d=1e19, f=0.3),
    ),
    "data_constrained": (
        lambda: pd.DataFrame(
            [(n, u * e, u) for n in np.geomspace(5e7, 3e9, 6) for u in (1e8, 1e9, 1e10) for e in (1, 2, 4, 8, 16, 32, 64)],
            columns=["N", "D", "U"],
        ),
        dict(E=1.869, A=520.8, B=1487.7, alpha=0.3527, beta=0.3527, R_D=15.39, R_N=5.31),
    ),
    "batch_steps": (
        lambda: pd.DataFrame({"B": 2.0 ** np.arange(5, 15)}),
        dict(S_min=1.5e4, B_noise=700.0),
    ),
}


@pytest.mark.parametrize("law_name", list(CASES))
def test_recovery(law_name):
    make, truth = CASES[law_name]
    sigma = 0.05 if law_name == "batch_steps" else 0.01
    data = _simulate(law_name, make(), truth, sigma, seed=1)
    with warnings.catch_warnings():
        # a rare divergent transition is counted below, not raised: the power law's posterior
        # gave 1 in 32,000 draws over seeds 0-7 with the suite's XLA build, 0 with XLA's defaults
        warnings.filterwarnings("ignore", ".*divergent transitions", RuntimeWarning)
        idata = inference.fit(data, law_name, seed=0, num_chains=4, num_warmup=500, num_samples=1000, prior_samples=0)
    post = idata.posterior
    d = inference.diagnostics(post, idata.sample_stats, list(truth))
    assert d["max_rhat"] <= 1.01, d
    assert d["divergences"] <= 4, d  # at most 1 in 1,000 draws
    for name, value in truth.items():
        v = post[name].values.reshape(-1)
        # compare on the scale the sampler works on: log for positive parameters
        v, value = (np.log(v), np.log(value)) if LAWS[law_name].params[LAWS[law_name].param_names.index(name)].constraint == "positive" else (v, value)
        z = abs(np.median(v) - value) / v.std()
        assert z < 4, f"{name}: truth {value:.4g}, posterior median {np.median(v):.4g} sd {v.std():.3g} (z={z:.1f})"
