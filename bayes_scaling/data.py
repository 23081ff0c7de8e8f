"""Validation of user data at the boundary: frames or CSVs in, clean canonical frames out.

Canonical column names are ``N`` (parameters), ``D`` (training tokens), ``C`` (training FLOPs),
``U`` (unique tokens), ``B`` (batch size), ``steps``, ``loss``, ``loss_x`` (the loss on another
dataset, the covariate of the loss-to-loss law) and ``group``. Nothing is
dropped: every problem is an error that names the column, the rule and the first offending
row, except exact duplicate rows, which only warn.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "CANONICAL_COLUMNS",
    "DataError",
    "read_table",
    "validate",
    "data_hash",
    "parse_split",
]

CANONICAL_COLUMNS = ("N", "D", "C", "U", "B", "steps", "loss", "loss_x", "group")
POSITIVE_COLUMNS = ("N", "D", "C", "U", "B", "steps", "loss", "loss_x")


class DataError(ValueError):
    """Raised for data that cannot be fitted as given; the message says what to change."""


def _row_label(df: pd.DataFrame, mask: np.ndarray) -> str:
    first = df.index[np.flatnonzero(mask)[0]]
    return f"row {first}"


def read_table(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read a DataFrame, a CSV path or a dataset name into a DataFrame.

    Parameters
    ----------
    source : DataFrame, str or Path
        A frame (copied), a path to a CSV file, or the name of a dataset known to
        :func:`bayes_scaling.datasets.load_dataset`.

    Raises
    ------
    DataError
        For a missing file that is not a dataset name either, an empty file, or unparsable CSV.
    """
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if not isinstance(source, (str, Path)):
        raise DataError(f"data must be a DataFrame, a CSV path or a dataset name; got {type(source).__name__}")
    path = Path(source)
    if path.is_file():
        if path.stat().st_size == 0:
            raise DataError(f"data file {str(path)!r} is empty")
        try:
            df = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise DataError(f"data file {str(path)!r} is empty (no header or rows)") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"data file {str(path)!r} is not a readable CSV: {exc}") from None
        return df
    if path.suffix.lower() in (".csv", ".tsv", ".txt") or path.parent != Path("."):
        raise DataError(f"data file {str(path)!r} does not exist")
    from bayes_scaling import datasets  # a dataset name

    try:
        return datasets.load_dataset(str(source))
    except KeyError as exc:
        raise DataError(
            f"{str(source)!r} is neither an existing CSV file nor a known dataset ({exc.args[0]})"
        ) from None


