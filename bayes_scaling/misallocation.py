"""Misallocation cost: the compute a chosen allocation wastes against each draw's own optimum.

For a run of ``N`` parameters and ``D`` tokens, bought with a budget of ``C`` FLOPs, every
posterior draw ``s`` predicts a loss ``L_s(N, D)`` (the law, without run-to-run noise). The same
draw's compute-optimal frontier ``L*_s(C') = min_N L_s(N, C'/(k N))`` falls with ``C'``; the least
compute at which it reaches that loss is

``C'_s = min{C' : L*_s(C') <= L_s(N, D)}``

and the run wastes ``C - C'_s`` FLOPs under draw ``s``, the fraction ``1 - C'_s / C`` of its
budget (in ``[0, 1)``). Over the draws this is a posterior distribution ("deadweight compute"),
summarised by its median and a central interval, and priced with an optional ``dollars_per_flop``.

The module works on posterior draws ``{name: (S,)}`` or a fit, for any registered law over ``N``
and ``D`` (a ``U`` covariate, unique tokens, is set to ``D``: no repetition). It never runs
inference; the frontier is found per draw by a grid over tokens per parameter refined by golden
section search, and ``C'_s`` by bisection on ``log C'``, all in one jitted, vmapped JAX call.

Wiring into ``allocate --json``
-------------------------------
:func:`wasted_compute` returns the JSON object itself::

    from bayes_scaling import misallocation
    out = result.to_dict()   # result = decide.allocate(idata, args.compute, ...)
    out["wasted_compute"] = misallocation.wasted_compute(
        idata, result, dollars_per_flop=args.dollars_per_flop, group=args.group,
        flops_per_token=args.flops_per_token,
    )

References
----------
Hoffmann et al. 2022, arXiv:2203.15556 (the compute-optimal frontier); Besiroglu et al. 2024,
arXiv:2404.10102 (the Epoch replication); the misallocation cost of Llama 3's IsoFLOP choice,
arXiv:2603.22339.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bayes_scaling.laws import LAWS, LawSpec, get_law

__all__ = [
    "MisallocationCost",
    "frontier",
    "misallocation_cost",
    "plot_wasted_compute",
    "wasted_compute",
]

#: Tokens per parameter searched for each draw's optimum (natural log bounds).
LOG_RATIO_RANGE: tuple[float, float] = (math.log(1e-4), math.log(1e6))
_RATIO_GRID = 96
_GOLDEN_STEPS = 32
_BISECTION_STEPS = 48
#: The least compute searched, as a fraction of the budget (a waste of up to 1 - 1e-12).
_SMALLEST_FRACTION = 1e-12
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


# --------------------------------------------------------------------------- draws and laws


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value:g}")
    return value


def _count(name: str, value: Any, least: int) -> int:
    """An integer argument, at least ``least``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < least:
        raise ValueError(f"{name} must be >= {least}; got {value}")
    return int(value)


def _interval_prob(value: Any) -> float:
    value = _positive("interval_prob", value)
    if not value < 1.0:
        raise ValueError(f"interval_prob must be in (0, 1); got {value:g}")
    return value


def _check_law(spec: LawSpec) -> LawSpec:
    covariates = set(spec.covariates)
    if not {"N", "D"} <= covariates or not covariates <= {"N", "D", "U"}:
        raise ValueError(
            f"misallocation and next runs need a law over N and D; law {spec.name!r} has "
            f"covariates {list(spec.covariates)} (try chinchilla, kaplan or data_constrained)"
        )
    return spec


def _guess_law(draws: Mapping[str, Any]) -> LawSpec:
    """The law over N and D with the most parameters, all of which the draws carry."""
    fitting = [
        spec
        for spec in LAWS.values()
        if {"N", "D"} <= set(spec.covariates) <= {"N", "D", "U"}
        and set(spec.param_names) <= set(draws)
    ]
    if not fitting:
        raise ValueError(
            f"cannot tell the law from draws with parameters {sorted(draws)}; pass law= "
            "(a law over N and D such as chinchilla)"
        )
    return max(fitting, key=lambda spec: len(spec.params))


