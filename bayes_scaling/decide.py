"""Decisions under uncertainty: risk measures, compute allocation, targets, constraints, batch size.

Everything here works on **posterior draws**: a mapping ``{param_name: array of shape (S,)}``
holding the law's parameters (``E``, ``A``, ``B``, ``alpha``, ``beta``, ...) plus ``sigma``, the
residual standard deviation of the log target, and optionally ``nu``, the Student-t degrees of
freedom. A fitted ``arviz.InferenceData`` is accepted wherever draws are: it is turned into draws
with :func:`bayes_scaling.inference.posterior_draws` (``group=`` selects a group). This module
never runs inference.

Layers
------
* **Risk measures** are validated factories returning a :class:`RiskMeasure`, a callable
  ``risk(loss_draws) -> float``: :func:`expected`, :func:`quantile`, :func:`cvar` (lower is
  better) and :func:`prob_below` (higher is better, ``maximise=True``). :func:`parse_risk` reads
  the command-line spelling (``"cvar:0.9"``).
* **Allocation** (:func:`allocate`) evaluates the law for every draw at ``num_candidates``
  log-spaced model sizes on the iso-compute line ``C = k N D`` in one jitted, vmapped JAX call,
  applies the risk measure across draws and picks the best candidate. It also reports the
  posterior of each draw's own optimum ``N*(C)`` and the expected regret of the choice.
* **Targets** (:func:`compute_for_target`): the least compute reaching a loss with a given
  probability. **Inference-aware sizing** (:func:`allocate_inference_aware`).
* **Batch size** (:func:`choose_batch_size`, :func:`batch_size_for_cost`,
  :func:`choose_batch_sizes`) from ``batch_steps`` draws.

Results are frozen dataclasses with a ``to_dict()`` of JSON-ready values for the CLI.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from bayes_scaling import laws as _laws
from bayes_scaling.laws import LawSpec, get_law

__all__ = [
    "LOSS_QUANTILE_LEVELS",
    "MUENNIGHOFF_REPETITION",
    "RISK_NAMES",
    "Allocation",
    "BatchSizeChoice",
    "InferenceAwareChoice",
    "RiskMeasure",
    "TargetCompute",
    "allocate",
    "allocate_inference_aware",
    "batch_size_for_cost",
    "choose_batch_size",
    "choose_batch_sizes",
    "compute_for_target",
    "cvar",
    "expected",
    "parse_risk",
    "prob_below",
    "quantile",
]

#: Repetition decay constants of Muennighoff et al. 2023 (C4), usable with chinchilla draws.
MUENNIGHOFF_REPETITION: dict[str, float] = {"R_D": 15.39, "R_N": 5.31}

#: Levels of the loss quantiles reported at a chosen allocation (keys of ``loss_quantiles``).
LOSS_QUANTILE_LEVELS: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)

RISK_NAMES: tuple[str, ...] = ("expected", "quantile", "cvar", "prob_below")

ArrayLike = Any

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
        """Lower-is-better form of a risk value: ``-value`` when :attr:`maximise`, else ``value``."""
        return -value if self.maximise else value


def _cvar_tail(n: int, level: float) -> tuple[int, float]:
    """Draws in the CVaR tail: ``k`` whole draws covering the tail mass ``m = (1 - level) n``."""
    m = (1.0 - level) * n
    k = min(n, max(1, math.ceil(m - 1e-9)))
    return k, m


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    return value


def _positive(name: str, value: Any) -> float:
    value = _real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0; got {value:g}")
    return value


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


# --------------------------------------------------------------------------- draws


def _coerce_draws(obj: Any, group: Any = None) -> tuple[dict[str, np.ndarray], str | None]:
    """Draws dict (float64 arrays of one length) and the law recorded with a fit, if any."""
    law_name = None
    if hasattr(obj, "posterior"):
        try:
            from bayes_scaling.inference import posterior_draws
        except ImportError as err:  # pragma: no cover - until inference lands
            raise ImportError(
                "passing a fit needs bayes_scaling.inference.posterior_draws; pass a draws dict"
            ) from err
        law_name = obj.posterior.attrs.get("law")
        obj = posterior_draws(obj, group=group)
    elif group is not None:
        raise ValueError("group= selects a group of a fit (InferenceData); got a draws mapping")
    if not isinstance(obj, Mapping):
        raise TypeError(
            "expected posterior draws {name: array (S,)} or an arviz InferenceData; "
            f"got {type(obj).__name__}"
        )
    arrays = {}
    for key, value in obj.items():
        arr = np.asarray(value, dtype=float)
        if arr.ndim > 1:
            raise ValueError(
                f"draws[{key!r}] must be 1-D (one value per draw); got shape {arr.shape}"
            )
        arrays[str(key)] = arr
    if not arrays:
        raise ValueError("draws are empty; expected {param_name: array of shape (S,)}")
    sizes = {a.size for a in arrays.values() if a.ndim == 1}
    if len(sizes) > 1:
        shapes = ", ".join(f"{k}: {a.shape}" for k, a in arrays.items())
        raise ValueError(f"draws must all have the same length; got {shapes}")
    size = sizes.pop() if sizes else 1
    if size == 0:
        raise ValueError("draws have zero samples")
    out = {k: np.broadcast_to(a, (size,)).astype(float) for k, a in arrays.items()}
    for key, arr in out.items():
        # nu = inf (a normal likelihood written as Student-t) is the one non-finite value allowed
        bad = np.isnan(arr) | (np.isinf(arr) & (key != "nu" or arr < 0))
        if bad.any():
            raise ValueError(
                f"draws[{key!r}] has {int(bad.sum())} non-finite values (first at draw "
                f"{int(np.argmax(bad))})"
            )
    return out, law_name


def _require(draws: Mapping[str, np.ndarray], names: tuple[str, ...], what: str) -> None:
    missing = [n for n in names if n not in draws]
    if missing:
        raise ValueError(
            f"{what} needs draws of {list(names)}; missing {missing}; got {sorted(draws)}"
        )


def _infer_law_name(draws: Mapping[str, np.ndarray]) -> str:
    names = set(draws)
    chin = {"E", "A", "B", "alpha", "beta"}
    if chin <= names:
        return "data_constrained" if {"R_D", "R_N"} <= names else "chinchilla"
    if {"alpha_N", "alpha_D", "N_c", "D_c"} <= names:
        return "kaplan"
    raise ValueError(
        "cannot tell the law from draws with parameters "
        f"{sorted(names)}; pass law= (chinchilla, kaplan or data_constrained)"
    )


def _check_allocation_law(spec: LawSpec) -> None:
    covs = set(spec.covariates)
    if not {"N", "D"} <= covs or not covs <= {"N", "D", "U"}:
        raise ValueError(
            f"allocation needs a law over N and D (chinchilla, kaplan, data_constrained); "
            f"law {spec.name!r} has covariates {list(spec.covariates)}"
        )


def _allocation_spec(
    law: str | LawSpec | None,
    fit_law: str | None,
    draws: dict[str, np.ndarray],
    unique_tokens: float | None,
    repetition: str | Mapping[str, float] | None,
) -> tuple[LawSpec, dict[str, np.ndarray]]:
    spec = get_law(law if law is not None else (fit_law or _infer_law_name(draws)))
    _check_allocation_law(spec)
    covs = set(spec.covariates)
    if repetition is not None and unique_tokens is None:
        raise ValueError("repetition= only applies with unique_tokens=; pass unique_tokens")
    if unique_tokens is not None and "U" not in covs:
        if spec.name != "chinchilla":
            raise ValueError(
                f"unique_tokens needs the data_constrained law; law {spec.name!r} has no "
                "repetition model"
            )
        if {"R_D", "R_N"} <= set(draws):
            if repetition is not None:
                raise ValueError("these draws already carry R_D and R_N; drop repetition=")
        elif repetition is None:
            raise ValueError(
                "unique_tokens needs a data_constrained fit (draws with R_D and R_N); got "
                f"chinchilla draws with {sorted(draws)}. Fit law='data_constrained', or pass "
                "repetition='muennighoff' to use Muennighoff et al. 2023's R_D=15.39, R_N=5.31"
            )
        else:
            values = _repetition_values(repetition)
            size = next(iter(draws.values())).size
            draws = dict(draws, **{k: np.full(size, v) for k, v in values.items()})
        spec = get_law("data_constrained")
    elif repetition is not None:
        raise ValueError(
            f"repetition= adds R_D/R_N to chinchilla draws; law {spec.name!r} already has them"
        )
    _require(draws, spec.param_names, f"law {spec.name!r}")
    return spec, draws


def _repetition_values(repetition: str | Mapping[str, float]) -> dict[str, float]:
    if isinstance(repetition, str):
        if repetition.lower() != "muennighoff":
            raise ValueError(
                f"unknown repetition preset {repetition!r}; available: 'muennighoff' "
                "(R_D=15.39, R_N=5.31), or a mapping {'R_D': ..., 'R_N': ...}"
            )
        return dict(MUENNIGHOFF_REPETITION)
    if not isinstance(repetition, Mapping) or set(repetition) != {"R_D", "R_N"}:
        raise ValueError(
            f"repetition must be 'muennighoff' or a mapping with keys R_D and R_N; got {repetition!r}"
        )
    return {k: _positive(f"repetition[{k!r}]", v) for k, v in repetition.items()}


def _rng_key(rng_key: jax.Array | None, seed: int) -> jax.Array:
    if rng_key is not None:
        return rng_key
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer; got {seed!r}")
    return jax.random.PRNGKey(int(seed))


def _numpy_rng(key: jax.Array) -> np.random.Generator:
    """A NumPy generator seeded from a JAX key (raw ``uint32`` or typed), deterministically."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    words = np.asarray(key, dtype=np.uint32).ravel()
    return np.random.default_rng([int(w) for w in words])


