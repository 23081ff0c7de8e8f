"""JAX CPU devices, one per core, asked for before JAX starts: chains run side by side.

JAX gives a process one CPU device unless ``XLA_FLAGS`` asks for more before its CPU backend
starts. A grouped fit splits its chains over the devices (one after another within each), so
``import bayes_scaling`` (and the command line) asks for one device per core this process may
run on while JAX has not started. Not more: four devices on two cores took 10-30% longer than
two for the same draws of a grouped fit (``benchmarks/RESULTS.md``), their threads contending for
the cores. A count already in ``XLA_FLAGS`` (the user's) is kept; ``BAYES_SCALING_HOST_DEVICES``
sets the count (``1`` leaves JAX's single device). Once JAX has run anything nothing is changed:
call ``numpyro.set_host_device_count`` before that instead.
"""

from __future__ import annotations

import os
import sys
import warnings

FLAG = "--xla_force_host_platform_device_count"
_asked: list[str] = []  # the flag this module last added, which a later request replaces


def cores() -> int:
    """The cores this process may run on (its CPU affinity, where the platform reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _count() -> int | None:
    setting = os.environ.get("BAYES_SCALING_HOST_DEVICES", "").strip()
    if not setting:
        return cores()
    if setting.isdigit() and int(setting) >= 1:
        return int(setting)
    warnings.warn(
        f"BAYES_SCALING_HOST_DEVICES must be a positive integer; got {setting!r}, so JAX's "
        "device count is left as it is",
        stacklevel=3,
    )
    return None


def _jax_started() -> bool:
    """Whether JAX's backends exist (after which ``XLA_FLAGS`` is no longer read)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # another JAX layout: assume it has started
        return True


def ask_host_devices() -> None:
    """Ask JAX for one CPU device per core if it has not started.

    Does nothing once JAX's backends have started, when ``XLA_FLAGS`` already names a device
    count of the user's, or when the count is 1.
    """
    if _jax_started():
        return
    words = os.environ.get("XLA_FLAGS", "").split()
    if _asked and _asked[0] in words:  # an earlier request of ours: this one replaces it
        words.remove(_asked.pop())
    if any(w.startswith(FLAG) for w in words):
        return  # the user's own count
    count = _count()
    if count is None or count <= 1:
        return
    _asked[:] = [f"{FLAG}={count}"]
    os.environ["XLA_FLAGS"] = " ".join([*words, *_asked])
