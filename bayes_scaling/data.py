"""Validation of user data at the boundary: frames or CSVs in, clean canonical frames out.

Canonical column names are ``N`` (parameters), ``D`` (training tokens), ``C`` (training FLOPs),
``U`` (unique tokens), ``B`` (batch size), ``steps``, ``loss``, ``loss_x`` (the loss on another
dataset, the covariate of the loss-to-loss law) and ``group``. Nothing is
dropped: every problem is an error that names the column, the rule and the first offending
row, except exact duplicate rows, which only warn.
"""

from __future__ import annotations

import ast
import hashlib
import operator
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_scaling import labels as _labels
from bayes_scaling._warnings import warn

__all__ = [
    "CANONICAL_COLUMNS",
    "DataError",
    "data_hash",
    "parse_split",
    "read_table",
    "rename_columns",
    "select_rows",
    "validate",
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
        raise DataError(
            f"data must be a DataFrame, a CSV path or a dataset name; got {type(source).__name__}"
        )
    path = Path(source)
    if path.is_dir():
        raise DataError(f"data {str(path)!r} is a directory; give a CSV file or a dataset name")
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
        Renames from the data's names to canonical ones, e.g.
        ``{"params": "N", "val_loss": "loss"}``.
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
        The law's covariates, its target and (when grouped) ``group``, as float64 (``group`` as
        str),
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
    df = rename_columns(df, columns)
    if derive_tokens and "D" not in df.columns:
        df["D"] = _derived_tokens(df, flops_per_token)
    needed = [*law.covariates, law.target]
    _check_present(df, needed, law)
    out = pd.DataFrame(index=df.index)
    for col in needed:
        out[col] = _checked_column(df, col)
    if group is not None:
        out["group"] = _group_labels(df, group)
        _check_group_sizes(out, group, pooling or {}, law)
    _warn_suspicious(out, law)
    return out


def rename_columns(df: pd.DataFrame, columns: Mapping[str, str] | None) -> pd.DataFrame:
    """Rename the data's columns to canonical names, refusing a mapping that would collide.

    Raises
    ------
    DataError
        For a source column the data lacks, a target that is not canonical, two sources mapped
        to one target, or a target that already exists as another column.
    """
    if not columns:
        return df
    absent = [k for k in columns if k not in df.columns]
    if absent:
        raise DataError(
            f"column mapping names {absent}, which the data does not have; found columns: "
            f"{list(df.columns)}"
        )
    bad = [v for v in columns.values() if v not in CANONICAL_COLUMNS]
    if bad:
        raise DataError(
            f"column mapping targets {bad}; canonical names are {', '.join(CANONICAL_COLUMNS)}"
        )
    targets = list(columns.values())
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise DataError(
            f"column mapping sends several columns to {twice}; map one column to each name"
        )
    clash = [
        f"{src}={dst}"
        for src, dst in columns.items()
        if dst != src and dst in df.columns and dst not in columns
    ]
    if clash:
        raise DataError(
            f"column mapping {', '.join(clash)} would make a second column named "
            f"{clash[0].split('=')[1]!r}: the data already has one (drop or rename it first, or "
            "leave it unmapped)"
        )
    return df.rename(columns=dict(columns))


def _derived_tokens(df: pd.DataFrame, flops_per_token: float) -> np.ndarray:
    if not {"C", "N"} <= set(df.columns):
        raise DataError("derive_tokens needs columns 'C' and 'N' to compute D = C / (k N)")
    if not flops_per_token > 0:
        raise DataError(f"flops_per_token must be > 0; got {flops_per_token}")
    return _numeric(df, "C") / (flops_per_token * _numeric(df, "N"))


def _check_present(df: pd.DataFrame, needed: list[str], law) -> None:
    missing = [c for c in needed if c not in df.columns]
    if not missing:
        return
    if "D" in missing and {"C", "N"} <= set(df.columns):
        hint = "; D can be derived from C and N with derive_tokens=True"
    else:
        hint = "; rename columns with columns={'your_name': 'canonical'}"
    raise DataError(
        f"missing column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} "
        f"required by law {law.name!r} (covariates {', '.join(law.covariates)}; target "
        f"{law.target}); found columns: {', '.join(map(str, df.columns))}{hint}"
    )


def _checked_column(df: pd.DataFrame, col: str) -> np.ndarray:
    values = _numeric(df, col)
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(
            f"column {col!r} has {int(bad.sum())} missing or infinite "
            f"value{'s' if bad.sum() > 1 else ''} (first at {_row_label(df, bad)}); remove or fix "
            "those rows"
        )
    if col in POSITIVE_COLUMNS:
        nonpos = values <= 0
        if nonpos.any():
            raise DataError(
                f"column {col!r} must be > 0; found {int(nonpos.sum())} non-positive "
                f"row{'s' if nonpos.sum() > 1 else ''} (first at {_row_label(df, nonpos)})"
            )
    return values