def _log_noise(
    draws: Mapping[str, np.ndarray], predictive: bool, key: jax.Array, size: int
) -> np.ndarray:
    """Per-draw residual ``sigma * eps`` on the log scale (shared by all candidates).

    ``eps`` is standard normal, also for a Student-t fit: the Student-t's heavy tails model
    outlying records, and under them a new run's loss ``L exp(sigma t)`` has no finite mean for
    any ``nu`` (``E[exp(sigma t)]`` diverges), so ``expected`` and ``cvar`` would be infinite
    at every candidate and a finite sample would pick the model size of whichever draw got the
    largest noise (with ``nu`` near 1, one draw in a thousand can reach a loss of ``1e15``).
    Sampled with NumPy from a generator seeded by ``key``.
    """
    if not predictive:
        return np.zeros(size, dtype=np.float32)
    if "sigma" not in draws:
        warnings.warn(
            "draws have no 'sigma'; predictive=True falls back to parameter uncertainty only",
            stacklevel=3,
        )
        return np.zeros(size, dtype=np.float32)
    if np.any(draws["sigma"] < 0):
        raise ValueError("draws['sigma'] must be >= 0 (the residual sd of the log loss)")
    if "nu" in draws and np.any(draws["nu"] <= 0):
        raise ValueError("draws['nu'] must be > 0 (Student-t degrees of freedom)")
    eps = _numpy_rng(key).standard_normal(size)
    return (eps * draws["sigma"]).astype(np.float32)


def _quantile_dict(values: np.ndarray) -> dict[str, float]:
    qs = np.quantile(values, LOSS_QUANTILE_LEVELS)
    return {f"{lvl:g}": float(v) for lvl, v in zip(LOSS_QUANTILE_LEVELS, qs)}


def _interval(values: np.ndarray, prob: float) -> tuple[float, float]:
    lo, hi = np.quantile(values, [(1 - prob) / 2, (1 + prob) / 2])
    return float(lo), float(hi)


def _check_prob(name: str, value: Any, closed_low: bool = False) -> float:
    value = _real(name, value)
    ok = (0.0 <= value < 1.0) if closed_low else (0.0 < value < 1.0)
    if not ok:
        raise ValueError(f"{name} must be in {'[0' if closed_low else '(0'}, 1); got {value:g}")
    return value


# --------------------------------------------------------------------------- allocation core


def _closed_form_log_n_opt(
    spec: LawSpec, draws: Mapping[str, np.ndarray], compute: float, k: float
) -> np.ndarray | None:
    """Per-draw log N*(C) on ``C = k N D`` where a closed form exists (else None).

    Chinchilla: N* = G (C/k)^(beta/(alpha+beta)), G = (alpha A/(beta B))^(1/(alpha+beta)).
    Kaplan: with a = alpha_N/alpha_D, N* = (a N_c^a C/(k D_c))^(1/(a+1)).
    The data-constrained law uses the Chinchilla form (exact without repetition).
    """
    log_ck = math.log(compute) - math.log(k)
    if {"E", "A", "B", "alpha", "beta"} <= set(spec.param_names):
        a, b = draws["alpha"], draws["beta"]
        num = np.log(a) + np.log(draws["A"]) - np.log(b) - np.log(draws["B"]) + b * log_ck
        return num / (a + b)
    if spec.fn is _laws.kaplan:
        a = draws["alpha_N"] / draws["alpha_D"]
        num = np.log(a) + a * np.log(draws["N_c"]) + log_ck - np.log(draws["D_c"])
        return num / (a + 1.0)
    return None


def _log_d_on_line(log_n: np.ndarray, compute: float, k: float, c_inf: float) -> np.ndarray:
    """log D on the cost line ``k N D + c_inf N = compute``."""
    n = np.exp(log_n)
    return np.log(compute - c_inf * n) - math.log(k) - log_n


@dataclasses.dataclass(frozen=True)
class _Grid:
    log_n: np.ndarray
    upper_is_constraint: bool
    lower_is_constraint: bool


def _candidate_grid(
    spec: LawSpec,
    draws: Mapping[str, np.ndarray],
    compute: float,
    k: float,
    c_inf: float,
    max_n: float | None,
    unique_tokens: float | None,
    n_range: tuple[float, float] | None,
    num: int,
) -> _Grid:
    if n_range is not None:
        lo, hi = (math.log(_positive("n_range bound", v)) for v in n_range)
        if lo >= hi:
            raise ValueError(f"n_range must be (low, high) with low < high; got {n_range}")
    else:
        log_opt = _closed_form_log_n_opt(spec, draws, compute, k)
        if log_opt is not None and np.all(np.isfinite(log_opt)):
            q_lo, q_hi = np.quantile(log_opt, [0.005, 0.995])
            lo, hi = q_lo - math.log(4.0), q_hi + math.log(4.0)
        else:  # tokens per parameter from 1e-2 to 1e4
            log_ck = math.log(compute) - math.log(k)
            lo, hi = 0.5 * (log_ck - math.log(1e4)), 0.5 * (log_ck + math.log(1e2))
        if unique_tokens is not None:
            hi = max(hi, math.log(compute / (k * unique_tokens)) + math.log(4.0))
    cap = math.log(compute / k)  # at least one token
    if max_n is not None:
        cap = min(cap, math.log(max_n))
    if c_inf > 0:
        cap = min(cap, math.log(compute / c_inf) + math.log(0.999))
    upper_is_constraint = hi >= cap
    hi = min(hi, cap)
    lower_is_constraint = lo <= 0.0
    lo = max(lo, 0.0)
    if lo >= hi:
        lo = hi - math.log(16.0)
        if lo < 0.0:
            raise ValueError(
                f"no feasible model size on the cost line: compute {compute:g} with the given "
                "constraints leaves N < 1"
            )
    return _Grid(np.linspace(lo, hi, num), upper_is_constraint, lower_is_constraint)


def _covariates(spec: LawSpec, log_n: Any, log_d: Any, log_u: Any) -> dict[str, Any]:
    x = {"N": log_n, "D": log_d}
    if "U" in spec.covariates:
        x["U"] = log_d if log_u is None else log_u
    return x


@functools.partial(jax.jit, static_argnames=("fn",))
def _loss_matrix_kernel(fn, params, x, log_noise):
    """Law and predictive loss draws over candidates, as ``(K, S)`` arrays, and per-draw argmins.

    ``params`` holds ``(S,)`` arrays, ``x`` the log covariates ``(K,)``; ``log_noise`` is the
    per-draw residual ``(S,)``. The output is candidate-major so that reductions over draws run
    along contiguous rows.
    """
    law_log = jax.vmap(lambda p: fn(p, x))(params).T  # (K, S)
    pred = jnp.exp(law_log + log_noise[None, :])
    num = law_log.shape[0]
    per_idx = jnp.argmin(law_log, axis=0)  # (S,) each draw's best candidate
    cols = jnp.arange(law_log.shape[1])
    nbrs = jnp.stack([law_log[jnp.clip(per_idx + o, 0, num - 1), cols] for o in (-1, 0, 1)], axis=1)
    return {"law_log": law_log, "pred": pred, "per_idx": per_idx, "per_nbrs": nbrs}


@functools.partial(jax.jit, static_argnames=("fn",))
def _pred_kernel(fn, params, x, log_noise):
    law_log = jax.vmap(lambda p: fn(p, x))(params).T
    return jnp.exp(law_log + log_noise[None, :])


def _risk_curve(risk: Any, pred: np.ndarray) -> np.ndarray:
    """Risk over draws for each candidate row of ``pred`` (K, S)."""
    if isinstance(risk, RiskMeasure):
        curve = np.asarray(risk.reduce_numpy(pred, axis=-1), dtype=float)
    else:
        curve = np.array([float(risk(row)) for row in pred])
    if not np.all(np.isfinite(curve)):
        bad = ~np.all(np.isfinite(pred), axis=0)
        raise ValueError(
            f"risk {_risk_name(risk)!r} is not finite at {int((~np.isfinite(curve)).sum())} of "
            f"{curve.size} candidates"
            + (
                f": {int(bad.sum())} of {bad.size} draws give a non-finite loss there (beyond "
                "the float32 range); their parameters are extreme (e.g. a new group drawn from "
                "a wide population)"
                if bad.any()
                else ""
            )
        )
    return curve


def _run_allocation(spec, params, x, log_noise, risk):
    out = jax.device_get(_loss_matrix_kernel(spec.fn, params, x, log_noise))
    pred = out["pred"]
    curve = _risk_curve(risk, pred)
    mean_pred = pred.mean(axis=-1, dtype=np.float64)
    score = -curve if _risk_maximise(risk) else curve
    # ties (e.g. a probability equal to 1 over a range) go to the lowest expected loss
    idx = int(np.argmin(np.where(score <= score.min(), mean_pred, np.inf)))
    return {
        "curve": curve,
        "mean": mean_pred,
        "idx": idx,
        "pred_at": pred[idx],
        "law_at": np.exp(out["law_log"][idx].astype(np.float64)),
        "per_idx": out["per_idx"],
        "per_nbrs": out["per_nbrs"],
    }


