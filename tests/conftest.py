"""Test configuration: JAX on CPU, warnings as errors except those listed, the shared data directory.

The permissively licensed datasets ship in the package and load with no data directory. Only
``epoch-chinchilla`` (no license, never committed) needs one: ``BAYES_SCALING_DATA``, else
``../shared/datasets`` beside the checkout. A test that needs it skips when it is absent, and fails
instead when the environment variable ``CI`` is set (CI must have the data).
"""

import os
import shutil
import tempfile
import types
import warnings
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite is bound by XLA compilation (about two thirds of its time on a 2-core CPU: a fitting
# program takes 8-25 s to compile and runs for a few), so its programs are compiled with XLA's
# backend optimisation level 0: the same operations, compiled in 15-20% less time and run a
# little slower. The rounding of the last bit can differ from a default build, so the draws of a
# given seed differ from those a user gets with the same seed; the tests' statistical criteria
# hold for either. Doctests, checks and benchmarks run with XLA's defaults.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0"
)
# One JAX compilation cache for the whole run, shared by the test processes (pytest-xdist
# workers inherit it) and the command-line and documentation subprocesses they start: a fitting
# program compiled once is loaded, not recompiled, by every process that needs it. It lives in
# a temporary directory, never in the user's ~/.cache. Program files (traced programs saved with
# jax.export) are off here, so tracing behaves as in a plain Python session; a test turns them on.
if "BAYES_SCALING_JAX_CACHE" not in os.environ:
    os.environ["BAYES_SCALING_JAX_CACHE"] = tempfile.mkdtemp(prefix="bayes-scaling-test-jax-")
    _OWN_CACHE = os.environ["BAYES_SCALING_JAX_CACHE"]
else:
    _OWN_CACHE = None
os.environ.setdefault("BAYES_SCALING_PROGRAM_CACHE", "0")

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


# the one published file that is not packaged (its source has no license), as <folder>/<file>
UNPACKAGED_FILE = Path("epoch-chinchilla") / "svg_extracted_data.csv"


def data_dir() -> Path | None:
    """The directory with the published datasets: BAYES_SCALING_DATA, else ../shared/datasets."""
    env = os.environ.get("BAYES_SCALING_DATA")
    for candidate in ([Path(env)] if env else []) + [SHARED_DATA]:
        if candidate.is_dir():
            return candidate.resolve()
    return None


def data_unavailable(reason: str) -> None:
    """Skip the calling test for missing data, or fail it when ``CI`` is set."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} [CI is set, so missing data is an error, not a skip]", pytrace=False)
    pytest.skip(reason)


class _Stopped(Exception):
    """Raised in place of a library call that a command-line test captured."""


@pytest.fixture
def captured_calls(monkeypatch):
    """Library calls of a command, recorded instead of run.

    ``replace(module, name, key)`` swaps ``module.name`` for a recorder that keeps the call's
    keyword arguments under ``seen[key]`` (default ``name``) and stops the command by raising
    ``stopped`` (so a test runs ``cli.main`` under ``pytest.raises(captured.stopped)``).
    """
    seen: dict = {}

    def replace(module, name, key=None):
        def fake(*args, **kwargs):
            seen[key or name] = kwargs
            raise _Stopped

        monkeypatch.setattr(module, name, fake)

    return types.SimpleNamespace(seen=seen, replace=replace, stopped=_Stopped)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The data directory holding epoch-chinchilla (skip, or fail under CI, when there is none)."""
    d = data_dir()
    if d is None or not (d / UNPACKAGED_FILE).is_file():
        where = d / UNPACKAGED_FILE if d is not None else "no data directory"
        data_unavailable(
            f"epoch-chinchilla is not packaged (its source has no license) and was not found "
            f"({where}): set BAYES_SCALING_DATA to a folder holding {UNPACKAGED_FILE}, or place "
            "../shared/datasets beside the checkout"
        )
    os.environ.setdefault("BAYES_SCALING_DATA", str(d))
    return d


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:  # the process that made the cache directory removes it
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "error")
    # arviz 0.x announces its refactor on import; not ours to fix
    config.addinivalue_line("filterwarnings", "ignore::FutureWarning:arviz")
    config.addinivalue_line("filterwarnings", "ignore:.*ArviZ is undergoing a major refactor.*:FutureWarning")
    # small test budgets trip the low-ESS diagnostic on purpose; tests that check diagnostics opt back in
    config.addinivalue_line("filterwarnings", "ignore:min effective sample size:RuntimeWarning")
    # unit tests run 2 short chains, whose R-hat wanders above 1.01 from one CPU to another;
    # convergence is asserted explicitly (max R-hat <= 1.01) in the recovery and reference tests
    config.addinivalue_line("filterwarnings", "ignore:max R-hat:RuntimeWarning")
    # unit tests fit in Python, which stores no extrapolation discrepancy; the one-line warning
    # that predictions and decisions then carry none is asserted in test_calibrate
    config.addinivalue_line(
        "filterwarnings", "ignore:this fit has no stored extrapolation discrepancy:UserWarning"
    )
    config.addinivalue_line("filterwarnings", "ignore:There are not enough devices:UserWarning")


warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
