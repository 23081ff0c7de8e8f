"""The ``bayes-scaling`` command line: argument parsing, file I/O and printing only.

Every subcommand calls the public API. Bad input ends with a one-line ``error: ...`` message and
exit code 2; warnings from the library are printed as ``warning: ...`` lines on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from bayes_scaling._files import atomic_path
from bayes_scaling.cli_datasets import register as _register_datasets

__all__ = ["main", "build_parser"]

EXIT_BAD_INPUT = 2


def _configure_jax(num_chains: int = 4) -> None:
    """Before JAX starts: one host device per chain and a persistent compilation cache."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        count = max(num_chains, os.cpu_count() or 1)
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
    from bayes_scaling import _jaxcache

    cache = os.environ.get("BAYES_SCALING_JAX_CACHE")
    if cache != "":  # an empty value switches the cache off
        _jaxcache.enable(cache)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _show_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
    _say(f"warning: {message}")


def _parse_mapping(text: str | None, what: str) -> dict[str, str]:
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{what} must look like name=value[,name=value]; got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _parse_pooling(text: str | None):
    if text is None:
        return None
    if "=" not in text:
        return text
    return _parse_mapping(text, "--pool")


def _read_data(args):
    """DATA (CSV or dataset name) with an optional --query filter, as a DataFrame."""
    from bayes_scaling import data as _data

    df = _data.read_table(args.data)
    if getattr(args, "query", None):
        try:
            df = _data.select_rows(df, args.query)
        except _data.DataError as exc:
            raise ValueError(f"--query: {exc}") from None
    return df


