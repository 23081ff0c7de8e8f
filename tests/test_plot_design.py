"""The fitted-curves figure draws curves along the runs' own design, chosen from the data."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from bayes_scaling import fit, plots
from bayes_scaling.datasets import load_dataset
from bayes_scaling.plots.design import run_design


@pytest.mark.parametrize(
    "name, kind",
    [
        ("gadre-overtraining", "model_size"),  # 6 model sizes x 8 token multipliers
        ("demo", "ratio"),  # 8 sizes x 6 tokens-per-parameter ratios: the ratios hold more runs
        ("porian-discrepancies", "iso_flop"),  # IsoFLOP profiles: a dozen budgets
    ],
)
def test_design_of_the_shipped_datasets(name, kind):
    frame = load_dataset(name)
    if "group" in frame:
        frame = frame[frame["group"] == frame["group"].iloc[0]]
    design = run_design(frame.reset_index(drop=True))
    assert design.kind == kind
    assert 2 <= design.levels.size <= 6
    assert all(m.size >= 2 for m in design.members)


def test_design_choice_and_levels():
    sizes = np.repeat([1e8, 3e8, 1e9], 4)
    grid = pd.DataFrame({"N": sizes, "D": sizes * np.tile([5, 10, 20, 40], 3) * 1.37})
    assert run_design(grid).kind == "model_size"  # 4 runs per size beat 3 per ratio
    sizes = np.repeat([1e8, 2e8, 5e8, 1e9], 3)
    grid = pd.DataFrame({"N": sizes, "D": sizes * np.tile([5, 20, 80], 4)})
    assert run_design(grid).kind == "ratio"  # 4 runs per ratio beat 3 per size
    by_size = pd.DataFrame({"N": np.repeat([1e8, 1e9], 5), "D": np.geomspace(1e9, 1e11, 10)})
    assert run_design(by_size).kind == "model_size"
    np.testing.assert_allclose(run_design(by_size).levels, [1e8, 1e9])
    budgets = np.repeat([1e18, 1e19], 5)
    n = np.tile(np.geomspace(1e7, 1e9, 5), 2)
    iso = pd.DataFrame({"N": n, "D": budgets / (6 * n)})
    found = run_design(iso)
    assert found.kind == "iso_flop" and found.levels.size == 2
    assert run_design(iso, kind="model_size").kind == "model_size"
    with pytest.raises(ValueError, match="unknown design 'grid'"):
        run_design(iso, kind="grid")


@pytest.fixture(scope="module")
def gadre_fit():
    frame = load_dataset("gadre-overtraining")[["N", "D", "loss"]]
    return fit(frame, "chinchilla", num_chains=1, num_warmup=20, num_samples=100,
               method="laplace")


def test_curves_pass_through_their_runs_and_are_never_clipped(gadre_fit):
    fig = plots.fit_curves(gadre_fit)
    ax = fig.axes[0]
    assert "per model size" in ax.get_title() and ax.get_xlabel() == "training tokens D"
    lo, hi = ax.get_ylim()
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 2]
    assert len(lines) == 6
    for line in lines:
        y = np.asarray(line.get_ydata())
        assert lo <= y.min() and y.max() <= hi  # the whole curve is inside the axes
    frame = load_dataset("gadre-overtraining")
    design = run_design(frame)
    for line, members in zip(lines, design.members, strict=True):
        runs = frame.iloc[members]  # each run within 15% of its curve's median
        curve = np.interp(np.log(runs["D"]), np.log(line.get_xdata()), line.get_ydata())
        assert np.median(np.abs(curve / runs["loss"] - 1)) < 0.15


def test_iso_flop_is_still_available(gadre_fit):
    fig = plots.iso_flop(gadre_fit)
    assert "iso-FLOP" in fig.axes[0].get_title()
