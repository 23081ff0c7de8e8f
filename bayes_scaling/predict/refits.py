"""The discrepancy calibration's refits as its record of each cut keeps them: how well they
converged (and a warning where their chains disagree), and which way their pseudo-futures left
the pseudo-pasts, against the way a backtest's held-out runs leave its training runs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bayes_scaling import _warnings
from bayes_scaling import inference as _inference

__all__ = [
    "UNSETTLED_RHAT",
    "beyond_words",
    "learned_directions",
    "refit_figures",
    "unlearned_directions",
    "unsettled_refits",
    "warn_unsettled",
]


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


def beyond_words(counts: Mapping[str, int]) -> str:
    """``{"N*D": 60, "D": 4}`` as ``"N*D (60), D (4)"``, most first; ``"N,D"`` as ``"N and D"``."""
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k.replace(',', ' and ')} ({v})" for k, v in ranked)


def learned_directions(cuts: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How the pseudo-futures of a calibration's cuts left their pseudo-pasts, summed over the
    cuts (:meth:`Discrepancy.beyond_in`); empty for records written before it was kept."""
    learned: dict[str, int] = {}
    for cut in cuts:
        for key, n in (cut.get("beyond_in") or {}).items():
            learned[key] = learned.get(key, 0) + int(n)
    return learned


def unlearned_directions(
    held_out_beyond_in: Mapping[str, int] | None,
    cuts: Sequence[Mapping[str, Any]],
    what: str = "held-out runs",
) -> str:
    """Words for runs (``what``: a backtest's held-out runs, the points of a prediction) that
    leave the training runs in a direction none of the calibration's pseudo-futures left its
    pseudo-past in; empty when every direction was seen (or either record is missing: reports
    and fits written before these records existed).

    ``tau`` is learned per distance, whatever the direction; where the held-out runs leave in
    another one (Gemstones: more tokens at seen sizes, against pseudo-futures of larger models
    trained longer), their band's width there is carried over, not measured.
    """
    learned = learned_directions(cuts)
    held = dict(held_out_beyond_in or {})
    new = sorted(set(held) - set(learned))
    if not held or not learned or not new:
        return ""
    words = (
        f"{what} leave the training runs in {beyond_words(held)}; the discrepancy's "
        f"pseudo-futures left theirs in {beyond_words(learned)}: its width beyond in "
        f"{'; '.join(k.replace(',', ' and ') for k in new)} is carried over, not learned"
    )
    axes = {str(c.get("axis", "scale")) for c in cuts}  # the axes the cuts were taken along
    wanted = {"scale" if "*" in k else part for k in new for part in k.split(",")} - axes
    if not wanted:  # cut along already: its cuts left too few runs beyond in that direction
        return words
    order = sorted(axes | wanted, key=lambda a: (a != "scale", a))
    along = " and ".join("the scale axis" if a == "scale" else a for a in sorted(wanted))
    return (
        f"{words}; cuts along {along} as well learn it there "
        f"(the calibration's axes=({', '.join(repr(a) for a in order)}))"
    )
