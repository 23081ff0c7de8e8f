"""Loss-to-loss prediction: the law's input table and priors from per-dataset scaling fits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling import data as _data
from bayes_scaling import inference as _inference


def paired_losses(
    data,
    by: str,
    x: str,
    y: str,
    *,
    on: Sequence[str] = ("N", "D"),
    loss: str = "loss",
) -> pd.DataFrame:
    """Pair each model's loss on dataset ``x`` with its loss on dataset ``y``.

    Builds the input of the ``loss_to_loss`` law from a long table: rows of ``by == x`` and
    ``by == y`` that agree on the ``on`` columns (the same model and training run size) become
    one row with ``loss_x`` (the loss on x) and ``loss`` (the loss on y).

    Parameters
    ----------
    data : DataFrame, str or Path
    by : str
        Column naming the dataset of each row (e.g. ``"dataset"``).
    x, y : str
        Values of ``by``: the covariate's dataset and the target's.
    on : sequence of str, default ("N", "D")
        Columns identifying the same model across datasets.
    loss : str, default "loss"

    Returns
    -------
    DataFrame
        Columns ``on``, ``loss_x``, ``loss``.

    Raises
    ------
    DataError
        Missing columns, unknown dataset values, or no pairs.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame(
    ...     {"N": [1, 1, 2], "D": [5, 5, 5], "loss": [3.0, 3.4, 2.9], "ds": ["a", "b", "a"]}
    ... )
    >>> paired_losses(df, "ds", "a", "b").to_dict("records")
    [{'N': 1, 'D': 5, 'loss_x': 3.0, 'loss': 3.4}]
    """
    df = _data.read_table(data)
    missing = [c for c in [by, loss, *on] if c not in df.columns]
    if missing:
        raise _data.DataError(
            f"paired_losses needs columns {missing}; found: {', '.join(map(str, df.columns))}"
        )
    values = set(df[by].astype(str))
    unknown = [v for v in (x, y) if v not in values]
    if unknown:
        raise _data.DataError(f"{by!r} has no rows for {unknown}; its values are {sorted(values)}")
    left = df[df[by].astype(str) == x][[*on, loss]].rename(columns={loss: "loss_x"})
    right = df[df[by].astype(str) == y][[*on, loss]]
    out = left.merge(right, on=list(on), how="inner")
    if out.empty:
        raise _data.DataError(f"no model appears in both {x!r} and {y!r} with equal {list(on)}")
    return out


def loss_to_loss_priors(
    fit_x,
    fit_y=None,
    *,
    group_x: str | None = None,
    group_y: str | None = None,
    widen: float = 1.0,
) -> dict[str, dict[str, Any]]:
    """Priors for ``E_x`` and ``E_y`` of the ``loss_to_loss`` law from two scaling fits.

    Each dataset's irreducible loss ``E`` is taken from its own fit (any law with an ``E``
    parameter), moment-matched on the log scale to a lognormal, as Brandfonbrener et al. take
    ``E_x`` and ``E_y`` from per-dataset scaling laws. Without such priors the two are poorly
    identified from loss pairs alone.

    Parameters
    ----------
    fit_x : InferenceData
        Fit on dataset x (the covariate).
    fit_y : InferenceData, optional
        Fit on dataset y (the target); default ``fit_x`` (one hierarchical fit, two groups).
    group_x, group_y : str, optional
        Group labels in hierarchical fits.
    widen : float, default 1.0
        Multiplies the log-scale sd (e.g. 2 to hedge against a misspecified scaling law).

    Returns
    -------
    dict
        ``{"E_x": {...}, "E_y": {...}}`` for ``fit(..., "loss_to_loss", priors=...)``.

    Examples
    --------
    >>> priors = loss_to_loss_priors(idata, group_x="rw", group_y="owt2")  # doctest: +SKIP
    """
    if not widen > 0:
        raise ValueError(f"widen must be > 0; got {widen!r}")
    fit_y = fit_x if fit_y is None else fit_y
    out = {}
    for name, f, g in (("E_x", fit_x, group_x), ("E_y", fit_y, group_y)):
        law = _inference.fit_spec(f)["law"]
        if "E" not in law.param_names:
            raise ValueError(f"{name}: the fit of law {law.name!r} has no irreducible loss 'E'")
        log_e = np.log(_inference.posterior_draws(f, g)["E"])
        out[name] = {
            "dist": "lognormal",
            "loc": float(log_e.mean()),
            "scale": float(log_e.std(ddof=1) * widen),
        }
    return out
