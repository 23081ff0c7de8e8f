"""Fits shared by the plot, report and browser tests.

``demo_fit()`` is one real NUTS fit of the demo data at a tiny budget (2 chains x 200 + 200),
made once per test session. ``synthetic_fit()`` builds an InferenceData with the layout of a real
fit from known parameters plus a little jitter, without sampling: instant, and exact enough to
check numbers against hand computations. Both are cached, so treat them as read-only.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

TRUE = {"E": 1.817, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
DEMO_BUDGET = {"num_chains": 2, "num_warmup": 200, "num_samples": 200, "seed": 0}


@functools.cache
def demo_fit():
    import warnings

    from bayes_scaling import datasets, inference

    with warnings.catch_warnings():  # a tiny budget: R-hat, ESS and divergence warnings are expected
        warnings.filterwarnings("ignore", message="max R-hat", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message=".*divergent transitions", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message="min effective sample size", category=RuntimeWarning)
        return inference.fit(datasets.load_dataset("demo"), "chinchilla", **DEMO_BUDGET)


def _grouped_demo() -> pd.DataFrame:
    from bayes_scaling import datasets

    demo = datasets.load_dataset("demo")
    other = demo.copy()
    other["loss"] = demo["loss"] * 1.03  # a worse recipe: 3% higher loss everywhere
    return pd.concat([demo.assign(recipe="baseline"), other.assign(recipe="worse")], ignore_index=True)


@functools.cache
def synthetic_fit(grouped: bool = False, jitter: float = 0.02, num_chains: int = 2, num_draws: int = 300):
    """A fit-shaped InferenceData whose draws scatter around ``TRUE`` by ``jitter`` (relative).

    Grouped: groups ``baseline`` and ``worse`` with ``E`` and ``alpha`` pooled (``worse`` has
    ``E`` 3% higher), the rest shared.
    """
    from bayes_scaling import datasets, inference

    rng = np.random.default_rng(0)
    shape = (num_chains, num_draws)
    if grouped:
        pooling = {"E": "pooled", "alpha": "pooled", "A": "shared", "B": "shared", "beta": "shared"}
        inputs = inference.prepare(_grouped_demo(), "chinchilla", group="recipe", pooling=pooling)
    else:
        inputs = inference.prepare(datasets.load_dataset("demo"), "chinchilla")
    samples = {}
    for name, value in TRUE.items():
        samples[name] = value * np.exp(jitter * rng.standard_normal(shape))
    samples["sigma"] = np.full(shape, 0.01) * np.exp(0.05 * rng.standard_normal(shape))
    samples["nu"] = 8.0 + rng.random(shape)
    if grouped:
        for name, factors in (("E", (1.0, 1.03)), ("alpha", (1.0, 1.0))):
            base = samples[name]
            samples[name] = np.stack([base * f for f in factors], axis=-1)
            samples[f"{name}_pop_loc"] = np.log(base * 1.015)
            samples[f"{name}_pop_sd"] = np.full(shape, 0.02)
    extra = {
        "diverging": np.zeros(shape, dtype=bool),
        "num_steps": np.full(shape, 15),
        "energy": rng.standard_normal(shape),
        "potential_energy": rng.standard_normal(shape),
        "accept_prob": np.full(shape, 0.9),
    }
    groups = inference._to_groups(inputs, samples, extra)
    return inference.to_inference_data(groups)
