"""Contrasts between groups of a hierarchical fit: differences, ratios and crossings.

:func:`contrast` gives the posterior of the difference (or ratio) of a parameter or of a
derived quantity (compute-optimal exponent, compute-optimal loss at a budget, the compute at
which two curves cross) between groups, with P(difference > 0) and an optional region of
practical equivalence (ROPE).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling import draws as _draws
from bayes_scaling import inference as _inference
from bayes_scaling import labels as _labels
from bayes_scaling.compare.optimal import (
    _check_optimal_exponent,
    _check_optimal_loss,
    _compute_optimal_exponent,
    _exponent_parameters,
    optimal_loss,
)
from bayes_scaling.laws import LawSpec

DERIVED_QUANTITIES = {
    "a": "compute-optimal exponent a in N*(C) ~ C^a: beta/(alpha+beta) (Chinchilla), "
    "alpha_D/(alpha_N+alpha_D) (Kaplan)",
    "loss": "predicted loss: compute-optimal at compute=C (laws over N and D, or over C), or at "
    "covariates at={...}",
    "crossing": "compute at which two groups' compute-optimal loss curves cross",
}


@dataclasses.dataclass(frozen=True)
class Contrast:
    """The posterior of a between-group contrast, from :func:`contrast`.

    Attributes
    ----------
    quantity : str
        What is compared (``"E"``, ``"a"``, ``"loss@C=1e+21"``, ``"crossing"``).
    kind : {"difference", "ratio", "crossing"}
    groups : tuple of str
    pairs : tuple of (str, str)
        Each pair ``(first, second)`` is reported as ``first - second`` (or ``first / second``).
    table : DataFrame
        One row per pair. For differences and ratios: ``mean``, ``sd``, ``median``, ``lower``,
        ``upper`` (equal-tailed interval at ``prob``), ``p_greater`` = P(first > second),
        ``p_less`` = P(first < second), and with a ROPE ``p_below_rope``, ``p_in_rope``,
        ``p_above_rope``. For crossings: ``p_cross`` (probability the curves cross inside
        ``compute_range``), ``median``, ``lower``, ``upper`` (compute of the crossing, among
        draws that cross), ``p_first_lower_at_low``, ``p_first_lower_at_high`` (which curve is
        lower at the ends of the range).
    draws : dict of str to ndarray
        The contrast's draws per pair label (crossing compute, NaN where no crossing).
    values : dict of str to ndarray
        The quantity's draws per group (empty for crossings).
    prob : float
    rope : tuple of float or None
    compute_range : tuple of float or None
    description : str
    """

    quantity: str
    kind: str
    groups: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    table: pd.DataFrame
    draws: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    prob: float
    rope: tuple[float, float] | None
    compute_range: tuple[float, float] | None
    description: str

    def to_dict(self) -> dict[str, Any]:
        table = self.table.reset_index().rename(columns={"index": "pair"})
        return {
            "quantity": self.quantity,
            "kind": self.kind,
            "description": self.description,
            "groups": list(self.groups),
            "prob": self.prob,
            "rope": list(self.rope) if self.rope is not None else None,
            "compute_range": list(self.compute_range) if self.compute_range is not None else None,
            "group_summary": {
                g: {
                    "mean": float(np.mean(v)),
                    "median": float(np.median(v)),
                    "lower": float(np.quantile(v, (1 - self.prob) / 2)),
                    "upper": float(np.quantile(v, (1 + self.prob) / 2)),
                }
                for g, v in self.values.items()
            },
            "contrasts": json.loads(table.to_json(orient="records")),
        }


def _resolve_groups(fit, groups) -> tuple[str, ...]:
    info = _inference.fit_spec(fit)
    labels = list(info["groups"])
    if not labels:
        raise ValueError(
            "contrast needs a hierarchical fit, and this fit has no groups; fit with group=COLUMN "
            "(CLI: --group COLUMN), e.g. --group dataset"
        )
    if groups is None:
        return tuple(labels)
    if isinstance(groups, str):
        groups = [g.strip() for g in groups.split(",") if g.strip()]
    groups = [_labels.match_group(g, labels) or str(g) for g in groups]
    unknown = [g for g in groups if g not in labels]
    if unknown:
        raise KeyError(
            f"unknown group{'s' if len(unknown) > 1 else ''} {unknown}; the fit's groups "
            f"({info['group_column'] or 'group'}) are {labels}"
        )
    dup = sorted({g for g in groups if groups.count(g) > 1})
    if dup:
        raise ValueError(f"groups {dup} are listed more than once")
    if len(groups) < 2:
        raise ValueError(
            f"a contrast needs at least two groups; got {groups} (the fit has {labels})"
        )
    return tuple(groups)


def _check_per_group(fit, spec: LawSpec, names: Sequence[str], quantity: str) -> None:
    post = fit.posterior
    if not any("group" in post[n].dims for n in names):
        pooling = _inference.fit_spec(fit)["pooling"]
        what = (
            f"parameter {quantity!r} is"
            if list(names) == [quantity]
            else f"{quantity!r} depends only on {list(names)}, which are"
        )
        pool_hint = ",".join(f"{n}=pooled" for n in names)
        modes = ", ".join(f"{n}={pooling.get(n, 'shared')}" for n in names)
        raise ValueError(
            f"{what} shared across groups in this fit (pooling: {modes}), so it has no "
            f"between-group difference; refit with it per group (CLI: --pool {pool_hint})"
        )


def _data_compute_range(fit) -> tuple[float, float]:
    const = fit.constant_data
    if "C" in const:
        c = const["C"].values
    elif "N" in const and "D" in const:
        c = 6.0 * const["N"].values * const["D"].values
    else:
        raise ValueError(
            "cannot tell the data's compute range from this fit; pass compute_range=(low, high)"
        )
    return float(np.min(c)), float(np.max(c))


def _summarise(draws: np.ndarray, prob: float, rope, centre: float) -> dict[str, float]:
    lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2])
    row = {
        "mean": float(np.mean(draws)),
        "sd": float(np.std(draws, ddof=1)),
        "median": float(np.median(draws)),
        "lower": float(lo),
        "upper": float(hi),
        "p_greater": float(np.mean(draws > centre)),
        "p_less": float(np.mean(draws < centre)),
    }
    if rope is not None:
        row["p_below_rope"] = float(np.mean(draws < rope[0]))
        row["p_in_rope"] = float(np.mean((draws >= rope[0]) & (draws <= rope[1])))
        row["p_above_rope"] = float(np.mean(draws > rope[1]))
    return row


def _crossings(diff: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """First compute where each row of ``diff`` (S, m) changes sign, log-linear interpolation."""
    s = np.sign(diff)
    change = (s[:, :-1] * s[:, 1:]) < 0
    has = change.any(axis=1)
    j = np.argmax(change, axis=1)
    rows = np.arange(diff.shape[0])
    d0, d1 = diff[rows, j], diff[rows, j + 1]
    lg = np.log(grid)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(has, d0 / np.where(has, d0 - d1, 1.0), np.nan)
    return np.exp(lg[j] + t * (lg[j + 1] - lg[j]))


@dataclasses.dataclass(frozen=True)
class _Quantity:
    """What a contrast compares: its label, description and value per group's draws."""

    name: str
    description: str
    value: Callable[[Mapping[str, np.ndarray]], Any]


