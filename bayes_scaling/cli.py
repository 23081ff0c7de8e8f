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

__all__ = ["main", "build_parser"]

EXIT_BAD_INPUT = 2


def _configure_jax(num_chains: int = 4) -> None:
    """Before JAX starts: one host device per chain and a persistent compilation cache."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        count = max(num_chains, os.cpu_count() or 1)
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
    import jax

    cache = os.environ.get("BAYES_SCALING_JAX_CACHE")
    if cache is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        cache = os.path.join(base, "bayes-scaling", "jax")
    if cache:
        try:
            os.makedirs(cache, exist_ok=True)
            jax.config.update("jax_compilation_cache_dir", cache)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        except (OSError, AttributeError):
            pass  # a read-only home: compile every time


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
            df = df.query(args.query)
        except Exception as exc:  # noqa: BLE001 - pandas raises many kinds for a bad expression
            raise ValueError(f"--query {args.query!r} could not be applied: {exc}") from None
        if df.empty:
            raise ValueError(f"--query {args.query!r} selects no rows")
    return df


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
    p.add_argument("--query", help="pandas query selecting rows, e.g. \"dataset == 'rw'\"")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--target-accept", type=float, default=0.9)
    p.add_argument("--progress", action="store_true", default=None, help="show numpyro progress bars (default: when stderr is a terminal)")


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
    groups = inference.sample(inputs, jax.random.PRNGKey(args.seed), settings)
    d = inference.diagnostics(groups["posterior"], groups["sample_stats"], list(inputs.spec.law.param_names))
    _say(
        f"sampled in {time.perf_counter() - t0:.1f} s: max R-hat {d['max_rhat']:.3f}, "
        f"min ESS {d['min_ess']:.0f}, divergences {d['divergences']}"
    )
    return groups


def cmd_fit(args) -> int:
    from bayes_scaling import inference

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
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("summary", help="posterior table: mean, sd, 5/50/95%% quantiles, R-hat, ESS")
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit`")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("demo", help="fit the Chinchilla law to the embedded demo data (offline) and print the summary")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--target-accept", type=float, default=0.9)
    p.add_argument("--progress", action="store_true", default=None)
    p.add_argument("--out", help="also save the fit as netCDF")
    p.set_defaults(func=cmd_demo)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return parser


_EXTRA_COMMANDS: list = []  # functions (subparsers) -> None, added below by feature sections


# --------------------------------------------------------------------------- report / plot (issue 6)


def cmd_report(args) -> int:
    from bayes_scaling import report as _report

    _say(f"building the {args.format} report of {args.fit}")
    t0 = time.perf_counter()
    risks = [s.strip() for s in args.risk.split(",") if s.strip()]
    if not risks:
        raise ValueError("--risk names no risk measure; e.g. --risk expected,cvar:0.9")
    path = _report.write_report(
        args.fit, args.out, args.data, format=args.format, compute=args.compute, risks=risks,
        backtest=args.backtest, seed=args.seed,
    )
    _say(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_plot(args) -> int:
    from bayes_scaling import inference
    from bayes_scaling import plots as _plots

    fit = inference.load_fit(args.fit)
    kinds = {
        "fan": lambda: _plots.fan_chart(fit, args.data, group=args.group, compute=args.compute),
        "curves": lambda: _plots.fit_curves(fit, args.data, group=args.group),
        "check": lambda: _plots.predictive_check(fit, args.data, group=args.group),
        "frontier": lambda: _plots.frontier(fit, args.data, group=args.group),
        "posteriors": lambda: _plots.posteriors(fit),
        "exponent": lambda: _plots.exponent(fit),
    }
    fig = kinds[args.kind]()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=args.dpi)
    _say(f"wrote {out}")
    return 0


def _register_report(sub) -> None:
    p = sub.add_parser("report", help="self-contained HTML (or Markdown) report of a fit with embedded figures")
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit`")
    p.add_argument("--data", help="CSV file or dataset name with the runs to show (default: the data stored in the fit)")
    p.add_argument("--compute", type=float, help="budget in FLOPs for the extrapolation and the allocation (default 100x the largest run)")
    p.add_argument("--risk", default="expected,cvar:0.9", help="comma-separated risk measures for the allocation (default expected,cvar:0.9)")
    p.add_argument("--backtest", help="backtest JSON (from `bayes-scaling backtest --json`) to include")
    p.add_argument("--format", choices=["html", "md"], default="html", help="html (one self-contained file) or md (Markdown with PNGs in <stem>_files/)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output file")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("plot", help="one figure of a fit as PNG/SVG/PDF (default: the extrapolation fan chart)")
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit`")
    p.add_argument("--kind", default="fan", choices=["fan", "curves", "check", "frontier", "posteriors", "exponent"])
    p.add_argument("--data", help="CSV file or dataset name with the runs to show (default: the data stored in the fit)")
    p.add_argument("--group", help="group of a hierarchical fit ('new' for an unseen group)")
    p.add_argument("--compute", type=float, help="right end of the fan chart in FLOPs (default 100x the largest run)")
    p.add_argument("--dpi", type=int, default=120)
    p.add_argument("--out", required=True, help="output image; the format follows the suffix (.png, .svg, .pdf)")
    p.set_defaults(func=cmd_plot)


_EXTRA_COMMANDS.append(_register_report)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_jax(getattr(args, "chains", 4) or 4)
    warnings.showwarning = _show_warning
    warnings.filterwarnings("ignore", category=FutureWarning)
    from bayes_scaling.data import DataError

    try:
        return int(args.func(args) or 0)
    except (DataError, ValueError, KeyError, TypeError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        if args.debug:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        _say(f"error: {msg}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
