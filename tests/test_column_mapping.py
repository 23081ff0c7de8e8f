"""Column mapping everywhere: a fit records its mapping, predict reads the user's own column names
(and run names), and every command reading data takes --map."""

import json

import pandas as pd
import pytest

from bayes_scaling import cli, inference, predict
from bayes_scaling.datasets import load_dataset

MAPPING = {"params": "N", "tokens": "D", "val_loss": "loss"}
MAP_TEXT = "params=N,tokens=D,val_loss=loss"
TINY = ["--chains", "1", "--warmup", "20", "--samples", "100", "--method", "laplace"]


@pytest.fixture(scope="module")
def own_names_csv(tmp_path_factory):
    demo = load_dataset("demo")[["N", "D", "loss"]]
    own = demo.rename(columns={v: k for k, v in MAPPING.items()})
    own.insert(0, "run", [f"run-{i}" for i in range(len(own))])
    path = tmp_path_factory.mktemp("mapping") / "runs.csv"
    own.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def mapped_fit(own_names_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("mapping") / "fit.nc"
    assert cli.main(["fit", str(own_names_csv), "--map", MAP_TEXT, "--out", str(out), *TINY]) == 0
    return out


def test_fit_records_its_mapping(mapped_fit):
    idata = inference.load_fit(mapped_fit)
    assert json.loads(idata.posterior.attrs["columns"]) == MAPPING
    assert inference.fit_spec(idata)["columns"] == MAPPING


def test_predict_reads_the_users_names_with_the_recorded_mapping(mapped_fit):
    idata = inference.load_fit(mapped_fit)
    own = pd.DataFrame({"params": [1e9, 7e10], "tokens": [2e10, 1.4e12]})
    canonical = pd.DataFrame({"N": [1e9, 7e10], "D": [2e10, 1.4e12]})
    a = predict(idata, own, discrepancy=None, seed=1)
    b = predict(idata, canonical, discrepancy=None, seed=1)
    c = predict(idata, own.rename(columns={"params": "n"}), discrepancy=None, seed=1,
                columns={"n": "N", "tokens": "D"})
    for ds in (b, c):
        pd.testing.assert_series_equal(
            pd.Series(a["law_mean_mean"].values), pd.Series(ds["law_mean_mean"].values))
    with pytest.raises(ValueError, match="column mapping names"):
        predict(idata, own, discrepancy=None, columns={"size": "N"})


def test_predict_command_keeps_run_names(mapped_fit, tmp_path, capsys):
    points = tmp_path / "points.csv"
    pd.DataFrame({"params": [1e9, 7e10], "tokens": [2e10, 1.4e12], "run": ["small", "big"]}).to_csv(
        points, index=False)
    out = tmp_path / "pred.csv"
    args = ["predict", str(mapped_fit), "--points", str(points), "--discrepancy", "off"]
    assert cli.main([*args, "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns[:3]) == ["run", "params", "tokens"]
    # a mean for the law only: a new run's loss under Student-t noise on the log scale has none
    assert "law_mean_mean" in table and "new_run_q50" in table
    assert "new_run_mean" not in table and "structural_mean_mean" not in table
    assert list(table["run"]) == ["small", "big"]
    printed = capsys.readouterr().out
    assert "small" in printed and "big" in printed
    # --label names another column; --map renames explicitly
    renamed = pd.read_csv(points).rename(columns={"params": "size", "run": "name"})
    renamed.to_csv(points, index=False)
    assert cli.main([*args, "--out", str(out), "--force", "--map", "size=N,tokens=D",
                     "--label", "name"]) == 0
    assert list(pd.read_csv(out)["name"]) == ["small", "big"]
    assert cli.main([*args, "--out", str(out), "--force", "--label", "nope"]) == 2
    assert "--label column 'nope' not found" in capsys.readouterr().err


def test_backtest_takes_the_mapping(own_names_csv, tmp_path, capsys):
    out = tmp_path / "bt.json"
    assert cli.main(["backtest", str(own_names_csv), "--map", MAP_TEXT, "--train", "C<=1e20",
                     "--discrepancy", "off", "--out", str(out), *TINY]) == 0
    report = json.loads(out.read_text())
    assert report["n_train"] > 0 and report["n_test"] > 0


def test_every_data_command_passes_the_mapping_on(captured_calls, own_names_csv, tmp_path):
    from bayes_scaling import backtest, compare

    captured_calls.replace(backtest, "backtest")
    captured_calls.replace(compare, "compare_laws", "compare")
    captured_calls.replace(compare, "contrast")
    calls = {
        "backtest": ["backtest", str(own_names_csv), "--train", "C<=1e20",
                     "--out", str(tmp_path / "b.json")],
        "compare": ["compare", str(own_names_csv), "--laws", "chinchilla,kaplan"],
    }
    for name, argv in calls.items():
        with pytest.raises(captured_calls.stopped):
            cli.main([*argv, "--map", MAP_TEXT])
        assert captured_calls.seen[name]["columns"] == MAPPING, name


def test_next_runs_candidates_in_the_users_names(monkeypatch, mapped_fit, tmp_path):
    from bayes_scaling import next_runs

    seen = {}

    class Stop(Exception):
        pass

    def fake(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(next_runs, "next_runs", fake)
    path = tmp_path / "cands.csv"
    pd.DataFrame({"params": [1e8, 2e8], "tokens": [1e9, 2e9]}).to_csv(path, index=False)
    with pytest.raises(Stop):
        cli.main(["next-runs", str(mapped_fit), "--compute", "1e21", "--budget", "1e19",
                  "--candidates", str(path)])
    assert list(seen["candidates"].columns) == ["N", "D"]
