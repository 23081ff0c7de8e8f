"""The ``report`` and ``plot`` commands."""

from __future__ import annotations

import time
from pathlib import Path

from bayes_scaling._files import atomic_path
from bayes_scaling.cli import _common as _c


def cmd_report(args) -> int:
    from bayes_scaling import report as _report

    _c.check_out(args, args.fit, args.data, args.backtest)
    _c.say(f"building the {args.format} report of {args.fit}")
    t0 = time.perf_counter()
    risks = [s.strip() for s in args.risk.split(",") if s.strip()]
    if not risks:
        raise ValueError("--risk names no risk measure; e.g. --risk expected,cvar:0.9")
    path = _report.write_report(
        args.fit,
        args.out,
        args.data,
        format=args.format,
        compute=args.compute,
        risks=risks,
        backtest=args.backtest,
        discrepancy=_c.report_discrepancy(args.discrepancy),
        seed=args.seed,
    )
    _c.say(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_plot(args) -> int:
    from bayes_scaling import inference
    from bayes_scaling import plots as _plots

    _c.check_out(args, args.fit, args.data)
    fit = inference.load_fit(args.fit)
    disc = _c.report_discrepancy(args.discrepancy)
    kinds = {
        "fan": lambda: _plots.fan_chart(
            fit, args.data, group=args.group, compute=args.compute, discrepancy=disc
        ),
        "curves": lambda: _plots.fit_curves(fit, args.data, group=args.group),
        "check": lambda: _plots.predictive_check(fit, args.data, group=args.group),
        "frontier": lambda: _plots.frontier(fit, args.data, group=args.group),
        "posteriors": lambda: _plots.posteriors(fit),
        "exponent": lambda: _plots.exponent(fit),
    }
    fig = kinds[args.kind]()
    out = Path(args.out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=args.dpi, format=out.suffix.lstrip(".") or None)
    _c.say(f"wrote {out}")
    return 0


def register(sub) -> None:
    """Add the report and plot commands."""
    p = sub.add_parser(
        "report", help="self-contained HTML (or Markdown) report of a fit with embedded figures"
    )
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit`")
    p.add_argument(
        "--data",
        help="CSV file or dataset name with the runs to show (default: the data stored in the fit)",
    )
    p.add_argument(
        "--compute",
        type=float,
        help="budget in FLOPs for the extrapolation and the allocation "
        "(default 100x the largest run)",
    )
    p.add_argument(
        "--risk",
        default="expected,cvar:0.9",
        help="comma-separated risk measures for the allocation (default expected,cvar:0.9)",
    )
    p.add_argument(
        "--backtest",
        help="backtest JSON report (written by `bayes-scaling backtest --out`) to include",
    )
    p.add_argument(
        "--discrepancy",
        default="recorded",
        help="extrapolation discrepancy of the fan: recorded (the fit's own, else none; default), "
        "calibrate (learn it by leave-future-out: several refits), off, or a fixed tau",
    )
    p.add_argument(
        "--format",
        choices=["html", "md"],
        default="html",
        help="html (one self-contained file) or md (Markdown with PNGs in <stem>_files/)",
    )
    p.add_argument("--seed", type=_c.seed_type, default=0)
    p.add_argument("--out", required=True, help="output file")
    p.add_argument(
        "--force", action="store_true", help="replace --out if it exists (never an input file)"
    )
    p.set_defaults(func=cmd_report)

    _register_plot(sub)


def _register_plot(sub) -> None:
    p = sub.add_parser(
        "plot", help="one figure of a fit as PNG/SVG/PDF (default: the extrapolation fan chart)"
    )
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit`")
    p.add_argument(
        "--kind",
        default="fan",
        choices=["fan", "curves", "check", "frontier", "posteriors", "exponent"],
    )
    p.add_argument(
        "--data",
        help="CSV file or dataset name with the runs to show (default: the data stored in the fit)",
    )
    p.add_argument("--group", help="group of a hierarchical fit ('new' for an unseen group)")
    p.add_argument(
        "--compute",
        type=float,
        help="right end of the fan chart in FLOPs (default 100x the largest run)",
    )
    p.add_argument(
        "--discrepancy",
        default="recorded",
        help="extrapolation discrepancy of the fan: recorded (default), calibrate, off, or a tau",
    )
    p.add_argument("--dpi", type=int, default=120)
    p.add_argument(
        "--out",
        required=True,
        help="output image; the format follows the suffix (.png, .svg, .pdf)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace --out if it exists (never an input file)"
    )
    p.set_defaults(func=cmd_plot)
