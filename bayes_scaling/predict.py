"""Posterior predictions at new covariates, with an extrapolation discrepancy; the compute frontier.

Three kinds of draw, each with dims ``(chain, draw, point)`` and in the target's natural units:

``law_mean``
    The fitted law at the point: parameter uncertainty only.
``structural_mean``
    ``law_mean`` times ``exp(delta)``, where ``delta`` is the extrapolation discrepancy (below): the
    expected target of a run there once the law's own error away from the data is allowed for.
``new_run``
    ``structural_mean`` times ``exp(eps)``, with ``eps`` the run-to-run noise of the fit's
    likelihood (Student-t with the draw's ``sigma`` and ``nu``, or normal): what one new run
    will measure. Backtests score this band.

Extrapolation discrepancy
-------------------------
Intervals from parameter and noise uncertainty alone are too narrow far from the data, because
the law is only approximately right. The discrepancy adds, on the log scale,

.. math:: \\delta(x) = b\\, d(x), \\qquad b \\sim \\mathcal N(0, \\tau^2),

one ``b`` per posterior draw: a random change of log-log slope at the edge of the training data,
so a predicted curve stays a curve. ``d(x)`` is the distance (natural-log units) of ``x`` outside
the box the training data span in log-covariate coordinates: each covariate, plus ``N*D`` (that
is, compute ``C / 6``) for laws over ``N`` and ``D``, whose runs at the largest compute are not at
the largest ``N`` or ``D``. ``d`` is the largest excess over any coordinate, zero inside the data.
Inside the data the predictive is the fit's own.

``tau`` is learned from the training data by leave-future-out (:func:`calibrate_discrepancy`):
the runs are ordered along the scale axis (log ``N*D``, or the single covariate), oriented so the
target falls along it; for each cut (default: the 70%, 80% and 90% quantiles) the law is refitted
on the runs below the cut, and the runs above it are predicted, with their distance from the
smaller box. As in leave-future-out cross-validation (Bürkner, Gabry and Vehtari 2020), the score
of ``tau`` is the sum of the pseudo-future runs' pointwise log predictive densities, here with the
discrepancy added: a composite likelihood for ``tau``. With a half-normal prior (scale 0.05) its
posterior is computed on a grid and ``tau`` is drawn from it per posterior draw. With data from a
correct law ``tau`` concentrates near zero and the bands are the fit's own.

The cuts sit near the top of the data, as validation windows do in time-series backtests: each
pseudo-past keeps most of the data, as the real fit does, and the pseudo-futures are the largest
runs, where a law's error matters and, in practice, grows (on ``epoch-chinchilla`` below 1e21
FLOP, ``tau`` estimated from single cuts at 50/60/70/80/90% is 0.003, 0.004, 0.006, 0.007 and
0.014: early cuts understate the error at the scale being extrapolated to).

Limitations: runs of one pseudo-future share the refit's parameter error, which the pointwise
score counts as discrepancy, so ``tau`` errs on the wide side when a refit happens to miss: on
simulated data from the law itself it was 0.001 to 0.004 in a well-identified IsoFLOP design, but
0.02 in a weakly identified one (2% noise, where ``E`` trades off against the exponents). Its
posterior is narrower than it should be. ``d`` grows linearly: the data rarely say more than that.

References
----------
Bürkner, Gabry, Vehtari 2020, "Approximate leave-future-out cross-validation for Bayesian time
series models", Journal of Statistical Computation and Simulation 90(14).
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from bayes_scaling import data as _data
from bayes_scaling import inference as _inference
from bayes_scaling.laws import LawSpec, get_law

__all__ = [
    "KINDS",
    "Discrepancy",
    "attach_discrepancy",
    "calibrate_discrepancy",
    "extrapolation_coordinates",
    "fit_data",
    "get_discrepancy",
    "predict",
    "predict_draws",
    "predict_frontier",
]

KINDS = ("law_mean", "structural_mean", "new_run")
DISCREPANCY_ATTR = "discrepancy"
DEFAULT_CUTS = (0.7, 0.8, 0.9)
DEFAULT_TAU_PRIOR_SCALE = 0.05
_TAU_GRID = (0.0,) + tuple(float(v) for v in np.geomspace(1e-4, 1.0, 96))

# =========================================================================== the discrepancy


def extrapolation_coordinates(law: str | LawSpec) -> tuple[str, ...]:
    """Log-covariate coordinates in which the distance from the training data is measured.

    Each covariate, plus ``"N*D"`` (log N + log D, compute up to a constant) for laws over N and D.
    """
    law = get_law(law)
    coords = tuple(law.covariates)
    if "N" in coords and "D" in coords:
        coords = coords + ("N*D",)
    return coords


def _coordinate_values(coordinates: Sequence[str], covariates: Mapping[str, Any]) -> np.ndarray:
    """(P, K) log coordinates of points given in natural units."""
    cols = []
    for c in coordinates:
        cols.append(sum(np.log(np.asarray(covariates[part], dtype=float)) for part in c.split("*")))
    return np.stack(cols, axis=-1)


@dataclasses.dataclass(frozen=True)
class Discrepancy:
    """Extrapolation discrepancy: log-scale sd ``tau * d(x)`` outside the training box.

    Attributes
    ----------
    tau_grid, tau_weights : tuple of float
        The posterior of ``tau`` (per natural-log unit of distance) on a grid; one value with
        weight 1 for a fixed ``tau``.
    coordinates : tuple of str
        Log coordinates of the box (see :func:`extrapolation_coordinates`).
    lower, upper : tuple of float
        The training data's range in each coordinate (natural logs).
    method : str
        ``"leave-future-out"``, ``"fixed"`` or ``"uncalibrated"``.
    details : dict
        JSON-serialisable record of the calibration (cuts, points, summaries of ``tau``).
    """

    tau_grid: tuple[float, ...]
    tau_weights: tuple[float, ...]
    coordinates: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    method: str = "leave-future-out"
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.tau_grid) != len(self.tau_weights) or not self.tau_grid:
            raise ValueError("tau_grid and tau_weights must be non-empty and of equal length")
        if any(t < 0 for t in self.tau_grid):
            raise ValueError(f"tau must be >= 0; got {min(self.tau_grid)}")
        w = np.asarray(self.tau_weights, dtype=float)
        if np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError("tau_weights must be finite, >= 0 and not all zero")
        if not (len(self.coordinates) == len(self.lower) == len(self.upper)):
            raise ValueError("coordinates, lower and upper must have equal lengths")

    @classmethod
    def fixed(cls, tau: float, law: str | LawSpec, covariates: Mapping[str, Any]) -> Discrepancy:
        """A discrepancy with a given ``tau`` and the box spanned by ``covariates`` (training data)."""
        if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau >= 0):
            raise ValueError(f"tau must be a finite number >= 0; got {tau!r}")
        coords = extrapolation_coordinates(law)
        z = _coordinate_values(coords, covariates)
        return cls(
            (float(tau),),
            (1.0,),
            coords,
            tuple(z.min(0)),
            tuple(z.max(0)),
            "fixed",
            {"tau": float(tau)},
        )

    def distance(self, covariates: Mapping[str, Any]) -> np.ndarray:
        """Distance (natural-log units) of each point outside the training box; 0 inside."""
        z = _coordinate_values(self.coordinates, covariates)
        lo, hi = np.asarray(self.lower), np.asarray(self.upper)
        excess = np.maximum(np.maximum(z - hi, lo - z), 0.0)
        return excess.max(axis=-1)

    @property
    def _w(self) -> np.ndarray:
        w = np.asarray(self.tau_weights, dtype=float)
        return w / w.sum()

    def sample_tau(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draws of ``tau`` from its grid posterior (uniform within grid cells)."""
        grid = np.asarray(self.tau_grid, dtype=float)
        idx = rng.choice(grid.size, size=size, p=self._w)
        if grid.size == 1:
            return np.full(size, grid[0])
        edges = np.concatenate([[grid[0]], (grid[1:] + grid[:-1]) / 2, [grid[-1]]])
        return rng.uniform(edges[idx], edges[idx + 1])

    def tau_quantile(self, q: float) -> float:
        """Quantile of the grid posterior of ``tau``."""
        cdf = np.cumsum(self._w)
        return float(np.asarray(self.tau_grid)[min(int(np.searchsorted(cdf, q)), len(cdf) - 1)])

    def summary(self) -> dict[str, Any]:
        """Short JSON-serialisable description (used in backtest reports)."""
        return {
            "method": self.method,
            "tau_median": self.tau_quantile(0.5),
            "tau_q05": self.tau_quantile(0.05),
            "tau_q95": self.tau_quantile(0.95),
            "coordinates": list(self.coordinates),
        }

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["details"] = dict(self.details)
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> Discrepancy:
        d = json.loads(text)
        return cls(
            tau_grid=tuple(d["tau_grid"]),
            tau_weights=tuple(d["tau_weights"]),
            coordinates=tuple(d["coordinates"]),
            lower=tuple(d["lower"]),
            upper=tuple(d["upper"]),
            method=d.get("method", "leave-future-out"),
            details=d.get("details", {}),
        )


