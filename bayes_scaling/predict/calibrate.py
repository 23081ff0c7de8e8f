"""Learning the discrepancy scale ``tau`` by leave-future-out, and resolving a ``discrepancy``.

See :mod:`bayes_scaling.predict` for the model and its limitations.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling import data as _data
from bayes_scaling import draws as _draws
from bayes_scaling import inference as _inference
from bayes_scaling.laws import LawSpec, get_law
from bayes_scaling.predict.discrepancy import (
    DISCREPANCY_ATTR,
    Discrepancy,
    _coordinate_values,
    attach_discrepancy,
    extrapolation_coordinates,
)
from bayes_scaling.predict.points import _log_mu_draws
from bayes_scaling.predict.refits import refit_figures, warn_unsettled

DEFAULT_CUTS = (0.7, 0.8, 0.9)
DEFAULT_TAU_PRIOR_SCALE = 0.2
UNITS = {"span": DEFAULT_TAU_PRIOR_SCALE, "e-fold": 0.05}  # distance unit: default prior scale
DEFAULT_SLOPE_DF = 3.0
_TAU_GRID = (0.0, *(float(v) for v in np.geomspace(1e-4, 3.0, 96)))


def _scale_coordinate(law: LawSpec) -> str:
    """The coordinate of the scale axis: ``N*D`` for laws over N and D, else all covariates."""
    return "N*D" if "N*D" in extrapolation_coordinates(law) else "*".join(law.covariates)


def data_span(law: str | LawSpec, frame: pd.DataFrame) -> float:
    """Width (natural-log units) of the data along the scale axis; the unit of ``tau``'s learning.

    A fit to runs spanning many e-folds of compute extrapolates one more e-fold with less
    error than a fit to runs spanning one; measured in spans, the discrepancy learned from a
    pseudo-past (a narrower span) carries over to the whole data (a wider one). Falls back to
    the widest box coordinate, and to 1 for data at a single point.
    """
    law = get_law(law)
    along = _coordinate_values([_scale_coordinate(law)], frame)[:, 0]
    width = float(np.ptp(along)) if along.size else 0.0
    if not width > 0:
        z = _coordinate_values(extrapolation_coordinates(law), frame)
        width = float(np.ptp(z, axis=0).max()) if z.size else 0.0
    return width if width > 0 else 1.0


def _scale_axis(law: LawSpec, frame: pd.DataFrame, coordinate: str = "scale") -> np.ndarray:
    """The scale axis (log N*D, else the sum of log covariates), or one covariate's log, oriented
    so the target falls along it."""
    name = _scale_coordinate(law) if coordinate == "scale" else coordinate
    axis = _coordinate_values([name], frame)[:, 0]
    y = np.log(frame[law.target].to_numpy(dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(axis, y)[0, 1] if axis.std() > 0 and y.std() > 0 else np.nan
    return -axis if corr > 0 else axis


def _tau_log_likelihood(
    blocks, grid: np.ndarray, rng: np.random.Generator, slope_df: float | None = None
) -> np.ndarray:
    """Composite log likelihood of ``tau`` on a grid from leave-future-out blocks.

    Each block holds y (J,), mu (S, J), sigma (S,), nu (S,) or None, d (J,). The predictive of
    y_j is the mixture over draws s of noise(y_j - mu_sj - b_s d_j) with b_s = tau z_s; z_s are
    stratified quantiles (normal, or Student-t with ``slope_df`` degrees of freedom) in random
    order (one per draw), so the Monte Carlo error is small and the likelihood is smooth in tau.
    """
    from scipy.special import logsumexp
    from scipy.stats import norm, t

    out = np.zeros(grid.size)
    for y, mu, sigma, nu, d in blocks:
        s = mu.shape[0]
        u = (rng.permutation(s) + 0.5) / s
        z = norm.ppf(u) if slope_df is None else t.ppf(u, slope_df)
        resid0 = y[None, :] - mu
        for g, tau in enumerate(grid):
            logp = _draws.noise_log_density(resid0 - tau * z[:, None] * d[None, :], sigma, nu)
            out[g] += float(np.sum(logsumexp(logp, axis=0) - math.log(s)))
    return out


def _shared_slope_fit(resid: np.ndarray, d: np.ndarray, sigma: np.ndarray, nu):
    """Per draw: the block's best shared slope ``b``, its information, and the log likelihood there.

    ``resid`` (S, J) are the runs' log residuals from each draw's law, ``d`` (J,) their distances.
    The noise's Student-t weights are iterated (IRLS) to the slope that maximises the block's
    joint likelihood; the information is the expected one, ``sum d^2 (nu + 1) / ((nu + 3)
    sigma^2)``.
    """
    student = None if nu is None else np.isfinite(nu)  # draws with Student-t noise
    b = resid @ d / float(d @ d)
    c: Any = 1.0
    if student is not None:
        nu_t = np.where(student, nu, 1.0)  # placeholder where the noise is normal
        for _ in range(25):
            e2 = ((resid - b[:, None] * d) / sigma[:, None]) ** 2
            w = np.where(student[:, None], (nu_t[:, None] + 1) / (nu_t[:, None] + e2), 1.0)
            b = (w * resid) @ d / (w @ (d * d))
        c = np.where(student, (nu_t + 1) / (nu_t + 3), 1.0)
    info = float(d @ d) * c / sigma**2
    ell = _draws.noise_log_density(resid - b[:, None] * d[None, :], sigma, nu).sum(axis=1)
    return b, info, ell


def _tau_log_likelihood_joint(
    blocks, grid: np.ndarray, slope_df: float | None = None, n_mix: int = 64
) -> np.ndarray:
    """Log likelihood of ``tau`` on a grid with one slope shared by each block's runs.

    The discrepancy model gives every run of a pseudo-future the same slope ``b`` (per
    posterior draw), so the block's runs are scored jointly: ``p(block | tau) = mean_s int
    prod_j noise(y_j - mu_sj - b d_j) p(b | tau) db``. Each draw's integrand is taken as normal in
    ``b`` about its best shared slope (:func:`_shared_slope_fit`), and the Student-t slope as a
    scale mixture of normals (``n_mix`` stratified variances), so the integral is closed-form.
    A block then counts as one look at the discrepancy, not as one per run.
    """
    from scipy.special import logsumexp
    from scipy.stats import chi2

    if slope_df is None:
        mix = np.ones(1)
    else:
        u = (np.arange(n_mix) + 0.5) / n_mix
        mix = slope_df / chi2.ppf(u, slope_df)  # z = normal * sqrt(mix) is Student-t
    out = np.zeros(grid.size)
    for y, mu, sigma, nu, d in blocks:
        b, info, ell = _shared_slope_fit(y[None, :] - mu, d, sigma, nu)
        s = b.size
        base = ell + 0.5 * np.log(2 * math.pi / info)  # (S,)
        for g, tau in enumerate(grid):
            var = 1.0 / info[:, None] + tau**2 * mix[None, :]  # (S, K)
            log_n = -0.5 * np.log(2 * math.pi * var) - 0.5 * b[:, None] ** 2 / var
            per_draw = logsumexp(log_n, axis=1) - math.log(mix.size)
            out[g] += float(logsumexp(base + per_draw) - math.log(s))
    return out


# --------------------------------------------------------------------------- the calibration


@dataclasses.dataclass(frozen=True)
class _Setup:
    """What every leave-future-out cut shares: the law, the data, the model and the budget."""

    spec: LawSpec
    frame: pd.DataFrame
    grouped: bool
    priors: Any
    pooling: Any
    likelihood: str
    fit_options: Mapping[str, Any]  # num_chains, num_warmup, num_samples, method
    max_draws: int
    min_train: int
    min_test: int
    seed: int
    pad_to: int
    per_span: bool = True
    axes: tuple[str, ...] = ("scale",)


def _source_model(source, law, group, priors, pooling, likelihood):
    """(spec, frame, grouped, priors, pooling, likelihood) from a fit, or from data and options."""
    if isinstance(source, (pd.DataFrame, str)) or hasattr(source, "__fspath__"):
        if law is None:
            raise ValueError("calibrate_discrepancy needs law= when given data rather than a fit")
        spec = get_law(law)
        frame = _data.validate(source, spec, group=group)
        return spec, frame, group is not None, priors, pooling, likelihood or "student_t"
    info = _inference.fit_spec(source)
    grouped = bool(info["groups"])
    pooling = info["pooling"] if grouped else None
    frame = _draws.fit_frame(source)
    return info["law"], frame, grouped, info["priors"], pooling, info["likelihood"]


SCORES = ("pointwise", "joint")


def _check_options(
    cuts: Sequence[float],
    tau_prior_scale: float,
    unit: str,
    slope_df: float | None,
    score: str = "pointwise",
) -> None:
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}; got {score!r}")
    if slope_df is not None and not (
        isinstance(slope_df, (int, float)) and math.isfinite(slope_df) and slope_df > 0
    ):
        raise ValueError(f"slope_df must be a finite number > 0 or None; got {slope_df!r}")
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")
    if not tau_prior_scale > 0:
        raise ValueError(f"tau_prior_scale must be > 0; got {tau_prior_scale}")
    bad_cuts = [c for c in cuts if not 0 < c < 1]
    if bad_cuts or not len(cuts):
        raise ValueError(f"cuts must be quantiles in (0, 1); got {list(cuts)}")


def _check_axes(spec: LawSpec, axes: Sequence[str]) -> tuple[str, ...]:
    allowed = ("scale", *spec.covariates)
    bad = [a for a in axes if a not in allowed]
    if bad or not len(axes):
        raise ValueError(f"axes must be among {', '.join(allowed)}; got {list(axes)}")
    return tuple(dict.fromkeys(axes))


def _pseudo_past_fit(setup: _Setup, train: pd.DataFrame, k: int):
    """Fit the law to one pseudo-past; returns the fit and the RuntimeWarnings' first words."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = _inference.fit(
            train,
            setup.spec,
            priors=setup.priors,
            group="group" if setup.grouped else None,
            pooling=setup.pooling if setup.grouped else None,
            likelihood=setup.likelihood,
            seed=setup.seed + 1 + k,
            prior_samples=0,
            pad_to=setup.pad_to,  # every pseudo-past shares one compiled program
            **setup.fit_options,
        )
    notes = sorted(
        {str(w.message).split(":")[0] for w in caught if issubclass(w.category, RuntimeWarning)}
    )
    return idata, notes


