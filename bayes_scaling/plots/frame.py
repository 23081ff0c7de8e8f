"""A fit's law, groups and runs: what every figure starts from."""

from __future__ import annotations

import json
import warnings

import pandas as pd

from bayes_scaling import data as _data
from bayes_scaling import draws as _core
from bayes_scaling import labels as _labels
from bayes_scaling.laws import LawSpec, get_law

__all__ = [
    "check_group",
    "fit_frame",
    "group_labels",
    "group_rows",
    "law_of",
    "over_n_and_d",
    "runs_over_n_and_d",
]


def law_of(fit) -> LawSpec:
    """The law a fit was made with (from its ``posterior.attrs["law"]``).

    Parameters
    ----------
    fit : arviz.InferenceData

    Returns
    -------
    LawSpec
    """
    return get_law(fit.posterior.attrs["law"])


def group_labels(fit) -> list[str]:
    """The group labels of a hierarchical fit, in the fit's order; empty for one curve."""
    return list(json.loads(fit.posterior.attrs.get("groups", "[]") or "[]"))


def check_group(fit, group: str | None) -> str | None:
    """The group to draw: None for a fit without groups, else a label of the fit or ``"new"``.

    Raises
    ------
    ValueError
        A group for a fit without groups, none for a fit with groups, or an unknown label
        (naming the fit's groups).
    """
    labels = group_labels(fit)
    if not labels:
        if group not in (None,):
            raise ValueError(f"group={group!r} given, but this fit has no groups")
        return None
    if group is None:
        raise ValueError(f"this fit has groups {labels}; pass group= one of them (or 'new')")
    if group == "new":
        return group
    label = _labels.match_group(group, labels)
    if label is None:
        raise ValueError(f"unknown group {group!r}; the fit's groups are {labels} (or 'new')")
    return label


def over_n_and_d(spec: LawSpec) -> bool:
    """True for a law over ``N`` and ``D`` (and possibly unique tokens ``U``) only.

    These are the laws whose compute ``C = k N D`` can be split between model size and tokens:
    iso-FLOP curves, frontiers, allocations and the compute axis of the fan.
    """
    return {"N", "D"} <= set(spec.covariates) and set(spec.covariates) <= {"N", "D", "U"}


def fit_frame(fit, data=None, *, flops_per_token: float = 6.0) -> pd.DataFrame:
    """The runs a fit was made on, as a frame: covariates, target, ``group`` and ``C``.

    Parameters
    ----------
    fit : arviz.InferenceData
    data : DataFrame, str or Path, optional
        The data to show instead of the fit's own ``constant_data``/``observed_data`` (validated
        against the fit's law; a warning is issued when it differs from the data fitted).
    flops_per_token : float, default 6.0
        ``k`` in ``C = k N D``, used when the data have ``N`` and ``D`` but no ``C``.

    Returns
    -------
    pandas.DataFrame
    """
    frame = _core.fit_frame(fit) if data is None else _given_data(fit, data)
    if {"N", "D"} <= set(frame.columns) and ("C" not in frame.columns or frame["C"].isna().any()):
        frame["C"] = flops_per_token * frame["N"] * frame["D"]
    return frame


def _given_data(fit, data) -> pd.DataFrame:
    """Data given instead of the fit's own, validated; a warning when it is not the data fitted."""

    attrs = fit.posterior.attrs
    raw = _data.read_table(data)
    frame = _data.validate(raw, law_of(fit), group=attrs.get("group_column") or None)
    recorded = attrs.get("data_hash")
    if recorded and _data.data_hash(frame) != recorded:
        warnings.warn(
            "the data given differ from the data this fit was made on (data hash "
            f"{_data.data_hash(frame)} vs {recorded}); the figures show the data given",
            UserWarning,
            stacklevel=3,
        )
    if "C" in raw.columns and "C" not in frame.columns:
        c = pd.to_numeric(raw.loc[frame.index, "C"], errors="coerce")
        frame["C"] = c.to_numpy(dtype=float)
    return frame


def group_rows(frame: pd.DataFrame, group: str | None) -> pd.DataFrame:
    """The rows of one group (all rows for None, ``"new"`` or a frame without groups)."""
    if group is None or group == "new" or "group" not in frame.columns:
        return frame
    return frame[frame["group"] == group]


def runs_over_n_and_d(
    fit, data, group: str | None, flops_per_token: float, figure: str
) -> tuple[LawSpec, str | None, pd.DataFrame]:
    """The law, the checked group and its runs, for a figure that needs a law over N and D.

    ``figure`` names the figure in the error, e.g. ``"a compute-optimal frontier"``.
    """
    spec = law_of(fit)
    if not over_n_and_d(spec):
        raise ValueError(
            f"{figure} needs a law over N and D; law {spec.name!r} has {list(spec.covariates)}"
        )
    group = check_group(fit, group)
    frame = group_rows(fit_frame(fit, data, flops_per_token=flops_per_token), group)
    return spec, group, frame
