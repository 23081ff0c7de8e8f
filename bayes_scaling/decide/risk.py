"""Risk measures over loss draws: :class:`RiskMeasure` and its validated factories.

:func:`expected`, :func:`quantile`, :func:`cvar` (lower is better) and :func:`prob_below` (higher
is better, ``maximise=True``) build a :class:`RiskMeasure`, a callable
``risk(loss_draws) -> float``; :func:`parse_risk` reads the command-line spelling
(``"cvar:0.9"``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayes_scaling.decide._common import ArrayLike, _positive, _real

RISK_NAMES: tuple[str, ...] = ("expected", "quantile", "cvar", "prob_below")


# --------------------------------------------------------------------------- risk measures


@dataclasses.dataclass(frozen=True)
class RiskMeasure:
    """A risk measure over loss draws: ``risk(loss_draws) -> float``.

    Build one with :func:`expected`, :func:`quantile`, :func:`cvar`, :func:`prob_below` or
    :func:`parse_risk`; the factories validate their argument once.

    Parameters
    ----------
    kind : {"expected", "quantile", "cvar", "prob_below"}
        The measure.
    param : float or None
        Its argument (quantile level, CVaR level, target loss); None for ``expected``.

    Attributes
    ----------
    maximise : bool
        Direction. False (lower is better) for ``expected``, ``quantile`` and ``cvar``; True
        (higher is better) for ``prob_below``. Optimisers minimise :meth:`objective`, which is the
        value itself or its negative.
    name : str
        Round-trippable spelling, ``parse_risk(r.name) == r``.

    Notes
    -----
    Calling the measure on a 1-D array returns a float; on an ``(S, K)`` array it reduces over
    axis 0 (the draws) and returns a NumPy array of shape ``(K,)``. :meth:`reduce` is the same
    computation in ``jax.numpy`` and is what the allocation kernel traces.
    """

    kind: str
    param: float | None = None

    @property
    def maximise(self) -> bool:
        return self.kind == "prob_below"

    @property
    def name(self) -> str:
        return self.kind if self.param is None else f"{self.kind}:{self.param:g}"

    def __str__(self) -> str:
        return self.name

    @property
    def _arg(self) -> float:
        if self.param is None:
            raise ValueError(f"risk {self.kind!r} has no argument")
        return float(self.param)

    def reduce(self, loss: jax.Array, axis: int = 0) -> jax.Array:
        """The measure in ``jax.numpy``, reducing ``axis`` (traceable; shapes are static)."""
        loss = jnp.asarray(loss)
        if self.kind == "expected":
            return jnp.mean(loss, axis=axis)
        if self.kind == "quantile":
            return jnp.quantile(loss, self._arg, axis=axis)
        if self.kind == "cvar":
            x = jnp.moveaxis(loss, axis, -1)
            k, m = _cvar_tail(x.shape[-1], self._arg)
            top = jax.lax.top_k(x, k)[0]
            # reductions only: XLA turns top_k followed by a slice into a full sort
            return (jnp.sum(top, axis=-1) - (k - m) * jnp.min(top, axis=-1)) / m
        return jnp.mean((loss <= self._arg).astype(loss.dtype), axis=axis)

    def reduce_numpy(self, loss: np.ndarray, axis: int = -1) -> np.ndarray:
        """The measure in NumPy, reducing ``axis``; the allocation hot path.

        On CPU, ``numpy.partition`` along contiguous rows is an order of magnitude faster than
        the sort XLA uses for quantiles, so allocation evaluates the loss draws in JAX and
        reduces a ``(candidates, draws)`` array here.
        """
        x = np.moveaxis(np.asarray(loss), axis, -1)
        if self.kind == "expected":
            return x.mean(axis=-1, dtype=np.float64)
        if self.kind == "quantile":
            return np.quantile(x, self._arg, axis=-1).astype(np.float64)
        if self.kind == "cvar":
            n = x.shape[-1]
            k, m = _cvar_tail(n, self._arg)
            top = np.partition(x, n - k, axis=-1)[..., n - k :]
            return (top.sum(axis=-1, dtype=np.float64) - (k - m) * top.min(axis=-1)) / m
        return (x <= self._arg).mean(axis=-1, dtype=np.float64)

    def __call__(self, loss_draws: ArrayLike) -> float | np.ndarray:
        arr = np.asarray(loss_draws, dtype=float)
        if arr.ndim == 0 or arr.size == 0:
            raise ValueError(
                f"risk {self.name!r} needs an array of loss draws; got shape {arr.shape}"
            )
        out = self.reduce_numpy(arr, axis=0)
        return float(out) if np.ndim(out) == 0 else np.asarray(out)

    def objective(self, value: ArrayLike) -> ArrayLike:
        """Lower-is-better form of a risk value: ``-value`` when :attr:`maximise`, else itself."""
        return -value if self.maximise else value


def _cvar_tail(n: int, level: float) -> tuple[int, float]:
    """Draws in the CVaR tail: ``k`` whole draws covering the tail mass ``m = (1 - level) n``."""
    m = (1.0 - level) * n
    k = min(n, max(1, math.ceil(m - 1e-9)))
    return k, m


def expected() -> RiskMeasure:
    """Expected loss (risk-neutral).

    Returns
    -------
    RiskMeasure
        ``risk(loss_draws) = mean(loss_draws)``; lower is better.

    Examples
    --------
    >>> expected()([1.0, 2.0, 3.0])
    2.0
    """
    return RiskMeasure("expected")


def quantile(q: float) -> RiskMeasure:
    """The ``q``-quantile of loss (value at risk); lower is better.

    Parameters
    ----------
    q : float
        Level in (0, 1), e.g. 0.9 for "a loss we beat with 90% probability".

    Returns
    -------
    RiskMeasure

    Raises
    ------
    TypeError
        If ``q`` is not a real number.
    ValueError
        If ``q`` is not strictly between 0 and 1.

    Examples
    --------
    >>> quantile(0.5)([1.0, 2.0, 3.0])
    2.0
    """
    q = _real("quantile level q", q)
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile level q must be in (0, 1); got {q:g}")
    return RiskMeasure("quantile", q)


def cvar(level: float = 0.9) -> RiskMeasure:
    """Conditional value at risk: mean loss over the worst ``1 - level`` fraction of draws.

    Parameters
    ----------
    level : float, default 0.9
        In [0, 1); ``cvar(0.0)`` is the expected loss, larger levels are more risk-averse.

    Returns
    -------
    RiskMeasure
        Lower is better.

    Raises
    ------
    TypeError
        If ``level`` is not a real number.
    ValueError
        If ``level`` is outside [0, 1).

    Notes
    -----
    For ``S`` draws the tail holds ``m = (1 - level) S`` draws; the estimate is the mean of the
    ``floor(m)`` largest losses plus the next one weighted by ``m - floor(m)`` (the exact CVaR of
    the empirical distribution).

    References
    ----------
    Rockafellar & Uryasev 2000, "Optimization of conditional value-at-risk".

    Examples
    --------
    >>> cvar(0.5)([1.0, 2.0, 3.0, 4.0])
    3.5
    """
    level = _real("cvar level", level)
    if not 0.0 <= level < 1.0:
        raise ValueError(f"cvar level must be in [0, 1); got {level:g}")
    return RiskMeasure("cvar", level)


def prob_below(target: float) -> RiskMeasure:
    """Probability that the loss is at most ``target``; **higher is better** (``maximise=True``).

    Parameters
    ----------
    target : float
        Target loss, > 0 (losses are positive).

    Returns
    -------
    RiskMeasure
        ``risk(loss_draws) = mean(loss_draws <= target)``. Optimisers maximise it; ties between
        candidates are broken by the lower expected loss.

    Raises
    ------
    TypeError
        If ``target`` is not a real number.
    ValueError
        If ``target`` is not a finite positive number.

    Examples
    --------
    >>> r = prob_below(2.0)
    >>> r([1.5, 2.5, 1.9, 3.0]), r.maximise
    (0.5, True)
    """
    target = _positive("prob_below target loss", target)
    return RiskMeasure("prob_below", target)


_RISK_ALIASES = {
    "expected": "expected",
    "mean": "expected",
    "quantile": "quantile",
    "cvar": "cvar",
    "prob_below": "prob_below",
}


def parse_risk(spec: str | RiskMeasure) -> RiskMeasure:
    """Read a risk measure from its command-line spelling.

    Parameters
    ----------
    spec : str or RiskMeasure
        ``"expected"`` (or ``"mean"``), ``"quantile:Q"``, ``"cvar:LEVEL"``,
        ``"prob_below:TARGET"``. A :class:`RiskMeasure` passes through.

    Returns
    -------
    RiskMeasure

    Raises
    ------
    ValueError
        For an unknown name, a missing or extra argument, a non-numeric or out-of-range argument.

    Examples
    --------
    >>> parse_risk("cvar:0.9")
    RiskMeasure(kind='cvar', param=0.9)
    >>> parse_risk("expected").name
    'expected'
    """
    if isinstance(spec, RiskMeasure):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"risk must be a string such as 'cvar:0.9'; got {type(spec).__name__}")
    name, sep, arg = spec.strip().partition(":")
    key = _RISK_ALIASES.get(name.strip().lower())
    if key is None:
        raise ValueError(
            f"unknown risk {name.strip()!r}; available: expected, quantile:Q, cvar:LEVEL, "
            f"prob_below:TARGET (e.g. 'cvar:0.9')"
        )
    if key == "expected":
        if sep:
            raise ValueError(f"risk 'expected' takes no argument; got {spec!r}")
        return expected()
    if not arg.strip():
        example = {"quantile": "quantile:0.9", "cvar": "cvar:0.9", "prob_below": "prob_below:2.0"}
        raise ValueError(f"risk {key!r} needs an argument, e.g. {example[key]!r}; got {spec!r}")
    try:
        value = float(arg)
    except ValueError:
        raise ValueError(f"risk {key!r}: argument {arg.strip()!r} is not a number") from None
    factories: dict[str, Callable[[float], RiskMeasure]] = {
        "quantile": quantile,
        "cvar": cvar,
        "prob_below": prob_below,
    }
    return factories[key](value)


def _as_risk(risk: RiskMeasure | str | Callable | None) -> RiskMeasure | Callable:
    if risk is None:
        return expected()
    if isinstance(risk, (RiskMeasure, str)):
        return parse_risk(risk)
    if callable(risk):
        return risk
    raise TypeError(
        f"risk must be a RiskMeasure, a string such as 'cvar:0.9' or a callable; "
        f"got {type(risk).__name__}"
    )


def _risk_name(risk: Any) -> str:
    return risk.name if isinstance(risk, RiskMeasure) else getattr(risk, "__name__", repr(risk))


def _risk_maximise(risk: Any) -> bool:
    return bool(getattr(risk, "maximise", False))
