"""Validated data to model arrays: :func:`prepare` builds the hashable :class:`ModelSpec` and the
log covariates, log target and group codes a fit runs on."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd

from bayes_scaling import data as _data
from bayes_scaling import labels as _labels
from bayes_scaling._warnings import warn as _warn
from bayes_scaling.laws import LawSpec, get_law
from bayes_scaling.models import LIKELIHOODS, ModelSpec, resolve_pooling
from bayes_scaling.priors import resolve_priors

__all__ = ["FitInputs", "prepare"]


@dataclasses.dataclass(frozen=True)
class FitInputs:
    """Arrays for the model (log covariates, log target, group codes) and their labels."""

    spec: ModelSpec
    frame: pd.DataFrame
    x: dict[str, np.ndarray]
    y: np.ndarray
    group_index: np.ndarray | None
    group_labels: tuple[str, ...]
    group_column: str | None
    columns: tuple[tuple[str, str], ...] = ()  # the renames applied: (data's name, canonical)

    @property
    def num_points(self) -> int:
        return int(self.y.shape[0])


def prepare(
    data,
    law: str | LawSpec = "chinchilla",
    *,
    priors=None,
    group: str | None = None,
    pooling=None,
    likelihood: str = "student_t",
    columns: Mapping[str, str] | None = None,
    derive_tokens: bool = False,
    flops_per_token: float = 6.0,
) -> FitInputs:
    """Validate data and build the static model spec plus the arrays it is run on."""
    spec_law = get_law(law)
    if likelihood not in LIKELIHOODS:
        raise ValueError(
            f"unknown likelihood {likelihood!r}; expected one of {', '.join(LIKELIHOODS)}"
        )
    prior_set = resolve_priors(spec_law, priors)
    pool = resolve_pooling(spec_law, pooling, grouped=group is not None)
    frame = _data.validate(
        data,
        spec_law,
        group=group,
        columns=columns,
        derive_tokens=derive_tokens,
        flops_per_token=flops_per_token,
        pooling=pool,
    )
    x = {c: np.log(frame[c].to_numpy(dtype=float)) for c in spec_law.covariates}
    y = np.log(frame[spec_law.target].to_numpy(dtype=float))
    if group is not None:
        group_labels = tuple(_labels.group_order(frame["group"]))
        position = {label: i for i, label in enumerate(group_labels)}
        group_index = np.array([position[str(v)] for v in frame["group"]], dtype=np.int32)
        _warn_constant_within_groups(spec_law, prior_set, pool, frame, x)
    else:
        group_index, group_labels = None, ()
    reference = tuple((c, float(np.round(x[c].mean(), 6))) for c in spec_law.covariates)
    spec = ModelSpec(
        law=spec_law,
        priors=prior_set,
        likelihood=likelihood,
        pooling=tuple(sorted(pool.items())),
        num_groups=len(group_labels),
        reference=reference,
    )
    renames = tuple((str(k), str(v)) for k, v in (columns or {}).items())
    return FitInputs(spec, frame, x, y, group_index, group_labels, group, renames)


def _warn_constant_within_groups(law: LawSpec, priors, pool, frame: pd.DataFrame, x) -> None:
    """Warn where a covariate takes one value within every group (e.g. one model size per group).

    The per-group parameters whose effect changes with that covariate then cannot be told apart,
    within a group, from its other per-group terms (one size fixes ``A*N^-alpha`` to a constant
    beside ``E``): the data identify a combination only, the rest comes from the population, and
    the sampler may not converge.
    """
    per_group = [p for p in law.param_names if pool.get(p) != "shared"]
    if not per_group:
        return
    codes = frame["group"].to_numpy()
    for c in law.covariates:
        distinct = pd.Series(x[c]).groupby(codes).nunique()
        if distinct.max() > 1 or np.ptp(x[c]) == 0:
            continue
        moved = _params_moved_by(law, priors, x, c, per_group)
        if not moved:
            continue
        shared = ", ".join(f"{p!r}: 'shared'" for p in moved)
        _warn(
            f"{c} takes a single value within each of the {distinct.size} groups, so the "
            f"per-group {', '.join(moved)} (whose effect changes with {c}) cannot be told apart "
            "within a group from its other terms: the data fix one combination, the population "
            "the rest, and the sampler may not converge. Share them across groups "
            f"(pooling={{{shared}}}) or group by a column that varies {c} within groups.",
            RuntimeWarning,
        )


def _params_moved_by(law: LawSpec, priors, x, covariate: str, names) -> list[str]:
    """The parameters among ``names`` whose effect on the law changes along ``covariate``.

    Read from the law's gradient in each parameter at the smallest and largest value of the
    covariate (the other covariates at their medians), at a few draws from the prior.
    """
    import jax
    import jax.numpy as jnp

    draws = {
        p: priors.params[p].to_numpyro().sample(jax.random.PRNGKey(i), (4,))
        for i, p in enumerate(law.param_names)
    }
    moved = set()
    for end in range(4):
        params = {p: draws[p][end] for p in law.param_names}
        grads = []
        for value in (x[covariate].min(), x[covariate].max()):
            point = {c: jnp.asarray(np.median(v)) for c, v in x.items()}
            point[covariate] = jnp.asarray(value)
            grads.append(jax.grad(lambda q, at=point: jnp.exp(law.fn(q, at)))(params))
        for p in names:
            a, b = float(grads[0][p]), float(grads[1][p])
            if np.isfinite(a) and np.isfinite(b) and abs(a - b) > 1e-6 * (abs(a) + abs(b)):
                moved.add(p)
    return [p for p in names if p in moved]