def _future_block(setup: _Setup, idata, train, test, rng: np.random.Generator):
    """The pseudo-future's block (y, mu, sigma, nu, d / span) outside the pseudo-past's box, d
    (natural-log units), the pseudo-past's span (the block's distances are in spans) and how the
    pseudo-future's runs leave the box (:meth:`Discrepancy.beyond_in`)."""
    spec = setup.spec
    coords = extrapolation_coordinates(spec)
    sub_coords = _coordinate_values(coords, train)
    box = Discrepancy(
        (0.0,), (1.0,), coords, tuple(sub_coords.min(0)), tuple(sub_coords.max(0)), "fixed"
    )
    d = box.distance(test)
    labels = test["group"].astype(str).to_numpy(dtype=object) if setup.grouped else None
    mu, sigma, nu = _log_mu_draws(idata, spec, test, labels)
    if mu.shape[0] > setup.max_draws:
        pick = rng.choice(mu.shape[0], size=setup.max_draws, replace=False)
        mu, sigma, nu = mu[pick], sigma[pick], (None if nu is None else nu[pick])
    y = np.log(test[spec.target].to_numpy(dtype=float))
    keep = d > 0
    span = data_span(spec, train) if setup.per_span else 1.0
    block = (y[keep], mu[:, keep], sigma, nu, d[keep] / span) if keep.any() else None
    return block, d, span, box.beyond_in(test)


