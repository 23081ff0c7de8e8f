"""The light fit reader and ``bayes-scaling summary``: the same table as ``inference.summarize``,
without importing JAX, arviz, SciPy, xarray or pandas."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bayes_scaling import fitfile, inference

HERE = Path(__file__).resolve().parent
OLD_FIT = HERE / "data" / "fit-v0.1.0.nc"


def test_light_table_equals_the_inference_data_table():
    _, rows = fitfile.summarize_file(OLD_FIT)
    table = inference.summarize(inference.load_fit(OLD_FIT))
    assert sorted(rows) == sorted(table.index)
    for name, row in rows.items():
        for column, value in row.items():
            np.testing.assert_allclose(value, table.loc[name, column], rtol=1e-12, err_msg=name)


def test_light_reader_arrays_and_errors(tmp_path):
    fit = fitfile.read_fit_arrays(OLD_FIT)
    assert fit.attrs["law"] == "chinchilla" and fit.dims["E"] == ("chain", "draw")
    assert fit.variables["E"].shape == (2, 50) and fit.divergences >= 0
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fitfile.read_fit_arrays(tmp_path / "missing.nc")
    bad = tmp_path / "bad.nc"
    bad.write_text("N,D,loss\n")
    with pytest.raises(ValueError, match="not a bayes-scaling fit file"):
        fitfile.read_fit_arrays(bad)


def test_summary_command_imports_no_heavy_library():
    code = (
        "import sys; from bayes_scaling import cli; rc = cli.main(['summary', sys.argv[1], '--json']);"
        "heavy = [m for m in ('jax', 'arviz', 'scipy', 'xarray', 'pandas', 'matplotlib')"
        " if m in sys.modules]; print(heavy, file=sys.stderr); sys.exit(rc)"
    )
    r = subprocess.run([sys.executable, "-c", code, str(OLD_FIT)], capture_output=True, text=True,
                       cwd=HERE, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "[]"
    table = json.loads(r.stdout)
    assert {"E", "A", "B", "alpha", "beta", "sigma"} <= set(table)
    assert set(table["E"]) == {"mean", "sd", "q05", "q50", "q95", "r_hat", "ess_bulk", "ess_tail"}
