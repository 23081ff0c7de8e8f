"""Points to predict at, and the law's draws there (per group for hierarchical fits)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from bayes_scaling import data as _data
from bayes_scaling import draws as _draws
from bayes_scaling import inference as _inference
from bayes_scaling import labels as _labels
from bayes_scaling.laws import LawSpec

# the array core's names under this package's former private names (plots and callers use them)
_finite_draws = _draws.finite_draws
_rng_from = _draws.numpy_rng


def map_points(
    frame: pd.DataFrame,
    columns: Mapping[str, str] | None,
    recorded: Mapping[str, str] | None = None,
    group_column: str = "",
) -> pd.DataFrame:
    """Points with the data's column names renamed to canonical ones.

    Parameters
    ----------
    frame : DataFrame
        The points as given.
    columns : mapping, optional
        An explicit mapping (the data's name to a canonical one); every source must be a column.
    recorded : mapping, optional
        The mapping the fit was given (``fit_spec(fit)["columns"]``), used when ``columns`` is
        None: a rename applies where the points have the source and lack the canonical name.
    group_column : str, default ""
        The fit's group column under the data's name; renamed to ``group`` when the points lack
        one.

    Returns
    -------
    DataFrame
    """
    if columns:
        frame = _data.rename_columns(frame, columns)
    elif recorded:
        usable = {
            src: dst
            for src, dst in recorded.items()
            if src in frame.columns and dst not in frame.columns
        }
        frame = _data.rename_columns(frame, usable)
    if group_column and group_column in frame.columns and "group" not in frame.columns:
        frame = frame.rename(columns={group_column: "group"})
    return frame


def _as_frame(points) -> pd.DataFrame:
    """Points given as a frame or a mapping of columns, as a frame."""
    if isinstance(points, pd.DataFrame):
        frame = points
    elif isinstance(points, Mapping):
        try:
            frame = pd.DataFrame({k: np.atleast_1d(np.asarray(v)) for k, v in points.items()})
        except ValueError as exc:
            raise _data.DataError(f"points must be columns of equal length: {exc}") from None
    else:
        raise TypeError(
            f"points must be a DataFrame or a mapping of columns; got {type(points).__name__}"
        )
    return frame


def _validate_points(
    law: LawSpec, points, *, grouped: bool, group
) -> tuple[dict[str, np.ndarray], pd.Index, np.ndarray | None]:
    """Covariates (natural units) and per-point group labels from a frame or mapping."""
    frame = _as_frame(points)
    if len(frame) == 0:
        raise _data.DataError("no points to predict at (points is empty)")
    missing = [c for c in law.covariates if c not in frame.columns]
    if missing:
        hint = ""
        if "D" in missing and {"C", "N"} <= set(frame.columns):
            hint = "; derive it as D = C / (6 N)"
        raise _data.DataError(
            f"points lack covariate{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))} required by "
            f"law {law.name!r} (covariates {', '.join(law.covariates)}); found columns: "
            f"{', '.join(map(str, frame.columns))}{hint}"
        )
    out = {}
    for c in law.covariates:
        values = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            raise _data.DataError(
                f"points column {c!r} has {int(bad.sum())} missing or non-numeric value"
                f"{'s' if bad.sum() > 1 else ''} "
                f"(first at row {frame.index[np.flatnonzero(bad)[0]]})"
            )
        nonpos = values <= 0
        if nonpos.any():
            raise _data.DataError(
                f"points column {c!r} must be > 0 (law {law.name!r} is a function of log {c}); "
                "found "
                f"{int(nonpos.sum())} non-positive value{'s' if nonpos.sum() > 1 else ''} "
                f"(first at row {frame.index[np.flatnonzero(nonpos)[0]]})"
            )
        out[c] = values
    labels = None
    if grouped:
        if group is not None:
            labels = np.full(len(frame), str(group), dtype=object)
        elif "group" in frame.columns:
            labels = _labels.group_strings(frame["group"])
    return out, frame.index, labels


def _law_draws(fit, law: LawSpec, group, log_x, *, seed: int):
    """(S, P) log law values of one group's (or the population's) draws, and the draws."""
    draws = _draws.finite_draws(fit, group, seed=seed)
    return _draws.law_over_draws(law, draws, log_x), draws


def _log_mu_draws(fit, law: LawSpec, covariates, labels, *, seed: int = 0):
    """(S, P) log law values, sigma (S,), nu (S,) or None; per-point group labels when grouped.

    Labels the fit does not know are predicted as a new group drawn from the population.
    """
    info = _inference.fit_spec(fit)
    student = info["likelihood"] == "student_t"
    log_x = {c: np.log(np.asarray(covariates[c], dtype=float)) for c in law.covariates}
    if labels is None:
        mu_all, draws = _law_draws(fit, law, None, log_x, seed=seed)
        return mu_all, draws["sigma"], draws.get("nu") if student else None
    known = list(info["groups"])
    keys = np.asarray([_labels.match_group(g, known) or "new" for g in labels], dtype=object)
    mu: np.ndarray | None = None
    sigma = nu = None
    for g in pd.unique(keys):
        rows = np.flatnonzero(keys == g)
        m, draws = _law_draws(fit, law, g, {k: v[rows] for k, v in log_x.items()}, seed=seed)
        if mu is None:
            mu = np.empty((m.shape[0], keys.size))
        mu[:, rows] = m
        sigma = draws["sigma"]
        nu = draws.get("nu") if student else None
    return mu, sigma, nu
