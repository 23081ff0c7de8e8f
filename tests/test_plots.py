"""Figures: each returns a Figure, draws on a given axes, and shows the right numbers.

Most tests use a synthetic fit (draws scattered around known parameters, no sampling), so the
numbers behind a figure can be checked against the law at those parameters.
"""

import math

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from fits_for_reports import TRUE, synthetic_fit
from matplotlib.figure import Figure

from bayes_scaling import decide, plots
from bayes_scaling.laws import get_law


@pytest.fixture(scope="module")
def fit():
    return synthetic_fit()


@pytest.fixture(scope="module")
def grouped():
    return synthetic_fit(grouped=True)


def _renders(fig) -> None:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


SINGLE = {
    "fit_curves": lambda f, ax: plots.fit_curves(f, ax=ax),
    "iso_flop": lambda f, ax: plots.iso_flop(f, ax=ax),
    "predictive_check": lambda f, ax: plots.predictive_check(f, ax=ax),
    "fan_chart": lambda f, ax: plots.fan_chart(f, compute=1e24, ax=ax),
    "frontier": lambda f, ax: plots.frontier(f, ax=ax),
    "exponent": lambda f, ax: plots.exponent(f, ax=ax),
}


@pytest.mark.parametrize("name", list(SINGLE))
def test_returns_a_figure_and_draws_on_the_axes_given(fit, name):
    from matplotlib.figure import Figure as MplFigure

    own = SINGLE[name](fit, None)
    assert isinstance(own, MplFigure)
    _renders(own)
    host = MplFigure()
    ax = host.add_subplot()
    assert SINGLE[name](fit, ax) is host
    assert ax.has_data()


def test_posteriors_one_panel_per_parameter_and_accepts_axes(fit):
    fig = plots.posteriors(fit)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert sorted(ax.get_title().split(":")[0] for ax in visible) == sorted(["E", "A", "B", "alpha", "beta", "sigma"])
    host = Figure()
    axes = host.subplots(1, 2)
    assert plots.posteriors(fit, ["alpha", "beta"], axes=axes) is host
    with pytest.raises(ValueError, match="2 variables need 2 axes"):
        plots.posteriors(fit, ["alpha", "beta"], axes=axes[:1])
    with pytest.raises(KeyError, match="unknown variables"):
        plots.posteriors(fit, ["gamma"])
    _renders(fig)


def test_compute_optimal_exponent_is_beta_over_alpha_plus_beta(fit):
    a = plots.compute_optimal_exponent(fit)
    post = fit.posterior
    expected = (post["beta"] / (post["alpha"] + post["beta"])).values.ravel()
    np.testing.assert_allclose(a, expected)
    assert abs(np.median(a) - TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])) < 0.01


def test_optimal_path_matches_the_chinchilla_closed_form():
    spec = get_law("chinchilla")
    draws = {k: np.array([v, v * 1.01]) for k, v in TRUE.items()}
    compute = np.array([1e20, 5.9e23])
    per_draw, mean_opt, _ = plots._optimal_path(spec, draws, compute, 6.0)
    a, b = draws["alpha"][:, None], draws["beta"][:, None]
    g = (a * draws["A"][:, None] / (b * draws["B"][:, None])) ** (1 / (a + b))
    closed = np.log(g * (compute[None, :] / 6.0) ** (b / (a + b)))
    # grid step is 0.034 in log N; the parabola refinement gets far closer
    np.testing.assert_allclose(per_draw, closed, atol=2e-3)
    # REFERENCE.md: Epoch refit at 5.9e23 FLOP gives N* about 73e9
    assert math.isclose(math.exp(per_draw[0, 1]), 73e9, rel_tol=0.03)
    assert mean_opt.shape == (2,)


def test_new_run_noise_has_the_fitted_scale():
    draws = {"sigma": np.full(4000, 0.05), "nu": np.full(4000, np.inf)}
    noisy = plots._new_run(np.zeros((4000, 3)), draws, seed=1)
    # normal noise when nu is infinite; sd within 3 Monte Carlo standard errors of 0.05
    assert np.all(np.abs(noisy.std(axis=0) - 0.05) < 3 * 0.05 / math.sqrt(2 * 4000))
    zero = plots._new_run(np.ones((10, 2)), {"sigma": np.zeros(10), "nu": np.full(10, 5.0)})
    np.testing.assert_array_equal(zero, 1.0)