def _group_labels(df: pd.DataFrame, group: str) -> np.ndarray:
    if group not in df.columns:
        raise DataError(
            f"group column {group!r} not found; found columns: {', '.join(map(str, df.columns))}"
        )
    g = df[group]
    if g.isna().any():
        raise DataError(
            f"group column {group!r} has missing values (first at "
            f"{_row_label(df, g.isna().to_numpy())})"
        )
    return _labels.group_strings(g)


# Cross-entropy losses of language models lie between about 0.5 and 11 nats per token (a uniform
# guess over a 50k vocabulary is ln 50257 = 10.8); far outside that range the unit is likely wrong.
LOSS_PLAUSIBLE_RANGE = (1e-3, 20.0)


def _warn_suspicious(out: pd.DataFrame, law) -> None:
    """Warnings for data that fits but probably not as meant: duplicates, implausible units."""
    dup = out.duplicated()
    if dup.any():
        warn(
            f"{int(dup.sum())} duplicated row{'s' if dup.sum() > 1 else ''} (first at "
            f"{_row_label(out, dup.to_numpy())}); they are kept and count as separate runs"
        )
    if law.target == "loss":
        lo, hi = LOSS_PLAUSIBLE_RANGE
        loss = out["loss"].to_numpy()
        if loss.max() > hi or loss.min() < lo:
            warn(
                f"losses range from {loss.min():.3g} to {loss.max():.3g}, outside the usual "
                f"{lo:g}-{hi:g} nats per token of language-model losses; check the unit (bits, "
                "perplexity, a percentage, a scale factor)"
            )


def _refuse_dtype(raw: pd.Series, col: str) -> None:
    """Refuse columns whose values are not real numbers, even where pandas would convert them."""
    kind = None
    if pd.api.types.is_bool_dtype(raw.dtype):
        kind = "boolean"
    elif pd.api.types.is_datetime64_any_dtype(raw.dtype) or isinstance(raw.dtype, pd.PeriodDtype):
        kind = "date/time"
    elif pd.api.types.is_timedelta64_dtype(raw.dtype):
        kind = "time-interval"
    elif pd.api.types.is_complex_dtype(raw.dtype):
        kind = "complex"
    elif raw.dtype == object:
        odd = raw.map(
            lambda v: isinstance(
                v, (bool, np.bool_, complex, np.complexfloating, pd.Timestamp, pd.Timedelta)
            )
        )
        if odd.any():
            first = raw.index[np.flatnonzero(odd.to_numpy())[0]]
            raise DataError(
                f"column {col!r} must hold real numbers; found {type(raw.loc[first]).__name__} "
                f"{raw.loc[first]!r} (first at row {first})"
            )
    if kind is not None:
        raise DataError(
            f"column {col!r} must hold real numbers; found {kind} values (dtype {raw.dtype})"
        )


def _numeric(df: pd.DataFrame, col: str) -> np.ndarray:
    raw = df[col]
    if isinstance(raw, pd.DataFrame):
        raise DataError(f"the data has {raw.shape[1]} columns named {col!r}; keep one")
    _refuse_dtype(raw, col)
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
            f"group column {group!r} has a single group ({counts.index[0]!r}); partial pooling "
            "needs at least 2 groups (or fit without --group)"
        )
    n_indep = sum(m == "independent" for m in modes)
    if n_indep:
        need = n_indep + 1
        small = counts[counts < need]
        if len(small):
            raise DataError(
                f"group {small.index[0]!r} of column {group!r} has {int(small.iloc[0])} "
                f"point{'s' if small.iloc[0] != 1 else ''}; {n_indep} independent parameters need "
                f"at least {need} per group (pool them instead, or drop the group)"
            )


def data_hash(df: pd.DataFrame) -> str:
    """A short sha256 of a validated frame's values and column names, recorded with a fit."""
    h = hashlib.sha256()
    h.update(",".join(map(str, df.columns)).encode())
    for col in df.columns:
        h.update(
            np.ascontiguousarray(
                df[col].to_numpy().astype(str if col == "group" else float)
            ).tobytes()
        )
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
                    raise DataError(
                        f"split {split!r} names column {col!r}, which the data does not have; "
                        f"found: {', '.join(map(str, df.columns))}"
                    )
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
                    raise DataError(
                        f"split column {split!r} must be boolean (True = training); found dtype "
                        f"{values.dtype}"
                    )
                mask = values.to_numpy()
            else:
                raise DataError(
                    f"split {split!r} must look like 'C<=1e21' (C, N or D with <, <=, >, >=) or "
                    "name a boolean column"
                )
    else:
        mask = np.asarray(split, dtype=bool)
        if mask.shape != (len(df),):
            raise DataError(f"split mask has shape {mask.shape}; expected ({len(df)},)")
    if mask.all():
        raise DataError(
            f"split {split!r} leaves no held-out rows: every row is on the training side"
        )
    if not mask.any():
        raise DataError(f"split {split!r} leaves no training rows")
    return mask


# --------------------------------------------------------------------------- row selection

