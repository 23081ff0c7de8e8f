"""Shared plumbing of the decisions: argument checks, draws, the law, the predictive noise.

Everything a decision needs before its own search: validated numbers, posterior draws coerced
to flat float64 arrays (from a mapping or a fit), the law those draws belong to (with the
repetition model added for ``unique_tokens``), the per-draw residual noise, and the summaries
(quantiles, intervals) the results report.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayes_scaling import draws as _draws
from bayes_scaling.laws import LAWS, LawSpec, get_law

#: Repetition decay constants of Muennighoff et al. 2023 (C4), usable with chinchilla draws.
MUENNIGHOFF_REPETITION: dict[str, float] = {"R_D": 15.39, "R_N": 5.31}

#: Levels of the loss quantiles reported at a chosen allocation (keys of ``loss_quantiles``).
LOSS_QUANTILE_LEVELS: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)

ArrayLike = Any

_FLOAT32_MAX = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------- argument checks


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


def _optional_positive(name: str, value: Any) -> float | None:
    return None if value is None else _positive(name, value)


def _check_prob(name: str, value: Any, closed_low: bool = False) -> float:
    value = _real(name, value)
    ok = (0.0 <= value < 1.0) if closed_low else (0.0 < value < 1.0)
    if not ok:
        raise ValueError(f"{name} must be in {'[0' if closed_low else '(0'}, 1); got {value:g}")
    return value


def _check_common(flops_per_token, max_n, unique_tokens, num_candidates, interval_prob):
    k = _positive("flops_per_token", flops_per_token)
    max_n = _optional_positive("max_n", max_n)
    unique_tokens = _optional_positive("unique_tokens", unique_tokens)
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, numbers.Integral):
        raise TypeError(f"num_candidates must be an integer; got {num_candidates!r}")
    if num_candidates < 8:
        raise ValueError(f"num_candidates must be >= 8; got {num_candidates}")
    interval_prob = _check_prob("interval_prob", interval_prob)
    return k, max_n, unique_tokens, int(num_candidates), interval_prob


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
    return _flat_arrays(obj), law_name


def _flat_arrays(obj: Mapping[Any, Any]) -> dict[str, np.ndarray]:
    """``{str: float64 (S,)}`` from a draws mapping: one length, finite (``nu = inf`` allowed)."""
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
    return out


def _require(draws: Mapping[str, np.ndarray], names: tuple[str, ...], what: str) -> None:
    missing = [n for n in names if n not in draws]
    if missing:
        raise ValueError(
            f"{what} needs draws of {list(names)}; missing {missing}; got {sorted(draws)}"
        )


# --------------------------------------------------------------------------- the law


def _over_n_and_d(spec: LawSpec) -> bool:
    """A law allocation can use: over ``N`` and ``D``, plus at most unique tokens ``U``."""
    covs = set(spec.covariates)
    return {"N", "D"} <= covs <= {"N", "D", "U"}


def _infer_law_name(draws: Mapping[str, np.ndarray]) -> str:
    """The registered law over N and D with the most parameters, all of which the draws carry.

    (``data_constrained`` before ``chinchilla``, whose parameters it extends, before ``kaplan``.)
    """
    names = set(draws)
    fitting = [s for s in LAWS.values() if _over_n_and_d(s) and set(s.param_names) <= names]
    if not fitting:
        raise ValueError(
            "cannot tell the law from draws with parameters "
            f"{sorted(names)}; pass law= (chinchilla, kaplan or data_constrained)"
        )
    return max(fitting, key=lambda spec: len(spec.params)).name


def _check_allocation_law(spec: LawSpec) -> None:
    if not _over_n_and_d(spec):
        raise ValueError(
            f"allocation needs a law over N and D (chinchilla, kaplan, data_constrained); "
            f"law {spec.name!r} has covariates {list(spec.covariates)}"
        )


def _repetition_law(spec: LawSpec) -> LawSpec | None:
    """The registered law that adds repeated data to ``spec``, or None.

    Its covariates are ``spec``'s plus unique tokens ``U`` and its parameters extend ``spec``'s
    (``data_constrained`` is ``chinchilla`` with ``R_D`` and ``R_N``): with ``U >= D`` it is
    ``spec`` itself, so ``spec``'s draws plus the extra parameters describe repeated tokens.
    """
    covs, params = set(spec.covariates), set(spec.param_names)
    for other in LAWS.values():
        if set(other.covariates) == covs | {"U"} and params < set(other.param_names):
            return other
    return None


def _allocation_spec(
    law: str | LawSpec | None,
    fit_law: str | None,
    draws: dict[str, np.ndarray],
    unique_tokens: float | None,
    repetition: str | Mapping[str, float] | None,
) -> tuple[LawSpec, dict[str, np.ndarray]]:
    spec = get_law(law if law is not None else (fit_law or _infer_law_name(draws)))
    _check_allocation_law(spec)
    if repetition is not None and unique_tokens is None:
        raise ValueError("repetition= only applies with unique_tokens=; pass unique_tokens")
    if unique_tokens is not None and "U" not in spec.covariates:
        repeated = _repetition_law(spec)
        if repeated is None:
            raise ValueError(
                f"unique_tokens needs the data_constrained law; law {spec.name!r} has no "
                "repetition model"
            )
        draws = _with_repetition(spec, repeated, draws, repetition)
        spec = repeated
    elif repetition is not None:
        raise ValueError(
            f"repetition= adds R_D/R_N to chinchilla draws; law {spec.name!r} already has them"
        )
    _require(draws, spec.param_names, f"law {spec.name!r}")
    return spec, draws


def _with_repetition(
    spec: LawSpec,
    repeated: LawSpec,
    draws: dict[str, np.ndarray],
    repetition: str | Mapping[str, float] | None,
) -> dict[str, np.ndarray]:
    """``spec``'s draws for the repetition law ``repeated``: its own draws, or fixed constants."""
    extra = [name for name in repeated.param_names if name not in spec.param_names]
    if set(extra) <= set(draws):
        if repetition is not None:
            raise ValueError(f"these draws already carry {' and '.join(extra)}; drop repetition=")
        return draws
    if repetition is None:
        raise ValueError(
            f"unique_tokens needs a {repeated.name} fit (draws with {' and '.join(extra)}); got "
            f"{spec.name} draws with {sorted(draws)}. Fit law='{repeated.name}', or pass "
            "repetition='muennighoff' to use Muennighoff et al. 2023's R_D=15.39, R_N=5.31"
        )
    values = _repetition_values(repetition)
    size = next(iter(draws.values())).size
    return dict(draws, **{k: np.full(size, v) for k, v in values.items()})


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
            "repetition must be 'muennighoff' or a mapping with keys R_D and R_N; "
            f"got {repetition!r}"
        )
    return {k: _positive(f"repetition[{k!r}]", v) for k, v in repetition.items()}


