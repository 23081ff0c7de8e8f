"""The ``compare`` and ``contrast`` commands."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bayes_scaling.cli import _common as _c


def cmd_compare(args) -> int:
    from bayes_scaling import compare as _compare
    from bayes_scaling import inference

    if args.law:
        raise ValueError(
            "compare takes --laws (comma-separated, e.g. --laws chinchilla,kaplan,power_law), not "
            "--law"
        )
    laws = [s.strip() for s in args.laws.split(",") if s.strip()]
    if args.save:
        from bayes_scaling._files import check_output

        for law in laws:
            check_output(
                Path(args.save) / (law.replace(":", "_") + ".nc"),
                inputs=[args.data],
                force=args.force,
                option="--save",
            )
    df = _c.read_data(args)
    kwargs = _c.fit_kwargs(args)
    priors = _c.parse_mapping(kwargs.pop("priors"), "--priors (law=prior_set,...)") or None
    holdout = None if args.no_future else (args.split or args.holdout)
    _c.say(
        f"comparing {', '.join(laws)} on {len(df)} rows from {args.data}: PSIS-LOO"
        f"{'' if holdout is None else ' and leave-future-out'}; each fit {args.chains} chains x "
        f"({args.warmup} warmup + {args.samples} draws)"
    )
    t0 = time.perf_counter()
    result = _compare.compare_laws(
        df,
        laws,
        priors=priors,
        holdout=holdout,
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
        target_accept_prob=args.target_accept,
        seed=args.seed,
        fit_method=args.method,
        trajectory_length=args.trajectory_length,
        pilot=args.pilot,
        **kwargs,
    )
    _c.say(f"compared in {time.perf_counter() - t0:.1f} s")
    for note in result.notes:
        _c.say(f"note: {note}")
    if args.save:
        for law, idata in result.fits.items():
            _c.say(f"wrote {inference.save_fit(idata, Path(args.save) / _law_file(law))}")
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    _print_comparison(result)
    return 0


def _print_comparison(result) -> None:
    from bayes_scaling import inference

    t = result.table
    target = inference.fit_spec(next(iter(result.fits.values())))["law"].target
    print(f"PSIS-LOO on {len(result.frame)} points (elpd of log {target}; higher is better)")
    print(
        f"{'law':<18}{'elpd_loo':>10}{'se':>8}{'elpd_diff':>11}{'dse':>8}"
        f"{'weight':>8}{'p_loo':>7}{'bad k':>7}"
    )
    for law, r in t.iterrows():
        print(
            f"{law:<18}{r['elpd_loo']:>10.1f}{r['se']:>8.1f}{r['elpd_diff']:>11.1f}"
            f"{r['dse']:>8.1f}{r['weight']:>8.3f}{r['p_loo']:>7.1f}{int(r['bad_k']):>7d}"
        )
    if result.split is not None:
        _print_future(t, result.split)
    print("diff: elpd of the best law minus this law's; dse: its standard error. weight: stacking.")


def _print_future(t, split) -> None:
    print()
    print(
        f"leave-future-out: fit on {split['train_points']} points ({split['axis']} <= "
        f"{split['train_max']:.3g}), scored on {split['test_points']} ({split['axis']} >= "
        f"{split['test_min']:.3g})"
    )
    print(f"{'law':<18}{'lfo_elpd':>10}{'se':>8}{'lfo_diff':>11}{'dse':>8}{'weight':>8}{'rmse':>9}")
    for law, r in t.sort_values("lfo_rank").iterrows():
        print(
            f"{law:<18}{r['lfo_elpd']:>10.1f}{r['lfo_se']:>8.1f}{r['lfo_diff']:>11.1f}"
            f"{r['lfo_dse']:>8.1f}{r['lfo_weight']:>8.3f}{r['lfo_rmse']:>9.4f}"
        )
    print(
        "rmse: root mean squared error of the posterior-mean log prediction on the held-out points"
    )


def _rope(text: str | None) -> float | tuple[float, float] | None:
    values = _c.parse_floats(text, "--rope")
    if values is None:
        return None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise ValueError(f"--rope must be a half-width r or low,high; got {text!r}")


def _law_file(law: str) -> str:
    return law.replace(":", "_") + ".nc"


def cmd_contrast(args) -> int:

    from bayes_scaling import compare as _compare
    from bayes_scaling import inference

    idata = inference.load_fit(args.fit)
    rope = _rope(args.rope)
    crange = _c.parse_pair(args.compute_range, "--compute-range", "FLOPs")
    params = [s.strip() for s in args.param.split(",") if s.strip()]
    if not params:
        raise ValueError("--param names no quantity")
    results = [
        _compare.contrast(
            idata,
            param,
            args.groups,
            kind=args.kind,
            rope=rope,
            prob=args.prob,
            compute=args.compute,
            compute_range=crange,
            flops_per_token=args.flops_per_token,
        )
        for param in params
    ]
    if args.json:
        out = [r.to_dict() for r in results]
        print(json.dumps(out[0] if len(out) == 1 else out, indent=2))
        return 0
    column = idata.posterior.attrs.get("group_column") or "group"
    pct = f"{args.prob * 100:g}%"
    for i, r in enumerate(results):
        if i:
            print()
        print(f"{r.quantity}: {r.description}; groups of {column!r}: {', '.join(r.groups)}")
        if r.kind == "crossing":
            _print_crossing(r, pct)
        else:
            _print_contrast(r, pct)
    return 0


def register(sub) -> None:
    """Add the compare and contrast commands."""
    p = sub.add_parser(
        "compare",
        help="fit several laws to the same data and rank them by PSIS-LOO and leave-future-out",
    )
    p.add_argument("data", help="CSV file or dataset name")
    p.add_argument(
        "--laws",
        default="chinchilla,kaplan,power_law",
        help="comma-separated laws (default chinchilla,kaplan,power_law; power_law is over C, "
        "computed as k N D when the data has N and D but no C)",
    )
    _c.add_fit_options(
        p,
        law_default=None,
        law_help="not used by compare: give --laws",
        priors_help="prior sets per law, e.g. chinchilla=chinchilla-literature",
    )
    p.set_defaults(samples=500)  # per chain: 2000 draws are ample for PSIS-LOO; 2 fits per law
    p.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        help="leave-future-out: fraction of the points with the largest compute to hold out "
        "(default 0.2)",
    )
    p.add_argument(
        "--split", help="leave-future-out training side instead of --holdout, e.g. 'C<=1e21'"
    )
    p.add_argument(
        "--no-future",
        action="store_true",
        help="skip leave-future-out (PSIS-LOO only; half the fits)",
    )
    p.add_argument("--save", help="directory to write each law's fit as <law>.nc")
    p.add_argument("--force", action="store_true", help="replace existing files in --save")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)
    _register_contrast(sub)


def _register_contrast(sub) -> None:
    p = sub.add_parser(
        "contrast", help="posterior of a between-group contrast in a hierarchical fit"
    )
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit --group COLUMN`")
    p.add_argument(
        "--param",
        required=True,
        help="per-group parameter (E, alpha, ...) or derived quantity: "
        "a (compute-optimal exponent), "
        "loss (with --compute), crossing; comma-separated for several",
    )
    p.add_argument(
        "--groups", help="comma-separated group labels (default: all; every pair is reported)"
    )
    p.add_argument("--kind", choices=["difference", "ratio"], default="difference")
    p.add_argument("--rope", help="region of practical equivalence: half-width r, or low,high")
    p.add_argument("--prob", type=float, default=0.9, help="interval mass (default 0.9)")
    p.add_argument(
        "--compute", type=float, help="FLOPs for --param loss (compute-optimal loss at that budget)"
    )
    p.add_argument("--compute-range", help="low,high FLOPs searched for --param crossing")
    p.add_argument("--flops-per-token", type=float, default=6.0, help="k in C = k N D (default 6)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_contrast)


def _print_crossing(r, pct: str) -> None:
    lo, hi = r.compute_range or (float("nan"), float("nan"))
    print(
        f"searched C in [{lo:.3g}, {hi:.3g}] FLOP; crossing compute: median and {pct} "
        "interval among draws that cross"
    )
    print(
        f"{'pair':<24}{'P(cross)':>9}{'median':>11}{'lower':>11}{'upper':>11}"
        f"{'P(1st lower @lo)':>18}{'@hi':>7}"
    )
    for pair, row in r.table.iterrows():
        print(
            f"{pair:<24}{row['p_cross']:>9.3f}{_c.fmt(row['median'], '.3g'):>11}"
            f"{_c.fmt(row['lower'], '.3g'):>11}{_c.fmt(row['upper'], '.3g'):>11}"
            f"{row['p_first_lower_at_low']:>18.3f}{row['p_first_lower_at_high']:>7.3f}"
        )


def _print_contrast(r, pct: str) -> None:
    import numpy as np

    for g, v in r.values.items():
        q = np.quantile(v, [0.5, (1 - r.prob) / 2, (1 + r.prob) / 2])
        print(f"  {g}: median {q[0]:.4g}, {pct} interval [{q[1]:.4g}, {q[2]:.4g}]")
    sym = ">0" if r.kind == "difference" else ">1"
    less = "<0" if r.kind == "difference" else "<1"
    header = ["pair", "mean", "sd", "median", "lower", "upper", f"P({sym})", f"P({less})"]
    rows = [
        [
            str(pair),
            *(f"{row[k]:.4g}" for k in ("mean", "sd", "median", "lower", "upper")),
            *(f"{row[k]:.3f}" for k in ("p_greater", "p_less")),
        ]
        + ([f"{row['p_in_rope']:.3f}"] if r.rope is not None else [])
        for pair, row in r.table.iterrows()
    ]
    if r.rope is not None:
        header.append("P(in ROPE)")
    for line in _aligned([header, *rows]):
        print(line)
    if r.rope is not None:
        print(f"ROPE: [{r.rope[0]:.4g}, {r.rope[1]:.4g}]")


def _aligned(rows: list[list[str]]) -> list[str]:
    """Rows of cells as lines: the first column left-aligned, the rest right-aligned, every
    column as wide as its widest cell and two spaces apart (wide numbers never run together)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