def test_fan_chart_bands_centre_on_the_law_at_the_true_parameters(fit):
    spec = get_law("chinchilla")
    draws = plots._draws(fit, None)
    x_name, x, cov, _ = plots._fan_path(spec, draws, plots.fit_frame(fit), 1e24, 20.0, 6.0, 10)
    assert x_name == "C" and math.isclose(x[-1], 1e24)
    np.testing.assert_allclose(cov["D"] / cov["N"], 20.0, rtol=1e-9)
    np.testing.assert_allclose(6 * cov["N"] * cov["D"], x, rtol=1e-9)
    law = np.exp(plots._log_law(spec, draws, cov))
    truth = np.asarray(spec.predict(TRUE, cov))
    np.testing.assert_allclose(np.median(law, axis=0), truth, rtol=1e-2)
    fig = plots.fan_chart(fit, compute=1e24, tokens_per_param=20.0)
    assert "20 tokens/parameter" in fig.axes[0].get_title()


def test_fit_frame_rebuilds_the_fitted_runs(fit):
    from bayes_scaling import datasets

    frame = plots.fit_frame(fit)
    demo = datasets.load_dataset("demo")
    np.testing.assert_allclose(frame["loss"], demo["loss"], rtol=1e-6)
    np.testing.assert_allclose(frame["C"], 6 * demo["N"] * demo["D"], rtol=1e-9)
    # the same data passed explicitly gives no warning (warnings are errors here)
    assert len(plots.fit_frame(fit, demo)) == len(demo)
    with pytest.warns(UserWarning, match="differ from the data this fit was made on"):
        plots.fit_frame(fit, demo.iloc[:20])


def test_risk_curve_marks_the_choice_and_draws_several_measures(fit):
    allocations = [decide.allocate(fit, 1e23, r, num_candidates=64, seed=0) for r in ("expected", "cvar:0.9")]
    fig = plots.risk_curve(allocations)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lbl.startswith("expected: choose N =") for lbl in labels)
    assert any("cvar:0.9" in lbl for lbl in labels)
    assert "1e+23" in ax.get_title()
    # a bare risk-curve DataArray works too
    assert isinstance(plots.risk_curve(allocations[0].risk_curve), Figure)
    with pytest.raises(ValueError, match="at least one allocation"):
        plots.risk_curve([])
    _renders(fig)


def test_grouped_figures(grouped):
    fig = plots.group_contrast(grouped, ("baseline", "worse"), compute=1e22)
    ax = fig.axes[0]
    (median,) = [ln for ln in ax.get_lines() if ln.get_label() == "median difference"]
    # worse has E 3% higher and everything else equal: loss difference is -0.03 E at every compute
    np.testing.assert_allclose(median.get_ydata(), -0.03 * TRUE["E"], rtol=0.05)
    twin = fig.axes[1]
    np.testing.assert_array_equal(twin.get_lines()[0].get_ydata(), 1.0)
    for group in ("baseline", "worse", "new"):
        _renders(plots.fan_chart(grouped, group=group))
    _renders(plots.fit_curves(grouped, group="worse"))
    curves = plots.group_curves(grouped)
    assert [t.get_text() for t in curves.axes[0].get_legend().get_texts()] == ["baseline", "worse"]
    _renders(curves)
    _renders(plots.predictive_check(grouped))
    _renders(plots.exponent(grouped))
    _renders(plots.posteriors(grouped))


def test_group_errors_name_the_groups(fit, grouped):
    with pytest.raises(ValueError, match=r"has groups \['baseline', 'worse'\]"):
        plots.fan_chart(grouped)
    with pytest.raises(ValueError, match="unknown group 'best'"):
        plots.frontier(grouped, group="best")
    with pytest.raises(ValueError, match="has no groups"):
        plots.fan_chart(fit, group="baseline")
    with pytest.raises(ValueError, match="at least two groups"):
        plots.group_contrast(fit)
    with pytest.raises(ValueError, match="at least two groups"):
        plots.group_curves(fit)


