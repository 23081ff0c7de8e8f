"""Comparing laws and groups: PSIS-LOO, leave-future-out, stacking, contrasts between groups.

Two questions users bring:

* *Which law describes my runs best?* :func:`compare_laws` fits each law to the same rows and
  ranks them by PSIS-LOO (ArviZ) and by a leave-future-out score (fit on the lower-compute
  part, score the held-out higher-compute part by its log predictive density), with standard
  errors of the differences, stacking weights and a model-averaged prediction
  (:func:`model_average`).
* *Does dataset A scale better than dataset B?* :func:`contrast` reads a hierarchical fit and
  gives the posterior of the difference (or ratio) of a parameter, or of a derived quantity
  (compute-optimal exponent, compute-optimal loss at a budget, the compute at which two
  curves cross), between groups, with P(difference > 0) and an optional region of practical
  equivalence (ROPE). :func:`contrast_plot_data` returns the numbers a figure needs.
* *What will the loss on dataset y be, given the loss on x?* The ``loss_to_loss`` law
  (:mod:`bayes_scaling.laws`) with :func:`paired_losses` (its input table) and
  :func:`loss_to_loss_priors` (``E_x``, ``E_y`` from each dataset's scaling fit).

All scores are on the log scale of the target (log loss), the scale the likelihood is on, so
elpd values of different laws fitted to the same rows are comparable.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats as _stats
from scipy.special import logsumexp

from bayes_scaling import data as _data
from bayes_scaling import inference as _inference
from bayes_scaling.laws import LawSpec, get_law

__all__ = [
    "DERIVED_QUANTITIES",
    "Contrast",
    "LawComparison",
    "compare_laws",
    "contrast",
    "contrast_plot_data",
    "future_split",
    "log_predictive_density",
    "loss_to_loss_priors",
    "model_average",
    "model_average_draws",
    "optimal_loss",
    "paired_losses",
    "stacking_weights",
]

DEFAULT_LAWS = ("chinchilla", "kaplan", "power_law")
DERIVED_QUANTITIES = {
    "a": "compute-optimal exponent a in N*(C) ~ C^a: beta/(alpha+beta) (Chinchilla), "
    "alpha_D/(alpha_N+alpha_D) (Kaplan)",
    "loss": "predicted loss: compute-optimal at compute=C (laws over N and D, or over C), or at "
    "covariates at={...}",
    "crossing": "compute at which two groups' compute-optimal loss curves cross",
}
_SUFFIX = "; see bayes_scaling.compare.DERIVED_QUANTITIES"


# =========================================================================== data for comparisons


def _law_pooling(spec: LawSpec, pooling, grouped: bool):
    """The part of a comparison-wide pooling request that applies to one law."""
    if not grouped or pooling is None or isinstance(pooling, str):
        return pooling
    return {k: v for k, v in pooling.items() if k in spec.param_names} or None


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
    notes: list[str] = []
    df = _data.rename_columns(_data.read_table(data), columns)
    names = {c for s in specs for c in s.covariates}
    if derive_tokens and "D" not in df.columns and {"C", "N"} <= set(df.columns):
        df["D"] = _data._numeric(df, "C") / (flops_per_token * _data._numeric(df, "N"))
        notes.append(f"D derived as C / ({flops_per_token:g} N)")
    if "C" in names and "C" not in df.columns and derive_compute and {"N", "D"} <= set(df.columns):
        df["C"] = flops_per_token * _data._numeric(df, "N") * _data._numeric(df, "D")
        notes.append(f"C derived as {flops_per_token:g} N D (the data has no C column)")
    if isinstance(pooling, Mapping):
        all_params = {p for s in specs for p in s.param_names}
        unknown = sorted(set(pooling) - all_params)
        if unknown:
            raise ValueError(
                f"pooling names {unknown}, which none of the laws has; their parameters: {sorted(all_params)}"
            )
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
            try:
                out[col] = _data._checked_column(df.loc[out.index], col)
            except _data.DataError:
                pass  # unusable values: a split on this column reports it as absent
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
    # lowest threshold whose held-out side (values >= t) has at most `want` rows; at least the top level
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
                f"split column {column!r} not found; found columns: {', '.join(map(str, frame.columns))}"
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


# =========================================================================== predictive densities


def _draws_for(fit, group: str | None, labels: Sequence[str]) -> dict[str, np.ndarray]:
    if group is not None and group not in labels:
        group = "new"  # a group the fit has not seen: drawn from the population
    return _inference.posterior_draws(fit, group)


def _log_mu(
    spec: LawSpec, draws: Mapping[str, np.ndarray], covariates: Mapping[str, np.ndarray]
) -> np.ndarray:
    """(S, n) log target for each draw at covariates given in natural units."""
    params = {k: jnp.asarray(draws[k]) for k in spec.param_names}
    x = {k: jnp.log(jnp.asarray(np.asarray(covariates[k], dtype=float))) for k in spec.covariates}
    out = jax.vmap(lambda p: spec.fn(p, x))(params)
    return np.asarray(out, dtype=float)


def _noise_logpdf(
    y: np.ndarray, mu: np.ndarray, draws: Mapping[str, np.ndarray], likelihood: str
) -> np.ndarray:
    sigma = draws["sigma"][:, None]
    if likelihood == "student_t":
        return _stats.t.logpdf(y[None, :], draws["nu"][:, None], loc=mu, scale=sigma)
    return _stats.norm.logpdf(y[None, :], loc=mu, scale=sigma)


def log_predictive_density(
    fit, frame: pd.DataFrame, *, pointwise_draws: bool = False
) -> np.ndarray:
    """Pointwise log predictive density of new rows under a fit.

    ``lpd_i = log( mean_s p(log y_i | theta_s) )`` with the fit's likelihood (Student-t or
    normal on the log target), averaging over the posterior draws ``theta_s``.

    Parameters
    ----------
    fit : InferenceData
        A fit from :func:`bayes_scaling.inference.fit`.
    frame : DataFrame
        Canonical columns: the law's covariates, its target and, for grouped fits, ``group``.
        Groups the fit has not seen are scored with parameters drawn from the population.
    pointwise_draws : bool, default False
        Return the ``(S, n)`` matrix of ``log p(log y_i | theta_s)`` instead.

    Returns
    -------
    ndarray
        ``(n,)`` log predictive densities (or ``(S, n)`` when ``pointwise_draws``).

    Raises
    ------
    DataError
        When the frame lacks a column the law needs.
    """
    info = _inference.fit_spec(fit)
    spec: LawSpec = info["law"]
    labels = info["groups"]
    needed = list(spec.covariates) + [spec.target] + (["group"] if labels else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise _data.DataError(
            f"rows to score lack columns {missing} needed by the fit of law {spec.name!r}"
        )
    y = np.log(frame[spec.target].to_numpy(dtype=float))
    keys = (
        frame["group"].astype(str).to_numpy() if labels else np.full(len(frame), None, dtype=object)
    )
    out = None
    for g in pd.unique(keys):
        rows = np.flatnonzero(keys == g)
        draws = _draws_for(fit, g, labels)
        mu = _log_mu(
            spec, draws, {c: frame[c].to_numpy(dtype=float)[rows] for c in spec.covariates}
        )
        logp = _noise_logpdf(y[rows], mu, draws, info["likelihood"])
        if out is None:
            out = np.empty((logp.shape[0], len(frame)))
        out[:, rows] = logp
    assert out is not None
    if pointwise_draws:
        return out
    return logsumexp(out, axis=0) - math.log(out.shape[0])


# =========================================================================== law comparison


@dataclasses.dataclass(frozen=True)
class LawComparison:
    """The result of :func:`compare_laws`.

    Attributes
    ----------
    table : DataFrame
        One row per law, best PSIS-LOO first: ``rank``, ``elpd_loo``, ``se``, ``p_loo``,
        ``elpd_diff`` and ``dse`` (difference from the best law and its standard error),
        ``weight`` (stacking), ``pareto_k_max``, ``bad_k`` (points with Pareto k above ArviZ's
        threshold), and when leave-future-out ran ``lfo_elpd``, ``lfo_se``, ``lfo_diff``,
        ``lfo_dse`` (difference from the best law by that score), ``lfo_rank``, ``lfo_rmse``
        (root mean squared error of the posterior-mean log prediction on the held-out rows),
        ``lfo_weight`` (stacking weights on the held-out densities).
    fits : dict of str to InferenceData
        Fits on all rows, per law.
    loo : dict of str to arviz.ELPDData
    future_fits : dict of str to InferenceData
        Fits on the training part (empty when leave-future-out did not run).
    future_lpd : DataFrame
        Pointwise held-out log predictive densities, one column per law.
    frame : DataFrame
        The rows every law was fitted to (canonical columns).
    train_mask : ndarray of bool or None
        Training rows of the leave-future-out split.
    notes : list of str
        What was derived or assumed (e.g. ``C`` computed as 6 N D).
    """

    table: pd.DataFrame
    fits: dict[str, Any]
    loo: dict[str, Any]
    future_fits: dict[str, Any]
    future_lpd: pd.DataFrame
    frame: pd.DataFrame
    train_mask: np.ndarray | None
    notes: list[str]
    group: str | None = None

    @property
    def weights(self) -> pd.Series:
        """Stacking weights per law (they sum to 1)."""
        return self.table["weight"]

    @property
    def split(self) -> dict[str, Any] | None:
        """Leave-future-out split: rows on each side and the compute boundary."""
        if self.train_mask is None:
            return None
        axis = _future_axis(self.frame, None)
        return {
            "train_points": int(self.train_mask.sum()),
            "test_points": int((~self.train_mask).sum()),
            "train_max": float(axis[self.train_mask].max()),
            "test_min": float(axis[~self.train_mask].min()),
            "axis": "C"
            if "C" in self.frame.columns
            else ("N*D" if {"N", "D"} <= set(self.frame.columns) else "first covariate"),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: the table, the split, the notes."""
        table = self.table.reset_index().rename(columns={"index": "law"})
        return {
            "laws": json.loads(table.to_json(orient="records")),
            "score_scale": "log predictive density of the log target (higher is better)",
            "points": len(self.frame),
            "leave_future_out": self.split,
            "notes": list(self.notes),
        }


