"""The report's backtest section: verdict, setting, scores and the held-out runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayes_scaling import plots as _plots
from bayes_scaling.predict.refits import unlearned_directions, unsettled_refits
from bayes_scaling.report.blocks import Figures, Section, Table, cell
from bayes_scaling.report.verdicts import coverage_verdict

__all__ = ["BACKTEST_ROWS", "backtest_section"]

#: The scores shown, in order, with what they mean.
BACKTEST_ROWS = (
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


def backtest_section(backtest: Mapping[str, Any], figs: Figures) -> Section:
    """A backtest report (:func:`bayes_scaling.backtest.backtest`) as a section."""
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
        verdict = (("new-run 90% interval", text),)
        section.blocks.append(Table(("verdict", ""), verdict, (status,)))
    setup = _setup_rows(backtest)
    if setup:
        section.blocks.append(Table(("setting", "value"), tuple(setup)))
    columns = [("new run", backtest)]
    for key, label in (
        ("without_discrepancy", "without discrepancy"),
        ("law_mean", "law mean only"),
        ("baseline", "point fit"),
    ):
        if isinstance(backtest.get(key), Mapping):
            columns.append((label, backtest[key]))
    rows = [
        (desc, *(cell(col.get(metric)) for _, col in columns))
        for metric, desc in BACKTEST_ROWS
        if any(metric in col for _, col in columns)
    ]
    if rows:
        section.blocks.append(Table(("score", *(label for label, _ in columns)), tuple(rows)))
    elif not setup:  # an unfamiliar report: show its top-level numbers
        scalars = [
            (str(k), cell(v))
            for k, v in backtest.items()
            if isinstance(v, (int, float, str, bool)) or v is None
        ]
        if scalars:
            section.blocks.append(Table(("quantity", "value"), tuple(scalars)))
    _points_blocks(section, backtest, figs)
    return section


def _setup_rows(backtest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The backtest's setting: law, split, sizes, distance and discrepancy."""
    keys = ("law", "split", "n_train", "n_test", "max_distance")
    setup = [(k, cell(backtest.get(k))) for k in keys if k in backtest]
    disc = backtest.get("discrepancy")
    if isinstance(disc, Mapping):
        if not disc.get("enabled"):
            value = "none"
        else:
            value = f"{disc.get('method', '')}, tau median {cell(disc.get('tau_median'))}"
        setup.append(("extrapolation discrepancy", value))
        cuts = (disc.get("details") or {}).get("cuts") or ()
        unlearned = unlearned_directions(backtest.get("held_out_beyond_in"), cuts)
        if unlearned:
            setup.append(("directions beyond the runs", unlearned))
        unsettled = unsettled_refits(cuts)
        if unsettled:
            setup.append(
                (
                    "discrepancy refits whose chains disagree",
                    unsettled + ": tau may move with the seed",
                )
            )
    return setup


def _points_blocks(section: Section, backtest: Mapping[str, Any], figs: Figures) -> None:
    """The held-out runs: a figure and a table of the first 40."""
    points = _plots.backtest_points(backtest)
    if points is None:
        return
    caption = (
        "Held-out runs (crosses) against the predictions "
        "made without them (median, 50% and 90% intervals)"
    )
    section.blocks.append(figs.make("backtest", caption, _plots.backtest_chart, backtest))
    names = ("group", "N", "D", "C", "B", "observed", "median", "q05", "q95", "distance")
    keep = [c for c in (*names, "baseline") if c in points.columns]
    shown = points[keep or list(points.columns)].head(40)
    body = tuple(tuple(cell(v) for v in row) for row in shown.itertuples(index=False))
    section.blocks.append(Table(tuple(map(str, shown.columns)), body))
    if len(points) > len(shown):
        section.blocks.append(f"First {len(shown)} of {len(points)} held-out runs.")