def _load(fit):
    return _inference.load_fit(fit) if isinstance(fit, (str, Path)) else fit


def _check_arguments(param, kind: str, prob) -> None:
    if not isinstance(param, str) or not param:
        raise ValueError(f"param must be a parameter or derived-quantity name; got {param!r}")
    if kind not in ("difference", "ratio"):
        raise ValueError(f"kind must be 'difference' or 'ratio'; got {kind!r}")
    if not (isinstance(prob, (int, float)) and 0 < prob < 1):
        raise ValueError(f"prob must be in (0, 1); got {prob!r}")


def contrast(
    fit,
    param: str,
    groups: Sequence[str] | str | None = None,
    *,
    kind: str = "difference",
    rope: float | tuple[float, float] | None = None,
    prob: float = 0.9,
    compute: float | None = None,
    at: Mapping[str, float] | None = None,
    compute_range: tuple[float, float] | None = None,
    flops_per_token: float = 6.0,
) -> Contrast:
    """Posterior of a between-group contrast in a hierarchical fit.

    Parameters
    ----------
    fit : InferenceData, str or Path
        A fit with a ``group`` dimension (or the path of one saved by ``bayes-scaling fit``).
    param : str
        A per-group law parameter (``"E"``, ``"alpha"``, ...) or a derived quantity:
        ``"a"`` (compute-optimal exponent ``beta/(alpha+beta)``; ``alpha_D/(alpha_N+alpha_D)``
        for Kaplan), ``"loss"`` (with ``compute=`` the compute-optimal loss at that budget,
        or with ``at=`` the loss at given covariates) or ``"crossing"`` (the compute at which
        two groups' compute-optimal loss curves cross).
    groups : sequence of str, comma-separated str, or None
        Groups to compare (default all); every pair ``(groups[i], groups[j])``, ``i < j``, is
        reported as ``groups[i] - groups[j]``.
    kind : {"difference", "ratio"}, default "difference"
        ``first - second`` (compared with 0) or ``first / second`` (compared with 1).
    rope : float or (float, float), optional
        Region of practical equivalence for the contrast: ``r`` means ``(-r, r)`` for
        differences and ``(1/(1+r), 1+r)`` for ratios.
    prob : float, default 0.9
        Mass of the equal-tailed interval.
    compute : float, optional
        FLOPs for ``param="loss"``.
    at : mapping, optional
        Covariates (natural units) for ``param="loss"`` instead of ``compute``.
    compute_range : (float, float), optional
        Search range for ``"crossing"``; default from a tenth of the smallest to 10^4 times
        the largest compute in the data.
    flops_per_token : float, default 6.0
        ``k`` in ``C = k N D``.

    Returns
    -------
    Contrast

    Raises
    ------
    KeyError
        An unknown group (the message lists the fit's groups) or an unknown quantity.
    ValueError
        A fit without groups, a parameter shared across groups (it has no difference), a
        derived quantity the law does not define, fewer than two groups, bad ``prob``/``rope``.

    Notes
    -----
    Draws of the two groups come from the same joint posterior draw, so the contrast keeps
    their correlation (through the population parameters and shared ones). Intervals are
    equal-tailed quantiles.

    Examples
    --------
    >>> c = contrast(idata, "E", ["rw", "owt2"], rope=0.02)  # doctest: +SKIP
    >>> c.table.loc["rw - owt2", "p_less"]  # P(E_rw < E_owt2)  # doctest: +SKIP
    """
    fit = _load(fit)
    spec: LawSpec = _inference.fit_spec(fit)["law"]
    _check_arguments(param, kind, prob)
    groups = _resolve_groups(fit, groups)
    rope_pair = _resolve_rope(rope, kind)
    if param == "crossing" and param not in spec.param_names:
        return _crossing_contrast(fit, spec, groups, prob, compute_range, flops_per_token)
    what = _quantity(fit, spec, param, kind, compute, at, flops_per_token)
    values = {
        g: np.asarray(what.value(_inference.posterior_draws(fit, g)), dtype=float) for g in groups
    }
    pairs = tuple(itertools.combinations(groups, 2))
    centre = 0.0 if kind == "difference" else 1.0
    draws, rows = {}, {}
    for g1, g2 in pairs:
        label = f"{g1} {'-' if kind == 'difference' else '/'} {g2}"
        diff = values[g1] - values[g2] if kind == "difference" else values[g1] / values[g2]
        draws[label] = diff
        rows[label] = _summarise(diff, prob, rope_pair, centre)
    return Contrast(
        quantity=what.name,
        kind=kind,
        groups=groups,
        pairs=pairs,
        table=pd.DataFrame.from_dict(rows, orient="index"),
        draws=draws,
        values=values,
        prob=float(prob),
        rope=rope_pair,
        compute_range=None,
        description=what.description,
    )


