"""Report sections about the fit itself: overview, data, parameters, diagnostics, at a glance."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling import inference as _inference
from bayes_scaling import plots as _plots
from bayes_scaling.report.blocks import (
    MAX_GROUP_PANELS,
    Figures,
    Section,
    Table,
    fmt_g,
    panel_grid,
    sci,
)
from bayes_scaling.report.verdicts import (
    divergence_verdict,
    ess_verdict,
    rhat_verdict,
    worst_status,
)

__all__ = [
    "at_a_glance",
    "can_new",
    "data_section",
    "default_compute",
    "diagnostics_section",
    "loo_block",
    "overview_section",
    "parameters_section",
    "table_targets",
]


def overview_section(fit, frame: pd.DataFrame) -> Section:
    """What was fitted: law, reference, runs, groups, pooling, likelihood, draws, provenance."""
    attrs = fit.posterior.attrs
    spec = _plots.law_of(fit)
    groups = _plots.group_labels(fit)
    chains, draws = fit.posterior.sizes["chain"], fit.posterior.sizes["draw"]
    pooling = json.loads(attrs.get("pooling", "{}"))
    version = attrs.get("bayes_scaling_version", "?")
    rows = [
        ("law", f"{spec.name}: {attrs.get('formula', spec.formula)}"),
        ("reference", spec.reference),
        ("runs fitted", f"{attrs.get('num_points', len(frame))}"),
        ("groups", ", ".join(groups) if groups else "none (one curve)"),
        ("pooling", ", ".join(f"{k}: {v}" for k, v in pooling.items()) or "–"),
        ("likelihood", f"{attrs.get('likelihood', '?')} on log {spec.target}"),
        ("posterior draws", f"{chains} chains x {draws} draws = {chains * draws}"),
        ("data hash", attrs.get("data_hash", "–")),
        ("fitted with", f"bayes-scaling {version}, {attrs.get('inference_library', '')}"),
    ]
    section = Section("What was fitted", "overview")
    section.blocks.append(Table(("", ""), tuple(rows)))
    return section


_DIAGNOSTIC_HEADLINES = {
    "ok": "Verdict: **the sampler worked**. R-hat is at most 1.01 for every parameter, every "
    "parameter has at least 400 effective draws, and there were no divergences.",
    "warn": "Verdict: **usable with care**. Some checks are borderline (see the table); the "
    "medians are reliable, the ends of intervals less so.",
    "bad": "Verdict: **do not trust these numbers yet**. At least one check failed (see the "
    "table); refit with more warmup and samples or better priors.",
}


def diagnostics_section(fit) -> tuple[Section, str, list[str]]:
    """The diagnostics table with verdicts: ``(section, overall status, problems)``."""
    rows, status, problems = _parameter_rows(_inference.summarize(fit))
    stats = fit.sample_stats
    total = int(stats["diverging"].size)
    div = int(stats["diverging"].sum())
    target = fit.posterior.attrs.get("target_accept_prob")
    s_div, t_div = divergence_verdict(div, total, target, fit.posterior.sizes.get("group", 0))
    overall = worst_status(s_div, *status) if status else s_div
    section = Section("Diagnostics", "diagnostics")
    section.blocks.append(_DIAGNOSTIC_HEADLINES[overall])
    section.blocks.append(
        "R-hat compares the spread within each chain to the spread between chains (1.00 is "
        "perfect; above 1.01 the chains have not mixed). ESS is the number of effectively "
        "independent draws behind the mean (bulk) and the 5%/95% quantiles (tail). Divergent "
        "transitions flag regions of the posterior the sampler could not follow."
    )
    header = ("parameter", "mean", "sd", "5%", "95%", "R-hat", "ESS bulk", "ESS tail", "verdict")
    section.blocks.append(Table(header, tuple(rows), tuple(status)))
    divergences = ((f"{div} of {total}", t_div),)
    section.blocks.append(Table(("divergences", "verdict"), divergences, (s_div,)))
    loo = loo_block(fit)
    if loo is not None:
        section.blocks.append(loo)
    return section, overall, problems


def _parameter_rows(table: pd.DataFrame) -> tuple[list[tuple[str, ...]], list[str], list[str]]:
    """Per-parameter rows and statuses, and the problems grouped by verdict (naming parameters)."""
    rows: list[tuple[str, ...]] = []
    status: list[str] = []
    by_problem: dict[str, list[str]] = {}
    for name, r in table.iterrows():
        s_r, t_r = rhat_verdict(float(r["r_hat"]))
        s_e, t_e = ess_verdict(min(float(r["ess_bulk"]), float(r["ess_tail"])))
        texts = [t for s, t in ((s_r, t_r), (s_e, t_e)) if s != "ok"]
        for t in texts:
            by_problem.setdefault(t, []).append(str(name))
        verdict = "fine: chains agree and enough draws" if not texts else "; ".join(texts)
        rhat = f"{r['r_hat']:.3f}" if np.isfinite(r["r_hat"]) else "–"
        stats = (fmt_g(r["mean"]), fmt_g(r["sd"], 3), fmt_g(r["q05"]), fmt_g(r["q95"]), rhat)
        ess = (f"{r['ess_bulk']:.0f}", f"{r['ess_tail']:.0f}")
        rows.append((str(name), *stats, *ess, verdict))
        status.append(worst_status(s_r, s_e))
    problems = [f"{_named_briefly(names)}: {text}" for text, names in by_problem.items()]
    return rows, status, problems


def _named_briefly(names: list[str]) -> str:
    """Parameter names, a per-group parameter's groups counted rather than listed.

    >>> _named_briefly(["E[c4]", "E[rpj]", "alpha[c4]", "sigma"])
    'E (2 groups), alpha[c4], sigma'
    """
    by_base: dict[str, list[str]] = {}
    for name in names:
        by_base.setdefault(name.split("[")[0], []).append(name)
    return ", ".join(
        same[0] if len(same) == 1 else f"{base} ({len(same)} groups)"
        for base, same in by_base.items()
    )


def loo_block(fit) -> str | None:
    """A paragraph on PSIS-LOO and Pareto k, or None without a log likelihood (or on failure)."""
    if "log_likelihood" not in fit.groups():
        return None
    try:
        import arviz as az

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loo = az.loo(fit, pointwise=True)
    except Exception:
        return None
    k = np.asarray(loo.pareto_k).ravel()
    bad = int((k > 0.7).sum())
    text = (
        f"Leave-one-out check (PSIS-LOO): elpd = {float(loo.elpd_loo):.1f} "
        f"(SE {float(loo.se):.1f}). "
    )
    if bad == 0:
        text += "No run has Pareto k above 0.7: no single run dominates the fit."
    else:
        text += (
            f"{bad} of {k.size} runs have Pareto k above 0.7: the fit leans heavily on them "
            "(outliers or runs far from the rest); check them before relying on extrapolation."
        )
    return text


def data_section(fit, frame: pd.DataFrame, figs: Figures, data) -> Section:
    """The runs with the fitted curves (one panel per group shown) and the predictive check."""
    spec = _plots.law_of(fit)
    groups = _plots.group_labels(fit)
    section = Section("Data and fitted curves", "data")
    section.blocks.append(
        f"{len(frame)} runs. The curves are the fitted law with its 90% band over the posterior "
        "(parameter uncertainty); the dots are the runs. For laws over N and D each curve is "
        "one compute budget, the runs coloured by their compute on the same scale."
    )
    shown = groups[:MAX_GROUP_PANELS] if groups else [None]
    if groups and len(groups) > MAX_GROUP_PANELS:
        section.blocks.append(f"Figures show the first {MAX_GROUP_PANELS} of {len(groups)} groups.")

    def draw(**kwargs):
        if not groups:
            return _plots.fit_curves(fit, data, **kwargs)
        fig, axes = panel_grid(len(shown))
        for ax, g in zip(axes, shown, strict=False):
            _plots.fit_curves(fit, data, group=g, ax=ax)
        return fig

    section.blocks.append(figs.make("fit", f"{spec.name} fitted to the runs", draw))
    section.blocks.append(
        figs.make(
            "check",
            "Observed against predicted for every run (new-run median and 90% interval). "
            "About 90% of the runs should fall inside their interval.",
            _plots.predictive_check,
            fit,
            data,
        )
    )
    return section


def default_compute(fit, frame: pd.DataFrame) -> float | None:
    """100x the largest run's compute, rounded to a power of ten; None for laws not over compute."""
    spec = _plots.law_of(fit)
    if not _plots.over_n_and_d(spec) and spec.covariates != ("C",):
        return None
    c = float(frame["C"].max())
    return float(10 ** (round(math.log10(c)) + 2))