def _run_cut(setup: _Setup, past: np.ndarray, q: float, k: int, rng: np.random.Generator):
    """One leave-future-out cut: (block or None, record, whether the cut was used)."""
    n_past, n_future = int(past.sum()), int((~past).sum())
    skip = {"cut": q, "n_past": n_past, "n_future": n_future}
    if n_past < setup.min_train or n_future < setup.min_test:
        return None, {**skip, "reason": "too few runs"}, False
    train, test = setup.frame[past], setup.frame[~past]
    if setup.grouped:
        test = test[test["group"].isin(set(train["group"]))]
        if len(test) < setup.min_test:
            return None, {**skip, "n_future": len(test), "reason": "future groups unseen"}, False
    try:
        idata, notes = _pseudo_past_fit(setup, train, k)
    except (ValueError, RuntimeError) as exc:
        return None, {**skip, "reason": str(exc)}, False
    try:
        block, d, span, beyond = _future_block(setup, idata, train, test, rng)
    except ValueError as exc:  # a refit with non-finite draws: the cut says why and is skipped
        return None, {**skip, "reason": str(exc)}, False
    used = {
        "cut": q,
        "n_past": n_past,
        "n_future": len(test),
        "n_outside": int((d > 0).sum()),
        "beyond_in": beyond,
        "max_distance": float(d.max()),
        "span": span,
        "fit_warnings": notes,
        **refit_figures(idata),
    }
    return block, used, True