@functools.partial(jax.jit, static_argnames=("fn",))
def _law_at_points(fn, params, x):
    """Law at one point per draw: params (S,), x values (S,) -> (S,) log target."""
    return jax.vmap(fn)(params, x)


def _jnp_params(spec: LawSpec, draws: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    return {k: jnp.asarray(draws[k], dtype=jnp.float32) for k in spec.param_names}


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


@dataclasses.dataclass(frozen=True, eq=False)
class Allocation:
    """A chosen split of a compute budget between parameters and tokens.

    Attributes
    ----------
    compute : float
        Budget on the cost line, FLOPs: training compute ``k N D``, plus the inference compute
        ``2 N D_inference`` when inference tokens are given.
    N, D : float
        Chosen parameters and training tokens.
    tokens_per_param : float
        ``D / N``.
    risk : str
        Risk measure optimised (``"expected"``, ``"cvar:0.9"``, ...).
    risk_value : float
        Its value at the choice.
    loss_mean : float
        Expected (predictive) loss at the choice.
    loss_quantiles : dict of str to float
        Loss quantiles at the choice, keyed by level (``"0.05"``, ``"0.25"``, ``"0.5"``, ...).
    n_opt_draws : numpy.ndarray
        Each draw's own optimum ``N*(C)`` under the same constraints, shape (S,).
    n_opt_interval, d_opt_interval : tuple of float
        Central ``interval_prob`` credible interval of ``N*(C)`` and the matching ``D``.
    interval_prob : float
        Probability of those intervals (default 0.9).
    regret : float
        Expected regret in loss (nats): mean over draws of the law's loss at the choice minus the
        loss at that draw's own optimum (>= 0).
    regret_draws : numpy.ndarray
        Per-draw regret, shape (S,).
    risk_curve : xarray.DataArray
        Risk over the candidates, dim ``N``; coords ``D``, ``tokens_per_param`` and
        ``loss_mean`` along ``N``; attrs ``risk``, ``maximise``, ``compute``, ``law``.
    law : str
        Law used (``data_constrained`` when a unique-token cap was applied).
    flops_per_token : float
        ``k`` in ``C = k N D``.
    constraints : dict
        ``max_n``, ``unique_tokens``, ``inference_tokens``, ``repetition`` (None when unused).
    training_flops, inference_flops : float
        ``k N D`` and the inference part of the cost.
    dollars : float or None
        Cost in dollars when a price per FLOP was given.
    at_boundary : bool
        True when the choice sits on an end of the candidate range that is not a constraint
        (a warning was issued).
    target_unreachable : bool
        With ``prob_below(target)``: True when the best probability over the candidates is
        below 1%, so the target is out of reach and the choice says little (a
        ``RuntimeWarning`` was issued).
    """

    compute: float
    N: float
    D: float
    tokens_per_param: float
    risk: str
    risk_value: float
    loss_mean: float
    loss_quantiles: dict[str, float]
    n_opt_draws: np.ndarray
    n_opt_interval: tuple[float, float]
    d_opt_interval: tuple[float, float]
    interval_prob: float
    regret: float
    regret_draws: np.ndarray
    risk_curve: xr.DataArray
    law: str
    flops_per_token: float
    constraints: dict[str, Any]
    training_flops: float
    inference_flops: float
    dollars: float | None = None
    at_boundary: bool = False
    target_unreachable: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary.

        Keys: ``N``, ``D``, ``tokens_per_param``, ``compute``, ``risk``, ``risk_value``,
        ``loss_mean``, ``loss_quantiles`` (level string -> loss), ``n_opt_median``,
        ``n_opt_interval`` ([low, high]), ``d_opt_interval``, ``interval_prob``, ``regret``,
        ``law``, ``flops_per_token``, ``constraints``, ``training_flops``, ``inference_flops``,
        ``dollars`` (null unless priced), ``at_boundary``, ``target_unreachable``.
        """
        return {
            "N": float(self.N),
            "D": float(self.D),
            "tokens_per_param": float(self.tokens_per_param),
            "compute": float(self.compute),
            "risk": self.risk,
            "risk_value": float(self.risk_value),
            "loss_mean": float(self.loss_mean),
            "loss_quantiles": dict(self.loss_quantiles),
            "n_opt_median": float(np.median(self.n_opt_draws)),
            "n_opt_interval": [float(v) for v in self.n_opt_interval],
            "d_opt_interval": [float(v) for v in self.d_opt_interval],
            "interval_prob": float(self.interval_prob),
            "regret": float(self.regret),
            "law": self.law,
            "flops_per_token": float(self.flops_per_token),
            "constraints": {
                k: (v if v is None or isinstance(v, (str, dict)) else float(v))
                for k, v in self.constraints.items()
            },
            "training_flops": float(self.training_flops),
            "inference_flops": float(self.inference_flops),
            "dollars": None if self.dollars is None else float(self.dollars),
            "at_boundary": bool(self.at_boundary),
            "target_unreachable": bool(self.target_unreachable),
        }


def _allocate_prepared(
    spec: LawSpec,
    draws: dict[str, np.ndarray],
    params: dict[str, jax.Array],
    log_noise: np.ndarray,
    compute: float,
    risk: Any,
    *,
    k: float,
    c_inf: float,
    max_n: float | None,
    unique_tokens: float | None,
    n_range: tuple[float, float] | None,
    num_candidates: int,
    interval_prob: float,
    constraints: dict[str, Any],
    dollars_per_flop: float | None,
    inference_dollars_per_flop: float | None,
    warn_boundary: bool = True,
) -> Allocation:
    grid = _candidate_grid(
        spec, draws, compute, k, c_inf, max_n, unique_tokens, n_range, num_candidates
    )
    log_n = grid.log_n
    log_d = _log_d_on_line(log_n, compute, k, c_inf)
    log_u = None if unique_tokens is None else np.full_like(log_n, math.log(unique_tokens))
    x = {
        key: jnp.asarray(v, dtype=jnp.float32)
        for key, v in _covariates(spec, log_n, log_d, log_u).items()
    }
    out = _run_allocation(spec, params, x, jnp.asarray(log_noise), risk)
    idx = int(out["idx"])
    num = log_n.size

    # each draw's own optimum under the same constraints
    closed = spec.fn in (_laws.chinchilla, _laws.kaplan) and c_inf == 0.0
    if closed:
        closed_form = _closed_form_log_n_opt(spec, draws, compute, k)
        assert closed_form is not None  # chinchilla and kaplan have one
        upper = math.log(max_n) if max_n is not None else math.inf
        log_opt = np.clip(closed_form, 0.0, min(upper, math.log(compute / k)))
        log_d_opt = _log_d_on_line(log_opt, compute, k, 0.0)
        xs = {"N": jnp.asarray(log_opt, jnp.float32), "D": jnp.asarray(log_d_opt, jnp.float32)}
        law_opt = np.exp(np.asarray(_law_at_points(spec.fn, params, xs), dtype=float))
    else:
        nb = np.asarray(out["per_nbrs"], dtype=float)
        log_opt = _parabola_vertex(log_n, np.asarray(out["per_idx"]), nb)
        law_opt = np.exp(nb[:, 1])
    n_opt = np.exp(log_opt)
    d_opt = np.exp(_log_d_on_line(log_opt, compute, k, c_inf))
    law_at = np.asarray(out["law_at"], dtype=float)
    regret_draws = np.maximum(law_at - law_opt, 0.0)

    n_choice, d_choice = float(np.exp(log_n[idx])), float(np.exp(log_d[idx]))
    at_lower = idx == 0 and not grid.lower_is_constraint
    at_upper = idx == num - 1 and not grid.upper_is_constraint
    at_boundary = bool(at_lower or at_upper)
    if at_boundary and warn_boundary:
        warnings.warn(
            f"the chosen N={n_choice:.3g} is at the {'lower' if at_lower else 'upper'} end of the "
            f"candidate range [{math.exp(log_n[0]):.3g}, {math.exp(log_n[-1]):.3g}]; the optimum "
            "may lie outside it: widen the candidate range (n_range=(low, high); CLI --n-range LOW,HIGH)",
            stacklevel=3,
        )
    risk_value = float(out["curve"][idx])
    size = int(np.asarray(out["pred_at"]).size)
    target_unreachable = (
        isinstance(risk, RiskMeasure)
        and risk.kind == "prob_below"
        and risk_value < _UNREACHABLE_PROB
    )
    if target_unreachable and warn_boundary:
        warnings.warn(
            f"loss {risk.param:g} is out of reach at compute {compute:.3g} FLOP: the best "
            f"P(loss <= {risk.param:g}) over the {num} candidates is {risk_value:.3g} "
            f"({round(risk_value * size)} of {size} draws reach it); the choice N={n_choice:.3g} (expected loss "
            f"{float(np.asarray(out['mean'])[idx]):.4g}) says little. Raise the compute or the target loss",
            RuntimeWarning,
            stacklevel=3,
        )
    curve = xr.DataArray(
        np.asarray(out["curve"], dtype=float),
        dims=("N",),
        coords={
            "N": np.exp(log_n),
            "D": ("N", np.exp(log_d)),
            "tokens_per_param": ("N", np.exp(log_d - log_n)),
            "loss_mean": ("N", np.asarray(out["mean"], dtype=float)),
        },
        name="risk",
        attrs={
            "risk": _risk_name(risk),
            "maximise": int(_risk_maximise(risk)),
            "compute": compute,
            "law": spec.name,
            "chosen_N": n_choice,
        },
    )
    pred_at = np.asarray(out["pred_at"], dtype=float)
    d_lo, d_hi = sorted(_interval(d_opt, interval_prob))
    training = k * n_choice * d_choice
    inference = compute - training if c_inf > 0 else 0.0
    dollars = None
    if dollars_per_flop is not None:
        p_inf = (
            dollars_per_flop if inference_dollars_per_flop is None else inference_dollars_per_flop
        )
        dollars = dollars_per_flop * training + p_inf * inference
    return Allocation(
        compute=compute,
        N=n_choice,
        D=d_choice,
        tokens_per_param=d_choice / n_choice,
        risk=_risk_name(risk),
        risk_value=risk_value,
        loss_mean=float(pred_at.mean()),
        loss_quantiles=_quantile_dict(pred_at),
        n_opt_draws=n_opt,
        n_opt_interval=_interval(n_opt, interval_prob),
        d_opt_interval=(d_lo, d_hi),
        interval_prob=interval_prob,
        regret=float(regret_draws.mean()),
        regret_draws=regret_draws,
        risk_curve=curve,
        law=spec.name,
        flops_per_token=k,
        constraints=constraints,
        training_flops=training,
        inference_flops=inference,
        dollars=dollars,
        at_boundary=at_boundary,
        target_unreachable=target_unreachable,
    )


@dataclasses.dataclass(frozen=True)
class _Prepared:
    spec: LawSpec
    draws: dict[str, np.ndarray]
    params: dict[str, jax.Array]
    log_noise: np.ndarray


_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Below this best probability, prob_below's target counts as out of reach.
_UNREACHABLE_PROB = 0.01


def _check_kernel_range(spec: LawSpec, draws: Mapping[str, np.ndarray], group: Any) -> None:
    """Refuse parameter draws that overflow float32, the precision of the allocation kernels."""
    for name in spec.param_names:
        big = np.abs(draws[name]) > _FLOAT32_MAX
        if big.any():
            hint = (
                "group='new' draws them from the fitted population, which is this wide when few "
                "groups inform it: choose one of the fit's groups, or refit with more groups or a "
                "tighter prior on the population sd"
                if group == "new"
                else "the fit is broken: check its diagnostics and priors, and refit"
            )
            raise ValueError(
                f"{int(big.sum())} of {big.size} draws of {name!r} exceed the float32 range of "
                f"the allocation ({_FLOAT32_MAX:.3g}; largest {float(np.abs(draws[name]).max()):.3g}"
                f"); {hint}"
            )


def _prepare(draws_or_fit, law, unique_tokens, repetition, predictive, group, rng_key, seed):
    if hasattr(draws_or_fit, "posterior") and law is None:
        # the law first: a fit of a law with no allocation fails on that, not on its groups
        fit_law = draws_or_fit.posterior.attrs.get("law")
        if fit_law is not None:
            _check_allocation_law(get_law(fit_law))
    draws, fit_law = _coerce_draws(draws_or_fit, group)
    spec, draws = _allocation_spec(law, fit_law, draws, unique_tokens, repetition)
    _check_kernel_range(spec, draws, group)
    size = next(iter(draws.values())).size
    key = _rng_key(rng_key, seed)
    log_noise = _log_noise(draws, bool(predictive), key, size)
    return _Prepared(spec, draws, _jnp_params(spec, draws), log_noise)


def _check_common(flops_per_token, max_n, unique_tokens, num_candidates, interval_prob):
    k = _positive("flops_per_token", flops_per_token)
    max_n = None if max_n is None else _positive("max_n", max_n)
    unique_tokens = None if unique_tokens is None else _positive("unique_tokens", unique_tokens)
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, numbers.Integral):
        raise TypeError(f"num_candidates must be an integer; got {num_candidates!r}")
    if num_candidates < 8:
        raise ValueError(f"num_candidates must be >= 8; got {num_candidates}")
    interval_prob = _check_prob("interval_prob", interval_prob)
    return k, max_n, unique_tokens, int(num_candidates), interval_prob


def allocate(
    draws_or_fit: Any,
    compute: float,
    risk: RiskMeasure | str | Callable = "expected",
    *,
    law: str | LawSpec | None = None,
    flops_per_token: float = 6.0,
    max_n: float | None = None,
    unique_tokens: float | None = None,
    repetition: str | Mapping[str, float] | None = None,
    inference_tokens: float | None = None,
    dollars_per_flop: float | None = None,
    num_candidates: int = 512,
    n_range: tuple[float, float] | None = None,
    predictive: bool = True,
    interval_prob: float = 0.9,
    group: Any = None,
    rng_key: jax.Array | None = None,
    seed: int = 0,
) -> Allocation:
    r"""Split a compute budget between parameters and tokens, optimising a risk measure.

    Parameters
    ----------
    draws_or_fit : mapping or arviz.InferenceData
        Posterior draws ``{name: array (S,)}`` of the law's parameters plus ``sigma`` (and
        ``nu``), or a fit (read with ``posterior_draws(fit, group=group)``).
    compute : float
        Budget ``C`` in FLOPs. With ``inference_tokens`` it is the total lifetime compute.
    risk : RiskMeasure, str or callable, default "expected"
        Measure over the loss draws at each candidate: :func:`expected`, :func:`quantile`,
        :func:`cvar`, :func:`prob_below`, a spelling for :func:`parse_risk`, or any
        ``f(loss_draws) -> float`` (minimised unless it has ``maximise = True``; evaluated per
        candidate outside JAX, so slower).
    law : str or LawSpec, optional
        Law of the draws; default the fit's recorded law, else inferred from the parameter names.
        Must be over ``N`` and ``D`` (chinchilla, kaplan, data_constrained).
    flops_per_token : float, default 6.0
        ``k`` in ``C = k N D``.
    max_n : float, optional
        Cap on parameters (memory, serving).
    unique_tokens : float, optional
        Unique tokens available ``U``; tokens beyond ``U`` are repeats, valued with the
        data-constrained law. Needs draws with ``R_D``, ``R_N`` or ``repetition``.
    repetition : {"muennighoff"} or mapping, optional
        With chinchilla draws and ``unique_tokens``: fixed repetition constants, either
        Muennighoff et al. 2023's (``R_D=15.39, R_N=5.31``) or ``{"R_D": ..., "R_N": ...}``.
    inference_tokens : float, optional
        Expected tokens served over the model's life; the cost line becomes
        ``k N D + 2 N D_inference = compute`` (Sardana et al. 2023).
    dollars_per_flop : float, optional
        Price per FLOP; adds the dollar cost of the choice (``dollars``).
    num_candidates : int, default 512
        Log-spaced model sizes on the cost line.
    n_range : (float, float), optional
        Candidate range of ``N``. Default: the 0.5%-99.5% range of the draws' closed-form optima
        widened by a factor 4 each way (tokens per parameter 1e-2..1e4 for laws without one),
        clipped to the constraints.
    predictive : bool, default True
        Add the residual noise ``exp(sigma * eps)``, ``eps`` standard normal, to each draw's
        loss. One ``eps`` per draw is shared by all candidates (common random numbers), so the
        risk curve is smooth and each candidate sees the same predictive distribution. A
        Student-t fit's ``nu`` is not used: its heavy tails model outlying records, and under
        them the mean and CVaR of the loss are infinite at every candidate.
    interval_prob : float, default 0.9
        Probability of the central credible intervals reported.
    group : optional
        Group of a grouped fit (``"new"`` for a new group); only with a fit.
    rng_key : jax.Array, optional
        Key for the predictive noise; default ``jax.random.PRNGKey(seed)``.
    seed : int, default 0
        Used when ``rng_key`` is None.

    Returns
    -------
    Allocation
        The choice, its loss distribution and risk, the risk curve over ``N`` (xarray), the
        posterior of each draw's own optimum ``N*(C)`` with a credible interval, and the expected
        regret. ``to_dict()`` gives JSON-ready keys ``N``, ``D``, ``tokens_per_param``,
        ``loss_quantiles``, ``n_opt_interval``, ``regret``, ``risk``, ``compute`` and more.

    Raises
    ------
    ValueError
        For bad budgets or constraints, draws missing the law's parameters, a law not over N and
        D, or ``unique_tokens`` without a repetition model.

    Warns
    -----
    UserWarning
        When the choice is at an end of the candidate range that is not a constraint, or when
        ``predictive=True`` but the draws have no ``sigma``.
    RuntimeWarning
        With ``prob_below(target)`` when the best probability over the candidates is below 1%
        (``target_unreachable``).

    Notes
    -----
    For every draw ``s`` and candidate ``N_j`` (with ``D_j = (C - c N_j)/(k N_j)``, ``c`` the
    inference cost per parameter) the loss is ``L_s(N_j, D_j) exp(sigma_s eps_s)``; the risk
    measure reduces over ``s``; the best candidate wins, ties going to the lower expected loss.
    Each draw's own optimum under Chinchilla, without inference cost, is closed form:

    .. math:: N^*(C) = G (C/k)^{\beta/(\alpha+\beta)},\quad
              G = \left(\frac{\alpha A}{\beta B}\right)^{1/(\alpha+\beta)}

    clipped to ``max_n``; for Kaplan ``N* = (a N_c^a C/(k D_c))^{1/(a+1)}``, ``a = alpha_N /
    alpha_D``; otherwise it is the argmin over the candidates, refined by a parabola in log N.
    Regret uses the law's loss without the residual noise.

    References
    ----------
    Hoffmann et al. 2022, arXiv:2203.15556; Besiroglu et al. 2024, arXiv:2404.10102;
    Muennighoff et al. 2023, arXiv:2305.16264; Sardana et al. 2023, arXiv:2401.00448.

    Examples
    --------
    >>> epoch = dict(E=1.817, A=482.0, B=2085.0, alpha=0.348, beta=0.366, sigma=0.0)
    >>> a = allocate(epoch, 5.9e23, predictive=False)
    >>> round(a.N / 1e9), round(a.tokens_per_param)
    (73, 18)
    """
    compute = _positive("compute", compute)
    k, max_n, unique_tokens, num_candidates, interval_prob = _check_common(
        flops_per_token, max_n, unique_tokens, num_candidates, interval_prob
    )
    inference_tokens = (
        None if inference_tokens is None else _positive("inference_tokens", inference_tokens)
    )
    dollars_per_flop = (
        None if dollars_per_flop is None else _positive("dollars_per_flop", dollars_per_flop)
    )
    risk = _as_risk(risk)
    prep = _prepare(draws_or_fit, law, unique_tokens, repetition, predictive, group, rng_key, seed)
    return _allocate_prepared(
        prep.spec,
        prep.draws,
        prep.params,
        prep.log_noise,
        compute,
        risk,
        k=k,
        c_inf=0.0 if inference_tokens is None else 2.0 * inference_tokens,
        max_n=max_n,
        unique_tokens=unique_tokens,
        n_range=n_range,
        num_candidates=num_candidates,
        interval_prob=interval_prob,
        constraints={
            "max_n": max_n,
            "unique_tokens": unique_tokens,
            "inference_tokens": inference_tokens,
            "repetition": _repetition_label(repetition),
        },
        dollars_per_flop=dollars_per_flop,
        inference_dollars_per_flop=None,
    )


def _repetition_label(repetition: Any) -> Any:
    if repetition is None:
        return None
    return repetition if isinstance(repetition, str) else dict(repetition)


# --------------------------------------------------------------------------- targets


@dataclasses.dataclass(frozen=True, eq=False)
class TargetCompute:
    """Least compute reaching a target loss with a given probability.

    Attributes
    ----------
    compute : float
        Least FLOPs (within ``rtol``) at which ``max_N P(loss <= target) >= prob``.
    N, D, tokens_per_param : float
        The allocation achieving it.
    target_loss, prob : float
        The request.
    achieved_prob : float
        ``P(loss <= target)`` at the returned allocation (>= ``prob``).
    max_prob : float
        Probability reached at the largest compute searched (the ceiling set by ``E`` and noise).
    allocation : Allocation
        Full allocation result at ``compute`` (risk ``prob_below:target``).
    """

    compute: float
    N: float
    D: float
    tokens_per_param: float
    target_loss: float
    prob: float
    achieved_prob: float
    max_prob: float
    allocation: Allocation

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary.

        Keys: ``compute``, ``N``, ``D``, ``tokens_per_param``, ``target_loss``, ``prob``,
        ``achieved_prob``, ``max_prob``, ``loss_quantiles``, ``n_opt_interval``, ``law``.
        """
        return {
            "compute": float(self.compute),
            "N": float(self.N),
            "D": float(self.D),
            "tokens_per_param": float(self.tokens_per_param),
            "target_loss": float(self.target_loss),
            "prob": float(self.prob),
            "achieved_prob": float(self.achieved_prob),
            "max_prob": float(self.max_prob),
            "loss_quantiles": dict(self.allocation.loss_quantiles),
            "n_opt_interval": [float(v) for v in self.allocation.n_opt_interval],
            "law": self.allocation.law,
        }


