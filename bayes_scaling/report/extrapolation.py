"""Report sections on extrapolation: the fan with its table, and compute-optimal scaling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling import plots as _plots
from bayes_scaling.predict.refits import beyond_words, learned_directions
from bayes_scaling.report.blocks import (
    MAX_GROUP_PANELS,
    Figures,
    Section,
    Table,
    fmt_g,
    panel_grid,
    sci,
)
from bayes_scaling.report.sections import table_targets

__all__ = ["extrapolation_section", "fan_numbers", "frontier_section"]


def extrapolation_section(
    fit, frame, figs: Figures, data, compute: float | None, seed: int, disc
) -> tuple[Section, dict]:
    """The fan chart and its table at a few points: ``(section, headline numbers)``."""
    spec = _plots.law_of(fit)
    groups = _plots.group_labels(fit)
    section = Section("Extrapolation", "extrapolation")
    section.blocks.append(
        "The fan runs from the data to the target compute. The blue bands are the law mean "
        "(50% and 90%): where the law itself lies, given the parameter uncertainty. The dashed "
        "orange lines are the 90% interval for one new training run, which adds the run-to-run "
        "noise fitted to the data."
    )
    section.blocks.append(_discrepancy_note(disc))
    targets = table_targets(fit)
    shown = [None] if not groups else groups[:MAX_GROUP_PANELS]

    def draw():
        if not groups:
            return _plots.fan_chart(fit, data, compute=compute, seed=seed, discrepancy=disc)
        fig, axes = panel_grid(len(shown))
        for ax, g in zip(axes, shown, strict=False):
            _plots.fan_chart(
                fit, data, group=g, compute=compute, seed=seed, discrepancy=disc, ax=ax
            )
        return fig

    section.blocks.append(figs.make("fan", "Extrapolation fan: law mean and new-run bands", draw))
    headline: dict[str, Any] = {}
    rows = []
    for g in targets:
        try:
            table, head = fan_numbers(fit, frame, g, compute, seed, disc)
        except ValueError as exc:
            section.blocks.append(f"No extrapolation table: {exc}")
            break
        rows.extend(table)
        headline.setdefault("fan", {**head, "group": g})
    if rows:
        _fan_table(section, spec, rows, grouped=bool(groups), disc=disc)
        if "new" in targets:
            section.blocks.append(
                "Group 'new' is a group not in the data, drawn from the fitted "
                "population of groups."
            )
    return section, headline


def _discrepancy_note(disc) -> str:
    """What the bands include: a warning without a discrepancy, its size with one."""
    if disc is None:
        return (
            "**No extrapolation discrepancy is included**: these bands assume the law's form "
            "stays right all the way to the target, so far beyond the data they are lower bounds "
            "on the real uncertainty. Rerun with `--discrepancy auto` to calibrate one by "
            "leave-future-out (refits on the smaller runs), or give a fixed `tau`."
        )
    summary = disc.summary()
    method = summary.get("method", disc.method)
    tau = fmt_g(float(summary.get("tau_median", disc.tau_quantile(0.5))), 3)
    learned = learned_directions(disc.details.get("cuts") or ())
    source = (
        f" It was learned from runs beyond their pseudo-past in {beyond_words(learned)} (by the "
        "covariates whose range they left, or `N*D` alone: larger models trained longer); in "
        "other directions its width is carried over, not learned."
        if learned
        else ""
    )
    return (
        f"The purple lines add the **extrapolation discrepancy** ({method}; "
        f"tau median {tau} per "
        "natural-log unit of distance outside the data): a random change of slope at the edge "
        "of the data, which widens the bands the further they reach. The new-run interval "
        f"includes it.{source}"
    )


def _fan_table(section: Section, spec, rows: list, *, grouped: bool, disc) -> None:
    """The fan's numbers (the group column only for a hierarchical fit)."""
    x_name = "compute C" if _plots.over_n_and_d(spec) else spec.covariates[0]
    header: tuple[str, ...] = ("group", x_name, f"median {spec.target}", "law mean 90%")
    if disc is not None:
        header += ("with discrepancy 90%",)
    header += ("new run 90%",)
    body = tuple(r if grouped else r[1:] for r in rows)
    section.blocks.append(Table(header if grouped else header[1:], body))