BACKTEST = {
    "coverage_90": 0.5, "n_test": 2,
    "points": [
        {"index": 3, "N": 1e9, "D": 2e10, "observed": 2.31, "median": 2.30, "q05": 2.25, "q25": 2.28,
         "q75": 2.32, "q95": 2.36, "distance": 0.5, "baseline": 2.29},
        {"index": 4, "N": 2e9, "D": 4e10, "observed": 2.10, "median": 2.24, "q05": 2.19, "q25": 2.22,
         "q75": 2.26, "q95": 2.29, "distance": 1.2, "baseline": 2.23},
    ],
}


def test_backtest_chart_reads_the_backtest_report():
    fig = plots.backtest_chart(BACKTEST)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "training compute C (FLOP)"  # C = 6 N D from the points
    assert "50% inside their 90% interval" in ax.get_title()
    (observed,) = [ln for ln in ax.get_lines() if ln.get_label() == "observed"]
    np.testing.assert_allclose(observed.get_xdata(), [6 * 1e9 * 2e10, 6 * 2e9 * 4e10])
    assert any(ln.get_label() == "point-fit baseline" for ln in ax.get_lines())
    _renders(fig)
    with pytest.raises(ValueError, match="no per-point predictions"):
        plots.backtest_chart({"coverage_90": 0.8})


def test_fan_chart_draws_the_discrepancy_only_when_there_is_one(fit):
    plain = plots.fan_chart(fit, compute=1e24)
    labels = [ln.get_label() for ln in plain.axes[0].get_lines()]
    assert not any("discrepancy" in lbl for lbl in labels)
    wide = plots.fan_chart(fit, compute=1e24, discrepancy=0.02)
    ax = wide.axes[0]
    assert len([ln for ln in ax.get_lines() if ln.get_color() == plots.STRUCTURAL_COLOUR]) == 2
    assert any("with discrepancy" in t.get_text() for t in ax.texts)
    # the numbers: inside the data the discrepancy adds nothing, far outside it dominates
    inside_and_far = {"N": np.array([1e9, 1e12]), "D": np.array([2e10, 2e13])}
    law, structural, _, disc = plots.predictive(fit, inside_and_far, discrepancy=0.02)
    assert disc.method == "fixed"

    def width(a):
        hi, lo = np.quantile(np.log(a), [0.95, 0.05], axis=0)
        return hi - lo

    assert width(structural)[0] == pytest.approx(width(law)[0], rel=1e-6)
    assert width(structural)[1] > 2 * width(law)[1]
    assert plots.resolve_discrepancy(fit) is None


def test_one_covariate_law_draws_against_its_covariate():
    """A power law over C: the fit-shaped data built by hand, curves against C."""
    import pandas as pd

    from bayes_scaling import inference

    c = np.geomspace(1e18, 1e21, 12)
    df = pd.DataFrame({"C": c, "loss": 1.7 + 40.0 * c ** -0.08})
    inputs = inference.prepare(df, "power_law")
    rng = np.random.default_rng(0)
    shape = (2, 50)
    samples = {"alpha": 0.08 + 0.002 * rng.standard_normal(shape), "E": 1.7 + 0.01 * rng.standard_normal(shape),
               "A": 40.0 * np.exp(0.01 * rng.standard_normal(shape)), "sigma": np.full(shape, 0.01),
               "nu": 5 + rng.random(shape)}
    extra = {"diverging": np.zeros(shape, bool), "num_steps": np.ones(shape), "energy": np.zeros(shape),
             "potential_energy": np.zeros(shape), "accept_prob": np.ones(shape)}
    one = inference.to_inference_data(inference._to_groups(inputs, samples, extra))
    fig = plots.fit_curves(one)
    assert fig.axes[0].get_xlabel() == "training compute C (FLOP)"
    fig = plots.fan_chart(one, compute=1e24)
    assert fig.axes[0].get_xlim()[1] >= 1e24
    with pytest.raises(ValueError, match="needs a law over N and D"):
        plots.frontier(one)
    with pytest.raises(ValueError, match="compute-optimal exponent is defined"):
        plots.exponent(one)