_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ARITH = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
}
_QUERY_HELP = (
    "a query compares columns with numbers or quoted strings, e.g. \"dataset == 'rw' and N >= "
    '1e8"; '
    "it may use and, or, not, ==, !=, <, <=, >, >=, in [...], + - * / ** and `quoted column names`"
)


def select_rows(df: pd.DataFrame, query: str) -> pd.DataFrame:
    """Rows of ``df`` where a comparison expression over its columns holds.

    The expression language is a small, safe subset of pandas' ``DataFrame.query``: column names
    (backtick-quoted when they are not identifiers), numbers, strings, ``True``/``False``,
    lists of those, comparisons (chained too), ``in``/``not in``, ``and``/``or``/``not`` (or
    ``&``/``|``/``~``) and arithmetic. Names of anything but columns, attribute access, calls,
    indexing and ``@`` variables are refused, so no text can run code.

    Raises
    ------
    DataError
        For an expression outside that language, an unknown column, a result that is not a
        row mask, or one that selects no rows.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"N": [1e8, 1e9], "dataset": ["rw", "c4"]})
    >>> select_rows(df, "dataset == 'c4' and N > 1e8")["N"].tolist()
    [1000000000.0]
    """
    if not isinstance(query, str) or not query.strip():
        raise DataError(f"query must be a non-empty expression; got {query!r}")
    names: dict[str, str] = {}

    def _quoted(m: re.Match) -> str:
        key = f"__column_{len(names)}"
        names[key] = m.group(1)
        return key

    text = re.sub(r"`([^`]*)`", _quoted, query.strip())
    # as in pandas, & and | bind like `and` and `or` (looser than comparisons); strings are kept
    parts = re.split(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""", text)
    text = "".join(
        p if i % 2 else p.replace("&", " and ").replace("|", " or ") for i, p in enumerate(parts)
    )
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):  # ValueError: a null byte in the text
        raise DataError(f"query {query!r} is not a valid expression; {_QUERY_HELP}") from None
    try:
        mask = _QueryEval(df, names, query).visit(tree.body)
    except (ArithmeticError, TypeError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"query {query!r} cannot be evaluated: {exc}") from None
    if not isinstance(mask, pd.Series) or not pd.api.types.is_bool_dtype(mask.dtype):
        raise DataError(f"query {query!r} does not give True/False per row; {_QUERY_HELP}")
    selected = df[mask.to_numpy()]
    if selected.empty:
        raise DataError(f"query {query!r} selects no rows")
    return selected


class _QueryEval(ast.NodeVisitor):
    """Evaluates the whitelisted nodes of a query; any other node is refused."""

    def __init__(self, df: pd.DataFrame, quoted: Mapping[str, str], query: str):
        self.df, self.quoted, self.query = df, quoted, query

    def generic_visit(self, node):
        raise DataError(
            f"query {self.query!r} uses {type(node).__name__.lower()} syntax, which is not "
            f"allowed; {_QUERY_HELP}"
        )

    def visit_Name(self, node: ast.Name):
        name = self.quoted.get(node.id, node.id)
        if name in self.df.columns:
            return self.df[name]
        raise DataError(
            f"query {self.query!r} names {name!r}, which is not a column; found columns: "
            f"{', '.join(map(str, self.df.columns))}"
        )

    def visit_Constant(self, node: ast.Constant):
        if isinstance(node.value, (bool, str)):
            return node.value
        if isinstance(node.value, (int, float)):
            return float(node.value)  # no unbounded integer arithmetic
        return self.generic_visit(node)

    def visit_List(self, node: ast.List | ast.Tuple):
        values = [self.visit(e) for e in node.elts]
        if any(isinstance(v, pd.Series) for v in values):
            raise DataError(f"query {self.query!r}: a list may hold only numbers and strings")
        return values

    visit_Tuple = visit_List

    def visit_UnaryOp(self, node: ast.UnaryOp):
        value = self.visit(node.operand)
        if isinstance(node.op, (ast.Not, ast.Invert)):
            return ~value if isinstance(value, pd.Series) else not value
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return value
        return self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp):
        values = [self.visit(v) for v in node.values]
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        out = values[0]
        for v in values[1:]:
            out = combine(out, v)
        return out

    def visit_BinOp(self, node: ast.BinOp):
        op = _ARITH.get(type(node.op))
        if op is None:
            return self.generic_visit(node)
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(left, str) or isinstance(right, str):
            raise DataError(
                f"query {self.query!r}: strings can only be compared, not combined with arithmetic"
            )
        return op(left, right)

    def visit_Compare(self, node: ast.Compare):
        left, result = self.visit(node.left), None
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.visit(right_node)
            if isinstance(op_node, (ast.In, ast.NotIn)):
                if not isinstance(left, pd.Series) or not isinstance(right, list):
                    raise DataError(f"query {self.query!r}: use 'column in [values]'")
                part = left.isin(right)
                part = ~part if isinstance(op_node, ast.NotIn) else part
            elif type(op_node) in _COMPARE:
                part = _COMPARE[type(op_node)](left, right)
            else:
                return self.generic_visit(op_node)
            result = part if result is None else result & part
            left = right
        return result