def fan_numbers(
    fit, frame: pd.DataFrame, group: str | None, compute: float | None, seed: int, disc: Any
) -> tuple[list[tuple[str, ...]], dict[str, Any]]:
    """The fan at four points along its path: ``(table rows, headline at the end)``."""
    spec = _plots.law_of(fit)
    draws = _plots.posterior_sample(fit, group, seed=seed)
    rows_frame = _plots.group_rows(frame, group)
    x_name, x, cov, _ = _plots.fan_path(spec, draws, rows_frame, compute, None, 6.0, 60)
    picks = sorted({0, len(x) // 3, 2 * len(x) // 3, len(x) - 1})
    sub = {k: np.asarray(v)[picks] for k, v in cov.items()}
    law, structural, run, _ = _plots.predictive(fit, sub, group=group, discrepancy=disc, seed=seed)
    rows = []
    for j, i in enumerate(picks):
        lo, hi = _plots.interval(law[:, j], 0.9)
        rlo, rhi = _plots.interval(run[:, j], 0.9)
        where = sci(x[i])
        if x_name == "C" and "N" in sub:
            where += f" (N {sci(sub['N'][j])}, D {sci(sub['D'][j])})"
        median = f"{np.median(law[:, j]):.4f}"
        row: tuple[str, ...] = (str(group or ""), where, median, f"{lo:.4f} – {hi:.4f}")
        if structural is not None:
            slo, shi = _plots.interval(structural[:, j], 0.9)
            row += (f"{slo:.4f} – {shi:.4f}",)
        rows.append((*row, f"{rlo:.4f} – {rhi:.4f}"))
    head = {
        "x": float(x[-1]),
        "median": float(np.median(law[:, -1])),
        "law": _plots.interval(law[:, -1], 0.9),
        "run": _plots.interval(run[:, -1], 0.9),
        "x_name": x_name,
        "discrepancy": structural is not None,
    }
    return rows, head


def frontier_section(fit, figs: Figures, data) -> tuple[Section | None, dict]:
    """The compute-optimal frontier and exponent; None for a law not over ``N`` and ``D``."""
    spec = _plots.law_of(fit)
    if not _plots.over_n_and_d(spec):
        return None, {}
    groups = _plots.group_labels(fit)
    section = Section("Compute-optimal scaling", "frontier")
    section.blocks.append(
        "Each posterior draw has its own best split of compute between parameters N and tokens D. "
        "The bands show where N*(C) and D*(C) lie. The exponent a says how fast N* grows: "
        "N* ∝ C^a and D* ∝ C^(1−a); a = 0.5 means parameters and tokens grow alike "
        "(Chinchilla's rule of thumb of ~20 tokens per parameter)."
    )
    shown = [None] if not groups else groups[:MAX_GROUP_PANELS]

    def draw():
        if not groups:
            return _plots.frontier(fit, data)
        fig, axes = panel_grid(len(shown))
        for ax, g in zip(axes, shown, strict=False):
            _plots.frontier(fit, data, group=g, ax=ax)
        return fig

    section.blocks.append(figs.make("frontier", "Compute-optimal N*(C) and D*(C)", draw))
    headline: dict[str, Any] = {}
    try:
        _exponent_blocks(fit, figs, section, headline, shown, grouped=bool(groups))
    except ValueError as exc:
        section.blocks.append(f"No compute-optimal exponent for this law: {exc}")
    return section, headline


def _exponent_blocks(fit, figs: Figures, section: Section, headline: dict, shown, *, grouped):
    """The exponent's figure and table (raises ValueError for a law without an exponent)."""
    rows = []
    for g in shown:
        a = _plots.compute_optimal_exponent(fit, g)
        q = np.quantile(a, [0.05, 0.5, 0.95])
        p_above = f"{float(np.mean(a > 0.5)):.2f}"
        rows.append((str(g or "all runs"), f"{q[1]:.3f}", f"{q[0]:.3f} – {q[2]:.3f}", p_above))
        headline.setdefault("a", (q[1], q[0], q[2]))
        headline.setdefault("a_group", g)
    section.blocks.append(
        figs.make(
            "exponent",
            "Posterior of the compute-optimal exponent a, with published values",
            _plots.exponent,
            fit,
            groups=shown if grouped else None,
        )
    )
    header = ("group", "median a", "90% interval", "P(a > 0.5)")
    section.blocks.append(Table(header, tuple(rows)))
    section.blocks.append(
        "Published values: Hoffmann et al. 2022 (approach 3) a ≈ 0.454 with an implausibly "
        "narrow interval; Besiroglu et al. 2024, refitting the same data, a = 0.513 (SE 0.020)."
    )
