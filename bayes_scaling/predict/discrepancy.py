"""The extrapolation discrepancy: the box of the training data, distances outside it, ``tau``.

See :mod:`bayes_scaling.predict` for the model; :func:`calibrate_discrepancy` (in
:mod:`bayes_scaling.predict.calibrate`) learns ``tau``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bayes_scaling.laws import LawSpec, get_law

DISCREPANCY_ATTR = "discrepancy"


def extrapolation_coordinates(law: str | LawSpec) -> tuple[str, ...]:
    """Log-covariate coordinates in which the distance from the training data is measured.

    Each covariate, plus ``"N*D"`` (log N + log D, compute up to a constant) for laws over N and D.
    """
    law = get_law(law)
    coords = tuple(law.covariates)
    if "N" in coords and "D" in coords:
        coords = (*coords, "N*D")
    return coords


def _coordinate_values(coordinates: Sequence[str], covariates: Any) -> np.ndarray:
    """(P, K) log coordinates of points given in natural units (a mapping or data frame)."""
    cols = []
    for c in coordinates:
        cols.append(sum(np.log(np.asarray(covariates[part], dtype=float)) for part in c.split("*")))
    return np.stack(cols, axis=-1)


@dataclasses.dataclass(frozen=True)
class Discrepancy:
    """Extrapolation discrepancy: log-scale shift ``b d(x)`` outside the training box, with the
    slope ``b`` of scale ``tau``.

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
        ``"leave-future-out"``, ``"prior"`` (no usable cut: ``tau`` from its prior),
        ``"fixed"`` or ``"uncalibrated"``.
    details : dict
        JSON-serialisable record of the calibration (cuts, points, summaries of ``tau``).
    slope_df : float or None, default None
        Degrees of freedom of the slope ``b / tau``: Student-t, or normal when None (a fixed
        ``tau`` and fits saved before this field existed).
    """

    tau_grid: tuple[float, ...]
    tau_weights: tuple[float, ...]
    coordinates: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    method: str = "leave-future-out"
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    slope_df: float | None = None

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
        if self.slope_df is not None and not (math.isfinite(self.slope_df) and self.slope_df > 0):
            raise ValueError(f"slope_df must be a finite number > 0 or None; got {self.slope_df}")

    @classmethod
    def fixed(cls, tau: float, law: str | LawSpec, covariates: Mapping[str, Any]) -> Discrepancy:
        """A given ``tau`` with the box spanned by ``covariates`` (the training data)."""
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

    def _excess(self, covariates: Mapping[str, Any]) -> np.ndarray:
        """(P, K) how far each point lies outside the box in each coordinate; 0 inside."""
        z = _coordinate_values(self.coordinates, covariates)
        lo, hi = np.asarray(self.lower), np.asarray(self.upper)
        return np.maximum(np.maximum(z - hi, lo - z), 0.0)

    def distance(self, covariates: Mapping[str, Any]) -> np.ndarray:
        """Distance (natural-log units) of each point outside the training box; 0 inside."""
        return self._excess(covariates).max(axis=-1)

    def beyond_in(self, covariates: Mapping[str, Any]) -> dict[str, int]:
        """How the points outside the box leave it: counts by the covariates whose training
        range they leave (``"N"``, ``"D"``, ``"N,D"``) or, for points inside every covariate's
        range, by the combined coordinate they are beyond in (``"N*D"``: a larger model trained
        longer than the training runs that reach its size). Points inside are not counted.

        Examples
        --------
        >>> runs = {"N": [1e8, 1e9, 1e8], "D": [1e10, 1e9, 1e9]}  # no run of 1e9 on 1e10 tokens
        >>> box = Discrepancy.fixed(0.0, "chinchilla", runs)
        >>> box.beyond_in({"N": [5e8, 4e9, 5e8, 1e8], "D": [5e9, 5e9, 4e10, 2e9]})
        {'N*D': 1, 'N': 1, 'D': 1}
        """
        beyond = self._excess(covariates) > 0
        single = [k for k, c in enumerate(self.coordinates) if "*" not in c]
        combined = [k for k, c in enumerate(self.coordinates) if "*" in c]
        counts: dict[str, int] = {}
        for row in beyond[beyond.any(axis=-1)]:
            left = [k for k in single if row[k]] or [k for k in combined if row[k]]
            label = ",".join(self.coordinates[k] for k in left)
            counts[label] = counts.get(label, 0) + 1
        return counts

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

    def sample_slope(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draws of the slope ``b = tau z``: ``tau`` from its grid posterior, ``z`` standard
        normal or Student-t with ``slope_df`` degrees of freedom."""
        tau = self.sample_tau(rng, size)
        z = (
            rng.standard_normal(size)
            if self.slope_df is None
            else rng.standard_t(self.slope_df, size)
        )
        return tau * z

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
            "slope_df": self.slope_df,
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
            slope_df=d.get("slope_df"),
        )


def attach_discrepancy(fit, discrepancy: Discrepancy | None):
    """Record a discrepancy in ``fit.posterior.attrs`` (saved with the fit) and return the fit."""
    if discrepancy is None:
        fit.posterior.attrs.pop(DISCREPANCY_ATTR, None)
    else:
        fit.posterior.attrs[DISCREPANCY_ATTR] = discrepancy.to_json()
    return fit
