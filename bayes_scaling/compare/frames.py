"""The rows a comparison works on: one frame for all laws, the leave-future-out split, points."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bayes_scaling import data as _data
from bayes_scaling import inference as _inference
from bayes_scaling.laws import LawSpec


def _law_pooling(spec: LawSpec, pooling, grouped: bool):
    """The part of a comparison-wide pooling request that applies to one law."""
    if not grouped or pooling is None or isinstance(pooling, str):
        return pooling
    return {k: v for k, v in pooling.items() if k in spec.param_names} or None


def _derive_sizes(
    df: pd.DataFrame,
    names: set[str],
    *,
    derive_tokens: bool,
    derive_compute: bool,
    flops_per_token: float,
) -> list[str]:
    """Fill ``D`` (on request) or ``C`` (for laws over compute) from the others; notes on what."""
    notes: list[str] = []
    if derive_tokens and "D" not in df.columns and {"C", "N"} <= set(df.columns):
        df["D"] = _data._numeric(df, "C") / (flops_per_token * _data._numeric(df, "N"))
        notes.append(f"D derived as C / ({flops_per_token:g} N)")
    if "C" in names and "C" not in df.columns and derive_compute and {"N", "D"} <= set(df.columns):
        df["C"] = flops_per_token * _data._numeric(df, "N") * _data._numeric(df, "D")
        notes.append(f"C derived as {flops_per_token:g} N D (the data has no C column)")
    return notes


def _check_pooling_names(specs: Sequence[LawSpec], pooling) -> None:
    if isinstance(pooling, Mapping):
        all_params = {p for s in specs for p in s.param_names}
        unknown = sorted(set(pooling) - all_params)
        if unknown:
            raise ValueError(
                f"pooling names {unknown}, which none of the laws has; their parameters: "
                f"{sorted(all_params)}"
            )


def _common_frame(
    data,
    specs: Sequence[LawSpec],
    *,
    group,
    pooling,
    columns,
    derive_tokens,
    derive_compute,
    flops_per_token,
) -> tuple[pd.DataFrame, list[str]]:
    """One validated frame with every column any of the laws reads (same rows for all)."""
    df = _data.rename_columns(_data.read_table(data), columns)
    names = {c for s in specs for c in s.covariates}
    notes = _derive_sizes(
        df,
        names,
        derive_tokens=derive_tokens,
        derive_compute=derive_compute,
        flops_per_token=flops_per_token,
    )
    _check_pooling_names(specs, pooling)
    frames = []
    for spec in specs:
        pool = _inference.resolve_pooling(
            spec, _law_pooling(spec, pooling, group is not None), grouped=group is not None
        )
        frames.append(_data.validate(df, spec, group=group, pooling=pool))
    out = pd.DataFrame(index=frames[0].index)
    for f in frames:
        for col in f.columns:
            if col not in out.columns:
                out[col] = f[col]
    for col in ("C", "N", "D"):  # sizes no law reads still define leave-future-out splits
        if col in df.columns and col not in out.columns:
            # unusable values: a split on this column reports it as absent
            with contextlib.suppress(_data.DataError):
                out[col] = _data._checked_column(df.loc[out.index], col)
    return out, notes


def future_split(
    frame: pd.DataFrame, holdout: float | str | np.ndarray = 0.2, *, column: str | None = None
) -> np.ndarray:
    """Training mask for leave-future-out: hold out the points with the largest compute.

    Parameters
    ----------
    frame : DataFrame
        Canonical columns (a validated frame).
    holdout : float, str or boolean array, default 0.2
        A fraction in (0, 1): the held-out part is the largest-``column`` points, about this
        fraction of the rows, never splitting points with equal ``column`` values (an IsoFLOP
        budget stays on one side). A string such as ``"C<=1e21"`` or a boolean array is the
        training side itself (see :func:`bayes_scaling.data.parse_split`).
    column : str, optional
        The "future" direction: ``C`` when present, else ``N * D`` when both are present, else
        the first covariate column.

    Returns
    -------
    ndarray of bool
        True for training rows.

    Raises
    ------
    DataError
        For a fraction outside (0, 1), an unknown column, or a split that leaves a side empty.

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"C": [1.0, 2, 3, 4, 5, 5], "loss": 1.0})
    >>> future_split(f, 0.3).tolist()
    [True, True, True, True, False, False]
    """
    if not isinstance(holdout, (float, int)) or isinstance(holdout, bool):
        return _data.parse_split(frame, holdout)
    if not 0 < holdout < 1:
        raise _data.DataError(f"holdout must be a fraction in (0, 1) of the rows; got {holdout!r}")
    values = _future_axis(frame, column)
    levels = np.unique(values)
    if levels.size < 2:
        raise _data.DataError(
            "leave-future-out needs at least two distinct compute values to split on"
        )
    want = holdout * len(values)
    # lowest threshold whose held-out side (values >= t) has at most `want` rows; at least the
    # top level
    cut = levels[-1]
    for t in levels[::-1]:
        if (values >= t).sum() <= want:
            cut = t
        else:
            break
    return values < cut


def _future_axis(frame: pd.DataFrame, column: str | None) -> np.ndarray:
    if column is not None:
        if column not in frame.columns:
            raise _data.DataError(
                f"split column {column!r} not found; found columns: "
                f"{', '.join(map(str, frame.columns))}"
            )
        return frame[column].to_numpy(dtype=float)
    if "C" in frame.columns:
        return frame["C"].to_numpy(dtype=float)
    if {"N", "D"} <= set(frame.columns):
        return frame["N"].to_numpy(dtype=float) * frame["D"].to_numpy(dtype=float)
    first = next(
        c
        for c in frame.columns
        if c in _data.CANONICAL_COLUMNS and c not in ("loss", "steps", "group")
    )
    return frame[first].to_numpy(dtype=float)


def _covariate_frame(covariates, specs: Sequence[LawSpec], flops_per_token: float) -> pd.DataFrame:
    """Points to predict at, with ``C = k N D`` filled for laws over compute."""
    df = pd.DataFrame(covariates) if not isinstance(covariates, pd.DataFrame) else covariates.copy()
    if not len(df):
        raise _data.DataError("no covariates to predict at")
    needs_c = any("C" in s.covariates for s in specs)
    if needs_c and "C" not in df.columns and {"N", "D"} <= set(df.columns):
        df["C"] = flops_per_token * df["N"].to_numpy(dtype=float) * df["D"].to_numpy(dtype=float)
    for s in specs:
        missing = [c for c in s.covariates if c not in df.columns]
        if missing:
            raise _data.DataError(
                f"law {s.name!r} needs covariates {list(s.covariates)}; missing {missing}"
            )
    return df