def load_draws(
    draws_or_fit: Any, law: str | LawSpec | None = None, group: Any = None
) -> tuple[LawSpec, dict[str, np.ndarray]]:
    """The law and flat float64 draws ``{name: (S,)}`` of a fit or a draws mapping.

    Parameters
    ----------
    draws_or_fit : mapping or arviz.InferenceData
        Draws of the law's parameters (plus ``sigma`` and optionally ``nu``), or a fit.
    law : str or LawSpec, optional
        Default: the fit's recorded law, else the law over N and D whose parameters the draws
        carry (the one with most parameters).
    group : optional
        Group of a hierarchical fit (``"new"`` for an unseen one); only with a fit.

    Returns
    -------
    (LawSpec, dict of str to numpy.ndarray)

    Raises
    ------
    ValueError
        For draws missing the law's parameters, arrays of different lengths or non-finite values,
        or a law not over N and D.
    """
    if hasattr(draws_or_fit, "posterior"):
        from bayes_scaling.inference import posterior_draws

        recorded = draws_or_fit.posterior.attrs.get("law")
        raw: Mapping[str, Any] = posterior_draws(draws_or_fit, group=group)
        spec = get_law(law if law is not None else recorded)
    elif isinstance(draws_or_fit, Mapping):
        if group is not None:
            raise ValueError("group= selects a group of a fit; got a draws mapping")
        raw = draws_or_fit
        spec = get_law(law) if law is not None else _guess_law(raw)
    else:
        raise TypeError(
            "expected posterior draws {name: array (S,)} or an arviz InferenceData; "
            f"got {type(draws_or_fit).__name__}"
        )
    _check_law(spec)
    missing = [name for name in spec.param_names if name not in raw]
    if missing:
        raise ValueError(f"law {spec.name!r} needs draws of {missing}; got {sorted(raw)}")
    draws = {key: np.asarray(value, dtype=float).reshape(-1) for key, value in raw.items()}
    sizes = {key: v.size for key, v in draws.items()}
    if len(set(sizes.values())) != 1 or 0 in sizes.values():
        raise ValueError(f"draws must be non-empty arrays of one length; got sizes {sizes}")
    for key in (*spec.param_names, "sigma"):
        if key in draws and not np.all(np.isfinite(draws[key])):
            raise ValueError(f"draws[{key!r}] has non-finite values")
    return spec, draws


