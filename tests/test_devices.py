"""``import bayes_scaling`` asks JAX for one CPU device per core while JAX has not started.

Each case runs in a fresh interpreter (this test process has started JAX already), with the
test suite's own ``XLA_FLAGS`` removed.
"""

import os
import subprocess
import sys

import pytest

REPORT = "import jax, os; print(jax.device_count(), repr(os.environ.get('XLA_FLAGS')))"


def _run(code: str, **env_overrides: str) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "BAYES_SCALING_HOST_DEVICES")}
    env.update(env_overrides)
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip(), run.stderr


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _expected(count: int) -> str:
    """What REPORT prints when the package asked for ``count`` devices (none asked for one)."""
    return "1 None" if count == 1 else f"{count} '--xla_force_host_platform_device_count={count}'"


def test_import_asks_for_one_device_per_core():
    out, _ = _run("import bayes_scaling; " + REPORT)
    assert out == _expected(_cores())


def test_import_keeps_other_xla_flags():
    out, _ = _run("import bayes_scaling; " + REPORT, XLA_FLAGS="--xla_cpu_enable_fast_math=false")
    count = _cores()
    asked = "" if count == 1 else f" --xla_force_host_platform_device_count={count}"
    assert out.endswith(f"'--xla_cpu_enable_fast_math=false{asked}'")


def test_a_users_device_count_is_kept():
    flags = "--xla_force_host_platform_device_count=3"
    out, _ = _run("import bayes_scaling; " + REPORT, XLA_FLAGS=flags)
    assert out == f"3 {flags!r}"


@pytest.mark.parametrize("setting, devices", [("1", 1), ("2", 2), ("6", 6)])
def test_the_environment_sets_the_count(setting, devices):
    out, _ = _run("import bayes_scaling; " + REPORT, BAYES_SCALING_HOST_DEVICES=setting)
    assert out.split()[0] == str(devices)
    if devices == 1:
        assert out == "1 None"  # nothing written into XLA_FLAGS


def test_a_bad_setting_warns_and_changes_nothing():
    out, err = _run("import bayes_scaling; " + REPORT, BAYES_SCALING_HOST_DEVICES="many")
    assert out == "1 None"
    assert "BAYES_SCALING_HOST_DEVICES must be a positive integer; got 'many'" in err


def test_nothing_changes_once_jax_has_started():
    out, _ = _run("import jax; jax.numpy.ones(1); import bayes_scaling; " + REPORT)
    assert out == "1 None"


def test_jax_imported_but_not_started_still_gets_the_devices():
    out, _ = _run("import jax; import bayes_scaling; " + REPORT)
    assert out.split()[0] == str(_cores())


def test_the_command_line_asks_for_one_device_per_core():
    code = (
        "import bayes_scaling; from bayes_scaling.cli._common import configure_jax; "
        "configure_jax(); " + REPORT
    )
    out, _ = _run(code, BAYES_SCALING_JAX_CACHE="")
    assert out == _expected(_cores())


def test_a_count_the_user_sets_after_the_import_is_kept():
    code = (
        "import os, bayes_scaling; from bayes_scaling.cli._common import configure_jax; "
        "os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=3'; "
        "configure_jax(); " + REPORT
    )
    out, _ = _run(code, BAYES_SCALING_JAX_CACHE="")
    assert out == "3 '--xla_force_host_platform_device_count=3'"
