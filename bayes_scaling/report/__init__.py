"""A report of a fit a researcher reads: one self-contained HTML file, or Markdown with PNGs.

:func:`build_report` computes everything once into a :class:`Report` (sections of paragraphs,
tables and PNG figures); :meth:`Report.to_html` embeds the figures as base64 ``data:`` URIs
(the file opens without a network and runs no script), :meth:`Report.write_markdown` writes
the figures beside the Markdown file. :func:`write_report` does both steps.

Sections: what was fitted; data with fitted curves; extrapolation to larger compute (law-mean
and new-run bands); compute-optimal frontier and exponent; parameter posteriors; diagnostics
with plain-language verdicts; the allocation of a budget with its risk curve; group contrasts;
the backtest when one is given.

The package by job: ``blocks`` (sections, tables, figures, formatting), ``verdicts``,
``sections`` (overview, data, parameters, diagnostics, at a glance), ``extrapolation`` (fan
and frontier), ``decisions`` (allocation and group contrasts), ``backtest``, ``build``
(:func:`build_report`, :func:`write_report`) and ``render`` (HTML and Markdown). The numbers
come from the public helpers of :mod:`bayes_scaling.plots`.
"""

from __future__ import annotations

from bayes_scaling.report.blocks import FigureBlock, Report, Section, Table
from bayes_scaling.report.build import FORMATS, SECTIONS, build_report, write_report
from bayes_scaling.report.verdicts import (
    coverage_verdict,
    divergence_verdict,
    ess_verdict,
    rhat_verdict,
)

__all__ = [
    "FORMATS",
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
