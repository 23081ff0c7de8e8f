"""A report of a fit a researcher reads: one self-contained HTML file, or Markdown with PNGs.

:func:`build_report` computes everything once into a :class:`Report` (sections of paragraphs,
tables and PNG figures); :meth:`Report.to_html` embeds the figures as base64 ``data:`` URIs
(the file opens without a network and runs no script), :meth:`Report.write_markdown` writes
the figures beside the Markdown file. :func:`write_report` does both steps.

Sections: what was fitted; data with fitted curves; extrapolation to larger compute (law-mean
and new-run bands); compute-optimal frontier and exponent; parameter posteriors; diagnostics
with plain-language verdicts; the allocation of a budget with its risk curve; group contrasts;
the backtest when one is given.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import html
import io
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_scaling import __version__
from bayes_scaling import inference as _inference
from bayes_scaling import plots as _plots

__all__ = [
    "SECTIONS",
    "FigureBlock",
    "Report",
    "Section",
    "Table",
    "build_report",
    "coverage_verdict",
    "divergence_verdict",
    "ess_verdict",
    "rhat_verdict",
    "write_report",
]

FORMATS = ("html", "md")
SECTIONS = ("data", "extrapolation", "frontier", "allocation", "parameters", "diagnostics",
            "contrasts", "backtest")
_MAX_GROUP_PANELS = 6


# =========================================================================== building blocks


@dataclasses.dataclass(frozen=True)
class FigureBlock:
    """A rendered figure: a file-safe ``name``, a caption and the PNG bytes."""

    name: str
    caption: str
    png: bytes


@dataclasses.dataclass(frozen=True)
class Table:
    """A table of strings; ``status`` (one per row, ``"ok"``/``"warn"``/``"bad"``/``""``)
    colours the rows of the HTML version."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    status: tuple[str, ...] = ()


@dataclasses.dataclass
class Section:
    """A titled list of blocks: ``str`` (a paragraph), :class:`Table` or :class:`FigureBlock`."""

    title: str
    anchor: str
    blocks: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Report:
    """Everything a report shows, independent of the output format."""

    title: str
    sections: list[Section]
    generated: str

    @property
    def figures(self) -> list[FigureBlock]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, FigureBlock)]

    def to_html(self) -> str:
        """One self-contained HTML document (figures as base64 ``data:`` URIs, no scripts)."""
        return _render_html(self)

    def write_html(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_html(), encoding="utf-8")
        return path

    def write_markdown(self, path: str | Path) -> Path:
        """Write ``path`` (Markdown) and the figures into ``<stem>_files/`` beside it."""
        path = Path(path)
        folder = path.parent / f"{path.stem}_files"
        folder.mkdir(parents=True, exist_ok=True)
        for fig in self.figures:
            (folder / f"{fig.name}.png").write_bytes(fig.png)
        path.write_text(_render_markdown(self, folder.name), encoding="utf-8")
        return path


