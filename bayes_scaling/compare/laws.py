"""Which law describes the runs best: PSIS-LOO and leave-future-out over several laws.

:func:`compare_laws` fits each law to the same rows, ranks them by PSIS-LOO (ArviZ) and by a
leave-future-out score (fit on the lower-compute part, score the held-out part by its log
predictive density), with standard errors of the differences and stacking weights.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
import pandas as pd

from bayes_scaling import inference as _inference
from bayes_scaling.compare.average import stacking_weights
from bayes_scaling.compare.density import _rmse, log_predictive_density
from bayes_scaling.compare.frames import _common_frame, _future_axis, _law_pooling, future_split
from bayes_scaling.laws import LawSpec, get_law

DEFAULT_LAWS = ("chinchilla", "kaplan", "power_law")
_METHODS = ("stacking", "BB-pseudo-BMA", "pseudo-BMA")


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
    pooling: str | Mapping[str, str] | None = None,
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
    trajectory_length: float | str | None = "auto",
    pilot: bool | str = "auto",
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
    trajectory_length : float, "auto" or None, default "auto"
        MCMC kernel of every NUTS fit, as for :func:`bayes_scaling.inference.fit`: static HMC
        of this mean length, NUTS (None), or ``"auto"`` (static HMC for hierarchical fits, NUTS
        for one curve). CLI ``compare --trajectory-length``.
    pilot : bool or "auto", default "auto"
        Re-whitening of every NUTS fit's coordinates by draws already made, as for
        :func:`bayes_scaling.inference.fit` (hierarchical fits). CLI ``compare --pilot`` /
        ``--no-pilot``.

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

    specs, priors = _check_laws(laws, priors, method)
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
    train_mask = None if holdout is None else future_split(frame, holdout, column=split_column)
    plan = _FitPlan(
        priors=priors,
        pooling=pooling,
        grouped=group is not None,
        options={
            "group": "group" if group is not None else None,
            "likelihood": likelihood,
            "num_chains": num_chains,
            "num_warmup": num_warmup,
            "num_samples": num_samples,
            "target_accept_prob": target_accept_prob,
            "prior_samples": 0,
            "pad_to": len(frame),  # a law's fits to all runs and to the past share one program
            "method": fit_method,
            "trajectory_length": trajectory_length,
            "pilot": pilot,
        },
    )
    keys = jax.random.split(jax.random.PRNGKey(seed), 2 * len(specs))
    fits, loos = {}, {}
    for i, spec in enumerate(specs):
        fits[spec.name] = plan.run(spec, frame, f"fit to all {len(frame)} points", keys[2 * i])
        loos[spec.name] = _loo_with_advice(az, fits[spec.name], spec.name, frame)
    table = _loo_table(az, loos, method, seed)
    future_fits, lpd = _leave_future_out(plan, specs, frame, train_mask, keys[1::2], table)
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


def _check_laws(
    laws: Sequence[str | LawSpec] | str | LawSpec, priors, method: str
) -> tuple[list[LawSpec], dict[str, Any]]:
    """The laws to compare (at least two, distinct, one target) and the priors per law."""
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
    if method not in _METHODS:
        raise ValueError(
            f"unknown weighting method {method!r}; expected stacking, BB-pseudo-BMA or pseudo-BMA"
        )
    return specs, priors


@dataclasses.dataclass(frozen=True)
class _FitPlan:
    """How every fit of a comparison is made: priors and pooling per law, shared options."""

    priors: Mapping[str, Any]
    pooling: Any
    grouped: bool
    options: Mapping[str, Any]

    def run(self, spec: LawSpec, rows: pd.DataFrame, label: str, key, stacklevel: int = 3):
        """Fit one law to ``rows``; the sampler's warnings name the law and the fit.

        ``stacklevel`` points the re-raised warnings at the caller of :func:`compare_laws`.
        """
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            idata = _inference.fit(
                rows,
                spec,
                priors=self.priors.get(spec.name),
                pooling=_law_pooling(spec, self.pooling, self.grouped),
                rng_key=key,
                **self.options,
            )
        for w in caught:  # re-raise the sampler's diagnostics, saying which fit they are about
            warnings.warn(
                f"{w.message} [law {spec.name}, {label}]", w.category, stacklevel=stacklevel
            )
        return idata


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
            f"PSIS-LOO for law {law!r}: {bad.size} of {k.size} points have Pareto k > "
            f"{loo.good_k:.2f} (max {k.max():.2f} at row {frame.index[first]}: {where}); their "
            "LOO terms are unreliable, so this law's elpd_loo and its SE are too optimistic. "
            "These points are highly influential: check them for outliers or runs from another "
            "setup, keep the Student-t likelihood (robust to outliers), draw more samples (the "
            "threshold rises with the draw count), or rely on exact refits without them / the "
            "leave-future-out score.",
            UserWarning,
            stacklevel=3,
        )
    return loo


def _loo_table(az, loos: Mapping[str, Any], method: str, seed: int) -> pd.DataFrame:
    """ArviZ's comparison table with the Pareto-k summary per law."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside arviz.compare
        table = az.compare(loos, ic="loo", method=method, seed=seed)
    table = table.drop(columns=[c for c in ("warning", "scale") if c in table.columns])
    table["pareto_k_max"] = [float(np.max(loos[n].pareto_k)) for n in table.index]
    table["bad_k"] = [
        int(np.sum(np.asarray(loos[n].pareto_k) > loos[n].good_k)) for n in table.index
    ]
    return table


def _leave_future_out(
    plan: _FitPlan,
    specs: Sequence[LawSpec],
    frame: pd.DataFrame,
    train_mask: np.ndarray | None,
    keys,
    table: pd.DataFrame,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit each law to the past, score the future; adds the ``lfo_*`` columns to ``table``."""
    future_fits: dict[str, Any] = {}
    lpd = pd.DataFrame(index=frame.index[~train_mask] if train_mask is not None else [])
    if train_mask is None:
        return future_fits, lpd
    train, test = frame[train_mask], frame[~train_mask]
    rmse = {}
    for spec, key in zip(specs, keys, strict=True):
        label = f"leave-future-out fit to {len(train)} points"
        idata = plan.run(spec, train, label, key, stacklevel=4)
        future_fits[spec.name] = idata
        lpd[spec.name] = log_predictive_density(idata, test)
        rmse[spec.name] = _rmse(idata, test)
    _add_future_columns(table, lpd, rmse)
    return future_fits, lpd


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