def validate(
    data: str | Path | pd.DataFrame,
    law,
    *,
    group: str | None = None,
    columns: Mapping[str, str] | None = None,
    derive_tokens: bool = False,
    flops_per_token: float = 6.0,
    pooling: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Check data against a law and return a clean frame with canonical columns.

    Parameters
    ----------
    data : DataFrame, str or Path
        The runs, one row each; see :func:`read_table`.
    law : LawSpec
        The law to be fitted: its covariates and target must be present.
    group : str, optional
        Column whose values define groups for hierarchical fits; copied to ``group`` as strings.
    columns : mapping, optional
        Renames from the data's names to canonical ones, e.g. ``{"params": "N", "val_loss": "loss"}``.
    derive_tokens : bool, default False
        Fill a missing ``D`` column as ``C / (flops_per_token * N)``.
    flops_per_token : float, default 6.0
        FLOPs per parameter per token in ``C = k N D``.
    pooling : mapping, optional
        Per-parameter pooling (``"shared"``, ``"pooled"``, ``"independent"``), used to check that
        every group has enough points.

    Returns
    -------
    DataFrame
        The law's covariates, its target and (when grouped) ``group``, as float64 (``group`` as str),
        with the original index kept so rows can be traced back.

    Raises
    ------
    DataError
        Empty data, missing columns, non-numeric or missing values, non-positive sizes or
        losses, groups too small for the requested pooling.
    """
    df = read_table(data)
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError("data is empty: no rows to fit")
    if columns:
        absent = [k for k in columns if k not in df.columns]
        if absent:
            raise DataError(f"column mapping names {absent}, which the data does not have; found columns: {list(df.columns)}")
        bad = [v for v in columns.values() if v not in CANONICAL_COLUMNS]
        if bad:
            raise DataError(f"column mapping targets {bad}; canonical names are {', '.join(CANONICAL_COLUMNS)}")
        df = df.rename(columns=dict(columns))
    if derive_tokens and "D" not in df.columns:
        if not {"C", "N"} <= set(df.columns):
            raise DataError("derive_tokens needs columns 'C' and 'N' to compute D = C / (k N)")
        if not flops_per_token > 0:
            raise DataError(f"flops_per_token must be > 0; got {flops_per_token}")
        c = _numeric(df, "C")
        n = _numeric(df, "N")
        df["D"] = c / (flops_per_token * n)

    needed = list(law.covariates) + [law.target]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        hint = ""
        if "D" in missing and {"C", "N"} <= set(df.columns):
            hint = "; D can be derived from C and N with derive_tokens=True (CLI: --derive-tokens)"
        elif missing:
            hint = "; rename columns with columns={'your_name': 'canonical'} (CLI: --map your_name=canonical)"
        raise DataError(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} "
            f"required by law {law.name!r} (covariates {', '.join(law.covariates)}; target {law.target}); "
            f"found columns: {', '.join(map(str, df.columns))}{hint}"
        )

    out = pd.DataFrame(index=df.index)
    for col in needed:
        values = _numeric(df, col)
        bad = ~np.isfinite(values)
        if bad.any():
            raise DataError(
                f"column {col!r} has {int(bad.sum())} missing or infinite value{'s' if bad.sum() > 1 else ''} "
                f"(first at {_row_label(df, bad)}); remove or fix those rows"
            )
        if col in POSITIVE_COLUMNS:
            nonpos = values <= 0
            if nonpos.any():
                raise DataError(
                    f"column {col!r} must be > 0; found {int(nonpos.sum())} non-positive "
                    f"row{'s' if nonpos.sum() > 1 else ''} (first at {_row_label(df, nonpos)})"
                )
        out[col] = values

    if group is not None:
        if group not in df.columns:
            raise DataError(f"group column {group!r} not found; found columns: {', '.join(map(str, df.columns))}")
        g = df[group]
        if g.isna().any():
            raise DataError(f"group column {group!r} has missing values (first at {_row_label(df, g.isna().to_numpy())})")
        out["group"] = g.astype(str).to_numpy()
        _check_group_sizes(out, group, pooling or {}, law)

    dup = out.duplicated()
    if dup.any():
        warnings.warn(
            f"{int(dup.sum())} duplicated row{'s' if dup.sum() > 1 else ''} (first at {_row_label(out, dup.to_numpy())}); "
            "they are kept and count as separate runs",
            stacklevel=2,
        )
    return out


def _numeric(df: pd.DataFrame, col: str) -> np.ndarray:
    raw = df[col]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna().to_numpy() & raw.notna().to_numpy()
    if bad.any():
        first = df.index[np.flatnonzero(bad)[0]]
        raise DataError(
            f"column {col!r} must be numeric; found {int(bad.sum())} non-numeric "
            f"value{'s' if bad.sum() > 1 else ''} (first at row {first}: {raw.loc[first]!r})"
        )
    return values.to_numpy(dtype=float)


def _check_group_sizes(out: pd.DataFrame, group: str, pooling: Mapping[str, str], law) -> None:
    counts = out["group"].value_counts()
    modes = [pooling.get(p, "pooled") for p in law.param_names]
    if "pooled" in modes and len(counts) < 2:
        raise DataError(
            f"group column {group!r} has a single group ({counts.index[0]!r}); partial pooling needs "
            "at least 2 groups (or fit without --group)"
        )
    n_indep = sum(m == "independent" for m in modes)
    if n_indep:
        need = n_indep + 1
        small = counts[counts < need]
        if len(small):
            raise DataError(
                f"group {small.index[0]!r} of column {group!r} has {int(small.iloc[0])} point"
                f"{'s' if small.iloc[0] != 1 else ''}; {n_indep} independent parameters need at least "
                f"{need} per group (pool them instead, or drop the group)"
            )


def data_hash(df: pd.DataFrame) -> str:
    """A short sha256 of a validated frame's values and column names, recorded with a fit."""
    h = hashlib.sha256()
    h.update(",".join(map(str, df.columns)).encode())
    for col in df.columns:
        h.update(np.ascontiguousarray(df[col].to_numpy().astype(str if col == "group" else float)).tobytes())
    return h.hexdigest()[:16]


_OPS = {"<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater}


def parse_split(df: pd.DataFrame, split) -> np.ndarray:
    """Boolean training mask from ``"C<=1e21"``-style text, a boolean column name or an array.

    Raises
    ------
    DataError
        For text that is not ``COLUMN OP NUMBER``, an unknown column, or a split that leaves
        either side empty.
    """
    if isinstance(split, str):
        for op in ("<=", ">=", "<", ">"):
            if op in split:
                col, _, num = split.partition(op)
                col, num = col.strip(), num.strip()
                if col not in df.columns:
                    raise DataError(f"split {split!r} names column {col!r}, which the data does not have; found: {', '.join(map(str, df.columns))}")
                try:
                    threshold = float(num)
                except ValueError:
                    raise DataError(f"split {split!r}: {num!r} is not a number") from None
                mask = _OPS[op](df[col].to_numpy(dtype=float), threshold)
                break
        else:
            if split in df.columns:
                values = df[split]
                if values.dtype != bool:
                    raise DataError(f"split column {split!r} must be boolean (True = training); found dtype {values.dtype}")
                mask = values.to_numpy()
            else:
                raise DataError(f"split {split!r} must look like 'C<=1e21' (C, N or D with <, <=, >, >=) or name a boolean column")
    else:
        mask = np.asarray(split, dtype=bool)
        if mask.shape != (len(df),):
            raise DataError(f"split mask has shape {mask.shape}; expected ({len(df)},)")
    if mask.all():
        raise DataError(f"split {split!r} leaves no held-out rows: every row is on the training side")
    if not mask.any():
        raise DataError(f"split {split!r} leaves no training rows")
    return mask