def compute_for_target(
    draws_or_fit: Any,
    target_loss: float,
    prob: float = 0.9,
    *,
    law: str | LawSpec | None = None,
    flops_per_token: float = 6.0,
    max_n: float | None = None,
    unique_tokens: float | None = None,
    repetition: str | Mapping[str, float] | None = None,
    num_candidates: int = 512,
    predictive: bool = True,
    compute_bounds: tuple[float, float] = (1e6, 1e40),
    rtol: float = 1e-3,
    interval_prob: float = 0.9,
    group: Any = None,
    rng_key: jax.Array | None = None,
    seed: int = 0,
) -> TargetCompute:
    """Least compute at which some allocation reaches ``target_loss`` with probability ``prob``.

    Parameters
    ----------
    draws_or_fit : mapping or arviz.InferenceData
        As in :func:`allocate`.
    target_loss : float
        Loss to reach (nats), > 0.
    prob : float, default 0.9
        Required probability in (0, 1).
    law, flops_per_token, max_n, unique_tokens, repetition, num_candidates, predictive, \
interval_prob, group, rng_key, seed
        As in :func:`allocate`.
    compute_bounds : (float, float), default (1e6, 1e40)
        Search range of compute in FLOPs.
    rtol : float, default 1e-3
        Relative precision of the returned compute.

    Returns
    -------
    TargetCompute
        The compute, its allocation and the achieved probability.

    Raises
    ------
    ValueError
        If the target is not reached with probability ``prob`` even at ``compute_bounds[1]``
        (the message gives the probability reached there), or for bad arguments.

    Notes
    -----
    ``p(C) = max_N P(L(N, C/(kN)) <= target)`` is evaluated with :func:`allocate`'s kernel and
    ``prob_below(target)``, with the same predictive noise at every ``C`` (common random
    numbers), and the least ``C`` with ``p(C) >= prob`` is found by bisection on ``log C``
    between the bounds. ``p`` is a step function of ``C`` for finitely many
    draws; the returned compute meets the requirement, within ``rtol`` of the least that does.

    Examples
    --------
    >>> epoch = dict(E=1.817, A=482.0, B=2085.0, alpha=0.348, beta=0.366, sigma=0.0)
    >>> t = compute_for_target(epoch, 2.0, prob=0.5, predictive=False)
    >>> f"{t.compute:.2g} FLOP, N = {t.N:.2g}"
    '2.4e+23 FLOP, N = 4.6e+10'
    """
    target_loss = _positive("target_loss", target_loss)
    prob = _check_prob("prob", prob)
    k, max_n, unique_tokens, num_candidates, interval_prob = _check_common(
        flops_per_token, max_n, unique_tokens, num_candidates, interval_prob
    )
    c_lo, c_hi = (_positive("compute_bounds", v) for v in compute_bounds)
    if not c_lo < c_hi:
        raise ValueError(
            f"compute_bounds must be (low, high) with low < high; got {compute_bounds}"
        )
    rtol = _positive("rtol", rtol)
    risk = prob_below(target_loss)
    prep = _prepare(draws_or_fit, law, unique_tokens, repetition, predictive, group, rng_key, seed)
    constraints = {
        "max_n": max_n,
        "unique_tokens": unique_tokens,
        "inference_tokens": None,
        "repetition": _repetition_label(repetition),
    }

    def at(c: float) -> Allocation:
        return _allocate_prepared(
            prep.spec,
            prep.draws,
            prep.params,
            prep.log_noise,
            c,
            risk,
            k=k,
            c_inf=0.0,
            max_n=max_n,
            unique_tokens=unique_tokens,
            n_range=None,
            num_candidates=num_candidates,
            interval_prob=interval_prob,
            constraints=constraints,
            dollars_per_flop=None,
            inference_dollars_per_flop=None,
            warn_boundary=False,
        )

    top = at(c_hi)
    if top.risk_value < prob:
        raise ValueError(
            f"target loss {target_loss:g} is reached with probability at most "
            f"{top.risk_value:.3g} (at compute {c_hi:.3g} FLOP), below prob={prob:g}; raise "
            "target_loss, lower prob or raise the upper compute bound (compute_bounds=(low, "
            "high); CLI --compute-bounds LOW,HIGH)"
        )
    bottom = at(c_lo)
    if bottom.risk_value >= prob:
        raise ValueError(
            f"target loss {target_loss:g} is already reached with probability "
            f"{bottom.risk_value:.3g} at the lower compute bound {c_lo:.3g} FLOP; lower "
            "that bound (compute_bounds=(low, high); CLI --compute-bounds LOW,HIGH)"
        )
    log_lo, log_hi, hi_alloc = math.log(c_lo), math.log(c_hi), top
    while log_hi - log_lo > math.log1p(rtol):
        mid = 0.5 * (log_lo + log_hi)
        alloc = at(math.exp(mid))
        if alloc.risk_value >= prob:
            log_hi, hi_alloc = mid, alloc
        else:
            log_lo = mid
    return TargetCompute(
        compute=hi_alloc.compute,
        N=hi_alloc.N,
        D=hi_alloc.D,
        tokens_per_param=hi_alloc.tokens_per_param,
        target_loss=target_loss,
        prob=prob,
        achieved_prob=hi_alloc.risk_value,
        max_prob=top.risk_value,
        allocation=hi_alloc,
    )


