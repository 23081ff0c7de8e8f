"""How well the discrepancy calibration's refits converged: their figures, in the calibration's
record of each cut, and a warning where their chains disagree."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bayes_scaling import _warnings
from bayes_scaling import inference as _inference

__all__ = ["UNSETTLED_RHAT", "refit_figures", "unsettled_refits", "warn_unsettled"]


def refit_figures(idata) -> dict[str, Any]:
    """A refit's max R-hat, min bulk ESS and divergences; empty without chains (Laplace)."""
    if "sample_stats" not in idata.groups() or "diverging" not in idata.sample_stats:
        return {}
    d = _inference.diagnostics(idata.posterior, idata.sample_stats)
    if not (math.isfinite(d["max_rhat"]) and math.isfinite(d["min_ess"])):
        return {}
    return {
        "max_rhat": round(d["max_rhat"], 4),
        "min_ess": round(d["min_ess"], 1),
        "divergences": d["divergences"],
    }


# a refit's chains that disagree beyond this (its draws are few: 2 x 300 by default) sit in
# different regions of the pseudo-past's posterior, and its predictive is then one of them
UNSETTLED_RHAT = 1.05


def unsettled_refits(cuts: Sequence[Mapping[str, Any]]) -> str:
    """The refits among a calibration's ``details["cuts"]`` whose chains disagree (R-hat above
    ``UNSETTLED_RHAT``), in words; empty when there are none."""
    return "; ".join(
        f"at cut {c['cut']:g} on {c['n_past']} runs, R-hat {c['max_rhat']:.2f} and bulk ESS "
        f"{c['min_ess']:.0f}"
        for c in cuts
        if c.get("max_rhat", 1.0) > UNSETTLED_RHAT
    )


def warn_unsettled(used: Sequence[Mapping[str, Any]]) -> None:
    """Warn when a refit that ``tau`` was learned from has chains that disagree."""
    where = unsettled_refits(used)
    if not where:
        return
    _warnings.warn(
        f"the discrepancy was learned from leave-future-out refits whose chains disagree "
        f"({where}): tau, and with it the width of the intervals beyond the data, rests on "
        "where those short refits' chains went and may move with the seed. More warmup and "
        "chains settle it (the refits' settings: calibrate_discrepancy's num_warmup and "
        "num_chains, or backtest's calibration={'num_warmup': 1000, 'num_chains': 4}).",
        RuntimeWarning,
    )
