"""Closed-form compute-optimal allocations of the laws that have one.

Each law that has a closed form for the optimum on the iso-compute line ``C = k N D`` carries it
on its :class:`~bayes_scaling.laws.LawSpec` (``log_n_opt``, ``optimal_exponent``); callers use
those fields and never a law's name. The functions work on NumPy and JAX arrays alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "chinchilla_log_n_opt",
    "chinchilla_optimal_exponent",
    "kaplan_log_n_opt",
    "kaplan_optimal_exponent",
]


def chinchilla_log_n_opt(params: Mapping[str, Any], log_c_over_k: Any) -> Any:
    r"""Compute-optimal :math:`\log N^*` of the Chinchilla law on ``C = k N D``.

    :math:`N^* = G (C/k)^{\beta/(\alpha+\beta)}` with
    :math:`G = (\alpha A / (\beta B))^{1/(\alpha+\beta)}` (Hoffmann et al. 2022, eq. 4).
    Works on NumPy and JAX arrays alike.
    """
    a, b = params["alpha"], params["beta"]
    log = jnp.log if isinstance(a, jax.Array) else _np_log
    return (log(a) + log(params["A"]) - log(b) - log(params["B"]) + b * log_c_over_k) / (a + b)


def chinchilla_optimal_exponent(params: Mapping[str, Any]) -> Any:
    r"""The exponent :math:`a = \beta / (\alpha + \beta)` in :math:`N^* \propto C^a`."""
    return params["beta"] / (params["alpha"] + params["beta"])


def kaplan_log_n_opt(params: Mapping[str, Any], log_c_over_k: Any) -> Any:
    r"""Compute-optimal :math:`\log N^*` of Kaplan's law on ``C = k N D``.

    With :math:`r = \alpha_N / \alpha_D`, :math:`N^* = (r N_c^r (C/k) / D_c)^{1/(r+1)}`.
    """
    r = params["alpha_N"] / params["alpha_D"]
    log = jnp.log if isinstance(r, jax.Array) else _np_log
    return (log(r) + r * log(params["N_c"]) + log_c_over_k - log(params["D_c"])) / (r + 1.0)


def kaplan_optimal_exponent(params: Mapping[str, Any]) -> Any:
    r"""The exponent :math:`a = \alpha_D / (\alpha_N + \alpha_D)` in :math:`N^* \propto C^a`."""
    return params["alpha_D"] / (params["alpha_N"] + params["alpha_D"])


def _np_log(x: Any) -> Any:
    import numpy as np

    return np.log(x)