def _png(fig, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


class _Figures:
    """Numbers figures in order and turns failures into a paragraph instead of a crash."""

    def __init__(self, dpi: int) -> None:
        self.dpi = dpi
        self.count = 0

    def make(self, slug: str, caption: str, draw, *args, **kwargs) -> FigureBlock | str:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*(tight_layout|constrained_layout|layout).*")
                fig = draw(*args, **kwargs)
                png = _png(fig, self.dpi)
        except (ValueError, KeyError) as exc:
            warnings.warn(f"report figure '{slug}' skipped: {exc}", UserWarning, stacklevel=3)
            return f"(Figure '{slug}' could not be drawn: {exc})"
        self.count += 1
        return FigureBlock(f"fig{self.count:02d}-{slug}", caption, png)


# =========================================================================== verdicts


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


def divergence_verdict(divergences: int, total: int) -> tuple[str, str]:
    """Plain-language verdict on NUTS divergent transitions."""
    if divergences == 0:
        return "ok", "no divergent transitions: the sampler explored the posterior without trouble"
    share = divergences / max(total, 1)
    text = (f"{divergences} divergent transitions ({share:.2%} of draws): parts of the posterior "
            "were hard to explore and results may be biased; refit with a higher target acceptance "
            "(--target-accept 0.95 or 0.99) or more informative priors")
    return ("warn" if share < 0.01 else "bad"), text


_RANK = {"ok": 0, "": 0, "warn": 1, "bad": 2}


def _worst(*statuses: str) -> str:
    return max(statuses, key=lambda s: _RANK[s])


# =========================================================================== formatting


def _g(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}"


def _sci(x: float) -> str:
    return f"{x:.3g}"


def _anchor(title: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")


# =========================================================================== sections


def _overview(fit, frame: pd.DataFrame) -> Section:
    attrs = fit.posterior.attrs
    spec = _plots.law_of(fit)
    groups = _plots.group_labels(fit)
    chains, draws = fit.posterior.sizes["chain"], fit.posterior.sizes["draw"]
    rows = [
        ("law", f"{spec.name}: {attrs.get('formula', spec.formula)}"),
        ("reference", spec.reference),
        ("runs fitted", f"{attrs.get('num_points', len(frame))}"),
        ("groups", ", ".join(groups) if groups else "none (one curve)"),
        ("pooling", ", ".join(f"{k}: {v}" for k, v in json.loads(attrs.get("pooling", "{}")).items()) or "–"),
        ("likelihood", f"{attrs.get('likelihood', '?')} on log {spec.target}"),
        ("posterior draws", f"{chains} chains x {draws} draws = {chains * draws}"),
        ("data hash", attrs.get("data_hash", "–")),
        ("fitted with", f"bayes-scaling {attrs.get('bayes_scaling_version', '?')}, {attrs.get('inference_library', '')}"),
    ]
    section = Section("What was fitted", "overview")
    section.blocks.append(Table(("", ""), tuple(rows)))
    return section


def _diagnostics(fit) -> tuple[Section, str, list[str]]:
    table = _inference.summarize(fit)
    stats = fit.sample_stats
    total = int(stats["diverging"].size)
    div = int(stats["diverging"].sum())
    rows, status = [], []
    by_problem: dict[str, list[str]] = {}
    for name, r in table.iterrows():
        s_r, t_r = rhat_verdict(float(r["r_hat"]))
        s_e, t_e = ess_verdict(min(float(r["ess_bulk"]), float(r["ess_tail"])))
        worst = _worst(s_r, s_e)
        texts = [t for s, t in ((s_r, t_r), (s_e, t_e)) if s != "ok"]
        for t in texts:
            by_problem.setdefault(t, []).append(str(name))
        verdict = "fine: chains agree and enough draws" if not texts else "; ".join(texts)
        rows.append((str(name), _g(r["mean"]), _g(r["sd"], 3), _g(r["q05"]), _g(r["q95"]),
                     f"{r['r_hat']:.3f}" if np.isfinite(r["r_hat"]) else "–",
                     f"{r['ess_bulk']:.0f}", f"{r['ess_tail']:.0f}", verdict))
        status.append(worst)
    problems = [f"{', '.join(names)}: {text}" for text, names in by_problem.items()]
    s_div, t_div = divergence_verdict(div, total)
    overall = _worst(s_div, *status) if status else s_div
    section = Section("Diagnostics", "diagnostics")
    headline = {
        "ok": "Verdict: **the sampler worked**. R-hat is at most 1.01 for every parameter, every "
              "parameter has at least 400 effective draws, and there were no divergences.",
        "warn": "Verdict: **usable with care**. Some checks are borderline (see the table); the "
                "medians are reliable, the ends of intervals less so.",
        "bad": "Verdict: **do not trust these numbers yet**. At least one check failed (see the "
               "table); refit with more warmup and samples or better priors.",
    }[overall]
    section.blocks.append(headline)
    section.blocks.append(
        "R-hat compares the spread within each chain to the spread between chains (1.00 is "
        "perfect; above 1.01 the chains have not mixed). ESS is the number of effectively "
        "independent draws behind the mean (bulk) and the 5%/95% quantiles (tail). Divergent "
        "transitions flag regions of the posterior the sampler could not follow."
    )
    section.blocks.append(Table(
        ("parameter", "mean", "sd", "5%", "95%", "R-hat", "ESS bulk", "ESS tail", "verdict"),
        tuple(rows), tuple(status)))
    section.blocks.append(Table(("divergences", "verdict"), ((f"{div} of {total}", t_div),), (s_div,)))
    loo = _loo_block(fit)
    if loo is not None:
        section.blocks.append(loo)
    return section, overall, problems


def _loo_block(fit) -> str | None:
    if "log_likelihood" not in fit.groups():
        return None
    try:
        import arviz as az

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loo = az.loo(fit, pointwise=True)
    except Exception:  # noqa: BLE001 - LOO is an extra; a failure must not sink the report
        return None
    k = np.asarray(loo.pareto_k).ravel()
    bad = int((k > 0.7).sum())
    text = (f"Leave-one-out check (PSIS-LOO): elpd = {float(loo.elpd_loo):.1f} "
            f"(SE {float(loo.se):.1f}). ")
    if bad == 0:
        text += "No run has Pareto k above 0.7: no single run dominates the fit."
    else:
        text += (f"{bad} of {k.size} runs have Pareto k above 0.7: the fit leans heavily on them "
                 "(outliers or runs far from the rest); check them before relying on extrapolation.")
    return text


def _data_section(fit, frame: pd.DataFrame, figs: _Figures, data) -> Section:
    spec = _plots.law_of(fit)
    groups = _plots.group_labels(fit)
    section = Section("Data and fitted curves", "data")
    section.blocks.append(
        f"{len(frame)} runs. The curves are the fitted law with its 90% band over the posterior "
        "(parameter uncertainty); the dots are the runs. For laws over N and D each curve is "
        "one compute budget, the runs coloured by their compute on the same scale."
    )
    shown = groups[:_MAX_GROUP_PANELS] if groups else [None]
    if groups and len(groups) > _MAX_GROUP_PANELS:
        section.blocks.append(f"Figures show the first {_MAX_GROUP_PANELS} of {len(groups)} groups.")

    def draw(**kwargs):
        if not groups:
            return _plots.fit_curves(fit, data, **kwargs)
        fig, axes = _panel_grid(len(shown))
        for ax, g in zip(axes, shown):
            _plots.fit_curves(fit, data, group=g, ax=ax)
        return fig

    section.blocks.append(figs.make("fit", f"{spec.name} fitted to the runs", draw))
    section.blocks.append(figs.make(
        "check", "Observed against predicted for every run (new-run median and 90% interval). "
        "About 90% of the runs should fall inside their interval.",
        _plots.predictive_check, fit, data))
    return section


def _panel_grid(n: int, size=(6.4, 4.2)):
    from matplotlib.figure import Figure

    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(size[0] * cols, size[1] * rows), layout="constrained")
    return fig, [fig.add_subplot(rows, cols, i + 1) for i in range(n)]


def _default_compute(fit, frame: pd.DataFrame) -> float | None:
    spec = _plots.law_of(fit)
    if not _plots.over_n_and_d(spec) and spec.covariates != ("C",):
        return None
    c = float(frame["C"].max())
    return float(10 ** (round(math.log10(c)) + 2))


def _extrapolation(fit, frame, figs: _Figures, data, compute: float | None, seed: int,
                   disc) -> tuple[Section, dict]:
    spec = _plots.law_of(fit)
    groups = _plots.group_labels(fit)
    section = Section("Extrapolation", "extrapolation")
    section.blocks.append(
        "The fan runs from the data to the target compute. The blue bands are the law mean "
        "(50% and 90%): where the law itself lies, given the parameter uncertainty. The dashed "
        "orange lines are the 90% interval for one new training run, which adds the run-to-run "
        "noise fitted to the data."
    )
    if disc is None:
        section.blocks.append(
            "**No extrapolation discrepancy is included**: these bands assume the law's form "
            "stays right all the way to the target, so far beyond the data they are lower bounds "
            "on the real uncertainty. Rerun with `--discrepancy auto` to calibrate one by "
            "leave-future-out (refits on the smaller runs), or give a fixed `tau`."
        )
    else:
        summary = disc.summary()
        section.blocks.append(
            f"The purple lines add the **extrapolation discrepancy** ({summary.get('method', disc.method)}; "
            f"tau median {_g(float(summary.get('tau_median', disc.tau_quantile(0.5))), 3)} per "
            "natural-log unit of distance outside the data): a random change of slope at the edge "
            "of the data, which widens the bands the further they reach. The new-run interval "
            "includes it."
        )
    targets = _targets(fit)
    shown = [None] if not groups else groups[:_MAX_GROUP_PANELS]

    def draw():
        if not groups:
            return _plots.fan_chart(fit, data, compute=compute, seed=seed, discrepancy=disc)
        fig, axes = _panel_grid(len(shown))
        for ax, g in zip(axes, shown):
            _plots.fan_chart(fit, data, group=g, compute=compute, seed=seed, discrepancy=disc, ax=ax)
        return fig

    section.blocks.append(figs.make("fan", "Extrapolation fan: law mean and new-run bands", draw))
    headline: dict[str, Any] = {}
    rows = []
    for g in targets:
        try:
            table, head = _fan_numbers(fit, frame, g, compute, seed, disc)
        except ValueError as exc:
            section.blocks.append(f"No extrapolation table: {exc}")
            break
        rows.extend(table)
        headline.setdefault("fan", head)
    if rows:
        x_name = "compute C" if _plots.over_n_and_d(spec) else spec.covariates[0]
        header: tuple[str, ...] = ("group", x_name, f"median {spec.target}", "law mean 90%")
        if disc is not None:
            header += ("with discrepancy 90%",)
        header += ("new run 90%",)
        section.blocks.append(Table(header if groups else header[1:],
                                    tuple(r if groups else r[1:] for r in rows)))
        if "new" in targets:
            section.blocks.append("Group 'new' is a group not in the data, drawn from the fitted "
                                  "population of groups.")
    return section, headline


def _targets(fit) -> list[str | None]:
    """What the tables cover: the fit, or each group (up to a few) plus a new group when pooled."""
    groups = _plots.group_labels(fit)
    if not groups:
        return [None]
    out: list[str | None] = list(groups[:_MAX_GROUP_PANELS])
    return out + (["new"] if _can_new(fit) else [])


def _can_new(fit) -> bool:
    pooling = json.loads(fit.posterior.attrs.get("pooling", "{}") or "{}")
    return bool(pooling) and "independent" not in pooling.values()


def _fan_numbers(fit, frame, group, compute, seed, disc):
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
        where = _sci(x[i])
        if x_name == "C" and "N" in sub:
            where += f" (N {_sci(sub['N'][j])}, D {_sci(sub['D'][j])})"
        row: tuple[str, ...] = (str(group or ""), where, f"{np.median(law[:, j]):.4f}", f"{lo:.4f} – {hi:.4f}")
        if structural is not None:
            slo, shi = _plots.interval(structural[:, j], 0.9)
            row += (f"{slo:.4f} – {shi:.4f}",)
        rows.append((*row, f"{rlo:.4f} – {rhi:.4f}"))
    head = {"x": float(x[-1]), "median": float(np.median(law[:, -1])),
            "law": _plots.interval(law[:, -1], 0.9), "run": _plots.interval(run[:, -1], 0.9),
            "x_name": x_name, "discrepancy": structural is not None}
    return rows, head


def _frontier(fit, figs: _Figures, data) -> tuple[Section | None, dict]:
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
    shown = [None] if not groups else groups[:_MAX_GROUP_PANELS]

    def draw():
        if not groups:
            return _plots.frontier(fit, data)
        fig, axes = _panel_grid(len(shown))
        for ax, g in zip(axes, shown):
            _plots.frontier(fit, data, group=g, ax=ax)
        return fig

    section.blocks.append(figs.make("frontier", "Compute-optimal N*(C) and D*(C)", draw))
    headline: dict[str, Any] = {}
    try:
        rows = []
        for g in shown:
            a = _plots.compute_optimal_exponent(fit, g)
            q = np.quantile(a, [0.05, 0.5, 0.95])
            rows.append((str(g or "all runs"), f"{q[1]:.3f}", f"{q[0]:.3f} – {q[2]:.3f}",
                         f"{float(np.mean(a > 0.5)):.2f}"))
            headline.setdefault("a", (q[1], q[0], q[2]))
        section.blocks.append(figs.make(
            "exponent", "Posterior of the compute-optimal exponent a, with published values",
            _plots.exponent, fit, groups=shown if groups else None))
        section.blocks.append(Table(("group", "median a", "90% interval", "P(a > 0.5)"), tuple(rows)))
        section.blocks.append(
            "Published values: Hoffmann et al. 2022 (approach 3) a ≈ 0.454 with an implausibly "
            "narrow interval; Besiroglu et al. 2024, refitting the same data, a = 0.513 (SE 0.020)."
        )
    except ValueError as exc:
        section.blocks.append(f"No compute-optimal exponent for this law: {exc}")
    return section, headline


def _parameters(fit, figs: _Figures) -> Section:
    section = Section("Parameter posteriors", "parameters")
    section.blocks.append(
        "Posterior histograms of each parameter (coloured) over the prior (grey outline). A "
        "posterior much narrower than its prior was learnt from the data; one that follows the "
        "prior was not identified by these runs and rests on the prior."
    )
    section.blocks.append(figs.make("posteriors", "Posteriors and priors of the law's parameters",
                                    _plots.posteriors, fit))
    return section


def _allocation(fit, figs: _Figures, compute: float, risks: Sequence[str], seed: int) -> tuple[Section | None, dict]:
    spec = _plots.law_of(fit)
    if not _plots.over_n_and_d(spec):
        return None, {}
    try:
        from bayes_scaling import decide
    except ImportError:  # pragma: no cover - decide ships with the package
        return None, {}
    groups = _plots.group_labels(fit)
    targets = _targets(fit)
    section = Section(f"Allocation at C = {_sci(compute)} FLOP", "allocation")
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
    for g in targets:
        allocations = []
        for risk in risks:
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*end of the candidate range.*")
                    a = decide.allocate(fit, compute, risk, group=g, seed=seed)
            except (ValueError, TypeError) as exc:
                section.blocks.append(f"Allocation with risk '{risk}' failed: {exc}")
                continue
            allocations.append(a)
            d = a.to_dict()
            q = d["loss_quantiles"]
            lo_n, hi_n = d["n_opt_interval"]
            rows.append((str(g or ""), d["risk"], _sci(d["N"]), _sci(d["D"]), f"{d['tokens_per_param']:.1f}",
                         f"{q.get('0.5', d['loss_mean']):.4f}",
                         f"{q.get('0.05', float('nan')):.4f} – {q.get('0.95', float('nan')):.4f}",
                         f"{_sci(lo_n)} – {_sci(hi_n)}", f"{d['regret']:.2g}"))
            headline.setdefault("allocation", d)
        curves_by_target[g] = allocations
    if rows:
        header = ("group", "risk", "N", "D", "tokens/param", "median loss", "loss 90%",
                  "optimal N* 90%", "regret (nats)")
        section.blocks.append(Table(header if groups else header[1:],
                                    tuple(r if groups else r[1:] for r in rows)))
    drawn = [g for g in curves_by_target if curves_by_target[g]]
    for g in drawn[-1:]:  # one figure: the fit, or a new group (else the last group shown)
        allocations = curves_by_target[g]
        label = f" for group {g}" if g else ""
        section.blocks.append(figs.make(
            f"risk{'-' + _anchor(g) if g else ''}",
            f"Risk along the iso-compute line{label}: the chosen N (stars) and the 90% interval of "
            "the optimal N* (grey)", _plots.risk_curve, allocations))
    return section, headline


def _contrasts(fit, figs: _Figures, compute: float | None) -> Section | None:
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
    shown = groups[:_MAX_GROUP_PANELS]
    section.blocks.append(figs.make("groups", "Each group's curve with its 90% band and its runs",
                                    _plots.group_curves, fit, shown))
    rows = _contrast_rows(fit, shown[:4], compute)
    if rows:
        section.blocks.append(Table(("quantity", "pair", "median difference", "90% interval",
                                     "P(first > second)"), tuple(rows)))
    a, b = groups[0], groups[1]
    section.blocks.append(figs.make(
        f"contrast-{_anchor(a)}-{_anchor(b)}",
        f"{a} against {b} at the same model size and tokens, with P({a} lower)",
        _plots.group_contrast, fit, (a, b), compute=compute))
    return section


def _contrast_rows(fit, groups: Sequence[str], compute: float | None) -> list[tuple[str, ...]]:
    from bayes_scaling import compare

    spec = _plots.law_of(fit)
    asks: list[tuple[str, dict[str, Any]]] = []
    per_group = [n for n in spec.param_names if "group" in fit.posterior[n].dims]
    asks += [(name, {}) for name in per_group]
    if _plots.over_n_and_d(spec) or spec.covariates == ("C",):
        if {"alpha", "beta"} <= set(spec.param_names) or spec.name == "kaplan":
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
            rows.append((result.quantity, str(pair), _g(float(r["median"])),
                         f"{_g(float(r['lower']))} – {_g(float(r['upper']))}",
                         f"{float(r['p_greater']):.2f}"))
    return rows


def coverage_verdict(coverage: float, n: int) -> tuple[str, str]:
    """Plain-language verdict on the share of held-out runs inside their 90% interval."""
    few = f" (only {n} held-out runs: read it loosely)" if n < 10 else ""
    if coverage >= 0.8:
        return "ok", f"calibrated: {coverage:.0%} of held-out runs fall inside their 90% interval{few}"
    if coverage >= 0.6:
        return "warn", (f"somewhat overconfident: {coverage:.0%} of held-out runs inside their 90% "
                        f"interval; widen the bands before relying on them far out{few}")
    return "bad", (f"overconfident: only {coverage:.0%} of held-out runs inside their 90% interval; "
                   f"these bands are too narrow for extrapolation{few}")


_BACKTEST_ROWS = (
    ("coverage_50", "share inside the 50% interval (ideal 0.5)"),
    ("coverage_80", "share inside the 80% interval (ideal 0.8)"),
    ("coverage_90", "share inside the 90% interval (ideal 0.9)"),
    ("coverage_95", "share inside the 95% interval (ideal 0.95)"),
    ("mean_width_rel", "mean width of the 90% interval / observed"),
    ("median_are", "median absolute relative error of the median"),
    ("max_are", "largest absolute relative error of the median"),
    ("crps", "CRPS (lower is better)"),
    ("log_pred_density", "mean log predictive density (higher is better)"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return _g(float(value))
    return str(value)


def _backtest(backtest: Mapping[str, Any], figs: _Figures) -> Section:
    section = Section("Backtest", "backtest")
    section.blocks.append(
        "The law was refitted on the smaller runs only and asked to predict the held-out larger "
        "ones: the honest test of an extrapolation. The point-fit baseline is the usual procedure "
        "(Huber loss on log loss, L-BFGS from a grid; Hoffmann et al. 2022, Besiroglu et al. 2024) "
        "on the same split."
    )
    n_test = int(backtest.get("n_test") or 0)
    coverage = backtest.get("coverage_90")
    if isinstance(coverage, (int, float)):
        status, text = coverage_verdict(float(coverage), n_test)
        section.blocks.append(Table(("verdict", ""), (("new-run 90% interval", text),), (status,)))
    disc = backtest.get("discrepancy")
    setup = [(k, _cell(backtest.get(k))) for k in ("law", "split", "n_train", "n_test", "max_distance")
             if k in backtest]
    if isinstance(disc, Mapping):
        setup.append(("extrapolation discrepancy", "none" if not disc.get("enabled") else
                      f"{disc.get('method', '')}, tau median {_cell(disc.get('tau_median'))}"))
    if setup:
        section.blocks.append(Table(("setting", "value"), tuple(setup)))
    columns = [("new run", backtest)]
    for key, label in (("without_discrepancy", "without discrepancy"), ("law_mean", "law mean only"),
                       ("baseline", "point fit")):
        if isinstance(backtest.get(key), Mapping):
            columns.append((label, backtest[key]))
    rows = [(desc, *(_cell(col.get(metric)) for _, col in columns))
            for metric, desc in _BACKTEST_ROWS if any(metric in col for _, col in columns)]
    if rows:
        section.blocks.append(Table(("score", *(label for label, _ in columns)), tuple(rows)))
    elif not setup:  # an unfamiliar report: show its top-level numbers
        scalars = [(str(k), _cell(v)) for k, v in backtest.items()
                   if isinstance(v, (int, float, str, bool)) or v is None]
        if scalars:
            section.blocks.append(Table(("quantity", "value"), tuple(scalars)))
    points = _plots.backtest_points(backtest)
    if points is not None:
        section.blocks.append(figs.make("backtest", "Held-out runs (crosses) against the predictions "
                                        "made without them (median, 50% and 90% intervals)",
                                        _plots.backtest_chart, backtest))
        keep = [c for c in ("group", "N", "D", "C", "B", "observed", "median", "q05", "q95",
                            "distance", "baseline") if c in points.columns]
        shown = points[keep or list(points.columns)].head(40)
        section.blocks.append(Table(tuple(map(str, shown.columns)), tuple(
            tuple(_cell(v) for v in row) for row in shown.itertuples(index=False))))
        if len(points) > len(shown):
            section.blocks.append(f"First {len(shown)} of {len(points)} held-out runs.")
    return section


def _at_a_glance(spec, diag_status: str, problems: list[str], fan: dict, frontier: dict, alloc: dict) -> Section:
    section = Section("At a glance", "glance")
    items = []
    verdict = {"ok": "the sampler worked (R-hat ≤ 1.01, ESS ≥ 400, no divergences)",
               "warn": "usable with care: some diagnostics are borderline",
               "bad": "do not trust yet: diagnostics failed"}[diag_status]
    items.append(("diagnostics", verdict))
    if fan.get("fan"):
        f = fan["fan"]
        where = f"C = {_sci(f['x'])} FLOP" if f["x_name"] == "C" else f"{f['x_name']} = {_sci(f['x'])}"
        items.append((f"{spec.target} at {where}",
                      (f"median {f['median']:.3f}; law mean 90% {f['law'][0]:.3f}–{f['law'][1]:.3f}; "
                       f"new run 90% {f['run'][0]:.3f}–{f['run'][1]:.3f} "
                       + ("(with the extrapolation discrepancy)" if f.get("discrepancy")
                          else "(no extrapolation discrepancy: a lower bound on the uncertainty)"))))
    if frontier.get("a"):
        med, lo, hi = frontier["a"]
        items.append(("compute-optimal exponent a", f"{med:.3f} (90% {lo:.3f}–{hi:.3f})"))
    if alloc.get("allocation"):
        d = alloc["allocation"]
        items.append((f"best split of {_sci(d['compute'])} FLOP ({d['risk']})",
                      (f"N = {_sci(d['N'])}, D = {_sci(d['D'])} ({d['tokens_per_param']:.1f} tokens/parameter); "
                      f"optimal N* 90% {_sci(d['n_opt_interval'][0])}–{_sci(d['n_opt_interval'][1])}")))
    section.blocks.append(Table(("", ""), tuple(items), (diag_status,) + ("",) * (len(items) - 1)))
    if problems:
        section.blocks.append("Diagnostics to look at: " + "; ".join(problems) + ".")
    return section


# =========================================================================== entry points


def _check_sections(sections: Sequence[str] | None) -> tuple[str, ...]:
    if sections is None:
        return SECTIONS
    if isinstance(sections, str):
        sections = [sections]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown report sections {unknown}; available: {', '.join(SECTIONS)}")
    return tuple(sections)


_METADATA = ("law", "priors", "pooling", "groups", "reference")


def _check_metadata(fit) -> None:
    """Refuse a fit whose recorded law, priors, pooling, groups or reference cannot be read.

    Every figure and most tables decode them; without this check the report would come out
    with its figures replaced by notes (or fail on a bare ``KeyError``).
    """
    attrs = fit.posterior.attrs
    missing = [k for k in ("law", "priors") if k not in attrs]
    problem = f"missing {', '.join(repr(k) for k in missing)}" if missing else None
    if problem is None:
        try:
            _inference.fit_spec(fit)
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            problem = f"unreadable ({type(exc).__name__}: {exc})"
    if problem is not None:
        raise ValueError(
            f"the fit's metadata (posterior attributes {', '.join(_METADATA)}) is {problem}: the "
            "report's figures (fit curves, predictive check, fan chart, frontier, allocation) and "
            "tables need it; the file is damaged or was not written by `bayes-scaling fit`: refit"
        )


def build_report(
    fit,
    data=None,
    *,
    compute: float | None = None,
    risks: Sequence[str] = ("expected", "cvar:0.9"),
    backtest: Mapping[str, Any] | str | Path | None = None,
    title: str | None = None,
    discrepancy: Any = "recorded",
    seed: int = 0,
    dpi: int = 100,
    sections: Sequence[str] | None = None,
) -> Report:
    """Compute every section and figure of a fit's report.

    Parameters
    ----------
    fit : arviz.InferenceData, str or Path
        A fit (or the netCDF file written by ``bayes-scaling fit``).
    data : DataFrame, str or Path, optional
        The runs to show; default the data stored in the fit.
    compute : float, optional
        Budget in FLOPs for the extrapolation and the allocation (laws over ``N`` and ``D``, or
        over ``C``). Default: 100x the largest run, rounded to a power of ten.
    risks : sequence of str, default ("expected", "cvar:0.9")
        Risk measures for the allocation (see :func:`bayes_scaling.decide.parse_risk`).
    backtest : mapping, str or Path, optional
        A backtest report (dict or its JSON file) to include.
    title : str, optional
    discrepancy : "recorded", "auto", None, float or Discrepancy, default "recorded"
        Extrapolation discrepancy of the fan and its table: the one recorded in the fit (none
        if there is none), ``"auto"`` to calibrate one by leave-future-out (several refits),
        None for none, a number for a fixed ``tau`` (see :mod:`bayes_scaling.predict`).
    seed : int, default 0
        Seed of the new-run noise and of new-group draws.
    dpi : int, default 100
        Resolution of the figures.
    sections : sequence of str, optional
        Which sections to build (default all): any of ``SECTIONS`` (``"data"``,
        ``"extrapolation"``, ``"frontier"``, ``"allocation"``, ``"parameters"``,
        ``"diagnostics"``, ``"contrasts"``, ``"backtest"``). The overview and the at-a-glance
        summary are always there.

    Returns
    -------
    Report
        ``report.to_html()``, ``report.write_html(path)``, ``report.write_markdown(path)``.

    Raises
    ------
    ValueError
        If the fit's recorded law or priors (``posterior.attrs``) are missing or unreadable.

    Examples
    --------
    >>> from bayes_scaling import report
    >>> r = report.build_report("fit.nc", compute=1e24)  # doctest: +SKIP
    >>> r.write_html("report.html")  # doctest: +SKIP
    """
    if isinstance(fit, (str, Path)):
        fit = _inference.load_fit(fit)
    _check_metadata(fit)
    if isinstance(backtest, (str, Path)):
        path = Path(backtest)
        if not path.is_file():
            raise FileNotFoundError(f"backtest file {str(path)!r} does not exist")
        try:
            backtest = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"backtest file {str(path)!r} is not JSON: {exc}") from None
    if backtest is not None and not isinstance(backtest, Mapping):
        raise TypeError(f"backtest must be a mapping or a JSON file; got {type(backtest).__name__}")
    if compute is not None and not (isinstance(compute, (int, float)) and compute > 0 and math.isfinite(compute)):
        raise ValueError(f"compute must be a positive number of FLOPs; got {compute!r}")
    spec = _plots.law_of(fit)
    frame = _plots.fit_frame(fit, data)
    if compute is None:
        compute = _default_compute(fit, frame)
    figs = _Figures(dpi)
    wanted = _check_sections(sections)
    disc = _plots.resolve_discrepancy(fit, discrepancy) if "extrapolation" in wanted else None

    diag, diag_status, problems = _diagnostics(fit)
    out = [_overview(fit, frame)]
    fan_head: dict = {}
    front_head: dict = {}
    alloc_head: dict = {}
    if "data" in wanted:
        out.append(_data_section(fit, frame, figs, data))
    if "extrapolation" in wanted:
        extrap, fan_head = _extrapolation(fit, frame, figs, data, compute, seed, disc)
        out.append(extrap)
    if "frontier" in wanted:
        front, front_head = _frontier(fit, figs, data)
        if front is not None:
            out.append(front)
    if "allocation" in wanted and compute is not None:
        alloc, alloc_head = _allocation(fit, figs, compute, risks, seed)
        if alloc is not None:
            out.append(alloc)
    if "parameters" in wanted:
        out.append(_parameters(fit, figs))
    if "diagnostics" in wanted:
        out.append(diag)
    if "contrasts" in wanted:
        contrast = _contrasts(fit, figs, compute)
        if contrast is not None:
            out.append(contrast)
    if backtest is not None and "backtest" in wanted:
        out.append(_backtest(backtest, figs))
    out.insert(1, _at_a_glance(spec, diag_status, problems, fan_head, front_head, alloc_head))
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return Report(title or f"Scaling-law report: {spec.name}", out, generated)


def write_report(
    fit,
    out: str | Path,
    data=None,
    *,
    format: str | None = None,
    compute: float | None = None,
    risks: Sequence[str] = ("expected", "cvar:0.9"),
    backtest: Mapping[str, Any] | str | Path | None = None,
    discrepancy: Any = "recorded",
    seed: int = 0,
    sections: Sequence[str] | None = None,
) -> Path:
    """Build the report of a fit and write it as HTML (default) or Markdown.

    Parameters
    ----------
    fit : arviz.InferenceData, str or Path
    out : str or Path
        Output file. Markdown also writes ``<stem>_files/*.png`` beside it.
    data : DataFrame, str or Path, optional
    format : {"html", "md"}, optional
        Default from the suffix of ``out`` (``.md`` -> Markdown), else HTML.
    compute, risks, backtest, discrepancy, seed, sections
        See :func:`build_report`.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    out = Path(out)
    if format is None:
        format = "md" if out.suffix.lower() in (".md", ".markdown") else "html"
    if format not in FORMATS:
        raise ValueError(f"unknown report format {format!r}; expected one of {', '.join(FORMATS)}")
    report = build_report(fit, data, compute=compute, risks=risks, backtest=backtest,
                          discrepancy=discrepancy, seed=seed, sections=sections)
    return report.write_html(out) if format == "html" else report.write_markdown(out)


# =========================================================================== renderers

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
color:#222;background:#fafafa;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:1.5em 2em 4em;background:#fff}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #e5e5e5;padding-bottom:.2em;margin-top:1.8em}
.meta{color:#666;font-size:.9em}
nav ol{columns:2;font-size:.95em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}
tr.ok td:last-child{background:#e8f5e9}tr.warn td:last-child{background:#fff8e1}
tr.bad td:last-child{background:#ffebee}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
"""


def _inline(text: str) -> str:
    """Escape text for HTML and turn **bold** into <strong> and `code` into <code>."""
    parts = html.escape(text).split("**")
    text = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: leave the text as it is
        return text
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _render_html(report: Report) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(report.title)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>{html.escape(report.title)}</h1>",
        (f'<p class="meta">bayes-scaling {html.escape(__version__)}, generated {html.escape(report.generated)}'
        f", {len(report.figures)} figures</p>"),
        "<nav><ol>",
    ]
    out += [f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in report.sections]
    out.append("</ol></nav>")
    for section in report.sections:
        out.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>')
        for block in section.blocks:
            if isinstance(block, str):
                out.append(f"<p>{_inline(block)}</p>")
            elif isinstance(block, Table):
                out.append(_html_table(block))
            elif isinstance(block, FigureBlock):
                data = base64.b64encode(block.png).decode("ascii")
                out.append(
                    f'<figure id="{block.name}"><img src="data:image/png;base64,{data}" '
                    f'alt="{html.escape(block.caption, quote=True)}">'
                    f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
                )
        out.append("</section>")
    out.append("</main></body></html>")
    return "\n".join(out) + "\n"


def _html_table(table: Table) -> str:
    rows = ["<table>"]
    if any(table.header):
        rows.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in table.header) + "</tr></thead>")
    rows.append("<tbody>")
    for i, row in enumerate(table.rows):
        cls = table.status[i] if i < len(table.status) and table.status[i] else ""
        attr = f' class="{cls}"' if cls else ""
        rows.append(f"<tr{attr}>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>")
    rows.append("</tbody></table>")
    return "".join(rows)


_MARK = {"ok": "✅ ", "warn": "⚠️ ", "bad": "❌ "}


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _render_markdown(report: Report, folder: str) -> str:
    out = [f"# {report.title}", "",
           f"_bayes-scaling {__version__}, generated {report.generated}, {len(report.figures)} figures_", ""]
    out += [f"{i}. [{s.title}](#{s.anchor})" for i, s in enumerate(report.sections, 1)]
    out.append("")
    for section in report.sections:
        out += [f'<a id="{section.anchor}"></a>', "", f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, str):
                out += [block, ""]
            elif isinstance(block, Table):
                header = [h or " " for h in block.header]
                out.append("| " + " | ".join(map(_md_cell, header)) + " |")
                out.append("|" + "---|" * len(header))
                for i, row in enumerate(block.rows):
                    mark = _MARK.get(block.status[i], "") if i < len(block.status) else ""
                    cells = list(map(_md_cell, row))
                    if mark:
                        cells[-1] = mark + cells[-1]
                    out.append("| " + " | ".join(cells) + " |")
                out.append("")
            elif isinstance(block, FigureBlock):
                out += [f"![{_md_cell(block.caption)}]({folder}/{block.name}.png)", "",
                        f"*{block.caption}*", ""]
    return "\n".join(out)