def table_targets(fit) -> list[str | None]:
    """What the tables cover: the fit, or each group (up to a few) plus a new group when pooled."""
    groups = _plots.group_labels(fit)
    if not groups:
        return [None]
    out: list[str | None] = list(groups[:MAX_GROUP_PANELS])
    return out + (["new"] if can_new(fit) else [])


def can_new(fit) -> bool:
    """True when a new group can be drawn: some parameter is pooled across groups."""
    pooling = json.loads(fit.posterior.attrs.get("pooling", "{}") or "{}")
    return bool(pooling) and "independent" not in pooling.values()


def parameters_section(fit, figs: Figures) -> Section:
    """Posterior histograms over the priors."""
    section = Section("Parameter posteriors", "parameters")
    section.blocks.append(
        "Posterior histograms of each parameter (coloured) over the prior (grey outline). A "
        "posterior much narrower than its prior was learnt from the data; one that follows the "
        "prior was not identified by these runs and rests on the prior."
    )
    section.blocks.append(
        figs.make(
            "posteriors", "Posteriors and priors of the law's parameters", _plots.posteriors, fit
        )
    )
    return section


_GLANCE_VERDICTS = {
    "ok": "the sampler worked (R-hat ≤ 1.01, ESS ≥ 400, no divergences)",
    "warn": "usable with care: some diagnostics are borderline",
    "bad": "do not trust yet: diagnostics failed",
}