def _quantity(fit, spec: LawSpec, param: str, kind: str, compute, at, flops_per_token) -> _Quantity:
    """The quantity named ``param``, checked against the law and the fit's pooling."""
    if param in spec.param_names:
        return _parameter(fit, spec, param, kind)
    if param == "a":
        _check_optimal_exponent(spec)
        _check_per_group(fit, spec, _exponent_parameters(spec), "a")
        return _Quantity("a", DERIVED_QUANTITIES["a"], lambda d: _compute_optimal_exponent(spec, d))
    if param == "loss":
        what = _loss(spec, compute, at, flops_per_token)
        _check_per_group(fit, spec, list(spec.param_names), what.name)
        return what
    raise KeyError(
        f"unknown quantity {param!r} for law {spec.name!r}; parameters: "
        f"{', '.join(spec.param_names)}; derived: {', '.join(DERIVED_QUANTITIES)}"
    )


def _parameter(fit, spec: LawSpec, param: str, kind: str) -> _Quantity:
    _check_per_group(fit, spec, [param], param)
    p = next(p for p in spec.params if p.name == param)
    if kind == "ratio" and p.constraint != "positive":
        raise ValueError(
            f"parameter {param!r} can be negative, so a ratio is not meaningful; use "
            "kind='difference'"
        )
    return _Quantity(param, p.description or param, lambda d: d[param])


