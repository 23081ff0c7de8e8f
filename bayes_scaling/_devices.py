"""JAX CPU devices for every core and chain, asked for before JAX starts: chains run side by side.

JAX gives a process one CPU device unless ``XLA_FLAGS`` asks for more before its CPU backend
starts. A grouped fit runs one chain per device when there are several (about half the time on
two cores), so ``import bayes_scaling`` asks for ``max(4, cores)`` devices (4: the default
number of chains) while JAX has not started, and the command line does the same for its
``--chains``. A count already in ``XLA_FLAGS`` (the user's) is kept; ``BAYES_SCALING_HOST_DEVICES``
sets the count (``1`` leaves JAX's single device). Once JAX has run anything nothing is changed:
call ``numpyro.set_host_device_count`` before that instead.
"""

from __future__ import annotations

import os
import sys
import warnings

FLAG = "--xla_force_host_platform_device_count"
DEFAULT_CHAINS = 4
_asked: list[str] = []  # the flag this module last added, which a later request replaces


def _count(num_chains: int) -> int | None:
    setting = os.environ.get("BAYES_SCALING_HOST_DEVICES", "").strip()
    if not setting:
        return max(num_chains, os.cpu_count() or 1)
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


def ask_host_devices(num_chains: int = DEFAULT_CHAINS) -> None:
    """Ask JAX for one CPU device per core (at least one per chain) if it has not started.

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
    count = _count(num_chains)
    if count is None or count <= 1:
        return
    _asked[:] = [f"{FLAG}={count}"]
    os.environ["XLA_FLAGS"] = " ".join([*words, *_asked])
