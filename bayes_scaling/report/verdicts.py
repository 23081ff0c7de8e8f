"""Plain-language verdicts on diagnostics and calibration: ``(status, sentence)``.

``status`` is ``"ok"``, ``"warn"`` or ``"bad"``; it colours the table rows of the report.
"""

from __future__ import annotations

import numpy as np

from bayes_scaling._warnings import cli_words
from bayes_scaling.inference.diagnostics import divergence_advice

__all__ = [
    "RANK",
    "coverage_verdict",
    "divergence_verdict",
    "ess_verdict",
    "rhat_verdict",
    "worst_status",
]


def rhat_verdict(rhat: float) -> tuple[str, str]:
    """Plain-language verdict on a split R-hat: ``(status, sentence)``."""
    if not np.isfinite(rhat):
        return "warn", "one chain only: R-hat needs two or more chains to check convergence"
    if rhat <= 1.01:
        return "ok", "chains agree"
    if rhat <= 1.05:
        return "warn", "chains almost agree: run longer before trusting interval ends"
    return "bad", "chains disagree: the sampler has not converged, do not use these numbers"


def ess_verdict(ess: float) -> tuple[str, str]:
    """Plain-language verdict on an effective sample size (bulk or tail)."""
    if ess >= 400:
        return "ok", "enough independent draws for stable 90% intervals"
    if ess >= 100:
        return "warn", "few independent draws: medians are fine, interval ends are noisy"
    return "bad", "too few independent draws: rerun with more samples"


def divergence_verdict(
    divergences: int, total: int, target_accept_prob: float | None = None, num_groups: int = 0
) -> tuple[str, str]:
    """Plain-language verdict on NUTS divergent transitions.

    ``target_accept_prob`` is the target the fit ran at (the posterior records it) and
    ``num_groups`` its group count: the advice, in the command line's words, is the warning's.
    """
    if divergences == 0:
        return "ok", "no divergent transitions: the sampler explored the posterior without trouble"
    share = divergences / max(total, 1)
    advice = cli_words(divergence_advice(target_accept_prob, num_groups))
    text = (
        f"{divergences} divergent transitions ({share:.2%} of draws): parts of the posterior "
        f"were hard to explore and results may be biased. {advice}"
    )
    return ("warn" if share < 0.01 else "bad"), text


RANK = {"ok": 0, "": 0, "warn": 1, "bad": 2}


def worst_status(*statuses: str) -> str:
    """The worst of several statuses (``"bad"`` over ``"warn"`` over ``"ok"`` or ``""``)."""
    return max(statuses, key=lambda s: RANK[s])


def coverage_verdict(coverage: float, n: int) -> tuple[str, str]:
    """Plain-language verdict on the share of held-out runs inside their 90% interval."""
    few = f" (only {n} held-out runs: read it loosely)" if n < 10 else ""
    if coverage >= 0.8:
        return (
            "ok",
            f"calibrated: {coverage:.0%} of held-out runs fall inside their 90% interval{few}",
        )
    if coverage >= 0.6:
        return "warn", (
            f"somewhat overconfident: {coverage:.0%} of held-out runs inside their 90% "
            f"interval; widen the bands before relying on them far out{few}"
        )
    return "bad", (
        f"overconfident: only {coverage:.0%} of held-out runs inside their 90% interval; "
        f"these bands are too narrow for extrapolation{few}"
    )
