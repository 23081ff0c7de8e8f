"""Fit files written by earlier releases still load.

``tests/data/fit-v0.1.0.nc`` was written by bayes-scaling 0.1.0 with
``bayes-scaling fit demo --chains 2 --warmup 100 --samples 50 --out fit-v0.1.0.nc`` and is kept
as committed: a change that stops :func:`load_fit`, :func:`posterior_draws` or :func:`summarize`
reading it breaks fits users have on disk. Add a file per release whose format changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bayes_scaling import inference

FIT_FILES = sorted((Path(__file__).resolve().parent / "data").glob("fit-v*.nc"))
PARAMS = ("E", "A", "B", "alpha", "beta")


def test_the_release_fit_file_is_there_and_small():
    names = [path.name for path in FIT_FILES]
    assert "fit-v0.1.0.nc" in names
    for path in FIT_FILES:
        assert path.stat().st_size < 300_000, f"{path.name} is {path.stat().st_size} bytes"


@pytest.mark.parametrize("path", FIT_FILES, ids=[p.name for p in FIT_FILES])
def test_old_fit_loads_and_gives_draws_and_a_summary(path):
    idata = inference.load_fit(path)
    post = idata.posterior
    assert post.attrs["law"] == "chinchilla"
    assert post.attrs["bayes_scaling_version"] == path.stem.removeprefix("fit-v")
    draws = inference.posterior_draws(idata)
    assert set(PARAMS) <= set(draws) and "sigma" in draws
    for name, values in draws.items():
        assert values.shape == (2 * 50,) and np.isfinite(values).all(), name
    table = inference.summarize(idata)
    assert set(PARAMS) <= set(table.index)
    assert np.isfinite(table["mean"]).all()
    # the demo's generating values (Besiroglu et al. 2024 refit): E and alpha are well identified
    assert abs(table.loc["E", "mean"] - 1.817) < 0.3
    assert abs(table.loc["alpha", "mean"] - 0.348) < 0.1