# --------------------------------------------------------------------------- inference-aware


@dataclasses.dataclass(frozen=True, eq=False)
class InferenceAwareChoice:
    """Least-cost model for a target loss when the model will also serve inference.

    Attributes
    ----------
    N, D : float
        Parameters and training tokens.
    tokens_per_param : float
        ``D / N``.
    inference_tokens : float
        Expected tokens served.
    training_flops, inference_flops, total_flops : float
        ``k N D``, ``k_inf N D_inference`` and their sum.
    cost : float
        Total cost in the units of the prices (FLOPs when unpriced, else dollars).
    dollars : float or None
        Total cost in dollars when priced.
    target_loss : float
        The loss to reach.
    risk : str
        Measure required to be ``<= target_loss`` (``quantile:0.9`` reads "reached with 90%
        probability").
    risk_value : float
        Its value at the choice.
    loss_mean : float
        Expected predictive loss at the choice.
    loss_quantiles : dict of str to float
        Loss quantiles at the choice.
    n_opt_draws : numpy.ndarray
        Each draw's own least-cost ``N`` for its law loss to reach the target (NaN where that
        draw cannot reach it in the searched range).
    n_opt_interval : tuple of float
        Central ``interval_prob`` interval of those (over draws that reach it).
    compute_optimal_N : float
        Cheapest ``N`` when inference is ignored (the Chinchilla-style answer), for comparison.
    cost_curve : xarray.DataArray
        Total cost of reaching the target at each candidate ``N`` (NaN where unreachable), with
        coord ``D`` (least training tokens).
    law : str
    """

    N: float
    D: float
    tokens_per_param: float
    inference_tokens: float
    training_flops: float
    inference_flops: float
    total_flops: float
    cost: float
    dollars: float | None
    target_loss: float
    risk: str
    risk_value: float
    loss_mean: float
    loss_quantiles: dict[str, float]
    n_opt_draws: np.ndarray
    n_opt_interval: tuple[float, float]
    interval_prob: float
    compute_optimal_N: float
    cost_curve: xr.DataArray
    law: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary.

        Keys: ``N``, ``D``, ``tokens_per_param``, ``inference_tokens``, ``training_flops``,
        ``inference_flops``, ``total_flops``, ``cost``, ``dollars``, ``target_loss``, ``risk``,
        ``risk_value``, ``loss_mean``, ``loss_quantiles``, ``n_opt_interval``,
        ``interval_prob``, ``compute_optimal_N``, ``law``.
        """
        return {
            "N": float(self.N),
            "D": float(self.D),
            "tokens_per_param": float(self.tokens_per_param),
            "inference_tokens": float(self.inference_tokens),
            "training_flops": float(self.training_flops),
            "inference_flops": float(self.inference_flops),
            "total_flops": float(self.total_flops),
            "cost": float(self.cost),
            "dollars": None if self.dollars is None else float(self.dollars),
            "target_loss": float(self.target_loss),
            "risk": self.risk,
            "risk_value": float(self.risk_value),
            "loss_mean": float(self.loss_mean),
            "loss_quantiles": dict(self.loss_quantiles),
            "n_opt_interval": [float(v) for v in self.n_opt_interval],
            "interval_prob": float(self.interval_prob),
            "compute_optimal_N": float(self.compute_optimal_N),
            "law": self.law,
        }


_LOG_D_BOUNDS = (0.0, math.log(1e30))


_BISECTION_STEPS = 22  # log D over [0, 69]: resolution 2e-5


def _min_tokens(fn, risk, params, log_n, log_noise, target):
    """Per candidate N: least log D with ``risk(loss) <= target`` (bisection, all N at once).

    Each step evaluates the loss draws in JAX and reduces them with NumPy; NaN where even
    ``D = 1e30`` does not reach the target.
    """
    log_n32 = jnp.asarray(log_n, jnp.float32)

    def ok(log_d: np.ndarray) -> np.ndarray:
        x = {"N": log_n32, "D": jnp.asarray(log_d, jnp.float32)}
        pred = np.asarray(_pred_kernel(fn, params, x, log_noise))
        return risk.reduce_numpy(pred, axis=-1) <= target

    lo = np.full(log_n.shape, _LOG_D_BOUNDS[0])
    hi = np.full(log_n.shape, _LOG_D_BOUNDS[1])
    feasible = ok(hi)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        good = ok(mid)
        lo, hi = np.where(good, lo, mid), np.where(good, mid, hi)
    return np.where(feasible, hi, np.nan)


@functools.partial(jax.jit, static_argnames=("fn", "iterations"))
def _min_tokens_per_draw_kernel(fn, params, log_n, target, iterations=_BISECTION_STEPS):
    """Per draw and candidate N: least log D with the law's loss <= target, shape (S, K)."""

    def loss_at(log_d):  # log_d (S, K)
        return jnp.exp(jax.vmap(lambda p, ld: fn(p, {"N": log_n, "D": ld}))(params, log_d))

    shape = (next(iter(params.values())).shape[0], log_n.shape[0])
    lo = jnp.full(shape, _LOG_D_BOUNDS[0], dtype=log_n.dtype)
    hi = jnp.full(shape, _LOG_D_BOUNDS[1], dtype=log_n.dtype)
    feasible = loss_at(hi) <= target

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        ok = loss_at(mid) <= target
        return jnp.where(ok, lo, mid), jnp.where(ok, mid, hi)

    lo, hi = jax.lax.fori_loop(0, iterations, body, (lo, hi))
    return jnp.where(feasible, hi, jnp.nan)


