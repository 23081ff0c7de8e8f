"""Building a report: checking the inputs, computing the sections in order, writing the file."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bayes_scaling import inference as _inference
from bayes_scaling import plots as _plots
from bayes_scaling.report.backtest import backtest_section
from bayes_scaling.report.blocks import Figures, Report, Section
from bayes_scaling.report.decisions import allocation_section, contrasts_section
from bayes_scaling.report.extrapolation import extrapolation_section, frontier_section
from bayes_scaling.report.sections import (
    at_a_glance,
    data_section,
    default_compute,
    diagnostics_section,
    overview_section,
    parameters_section,
)

__all__ = [
    "FORMATS",
    "METADATA",
    "SECTIONS",
    "build_report",
    "check_metadata",
    "check_sections",
    "write_report",
]

FORMATS = ("html", "md")
SECTIONS = (
    "data",
    "extrapolation",
    "frontier",
    "allocation",
    "parameters",
    "diagnostics",
    "contrasts",
    "backtest",
)


def check_sections(sections: Sequence[str] | None) -> tuple[str, ...]:
    """The sections asked for (all by default), refusing unknown names."""
    if sections is None:
        return SECTIONS
    if isinstance(sections, str):
        sections = [sections]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown report sections {unknown}; available: {', '.join(SECTIONS)}")
    return tuple(sections)


#: The posterior attributes every figure and most tables decode.
METADATA = ("law", "priors", "pooling", "groups", "reference")


def check_metadata(fit) -> None:
    """Refuse a fit whose recorded law, priors, pooling, groups or reference cannot be read.

    Every figure and most tables decode them; without this check the report would come out
    with its figures replaced by notes (or fail on a bare ``KeyError``).
    """
    attrs = fit.posterior.attrs
    missing = [k for k in ("law", "priors") if k not in attrs]
    problem = f"missing {', '.join(repr(k) for k in missing)}" if missing else None
    if problem is None:
        try:
            # the JSON attributes first, so that the message names the decoding error itself
            # (fit_spec rewraps an unreadable 'priors' as a ValueError of its own)
            for key in ("priors", "pooling", "groups", "reference"):
                if key in attrs:
                    json.loads(attrs[key])
            _inference.fit_spec(fit)
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            problem = f"unreadable ({type(exc).__name__}: {exc})"
    if problem is not None:
        raise ValueError(
            f"the fit's metadata (posterior attributes {', '.join(METADATA)}) is {problem}: the "
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
    discrepancy : "recorded", "auto", "calibrate", None, float or Discrepancy, default "recorded"
        Extrapolation discrepancy of the fan and its table: the one recorded in the fit (none
        if there is none; ``"auto"`` likewise, with a warning when there is none),
        ``"calibrate"`` to learn one by leave-future-out (several refits),
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
    check_metadata(fit)
    backtest = _read_backtest(backtest)
    finite = isinstance(compute, (int, float)) and compute > 0 and math.isfinite(compute)
    if compute is not None and not finite:
        raise ValueError(f"compute must be a positive number of FLOPs; got {compute!r}")
    spec = _plots.law_of(fit)
    frame = _plots.fit_frame(fit, data)
    wanted = check_sections(sections)
    disc = _plots.resolve_discrepancy(fit, discrepancy) if "extrapolation" in wanted else None
    plan = _Plan(
        fit=fit,
        data=data,
        frame=frame,
        compute=default_compute(fit, frame) if compute is None else compute,
        risks=risks,
        backtest=backtest,
        disc=disc,
        seed=seed,
        figs=Figures(dpi),
        wanted=wanted,
    )
    out = _sections(plan, spec)
    generated = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Report(title or f"Scaling-law report: {spec.name}", out, generated)


def _read_backtest(backtest: Mapping[str, Any] | str | Path | None) -> Mapping[str, Any] | None:
    """A backtest report given as a mapping or a JSON file, checked."""
    if isinstance(backtest, (str, Path)):
        path = Path(backtest)
        if not path.is_file():
            raise FileNotFoundError(f"backtest file {str(path)!r} does not exist")
        try:
            backtest = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"backtest file {str(path)!r} is not JSON: {exc}") from None
    if backtest is not None and not isinstance(backtest, Mapping):
        kind = type(backtest).__name__
        raise TypeError(f"backtest must be a mapping or a JSON file; got {kind}")
    return backtest


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What the sections of one report are computed from."""

    fit: Any
    data: Any
    frame: pd.DataFrame
    compute: float | None
    risks: Sequence[str]
    backtest: Mapping[str, Any] | None
    disc: Any
    seed: int
    figs: Figures
    wanted: tuple[str, ...]


def _sections(plan: _Plan, spec) -> list[Section]:
    """The sections in order (figures are numbered as they are made), the summary second."""
    fit, figs, wanted = plan.fit, plan.figs, plan.wanted
    diag, diag_status, problems = diagnostics_section(fit)
    out = [overview_section(fit, plan.frame)]
    fan_head: dict = {}
    front_head: dict = {}
    alloc_head: dict = {}
    if "data" in wanted:
        out.append(data_section(fit, plan.frame, figs, plan.data))
    if "extrapolation" in wanted:
        extrap, fan_head = extrapolation_section(
            fit, plan.frame, figs, plan.data, plan.compute, plan.seed, plan.disc
        )
        out.append(extrap)
    if "frontier" in wanted:
        front, front_head = frontier_section(fit, figs, plan.data)
        if front is not None:
            out.append(front)
    if "allocation" in wanted and plan.compute is not None:
        alloc, alloc_head = allocation_section(fit, figs, plan.compute, plan.risks, plan.seed)
        if alloc is not None:
            out.append(alloc)
    if "parameters" in wanted:
        out.append(parameters_section(fit, figs))
    if "diagnostics" in wanted:
        out.append(diag)
    if "contrasts" in wanted:
        contrast = contrasts_section(fit, figs, plan.compute)
        if contrast is not None:
            out.append(contrast)
    if plan.backtest is not None and "backtest" in wanted:
        out.append(backtest_section(plan.backtest, figs))
    out.insert(1, at_a_glance(spec, diag_status, problems, fan_head, front_head, alloc_head))
    return out


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
    report = build_report(
        fit,
        data,
        compute=compute,
        risks=risks,
        backtest=backtest,
        discrepancy=discrepancy,
        seed=seed,
        sections=sections,
    )
    return report.write_html(out) if format == "html" else report.write_markdown(out)
