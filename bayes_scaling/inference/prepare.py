"""Validated data to model arrays: :func:`prepare` builds the hashable :class:`ModelSpec` and the
log covariates, log target and group codes a fit runs on."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd

from bayes_scaling import data as _data
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
        group_labels = tuple(_data.group_order(frame["group"]))
        position = {label: i for i, label in enumerate(group_labels)}
        group_index = np.array([position[str(v)] for v in frame["group"]], dtype=np.int32)
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
