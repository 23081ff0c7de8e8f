"""The command line as a user runs it: fit, summary, laws, demo, and bad input without tracebacks."""

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bayes_scaling import cli
from bayes_scaling.datasets import load_dataset

FAST = ["--chains", "2", "--warmup", "150", "--samples", "150"]


# run from the tests folder so that `python -m` imports the installed package, not the source tree
HERE = Path(__file__).resolve().parent


def run(*args):
    return subprocess.run([sys.executable, "-m", "bayes_scaling.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=HERE)


def test_laws_lists_every_law(capsys):
    assert cli.main(["laws"]) == 0
    out = capsys.readouterr().out
    for name in ("chinchilla", "kaplan", "power_law", "broken_power_law", "data_constrained", "batch_steps"):
        assert name in out
    assert "L = E + A*N^-alpha + B*D^-beta" in out


@pytest.fixture(scope="module")
def demo_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "demo.csv"
    load_dataset("demo")[["N", "D", "loss"]].to_csv(path, index=False)
    return path


def test_fit_then_summary(demo_csv, tmp_path):
    out = tmp_path / "fit.nc"
    # the summary of a fit (the stored calibration is tested in test_calibrate)
    r = run("fit", str(demo_csv), "--law", "chinchilla", "--seed", "0", "--out", str(out), "--discrepancy", "off", *FAST)
    assert r.returncode == 0, r.stderr
    assert "fitting chinchilla to 48 points" in r.stderr and "wrote" in r.stderr
    r = run("summary", str(out))
    assert r.returncode == 0, r.stderr
    for token in ("alpha", "beta", "q05", "q95", "r_hat", "ess_bulk", "divergences"):
        assert token in r.stdout
    r = run("summary", str(out), "--json")
    table = pd.read_json(io.StringIO(r.stdout), orient="index")
    assert {"mean", "sd", "q50"} <= set(table.columns)


@pytest.mark.parametrize(
    "content, word",
    [
        ("N,D\n1e8,1e9\n2e8,2e9\n", "loss"),
        ("N,D,loss\n1e8,1e9,3.1\n2e8,2e9,nan\n4e8,4e9,2.9\n", "loss"),
        ("N,D,loss\n1e8,1e9,3.1\n-2e8,2e9,3.0\n4e8,4e9,2.9\n", "'N' must be > 0"),
        ("N,D,loss\n1e8,lots,3.1\n2e8,2e9,3.0\n4e8,4e9,2.9\n", "'D' must be numeric"),
        ("", "empty"),
    ],
)
def test_bad_input_is_one_line_error(tmp_path, content, word):
    data = tmp_path / "bad.csv"
    data.write_text(content)
    out = tmp_path / "o.nc"
    r = run("fit", str(data), "--law", "chinchilla", "--out", str(out))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert word in r.stderr and r.stderr.strip().startswith("error:")
    assert not out.exists()


def test_unknown_law_and_missing_file(tmp_path, demo_csv):
    r = run("fit", str(demo_csv), "--law", "chinchila", "--out", str(tmp_path / "o.nc"))
    assert r.returncode == 2 and "unknown law 'chinchila'; available:" in r.stderr
    r = run("fit", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o.nc"))
    assert r.returncode == 2 and "missing.csv" in r.stderr and "Traceback" not in r.stderr
    r = run("summary", str(tmp_path / "missing.nc"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_demo_runs_offline(monkeypatch, tmp_path):
    env = {"BAYES_SCALING_OFFLINE": "1", "BAYES_SCALING_DATA": str(tmp_path), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "bayes_scaling.cli", "demo", *FAST], capture_output=True, text=True, timeout=600, env=env, cwd=HERE)
    assert r.returncode == 0, r.stderr
    assert "alpha" in r.stdout and "true values used to simulate the demo" in r.stdout


def test_method_option_reaches_backtest_and_compare(captured_calls, demo_csv, tmp_path):
    """`--method laplace` is passed on by every command that offers it (not only `fit`)."""
    from bayes_scaling import backtest, compare

    captured_calls.replace(backtest, "backtest")
    captured_calls.replace(compare, "compare_laws", "compare")
    with pytest.raises(captured_calls.stopped):
        cli.main(["backtest", str(demo_csv), "--train", "C<=1e20", "--method", "laplace",
                  "--out", str(tmp_path / "b.json")])
    with pytest.raises(captured_calls.stopped):
        cli.main(["compare", str(demo_csv), "--laws", "chinchilla,kaplan", "--method", "laplace"])
    assert captured_calls.seen["backtest"]["method"] == "laplace"
    assert captured_calls.seen["compare"]["fit_method"] == "laplace"


def test_trajectory_option_reaches_backtest_calibrate_and_compare(captured_calls, demo_csv, tmp_path):
    """`--trajectory-length` is offered and passed on wherever the convergence warnings may
    suggest it (every command with the fit options), as a number, None (nuts) or "auto"."""
    from bayes_scaling import backtest, compare

    captured_calls.replace(backtest, "backtest")
    captured_calls.replace(backtest, "calibrate")
    captured_calls.replace(compare, "compare_laws", "compare")
    with pytest.raises(captured_calls.stopped):
        cli.main(["backtest", str(demo_csv), "--train", "C<=1e20", "--trajectory-length", "nuts",
                  "--out", str(tmp_path / "b.json")])
    with pytest.raises(captured_calls.stopped):
        cli.main(["calibrate", str(demo_csv), "--law", "chinchilla", "--trajectory-length", "2.5"])
    with pytest.raises(captured_calls.stopped):
        cli.main(["compare", str(demo_csv), "--laws", "chinchilla,kaplan"])
    assert captured_calls.seen["backtest"]["trajectory_length"] is None
    assert captured_calls.seen["calibrate"]["trajectory_length"] == 2.5
    assert captured_calls.seen["compare"]["trajectory_length"] == "auto"


def test_pilot_option_reaches_backtest_calibrate_and_compare(captured_calls, demo_csv, tmp_path):
    """`--pilot` is offered and passed on wherever the convergence warnings may suggest it."""
    from bayes_scaling import backtest, compare

    captured_calls.replace(backtest, "backtest")
    captured_calls.replace(backtest, "calibrate")
    captured_calls.replace(compare, "compare_laws", "compare")
    with pytest.raises(captured_calls.stopped):
        cli.main(["backtest", str(demo_csv), "--train", "C<=1e20", "--pilot",
                  "--out", str(tmp_path / "b.json")])
    with pytest.raises(captured_calls.stopped):
        cli.main(["calibrate", str(demo_csv), "--law", "chinchilla", "--pilot"])
    with pytest.raises(captured_calls.stopped):
        cli.main(["compare", str(demo_csv), "--laws", "chinchilla,kaplan", "--no-pilot"])
    assert captured_calls.seen["backtest"]["pilot"] is True
    assert captured_calls.seen["calibrate"]["pilot"] is True
    assert captured_calls.seen["compare"]["pilot"] is False


# the short fit below is only the way to the calibration's call: its convergence is not checked
@pytest.mark.filterwarnings("ignore:.*divergent transitions:RuntimeWarning")
def test_calibration_refit_options_reach_backtest_and_calibrate(captured_calls, demo_csv, tmp_path):
    """`--calibration-warmup`, `--calibration-chains` and `--calibration-axes` become the refits'
    settings; without them the library's defaults stand; a count under 1 is refused."""
    from bayes_scaling import backtest

    captured_calls.replace(backtest, "backtest")
    captured_calls.replace(backtest, "calibrate")
    with pytest.raises(captured_calls.stopped):
        cli.main(["backtest", str(demo_csv), "--train", "C<=1e20", "--calibration-warmup", "1000",
                  "--calibration-chains", "4", "--out", str(tmp_path / "b.json")])
    with pytest.raises(captured_calls.stopped):
        cli.main(["calibrate", str(demo_csv), "--law", "chinchilla", "--calibration-chains", "3"])
    assert captured_calls.seen["backtest"]["calibration"] == {"num_chains": 4, "num_warmup": 1000}
    assert captured_calls.seen["calibrate"]["calibration"] == {"num_chains": 3}
    with pytest.raises(captured_calls.stopped):
        cli.main(["backtest", str(demo_csv), "--train", "C<=1e20", "--out", str(tmp_path / "c.json")])
    assert captured_calls.seen["backtest"]["calibration"] is None
    r = run("backtest", str(demo_csv), "--train", "C<=1e20", "--calibration-chains", "0",
            "--out", str(tmp_path / "d.json"))
    assert r.returncode == 2 and "must be at least 1" in r.stderr
    assert not (tmp_path / "d.json").exists()
    # the axes the runs are cut along, on backtest, calibrate and fit (its stored calibration)
    with pytest.raises(captured_calls.stopped):
        cli.main(["calibrate", str(demo_csv), "--law", "chinchilla", "--calibration-axes", "scale, N"])
    assert captured_calls.seen["calibrate"]["calibration"] == {"axes": ("scale", "N")}
    from bayes_scaling import predict

    captured_calls.replace(predict, "calibrate_discrepancy")
    with pytest.raises(captured_calls.stopped):
        cli.main(["fit", str(demo_csv), "--law", "chinchilla", *FAST, "--calibration-axes", "D",
                  "--out", str(tmp_path / "f.nc")])
    assert captured_calls.seen["calibrate_discrepancy"] == {"seed": 0, "axes": ("D",)}
    assert not (tmp_path / "f.nc").exists()
    r = run("fit", str(demo_csv), "--calibration-axes", "scale,U", "--out", str(tmp_path / "g.nc"))
    assert r.returncode == 2 and "--calibration-axes takes scale, N, D for law 'chinchilla'; got U" in r.stderr
    assert "fitting" not in r.stderr and not (tmp_path / "g.nc").exists()  # refused before the fit


def test_the_backtest_prints_the_discrepancy_it_carried():
    from bayes_scaling.cli.predicting import _discrepancy_line

    disc = {"enabled": True, "method": "leave-future-out", "tau_median": 0.0114,
            "tau_q05": 0.00914, "tau_q95": 0.0157, "details": {"cuts": [{}, {}, {}]}}
    assert _discrepancy_line(disc) == (
        "  discrepancy        tau median 0.0114 (90%: 0.00914-0.0157) per e-fold beyond the "
        "training runs; 3 leave-future-out refits"
    )
    assert _discrepancy_line({"enabled": False}).split() == ["discrepancy", "off"]
    assert _discrepancy_line(None).split() == ["discrepancy", "off"]


def test_the_backtest_names_directions_its_discrepancy_never_saw():
    from bayes_scaling.cli.predicting import _directions_line

    cuts = [{"cut": 0.7, "beyond_in": {"N*D": 60}}, {"cut": 0.8, "beyond_in": {"N*D": 40}}]
    report = {"held_out_beyond_in": {"D": 352}, "discrepancy": {"enabled": True, "details": {"cuts": cuts}}}
    assert _directions_line(report) == (
        "  directions         held-out runs leave the training runs in D (352); the discrepancy's "
        "pseudo-futures left theirs in N*D (100): its width beyond in D is carried over, not "
        "learned; cuts along D as well learn it there (--calibration-axes scale,D)"
    )
    report["held_out_beyond_in"] = {"N*D": 23}
    assert _directions_line(report) == ""
    assert _directions_line({"held_out_beyond_in": {"D": 3}, "discrepancy": {"enabled": False}}) == ""


def test_backtest_calibrate_and_compare_pass_the_pilot_to_their_fits(captured_calls, demo_csv):
    """The Python functions hand ``pilot`` to every fit they make."""
    from bayes_scaling import inference
    from bayes_scaling.backtest import backtest, calibrate
    from bayes_scaling.compare import compare_laws

    for run, key in (
        (lambda: backtest(str(demo_csv), "chinchilla", "C<=1e20", pilot=True), "backtest"),
        (lambda: calibrate(str(demo_csv), "chinchilla", method="nuts", pilot=True), "calibrate"),
        (lambda: compare_laws(str(demo_csv), ["chinchilla", "kaplan"], pilot=True), "compare"),
    ):
        captured_calls.replace(inference, "fit", key)
        with pytest.raises(captured_calls.stopped):
            run()
        assert captured_calls.seen[key]["pilot"] is True


def test_pilot_option_reaches_the_fit(monkeypatch, demo_csv, tmp_path):
    """`fit --pilot` asks for the pilot run (`SamplerSettings.pilot`), `--no-pilot` for none;
    without either the choice is the sampler's ("auto")."""
    from bayes_scaling import inference

    asked = []

    class Stop(Exception):
        pass

    def sample(inputs, key, settings, **kwargs):
        asked.append(settings.pilot)
        raise Stop

    monkeypatch.setattr(inference, "sample", sample)
    for extra in ([], ["--pilot"], ["--no-pilot"]):
        with pytest.raises(Stop):
            cli.main(["fit", str(demo_csv), "--out", str(tmp_path / "f.nc"), *extra])
    assert asked == ["auto", True, False]
