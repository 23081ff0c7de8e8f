"""Progress on stderr: the staged fit (start, compiled chunks, outputs) and the command line's bar.

The staged fit runs numpyro's kernel from the same states with the same keys as the one-call
program. Without warmup the two agree exactly; with warmup XLA compiles the adaptation
(dual averaging, mass matrix) into different programs, which can round a last bit differently,
and NUTS amplifies that over the iterations. So with warmup only what precedes the sampler
(prior draws, mode) is compared exactly.
"""

import importlib
import io
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

from bayes_scaling import cli, inference
from bayes_scaling.datasets import load_dataset
from bayes_scaling.engine import SamplerSettings, run_fit
from bayes_scaling.engine import chains as chains_module
from bayes_scaling.engine.progress import Progress, bar_line
from bayes_scaling.engine.staged import chunk_plan

run_module = importlib.import_module("bayes_scaling.engine.run")  # the module, not a function
staged_module = importlib.import_module("bayes_scaling.engine.staged")

HERE = Path(__file__).resolve().parent
PERCENT = re.compile(r"\b[0-9]+%")


@pytest.fixture(scope="module")
def demo_inputs():
    return inference.prepare(load_dataset("demo"), "chinchilla")


def _both(inputs, **settings):
    """The fused and the staged fit of the demo with the same key and settings."""
    out = {}
    for staged in (False, True):
        s = SamplerSettings(num_chains=2, progress_bar=staged, **settings)
        out[staged] = run_fit(
            inputs.spec,
            inputs.x,
            inputs.y,
            inputs.group_index,
            jax.random.PRNGKey(3),
            s,
            prior_samples=20,
        )
    return out[False], out[True]


# Every case compiles four programs (the fused one and three stages), so the exact comparisons
# cover NUTS with vectorized chains and the grouped fits' default (static HMC, chains in
# parallel over the host devices); sequential chains, a plain map over the same step, run in
# the test with warmup below.
@pytest.mark.parametrize("chain_method", ["vectorized"])
def test_staged_fit_draws_equal_the_fused_ones(demo_inputs, chain_method, capsys):
    fused, staged = _both(demo_inputs, num_warmup=0, num_samples=25, chain_method=chain_method)
    for k, v in fused["samples"].items():
        np.testing.assert_allclose(staged["samples"][k], v, rtol=1e-6, err_msg=k)
    for k, v in fused["stats"].items():
        np.testing.assert_allclose(staged["stats"][k], v, rtol=1e-6, err_msg=k)
    np.testing.assert_allclose(staged["log_likelihood"], fused["log_likelihood"], rtol=1e-6)
    err = capsys.readouterr().err
    assert PERCENT.search(err) and "sampling" in err and "compiling the fitting program" in err


@pytest.mark.parametrize("chain_method", ["parallel"])
def test_staged_static_hmc_pools_the_step_size_as_the_fused_one(demo_inputs, chain_method, capsys):
    """Static HMC runs every chain at the smallest adapted step size from the first draw on, in
    both programs: without warmup, the smallest of the starting step sizes."""
    fused, staged = _both(
        demo_inputs, num_warmup=0, num_samples=25, chain_method=chain_method, trajectory_length=1.0
    )
    for k, v in fused["samples"].items():
        np.testing.assert_allclose(staged["samples"][k], v, rtol=1e-6, err_msg=k)
    for k, v in fused["stats"].items():
        np.testing.assert_allclose(staged["stats"][k], v, rtol=1e-6, err_msg=k)
    step = np.asarray(fused["stats"]["step_size"])
    assert step.shape == (2,) and step[0] == step[1]
    capsys.readouterr()


def test_staged_fit_with_warmup_starts_where_the_fused_one_does(demo_inputs, capsys):
    fused, staged = _both(demo_inputs, num_warmup=30, num_samples=20, chain_method="sequential")
    for k, v in fused["map"].items():
        np.testing.assert_array_equal(staged["map"][k], v, err_msg=k)
    for k, v in fused["prior"].items():
        np.testing.assert_array_equal(staged["prior"][k], v, err_msg=k)
    assert staged["samples"]["alpha"].shape == fused["samples"]["alpha"].shape == (2, 20)
    assert np.all(np.isfinite(staged["log_likelihood"]))
    err = capsys.readouterr().err
    assert "warmup" in err and "100%" in err