def compare_laws(
    data,
    laws: Sequence[str | LawSpec] = DEFAULT_LAWS,
    *,
    group: str | None = None,
    pooling: None | str | Mapping[str, str] = None,
    priors: Mapping[str, Any] | None = None,
    likelihood: str = "student_t",
    holdout: float | str | np.ndarray | None = 0.2,
    split_column: str | None = None,
    method: str = "stacking",
    columns: Mapping[str, str] | None = None,
    derive_tokens: bool = False,
    derive_compute: bool = True,
    flops_per_token: float = 6.0,
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 1000,
    target_accept_prob: float = 0.9,
    seed: int = 0,
    fit_method: str = "nuts",
) -> LawComparison:
    """Fit several laws to the same rows and rank them by PSIS-LOO and leave-future-out.

    Parameters
    ----------
    data : DataFrame, str or Path
        Runs (a frame, a CSV path or a dataset name).
    laws : sequence of str or LawSpec, default ("chinchilla", "kaplan", "power_law")
        At least two laws with the same target. ``power_law`` is over compute ``C``.
    group : str, optional
        Column for hierarchical fits (the same for every law).
    pooling : None, str or mapping
        As in :func:`bayes_scaling.inference.fit`; a mapping applies to the laws that have the
        named parameter (a name no law has is an error).
    priors : mapping of law name to priors, optional
        Overrides per law (anything :func:`~bayes_scaling.inference.fit` takes as ``priors``).
    likelihood : {"student_t", "normal"}
    holdout : float, str, boolean array or None, default 0.2
        Leave-future-out split: the fraction of rows with the largest compute to hold out, a
        split such as ``"C<=1e21"`` (training side), or a boolean training mask. ``None``
        skips leave-future-out (half the fits).
    split_column : str, optional
        Column that orders the "future" (default ``C``; see :func:`future_split`).
    method : {"stacking", "BB-pseudo-BMA", "pseudo-BMA"}, default "stacking"
        Weights, as in :func:`arviz.compare`.
    columns : mapping, optional
        Renames to canonical columns.
    derive_tokens : bool, default False
        Compute a missing ``D`` as ``C / (flops_per_token N)``.
    derive_compute : bool, default True
        When a law reads ``C`` and the data has ``N`` and ``D`` but no ``C``, use
        ``C = flops_per_token N D`` (the dense-transformer estimate; recorded in ``notes``).
    flops_per_token : float, default 6.0
    num_chains, num_warmup, num_samples, target_accept_prob, seed
        NUTS budget and seed, the same for every fit.
    fit_method : {"nuts", "laplace"}, default "nuts"
        Posterior of every fit: NUTS, or Gaussian draws at the mode (a quick look; PSIS-LOO on
        Laplace draws inherits the approximation). CLI ``compare --method``.

    Returns
    -------
    LawComparison

    Raises
    ------
    DataError
        Before any fit, when a law's covariates or target are not in the data (the message
        names the law and the missing column), or for other bad data.
    ValueError
        Fewer than two laws, a repeated law, laws with different targets.
    KeyError
        An unknown law name.

    Warns
    -----
    UserWarning
        When PSIS-LOO finds points with Pareto k above the threshold (the estimate for them is
        unreliable), naming the law, the points and what to do.

    Notes
    -----
    PSIS-LOO (Vehtari, Gelman, Gabry 2017) estimates the expected log predictive density of a
    new point *like those observed*; the leave-future-out score asks the scaling question
    directly: fitted to the cheaper runs, how well does each law predict the expensive ones?
    Its standard errors treat held-out points as independent; extrapolation errors are
    correlated across neighbouring compute budgets, so read them as lower bounds.
    Stacking weights (Yao et al. 2018) combine the laws' predictive distributions; see
    :func:`model_average`.

    References
    ----------
    Vehtari, Gelman, Gabry 2017, "Practical Bayesian model evaluation using leave-one-out
    cross-validation and WAIC", Statistics and Computing. Yao, Vehtari, Simpson, Gelman 2018,
    "Using stacking to average Bayesian predictive distributions", Bayesian Analysis.
    Bürkner, Gabry, Vehtari 2020, "Approximate leave-future-out cross-validation for Bayesian
    time series models".

    Examples
    --------
    >>> from bayes_scaling.compare import compare_laws
    >>> result = compare_laws("demo", ["chinchilla", "power_law"], num_chains=2,
    ...                       num_warmup=300, num_samples=300)  # doctest: +SKIP
    >>> result.table[["elpd_loo", "elpd_diff", "dse", "weight", "lfo_elpd"]]  # doctest: +SKIP
    """
    import arviz as az

    if isinstance(laws, (str, LawSpec)):
        laws = [laws]
    specs = [get_law(law) for law in laws]
    names = [s.name for s in specs]
    if len(specs) < 2:
        raise ValueError(f"compare_laws needs at least two laws; got {names}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"laws {dup} are listed more than once")
    targets = {s.target for s in specs}
    if len(targets) > 1:
        raise ValueError(
            "laws with different targets cannot be compared on one score: "
            + ", ".join(f"{s.name} predicts {s.target}" for s in specs)
        )
    priors = dict(priors or {})
    unknown = sorted(set(priors) - set(names))
    if unknown:
        raise ValueError(
            f"priors given for {unknown}, which are not among the compared laws {names}"
        )
    if method not in ("stacking", "BB-pseudo-BMA", "pseudo-BMA"):
        raise ValueError(
            f"unknown weighting method {method!r}; expected stacking, BB-pseudo-BMA or pseudo-BMA"
        )

    frame, notes = _common_frame(
        data,
        specs,
        group=group,
        pooling=pooling,
        columns=columns,
        derive_tokens=derive_tokens,
        derive_compute=derive_compute,
        flops_per_token=flops_per_token,
    )
    train_mask = None
    if holdout is not None:
        train_mask = future_split(frame, holdout, column=split_column)

    grouped = group is not None
    fit_kwargs = {
        "group": "group" if grouped else None,
        "likelihood": likelihood,
        "num_chains": num_chains,
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "target_accept_prob": target_accept_prob,
        "prior_samples": 0,
        "pad_to": len(frame),  # a law's fits to all runs and to the past share one program
        "method": fit_method,
    }

    def run(spec: LawSpec, rows: pd.DataFrame, label: str, key):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            idata = _inference.fit(
                rows,
                spec,
                priors=priors.get(spec.name),
                pooling=_law_pooling(spec, pooling, grouped),
                rng_key=key,
                **fit_kwargs,
            )
        for w in caught:  # re-raise the sampler's diagnostics, saying which fit they are about
            warnings.warn(f"{w.message} [law {spec.name}, {label}]", w.category, stacklevel=3)
        return idata

    keys = jax.random.split(jax.random.PRNGKey(seed), 2 * len(specs))
    fits, loos = {}, {}
    for i, spec in enumerate(specs):
        fits[spec.name] = run(spec, frame, f"fit to all {len(frame)} points", keys[2 * i])
        loos[spec.name] = _loo_with_advice(az, fits[spec.name], spec.name, frame)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside arviz.compare
        table = az.compare(loos, ic="loo", method=method, seed=seed)
    table = table.drop(columns=[c for c in ("warning", "scale") if c in table.columns])
    table["pareto_k_max"] = [float(np.max(loos[n].pareto_k)) for n in table.index]
    table["bad_k"] = [
        int(np.sum(np.asarray(loos[n].pareto_k) > loos[n].good_k)) for n in table.index
    ]

    future_fits: dict[str, Any] = {}
    lpd = pd.DataFrame(index=frame.index[~train_mask] if train_mask is not None else [])
    if train_mask is not None:
        train, test = frame[train_mask], frame[~train_mask]
        rmse = {}
        for i, spec in enumerate(specs):
            idata = run(
                spec, train, f"leave-future-out fit to {len(train)} points", keys[2 * i + 1]
            )
            future_fits[spec.name] = idata
            lpd[spec.name] = log_predictive_density(idata, test)
            rmse[spec.name] = _rmse(idata, test)
        _add_future_columns(table, lpd, rmse)
    table.index.name = "law"
    return LawComparison(
        table=table,
        fits=fits,
        loo=loos,
        future_fits=future_fits,
        future_lpd=lpd,
        frame=frame,
        train_mask=train_mask,
        notes=notes,
        group=group,
    )


def _loo_with_advice(az, idata, law: str, frame: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arviz's own Pareto-k message; ours below says what to do
        loo = az.loo(idata, pointwise=True)
    k = np.asarray(loo.pareto_k)
    bad = np.flatnonzero(k > loo.good_k)
    if bad.size:
        first = int(bad[np.argmax(k[bad])])
        where = ", ".join(f"{c}={frame[c].iloc[first]:.4g}" for c in frame.columns if c != "group")
        warnings.warn(
            f"PSIS-LOO for law {law!r}: {bad.size} of {k.size} points have Pareto k > {loo.good_k:.2f} "
            f"(max {k.max():.2f} at row {frame.index[first]}: {where}); their LOO terms are unreliable, "
            "so this law's elpd_loo and its SE are too optimistic. These points are highly "
            "influential: check them for outliers or runs from another setup, keep the Student-t "
            "likelihood (robust to outliers), draw more samples (the threshold rises with the draw "
            "count), or rely on exact refits without them / the leave-future-out score.",
            UserWarning,
            stacklevel=3,
        )
    return loo


def _rmse(idata, test: pd.DataFrame) -> float:
    info = _inference.fit_spec(idata)
    spec = info["law"]
    labels = info["groups"]
    y = np.log(test[spec.target].to_numpy(dtype=float))
    pred = np.empty(len(test))
    keys = (
        test["group"].astype(str).to_numpy() if labels else np.full(len(test), None, dtype=object)
    )
    for g in pd.unique(keys):
        rows = np.flatnonzero(keys == g)
        mu = _log_mu(
            spec,
            _draws_for(idata, g, labels),
            {c: test[c].to_numpy(dtype=float)[rows] for c in spec.covariates},
        )
        pred[rows] = mu.mean(axis=0)
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def _add_future_columns(table: pd.DataFrame, lpd: pd.DataFrame, rmse: Mapping[str, float]) -> None:
    n = len(lpd)
    elpd = lpd.sum(axis=0)
    best = elpd.idxmax()
    for name in table.index:
        table.loc[name, "lfo_elpd"] = float(elpd[name])
        table.loc[name, "lfo_se"] = (
            float(np.sqrt(n * lpd[name].var(ddof=1))) if n > 1 else float("nan")
        )
        diff = lpd[best] - lpd[name]
        table.loc[name, "lfo_diff"] = float(diff.sum())
        table.loc[name, "lfo_dse"] = float(np.sqrt(n * diff.var(ddof=1))) if n > 1 else float("nan")
        table.loc[name, "lfo_rmse"] = float(rmse[name])
    table["lfo_rank"] = table["lfo_elpd"].rank(ascending=False, method="min").astype(int) - 1
    weights = stacking_weights(lpd[list(table.index)].to_numpy())
    table["lfo_weight"] = weights


def stacking_weights(lpd: np.ndarray) -> np.ndarray:
    """Stacking weights from a pointwise log predictive density matrix.

    Maximises ``sum_i log sum_k w_k exp(lpd[i, k])`` over the simplex (Yao et al. 2018), with
    ``w = softmax(z)`` and L-BFGS. :func:`compare_laws` applies it to the held-out
    leave-future-out densities (``lfo_weight``); PSIS-LOO weights come from ArviZ.

    Parameters
    ----------
    lpd : ndarray of shape (points, models)

    Returns
    -------
    ndarray of shape (models,)
        Non-negative weights summing to 1.

    Examples
    --------
    >>> import numpy as np
    >>> stacking_weights(np.array([[0.0, -5.0], [0.0, -5.0]])).round(3).tolist()
    [1.0, 0.0]
    """
    from scipy.optimize import minimize

    lpd = np.asarray(lpd, dtype=float)
    if lpd.ndim != 2 or lpd.shape[1] < 1:
        raise ValueError(f"lpd must be a (points, models) matrix; got shape {lpd.shape}")
    k = lpd.shape[1]
    if k == 1:
        return np.ones(1)
    shifted = lpd - lpd.max(axis=1, keepdims=True)

    def objective(z):
        logw = z - logsumexp(z)
        mix = logsumexp(shifted + logw[None, :], axis=1)
        w = np.exp(logw)
        resp = np.exp(
            shifted + logw[None, :] - mix[:, None]
        )  # (n, k) posterior model responsibilities
        grad = -(resp.sum(axis=0) - lpd.shape[0] * w)
        return -mix.sum(), grad

    res = minimize(objective, np.zeros(k), jac=True, method="L-BFGS-B")
    w = np.exp(res.x - logsumexp(res.x))
    w[w < 1e-9] = 0.0
    return w / w.sum()


# =========================================================================== model averaging


def _covariate_frame(covariates, specs: Sequence[LawSpec], flops_per_token: float) -> pd.DataFrame:
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


def model_average_draws(
    comparison: LawComparison,
    covariates: Mapping[str, Any] | pd.DataFrame,
    *,
    group: str | None = None,
    weights: str = "loo",
    num_draws: int = 4000,
    observation_noise: bool = False,
    flops_per_token: float = 6.0,
    seed: int = 0,
) -> np.ndarray:
    """Draws of the target from the weighted mixture of the laws' posterior predictions.

    Each draw comes from law ``k`` with probability equal to its weight (stacking by
    default), so the mixture keeps the disagreement between laws.

    Parameters
    ----------
    comparison : LawComparison
    covariates : mapping or DataFrame
        Points to predict at, natural units; ``C`` is filled as ``flops_per_token N D`` for
        laws over compute when only ``N`` and ``D`` are given.
    group : str, optional
        Group label for hierarchical fits (``"new"`` for an unseen group).
    weights : {"loo", "lfo"}, default "loo"
        The table's ``weight`` (PSIS-LOO stacking) or ``lfo_weight`` (stacking on the held-out
        leave-future-out densities: weights for extrapolation). The fits on all rows are mixed
        either way.
    num_draws : int, default 4000
    observation_noise : bool, default False
        Add the likelihood's noise (a new run's loss) rather than the law's mean curve.
    flops_per_token : float, default 6.0
    seed : int, default 0

    Returns
    -------
    ndarray
        ``(num_draws, points)`` draws of the target (loss) in natural units.
    """
    specs = {name: _inference.fit_spec(f)["law"] for name, f in comparison.fits.items()}
    df = _covariate_frame(covariates, list(specs.values()), flops_per_token)
    column = {"loo": "weight", "lfo": "lfo_weight"}.get(weights)
    if column is None:
        raise ValueError(f"weights must be 'loo' or 'lfo'; got {weights!r}")
    if column not in comparison.table.columns:
        raise ValueError(
            "weights='lfo' needs a comparison run with leave-future-out (holdout not None)"
        )
    w = np.clip(comparison.table[column].reindex(list(specs)).to_numpy(dtype=float), 0, None)
    w = w / w.sum()
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(int(num_draws), w)
    parts = []
    for (name, spec), count in zip(specs.items(), counts):
        if count == 0:
            continue
        fit = comparison.fits[name]
        info = _inference.fit_spec(fit)
        if info["groups"] and group is None:
            raise ValueError(
                f"the fits are hierarchical; pass group= one of {info['groups']} or 'new'"
            )
        draws = _inference.posterior_draws(fit, group if info["groups"] else None, seed=seed)
        idx = rng.choice(
            draws["sigma"].shape[0], size=count, replace=count > draws["sigma"].shape[0]
        )
        sub = {k: v[idx] for k, v in draws.items()}
        mu = _log_mu(spec, sub, {c: df[c].to_numpy(dtype=float) for c in spec.covariates})
        if observation_noise:
            eps = rng.standard_normal(mu.shape)
            if info["likelihood"] == "student_t":
                eps = rng.standard_t(sub["nu"][:, None], size=mu.shape)
            mu = mu + sub["sigma"][:, None] * eps
        parts.append(np.exp(mu))
    out = np.concatenate(parts, axis=0)
    return out[rng.permutation(out.shape[0])]


def model_average(
    comparison: LawComparison,
    covariates: Mapping[str, Any] | pd.DataFrame,
    *,
    group: str | None = None,
    weights: str = "loo",
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
    num_draws: int = 4000,
    observation_noise: bool = False,
    flops_per_token: float = 6.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Model-averaged prediction: mean and quantiles of the stacking mixture at each point.

    Also gives each law's own posterior median (``median_<law>``) for reference. Arguments as
    in :func:`model_average_draws`.

    Examples
    --------
    >>> model_average(result, {"N": [70e9], "D": [1.4e12]})  # doctest: +SKIP
    """
    draws = model_average_draws(
        comparison,
        covariates,
        group=group,
        weights=weights,
        num_draws=num_draws,
        observation_noise=observation_noise,
        flops_per_token=flops_per_token,
        seed=seed,
    )
    specs = {name: _inference.fit_spec(f)["law"] for name, f in comparison.fits.items()}
    df = _covariate_frame(covariates, list(specs.values()), flops_per_token)
    out = df.copy()
    out["mean"] = draws.mean(axis=0)
    for q, v in zip(quantiles, np.quantile(draws, quantiles, axis=0)):
        out[f"q{q * 100:g}"] = v
    for name, spec in specs.items():
        fit = comparison.fits[name]
        g = group if _inference.fit_spec(fit)["groups"] else None
        mu = _log_mu(
            spec,
            _inference.posterior_draws(fit, g, seed=seed),
            {c: df[c].to_numpy(dtype=float) for c in spec.covariates},
        )
        out[f"median_{name}"] = np.exp(np.median(mu, axis=0))
    return out


# =========================================================================== derived quantities


def _compute_optimal_exponent(spec: LawSpec, d: Mapping[str, np.ndarray]) -> np.ndarray:
    names = set(spec.param_names)
    if {"alpha", "beta"} <= names and {"N", "D"} <= set(spec.covariates):
        return d["beta"] / (d["alpha"] + d["beta"])
    if spec.name == "kaplan":
        return d["alpha_D"] / (d["alpha_N"] + d["alpha_D"])
    raise ValueError(
        f"the compute-optimal exponent 'a' is defined for laws over N and D with exponents "
        f"alpha/beta (chinchilla, data_constrained) or alpha_N/alpha_D (kaplan); law {spec.name!r} "
        f"has parameters {list(spec.param_names)} and covariates {list(spec.covariates)}"
    )


def optimal_loss(
    spec: LawSpec | str,
    draws: Mapping[str, np.ndarray],
    compute: float | Sequence[float] | np.ndarray,
    *,
    flops_per_token: float = 6.0,
) -> np.ndarray:
    """Compute-optimal loss ``L*(C) = min over N of L(N, C / (k N))`` for each draw.

    Closed forms for the Chinchilla and Kaplan laws; a grid search over ``log N`` (256 points
    spanning 1e-4 to 1e6 tokens per parameter) for other laws over exactly ``N`` and ``D``; the
    law itself for laws over ``C``.

    Parameters
    ----------
    spec : LawSpec or str
    draws : mapping of str to (S,) arrays
        Posterior draws of the law's parameters.
    compute : float or array of shape (m,)
        FLOPs.
    flops_per_token : float, default 6.0
        ``k`` in ``C = k N D``.

    Returns
    -------
    ndarray
        ``(S, m)`` losses (``(S,)`` for a scalar compute).

    Notes
    -----
    Chinchilla: with ``G = (alpha A / (beta B))^(1/(alpha+beta))``,
    ``N* = G (C/k)^(beta/(alpha+beta))`` and ``D* = (C/k) / N*``. Kaplan: ``D_c/D = r (N_c/N)^r``
    at the optimum, ``r = alpha_N/alpha_D``, so ``L* = ((1 + r)(N_c/N*)^r)^alpha_D``.

    Examples
    --------
    >>> import numpy as np
    >>> d = {k: np.array([v]) for k, v in dict(E=1.817, A=482.0, B=2085.0, alpha=0.348, beta=0.366).items()}
    >>> float(optimal_loss("chinchilla", d, 5.9e23)[0])  # doctest: +ELLIPSIS
    1.9...
    """
    spec = get_law(spec)
    scalar = np.ndim(compute) == 0
    logc = np.log(np.atleast_1d(np.asarray(compute, dtype=float)))[None, :]  # (1, m)
    if np.any(~np.isfinite(logc)):
        raise ValueError(f"compute must be positive and finite; got {compute!r}")
    d = {k: np.asarray(v, dtype=float)[:, None] for k, v in draws.items() if k in spec.param_names}
    covs = set(spec.covariates)
    lck = logc - math.log(flops_per_token)  # log(N D)
    if spec.name == "chinchilla":
        a, b = d["alpha"], d["beta"]
        log_g = (np.log(a) + np.log(d["A"]) - np.log(b) - np.log(d["B"])) / (a + b)
        log_n = log_g + b / (a + b) * lck
        log_d = lck - log_n
        out = d["E"] + d["A"] * np.exp(-a * log_n) + d["B"] * np.exp(-b * log_d)
    elif spec.name == "kaplan":
        r = d["alpha_N"] / d["alpha_D"]
        log_n = (np.log(r) + r * np.log(d["N_c"]) + lck - np.log(d["D_c"])) / (1 + r)
        out = np.exp(d["alpha_D"] * (np.log1p(r) + r * (np.log(d["N_c"]) - log_n)))
    elif covs == {"C"}:
        out = np.exp(_log_mu(spec, draws, {"C": np.exp(logc[0])}))
    elif covs == {"N", "D"}:
        ratio = np.linspace(math.log(1e-4), math.log(1e6), 256)  # log(D/N)
        out = np.empty((next(iter(d.values())).shape[0], logc.shape[1]))
        for j, lc in enumerate(lck[0]):
            log_n = 0.5 * (lc - ratio)
            mu = _log_mu(spec, draws, {"N": np.exp(log_n), "D": np.exp(lc - log_n)})
            out[:, j] = np.exp(mu.min(axis=1))
    else:
        raise ValueError(
            f"a compute-optimal loss needs a law over N and D or over C; law {spec.name!r} has "
            f"covariates {list(spec.covariates)} (use at={{...}} to predict at given covariates)"
        )
    return out[:, 0] if scalar else out


# =========================================================================== contrasts


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
    groups = [str(g) for g in groups]
    unknown = [g for g in groups if g not in labels]
    if unknown:
        raise KeyError(
            f"unknown group{'s' if len(unknown) > 1 else ''} {unknown}; the fit's groups ({info['group_column'] or 'group'}) are {labels}"
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
            f"{what} shared across groups in this fit (pooling: {modes}), so it has no between-group "
            f"difference; refit with it per group (CLI: --pool {pool_hint})"
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
    if isinstance(fit, (str, Path)):
        fit = _inference.load_fit(fit)
    info = _inference.fit_spec(fit)
    spec: LawSpec = info["law"]
    if not isinstance(param, str) or not param:
        raise ValueError(f"param must be a parameter or derived-quantity name; got {param!r}")
    if kind not in ("difference", "ratio"):
        raise ValueError(f"kind must be 'difference' or 'ratio'; got {kind!r}")
    if not (isinstance(prob, (int, float)) and 0 < prob < 1):
        raise ValueError(f"prob must be in (0, 1); got {prob!r}")
    groups = _resolve_groups(fit, groups)

    centre = 0.0 if kind == "difference" else 1.0
    rope_pair = _resolve_rope(rope, kind)

    if param in spec.param_names:
        _check_per_group(fit, spec, [param], param)
        constraint = next(p.constraint for p in spec.params if p.name == param)
        if kind == "ratio" and constraint != "positive":
            raise ValueError(
                f"parameter {param!r} can be negative, so a ratio is not meaningful; use kind='difference'"
            )
        description = next(p.description for p in spec.params if p.name == param) or param
        quantity = param
    elif param in ("a", "loss"):
        if param == "a":
            needed = ["alpha", "beta"] if "alpha" in spec.param_names else ["alpha_N", "alpha_D"]
            _compute_optimal_exponent(spec, {n: np.ones(1) for n in spec.param_names})  # law check
            quantity, description = "a", DERIVED_QUANTITIES["a"]
        else:
            if (compute is None) == (at is None):
                raise ValueError(
                    "param='loss' needs exactly one of compute= (FLOPs, CLI --compute) or at= (covariates)"
                )
            needed = list(spec.param_names)
            if compute is not None:
                optimal_loss(
                    spec,
                    {n: np.ones(1) for n in spec.param_names},
                    1e20,
                    flops_per_token=flops_per_token,
                )  # law check
                quantity = f"loss@C={compute:.3g}"
                description = f"compute-optimal {spec.target} at C = {compute:.3g} FLOP"
            else:
                missing = [c for c in spec.covariates if c not in at]
                if missing:
                    raise ValueError(
                        f"at= must give the covariates {list(spec.covariates)} of law {spec.name!r}; missing {missing}"
                    )
                quantity = "loss@" + ",".join(f"{c}={float(at[c]):.3g}" for c in spec.covariates)
                description = f"predicted {spec.target} at " + ", ".join(
                    f"{c} = {float(at[c]):.3g}" for c in spec.covariates
                )
        _check_per_group(fit, spec, needed, quantity)
    elif param == "crossing":
        return _crossing_contrast(fit, spec, groups, prob, compute_range, flops_per_token)
    else:
        raise KeyError(
            f"unknown quantity {param!r} for law {spec.name!r}; parameters: {', '.join(spec.param_names)}; "
            f"derived: {', '.join(DERIVED_QUANTITIES)}"
        )

    values: dict[str, np.ndarray] = {}
    for g in groups:
        d = _inference.posterior_draws(fit, g)
        if quantity == param and param in spec.param_names:
            v = d[param]
        elif param == "a":
            v = _compute_optimal_exponent(spec, d)
        elif compute is not None:
            v = optimal_loss(spec, d, float(compute), flops_per_token=flops_per_token)
        else:
            v = np.exp(
                _log_mu(spec, d, {c: np.atleast_1d(float(at[c])) for c in spec.covariates})[:, 0]
            )
        values[g] = np.asarray(v, dtype=float)

    pairs = tuple(itertools.combinations(groups, 2))
    draws, rows = {}, {}
    for g1, g2 in pairs:
        label = f"{g1} {'-' if kind == 'difference' else '/'} {g2}"
        diff = values[g1] - values[g2] if kind == "difference" else values[g1] / values[g2]
        draws[label] = diff
        rows[label] = _summarise(diff, prob, rope_pair, centre)
    table = pd.DataFrame.from_dict(rows, orient="index")
    return Contrast(
        quantity=quantity,
        kind=kind,
        groups=groups,
        pairs=pairs,
        table=table,
        draws=draws,
        values=values,
        prob=float(prob),
        rope=rope_pair,
        compute_range=None,
        description=description,
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
    optimal_loss(
        spec, {n: np.ones(1) for n in spec.param_names}, 1e20, flops_per_token=flops_per_token
    )  # law check
    if compute_range is None:
        lo, hi = _data_compute_range(fit)
        compute_range = (lo / 10, hi * 1e4)
    lo, hi = (float(v) for v in compute_range)
    if not 0 < lo < hi:
        raise ValueError(
            f"compute_range must be (low, high) with 0 < low < high; got {compute_range!r}"
        )
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
        cross = _crossings(diff, grid)
        draws[label] = cross
        hit = cross[np.isfinite(cross)]
        row = {"p_cross": float(np.isfinite(cross).mean())}
        if hit.size:
            q = np.quantile(hit, [0.5, (1 - prob) / 2, (1 + prob) / 2])
            row.update(median=float(q[0]), lower=float(q[1]), upper=float(q[2]))
        else:
            row.update(median=float("nan"), lower=float("nan"), upper=float("nan"))
        row["p_first_lower_at_low"] = float(np.mean(diff[:, 0] < 0))
        row["p_first_lower_at_high"] = float(np.mean(diff[:, -1] < 0))
        rows[label] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    return Contrast(
        quantity="crossing",
        kind="crossing",
        groups=groups,
        pairs=pairs,
        table=table,
        draws=draws,
        values={},
        prob=float(prob),
        rope=None,
        compute_range=(lo, hi),
        description=DERIVED_QUANTITIES["crossing"],
    )


# =========================================================================== numbers for a figure


def contrast_plot_data(
    fit,
    groups: Sequence[str] | str | None = None,
    *,
    contrast_result: Contrast | None = None,
    prob: float = 0.9,
    num: int = 60,
    x_range: tuple[float, float] | None = None,
    bins: int = 60,
    flops_per_token: float = 6.0,
) -> dict[str, Any]:
    """The numbers for the group-comparison figure (drawn by ``bayes_scaling.plots``).

    Panel 1: each group's curve with a band: the compute-optimal loss against compute for laws
    over ``N`` and ``D`` (or ``C``), the loss against the covariate for other one-covariate
    laws, with the observed points. Panel 2: the posterior of a contrast as a histogram.

    Parameters
    ----------
    fit : InferenceData, str or Path
        A hierarchical fit.
    groups : sequence of str, optional
        Default: all groups.
    contrast_result : Contrast, optional
        Adds its posterior histogram(s).
    prob : float, default 0.9
        Band mass.
    num : int, default 60
        Grid points along the x axis.
    x_range : (float, float), optional
        Default: the data's range, extended 10x at the top.
    bins : int, default 60
    flops_per_token : float, default 6.0

    Returns
    -------
    dict
        ``x_name`` (``"C"`` or the covariate), ``y_name``; ``curves``: DataFrame with columns
        ``group, x, median, lower, upper``; ``points``: DataFrame ``group, x, y`` of the
        observed runs; ``contrast`` (when given): DataFrame ``pair, left, right, density`` and
        ``contrast_summary`` (its table as records), ``rope``, ``reference`` (0 or 1).
    """
    if isinstance(fit, (str, Path)):
        fit = _inference.load_fit(fit)
    info = _inference.fit_spec(fit)
    spec: LawSpec = info["law"]
    groups = _resolve_groups(fit, groups)
    const = fit.constant_data
    gi = const["group_index"].values.astype(int)
    labels = list(info["groups"])
    y_obs = np.exp(fit.observed_data[f"log_{spec.target}"].values)
    covs = set(spec.covariates)
    if covs == {"N", "D"} or covs == {"C"}:
        x_name = "C"
        x_obs = (
            const["C"].values
            if "C" in const
            else flops_per_token * const["N"].values * const["D"].values
        )
    elif len(spec.covariates) == 1:
        x_name = spec.covariates[0]
        x_obs = const[x_name].values
    else:
        raise ValueError(
            f"no one-dimensional curve for law {spec.name!r} with covariates {list(spec.covariates)}"
        )
    if x_range is None:
        x_range = (float(x_obs.min()), float(x_obs.max()) * 10)
    grid = np.geomspace(x_range[0], x_range[1], int(num))
    lo_q, hi_q = (1 - prob) / 2, (1 + prob) / 2
    rows, pts = [], []
    for g in groups:
        d = _inference.posterior_draws(fit, g)
        if x_name == "C" and covs != {"C"}:
            curve = optimal_loss(spec, d, grid, flops_per_token=flops_per_token)
        else:
            curve = np.exp(_log_mu(spec, d, {x_name: grid}))
        q = np.quantile(curve, [0.5, lo_q, hi_q], axis=0)
        rows.append(
            pd.DataFrame({"group": g, "x": grid, "median": q[0], "lower": q[1], "upper": q[2]})
        )
        sel = gi == labels.index(g)
        pts.append(pd.DataFrame({"group": g, "x": x_obs[sel], "y": y_obs[sel]}))
    out: dict[str, Any] = {
        "x_name": x_name,
        "y_name": spec.target + (" (compute-optimal)" if x_name == "C" and covs != {"C"} else ""),
        "prob": prob,
        "curves": pd.concat(rows, ignore_index=True),
        "points": pd.concat(pts, ignore_index=True),
    }
    if contrast_result is not None:
        hist = []
        for label, v in contrast_result.draws.items():
            v = v[np.isfinite(v)]
            if not v.size:
                continue
            if contrast_result.kind == "crossing":
                dens, edges = np.histogram(np.log10(v), bins=bins, density=True)
                edges = 10**edges
            else:
                dens, edges = np.histogram(v, bins=bins, density=True)
            hist.append(
                pd.DataFrame(
                    {"pair": label, "left": edges[:-1], "right": edges[1:], "density": dens}
                )
            )
        out["contrast"] = (
            pd.concat(hist, ignore_index=True)
            if hist
            else pd.DataFrame(columns=["pair", "left", "right", "density"])
        )
        out["contrast_summary"] = contrast_result.to_dict()
        out["rope"] = contrast_result.rope
        out["reference"] = 1.0 if contrast_result.kind == "ratio" else 0.0
    return out


# =========================================================================== loss-to-loss helpers


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
    >>> df = pd.DataFrame({"N": [1, 1, 2], "D": [5, 5, 5], "loss": [3.0, 3.4, 2.9], "ds": ["a", "b", "a"]})
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