def allocate_inference_aware(
    draws_or_fit: Any,
    inference_tokens: float,
    *,
    target_loss: float | None = None,
    budget: float | None = None,
    risk: RiskMeasure | str = "expected",
    law: str | LawSpec | None = None,
    flops_per_token: float = 6.0,
    inference_flops_per_token: float = 2.0,
    dollars_per_flop: float | None = None,
    inference_dollars_per_flop: float | None = None,
    max_n: float | None = None,
    n_range: tuple[float, float] = (1e5, 1e15),
    num_candidates: int = 512,
    predictive: bool = True,
    interval_prob: float = 0.9,
    max_draws_per_draw_optimum: int = 1000,
    group: Any = None,
    rng_key: jax.Array | None = None,
    seed: int = 0,
) -> InferenceAwareChoice | Allocation:
    """Size a model for training plus inference (Sardana et al. 2023).

    Two modes; give exactly one of ``target_loss`` and ``budget``:

    * ``target_loss``: the least total cost ``p_t k N D + p_i k_inf N D_inference`` such that
      ``risk(loss) <= target_loss``. ``risk`` must be lower-is-better (``expected``,
      ``quantile:Q``, ``cvar:L``); ``quantile(0.9)`` reads "reach the target with 90%
      probability". Returns an :class:`InferenceAwareChoice`.
    * ``budget``: the allocation optimising ``risk`` on the line ``cost = budget``, i.e.
      :func:`allocate` with the inference cost. Returns an :class:`Allocation`.

    Parameters
    ----------
    draws_or_fit : mapping or arviz.InferenceData
        As in :func:`allocate`; the law must be chinchilla or kaplan style (over N and D only).
    inference_tokens : float
        Expected tokens served over the model's life, ``D_inference``.
    target_loss : float, optional
        Loss to reach.
    budget : float, optional
        Total budget, in dollars if ``dollars_per_flop`` is given, else FLOPs.
    risk : RiskMeasure or str, default "expected"
        See the modes above.
    law, flops_per_token, max_n, num_candidates, predictive, interval_prob, group, rng_key, seed
        As in :func:`allocate`.
    inference_flops_per_token : float, default 2.0
        ``k_inf``: FLOPs per parameter per served token.
    dollars_per_flop, inference_dollars_per_flop : float, optional
        Prices ``p_t`` and ``p_i`` (``p_i`` defaults to ``p_t``; inference often runs at lower
        utilisation, hence a higher price per FLOP). Unpriced, costs are FLOPs.
    n_range : (float, float), default (1e5, 1e15)
        Model sizes searched in the target mode (a coarse pass over the range, then
        ``num_candidates`` around the cheapest).
    max_draws_per_draw_optimum : int, default 1000
        In the target mode, each draw's own optimum is computed on at most this many draws
        (evenly thinned) to bound the cost.

    Returns
    -------
    InferenceAwareChoice or Allocation

    Raises
    ------
    ValueError
        For both or neither of ``target_loss``/``budget``, a higher-is-better risk in the target
        mode, a target no candidate reaches, or bad arguments.

    Notes
    -----
    Target mode: for each candidate ``N`` the least training tokens ``D(N)`` with
    ``risk(L(N, D)) <= target`` are found by bisection on ``log D`` (loss falls with ``D`` for
    every draw and the measures are monotone), vectorised over candidates; the cheapest
    candidate wins. Larger inference demand moves the choice to smaller, longer-trained models.

    References
    ----------
    Sardana et al. 2023, "Beyond Chinchilla-Optimal: Accounting for Inference in Language Model
    Scaling Laws", arXiv:2401.00448.

    Examples
    --------
    >>> epoch = dict(E=1.817, A=482.0, B=2085.0, alpha=0.348, beta=0.366, sigma=0.0)
    >>> c = allocate_inference_aware(epoch, 1e13, target_loss=2.0, predictive=False)
    >>> c.N < c.compute_optimal_N
    True
    """
    inference_tokens = _positive("inference_tokens", inference_tokens)
    if (target_loss is None) == (budget is None):
        raise ValueError("give exactly one of target_loss= (least cost) and budget= (best loss)")
    k, max_n, _, num_candidates, interval_prob = _check_common(
        flops_per_token, max_n, None, num_candidates, interval_prob
    )
    k_inf = _positive("inference_flops_per_token", inference_flops_per_token)
    p_t = 1.0 if dollars_per_flop is None else _positive("dollars_per_flop", dollars_per_flop)
    p_i = (
        p_t
        if inference_dollars_per_flop is None
        else _positive("inference_dollars_per_flop", inference_dollars_per_flop)
    )
    if inference_dollars_per_flop is not None and dollars_per_flop is None:
        raise ValueError("inference_dollars_per_flop needs dollars_per_flop as well")
    measure = _as_risk(risk)
    if not isinstance(measure, RiskMeasure):
        raise TypeError("allocate_inference_aware needs a RiskMeasure (e.g. 'quantile:0.9')")
    risk = measure
    prep = _prepare(draws_or_fit, law, None, None, predictive, group, rng_key, seed)
    if "U" in prep.spec.covariates:
        raise ValueError(
            "allocate_inference_aware supports laws over N and D only "
            f"(chinchilla, kaplan); got {prep.spec.name!r}"
        )
    constraints = {
        "max_n": max_n,
        "unique_tokens": None,
        "inference_tokens": inference_tokens,
        "repetition": None,
    }

    if budget is not None:
        budget = _positive("budget", budget)
        # p_t k N D + p_i k_inf N D_inf = budget  <=>  k N D + c N = budget / p_t
        result = _allocate_prepared(
            prep.spec,
            prep.draws,
            prep.params,
            prep.log_noise,
            budget / p_t,
            risk,
            k=k,
            c_inf=(p_i / p_t) * k_inf * inference_tokens,
            max_n=max_n,
            unique_tokens=None,
            n_range=None,
            num_candidates=num_candidates,
            interval_prob=interval_prob,
            constraints=constraints,
            dollars_per_flop=None,
            inference_dollars_per_flop=None,
        )
        inference = k_inf * result.N * inference_tokens
        return dataclasses.replace(
            result,
            compute=result.training_flops + inference,
            inference_flops=inference,
            dollars=None
            if dollars_per_flop is None
            else p_t * result.training_flops + p_i * inference,
        )

    target_loss = _positive("target_loss", target_loss)
    if risk.maximise:
        raise ValueError(
            f"target mode needs a lower-is-better risk held <= target_loss; got {risk.name!r}. "
            f"For 'reach the target with probability p' use quantile(p), e.g. 'quantile:0.9'"
        )
    lo, hi = (math.log(_positive("n_range bound", v)) for v in n_range)
    if max_n is not None:
        hi = min(hi, math.log(max_n))
    if not lo < hi:
        raise ValueError(f"n_range {n_range} is empty after the max_n cap {max_n}")
    noise = jnp.asarray(prep.log_noise)
    target = jnp.float32(target_loss)

    def cost_of(log_n: np.ndarray, log_d: np.ndarray, c_inf: float) -> np.ndarray:
        n, d = np.exp(log_n), np.exp(log_d)
        return p_t * k * n * d + c_inf * n

    c_inf = p_i * k_inf * inference_tokens
    # the least tokens for each N do not depend on the inference cost: one coarse pass over
    # n_range, then one fine pass spanning the cheapest N with and without inference
    coarse = np.linspace(lo, hi, 96)
    coarse_d = _min_tokens(prep.spec.fn, risk, prep.params, coarse, noise, target_loss)
    if not np.any(np.isfinite(coarse_d)):
        raise ValueError(
            f"no model size in n_range {n_range} reaches {risk.name} <= {target_loss:g} "
            "(even with 1e30 tokens); raise target_loss"
        )
    best = [int(np.nanargmin(cost_of(coarse, coarse_d, c))) for c in (c_inf, 0.0)]
    fine = np.linspace(
        coarse[max(min(best) - 2, 0)], coarse[min(max(best) + 2, coarse.size - 1)], num_candidates
    )
    log_n = fine
    log_d = _min_tokens(prep.spec.fn, risk, prep.params, fine, noise, target_loss)
    cost = cost_of(log_n, log_d, c_inf)
    idx = int(np.nanargmin(cost))
    n_choice, d_choice = float(np.exp(log_n[idx])), float(np.exp(log_d[idx]))
    compute_optimal_n = float(np.exp(log_n[int(np.nanargmin(cost_of(log_n, log_d, 0.0)))]))
    if idx in (0, log_n.size - 1) and log_n[idx] in (lo, hi):
        warnings.warn(
            f"the cheapest N={n_choice:.3g} is at an end of n_range {n_range}; widen n_range",
            stacklevel=2,
        )

    # each draw's own least-cost N (law loss, no residual noise) on a grid around the choice
    size = next(iter(prep.draws.values())).size
    take = np.unique(np.linspace(0, size - 1, min(size, max_draws_per_draw_optimum)).astype(int))
    sub = {key: v[take] for key, v in prep.params.items()}
    per_grid = np.linspace(
        max(lo, log_n[idx] - math.log(100.0)), min(hi, log_n[idx] + math.log(100.0)), num_candidates
    )
    per_log_d = np.asarray(
        _min_tokens_per_draw_kernel(prep.spec.fn, sub, jnp.asarray(per_grid, jnp.float32), target),
        dtype=float,
    )
    per_cost = p_t * k * np.exp(per_grid[None, :] + per_log_d) + c_inf * np.exp(per_grid)[None, :]
    reach = np.any(np.isfinite(per_cost), axis=1)
    n_opt = np.full(take.size, np.nan)
    if reach.any():
        filled = np.where(np.isfinite(per_cost[reach]), np.log(per_cost[reach]), np.inf)
        n_opt[reach] = np.exp(_refine_argmin(per_grid, filled))
    n_interval = _interval(n_opt[reach], interval_prob) if reach.any() else (math.nan, math.nan)

    xs = {
        "N": jnp.full((1,), log_n[idx], jnp.float32),
        "D": jnp.full((1,), log_d[idx], jnp.float32),
    }
    pred = np.asarray(_pred_kernel(prep.spec.fn, prep.params, xs, noise), dtype=float)[0]
    training = k * n_choice * d_choice
    inference = k_inf * n_choice * inference_tokens
    total_cost = float(cost[idx])
    curve = xr.DataArray(
        cost,
        dims=("N",),
        coords={"N": np.exp(log_n), "D": ("N", np.exp(log_d))},
        name="total_cost",
        attrs={
            "target_loss": target_loss,
            "risk": risk.name,
            "law": prep.spec.name,
            "units": "dollars" if dollars_per_flop is not None else "FLOPs",
        },
    )
    return InferenceAwareChoice(
        N=n_choice,
        D=d_choice,
        tokens_per_param=d_choice / n_choice,
        inference_tokens=inference_tokens,
        training_flops=training,
        inference_flops=inference,
        total_flops=training + inference,
        cost=total_cost,
        dollars=total_cost if dollars_per_flop is not None else None,
        target_loss=target_loss,
        risk=risk.name,
        risk_value=float(risk(pred)),
        loss_mean=float(pred.mean()),
        loss_quantiles=_quantile_dict(pred),
        n_opt_draws=n_opt,
        n_opt_interval=n_interval,
        interval_prob=interval_prob,
        compute_optimal_N=compute_optimal_n,
        cost_curve=curve,
        law=prep.spec.name,
    )