def _repetition_label(repetition: Any) -> Any:
    if repetition is None:
        return None
    return repetition if isinstance(repetition, str) else dict(repetition)


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
                f"the allocation ({_FLOAT32_MAX:.3g}; largest "
                f"{float(np.abs(draws[name]).max()):.3g}); {hint}"
            )


# --------------------------------------------------------------------------- noise


def _rng_key(rng_key: jax.Array | None, seed: int) -> jax.Array:
    """``rng_key``, else ``PRNGKey(seed)``.

    The decisions seed their NumPy generator from the key's words (``draws.numpy_rng(key)``),
    also for a plain ``seed``: the same streams as before the library's one convention.
    """
    if rng_key is not None:
        return rng_key
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer; got {seed!r}")
    return jax.random.PRNGKey(int(seed))


def _log_noise(
    draws: Mapping[str, np.ndarray], predictive: bool, key: jax.Array, size: int
) -> np.ndarray:
    """Per-draw residual ``sigma * eps`` on the log scale (shared by all candidates).

    ``eps`` is standard normal, also for a Student-t fit (``draws.noise`` with ``nu=None``):
    the Student-t's heavy tails model outlying records, and under them a new run's loss
    ``L exp(sigma t)`` has no finite mean for any ``nu`` (``E[exp(sigma t)]`` diverges), so
    ``expected`` and ``cvar`` would be infinite at every candidate and a finite sample would
    pick the model size of whichever draw got the largest noise (with ``nu`` near 1, one draw in
    a thousand can reach a loss of ``1e15``). Sampled with NumPy from a generator seeded by
    ``key``.
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
    noise = _draws.noise(_draws.numpy_rng(key), draws["sigma"], None, (size, 1))
    return noise[:, 0].astype(np.float32)


# --------------------------------------------------------------------------- prepared draws


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """Draws ready for the kernels: the law, its draws, float32 parameters, residual noise.

    ``discrepancy`` and ``slope`` (``(S,)``, one ``b_s ~ N(0, tau_s^2)`` per draw) describe the
    extrapolation discrepancy ``b_s d(x)``; both None when it is off.
    """

    spec: LawSpec
    draws: dict[str, np.ndarray]
    params: dict[str, jax.Array]
    log_noise: np.ndarray
    discrepancy: Any = None
    slope: np.ndarray | None = None

    def distance(self, log_n: Any, log_d: Any, log_u: Any = None) -> np.ndarray:
        """Distance of candidates (log N, log D, optionally log U) outside the data (0 if off)."""
        log_n, log_d = np.broadcast_arrays(np.asarray(log_n, float), np.asarray(log_d, float))
        if self.discrepancy is None:
            return np.zeros(log_n.shape)
        cov = {"N": np.exp(log_n), "D": np.exp(log_d)}
        cov["U"] = cov["D"] if log_u is None else np.broadcast_to(np.exp(log_u), log_n.shape)
        return np.asarray(self.discrepancy.distance(cov), dtype=float)

    def noise_at(self, log_n: Any, log_d: Any, log_u: Any = None) -> np.ndarray:
        """Log-scale residual at candidates: ``(S,)`` noise when the discrepancy is off, else
        ``(K, S)`` noise plus ``b_s d(x_k)`` (common random numbers across candidates)."""
        if self.slope is None:
            return self.log_noise
        dist = self.distance(log_n, log_d, log_u).reshape(-1)
        shifted = self.log_noise[None, :] + dist[:, None] * self.slope[None, :]
        return shifted.astype(np.float32)


def _jnp_params(spec: LawSpec, draws: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    return {k: jnp.asarray(draws[k], dtype=jnp.float32) for k in spec.param_names}


def _resolve_discrepancy(draws_or_fit: Any, discrepancy: Any, law: LawSpec) -> Any:
    """The discrepancy of a decision: a fit's stored one for ``"auto"``, none for raw draws."""
    from bayes_scaling import predict as _predict

    if isinstance(discrepancy, str) and discrepancy == "calibrate":
        raise ValueError(
            "decisions never refit: calibrate the discrepancy first (bayes_scaling.predict."
            "calibrate_discrepancy, or `bayes-scaling fit`, which stores it) and pass it, or "
            "discrepancy='auto' for the fit's stored one"
        )
    if hasattr(draws_or_fit, "posterior"):
        disc = _predict.get_discrepancy(draws_or_fit, discrepancy, stacklevel=5)
    elif isinstance(discrepancy, (bool, str)) or discrepancy is None:
        disc = _predict.get_discrepancy(
            None, False if discrepancy in (True, "auto") else discrepancy
        )
    elif isinstance(discrepancy, numbers.Real):
        raise ValueError(
            f"discrepancy={discrepancy!r} (a tau) needs a fit, whose data define the distance; "
            "with raw draws pass a bayes_scaling.predict.Discrepancy"
        )
    else:
        disc = _predict.get_discrepancy(None, discrepancy)
    if disc is not None and not set(disc.coordinates) <= {"N", "D", "U", "N*D"}:
        raise ValueError(
            f"the discrepancy is measured in {list(disc.coordinates)}; law {law.name!r} decides "
            "over N and D"
        )
    return disc