def test_pilot_runs_as_one_program_with_phase_messages(demo_inputs, capsys):
    """With a pilot run (``SamplerSettings(pilot=True)``) the fit is one program whether or not
    progress is shown: the same draws, and a phase message in place of the bar."""
    fused, shown = _both(demo_inputs, num_warmup=20, num_samples=20, chain_method="sequential",
                         pilot=True)
    for k, v in fused["samples"].items():
        np.testing.assert_allclose(shown["samples"][k], v, rtol=1e-6, err_msg=k)
    err = capsys.readouterr().err
    assert "a pilot run, then the chains" in err and not PERCENT.search(err)


def _three_groups():
    """Power laws over compute for three groups whose irreducible loss differs (5% spread)."""
    rng = np.random.default_rng(0)
    C = np.geomspace(1e15, 1e21, 10)
    rows = []
    for g in range(3):
        E = 1.8 * np.exp(0.05 * rng.standard_normal())
        loss = (E + 1.5 * (C / 1e15) ** -0.3) * np.exp(0.01 * rng.standard_normal(C.size))
        rows += [(f"g{g}", c, v) for c, v in zip(C, loss)]
    data = pd.DataFrame(rows, columns=["run", "C", "loss"])
    return inference.prepare(data, "power_law", group="run", pooling={"E": "pooled", "A": "shared", "alpha": "shared"})


def test_choice_half_way_is_made_between_the_chunks(monkeypatch, capsys):
    """A grouped run's choice half-way through warmup (``pilot="auto"``) in the staged fit: the
    host reads the correlation and the condition number between chunks. With both thresholds
    above any figure the run is the one ``pilot=False`` makes, draw for draw; with the tie's
    below every correlation, the chains go on re-whitened, the statistics say so, and the bar
    counts the new plan to its end. The chunks' step-size adaptation aims at 0.9 for the first
    half of warmup and, from there, at 0.8 where the chains go on
    (``adapt_below_target``, a grouped fit's default) or at 0.95 where they are re-whitened, as
    in the one-call program."""
    inputs = _three_groups()
    budget = dict(num_chains=2, num_warmup=40, num_samples=20, progress_bar=True)
    aims: list[tuple[float, int]] = []  # (target, iterations) of each chunk run
    placed = staged_module._placed

    def spy(program, *args):
        ctx = [a for a in args if isinstance(a, dict) and "mode_w" in a]
        if ctx and len(args) > 1 and getattr(args[1], "shape", None) == ():
            aims.append((round(float(ctx[0]["target"]), 6), int(args[1])))
        return placed(program, *args)

    monkeypatch.setattr(staged_module, "_placed", spy)

    def staged(tie, **options):
        monkeypatch.setattr(chains_module, "PILOT_TIE", tie)
        monkeypatch.setattr(chains_module, "PILOT_CONDITION", np.inf)
        s = SamplerSettings(**budget, **options)
        args = (inputs.spec, inputs.x, inputs.y, inputs.group_index, jax.random.PRNGKey(2), s)
        aims.clear()
        return run_fit(*args, prior_samples=0)

    def iterations_at_each_aim():
        totals: dict[float, int] = {}
        for target, n in aims:
            totals[target] = totals.get(target, 0) + n
        return totals

    plain = staged(0.85, pilot=False)
    assert iterations_at_each_aim() == {0.9: 20, 0.8: 20 + 20}
    went_on = staged(2.0)
    assert iterations_at_each_aim() == {0.9: 20, 0.8: 20 + 20}
    assert "pilot_correlation" not in plain["stats"]
    assert 0 <= float(went_on["stats"]["pilot_correlation"]) <= 1
    assert float(went_on["stats"]["pilot_condition"]) >= 1
    assert not went_on["stats"]["pilot_rewhitened"]
    for k, v in plain["samples"].items():
        np.testing.assert_array_equal(went_on["samples"][k], v, err_msg=k)
    capsys.readouterr()

    again = staged(-1.0)
    W2 = SamplerSettings(**budget).pilot_phases()[2]
    assert iterations_at_each_aim() == {0.9: 20, 0.95: W2 + 20}
    assert again["stats"]["pilot_rewhitened"]
    assert not np.array_equal(again["samples"]["E"], went_on["samples"]["E"])
    assert again["samples"]["E"].shape == went_on["samples"]["E"].shape == (2, 20, 3)
    assert np.all(np.isfinite(again["log_likelihood"]))
    half, W2, S = 20, SamplerSettings(**budget).pilot_phases()[2], 20
    err = capsys.readouterr().err
    total = half + W2 + S
    assert f"{total}/{total} iterations" in err and "re-whitening" in err, err


