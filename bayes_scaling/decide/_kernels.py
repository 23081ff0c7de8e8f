"""The numerical core of the decisions: the law inside the jitted kernels, bisection, argmins.

The kernels trace the law over draws with :func:`_law_log`, the one place the decisions
evaluate a law. Outside JAX, :func:`bayes_scaling.draws.law_over_draws` does the same job; the
kernels here keep the law in the same XLA computation as what follows it (the predictive noise
and ``exp`` in float32, per-draw argmins, a bisection), which a separate call would change in
the last bits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _law_log(fn: Callable, params: Any, x: Any, x_axes: Any = None) -> jax.Array:
    """The law's log target for every draw, traced: ``vmap`` of ``fn`` over the draws.

    Parameters
    ----------
    fn : callable
        The law function ``fn(params, x)``.
    params : mapping of str to array of shape (S,)
        Draws of the law's parameters.
    x : mapping of str to array
        Log covariates.
    x_axes : None, int or mapping, optional
        ``vmap``'s ``in_axes`` for ``x``: None (default) evaluates every draw at all points of
        ``x`` (shape ``(S, P)``), 0 at one point per draw (``(S,)``); a mapping mixes the two.
    """
    return jax.vmap(fn, in_axes=(0, x_axes))(params, x)


@functools.partial(jax.jit, static_argnames=("fn",))
def _pred_kernel(fn, params, x, log_noise):
    """Predictive loss draws ``exp(law + noise)`` over points, shape ``(P, S)``.

    ``log_noise`` is ``(S,)`` (the same at every point) or ``(P, S)`` (with the discrepancy).
    """
    law_log = _law_log(fn, params, x).T
    return jnp.exp(law_log + log_noise)


@functools.partial(jax.jit, static_argnames=("fn",))
def _law_at_points(fn, params, x):
    """Law at one point per draw: params (S,), x values (S,) -> (S,) log target."""
    return _law_log(fn, params, x, 0)


def _bisect(
    ok: Callable[[Any], Any],
    lo: Any,
    hi: Any,
    *,
    steps: int | None = None,
    tol: float | None = None,
    xp: Any = np,
) -> tuple[Any, Any]:
    """Bisection, elementwise: shrink ``[lo, hi]`` onto the point where ``ok`` turns True.

    ``ok(x)`` is False below the boundary and True above it (elementwise over arrays). Each
    step evaluates ``ok`` at the midpoint and keeps the half where it changes, so ``hi`` always
    satisfies ``ok`` (when it did to begin with).

    Parameters
    ----------
    ok : callable
        Predicate on the midpoints, same shape as ``lo``.
    lo, hi : array or float
        The brackets.
    steps : int, optional
        Number of halvings (needed with ``xp=jax.numpy``).
    tol : float, optional
        Without ``steps``: halve until ``hi - lo <= tol`` everywhere.
    xp : module, default numpy
        ``numpy``, or ``jax.numpy`` to trace the steps as a ``fori_loop`` inside a kernel.

    Returns
    -------
    (lo, hi)
        The final brackets.
    """

    def step(bounds: tuple[Any, Any]) -> tuple[Any, Any]:
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        good = ok(mid)
        return xp.where(good, lo, mid), xp.where(good, mid, hi)

    if xp is jnp:
        if steps is None:
            raise ValueError("bisection inside a kernel needs a fixed number of steps")
        return jax.lax.fori_loop(0, steps, lambda _, bounds: step(bounds), (lo, hi))
    if steps is None and tol is None:
        raise ValueError("bisection needs steps or tol")
    done = 0
    while (steps is None or done < steps) and (tol is None or np.max(hi - lo) > tol):
        lo, hi = step((lo, hi))
        done += 1
    return lo, hi


def _parabola_vertex(grid: np.ndarray, idx: np.ndarray, nbrs: np.ndarray) -> np.ndarray:
    """Sub-grid minimum from the values at ``idx - 1, idx, idx + 1`` (rows of ``nbrs``).

    ``grid`` is evenly spaced; ends of the grid, non-finite and non-convex triples keep the
    grid point.
    """
    h = grid[1] - grid[0]
    finite = np.all(np.isfinite(nbrs), axis=1)
    nb = np.where(finite[:, None], nbrs, 0.0)
    denom = nb[:, 0] - 2 * nb[:, 1] + nb[:, 2]
    interior = finite & (idx > 0) & (idx < grid.size - 1) & (denom > 0)
    shift = np.where(interior, 0.5 * (nb[:, 0] - nb[:, 2]) / np.where(interior, denom, 1.0), 0.0)
    return grid[idx] + np.clip(shift, -0.5, 0.5) * h


def _refine_argmin(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row of ``values`` (rows, len(grid)), the parabola-refined argmin over ``grid``."""
    idx = np.argmin(values, axis=1)
    rows = np.arange(values.shape[0])
    nbrs = np.stack([values[rows, np.clip(idx + o, 0, grid.size - 1)] for o in (-1, 0, 1)], 1)
    return _parabola_vertex(grid, idx, nbrs)