def _loss(spec: LawSpec, compute, at, flops_per_token: float) -> _Quantity:
    """The compute-optimal loss at ``compute`` FLOPs, or the loss at covariates ``at``."""
    if (compute is None) == (at is None):
        raise ValueError(
            "param='loss' needs exactly one of compute= (FLOPs, CLI --compute) or at= (covariates)"
        )
    if compute is not None:
        _check_optimal_loss(spec)
        return _Quantity(
            f"loss@C={compute:.3g}",
            f"compute-optimal {spec.target} at C = {compute:.3g} FLOP",
            lambda d: optimal_loss(spec, d, float(compute), flops_per_token=flops_per_token),
        )
    missing = [c for c in spec.covariates if c not in at]
    if missing:
        raise ValueError(
            f"at= must give the covariates {list(spec.covariates)} of law {spec.name!r}; "
            f"missing {missing}"
        )
    point = {c: np.atleast_1d(float(at[c])) for c in spec.covariates}
    return _Quantity(
        "loss@" + ",".join(f"{c}={float(at[c]):.3g}" for c in spec.covariates),
        f"predicted {spec.target} at "
        + ", ".join(f"{c} = {float(at[c]):.3g}" for c in spec.covariates),
        lambda d: np.exp(_draws.log_law_at(spec, d, point)[:, 0]),
    )


def _resolve_rope(rope, kind: str) -> tuple[float, float] | None:
    if rope is None:
        return None
    if isinstance(rope, (int, float)) and not isinstance(rope, bool):
        if not rope > 0:
            raise ValueError(f"rope half-width must be > 0; got {rope!r}")
        return (
            (-float(rope), float(rope))
            if kind == "difference"
            else (1 / (1 + float(rope)), 1 + float(rope))
        )
    try:
        low, high = (float(v) for v in rope)
    except (TypeError, ValueError):
        raise ValueError(f"rope must be a half-width or a (low, high) pair; got {rope!r}") from None
    if not low < high:
        raise ValueError(f"rope needs low < high; got ({low}, {high})")
    return (low, high)


def _crossing_contrast(
    fit, spec: LawSpec, groups, prob, compute_range, flops_per_token
) -> Contrast:
    _check_per_group(fit, spec, list(spec.param_names), "crossing")
    _check_optimal_loss(spec)
    lo, hi = _crossing_range(fit, compute_range)
    grid = np.geomspace(lo, hi, 241)
    curves = {
        g: optimal_loss(
            spec, _inference.posterior_draws(fit, g), grid, flops_per_token=flops_per_token
        )
        for g in groups
    }
    pairs = tuple(itertools.combinations(groups, 2))
    draws, rows = {}, {}
    for g1, g2 in pairs:
        label = f"{g1} x {g2}"
        diff = curves[g1] - curves[g2]
        draws[label] = _crossings(diff, grid)
        rows[label] = _crossing_row(draws[label], diff, prob)
    return Contrast(
        quantity="crossing",
        kind="crossing",
        groups=groups,
        pairs=pairs,
        table=pd.DataFrame.from_dict(rows, orient="index"),
        draws=draws,
        values={},
        prob=float(prob),
        rope=None,
        compute_range=(lo, hi),
        description=DERIVED_QUANTITIES["crossing"],
    )


def _crossing_range(fit, compute_range) -> tuple[float, float]:
    """The compute range searched for crossings (default: the data's, widened)."""
    if compute_range is None:
        lo, hi = _data_compute_range(fit)
        compute_range = (lo / 10, hi * 1e4)
    lo, hi = (float(v) for v in compute_range)
    if not 0 < lo < hi:
        raise ValueError(
            f"compute_range must be (low, high) with 0 < low < high; got {compute_range!r}"
        )
    return lo, hi


def _crossing_row(cross: np.ndarray, diff: np.ndarray, prob: float) -> dict[str, float]:
    hit = cross[np.isfinite(cross)]
    row = {"p_cross": float(np.isfinite(cross).mean())}
    if hit.size:
        q = np.quantile(hit, [0.5, (1 - prob) / 2, (1 + prob) / 2])
        row.update(median=float(q[0]), lower=float(q[1]), upper=float(q[2]))
    else:
        row.update(median=float("nan"), lower=float("nan"), upper=float("nan"))
    row["p_first_lower_at_low"] = float(np.mean(diff[:, 0] < 0))
    row["p_first_lower_at_high"] = float(np.mean(diff[:, -1] < 0))
    return row
