"""The ``predict`` and ``backtest`` commands."""

from __future__ import annotations

import json
from pathlib import Path

from bayes_scaling._files import atomic_path
from bayes_scaling.cli import _common as _c


def cmd_predict(args) -> int:
    import pandas as pd

    from bayes_scaling import data as _data
    from bayes_scaling import inference, predict

    _c.check_out(args, args.fit, args.points)
    quantiles = _c.parse_quantiles(args.quantiles)
    idata = inference.load_fit(args.fit)
    points = _data.read_table(args.points)
    if points.empty:
        raise ValueError(f"points file {args.points!r} has no rows")
    label = _label_column(points, args.label)
    ds = predict.predict(
        idata,
        points,
        group=args.group,
        discrepancy=_c.parse_discrepancy(args.discrepancy),
        quantiles=quantiles,
        seed=args.seed,
        columns=_c.parse_mapping(args.map, "--map") or None,
    )
    out = points.reset_index(drop=True).copy()
    if label is not None:  # run names first, so each prediction reads as its run's
        out = out[[label, *(c for c in out.columns if c != label)]]
    for kind in predict.KINDS:
        if kind not in ds:
            continue
        # a mean only for the law: the Student-t noise and the discrepancy's t slope act on the
        # log scale and give a new run's loss no finite mean (a draws' average would be noise)
        if kind == "law_mean":
            out[f"{kind}_mean"] = ds[f"{kind}_mean"].values
        for q in quantiles:
            out[f"{kind}_q{round(q * 100):02d}"] = ds[f"{kind}_quantiles"].sel(quantile=q).values
    if "distance" in ds:
        out["distance"] = ds["distance"].values
    unlearned = _unlearned_directions(ds)
    if unlearned:
        _c.say(f"directions: {unlearned}")
    with atomic_path(args.out) as tmp:
        out.to_csv(tmp, index=False)
    _c.say(f"wrote {len(out)} predictions to {args.out}")
    with pd.option_context(
        "display.width", 160, "display.max_columns", 30, "display.float_format", "{:.4g}".format
    ):
        print(out.to_string(index=False))
    return 0


def _unlearned_directions(ds) -> str:
    """Where the predicted points leave the training runs in a direction that the stored
    discrepancy's pseudo-futures never left theirs in, words that say so; else empty."""
    from bayes_scaling import predict
    from bayes_scaling.predict.refits import unlearned_directions

    text = ds.attrs.get("discrepancy") or ""
    if not text:
        return ""
    disc = predict.Discrepancy.from_json(text)
    names = {part for coordinate in disc.coordinates for part in coordinate.split("*")}
    if not names <= set(ds.coords):
        return ""
    beyond = disc.beyond_in({name: ds[name].values for name in names})
    words = unlearned_directions(beyond, disc.details.get("cuts") or (), what="the points")
    return _c.cli_words(words)


def _label_column(points, name: str | None) -> str | None:
    """The column naming each point: ``--label COL``, else a ``label`` or ``run`` column."""
    if name is not None:
        if name not in points.columns:
            raise ValueError(
                f"--label column {name!r} not found; found columns: "
                f"{', '.join(map(str, points.columns))}"
            )
        return name
    return next((c for c in ("label", "run") if c in points.columns), None)


def cmd_backtest(args) -> int:
    from bayes_scaling import backtest

    _c.check_out(args, args.data)
    df = _c.read_data(args)
    kwargs = _c.fit_kwargs(args)
    _c.say(f"backtest of {args.law} on {args.data}: training side {args.train}")
    report = backtest.backtest(
        df,
        args.law,
        args.train,
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
        **kwargs,
    )
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2, default=float))
    nb = report.get("new_run", report)
    base = report.get("baseline", {})
    keys = [
        k
        for k in (
            "coverage_50",
            "coverage_80",
            "coverage_90",
            "coverage_95",
            "mean_width_rel",
            "crps",
            "log_pred_density",
            "median_are",
            "max_are",
        )
        if k in nb
    ]
    print(f"train {report.get('n_train')} runs, test {report.get('n_test')} runs")
    for k in keys:
        print(f"  {k:18s} {nb[k]:.4g}")
    if base:
        print(
            f"  point-fit baseline: median_are {base.get('median_are', float('nan')):.4g}, max_are "
            f"{base.get('max_are', float('nan')):.4g}"
        )
    print(_discrepancy_line(report.get("discrepancy")))
    directions = _directions_line(report)
    if directions:
        print(directions)
    _c.say(f"wrote {args.out}")
    return 0