def test_a_run_that_chooses_half_way_runs_in_stages_without_showing_them(monkeypatch, capsys):
    """Without progress, a grouped run that chooses half-way still runs in stages (only the
    branch it takes is compiled): no one-call program is built, nothing is written to stderr,
    and the draws are those of the same run shown with a bar."""
    inputs = _three_groups()
    budget = dict(num_chains=2, num_warmup=40, num_samples=20)
    args = (inputs.spec, inputs.x, inputs.y, inputs.group_index, jax.random.PRNGKey(2))
    shown = run_fit(*args, SamplerSettings(**budget, progress_bar=True), prior_samples=0)
    capsys.readouterr()

    def one_call_program(*_, **__):
        raise AssertionError("the one-call program was compiled")

    monkeypatch.setattr(run_module, "compiled", one_call_program)
    silent = run_fit(*args, SamplerSettings(**budget), prior_samples=0)
    assert capsys.readouterr().err == ""
    assert 0 <= float(silent["stats"]["pilot_correlation"]) <= 1
    for k, v in shown["samples"].items():
        np.testing.assert_array_equal(silent["samples"][k], v, err_msg=k)


def test_chunk_plan_covers_every_iteration_once():
    for w, s in [(0, 7), (500, 1000), (3, 1), (101, 37)]:
        length, plan = chunk_plan(w, s)
        assert all(0 < n <= length for _, n in plan)
        assert sum(n for p, n in plan if p == "warmup") == w
        assert sum(n for p, n in plan if p == "sampling") == s
        assert len(plan) <= 22


def test_bar_redraws_on_a_terminal_and_writes_lines_elsewhere(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, redraw in ((io.StringIO(), False), (Terminal(), True)):
        monkeypatch.setattr(sys, "stderr", stream)
        p = Progress()
        p.start_bar(10)
        p.advance("warmup", 5)
        p.advance("sampling", 5)
        text = stream.getvalue()
        assert ("\r" in text) == redraw
        assert text.count("\n") == (1 if redraw else 2) and "100%" in text
    assert "50%" in bar_line("sampling", 5, 10, 1.0)


def test_progress_flags_parse():
    parser = cli.build_parser()
    base = ["fit", "demo.csv", "--out", "f.nc"]
    assert parser.parse_args(base).progress is None
    assert parser.parse_args([*base, "--progress"]).progress is True
    assert parser.parse_args([*base, "--no-progress"]).progress is False


def test_cli_fit_progress_shows_a_percentage(tmp_path):
    data = tmp_path / "demo.csv"
    load_dataset("demo")[["N", "D", "loss"]].to_csv(data, index=False)
    r = subprocess.run(
        [sys.executable, "-m", "bayes_scaling.cli", "fit", str(data), "--law", "chinchilla",
         "--chains", "2", "--warmup", "30", "--samples", "20", "--progress", "--discrepancy", "off",
         "--out", str(tmp_path / "f.nc")],
        capture_output=True, text=True, timeout=600, cwd=HERE,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert PERCENT.search(r.stderr), r.stderr
    assert "compiling the fitting program" in r.stderr and "sampling" in r.stderr
