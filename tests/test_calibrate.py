"""Issue 13: the calibration suite, no hidden refits, decisions under the discrepancy, fit stores it."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from bayes_scaling import backtest as B
from bayes_scaling import decide, inference
from bayes_scaling import predict as P
from bayes_scaling.datasets import load_dataset

HERE = Path(__file__).resolve().parent
EPOCH = dict(E=1.817, A=482.0, B=2085.0, alpha=0.348, beta=0.366)
LAPLACE = dict(method="laplace", num_chains=2, num_samples=200, prior_samples=0, seed=0)


@pytest.fixture(scope="module")
def demo_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return inference.fit(load_dataset("demo"), "chinchilla", **LAPLACE)


# --------------------------------------------------------------------------- scores


def test_interval_score_and_pit():
    draws = np.linspace(0.0, 1.0, 101)[:, None] * np.ones((1, 3))
    observed = np.array([0.5, -1.0, 3.0])
    s = B.interval_score(draws, observed, 0.9)
    lo, hi = B.central_interval(draws, 0.9)
    assert s[0] == pytest.approx(hi[0] - lo[0])  # inside: the width
    assert s[1] == pytest.approx(hi[1] - lo[1] + 20 * (lo[1] + 1.0))  # 2 / alpha = 20
    assert s[2] == pytest.approx(hi[2] - lo[2] + 20 * (3.0 - hi[2]))
    np.testing.assert_allclose(B.pit(draws, observed), [0.5, 0.0, 1.0])


# --------------------------------------------------------------------------- no hidden refits


def test_predict_uses_the_stored_discrepancy_and_never_refits(demo_fit, monkeypatch):
    fit = demo_fit
    P.attach_discrepancy(fit, None)

    def no_fit(*args, **kwargs):
        raise AssertionError("predict refitted")

    monkeypatch.setattr(inference, "fit", no_fit)
    before = dict(inference.TRACE_COUNTS)
    pts = {"N": [7e10], "D": [1.4e12]}
    with pytest.warns(UserWarning, match="no stored extrapolation discrepancy") as caught:
        pred = P.predict(fit, pts, seed=0)
        P.predict_frontier(fit, [1e24], seed=0)
        decide.allocate(fit, 1e24)
    assert len(caught) == 3 and all(Path(w.filename).name == Path(__file__).name for w in caught)
    assert pred.attrs["discrepancy"] == "" and "discrepancy" not in fit.posterior.attrs
    P.attach_discrepancy(fit, P.Discrepancy.fixed(0.02, "chinchilla", P.fit_data(fit)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stored = P.predict(fit, pts, seed=0)
    assert stored["discrepancy_sd"].values[0] > 0
    assert inference.TRACE_COUNTS == before
    P.attach_discrepancy(fit, None)


# --------------------------------------------------------------------------- decisions


def _draws(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    d = {k: v * np.exp(0.02 * rng.standard_normal(n)) for k, v in EPOCH.items()}
    d["sigma"] = np.full(n, 0.01)
    return d


def _box(tau):
    """Data up to N = 1e8 (and long runs): at 1e24 FLOP the larger N, the further out."""
    return P.Discrepancy.fixed(tau, "chinchilla", {"N": [1e7, 1e8, 1e8], "D": [1e9, 2e10, 1e15]})


def test_allocate_off_is_unchanged_and_the_discrepancy_widens_the_interval():
    draws = _draws()
    plain = decide.allocate(draws, 1e24, "expected", seed=3)
    off = decide.allocate(draws, 1e24, "expected", seed=3, discrepancy=None)
    assert plain.loss_quantiles == off.loss_quantiles and plain.N == off.N  # raw draws: off
    assert off.interval_parts["structural"] == 0 and off.discrepancy is None
    on = decide.allocate(draws, 1e24, "expected", seed=3, discrepancy=_box(0.02))
    width = {a: a.loss_quantiles["0.95"] - a.loss_quantiles["0.05"] for a in (off, on)}
    assert width[on] > 1.5 * width[off]
    parts = on.to_dict()["interval_parts"]
    assert set(parts) == {"parameter", "noise", "structural", "total"}
    assert parts["structural"] > parts["noise"] and on.to_dict()["discrepancy"]["distance"] > 0
    json.dumps(on.to_dict())


def test_cvar_choice_moves_with_the_discrepancy():
    draws = _draws()
    wide = dict(seed=1, n_range=(1e9, 1e13))
    off = decide.allocate(draws, 1e24, "cvar:0.9", discrepancy=None, **wide)
    on = decide.allocate(draws, 1e24, "cvar:0.9", discrepancy=_box(0.005), **wide)
    # the discrepancy grows with the distance from the data: caution picks a model nearer it
    assert on.N < 0.7 * off.N
    assert decide.allocate(draws, 1e24, "expected", discrepancy=_box(0.005), **wide).N > on.N
    target = decide.compute_for_target(draws, off.loss_quantiles["0.5"], 0.5, discrepancy=_box(0.01))
    assert target.to_dict()["interval_parts"]["structural"] > 0
    choice = decide.allocate_inference_aware(
        draws, 1e13, target_loss=2.3, risk="quantile:0.9", discrepancy=_box(0.01)
    )
    plain = decide.allocate_inference_aware(draws, 1e13, target_loss=2.3, risk="quantile:0.9")
    assert choice.cost > plain.cost and choice.interval_parts["structural"] > 0


def test_decisions_refuse_to_calibrate_and_a_tau_without_a_fit():
    with pytest.raises(ValueError, match="never refit"):
        decide.allocate(_draws(100), 1e24, discrepancy="calibrate")
    with pytest.raises(ValueError, match="needs a fit"):
        decide.allocate(_draws(100), 1e24, discrepancy=0.01)


# --------------------------------------------------------------------------- the suite


def test_calibrate_suite_reports_cuts_pooled_and_reliability():
    import bayes_scaling

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        report = bayes_scaling.calibrate(
            load_dataset("demo"), "chinchilla", cuts=[0.6, 0.8], num_chains=2, num_samples=200
        )
    assert report["axis"] == "C" and report["sampler"]["method"] == "laplace"
    cuts, pooled = report["cuts"], report["pooled"]
    assert len(cuts) + len(report["skipped"]) == 2 and cuts
    assert pooled["n_test"] == sum(c["n_test"] for c in cuts)
    for key in ("coverage_50", "coverage_90", "interval_score_90", "crps", "median_are", "pit"):
        assert key in pooled and key in cuts[0]
    assert cuts[0]["discrepancy"]["method"] == "leave-future-out"
    assert all(0 <= v <= 1 for v in pooled["pit"])
    assert sum(pooled["pit_histogram"]["counts"]) == pooled["n_test"]
    rel = report["reliability"]
    assert len(rel["nominal"]) == len(rel["observed"]) and rel["observed"] == sorted(rel["observed"])
    assert 0 < pooled["baseline"]["median_are"] < 0.1
    documented = " ".join(B.CALIBRATION_KEYS)
    assert all(k in documented for k in report) and all(k in documented for k in pooled)
    json.dumps(report)
    from bayes_scaling import plots

    plots.calibration_chart(report)


def test_calibrate_refuses_a_bad_axis_and_cuts():
    demo = load_dataset("demo")
    with pytest.raises(ValueError, match="axis 'steps'"):
        B.calibrate(demo, "chinchilla", axis="steps")
    with pytest.raises(ValueError, match="quantiles in"):
        B.calibrate(demo, "chinchilla", cuts=[0.5, 1.5])
    # no usable cut: too few runs overall, or cuts placed where too few are held out
    with pytest.raises(ValueError, match=r"\(4 runs; cuts at quantiles 0.5, 0.6, 0.7, 0.8, 0.9\); "
                       r"a calibration needs at least 17 runs$"):
        B.calibrate(demo.iloc[:4], "chinchilla")
    with pytest.raises(ValueError, match=r"cuts at quantiles 0.99\); place the cuts by hand"):
        B.calibrate(demo, "chinchilla", cuts=[0.99])


# --------------------------------------------------------------------------- the command line


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "bayes_scaling.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=HERE,
    )


@pytest.mark.slow
def test_cli_fit_stores_the_discrepancy_that_allocate_uses(tmp_path):
    csv = tmp_path / "demo.csv"
    load_dataset("demo").to_csv(csv, index=False)
    fit = tmp_path / "fit.nc"
    r = run("fit", str(csv), "--method", "laplace", "--chains", "2", "--samples", "300",
            "--out", str(fit))
    assert r.returncode == 0, r.stderr
    assert "discrepancy" in inference.load_fit(fit).posterior.attrs
    spread = {}
    for setting in ("auto", "off"):
        r = run("allocate", str(fit), "--compute", "1e24", "--discrepancy", setting, "--json")
        assert r.returncode == 0, r.stderr
        q = json.loads(r.stdout)["loss_quantiles"]
        spread[setting] = q["0.95"] - q["0.05"]
    assert spread["auto"] > spread["off"]
    out, png = tmp_path / "cal.json", tmp_path / "cal.png"
    r = run("calibrate", str(csv), "--cuts", "0.6,0.8", "--chains", "2", "--samples", "200",
            "--out", str(out), "--plot", str(png))
    assert r.returncode == 0, r.stderr
    assert "all" in r.stdout and png.stat().st_size > 0
    assert json.loads(out.read_text())["pooled"]["n_test"] > 0
