"""Colours, axis labels, tick labels and new figures, shared by every figure.

matplotlib is imported inside the functions, so importing :mod:`bayes_scaling.plots` does not
import it.
"""

from __future__ import annotations

import math

from bayes_scaling.laws import LawSpec

__all__ = [
    "AXIS_LABELS",
    "DATA_COLOUR",
    "EXPONENT_REFERENCES",
    "LAW_COLOUR",
    "PALETTE",
    "RUN_COLOUR",
    "STRUCTURAL_COLOUR",
    "grid",
    "log_ticks_125",
    "new_axes",
    "suffix",
    "target_label",
]

#: Colours used throughout (matplotlib's tab10, in a fixed order).
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
LAW_COLOUR = PALETTE[0]
RUN_COLOUR = PALETTE[1]
STRUCTURAL_COLOUR = PALETTE[4]
DATA_COLOUR = "#444444"

#: Published values of the compute-optimal exponent a = beta / (alpha + beta), drawn as references.
EXPONENT_REFERENCES = (
    ("Hoffmann et al. 2022 (approach 3)", 0.4545),
    ("Besiroglu et al. 2024 refit", 0.513),
)

#: Axis labels of the covariates.
AXIS_LABELS = {
    "C": "training compute C (FLOP)",
    "N": "parameters N",
    "D": "training tokens D",
    "B": "batch size B",
    "steps": "optimiser steps",
    "U": "unique tokens U",
}


def new_axes(ax, figsize=(6.4, 4.2)):
    """``(figure, axes)``: the axes given and its figure, or a new one-panel figure.

    The new figure is a :class:`matplotlib.figure.Figure` (not ``pyplot``), so building many
    figures keeps no global state.
    """
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def grid(n: int, figsize_per=(2.6, 2.1), max_cols: int = 4):
    """A new figure with ``n`` panels, up to ``max_cols`` a row: ``(figure, [axes])``."""
    from matplotlib.figure import Figure

    cols = min(max_cols, n)
    rows = math.ceil(n / cols)
    size = (figsize_per[0] * cols, figsize_per[1] * rows + 0.4)
    fig = Figure(figsize=size, layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


def target_label(spec: LawSpec) -> str:
    """The y label of a law's target."""
    return "loss (nats/token)" if spec.target == "loss" else spec.target


def suffix(group: str | None) -> str:
    """`` [group]`` for a title, nothing without a group."""
    return "" if group is None else f" [{group}]"


def log_ticks_125(axis) -> None:
    """Labels at 1, 2 and 5 times powers of ten, none on minor ticks: readable on short log axes."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    def label(value, _pos):
        if value <= 0:
            return ""
        exponent = math.floor(math.log10(value) + 1e-9)
        mantissa = round(value / 10**exponent)
        return f"$10^{{{exponent}}}$" if mantissa == 1 else f"${mantissa}\\times10^{{{exponent}}}$"

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(label))
    axis.set_minor_formatter(NullFormatter())