def _discrepancy_line(disc) -> str:
    """The discrepancy the new-run band carried: its tau and where it came from."""
    if not disc or not disc.get("enabled", True):
        return "  discrepancy        off"
    tau = "-".join(_c.fmt(disc.get(k), ".3g") for k in ("tau_q05", "tau_q95"))
    cuts = (disc.get("details") or {}).get("cuts")
    source = f"{len(cuts)} leave-future-out refits" if cuts else disc.get("method", "")
    return (
        f"  discrepancy        tau median {_c.fmt(disc.get('tau_median'), '.3g')} (90%: {tau}) "
        f"per e-fold beyond the training runs; {source}"
    )


def _directions_line(report) -> str:
    """Where the held-out runs leave the training runs in a direction that none of the
    discrepancy's pseudo-futures left theirs in, a line that says so; else empty."""
    from bayes_scaling.predict.refits import unlearned_directions

    cuts = ((report.get("discrepancy") or {}).get("details") or {}).get("cuts") or ()
    unlearned = unlearned_directions(report.get("held_out_beyond_in"), cuts)
    return f"  directions         {_c.cli_words(unlearned)}" if unlearned else ""


def register(sub) -> None:
    """Add the predict and backtest commands."""
    p = sub.add_parser("predict", help="posterior predictive loss at new points, with bands")
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit`")
    p.add_argument(
        "--points",
        required=True,
        help="CSV with the law's covariates (e.g. N,D), one row per point; the fit's own "
        "column names work too (a fit records its --map)",
    )
    p.add_argument(
        "--map",
        help="rename the points' columns to canonical names, e.g. params=N,tokens=D "
        "(default: the mapping the fit was given)",
    )
    p.add_argument(
        "--label",
        help="column naming each point, shown first in the output (default: a 'label' or "
        "'run' column when there is one)",
    )
    p.add_argument("--group", help="group label of a hierarchical fit, or 'new'")
    p.add_argument("--quantiles", default="0.05,0.5,0.95")
    p.add_argument(
        "--discrepancy",
        default="auto",
        help="extrapolation discrepancy: auto (the fit's stored one; none if it has none), "
        "calibrate (learn one now: several quick refits), off, or a fixed tau",
    )
    p.add_argument("--seed", type=_c.seed_type, default=0)
    p.add_argument("--out", required=True, help="output CSV")
    p.add_argument(
        "--force", action="store_true", help="replace --out if it exists (never an input file)"
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "backtest",
        help="fit on one side of a split, score predictions of the other; point-fit baseline "
        "beside it",
    )
    p.add_argument("data", help="CSV file or dataset name")
    _c.add_fit_options(p)
    p.add_argument(
        "--train",
        required=True,
        help="training side: 'C<=1e21' (C, N or D with <, <=, >, >=) or a boolean column",
    )
    p.add_argument(
        "--discrepancy",
        default="auto",
        help="extrapolation discrepancy of the backtest: auto (calibrated on the training fit), "
        "off, or a fixed tau",
    )
    _c.add_calibration_options(p)
    p.add_argument("--out", required=True, help="output JSON report")
    p.add_argument(
        "--force", action="store_true", help="replace --out if it exists (never an input file)"
    )
    p.set_defaults(func=cmd_backtest)