def at_a_glance(
    spec, diag_status: str, problems: list[str], fan: dict, frontier: dict, alloc: dict
) -> Section:
    """The headline numbers of the other sections in one table."""
    section = Section("At a glance", "glance")
    items = [("diagnostics", _GLANCE_VERDICTS[diag_status])]
    if fan.get("fan"):
        label, value = _fan_item(spec, fan["fan"])
        items.append((label + _of_group(fan["fan"].get("group")), value))
    if frontier.get("a"):
        med, lo, hi = frontier["a"]
        items.append(
            (
                "compute-optimal exponent a" + _of_group(frontier.get("a_group")),
                f"{med:.3f} (90% {lo:.3f}–{hi:.3f})",
            )
        )
    if alloc.get("allocation"):
        d = alloc["allocation"]
        lo_n, hi_n = d["n_opt_interval"]
        items.append(
            (
                f"best split of {sci(d['compute'])} FLOP ({d['risk']})" + _of_group(d.get("group")),
                f"N = {sci(d['N'])}, D = {sci(d['D'])} ({d['tokens_per_param']:.1f} "
                f"tokens/parameter); optimal N* 90% {sci(lo_n)}–{sci(hi_n)}",
            )
        )
    status = (diag_status,) + ("",) * (len(items) - 1)
    section.blocks.append(Table(("", ""), tuple(items), status))
    if problems:
        section.blocks.append("Diagnostics to look at: " + "; ".join(problems) + ".")
    return section


def _of_group(group: str | None) -> str:
    """A headline's group in a hierarchical fit's summary (the sections show every group)."""
    if group is None:
        return ""
    return ", a new group" if group == "new" else f", group {group}"


def _fan_item(spec, f: dict[str, Any]) -> tuple[str, str]:
    """The row of the extrapolation's end: median, law-mean and new-run intervals."""
    where = f"C = {sci(f['x'])} FLOP" if f["x_name"] == "C" else f"{f['x_name']} = {sci(f['x'])}"
    if f.get("discrepancy"):
        note = "(with the extrapolation discrepancy)"
    else:
        note = "(no extrapolation discrepancy: a lower bound on the uncertainty)"
    return (
        f"{spec.target} at {where}",
        f"median {f['median']:.3f}; law mean 90% {f['law'][0]:.3f}–{f['law'][1]:.3f}; "
        f"new run 90% {f['run'][0]:.3f}–{f['run'][1]:.3f} " + note,
    )
