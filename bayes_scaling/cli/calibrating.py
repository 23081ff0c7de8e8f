"""The ``calibrate`` command, and the discrepancy ``fit`` stores with a fit."""

from __future__ import annotations

import json
from pathlib import Path

from bayes_scaling._files import atomic_path
from bayes_scaling.cli import _common as _c

_ROWS = ("coverage_50", "coverage_80", "coverage_90", "coverage_95", "mean_width_rel")


def _cuts(text: str) -> int | list[float]:
    """--cuts: a number of cuts, or comma-separated quantiles."""
    try:
        return int(text)
    except ValueError:
        pass
    values = _c.parse_floats(text, "--cuts")
    assert values is not None
    return values


def cmd_calibrate(args) -> int:
    from bayes_scaling import backtest

    _c.check_out(args, args.data)
    if args.plot:
        from bayes_scaling._files import check_output

        check_output(args.plot, inputs=[args.data], force=args.force)
    df = _c.read_data(args)
    _c.say(f"calibration of {args.law} on {args.data}: cuts along {args.axis}")
    report = backtest.calibrate(
        df,
        args.law,
        axis=args.axis,
        cuts=_cuts(args.cuts),
        discrepancy=_c.parse_discrepancy(args.discrepancy),
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
        target_accept_prob=args.target_accept,
        seed=args.seed,
        method=args.method,
        trajectory_length=args.trajectory_length,
        pilot=args.pilot,
        calibration=_c.calibration_kwargs(args) or None,
        **_c.fit_kwargs(args),
    )
    if args.out:
        with atomic_path(args.out) as tmp:
            Path(tmp).write_text(json.dumps(report, indent=2))
        _c.say(f"wrote {args.out}")
    if args.plot:
        from bayes_scaling import plots

        with atomic_path(args.plot) as tmp:
            plots.calibration_chart(report).savefig(tmp, dpi=120, format=Path(args.plot).suffix[1:])
        _c.say(f"wrote {args.plot}")
    _c.print_json_or_lines(report, args.json, _lines(report))
    return 0


def _lines(report) -> list[str]:
    head = f"{'cut':>5} {'n_train':>7} {'n_test':>6} " + " ".join(f"{k[:12]:>12}" for k in _ROWS)
    lines = [head + f" {'median_are':>10} {'point_fit':>9}"]
    for row in [*report["cuts"], {"cut": "all", "n_train": "", **report["pooled"]}]:
        cells = " ".join(f"{row[k]:12.3f}" for k in _ROWS)
        lines.append(
            f"{row['cut']!s:>5.5} {row['n_train']!s:>7} {row['n_test']!s:>6} {cells} "
            f"{row['median_are']:10.4f} {row['baseline']['median_are']:9.4f}"
        )
    return lines


def store_discrepancy(groups, args):
    """``fit --discrepancy``: the fit with its discrepancy calibrated (auto) or fixed, stored.

    Returns ``groups`` unchanged for ``off``; else an ``InferenceData`` to save.
    """
    from bayes_scaling import inference, predict

    setting = _c.parse_discrepancy(args.discrepancy)
    if setting is None:
        return groups
    idata = inference.to_inference_data(groups)
    if setting in ("auto", "calibrate"):
        disc = predict.calibrate_discrepancy(idata, seed=args.seed, **_c.calibration_kwargs(args))
        from bayes_scaling.predict.refits import beyond_words, learned_directions

        learned = learned_directions(disc.details.get("cuts") or ())
        source = f", learned from runs beyond in {beyond_words(learned)}" if learned else ""
        _c.say(
            f"extrapolation discrepancy: tau median {disc.tau_quantile(0.5):.3g} per e-fold "
            f"(stored){source}"
        )
    else:
        disc = predict.get_discrepancy(idata, setting)
    return predict.attach_discrepancy(idata, disc)


def register(sub) -> None:
    """Add the calibrate command."""
    p = sub.add_parser(
        "calibrate",
        help="rolling leave-future-out backtests over one data set: coverage, PIT, reliability",
    )
    p.add_argument("data", help="CSV file or dataset name")
    _c.add_fit_options(p)
    p.set_defaults(method="laplace")
    p.add_argument(
        "--axis", default="C", help="scale along which to cut: C (default), N, D or a covariate"
    )
    p.add_argument(
        "--cuts",
        default="5",
        help="number of cuts (quantiles 0.5 to 0.9 of the axis' distinct values; default 5) "
        "or comma-separated quantiles",
    )
    p.add_argument(
        "--discrepancy",
        default="calibrate",
        help="extrapolation discrepancy: calibrate (default: learned per cut), off, or a tau",
    )
    _c.add_calibration_options(p)
    p.add_argument("--out", help="output JSON report")
    p.add_argument("--plot", help="reliability diagram and PIT histogram (PNG/SVG/PDF)")
    p.add_argument(
        "--force", action="store_true", help="replace --out/--plot if they exist (never an input)"
    )
    p.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    p.set_defaults(func=cmd_calibrate)