def law_params(spec: LawSpec, draws: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """The law's parameters as float32 JAX arrays (the kernels' input)."""
    return {name: jnp.asarray(draws[name], dtype=jnp.float32) for name in spec.param_names}


def covariates(names: tuple[str, ...], log_n: Any, log_d: Any) -> dict[str, Any]:
    """Log covariates of a law over N and D (``U``, unique tokens, set to ``D``)."""
    values = {"N": log_n, "D": log_d, "U": log_d}
    return {name: values[name] for name in names}


# --------------------------------------------------------------------------- the frontier


def _line_minimum(fn, names, params, log_c, log_k):
    """One draw's least log loss on the line ``k N D = C``: (log N, log loss).

    A grid over log tokens per parameter, then golden-section search between the grid
    neighbours of its minimum (the loss is unimodal along the line for these laws).
    """

    def loss_at(log_ratio):
        log_n = 0.5 * (log_c - log_k - log_ratio)
        return fn(params, covariates(names, log_n, log_n + log_ratio))

    grid = jnp.linspace(LOG_RATIO_RANGE[0], LOG_RATIO_RANGE[1], _RATIO_GRID)
    best = jnp.argmin(loss_at(grid))
    low = grid[jnp.maximum(best - 1, 0)]
    high = grid[jnp.minimum(best + 1, _RATIO_GRID - 1)]

    def step(_, bounds):
        low, high = bounds
        inner_low = high - _GOLDEN * (high - low)
        inner_high = low + _GOLDEN * (high - low)
        left_better = loss_at(inner_low) < loss_at(inner_high)
        return jnp.where(left_better, low, inner_low), jnp.where(left_better, inner_high, high)

    low, high = jax.lax.fori_loop(0, _GOLDEN_STEPS, step, (low, high))
    log_ratio = 0.5 * (low + high)
    return 0.5 * (log_c - log_k - log_ratio), loss_at(log_ratio)


@functools.partial(jax.jit, static_argnames=("fn", "names"))
def _frontier_kernel(fn, names, params, log_compute, log_k):
    return jax.vmap(lambda p, c: _line_minimum(fn, names, p, c, log_k))(params, log_compute)


def frontier(
    spec: LawSpec,
    draws: Mapping[str, np.ndarray],
    compute: float | np.ndarray,
    *,
    flops_per_token: float = 6.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Each draw's compute-optimal model size and law loss at ``compute``.

    Parameters
    ----------
    spec : LawSpec
        A law over ``N`` and ``D``.
    draws : mapping
        ``{name: (S,)}`` with the law's parameters.
    compute : float or array of shape (S,)
        FLOPs on the line ``C = k N D`` (one value per draw allowed).
    flops_per_token : float, default 6.0
        ``k``.

    Returns
    -------
    n_opt, loss_opt : numpy.ndarray
        Shape (S,): ``argmin_N L_s(N, C/(kN))`` and the minimum (law loss, natural units).

    Notes
    -----
    Searched over tokens per parameter ``D/N`` in ``[1e-4, 1e6]``: a 96-point grid in the log,
    then 32 golden-section steps between the grid neighbours of its minimum. In float32 the
    loss is flat at the optimum, so ``n_opt`` is good to about 0.5% and ``loss_opt`` to 1e-6.

    Examples
    --------
    >>> from bayes_scaling.laws import get_law
    >>> epoch = dict(E=[1.817], A=[482.0], B=[2085.0], alpha=[0.348], beta=[0.366])
    >>> n_opt, loss = frontier(get_law("chinchilla"), epoch, 5.9e23)
    >>> round(float(n_opt[0]) / 1e9)
    73
    """
    _check_law(spec)
    params = law_params(spec, draws)
    size = next(iter(params.values())).shape[0]
    log_c = np.broadcast_to(np.log(np.asarray(compute, dtype=float)), (size,))
    log_n, log_loss = _frontier_kernel(
        spec.fn,
        tuple(spec.covariates),
        params,
        jnp.asarray(log_c, jnp.float32),
        jnp.float32(math.log(_positive("flops_per_token", flops_per_token))),
    )
    return np.exp(np.asarray(log_n, dtype=float)), np.exp(np.asarray(log_loss, dtype=float))


@functools.partial(jax.jit, static_argnames=("fn", "names"))
def _least_compute_kernel(fn, names, params, log_n, log_d, log_high, log_k):
    """Per draw: least log C' whose frontier reaches the draw's law loss at (N, D)."""

    def one(p):
        target = fn(p, covariates(names, log_n, log_d))

        def step(_, bounds):
            low, high = bounds
            middle = 0.5 * (low + high)
            reached = _line_minimum(fn, names, p, middle, log_k)[1] <= target
            return jnp.where(reached, low, middle), jnp.where(reached, middle, high)

        start = (log_high + math.log(_SMALLEST_FRACTION), log_high)
        return jax.lax.fori_loop(0, _BISECTION_STEPS, step, start)[1]

    return jax.vmap(one)(params)


# --------------------------------------------------------------------------- the cost


@dataclasses.dataclass(frozen=True, eq=False)
class MisallocationCost:
    """Posterior of the compute an allocation wastes against each draw's own optimum.

    Attributes
    ----------
    N, D : float
        The allocation judged.
    compute : float
        Its budget ``C`` in FLOPs (the denominator of the fractions).
    fraction_draws : numpy.ndarray
        Per draw, ``1 - C'_s / C`` in ``[0, 1)``, shape (S,).
    interval_prob : float
        Probability of the central intervals reported.
    dollars_per_flop : float or None
        Price used for the dollar figures.
    law : str
    """

    N: float
    D: float
    compute: float
    fraction_draws: np.ndarray
    interval_prob: float
    dollars_per_flop: float | None
    law: str

    @property
    def wasted_flops_draws(self) -> np.ndarray:
        """Per-draw wasted FLOPs, ``fraction * compute``."""
        return self.fraction_draws * self.compute

    def _summary(self, values: np.ndarray) -> tuple[float, list[float]]:
        tail = (1.0 - self.interval_prob) / 2.0
        low, median, high = np.quantile(values, [tail, 0.5, 1.0 - tail])
        return float(median), [float(low), float(high)]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``allocate --json``'s ``wasted_compute``.

        Keys: ``median`` and ``interval`` (wasted FLOPs), ``fraction_of_compute``
        (``{"median", "interval"}``), ``interval_prob``, and ``dollars``
        (``{"median", "interval"}``, or None without a price).
        """
        median, interval = self._summary(self.wasted_flops_draws)
        fraction_median, fraction_interval = self._summary(self.fraction_draws)
        dollars = None
        if self.dollars_per_flop is not None:
            price = self.dollars_per_flop
            dollars = {"median": median * price, "interval": [v * price for v in interval]}
        return {
            "median": median,
            "interval": interval,
            "fraction_of_compute": {"median": fraction_median, "interval": fraction_interval},
            "interval_prob": float(self.interval_prob),
            "dollars": dollars,
        }

    def describe(self) -> str:
        """One line: ``N x D wastes 3.1% (90% 0.2-8.9%) of its 5.9e+23 FLOP``."""
        median, (low, high) = self._summary(100.0 * self.fraction_draws)
        text = (
            f"N = {self.N:.3g} x D = {self.D:.3g} wastes {median:.2g}% "
            f"({100 * self.interval_prob:.0f}% {low:.2g}-{high:.2g}%) of its "
            f"{self.compute:.3g} FLOP"
        )
        if self.dollars_per_flop is not None:
            dollars = self.to_dict()["dollars"]
            text += f", ${dollars['median']:,.0f} ({dollars['interval'][0]:,.0f}-"
            text += f"{dollars['interval'][1]:,.0f})"
        return text


def _allocation_point(allocation_or_nd: Any) -> tuple[float, float, float | None]:
    """(N, D, training FLOPs or None) of an Allocation-like object or an (N, D) pair."""
    if hasattr(allocation_or_nd, "N") and hasattr(allocation_or_nd, "D"):
        flops = getattr(allocation_or_nd, "training_flops", None)
        return float(allocation_or_nd.N), float(allocation_or_nd.D), flops
    try:
        n, d = allocation_or_nd
    except (TypeError, ValueError):
        raise TypeError(
            "allocation_or_nd must be an Allocation (from decide.allocate) or a pair (N, D); "
            f"got {allocation_or_nd!r}"
        ) from None
    return _positive("N", n), _positive("D", d), None


def misallocation_cost(
    draws_or_fit: Any,
    allocation_or_nd: Any,
    compute: float | None = None,
    *,
    law: str | LawSpec | None = None,
    group: Any = None,
    flops_per_token: float = 6.0,
    dollars_per_flop: float | None = None,
    interval_prob: float = 0.9,
) -> MisallocationCost:
    """Posterior distribution of the compute an allocation wastes, in FLOPs, fraction and dollars.

    Parameters
    ----------
    draws_or_fit : mapping or arviz.InferenceData
        Posterior draws ``{name: (S,)}`` or a fit (see :func:`load_draws`).
    allocation_or_nd : Allocation or (float, float)
        A result of :func:`bayes_scaling.decide.allocate`, or a planned run ``(N, D)``.
    compute : float, optional
        The budget ``C`` in FLOPs. Default: the allocation's training FLOPs, or ``k N D`` for a
        pair. A budget above ``k N D`` counts the unspent part as wasted.
    law, group
        As in :func:`load_draws`.
    flops_per_token : float, default 6.0
        ``k`` in ``C = k N D``.
    dollars_per_flop : float, optional
        Price of a FLOP, for the dollar figures.
    interval_prob : float, default 0.9
        Probability of the central intervals.

    Returns
    -------
    MisallocationCost
        ``to_dict()`` is the JSON object; ``describe()`` one line of text.

    Raises
    ------
    ValueError
        For a run that costs more than 1% above ``compute``, or bad draws and arguments.

    Notes
    -----
    Per draw ``s``: ``C'_s = min{C' : min_N' L_s(N', C'/(k N')) <= L_s(N, D)}`` (law loss, no
    noise), found by bisection on ``log C'`` over ``[1e-12 C, C]``; the waste is
    ``(C - C'_s) / C``. The allocation at a draw's own optimum wastes nothing under that draw;
    posterior uncertainty about the optimum makes every choice waste something under some draws.

    Examples
    --------
    >>> epoch = dict(E=[1.817], A=[482.0], B=[2085.0], alpha=[0.348], beta=[0.366])
    >>> cost = misallocation_cost(epoch, (70e9, 1.4e12))
    >>> round(100 * float(cost.fraction_draws[0]), 2)
    0.07
    """
    n, d, training = _allocation_point(allocation_or_nd)
    k = _positive("flops_per_token", flops_per_token)
    interval_prob = _interval_prob(interval_prob)
    price = None if dollars_per_flop is None else _positive("dollars_per_flop", dollars_per_flop)
    run_flops = k * n * d
    budget = _positive("compute", compute) if compute is not None else (training or run_flops)
    if run_flops > 1.01 * budget:
        raise ValueError(
            f"the run N={n:.3g} x D={d:.3g} costs {run_flops:.3g} FLOP, more than the budget "
            f"compute={budget:.3g}; raise compute or shrink the run"
        )
    spec, draws = load_draws(draws_or_fit, law, group)
    log_least = _least_compute_kernel(
        spec.fn,
        tuple(spec.covariates),
        law_params(spec, draws),
        jnp.float32(math.log(n)),
        jnp.float32(math.log(d)),
        jnp.float32(math.log(max(budget, run_flops))),
        jnp.float32(math.log(k)),
    )
    least = np.exp(np.asarray(log_least, dtype=float))
    fraction = np.clip(1.0 - least / budget, 0.0, 1.0 - _SMALLEST_FRACTION)
    return MisallocationCost(n, d, budget, fraction, interval_prob, price, spec.name)


def wasted_compute(
    draws_or_fit: Any,
    allocation_or_nd: Any,
    compute: float | None = None,
    **options: Any,
) -> dict[str, Any]:
    """The JSON object ``wasted_compute`` for ``allocate --json``.

    Parameters
    ----------
    draws_or_fit, allocation_or_nd, compute
        As in :func:`misallocation_cost`.
    **options
        ``law``, ``group``, ``flops_per_token``, ``dollars_per_flop``, ``interval_prob``, passed
        to :func:`misallocation_cost`.

    Returns
    -------
    dict
        ``{"median": FLOPs, "interval": [low, high], "fraction_of_compute": {"median": ...,
        "interval": [...]}, "interval_prob": 0.9, "dollars": {"median", "interval"} or None}``.

    Notes
    -----
    To add it to ``allocate --json``, after ``out = result.to_dict()`` in the command::

        out["wasted_compute"] = misallocation.wasted_compute(
            idata, result, group=args.group, flops_per_token=args.flops_per_token,
            dollars_per_flop=args.dollars_per_flop)

    Examples
    --------
    >>> epoch = dict(E=[1.817], A=[482.0], B=[2085.0], alpha=[0.348], beta=[0.366])
    >>> sorted(wasted_compute(epoch, (70e9, 1.4e12)))
    ['dollars', 'fraction_of_compute', 'interval', 'interval_prob', 'median']
    """
    return misallocation_cost(draws_or_fit, allocation_or_nd, compute, **options).to_dict()


def plot_wasted_compute(
    cost: MisallocationCost | list[MisallocationCost],
    path: str | Path | None = None,
    *,
    labels: list[str] | None = None,
    ax: Any = None,
):
    """Histogram of the wasted fraction of compute, with each median and interval marked.

    Parameters
    ----------
    cost : MisallocationCost or list of them
        Results of :func:`misallocation_cost` (several are overlaid).
    path : str or Path, optional
        Save the figure there (format from the suffix).
    labels : list of str, optional
        Legend labels; default ``N x D``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    items = cost if isinstance(cost, list) else [cost]
    if not items:
        raise ValueError("plot_wasted_compute needs at least one MisallocationCost")
    fig, ax = plt.subplots(figsize=(6.4, 3.8)) if ax is None else (ax.figure, ax)
    top = max(float(np.quantile(100 * item.fraction_draws, 0.995)) for item in items)
    bins = np.linspace(0.0, max(top, 1e-3), 50)
    for i, item in enumerate(items):
        label = labels[i] if labels is not None else f"N = {item.N:.3g} x D = {item.D:.3g}"
        percent = np.clip(100 * item.fraction_draws, 0.0, bins[-1])
        color = f"C{i}"
        ax.hist(percent, bins=bins, alpha=0.45, color=color, label=label)
        median, (low, high) = item._summary(percent)
        ax.axvline(median, color=color, lw=1.5)
        ax.axvspan(low, high, color=color, alpha=0.08)
    ax.set_xlabel(
        f"compute wasted against each draw's optimum (% of budget, {items[0].compute:.2g} FLOP)"
    )
    ax.set_ylabel("posterior draws")
    ax.set_title(
        f"misallocation cost: median (line), {100 * items[0].interval_prob:.0f}% interval (band)"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