def _run_cuts(setup: _Setup, cuts: Sequence[float], rng: np.random.Generator):
    """Blocks, used and skipped cuts, one refit per distinct pseudo-past (along each axis)."""
    blocks: list[tuple] = []
    used: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    seen = set()
    values = {name: _scale_axis(setup.spec, setup.frame, name) for name in setup.axes}
    plan = [(name, q) for name in setup.axes for q in sorted(cuts)]
    for k, (name, q) in enumerate(plan):
        past = values[name] <= float(np.quantile(values[name], q))
        key = tuple(np.flatnonzero(past))
        if key in seen:
            continue
        seen.add(key)
        block, record, ok = _run_cut(setup, past, q, k, rng)
        (used if ok else skipped).append(record if name == "scale" else {"axis": name, **record})
        if block is not None:
            blocks.append(block)
    return blocks, used, skipped


def _tau_posterior(
    blocks,
    rng: np.random.Generator,
    tau_prior_scale: float,
    slope_df: float | None,
    score: str = "pointwise",
):
    """Grid, normalised posterior weights and log likelihood of ``tau``."""
    grid = np.asarray(_TAU_GRID)
    if score == "joint":
        loglik = _tau_log_likelihood_joint(blocks, grid, slope_df)
    else:
        loglik = _tau_log_likelihood(blocks, grid, rng, slope_df)
    log_prior = -0.5 * (grid / tau_prior_scale) ** 2
    edges = np.concatenate([[grid[0]], (grid[1:] + grid[:-1]) / 2, [grid[-1]]])
    log_post = loglik + log_prior + np.log(np.diff(edges))
    w = np.exp(log_post - log_post.max())
    return grid, w / w.sum(), loglik