def _seed(text: str) -> int:
    """--seed: an integer in JAX's key range."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**63 - 1; got {text}")
    return value


def _check_out(args, *inputs) -> None:
    """Refuse an unusable --out before any work: an input file, a directory, an existing file without --force."""
    from bayes_scaling._files import check_output

    out = getattr(args, "out", None)
    if out:
        check_output(out, inputs=[i for i in inputs if i], force=getattr(args, "force", False))


def _fit_kwargs(args) -> dict:
    return dict(
        priors=args.priors,
        group=args.group,
        pooling=_parse_pooling(args.pool),
        likelihood=args.likelihood,
        columns=_parse_mapping(args.map, "--map") or None,
        derive_tokens=args.derive_tokens,
        flops_per_token=args.flops_per_token,
    )


def _add_fit_options(p: argparse.ArgumentParser, *, law_default: str | None = "chinchilla") -> None:
    p.add_argument("--law", default=law_default, help="law name (see `bayes-scaling laws`)")
    p.add_argument("--group", help="column defining groups for a hierarchical fit")
    p.add_argument("--pool", help="pooling for all parameters (shared|pooled|independent) or per parameter, e.g. E=pooled,alpha=shared")
    p.add_argument("--priors", help="prior set name (e.g. chinchilla-literature) or TOML file")
    p.add_argument("--likelihood", default="student_t", choices=["student_t", "normal"])
    p.add_argument("--map", help="rename columns to canonical names, e.g. params=N,val_loss=loss")
    p.add_argument("--derive-tokens", action="store_true", help="compute D = C / (k N) when D is missing")
    p.add_argument("--flops-per-token", type=float, default=6.0, help="k in C = k N D (default 6)")
    p.add_argument("--query", help="rows to keep: comparisons of columns with values, e.g. \"dataset == 'rw' and N >= 1e8\" "
                   "(and, or, not, ==, <, in [...]; no function calls or @ names)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--target-accept", type=float, default=0.9)
    p.add_argument("--progress", action="store_true", default=None, help="show numpyro progress bars (default: when stderr is a terminal)")
    p.add_argument("--method", choices=["nuts", "laplace"], default="nuts",
                   help="nuts (default) or laplace: Gaussian draws at the posterior mode, a quick look")


# --------------------------------------------------------------------------- commands


def cmd_laws(args) -> int:
    from bayes_scaling.laws import LAWS

    for spec in LAWS.values():
        print(f"{spec.name}")
        print(f"    {spec.formula}")
        print(f"    parameters: {', '.join(spec.param_names)}; covariates: {', '.join(spec.covariates)}; target: {spec.target}")
        print(f"    {spec.reference}")
    print("power_law and broken_power_law take another covariate as power_law:N, power_law:D, power_law:steps")
    return 0


def _run_fit(df, args, label: str):
    from bayes_scaling import inference

    kwargs = _fit_kwargs(args)
    inputs = inference.prepare(df, args.law, **kwargs)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    settings = inference.SamplerSettings(
        num_chains=args.chains, num_warmup=args.warmup, num_samples=args.samples,
        target_accept_prob=args.target_accept, progress_bar=progress,
    )
    groups_txt = f", {inputs.spec.num_groups} groups" if inputs.spec.num_groups else ""
    _say(
        f"fitting {inputs.spec.law.name} to {inputs.num_points} points from {label}{groups_txt}: "
        f"{settings.num_chains} chains x ({settings.num_warmup} warmup + {settings.num_samples} draws)"
    )
    import jax

    t0 = time.perf_counter()
    method = getattr(args, "method", "nuts")
    groups = inference.sample(inputs, jax.random.PRNGKey(args.seed), settings, method=method)
    d = inference.diagnostics(groups["posterior"], groups["sample_stats"], list(inputs.spec.law.param_names))
    _say(
        f"{'sampled' if method == 'nuts' else 'Laplace draws'} in {time.perf_counter() - t0:.1f} s: max R-hat {d['max_rhat']:.3f}, "
        f"min ESS {d['min_ess']:.0f}, divergences {d['divergences']}"
    )
    return groups


def cmd_fit(args) -> int:
    from bayes_scaling import inference

    _check_out(args, args.data)
    df = _read_data(args)
    groups = _run_fit(df, args, str(args.data))
    path = inference.save_fit(groups, args.out)
    _say(f"wrote {path}")
    return 0


def cmd_summary(args) -> int:
    from bayes_scaling import inference

    idata = inference.load_fit(args.fit)
    table = inference.summarize(idata)
    if args.json:
        print(table.to_json(orient="index", indent=2))
    else:
        _print_summary(idata, table)
    return 0


def _print_summary(idata, table) -> None:
    import pandas as pd

    attrs = idata.posterior.attrs
    print(f"law: {attrs['law']}   {attrs.get('formula', '')}")
    print(f"likelihood: {attrs.get('likelihood')}   points: {attrs.get('num_points')}   groups: {json.loads(attrs.get('groups', '[]')) or 'none'}")
    with pd.option_context("display.width", 120, "display.max_rows", 200, "display.float_format", "{:.4g}".format):
        print(table.to_string())
    div = int(idata.sample_stats["diverging"].sum())
    print(f"divergences: {div}")


def cmd_demo(args) -> int:
    from bayes_scaling import datasets, inference

    _check_out(args)
    df = datasets.load_dataset("demo")
    args.law = "chinchilla"
    for name, value in dict(group=None, pool=None, priors=None, likelihood="student_t", map=None,
                            derive_tokens=False, flops_per_token=6.0).items():
        setattr(args, name, value)
    groups = _run_fit(df, args, "the embedded demo data (synthetic, from the Besiroglu et al. 2024 Chinchilla refit)")
    idata = inference.to_inference_data(groups)
    if args.out:
        _say(f"wrote {inference.save_fit(groups, args.out)}")
    _print_summary(idata, inference.summarize(idata))
    print("true values used to simulate the demo: E=1.817 A=482 B=2085 alpha=0.348 beta=0.366")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayes-scaling",
        description="Bayesian scaling-law fits, extrapolation and decisions under uncertainty.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("laws", help="list the registered laws with their formulas")
    p.set_defaults(func=cmd_laws)

    p = sub.add_parser("fit", help="fit a law with NUTS and save the posterior as netCDF")
    p.add_argument("data", help="CSV file or dataset name (see bayes_scaling.datasets.list_datasets)")
    _add_fit_options(p)
    p.add_argument("--out", required=True, help="output netCDF file (InferenceData)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists (never an input file)")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("summary", help="posterior table: mean, sd, 5/50/95%% quantiles, R-hat, ESS")
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit`")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("demo", help="fit the Chinchilla law to the embedded demo data (offline) and print the summary")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--target-accept", type=float, default=0.95,
                   help="NUTS target acceptance (default 0.95: the demo's 48 runs leave A weakly identified, "
                        "and at 0.9 a few transitions diverge)")
    p.add_argument("--progress", action="store_true", default=None)
    p.add_argument("--out", help="also save the fit as netCDF")
    p.add_argument("--force", action="store_true", help="replace --out if it exists (never an input file)")
    p.set_defaults(func=cmd_demo)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


_EXTRA_COMMANDS: list = []  # functions (subparsers) -> None, added below by feature sections


# --------------------------------------------------------------------------- compare / contrast (issue 5)


def _fmt(v, spec: str = ".4g") -> str:
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return str(v)


def cmd_compare(args) -> int:
    from bayes_scaling import compare as _compare
    from bayes_scaling import inference

    if args.law:
        raise ValueError("compare takes --laws (comma-separated, e.g. --laws chinchilla,kaplan,power_law), not --law")
    laws = [s.strip() for s in args.laws.split(",") if s.strip()]
    if args.save:
        from bayes_scaling._files import check_output

        for law in laws:
            check_output(Path(args.save) / (law.replace(":", "_") + ".nc"), inputs=[args.data], force=args.force, option="--save")
    df = _read_data(args)
    kwargs = _fit_kwargs(args)
    priors = _parse_mapping(kwargs.pop("priors"), "--priors (law=prior_set,...)") or None
    holdout = None if args.no_future else (args.split or args.holdout)
    _say(
        f"comparing {', '.join(laws)} on {len(df)} rows from {args.data}: PSIS-LOO"
        f"{'' if holdout is None else ' and leave-future-out'}; each fit {args.chains} chains x "
        f"({args.warmup} warmup + {args.samples} draws)"
    )
    t0 = time.perf_counter()
    result = _compare.compare_laws(
        df, laws, priors=priors, holdout=holdout, num_chains=args.chains, num_warmup=args.warmup,
        num_samples=args.samples, target_accept_prob=args.target_accept, seed=args.seed,
        fit_method=args.method, **kwargs,
    )
    _say(f"compared in {time.perf_counter() - t0:.1f} s")
    for note in result.notes:
        _say(f"note: {note}")
    if args.save:
        for law, idata in result.fits.items():
            _say(f"wrote {inference.save_fit(idata, Path(args.save) / (law.replace(':', '_') + '.nc'))}")
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    t = result.table
    target = inference.fit_spec(next(iter(result.fits.values())))["law"].target
    print(f"PSIS-LOO on {len(result.frame)} points (elpd of log {target}; higher is better)")
    print(f"{'law':<18}{'elpd_loo':>10}{'se':>8}{'elpd_diff':>11}{'dse':>8}{'weight':>8}{'p_loo':>7}{'bad k':>7}")
    for law, r in t.iterrows():
        print(f"{law:<18}{r['elpd_loo']:>10.1f}{r['se']:>8.1f}{r['elpd_diff']:>11.1f}{r['dse']:>8.1f}"
              f"{r['weight']:>8.3f}{r['p_loo']:>7.1f}{int(r['bad_k']):>7d}")
    split = result.split
    if split is not None:
        print()
        print(f"leave-future-out: fit on {split['train_points']} points ({split['axis']} <= {split['train_max']:.3g}), "
              f"scored on {split['test_points']} ({split['axis']} >= {split['test_min']:.3g})")
        print(f"{'law':<18}{'lfo_elpd':>10}{'se':>8}{'lfo_diff':>11}{'dse':>8}{'weight':>8}{'rmse':>9}")
        for law, r in t.sort_values("lfo_rank").iterrows():
            print(f"{law:<18}{r['lfo_elpd']:>10.1f}{r['lfo_se']:>8.1f}{r['lfo_diff']:>11.1f}{r['lfo_dse']:>8.1f}"
                  f"{r['lfo_weight']:>8.3f}{r['lfo_rmse']:>9.4f}")
        print("rmse: root mean squared error of the posterior-mean log prediction on the held-out points")
    print("diff: elpd of the best law minus this law's; dse: its standard error. weight: stacking.")
    return 0


def _parse_floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers; got {text!r}") from None


def cmd_contrast(args) -> int:
    import numpy as np

    from bayes_scaling import compare as _compare
    from bayes_scaling import inference

    idata = inference.load_fit(args.fit)
    rope = _parse_floats(args.rope, "--rope")
    if rope is not None:
        if len(rope) not in (1, 2):
            raise ValueError(f"--rope must be a half-width r or low,high; got {args.rope!r}")
        rope = rope[0] if len(rope) == 1 else tuple(rope)
    crange = _parse_floats(args.compute_range, "--compute-range")
    if crange is not None and len(crange) != 2:
        raise ValueError(f"--compute-range must be low,high; got {args.compute_range!r}")
    params = [s.strip() for s in args.param.split(",") if s.strip()]
    if not params:
        raise ValueError("--param names no quantity")
    results = [
        _compare.contrast(
            idata, param, args.groups, kind=args.kind, rope=rope, prob=args.prob, compute=args.compute,
            compute_range=tuple(crange) if crange else None, flops_per_token=args.flops_per_token,
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
            lo, hi = r.compute_range
            print(f"searched C in [{lo:.3g}, {hi:.3g}] FLOP; crossing compute: median and {pct} interval among draws that cross")
            print(f"{'pair':<24}{'P(cross)':>9}{'median':>11}{'lower':>11}{'upper':>11}{'P(1st lower @lo)':>18}{'@hi':>7}")
            for pair, row in r.table.iterrows():
                print(f"{pair:<24}{row['p_cross']:>9.3f}{_fmt(row['median'], '.3g'):>11}{_fmt(row['lower'], '.3g'):>11}"
                      f"{_fmt(row['upper'], '.3g'):>11}{row['p_first_lower_at_low']:>18.3f}{row['p_first_lower_at_high']:>7.3f}")
            continue
        for g, v in r.values.items():
            q = np.quantile(v, [0.5, (1 - r.prob) / 2, (1 + r.prob) / 2])
            print(f"  {g}: median {q[0]:.4g}, {pct} interval [{q[1]:.4g}, {q[2]:.4g}]")
        sym = ">0" if r.kind == "difference" else ">1"
        less = "<0" if r.kind == "difference" else "<1"
        head = f"{'pair':<24}{'mean':>10}{'sd':>9}{'median':>10}{'lower':>10}{'upper':>10}{'P(' + sym + ')':>8}{'P(' + less + ')':>8}"
        if r.rope is not None:
            head += f"{'P(in ROPE)':>12}"
        print(head)
        for pair, row in r.table.iterrows():
            line = (f"{pair:<24}{row['mean']:>10.4g}{row['sd']:>9.3g}{row['median']:>10.4g}{row['lower']:>10.4g}"
                    f"{row['upper']:>10.4g}{row['p_greater']:>8.3f}{row['p_less']:>8.3f}")
            if r.rope is not None:
                line += f"{row['p_in_rope']:>12.3f}"
            print(line)
        if r.rope is not None:
            print(f"ROPE: [{r.rope[0]:.4g}, {r.rope[1]:.4g}]")
    return 0


def _register_compare(sub) -> None:
    p = sub.add_parser("compare", help="fit several laws to the same data and rank them by PSIS-LOO and leave-future-out")
    p.add_argument("data", help="CSV file or dataset name")
    p.add_argument("--laws", default="chinchilla,kaplan,power_law",
                   help="comma-separated laws (default chinchilla,kaplan,power_law; power_law is over C, "
                        "computed as k N D when the data has N and D but no C)")
    _add_fit_options(p, law_default=None)
    p.set_defaults(samples=500)  # per chain: 2000 draws are ample for PSIS-LOO, and compare runs 2 fits per law
    for action in p._actions:
        if action.dest == "priors":
            action.help = "prior sets per law, e.g. chinchilla=chinchilla-literature"
        elif action.dest == "law":
            action.help = "not used by compare: give --laws"
    p.add_argument("--holdout", type=float, default=0.2,
                   help="leave-future-out: fraction of the points with the largest compute to hold out (default 0.2)")
    p.add_argument("--split", help="leave-future-out training side instead of --holdout, e.g. 'C<=1e21'")
    p.add_argument("--no-future", action="store_true", help="skip leave-future-out (PSIS-LOO only; half the fits)")
    p.add_argument("--save", help="directory to write each law's fit as <law>.nc")
    p.add_argument("--force", action="store_true", help="replace existing files in --save")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("contrast", help="posterior of a between-group contrast in a hierarchical fit")
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit --group COLUMN`")
    p.add_argument("--param", required=True,
                   help="per-group parameter (E, alpha, ...) or derived quantity: a (compute-optimal exponent), "
                        "loss (with --compute), crossing; comma-separated for several")
    p.add_argument("--groups", help="comma-separated group labels (default: all; every pair is reported)")
    p.add_argument("--kind", choices=["difference", "ratio"], default="difference")
    p.add_argument("--rope", help="region of practical equivalence: half-width r, or low,high")
    p.add_argument("--prob", type=float, default=0.9, help="interval mass (default 0.9)")
    p.add_argument("--compute", type=float, help="FLOPs for --param loss (compute-optimal loss at that budget)")
    p.add_argument("--compute-range", help="low,high FLOPs searched for --param crossing")
    p.add_argument("--flops-per-token", type=float, default=6.0, help="k in C = k N D (default 6)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_contrast)


_EXTRA_COMMANDS.append(_register_compare)


# --------------------------------------------------------------------------- report / plot (issue 6)


def cmd_report(args) -> int:
    from bayes_scaling import report as _report

    _check_out(args, args.fit, args.data, args.backtest)
    _say(f"building the {args.format} report of {args.fit}")
    t0 = time.perf_counter()
    risks = [s.strip() for s in args.risk.split(",") if s.strip()]
    if not risks:
        raise ValueError("--risk names no risk measure; e.g. --risk expected,cvar:0.9")
    path = _report.write_report(
        args.fit, args.out, args.data, format=args.format, compute=args.compute, risks=risks,
        backtest=args.backtest, discrepancy=_report_discrepancy(args.discrepancy), seed=args.seed,
    )
    _say(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
    return 0


def _report_discrepancy(text: str | None):
    """--discrepancy of report/plot: recorded (the fit's own, else none), auto, off or a tau."""
    if text in (None, "recorded"):
        return "recorded"
    if text == "auto":
        return "auto"
    if text in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--discrepancy must be recorded, auto, off or a number (tau); got {text!r}") from None


def cmd_plot(args) -> int:
    from bayes_scaling import inference
    from bayes_scaling import plots as _plots

    _check_out(args, args.fit, args.data)
    fit = inference.load_fit(args.fit)
    disc = _report_discrepancy(args.discrepancy)
    kinds = {
        "fan": lambda: _plots.fan_chart(fit, args.data, group=args.group, compute=args.compute,
                                        discrepancy=disc),
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
    _say(f"wrote {out}")
    return 0


def _register_report(sub) -> None:
    p = sub.add_parser("report", help="self-contained HTML (or Markdown) report of a fit with embedded figures")
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit`")
    p.add_argument("--data", help="CSV file or dataset name with the runs to show (default: the data stored in the fit)")
    p.add_argument("--compute", type=float, help="budget in FLOPs for the extrapolation and the allocation (default 100x the largest run)")
    p.add_argument("--risk", default="expected,cvar:0.9", help="comma-separated risk measures for the allocation (default expected,cvar:0.9)")
    p.add_argument("--backtest", help="backtest JSON report (written by `bayes-scaling backtest --out`) to include")
    p.add_argument("--discrepancy", default="recorded",
                   help="extrapolation discrepancy of the fan: recorded (the fit's own, else none; default), "
                        "auto (calibrate by leave-future-out: several refits), off, or a fixed tau")
    p.add_argument("--format", choices=["html", "md"], default="html", help="html (one self-contained file) or md (Markdown with PNGs in <stem>_files/)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--force", action="store_true", help="replace --out if it exists (never an input file)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("plot", help="one figure of a fit as PNG/SVG/PDF (default: the extrapolation fan chart)")
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit`")
    p.add_argument("--kind", default="fan", choices=["fan", "curves", "check", "frontier", "posteriors", "exponent"])
    p.add_argument("--data", help="CSV file or dataset name with the runs to show (default: the data stored in the fit)")
    p.add_argument("--group", help="group of a hierarchical fit ('new' for an unseen group)")
    p.add_argument("--compute", type=float, help="right end of the fan chart in FLOPs (default 100x the largest run)")
    p.add_argument("--discrepancy", default="recorded",
                   help="extrapolation discrepancy of the fan: recorded (default), auto, off, or a fixed tau")
    p.add_argument("--dpi", type=int, default=120)
    p.add_argument("--out", required=True, help="output image; the format follows the suffix (.png, .svg, .pdf)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists (never an input file)")
    p.set_defaults(func=cmd_plot)


_EXTRA_COMMANDS.append(_register_report)


# --------------------------------------------------------------------------- prediction and backtest


def _parse_quantiles(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(q) for q in text.split(","))
    except ValueError:
        raise ValueError(f"--quantiles must be comma-separated probabilities, e.g. 0.05,0.5,0.95; got {text!r}") from None
    bad = [q for q in values if not 0 < q < 1]
    if bad:
        raise ValueError(f"--quantiles must lie strictly between 0 and 1; got {bad[0]:g}")
    return values


def _parse_discrepancy(text: str):
    if text in ("auto", None):
        return "auto"
    if text in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--discrepancy must be auto, off or a number (tau); got {text!r}") from None


def cmd_predict(args) -> int:
    import pandas as pd

    from bayes_scaling import data as _data
    from bayes_scaling import inference, predict

    _check_out(args, args.fit, args.points)
    quantiles = _parse_quantiles(args.quantiles)
    idata = inference.load_fit(args.fit)
    points = _data.read_table(args.points)
    if points.empty:
        raise ValueError(f"points file {args.points!r} has no rows")
    ds = predict.predict(idata, points, group=args.group, discrepancy=_parse_discrepancy(args.discrepancy),
                         quantiles=quantiles, seed=args.seed)
    out = points.reset_index(drop=True).copy()
    for kind in predict.KINDS:
        if kind not in ds:
            continue
        out[f"{kind}_mean"] = ds[f"{kind}_mean"].values
        for q in quantiles:
            out[f"{kind}_q{round(q * 100):02d}"] = ds[f"{kind}_quantiles"].sel(quantile=q).values
    if "distance" in ds:
        out["distance"] = ds["distance"].values
    with atomic_path(args.out) as tmp:
        out.to_csv(tmp, index=False)
    _say(f"wrote {len(out)} predictions to {args.out}")
    with pd.option_context("display.width", 160, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print(out.to_string(index=False))
    return 0


def cmd_backtest(args) -> int:
    from bayes_scaling import backtest

    _check_out(args, args.data)
    df = _read_data(args)
    kwargs = _fit_kwargs(args)
    _say(f"backtest of {args.law} on {args.data}: training side {args.train}")
    report = backtest.backtest(
        df, args.law, args.train, discrepancy=_parse_discrepancy(args.discrepancy),
        num_chains=args.chains, num_warmup=args.warmup, num_samples=args.samples,
        target_accept_prob=args.target_accept, seed=args.seed, method=args.method, **kwargs,
    )
    with atomic_path(args.out) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=2, default=float))
    nb = report.get("new_run", report)
    base = report.get("baseline", {})
    keys = [k for k in ("coverage_50", "coverage_80", "coverage_90", "coverage_95", "mean_width_rel", "crps", "log_pred_density", "median_are", "max_are") if k in nb]
    print(f"train {report.get('n_train')} runs, test {report.get('n_test')} runs")
    for k in keys:
        print(f"  {k:18s} {nb[k]:.4g}")
    if base:
        print(f"  point-fit baseline: median_are {base.get('median_are', float('nan')):.4g}, max_are {base.get('max_are', float('nan')):.4g}")
    _say(f"wrote {args.out}")
    return 0


def _register_predict(sub) -> None:
    p = sub.add_parser("predict", help="posterior predictive loss at new points, with bands")
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit`")
    p.add_argument("--points", required=True, help="CSV with the law's covariates (e.g. N,D), one row per point")
    p.add_argument("--group", help="group label of a hierarchical fit, or 'new'")
    p.add_argument("--quantiles", default="0.05,0.5,0.95")
    p.add_argument("--discrepancy", default="auto", help="extrapolation discrepancy: auto (calibrated), off, or a fixed tau")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", required=True, help="output CSV")
    p.add_argument("--force", action="store_true", help="replace --out if it exists (never an input file)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("backtest", help="fit on one side of a split, score predictions of the other; point-fit baseline beside it")
    p.add_argument("data", help="CSV file or dataset name")
    _add_fit_options(p)
    p.add_argument("--train", required=True, help="training side: 'C<=1e21' (C, N or D with <, <=, >, >=) or a boolean column")
    p.add_argument("--discrepancy", default="auto", help="extrapolation discrepancy: auto (calibrated), off, or a fixed tau")
    p.add_argument("--out", required=True, help="output JSON report")
    p.add_argument("--force", action="store_true", help="replace --out if it exists (never an input file)")
    p.set_defaults(func=cmd_backtest)


_EXTRA_COMMANDS.append(_register_predict)


# --------------------------------------------------------------------------- decisions (allocate, target, batch)


def _float_or_none(text):
    return None if text is None else float(text)


def _print_json_or_lines(result: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=float))
    else:
        print("\n".join(lines))


def cmd_allocate(args) -> int:
    from bayes_scaling import decide, inference

    idata = inference.load_fit(args.fit)
    kwargs = dict(
        risk=decide.parse_risk(args.risk), flops_per_token=args.flops_per_token, max_n=args.max_n,
        unique_tokens=args.unique_tokens, repetition=args.repetition, group=args.group,
        num_candidates=args.candidates, seed=args.seed,
    )
    n_range = _parse_floats(args.n_range, "--n-range")
    if n_range is not None:
        if len(n_range) != 2:
            raise ValueError(f"--n-range must be low,high parameters; got {args.n_range!r}")
        kwargs["n_range"] = tuple(n_range)
    if args.inference_tokens is not None:
        kwargs["inference_tokens"] = args.inference_tokens
        kwargs["dollars_per_flop"] = args.dollars_per_flop
    result = decide.allocate(idata, args.compute, **kwargs)
    out = result.to_dict()
    out["wasted_compute"] = _wasted_compute(idata, result, args)
    q = out["loss_quantiles"]
    lo, hi = out["n_opt_interval"]
    lines = [
        f"budget {out['compute']:.3g} FLOP, risk {out['risk']}",
        f"choose N = {out['N']:.3g} parameters, D = {out['D']:.3g} tokens ({out['tokens_per_param']:.1f} tokens per parameter)",
        f"loss at the choice: median {q['0.5']:.4f}, 90% interval {q['0.05']:.4f} to {q['0.95']:.4f}",
        f"each draw's own optimum N*: {100 * out['interval_prob']:.0f}% interval {lo:.3g} to {hi:.3g}",
        f"expected regret against the per-draw optimum: {out['regret']:.2g} nats",
    ]
    wasted = out["wasted_compute"]
    if wasted is not None:
        frac = wasted["fraction_of_compute"]
        lines.append(
            f"compute wasted against each draw's own optimum: median {100 * frac['median']:.2g}% "
            f"({100 * wasted['interval_prob']:.0f}% interval {100 * frac['interval'][0]:.2g}% to {100 * frac['interval'][1]:.2g}%)"
        )
    if out.get("at_boundary"):
        lines.append("note: the choice is at the edge of the candidate range or a constraint (widen it with --n-range)")
    if out.get("target_unreachable"):
        lines.append(f"note: the target loss is out of reach at this budget (best probability {out['risk_value']:.3g}); "
                     "raise --compute or the target")
    _print_json_or_lines(out, args.json, lines)
    return 0


def _wasted_compute(idata, result, args):
    """Misallocation cost of a plain allocation (None with repeated data or inference costs: no single optimum line)."""
    if args.inference_tokens is not None or args.unique_tokens is not None:
        return None
    from bayes_scaling import misallocation

    return misallocation.wasted_compute(
        idata, result, group=args.group, flops_per_token=args.flops_per_token, dollars_per_flop=args.dollars_per_flop,
    )


def cmd_target(args) -> int:
    from bayes_scaling import decide, inference

    idata = inference.load_fit(args.fit)
    bounds = _parse_floats(args.compute_bounds, "--compute-bounds")
    if bounds is not None and len(bounds) != 2:
        raise ValueError(f"--compute-bounds must be low,high FLOPs; got {args.compute_bounds!r}")
    extra = {"compute_bounds": tuple(bounds)} if bounds else {}
    result = decide.compute_for_target(
        idata, args.loss, prob=args.prob, flops_per_token=args.flops_per_token, max_n=args.max_n,
        group=args.group, seed=args.seed, **extra,
    )
    out = result.to_dict()
    lines = [
        f"least compute with P(loss <= {out['target_loss']}) >= {out['prob']}: {out['compute']:.3g} FLOP",
        f"at N = {out['N']:.3g}, D = {out['D']:.3g} ({out['tokens_per_param']:.1f} tokens per parameter); achieved probability {out['achieved_prob']:.3f}",
    ]
    _print_json_or_lines(out, args.json, lines)
    return 0


def cmd_batch(args) -> int:
    from bayes_scaling import decide, inference

    idata = inference.load_fit(args.fit)
    choices = decide.choose_batch_sizes(
        idata, max_overhead=args.max_overhead, prob=args.prob,
        step_cost=args.step_cost, example_cost=args.example_cost,
    )
    out = {k: v.to_dict() for k, v in choices.items()}
    lines = [f"batch size with at most {100 * args.max_overhead:.0f}% extra data over the minimum (in the fit's units of B):"]
    for label, c in out.items():
        lo, hi = c["B_interval"]
        lines.append(f"  {label}: B = {c['B']:.4g} ({100 * c['interval_prob']:.0f}% interval {lo:.4g} to {hi:.4g})")
    _print_json_or_lines(out, args.json, lines)
    return 0


def _register_decide(sub) -> None:
    p = sub.add_parser("allocate", help="split a FLOP budget between parameters and tokens under uncertainty")
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit`")
    p.add_argument("--compute", type=float, required=True, help="training FLOP budget")
    p.add_argument("--risk", default="expected", help="expected | quantile:Q | cvar:L | prob_below:TARGET (default expected)")
    p.add_argument("--max-n", type=float, help="cap on parameters (memory, serving)")
    p.add_argument("--unique-tokens", type=float, help="cap on unique tokens; more tokens are repeats")
    p.add_argument("--repetition", choices=["muennighoff"], help="with a chinchilla fit and --unique-tokens: value repeats with Muennighoff et al.'s decay constants")
    p.add_argument("--inference-tokens", type=float, help="expected inference tokens: adds 2 N D_inference FLOP to the cost")
    p.add_argument("--dollars-per-flop", type=float, help="report the cost in dollars")
    p.add_argument("--flops-per-token", type=float, default=6.0)
    p.add_argument("--group", help="group of a hierarchical fit, or 'new'")
    p.add_argument("--candidates", type=int, default=512, help="candidate sizes on the iso-compute line")
    p.add_argument("--n-range", help="low,high parameters searched (default: from the draws' optima)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--json", action="store_true", help="JSON with keys N, D, tokens_per_param, loss_quantiles, n_opt_interval, regret, ...")
    p.set_defaults(func=cmd_allocate)

    p = sub.add_parser("target", help="least compute that reaches a target loss with a given probability")
    p.add_argument("fit")
    p.add_argument("--loss", type=float, required=True, help="target loss")
    p.add_argument("--prob", type=float, default=0.9, help="required probability (default 0.9)")
    p.add_argument("--max-n", type=float)
    p.add_argument("--flops-per-token", type=float, default=6.0)
    p.add_argument("--group")
    p.add_argument("--compute-bounds", help="low,high FLOPs searched (default 1e6,1e40)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_target)

    p = sub.add_parser("batch", help="batch size per group from a batch_steps fit")
    p.add_argument("fit", help="a fit of the batch_steps law (e.g. zhang-critical-batch-size --group group)")
    p.add_argument("--max-overhead", type=float, default=0.2, help="cap on extra tokens over the minimum, as a fraction (default 0.2)")
    p.add_argument("--prob", type=float, help="require the cap to hold with this probability (default: for the median)")
    p.add_argument("--step-cost", type=float, help="cost per optimiser step (with --example-cost: minimise total cost instead)")
    p.add_argument("--example-cost", type=float, help="cost per training example")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_batch)


_EXTRA_COMMANDS.append(_register_decide)
_EXTRA_COMMANDS.append(_register_datasets)


def _exit_on_signals():
    """Make Ctrl-C and SIGTERM end the process within moments, at any point, leaving no partial file.

    Python runs its own signal handlers only between bytecodes, so a signal that arrives during
    XLA compilation or sampling would wait for it to finish. The C-level handler writes the
    signal number to a pipe instead, and a watcher thread removes unfinished output files and
    exits with 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM). Returns a function
    that restores the previous handlers.
    """
    import signal
    import threading

    from bayes_scaling._files import remove_pending

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def watch():
        try:
            data = os.read(read_fd, 1)
        except OSError:
            return
        if data:
            remove_pending()
            _say("interrupted")
            os._exit(128 + data[0])

    threading.Thread(target=watch, daemon=True, name="bayes-scaling-signals").start()

    def restore():
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(write_fd)

    return restore


# --------------------------------------------------------------------------- next runs (issue 16)


def cmd_next_runs(args) -> int:
    from bayes_scaling import decide, inference, misallocation, next_runs

    idata = inference.load_fit(args.fit)
    result = next_runs.next_runs(
        idata, args.compute, args.budget, candidates=args.candidates, objective=args.objective,
        group=args.group, flops_per_token=args.flops_per_token, num_outcomes=args.outcomes,
        max_runs=args.max_runs, seed=args.seed,
    )
    out = result.to_dict()
    allocation = decide.allocate(idata, args.compute, group=args.group, flops_per_token=args.flops_per_token, seed=args.seed)
    options = {"group": args.group, "flops_per_token": args.flops_per_token, "dollars_per_flop": args.dollars_per_flop}
    costs = [misallocation.misallocation_cost(idata, allocation, **options)]
    out["wasted_compute"] = costs[0].to_dict()
    if (args.n is None) != (args.d is None):
        raise ValueError("give both --n and --d for a planned run, or neither")
    if args.n is not None:
        costs.append(misallocation.misallocation_cost(idata, (args.n, args.d), **options))
        out["planned"] = {"N": args.n, "D": args.d, "wasted_compute": costs[1].to_dict()}
    if args.plot:
        next_runs.plot_next_runs(result, args.plot)
    lines = [f"next runs for the decision at {args.compute:.3g} FLOP, budget {args.budget:.3g} FLOP, objective {out['objective']} (now {out['baseline']:.3g})"]
    lines += [f"  N = {c['N']:.3g}, D = {c['D']:.3g}, cost {c['cost']:.2g}: gain {c['gain']:.3g} ({c['gain_per_flop']:.3g} per FLOP)" for c in out["candidates"][: args.top]]
    lines.append(f"greedy batch: {len(out['batch'])} runs, {out['batch_cost']:.3g} FLOP, expected gain {out['batch_gain']:.3g}")
    lines += [f"  N = {b['N']:.3g}, D = {b['D']:.3g}, cost {b['cost']:.2g}, marginal gain {b['gain']:.3g}" for b in out["batch"]]
    lines += [f"misallocation: {cost.describe()}" for cost in costs]
    _print_json_or_lines(out, args.json, lines)
    return 0


def _register_next_runs(sub) -> None:
    p = sub.add_parser("next-runs", help="which small runs would most improve the allocation at a target compute, and the cost of a wrong allocation")
    p.add_argument("fit")
    p.add_argument("--compute", type=float, required=True, help="target compute of the decision, FLOPs")
    p.add_argument("--budget", type=float, required=True, help="FLOPs available for new runs (6 N D each)")
    p.add_argument("--candidates", default="grid", help="'grid' (IsoFLOP levels up to the budget) or a CSV with columns N, D")
    p.add_argument("--objective", default="regret", choices=["regret", "width", "n_opt_width"])
    p.add_argument("--outcomes", type=int, default=128, help="simulated outcomes per candidate (default 128)")
    p.add_argument("--max-runs", type=int, default=8, help="most runs in the greedy batch (default 8)")
    p.add_argument("--top", type=int, default=10, help="candidates printed (default 10)")
    p.add_argument("--n", type=float, help="a planned run's parameters, for its misallocation cost (with --d)")
    p.add_argument("--d", type=float, help="a planned run's tokens (with --n)")
    p.add_argument("--dollars-per-flop", type=float, help="price of a FLOP for the dollar cost of misallocation")
    p.add_argument("--flops-per-token", type=float, default=6.0)
    p.add_argument("--group")
    p.add_argument("--plot", help="write the expected-gain figure here (PNG/SVG/PDF)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="JSON with keys candidates, batch, wasted_compute, planned, ...")
    p.set_defaults(func=cmd_next_runs)


_EXTRA_COMMANDS.append(_register_next_runs)


def main(argv: list[str] | None = None) -> int:
    restore = _exit_on_signals()
    try:
        return _main(argv)
    except BrokenPipeError:
        # the reader went away (`... | head`): stop quietly, as other command-line tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    finally:
        restore()


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "needs_jax", True):
        _configure_jax(getattr(args, "chains", 4) or 4)
    warnings.showwarning = _show_warning
    warnings.filterwarnings("ignore", category=FutureWarning)
    from bayes_scaling.data import DataError

    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        raise
    except (DataError, ValueError, KeyError, TypeError, OSError) as exc:
        if args.debug:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
            msg = f"{exc.filename}: {exc.strerror}"
        _say(f"error: {msg}")
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