def attach_discrepancy(fit, discrepancy: Discrepancy | None):
    """Record a discrepancy in ``fit.posterior.attrs`` (saved with the fit) and return the fit."""
    if discrepancy is None:
        fit.posterior.attrs.pop(DISCREPANCY_ATTR, None)
    else:
        fit.posterior.attrs[DISCREPANCY_ATTR] = discrepancy.to_json()
    return fit


def fit_data(fit) -> pd.DataFrame:
    """The canonical data frame a fit was made from (covariates, target, ``group`` when grouped)."""
    info = _inference.fit_spec(fit)
    law: LawSpec = info["law"]
    const = fit.constant_data
    frame = pd.DataFrame({c: np.asarray(const[c].values, dtype=float) for c in law.covariates})
    frame[law.target] = np.exp(
        np.asarray(fit.observed_data[f"log_{law.target}"].values, dtype=float)
    )
    if info["groups"]:
        labels = np.asarray(info["groups"], dtype=object)
        frame["group"] = labels[np.asarray(const["group_index"].values, dtype=int)]
    return frame


def _scale_axis(law: LawSpec, frame: pd.DataFrame) -> np.ndarray:
    """The scale axis (log N*D, else the sum of log covariates) oriented so the target falls along it."""
    coord = "N*D" if "N*D" in extrapolation_coordinates(law) else "*".join(law.covariates)
    axis = _coordinate_values([coord], frame)[:, 0]
    y = np.log(frame[law.target].to_numpy(dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(axis, y)[0, 1] if axis.std() > 0 and y.std() > 0 else np.nan
    return -axis if corr > 0 else axis


def _t_logpdf_parts(sigma: np.ndarray, nu: np.ndarray | None):
    from scipy.special import gammaln

    if nu is None:
        return None, -np.log(sigma) - 0.5 * math.log(2 * math.pi)
    nu = np.asarray(nu, dtype=float)
    finite = np.isfinite(nu)
    nu_f = np.where(finite, nu, 1.0)
    const_t = (
        gammaln((nu_f + 1) / 2) - gammaln(nu_f / 2) - 0.5 * np.log(nu_f * math.pi) - np.log(sigma)
    )
    const_n = -np.log(sigma) - 0.5 * math.log(2 * math.pi)
    return (nu_f, finite), np.where(finite, const_t, const_n)


def _noise_logpdf(resid: np.ndarray, sigma: np.ndarray, nu: np.ndarray | None) -> np.ndarray:
    """log density of ``resid`` (S, P) under per-draw Student-t/normal noise (sigma, nu of shape (S,))."""
    parts, const = _t_logpdf_parts(sigma, nu)
    z2 = (resid / sigma[:, None]) ** 2
    if parts is None:
        return const[:, None] - 0.5 * z2
    nu_f, finite = parts
    t = const[:, None] - 0.5 * (nu_f[:, None] + 1) * np.log1p(z2 / nu_f[:, None])
    n = const[:, None] - 0.5 * z2
    return np.where(finite[:, None], t, n)


def _tau_log_likelihood(blocks, grid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Composite log likelihood of ``tau`` on a grid from leave-future-out blocks.

    Each block holds y (J,), mu (S, J), sigma (S,), nu (S,) or None, d (J,). The predictive of
    y_j is the mixture over draws s of noise(y_j - mu_sj - b_s d_j) with b_s = tau z_s; z_s are
    stratified normal quantiles in random order (one per draw), so the Monte Carlo error is
    small and the likelihood is smooth in tau.
    """
    from scipy.special import logsumexp
    from scipy.stats import norm

    out = np.zeros(grid.size)
    for y, mu, sigma, nu, d in blocks:
        s = mu.shape[0]
        z = norm.ppf((rng.permutation(s) + 0.5) / s)
        resid0 = y[None, :] - mu
        for g, tau in enumerate(grid):
            logp = _noise_logpdf(resid0 - tau * z[:, None] * d[None, :], sigma, nu)
            out[g] += float(np.sum(logsumexp(logp, axis=0) - math.log(s)))
    return out


def calibrate_discrepancy(
    source,
    law: str | LawSpec | None = None,
    *,
    group: str | None = None,
    priors=None,
    pooling=None,
    likelihood: str | None = None,
    cuts: Sequence[float] = DEFAULT_CUTS,
    tau_prior_scale: float = DEFAULT_TAU_PRIOR_SCALE,
    num_chains: int = 2,
    num_warmup: int = 300,
    num_samples: int = 300,
    max_draws: int = 1000,
    min_train: int | None = None,
    min_test: int = 3,
    seed: int = 0,
    method: str = "nuts",
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
    tau_prior_scale : float, default 0.05
        Scale of the half-normal prior of ``tau`` (log-target sd per natural-log unit of distance).
    num_chains, num_warmup, num_samples : int
        NUTS budget of each pseudo-past fit (small: only its predictive is needed).
    max_draws : int, default 1000
        Posterior draws used per pseudo-past fit.
    min_train : int, optional
        Fewest runs in a pseudo-past (default: 2 per parameter plus 4); smaller cuts are skipped.
    min_test : int, default 3
        Fewest runs in a pseudo-future.
    seed : int, default 0
    method : {"nuts", "laplace"}, default "nuts"
        Posterior of the pseudo-past fits (see :func:`bayes_scaling.inference.fit`).

    Returns
    -------
    Discrepancy
        The grid posterior of ``tau`` and the box of the whole data. When no cut is usable (too
        few runs) a :class:`Discrepancy` with ``tau = 0`` and ``method = "uncalibrated"`` is
        returned with a warning.

    Notes
    -----
    See the module docstring for the model. The likelihood is composite (a product over
    pseudo-future runs of their predictive densities), which estimates the marginal scale of the
    discrepancy; runs at the same compute share errors, so its posterior is somewhat too narrow.
    """
    if isinstance(source, (pd.DataFrame, str)) or hasattr(source, "__fspath__"):
        if law is None:
            raise ValueError("calibrate_discrepancy needs law= when given data rather than a fit")
        spec = get_law(law)
        frame = _data.validate(source, spec, group=group)
        grouped = group is not None
        likelihood = likelihood or "student_t"
    else:
        info = _inference.fit_spec(source)
        spec = info["law"]
        frame = fit_data(source)
        grouped = bool(info["groups"])
        priors = info["priors"]
        pooling = info["pooling"] if grouped else None
        likelihood = info["likelihood"]
    if not tau_prior_scale > 0:
        raise ValueError(f"tau_prior_scale must be > 0; got {tau_prior_scale}")
    bad_cuts = [c for c in cuts if not 0 < c < 1]
    if bad_cuts or not len(cuts):
        raise ValueError(f"cuts must be quantiles in (0, 1); got {list(cuts)}")
    coords = extrapolation_coordinates(spec)
    z_all = _coordinate_values(coords, frame)
    lower, upper = tuple(z_all.min(0)), tuple(z_all.max(0))
    min_train = 2 * len(spec.params) + 4 if min_train is None else int(min_train)

    axis = _scale_axis(spec, frame)
    rng = np.random.default_rng(seed)
    blocks, used, skipped = [], [], []
    seen = set()
    for k, q in enumerate(sorted(cuts)):
        threshold = float(np.quantile(axis, q))
        past = axis <= threshold
        key = tuple(np.flatnonzero(past))
        if key in seen:
            continue
        seen.add(key)
        n_past, n_future = int(past.sum()), int((~past).sum())
        if n_past < min_train or n_future < min_test:
            skipped.append(
                {"cut": q, "n_past": n_past, "n_future": n_future, "reason": "too few runs"}
            )
            continue
        train, test = frame[past], frame[~past]
        if grouped:
            test = test[test["group"].isin(set(train["group"]))]
            if len(test) < min_test:
                skipped.append(
                    {
                        "cut": q,
                        "n_past": n_past,
                        "n_future": len(test),
                        "reason": "future groups unseen",
                    }
                )
                continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                idata = _inference.fit(
                    train,
                    spec,
                    priors=priors,
                    group="group" if grouped else None,
                    pooling=pooling if grouped else None,
                    likelihood=likelihood,
                    num_chains=num_chains,
                    num_warmup=num_warmup,
                    num_samples=num_samples,
                    seed=seed + 1 + k,
                    prior_samples=0,
                    pad_to=len(frame),  # every pseudo-past shares one compiled program
                    method=method,
                )
            except (ValueError, RuntimeError) as exc:
                skipped.append(
                    {"cut": q, "n_past": n_past, "n_future": n_future, "reason": str(exc)}
                )
                continue
        notes = sorted(
            {str(w.message).split(":")[0] for w in caught if issubclass(w.category, RuntimeWarning)}
        )
        sub_coords = _coordinate_values(coords, train)
        box = Discrepancy(
            (0.0,), (1.0,), coords, tuple(sub_coords.min(0)), tuple(sub_coords.max(0)), "fixed"
        )
        d = box.distance(test)
        labels = test["group"].astype(str).to_numpy(dtype=object) if grouped else None
        mu, sigma, nu = _log_mu_draws(idata, spec, test, labels)
        if mu.shape[0] > max_draws:
            pick = rng.choice(mu.shape[0], size=max_draws, replace=False)
            mu, sigma, nu = mu[pick], sigma[pick], (None if nu is None else nu[pick])
        y = np.log(test[spec.target].to_numpy(dtype=float))
        keep = d > 0
        if keep.any():
            blocks.append((y[keep], mu[:, keep], sigma, nu, d[keep]))
        used.append(
            {
                "cut": q,
                "n_past": n_past,
                "n_future": len(test),
                "n_outside": int(keep.sum()),
                "max_distance": float(d.max()),
                "fit_warnings": notes,
            }
        )
    grid = np.asarray(_TAU_GRID)
    if not blocks:
        warnings.warn(
            f"could not calibrate the extrapolation discrepancy of law {spec.name!r}: no leave-future-out "
            f"cut left at least {min_train} runs to fit and {min_test} outside their range to predict "
            f"({len(frame)} runs); intervals carry parameter and noise uncertainty only. Pass "
            "discrepancy=<tau> to set it by hand.",
            RuntimeWarning,
            stacklevel=2,
        )
        return Discrepancy(
            (0.0,),
            (1.0,),
            coords,
            lower,
            upper,
            "uncalibrated",
            {"cuts": used, "skipped": skipped, "n_runs": len(frame)},
        )
    loglik = _tau_log_likelihood(blocks, grid, rng)
    log_prior = -0.5 * (grid / tau_prior_scale) ** 2
    edges = np.concatenate([[grid[0]], (grid[1:] + grid[:-1]) / 2, [grid[-1]]])
    log_post = loglik + log_prior + np.log(np.diff(edges))
    w = np.exp(log_post - log_post.max())
    disc = Discrepancy(
        tuple(grid.tolist()),
        tuple((w / w.sum()).tolist()),
        coords,
        lower,
        upper,
        "leave-future-out",
        {},
    )
    details = {
        "cuts": used,
        "skipped": skipped,
        "n_runs": len(frame),
        "tau_prior_scale": tau_prior_scale,
        "tau_mle": float(grid[int(np.argmax(loglik))]),
        **disc.summary(),
    }
    details.pop("coordinates")
    details.pop("method")
    return dataclasses.replace(disc, details=details)


def get_discrepancy(fit, discrepancy="auto", **calibration) -> Discrepancy | None:
    """Resolve a ``discrepancy`` argument against a fit.

    ``"auto"`` (or True): the one recorded in the fit (:func:`attach_discrepancy`), else
    calibrated now with :func:`calibrate_discrepancy` (several small refits) and recorded.
    ``None`` or False: off. A number: a fixed ``tau`` with the fit's data box. A
    :class:`Discrepancy`: used as given.
    """
    if discrepancy is None or discrepancy is False or discrepancy == "off":
        return None
    if isinstance(discrepancy, Discrepancy):
        return discrepancy
    if discrepancy is True or discrepancy == "auto":
        stored = fit.posterior.attrs.get(DISCREPANCY_ATTR)
        if stored:
            return Discrepancy.from_json(stored)
        disc = calibrate_discrepancy(fit, **calibration)
        attach_discrepancy(fit, disc)
        return disc
    if isinstance(discrepancy, (int, float)) and not isinstance(discrepancy, bool):
        law = _inference.fit_spec(fit)["law"]
        return Discrepancy.fixed(float(discrepancy), law, fit_data(fit))
    raise ValueError(
        f"discrepancy must be 'auto', None, a number (tau) or a Discrepancy; got {discrepancy!r}"
    )


# =========================================================================== draws at points


def _validate_points(
    law: LawSpec, points, *, grouped: bool, group
) -> tuple[dict[str, np.ndarray], pd.Index, np.ndarray | None]:
    """Covariates (natural units) and per-point group labels from a frame or mapping."""
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
    if len(frame) == 0:
        raise _data.DataError("no points to predict at (points is empty)")
    missing = [c for c in law.covariates if c not in frame.columns]
    if missing:
        hint = ""
        if "D" in missing and {"C", "N"} <= set(frame.columns):
            hint = "; derive it as D = C / (6 N)"
        raise _data.DataError(
            f"points lack covariate{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} required by "
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
                f"{'s' if bad.sum() > 1 else ''} (first at row {frame.index[np.flatnonzero(bad)[0]]})"
            )
        nonpos = values <= 0
        if nonpos.any():
            raise _data.DataError(
                f"points column {c!r} must be > 0 (law {law.name!r} is a function of log {c}); found "
                f"{int(nonpos.sum())} non-positive value{'s' if nonpos.sum() > 1 else ''} "
                f"(first at row {frame.index[np.flatnonzero(nonpos)[0]]})"
            )
        out[c] = values
    labels = None
    if grouped:
        if group is not None:
            labels = np.full(len(frame), str(group), dtype=object)
        elif "group" in frame.columns:
            labels = frame["group"].astype(str).to_numpy(dtype=object)
    return out, frame.index, labels


def _finite_draws(fit, group: str | None = None, *, seed: int = 0) -> dict[str, np.ndarray]:
    """:func:`~bayes_scaling.inference.posterior_draws`, refusing non-finite values.

    A sampler that failed (or a corrupted file) leaves NaN or infinite draws, which would turn
    every band into NaN; ``nu = inf`` (a normal likelihood) is the one non-finite value allowed.

    Raises
    ------
    ValueError
        Naming the first parameter with non-finite draws, how many and where.
    """
    draws = _inference.posterior_draws(fit, group, seed=seed)
    for name, values in draws.items():
        bad = np.isnan(values) | (np.isinf(values) & ((name != "nu") | (values < 0)))
        if bad.any():
            where = "" if group is None else f" (group {group!r})"
            raise ValueError(
                f"the fit has {int(bad.sum())} non-finite posterior draws of {name!r}{where}, of "
                f"{values.size} (first at flat draw {int(np.argmax(bad))}): the sampler failed or "
                "the file is damaged; check its diagnostics and refit (more warmup, tighter "
                "priors)"
            )
    return draws


def _log_mu_draws(fit, law: LawSpec, covariates, labels, *, seed: int = 0):
    """(S, P) log law values, sigma (S,), nu (S,) or None; per-point group labels when grouped.

    Labels the fit does not know are predicted as a new group drawn from the population.
    """
    info = _inference.fit_spec(fit)
    known = set(info["groups"])
    x = {c: jnp.log(jnp.asarray(np.asarray(covariates[c], dtype=float))) for c in law.covariates}
    n = len(np.asarray(covariates[law.covariates[0]]))
    if labels is None:
        draws = _finite_draws(fit, None, seed=seed)
        params = {k: jnp.asarray(draws[k]) for k in law.param_names}
        mu_all = np.asarray(jax.vmap(law.fn, in_axes=(0, None))(params, x), dtype=float)
        return (
            mu_all,
            draws["sigma"],
            draws.get("nu") if info["likelihood"] == "student_t" else None,
        )
    keys = np.asarray([g if g in known else "new" for g in labels], dtype=object)
    mu: np.ndarray | None = None
    sigma = nu = None
    for g in pd.unique(keys):
        rows = np.flatnonzero(keys == g)
        draws = _finite_draws(fit, g, seed=seed)
        params = {k: jnp.asarray(draws[k]) for k in law.param_names}
        xg = {k: v[rows] for k, v in x.items()}
        m = np.asarray(jax.vmap(law.fn, in_axes=(0, None))(params, xg), dtype=float)
        if mu is None:
            mu = np.empty((m.shape[0], n))
        mu[:, rows] = m
        sigma = draws["sigma"]
        nu = draws.get("nu") if info["likelihood"] == "student_t" else None
    return mu, sigma, nu


def _rng_from(rng_key, seed: int) -> np.random.Generator:
    if rng_key is None:
        return np.random.default_rng(seed)
    data = np.asarray(
        jax.random.key_data(rng_key)
        if jnp.issubdtype(jnp.asarray(rng_key).dtype, jax.dtypes.prng_key)
        else rng_key
    )
    return np.random.default_rng([int(v) for v in data.ravel()])


def predict_draws(
    fit,
    points,
    *,
    group: str | None = None,
    discrepancy: Discrepancy | None = None,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The array core of :func:`predict`: flat draws ``(S, P)`` on the log scale.

    Returns a dict with ``log_law_mean``, ``delta`` (discrepancy draws), ``eps`` (noise draws),
    ``sigma`` and ``nu`` (``(S,)``; ``nu`` None for a normal likelihood), ``distance`` (P,),
    ``covariates`` (natural units) and ``index`` (the points' labels).
    """
    info = _inference.fit_spec(fit)
    law: LawSpec = info["law"]
    grouped = bool(info["groups"])
    if (
        grouped
        and group is None
        and not (isinstance(points, pd.DataFrame) and "group" in points.columns)
    ):
        raise ValueError(
            f"this fit is hierarchical over groups {info['groups']}: pass group= one of them or 'new' "
            "(a group drawn from the population), or give points a 'group' column"
        )
    if not grouped and group not in (None, "new"):
        raise ValueError(f"group={group!r} given, but this fit has no groups")
    if grouped and group is not None and group != "new" and group not in info["groups"]:
        raise ValueError(
            f"unknown group {group!r}; the fit's groups are {info['groups']} (or 'new' for an unseen group)"
        )
    covariates, index, labels = _validate_points(law, points, grouped=grouped, group=group)
    pop_seed = int(rng.integers(2**31 - 1))
    log_mu, sigma, nu = _log_mu_draws(fit, law, covariates, labels, seed=pop_seed)
    s, p = log_mu.shape
    if discrepancy is None:
        distance = np.zeros(p)
        delta = np.zeros((s, p))
    else:
        distance = discrepancy.distance(covariates)
        b = discrepancy.sample_tau(rng, s) * rng.standard_normal(s)
        delta = b[:, None] * distance[None, :]
    if nu is None:
        eps = sigma[:, None] * rng.standard_normal((s, p))
    else:
        finite = np.isfinite(nu)
        t = rng.standard_t(np.where(finite, nu, 1.0)[:, None], size=(s, p))
        eps = sigma[:, None] * np.where(finite[:, None], t, rng.standard_normal((s, p)))
    return {
        "log_law_mean": log_mu,
        "delta": delta,
        "eps": eps,
        "sigma": sigma,
        "nu": nu,
        "distance": distance,
        "covariates": covariates,
        "index": index,
    }


def _check_quantiles(quantiles: Sequence[float]) -> list[float]:
    qs = [float(q) for q in quantiles]
    bad = [q for q in qs if not 0 < q < 1]
    if bad:
        raise ValueError(f"quantiles must be in (0, 1); got {bad}")
    return qs


def predict(
    fit,
    points,
    *,
    group: str | None = None,
    kind: str | Sequence[str] = KINDS,
    discrepancy: Any = "auto",
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
    rng_key: jax.Array | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """Posterior predictive draws of the target at new covariates, with bands.

    Parameters
    ----------
    fit : InferenceData
        A fit from :func:`bayes_scaling.inference.fit`.
    points : DataFrame or mapping
        The law's covariates in natural units (e.g. columns ``N`` and ``D``), one row per point;
        for a hierarchical fit optionally a ``group`` column (labels the fit does not know are
        predicted as a new group).
    group : str, optional
        For a hierarchical fit: a group label, or ``"new"`` for a group drawn from the fitted
        population (wider bands: the between-group spread is added).
    kind : str or sequence of str, default all of ``("law_mean", "structural_mean", "new_run")``
        Which draws to return (see the module docstring).
    discrepancy : "auto", None, float or Discrepancy, default "auto"
        Extrapolation discrepancy: ``"auto"`` uses the one recorded in the fit, or calibrates it
        by leave-future-out (:func:`calibrate_discrepancy`; several small refits, recorded in
        ``fit.posterior.attrs`` for later calls); None turns it off; a number fixes ``tau``.
    quantiles : sequence of float, default (0.05, 0.5, 0.95)
        Quantiles for the summary variables.
    rng_key : jax.Array, optional
        Key for the noise, discrepancy and population draws; default ``PRNGKey(seed)``.
    seed : int, default 0

    Returns
    -------
    xarray.Dataset
        For each requested kind ``K``: ``K`` with dims ``(chain, draw, point)``, ``K_mean``
        ``(point,)`` and ``K_quantiles`` ``(quantile, point)``. (A Student-t on the log scale
        gives the target itself no finite mean: ``new_run_mean`` is unstable when ``nu`` is
        small; the quantiles are the robust summary.) Also ``distance`` (point): the
        distance outside the training range in natural-log units, and ``discrepancy_sd`` (point):
        the posterior median of ``tau`` times ``distance``. The covariates are coordinates on
        ``point``; ``attrs`` record the law, target, group and discrepancy.

    Raises
    ------
    DataError
        Points missing a covariate of the law, or with non-positive or non-finite values.
    ValueError
        A group that the fit does not have, a missing group for a hierarchical fit, bad quantiles
        or kind.

    Examples
    --------
    >>> from bayes_scaling import fit, load_dataset  # doctest: +SKIP
    >>> idata = fit(load_dataset("demo"), "chinchilla", num_chains=2, num_warmup=300,
    ...             num_samples=300)  # doctest: +SKIP
    >>> pred = predict(idata, {"N": [7e10], "D": [1.4e12]}, discrepancy=0.01)  # doctest: +SKIP
    >>> pred["new_run_quantiles"].sel(quantile=0.5).values  # doctest: +SKIP
    """
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown kind {unknown or kinds!r}; expected some of {', '.join(KINDS)}")
    qs = _check_quantiles(quantiles)
    info = _inference.fit_spec(fit)
    law: LawSpec = info["law"]
    disc = get_discrepancy(fit, discrepancy)
    rng = _rng_from(rng_key if rng_key is not None else jax.random.PRNGKey(seed), seed)
    core = predict_draws(fit, points, group=group, discrepancy=disc, rng=rng)
    nc, nd = fit.posterior.sizes["chain"], fit.posterior.sizes["draw"]
    logs = {
        "law_mean": core["log_law_mean"],
        "structural_mean": core["log_law_mean"] + core["delta"],
        "new_run": core["log_law_mean"] + core["delta"] + core["eps"],
    }
    p = core["distance"].size
    coords: dict[str, Any] = {
        "chain": np.arange(nc),
        "draw": np.arange(nd),
        "point": np.arange(p),
        "quantile": qs,
    }
    for c, v in core["covariates"].items():
        coords[c] = ("point", v)
    ds = xr.Dataset(coords=coords)
    for k in kinds:
        with np.errstate(over="ignore"):  # Student-t tails: a draw may exceed the float range
            values = np.exp(logs[k])
        ds[k] = (("chain", "draw", "point"), values.reshape(nc, nd, p))
        ds[f"{k}_mean"] = (("point",), values.mean(axis=0))
        ds[f"{k}_quantiles"] = (("quantile", "point"), np.quantile(values, qs, axis=0))
    ds["distance"] = (("point",), core["distance"])
    tau_med = disc.tau_quantile(0.5) if disc is not None else 0.0
    ds["discrepancy_sd"] = (("point",), tau_med * core["distance"])
    ds.attrs.update(
        {
            "law": law.name,
            "target": law.target,
            "group": "" if group is None else str(group),
            "discrepancy": "" if disc is None else disc.to_json(),
            "kinds": json.dumps(list(kinds)),
        }
    )
    return ds


# =========================================================================== the compute frontier


def _optimal_log_n(
    law: LawSpec, params: Mapping[str, np.ndarray], log_c6: np.ndarray
) -> np.ndarray:
    """(S, K) log N minimising the law at N * D = C / k, per draw and budget.

    Closed form for ``chinchilla``; otherwise a grid over tokens per parameter from 1e-2 to 1e5
    (400 points) refined by a parabola through the best grid point and its neighbours.
    """
    if law.name == "chinchilla":
        a, b = params["alpha"][:, None], params["beta"][:, None]
        log_g = (np.log(a * params["A"][:, None]) - np.log(b * params["B"][:, None])) / (a + b)
        return log_g + (b / (a + b)) * log_c6[None, :]
    log_r = np.linspace(math.log(1e-2), math.log(1e5), 400)
    jparams = {k: jnp.asarray(v) for k, v in params.items()}
    grid_fn = jax.jit(jax.vmap(law.fn, in_axes=(0, None)))
    vals = np.stack(  # (S, K, R), one budget at a time to bound memory
        [
            np.asarray(
                grid_fn(
                    jparams,
                    {"N": jnp.asarray(0.5 * (lc - log_r)), "D": jnp.asarray(0.5 * (lc + log_r))},
                ),
                dtype=float,
            )
            for lc in log_c6
        ],
        axis=1,
    )
    vals = np.where(np.isfinite(vals), vals, np.inf)
    i = np.clip(np.argmin(vals, axis=-1), 1, log_r.size - 2)
    f0 = np.take_along_axis(vals, (i - 1)[..., None], -1)[..., 0]
    f1 = np.take_along_axis(vals, i[..., None], -1)[..., 0]
    f2 = np.take_along_axis(vals, (i + 1)[..., None], -1)[..., 0]
    h = log_r[1] - log_r[0]
    denom = f0 - 2 * f1 + f2
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(denom > 0, 0.5 * h * (f0 - f2) / denom, 0.0)
    best_log_r = log_r[i] + np.clip(np.nan_to_num(shift), -h, h)
    return 0.5 * (log_c6[None, :] - best_log_r)


def predict_frontier(
    fit,
    compute: Sequence[float] | np.ndarray,
    tokens_per_param: float | None = None,
    *,
    group: str | None = None,
    discrepancy: Any = "auto",
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
    flops_per_token: float = 6.0,
    rng_key: jax.Array | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """Loss per compute budget at each draw's compute-optimal allocation and at a fixed one.

    Parameters
    ----------
    fit : InferenceData
        A fit of a law over ``N`` and ``D`` only (``chinchilla``, ``kaplan``, or a registered law
        with those covariates).
    compute : array of float
        Training compute budgets ``C`` (FLOP), with ``C = flops_per_token * N * D``.
    tokens_per_param : float, optional
        The fixed allocation ``D / N``. Default: the posterior median of the optimal ``D / N`` at
        each budget (the allocation a planner would commit to).
    group : str, optional
        For hierarchical fits: a group label or ``"new"``.
    discrepancy : "auto", None, float or Discrepancy, default "auto"
        As for :func:`predict`; ``structural`` variables include it.
    quantiles : sequence of float, default (0.05, 0.5, 0.95)
    flops_per_token : float, default 6.0
    rng_key : jax.Array, optional
    seed : int, default 0

    Returns
    -------
    xarray.Dataset
        Dims ``(chain, draw, budget)``: ``N_opt``, ``D_opt`` (the draw's optimal allocation),
        ``loss_opt`` (law at it, parameter uncertainty), ``loss_opt_structural`` (with the
        discrepancy); ``loss_fixed``, ``loss_fixed_structural`` at the fixed allocation
        ``N_fixed``, ``D_fixed`` (dims ``(budget,)``). Each loss variable ``V`` also has
        ``V_quantiles`` ``(quantile, budget)``. Coordinate ``C`` on ``budget``.

    Raises
    ------
    ValueError
        A law not over exactly ``N`` and ``D``, or non-positive budgets or ratio.

    Notes
    -----
    For the Chinchilla law the optimum is closed form, :math:`N^* = G (C/k)^{\\beta/(\\alpha+\\beta)}`
    with :math:`G = (\\alpha A / \\beta B)^{1/(\\alpha+\\beta)}` (Hoffmann et al. 2022, eq. 4).
    """
    info = _inference.fit_spec(fit)
    law: LawSpec = info["law"]
    if set(law.covariates) != {"N", "D"}:
        raise ValueError(
            f"predict_frontier needs a law over N and D only; law {law.name!r} has covariates "
            f"{list(law.covariates)}"
        )
    c = np.atleast_1d(np.asarray(compute, dtype=float))
    if c.ndim != 1 or c.size == 0 or not np.all(np.isfinite(c) & (c > 0)):
        raise ValueError(
            f"compute must be a non-empty 1-d array of finite budgets > 0; got {compute!r}"
        )
    if not flops_per_token > 0:
        raise ValueError(f"flops_per_token must be > 0; got {flops_per_token}")
    if tokens_per_param is not None and not (
        math.isfinite(tokens_per_param) and tokens_per_param > 0
    ):
        raise ValueError(f"tokens_per_param must be a finite number > 0; got {tokens_per_param!r}")
    qs = _check_quantiles(quantiles)
    grouped = bool(info["groups"])
    if grouped and group is None:
        raise ValueError(
            f"this fit is hierarchical over groups {info['groups']}: pass group= one of them or 'new'"
        )
    rng = _rng_from(rng_key if rng_key is not None else jax.random.PRNGKey(seed), seed)
    draws = _finite_draws(fit, group, seed=int(rng.integers(2**31 - 1)))
    params = {k: np.asarray(draws[k], dtype=float) for k in law.param_names}
    log_c6 = np.log(c / flops_per_token)
    log_n_opt = _optimal_log_n(law, params, log_c6)  # (S, K)
    log_d_opt = log_c6[None, :] - log_n_opt
    if tokens_per_param is None:
        log_ratio = np.median(log_d_opt - log_n_opt, axis=0)
    else:
        log_ratio = np.full(c.size, math.log(tokens_per_param))
    log_n_fixed = 0.5 * (log_c6 - log_ratio)
    log_d_fixed = log_c6 - log_n_fixed
    jparams = {k: jnp.asarray(v) for k, v in params.items()}
    loss_opt = np.asarray(
        jax.vmap(law.fn)(jparams, {"N": jnp.asarray(log_n_opt), "D": jnp.asarray(log_d_opt)}),
        dtype=float,
    )
    loss_fixed = np.asarray(
        jax.vmap(law.fn, in_axes=(0, None))(
            jparams, {"N": jnp.asarray(log_n_fixed), "D": jnp.asarray(log_d_fixed)}
        ),
        dtype=float,
    )
    disc = get_discrepancy(fit, discrepancy)
    s = loss_opt.shape[0]
    if disc is None:
        b = np.zeros(s)
        dist_opt = np.zeros_like(loss_opt)
        dist_fixed = np.zeros(c.size)
    else:
        b = disc.sample_tau(rng, s) * rng.standard_normal(s)
        dist_opt = disc.distance({"N": np.exp(log_n_opt), "D": np.exp(log_d_opt)})
        dist_fixed = disc.distance({"N": np.exp(log_n_fixed), "D": np.exp(log_d_fixed)})
    nc, nd = fit.posterior.sizes["chain"], fit.posterior.sizes["draw"]
    k = c.size
    shape = (nc, nd, k)
    dims = ("chain", "draw", "budget")
    ds = xr.Dataset(
        coords={
            "chain": np.arange(nc),
            "draw": np.arange(nd),
            "budget": np.arange(k),
            "quantile": qs,
            "C": ("budget", c),
        }
    )
    ds["N_opt"] = (dims, np.exp(log_n_opt).reshape(shape))
    ds["D_opt"] = (dims, np.exp(log_d_opt).reshape(shape))
    ds["N_fixed"] = (("budget",), np.exp(log_n_fixed))
    ds["D_fixed"] = (("budget",), np.exp(log_d_fixed))
    variables = {
        "loss_opt": loss_opt,
        "loss_opt_structural": loss_opt + b[:, None] * dist_opt,
        "loss_fixed": np.broadcast_to(loss_fixed, (s, k)),
        "loss_fixed_structural": loss_fixed + b[:, None] * dist_fixed[None, :],
    }
    for name, log_values in variables.items():
        values = np.exp(log_values)
        ds[name] = (dims, values.reshape(shape))
        ds[f"{name}_quantiles"] = (("quantile", "budget"), np.quantile(values, qs, axis=0))
    ds.attrs.update(
        {
            "law": law.name,
            "target": law.target,
            "group": "" if group is None else str(group),
            "flops_per_token": flops_per_token,
            "tokens_per_param": "posterior median of the optimum"
            if tokens_per_param is None
            else float(tokens_per_param),
            "discrepancy": "" if disc is None else disc.to_json(),
        }
    )
    return ds