# --------------------------------------------------------------------------- batch size


@dataclasses.dataclass(frozen=True, eq=False)
class BatchSizeChoice:
    """A batch size chosen from ``batch_steps`` draws ``S = S_min (1 + B_noise / B)``.

    Attributes
    ----------
    B : float
        Chosen batch size, in the units of the fit's ``B`` column (sequences or tokens).
    B_interval : tuple of float
        Central ``interval_prob`` interval of each draw's own optimal batch size.
    B_opt_draws : numpy.ndarray
        Each draw's own optimum, shape (S,).
    interval_prob : float
    steps_quantiles : dict of str to float
        Steps to the target at ``B`` (law, no residual noise), keyed by level.
    examples_quantiles : dict of str to float
        Data consumed, ``B * steps``, at ``B``.
    overhead_mean : float
        Expected compute overhead ``E/E_min - 1 = B / B_noise``.
    prob_within : float or None
        ``P(B / B_noise <= max_overhead)`` (None for the cost objective).
    max_overhead : float or None
    method : str
        ``"overhead"`` or ``"cost"``.
    group : str or None
        Group label (model size) when from a grouped fit.
    """

    B: float
    B_interval: tuple[float, float]
    B_opt_draws: np.ndarray
    interval_prob: float
    steps_quantiles: dict[str, float]
    examples_quantiles: dict[str, float]
    overhead_mean: float
    prob_within: float | None
    max_overhead: float | None
    method: str
    group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary.

        Keys: ``B``, ``B_interval``, ``interval_prob``, ``steps_quantiles``,
        ``examples_quantiles``, ``overhead_mean``, ``prob_within``, ``max_overhead``,
        ``method``, ``group``.
        """
        return {
            "B": float(self.B),
            "B_interval": [float(v) for v in self.B_interval],
            "interval_prob": float(self.interval_prob),
            "steps_quantiles": dict(self.steps_quantiles),
            "examples_quantiles": dict(self.examples_quantiles),
            "overhead_mean": float(self.overhead_mean),
            "prob_within": None if self.prob_within is None else float(self.prob_within),
            "max_overhead": None if self.max_overhead is None else float(self.max_overhead),
            "method": self.method,
            "group": None if self.group is None else str(self.group),
        }


def _batch_draws(obj: Any, group: Any) -> dict[str, np.ndarray]:
    draws, fit_law = _coerce_draws(obj, group)
    if fit_law is not None and fit_law != "batch_steps":
        raise ValueError(
            f"batch-size decisions need a batch_steps fit; this fit's law is {fit_law!r}"
        )
    _require(draws, ("S_min", "B_noise"), "batch-size decisions (a batch_steps fit)")
    for name in ("S_min", "B_noise"):
        if np.any(draws[name] <= 0):
            raise ValueError(f"draws[{name!r}] must be > 0")
    return draws


def _batch_result(draws, b, b_opt, interval_prob, max_overhead, method, group) -> BatchSizeChoice:
    s_min, b_noise = draws["S_min"], draws["B_noise"]
    steps = s_min * (1.0 + b_noise / b)
    overhead = b / b_noise
    return BatchSizeChoice(
        B=float(b),
        B_interval=_interval(b_opt, interval_prob),
        B_opt_draws=b_opt,
        interval_prob=interval_prob,
        steps_quantiles=_quantile_dict(steps),
        examples_quantiles=_quantile_dict(b * steps),
        overhead_mean=float(overhead.mean()),
        prob_within=None if max_overhead is None else float(np.mean(overhead <= max_overhead)),
        max_overhead=max_overhead,
        method=method,
        group=None if group is None else str(group),
    )


def choose_batch_size(
    draws_or_fit: Any,
    max_overhead: float = 0.2,
    *,
    prob: float | None = None,
    interval_prob: float = 0.9,
    group: Any = None,
) -> BatchSizeChoice:
    """Fewest steps subject to a cap on compute overhead, under uncertainty in ``B_noise``.

    Parameters
    ----------
    draws_or_fit : mapping or arviz.InferenceData
        ``batch_steps`` draws ``{"S_min": (S,), "B_noise": (S,)}`` for one group, or a fit
        (``group=`` picks the model size).
    max_overhead : float, default 0.2
        Allowed extra data/compute over the minimum, ``E / E_min - 1``.
    prob : float, optional
        If given, the cap must hold with this probability; by default it must hold in
        expectation.
    interval_prob : float, default 0.9
        Probability of ``B_interval``.
    group : optional
        Group label for a grouped fit.

    Returns
    -------
    BatchSizeChoice

    Raises
    ------
    ValueError
        For draws without ``S_min``/``B_noise``, a fit of another law, or bad arguments.

    Notes
    -----
    With ``S = S_min (1 + B_noise/B)`` the data used is ``E = B S = E_min (1 + B/B_noise)``,
    ``E_min = S_min B_noise``, so the overhead is ``B / B_noise``. Steps fall with ``B``, so the
    best batch is the largest one meeting the cap: per draw ``B* = max_overhead * B_noise``
    (the interval). Across draws, "in expectation" gives ``B = max_overhead / E[1/B_noise]``;
    "with probability p" gives ``B = max_overhead * quantile_{1-p}(B_noise)``.

    References
    ----------
    McCandlish et al. 2018, arXiv:1812.06162; Zhang et al. 2025, arXiv:2410.21676.

    Examples
    --------
    >>> c = choose_batch_size({"S_min": [1000.0], "B_noise": [2000.0]}, max_overhead=0.2)
    >>> c.B, round(c.steps_quantiles["0.5"])
    (400.0, 6000)
    """
    max_overhead = _positive("max_overhead", max_overhead)
    interval_prob = _check_prob("interval_prob", interval_prob)
    draws = _batch_draws(draws_or_fit, group)
    b_noise = draws["B_noise"]
    b_opt = max_overhead * b_noise
    if prob is None:
        b = max_overhead / float(np.mean(1.0 / b_noise))
    else:
        prob = _check_prob("prob", prob)
        b = max_overhead * float(np.quantile(b_noise, 1.0 - prob))
    return _batch_result(draws, b, b_opt, interval_prob, max_overhead, "overhead", group)


def batch_size_for_cost(
    draws_or_fit: Any,
    step_cost: float,
    example_cost: float,
    *,
    interval_prob: float = 0.9,
    max_overhead: float | None = None,
    group: Any = None,
) -> BatchSizeChoice:
    """Batch size minimising the expected combined cost of time (steps) and compute (data).

    Parameters
    ----------
    draws_or_fit : mapping or arviz.InferenceData
        ``batch_steps`` draws or a fit, as in :func:`choose_batch_size`.
    step_cost : float
        Cost of one optimiser step (time: seconds or dollars of wall-clock), > 0.
    example_cost : float
        Cost of one unit of batch (one sequence or token, as in the fit's ``B``), > 0.
    interval_prob : float, default 0.9
    max_overhead : float, optional
        Only reported: ``prob_within`` is ``P(B/B_noise <= max_overhead)``.
    group : optional

    Returns
    -------
    BatchSizeChoice

    Notes
    -----
    Cost ``= w_t S + w_c B S = S_min [w_t (1 + B_noise/B) + w_c (B + B_noise)]``. Per draw the
    optimum is ``B* = sqrt(w_t B_noise / w_c)``; the expected cost over draws is minimised by
    ``B = sqrt(w_t E[S_min B_noise] / (w_c E[S_min]))``.

    Examples
    --------
    >>> c = batch_size_for_cost({"S_min": [1000.0], "B_noise": [400.0]}, 1.0, 0.01)
    >>> c.B
    200.0
    """
    w_t = _positive("step_cost", step_cost)
    w_c = _positive("example_cost", example_cost)
    interval_prob = _check_prob("interval_prob", interval_prob)
    max_overhead = None if max_overhead is None else _positive("max_overhead", max_overhead)
    draws = _batch_draws(draws_or_fit, group)
    s_min, b_noise = draws["S_min"], draws["B_noise"]
    b_opt = np.sqrt(w_t * b_noise / w_c)
    b = math.sqrt(w_t * float(np.mean(s_min * b_noise)) / (w_c * float(np.mean(s_min))))
    return _batch_result(draws, b, b_opt, interval_prob, max_overhead, "cost", group)


def _fit_groups(fit: Any) -> list[Any]:
    post = fit.posterior
    for name in ("S_min", "B_noise"):
        if name in post:
            extra = [d for d in post[name].dims if d not in ("chain", "draw")]
            if extra:
                return list(post[extra[0]].values)
    return []


def choose_batch_sizes(
    fit_or_groups: Any,
    max_overhead: float = 0.2,
    *,
    prob: float | None = None,
    step_cost: float | None = None,
    example_cost: float | None = None,
    interval_prob: float = 0.9,
) -> dict[str, BatchSizeChoice]:
    """Batch size per group (model size) of a grouped ``batch_steps`` fit.

    Parameters
    ----------
    fit_or_groups : arviz.InferenceData or mapping
        A ``batch_steps`` fit (grouped or not), ``{group: draws}``, or one draws mapping.
    max_overhead, prob, interval_prob
        As in :func:`choose_batch_size`.
    step_cost, example_cost : float, optional
        Give both to use :func:`batch_size_for_cost` instead.

    Returns
    -------
    dict of str to BatchSizeChoice
        Keyed by group label (``"all"`` for an ungrouped fit or a single draws mapping).

    Examples
    --------
    >>> out = choose_batch_sizes({"85M": {"S_min": [1e3], "B_noise": [500.0]},
    ...                           "1.2B": {"S_min": [1e4], "B_noise": [2000.0]}})
    >>> {g: c.B for g, c in out.items()}
    {'85M': 100.0, '1.2B': 400.0}
    """
    if (step_cost is None) != (example_cost is None):
        raise ValueError("give both step_cost and example_cost for the cost objective, or neither")

    def one(obj: Any, group: Any, label: Any) -> BatchSizeChoice:
        if step_cost is not None and example_cost is not None:
            res = batch_size_for_cost(
                obj,
                step_cost,
                example_cost,
                interval_prob=interval_prob,
                max_overhead=max_overhead,
                group=group,
            )
        else:
            res = choose_batch_size(
                obj, max_overhead, prob=prob, interval_prob=interval_prob, group=group
            )
        return dataclasses.replace(res, group=str(label))

    if hasattr(fit_or_groups, "posterior"):
        groups = _fit_groups(fit_or_groups)
        if not groups:
            return {"all": one(fit_or_groups, None, "all")}
        return {str(g): one(fit_or_groups, g, g) for g in groups}
    if isinstance(fit_or_groups, Mapping):
        values = list(fit_or_groups.values())
        if values and all(isinstance(v, Mapping) for v in values):
            return {str(g): one(v, None, g) for g, v in fit_or_groups.items()}
        return {"all": one(fit_or_groups, None, "all")}
    raise TypeError(
        f"expected a batch_steps fit or a mapping of draws; got {type(fit_or_groups).__name__}"
    )