def calibrate_discrepancy(
    source,
    law: str | LawSpec | None = None,
    *,
    group: str | None = None,
    priors=None,
    pooling=None,
    likelihood: str | None = None,
    cuts: Sequence[float] = DEFAULT_CUTS,
    tau_prior_scale: float | None = None,
    unit: str = "span",
    slope_df: float | None = DEFAULT_SLOPE_DF,
    num_chains: int = 2,
    num_warmup: int = 300,
    num_samples: int = 300,
    max_draws: int = 1000,
    min_train: int | None = None,
    min_test: int = 3,
    seed: int = 0,
    method: str = "laplace",
    pad_to: int | None = None,
    score: str = "pointwise",
    axes: Sequence[str] = ("scale",),
) -> Discrepancy:
    """Learn the extrapolation discrepancy scale ``tau`` by leave-future-out inside the data.

    Parameters
    ----------
    source : InferenceData, DataFrame, str or Path
        A fit (its data, law, priors, pooling and likelihood are reused) or data in canonical
        columns (then ``law`` is required).
    law : str or LawSpec, optional
        The law, for data; ignored for a fit.
    group, priors, pooling, likelihood
        As for :func:`bayes_scaling.inference.fit`, for data (a fit's own are used for a fit).
        ``likelihood`` defaults to ``"student_t"``.
    cuts : sequence of float, default (0.7, 0.8, 0.9)
        Quantiles of the scale axis at which the data are split into a pseudo-past (fitted) and a
        pseudo-future (predicted).
    tau_prior_scale : float, optional
        Scale of the half-normal prior of the discrepancy per distance ``unit``: by default 0.2
        per span (log-target scale at a distance of one span of the data, see
        :func:`data_span`; 0.05 per e-fold for data spanning four e-folds of compute), 0.05 per
        e-fold.
    unit : {"span", "e-fold"}, default "span"
        Unit in which pseudo-future distances are measured while ``tau`` is learned: spans of
        each pseudo-past (see the module notes of :mod:`bayes_scaling.predict`), or natural-log
        units as they are (the earlier model; both are compared in ``benchmarks/RESULTS.md``).
    slope_df : float or None, default 3
        Degrees of freedom of the Student-t slope ``b / tau``; None for a normal slope (the
        earlier model). Heavy tails keep a few pseudo-futures that miss by much from inflating
        ``tau`` for all.
    num_chains, num_warmup, num_samples : int
        NUTS budget of each pseudo-past fit (small: only its predictive is needed).
    max_draws : int, default 1000
        Posterior draws used per pseudo-past fit.
    min_train : int, optional
        Fewest runs in a pseudo-past (default: 2 per parameter plus 4); smaller cuts are skipped.
    min_test : int, default 3
        Fewest runs in a pseudo-future.
    seed : int, default 0
    method : {"laplace", "nuts"}, default "laplace"
        Posterior of the pseudo-past fits (see :func:`bayes_scaling.inference.fit`). Gaussian
        draws at the mode by default: only each refit's predictive is needed, and the refits
        then take milliseconds each once their one program is compiled.
    pad_to : int, optional
        Pad every pseudo-past to this many rows (default: the data's own size) so that all
        refits share one compiled program; a caller that fits other subsets of a larger data
        set passes that set's size, and they all share it.
    score : {"pointwise", "joint"}, default "pointwise"
        How a pseudo-future's runs score ``tau``. ``"pointwise"``: one by one (a composite
        likelihood; each run counts as a look at the discrepancy). ``"joint"``: together, with
        the one slope per draw that the discrepancy model gives them all, so a pseudo-future
        counts once; ``tau`` is then led more by its prior.
        On the calibration issue's whole suite the joint score kept every case's 90% coverage
        at 0.75 or more (the pointwise one: four cases under) at the cost of wider 90%
        intervals (``benchmarks/RESULTS.md``); it is not yet the default.

    axes : sequence of str, default ("scale",)
        Axes along which the data are cut: ``"scale"`` (the scale axis, ``log N*D`` for laws
        over N and D) and any of the law's covariates (``"N"``: pseudo-futures of larger models;
        ``"D"``: of more tokens). Each axis adds its cuts' refits; ``tau`` is learned from all,
        and the record of a cut along a covariate names it (``"axis"``). On the calibration
        issue's whole suite ``("scale", "N", "D")`` left fewer cases under 0.75 at 90% and a
        worse pooled 90% interval score than the default (``benchmarks/RESULTS.md``).

    Returns
    -------
    Discrepancy
        The grid posterior of ``tau`` (per natural-log unit of distance; with ``unit="span"``,
        the per-span posterior divided by the whole data's span) and the box of the whole data.
        ``details["cuts"]`` records each refit used: its runs, distances, how its
        pseudo-future's runs leave the pseudo-past (``beyond_in``, see
        :meth:`Discrepancy.beyond_in`), warnings and, for NUTS, max R-hat, min bulk ESS and
        divergences; a ``RuntimeWarning`` names the refits
        whose chains disagree (R-hat above 1.05), since ``tau`` then moves with the seed.
        When no cut is usable (too few runs), ``tau`` follows its prior (``method="prior"``)
        and a warning says so: with no pseudo-future to learn from, the prior is the honest
        statement of how far the law may bend, where no discrepancy at all would claim it
        cannot.

    Notes
    -----
    See the module docstring for the model. The likelihood is composite (a product over
    pseudo-future runs of their predictive densities), which estimates the marginal scale of the
    discrepancy; runs at the same compute share errors, so its posterior is somewhat too narrow.
    """
    spec, frame, grouped, priors, pooling, likelihood = _source_model(
        source, law, group, priors, pooling, likelihood
    )
    tau_prior_scale = UNITS.get(unit, 1.0) if tau_prior_scale is None else tau_prior_scale
    _check_options(cuts, tau_prior_scale, unit, slope_df, score)
    coords = extrapolation_coordinates(spec)
    z_all = _coordinate_values(coords, frame)
    lower, upper = tuple(z_all.min(0)), tuple(z_all.max(0))
    setup = _Setup(
        spec=spec,
        frame=frame,
        grouped=grouped,
        priors=priors,
        pooling=pooling,
        likelihood=likelihood,
        fit_options={
            "num_chains": num_chains,
            "num_warmup": num_warmup,
            "num_samples": num_samples,
            "method": method,
        },
        max_draws=max_draws,
        min_train=2 * len(spec.params) + 4 if min_train is None else int(min_train),
        min_test=min_test,
        seed=seed,
        pad_to=max(len(frame), int(pad_to or 0)),
        per_span=unit == "span",
        axes=_check_axes(spec, axes),
    )
    rng = np.random.default_rng(seed)
    blocks, used, skipped = _run_cuts(setup, cuts, rng)
    record = {"cuts": used, "skipped": skipped, "n_runs": len(frame)}
    if not blocks:
        _warn_no_cut(setup, _PRIOR_ONLY.format(tau_prior_scale, unit))
    warn_unsettled(used)
    grid, weights, loglik = _tau_posterior(blocks, rng, tau_prior_scale, slope_df, score)
    span = data_span(spec, frame) if setup.per_span else 1.0
    disc = Discrepancy(
        tuple((grid / span).tolist()),
        tuple(weights.tolist()),
        coords,
        lower,
        upper,
        "leave-future-out" if blocks else "prior",
        **_df(slope_df),
    )
    per_span = dataclasses.replace(disc, tau_grid=tuple(grid.tolist()))
    details = {
        **record,
        "unit": unit,
        "span": span,
        "tau_prior_scale": tau_prior_scale,
        "tau_per_span_mle": float(grid[int(np.argmax(loglik))]) if blocks else None,
        "tau_per_span_median": per_span.tau_quantile(0.5),
        "tau_mle": float(grid[int(np.argmax(loglik))]) / span if blocks else None,
        **{k: v for k, v in disc.summary().items() if k not in ("coordinates", "method")},
    }
    return dataclasses.replace(disc, details=details)