def _prepare(
    draws_or_fit,
    law,
    unique_tokens,
    repetition,
    predictive,
    group,
    rng_key,
    seed,
    discrepancy: Any = None,
):
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
    disc = _resolve_discrepancy(draws_or_fit, discrepancy, spec)
    slope = None
    if disc is not None:  # a stream of its own: the noise is the same with and without it
        rng = _draws.numpy_rng(jax.random.fold_in(key, 1))
        slope = disc.sample_slope(rng, size)
    return _Prepared(spec, draws, _jnp_params(spec, draws), log_noise, disc, slope)


# --------------------------------------------------------------------------- summaries


def _quantile_dict(values: np.ndarray) -> dict[str, float]:
    qs = np.quantile(values, LOSS_QUANTILE_LEVELS)
    return {f"{lvl:g}": float(v) for lvl, v in zip(LOSS_QUANTILE_LEVELS, qs, strict=True)}


def _interval_parts(
    law_draws: np.ndarray, log_noise: np.ndarray, delta: np.ndarray, prob: float = 0.9
) -> dict[str, float]:
    """Width of the central ``prob`` loss interval from each source alone, and from all.

    ``parameter``: the law's loss over draws; ``noise``: the median law loss times the residual
    noise ``exp(sigma eps)``; ``structural``: the median law loss times the discrepancy
    ``exp(b d)``; ``total``: the law loss times both (the loss draws of the decision).
    """
    law_draws = np.asarray(law_draws, dtype=float)
    mid = float(np.median(law_draws))
    parts = {
        "parameter": law_draws,
        "noise": mid * np.exp(np.asarray(log_noise, dtype=float)),
        "structural": mid * np.exp(np.asarray(delta, dtype=float)),
        "total": law_draws * np.exp(np.asarray(log_noise, dtype=float) + delta),
    }
    out = {}
    for name, values in parts.items():
        lo, hi = _interval(values, prob)
        out[name] = hi - lo
    return out


def _interval(values: np.ndarray, prob: float) -> tuple[float, float]:
    lo, hi = np.quantile(values, [(1 - prob) / 2, (1 + prob) / 2])
    return float(lo), float(hi)
