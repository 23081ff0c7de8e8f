"""Report sections on decisions: the allocation of a budget, and group contrasts."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from bayes_scaling import plots as _plots
from bayes_scaling.report.blocks import (
    MAX_GROUP_PANELS,
    Figures,
    Section,
    Table,
    anchor,
    fmt_g,
    sci,
)
from bayes_scaling.report.sections import table_targets

__all__ = ["allocation_row", "allocation_section", "contrast_rows", "contrasts_section"]

_ALLOCATION_HEADER = (
    "group",
    "risk",
    "N",
    "D",
    "tokens/param",
    "median loss",
    "loss 90%",
    "optimal N* 90%",
    "regret (nats)",
)


def allocation_section(
    fit, figs: Figures, compute: float, risks: Sequence[str], seed: int
) -> tuple[Section | None, dict]:
    """Allocations of ``compute`` under each risk measure, with a risk-curve figure.

    None for a law whose compute cannot be split between ``N`` and ``D``.
    """
    spec = _plots.law_of(fit)
    if not _plots.over_n_and_d(spec):
        return None, {}
    groups = _plots.group_labels(fit)
    section = Section(f"Allocation at C = {sci(compute)} FLOP", "allocation")
    section.blocks.append(
        "How to split the budget between parameters and tokens. Each risk measure scores a "
        "candidate model size by the distribution of its loss over the posterior (with run-to-run "
        "noise): 'expected' is the mean loss, 'cvar:0.9' the mean of the worst 10% of outcomes "
        "(a cautious choice), 'quantile:0.9' the loss exceeded with 10% probability. Regret is the "
        "expected extra loss from not knowing the true optimum."
    )
    rows: list[tuple[str, ...]] = []
    curves_by_target: dict[str | None, list] = {}
    headline: dict[str, Any] = {}
    for g in table_targets(fit):
        allocations = _allocate(fit, section, compute, risks, g, seed)
        for a in allocations:
            d = a.to_dict()
            rows.append(allocation_row(g, d))
            headline.setdefault("allocation", {**d, "group": g})
        curves_by_target[g] = allocations
    if rows:
        header = _ALLOCATION_HEADER if groups else _ALLOCATION_HEADER[1:]
        section.blocks.append(Table(header, tuple(r if groups else r[1:] for r in rows)))
    drawn = [g for g in curves_by_target if curves_by_target[g]]
    for g in drawn[-1:]:  # one figure: the fit, or a new group (else the last group shown)
        label = f" for group {g}" if g else ""
        caption = (
            f"Risk along the iso-compute line{label}: the chosen N (stars) and the 90% interval "
            "of the optimal N* (grey)"
        )
        slug = f"risk{'-' + anchor(g) if g else ''}"
        section.blocks.append(figs.make(slug, caption, _plots.risk_curve, curves_by_target[g]))
    return section, headline


def _allocate(fit, section: Section, compute, risks, group, seed) -> list:
    """One allocation per risk measure; a failed one becomes a paragraph of the section."""
    from bayes_scaling import decide

    allocations = []
    for risk in risks:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*end of the candidate range.*")
                # the fit's recorded discrepancy, as the report's fan (none, quietly, if absent)
                disc = _plots.resolve_discrepancy(fit, "recorded")
                allocations.append(
                    decide.allocate(fit, compute, risk, group=group, seed=seed, discrepancy=disc)
                )
        except (ValueError, TypeError) as exc:
            section.blocks.append(f"Allocation with risk '{risk}' failed: {exc}")
    return allocations


def allocation_row(group: str | None, d: dict[str, Any]) -> tuple[str, ...]:
    """A table row from an allocation's ``to_dict()`` (the group column first)."""
    q = d["loss_quantiles"]
    lo_n, hi_n = d["n_opt_interval"]
    loss_90 = f"{q.get('0.05', float('nan')):.4f} – {q.get('0.95', float('nan')):.4f}"
    return (
        str(group or ""),
        d["risk"],
        sci(d["N"]),
        sci(d["D"]),
        f"{d['tokens_per_param']:.1f}",
        f"{q.get('0.5', d['loss_mean']):.4f}",
        loss_90,
        f"{sci(lo_n)} – {sci(hi_n)}",
        f"{d['regret']:.2g}",
    )


def contrasts_section(fit, figs: Figures, compute: float | None) -> Section | None:
    """Groups side by side, their paired differences, and one pair's contrast figure."""
    groups = _plots.group_labels(fit)
    if len(groups) < 2:
        return None
    section = Section("Group contrasts", "contrasts")
    section.blocks.append(
        "How the groups differ. Draws of different groups come from the same joint posterior "
        "sample, so the uncertainty they share (through shared parameters and the population) "
        "cancels in their differences. P(first > second) near 0 or 1 is a clear difference; "
        "near 0.5, the data cannot tell the groups apart."
    )
    shown = groups[:MAX_GROUP_PANELS]
    caption = "Each group's curve with its 90% band and its runs"
    section.blocks.append(figs.make("groups", caption, _plots.group_curves, fit, shown))
    rows = contrast_rows(fit, shown[:4], compute)
    if rows:
        header = ("quantity", "pair", "median difference", "90% interval", "P(first > second)")
        section.blocks.append(Table(header, tuple(rows)))
    a, b = groups[0], groups[1]
    section.blocks.append(
        figs.make(
            f"contrast-{anchor(a)}-{anchor(b)}",
            f"{a} against {b} at the same model size and tokens, with P({a} lower)",
            _plots.group_contrast,
            fit,
            (a, b),
            compute=compute,
        )
    )
    return section


def contrast_rows(fit, groups: Sequence[str], compute: float | None) -> list[tuple[str, ...]]:
    """Paired differences between groups: per-group parameters, the exponent and the loss.

    The exponent ``a`` is asked for where the law has one (``LawSpec.optimal_exponent``), the
    loss at ``compute`` for laws over compute; a quantity :func:`bayes_scaling.compare.contrast`
    refuses is left out.
    """
    from bayes_scaling import compare

    spec = _plots.law_of(fit)
    asks: list[tuple[str, dict[str, Any]]] = []
    per_group = [n for n in spec.param_names if "group" in fit.posterior[n].dims]
    asks += [(name, {}) for name in per_group]
    if _plots.over_n_and_d(spec) or spec.covariates == ("C",):
        if spec.optimal_exponent is not None:
            asks.append(("a", {}))
        if compute is not None:
            asks.append(("loss", {"compute": compute}))
    rows: list[tuple[str, ...]] = []
    for quantity, kwargs in asks:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                result = compare.contrast(fit, quantity, list(groups), **kwargs)
        except (ValueError, KeyError):
            continue
        for pair, r in result.table.iterrows():
            interval = f"{fmt_g(float(r['lower']))} – {fmt_g(float(r['upper']))}"
            p_greater = f"{float(r['p_greater']):.2f}"
            rows.append(
                (result.quantity, str(pair), fmt_g(float(r["median"])), interval, p_greater)
            )
    return rows