def _df(slope_df: float | None) -> dict[str, Any]:
    return {"slope_df": None if slope_df is None else float(slope_df)}


_PRIOR_ONLY = (
    "tau is drawn from its half-normal prior (scale {:g} per {}), since nothing in the data says "
    "how far the law holds beyond them. Pass discrepancy=<tau> to set it by hand."
)


def _warn_no_cut(setup: _Setup, consequence: str) -> None:
    """Warn that no leave-future-out cut was usable, and say what the intervals carry instead."""
    warnings.warn(
        f"could not calibrate the extrapolation discrepancy of law {setup.spec.name!r} from the "
        f"data: no leave-future-out cut left at least {setup.min_train} runs to fit and "
        f"{setup.min_test} outside their range to predict ({len(setup.frame)} runs); "
        + consequence,
        RuntimeWarning,
        stacklevel=3,
    )


_MISSING = (
    "this fit has no stored extrapolation discrepancy (it was saved without one, e.g. by an "
    "older version or by bayes_scaling.fit): intervals carry parameter and noise uncertainty "
    "only. Learn one with discrepancy='calibrate' (several refits, stored in the fit) or pass "
    "discrepancy=<tau>"
)


def get_discrepancy(fit, discrepancy="auto", *, stacklevel: int = 3, **calibration):
    """Resolve a ``discrepancy`` argument against a fit; never refits unless asked to.

    Parameters
    ----------
    fit : InferenceData
        A fit (its ``posterior.attrs`` may hold a discrepancy, see :func:`attach_discrepancy`).
    discrepancy : "auto", "calibrate", None, float or Discrepancy, default "auto"
        ``"auto"`` (or True): the one stored in the fit; where it has none, a one-line
        ``UserWarning`` says so and the result is None (no discrepancy). ``"calibrate"``: learn
        it now with :func:`calibrate_discrepancy` (several small refits) and store it in the
        fit. ``None``, False or ``"off"``: off. A number: a fixed ``tau`` with the fit's data
        box. A :class:`Discrepancy`: used as given.
    stacklevel : int, default 3
        Of the warning: 3 points at the caller of the function that called this one.
    **calibration
        Keyword arguments of :func:`calibrate_discrepancy`, for ``"calibrate"``.

    Returns
    -------
    Discrepancy or None

    Raises
    ------
    ValueError
        For any other value.
    """
    if discrepancy is None or discrepancy is False or discrepancy == "off":
        return None
    if isinstance(discrepancy, Discrepancy):
        return discrepancy
    if discrepancy is True or discrepancy == "auto":
        stored = fit.posterior.attrs.get(DISCREPANCY_ATTR)
        if stored:
            return Discrepancy.from_json(stored)
        warnings.warn(_MISSING, UserWarning, stacklevel=stacklevel)
        return None
    if discrepancy == "calibrate":
        disc = calibrate_discrepancy(fit, **calibration)
        attach_discrepancy(fit, disc)
        return disc
    if isinstance(discrepancy, (int, float)) and not isinstance(discrepancy, bool):
        law = _inference.fit_spec(fit)["law"]
        return Discrepancy.fixed(float(discrepancy), law, _draws.fit_frame(fit))
    raise ValueError(
        "discrepancy must be 'auto', 'calibrate', None, a number (tau) or a Discrepancy; got "
        f"{discrepancy!r}"
    )
