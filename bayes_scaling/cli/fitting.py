"""The ``laws``, ``fit``, ``summary`` and ``demo`` commands."""

from __future__ import annotations

import argparse
import json
import sys
import time

from bayes_scaling.cli import _common as _c


def cmd_laws(args) -> int:
    from bayes_scaling.laws import LAWS

    for spec in LAWS.values():
        print(f"{spec.name}")
        print(f"    {spec.formula}")
        print(
            f"    parameters: {', '.join(spec.param_names)}; covariates: "
            f"{', '.join(spec.covariates)}; target: {spec.target}"
        )
        print(f"    {spec.reference}")
    print(
        "power_law and broken_power_law take another covariate as power_law:N, power_law:D, "
        "power_law:steps"
    )
    return 0


def _run_fit(df, args, label: str):
    from bayes_scaling import inference

    kwargs = _c.fit_kwargs(args)
    inputs = inference.prepare(df, args.law, **kwargs)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    settings = inference.SamplerSettings(
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.samples,
        target_accept_prob=args.target_accept,
        progress_bar=progress,
        trajectory_length=getattr(args, "trajectory_length", "auto"),
        pilot=getattr(args, "pilot", "auto"),  # the demo has no --pilot
    )
    groups_txt = f", {inputs.spec.num_groups} groups" if inputs.spec.num_groups else ""
    _c.say(
        f"fitting {inputs.spec.law.name} to {inputs.num_points} points from {label}{groups_txt}: "
        f"{settings.num_chains} chains x ({settings.num_warmup} warmup + {settings.num_samples} "
        "draws)"
    )
    import jax

    t0 = time.perf_counter()
    method = getattr(args, "method", "nuts")
    groups = inference.sample(inputs, jax.random.PRNGKey(args.seed), settings, method=method)
    _c.say(sampled_line(groups, method, time.perf_counter() - t0))
    choice = rewhitening_line(groups["posterior"].attrs)
    if choice:
        _c.say(choice)
    return groups


def rewhitening_line(attrs) -> str:
    """What a grouped fit's choice half-way through warmup was (``pilot="auto"``), or "".

    Examples
    --------
    >>> print(rewhitening_line({"pilot_correlation": 0.95, "pilot_condition": 90.0, "pilot": 1}))
    ... # doctest: +NORMALIZE_WHITESPACE
    re-whitened half-way through warmup: a population location's correlation with its
    groups' offsets was 0.95 (beyond 0.85)
    >>> print(rewhitening_line({"pilot_correlation": 0.7, "pilot_condition": 310.0, "pilot": 1}))
    ... # doctest: +NORMALIZE_WHITESPACE
    re-whitened half-way through warmup: the condition number of the chains' correlations
    was 310 (beyond 150, with a parameter centred about its groups' mean)
    >>> rewhitening_line({})
    ''
    """
    from bayes_scaling.engine import PILOT_CONDITION, PILOT_TIE

    if "pilot_correlation" not in attrs:
        return ""
    seen = float(attrs["pilot_correlation"])
    condition = float(attrs.get("pilot_condition", 0.0))
    if attrs.get("pilot") and seen > PILOT_TIE:
        return (
            "re-whitened half-way through warmup: a population location's correlation with its "
            f"groups' offsets was {seen:.2f} (beyond {PILOT_TIE:g})"
        )
    if attrs.get("pilot"):
        return (
            "re-whitened half-way through warmup: the condition number of the chains' "
            f"correlations was {condition:.0f} (beyond {PILOT_CONDITION:g}, with a parameter "
            "centred about its groups' mean)"
        )
    return (
        "not re-whitened: half-way through warmup a population location's largest correlation "
        f"with its groups' offsets was {seen:.2f} (at most {PILOT_TIE:g})"
    )


def sampled_line(groups, method: str, seconds: float) -> str:
    """The one-line summary after sampling. Its R-hat and ESS are over every sampled site, as
    the convergence warnings printed just before it are (a grouped fit's population scales,
    ``sigma`` and ``nu`` included), so that the two never disagree."""
    from bayes_scaling import inference

    d = inference.diagnostics(groups["posterior"], groups["sample_stats"])
    return (
        f"{'sampled' if method == 'nuts' else 'Laplace draws'} in {seconds:.1f} s: "
        f"max R-hat {d['max_rhat']:.3f}, min ESS {d['min_ess']:.0f}, divergences "
        f"{d['divergences']}"
    )


def cmd_fit(args) -> int:
    from bayes_scaling import inference

    _c.check_out(args, args.data)
    _c.calibration_kwargs(args)  # refuses axes the law does not have before the fit, not after
    df = _c.read_data(args)
    groups = _run_fit(df, args, str(args.data))
    from bayes_scaling.cli.calibrating import store_discrepancy

    path = inference.save_fit(store_discrepancy(groups, args), args.out)
    _c.say(f"wrote {path}")
    return 0


def cmd_summary(args) -> int:
    from bayes_scaling.cli.summary import cmd_summary as summary  # no JAX, arviz or pandas

    return summary(args)


def _print_summary(idata, table) -> None:
    import pandas as pd

    attrs = idata.posterior.attrs
    print(f"law: {attrs['law']}   {attrs.get('formula', '')}")
    print(
        f"likelihood: {attrs.get('likelihood')}   points: {attrs.get('num_points')}   groups: "
        f"{json.loads(attrs.get('groups', '[]')) or 'none'}"
    )
    with pd.option_context(
        "display.width", 120, "display.max_rows", 200, "display.float_format", "{:.4g}".format
    ):
        print(table.to_string())
    div = int(idata.sample_stats["diverging"].sum())
    print(f"divergences: {div}")


def cmd_demo(args) -> int:
    from bayes_scaling import datasets, inference

    _c.check_out(args)
    df = datasets.load_dataset("demo")
    args.law = "chinchilla"
    for name, value in {
        "group": None,
        "pool": None,
        "priors": None,
        "likelihood": "student_t",
        "map": None,
        "derive_tokens": False,
        "flops_per_token": 6.0,
    }.items():
        setattr(args, name, value)
    groups = _run_fit(
        df,
        args,
        "the embedded demo data (synthetic, from the Besiroglu et al. 2024 Chinchilla refit)",
    )
    idata = inference.to_inference_data(groups)
    if args.out:
        _c.say(f"wrote {inference.save_fit(groups, args.out)}")
    _print_summary(idata, inference.summarize(idata))
    print("true values used to simulate the demo: E=1.817 A=482 B=2085 alpha=0.348 beta=0.366")
    return 0


def register(sub) -> None:
    """Add the laws, fit, summary and demo commands."""
    p = sub.add_parser("laws", help="list the registered laws with their formulas")
    p.set_defaults(func=cmd_laws, needs_jax=False)

    p = sub.add_parser(
        "fit",
        help="fit a law by MCMC (NUTS; static HMC for hierarchical fits) and save the posterior "
        "as netCDF",
    )
    p.add_argument(
        "data", help="CSV file or dataset name (see bayes_scaling.datasets.list_datasets)"
    )
    _c.add_fit_options(p)
    _c.add_calibration_options(p, refit_budget=False)
    p.add_argument("--out", required=True, help="output netCDF file (InferenceData)")
    p.add_argument(
        "--force", action="store_true", help="replace --out if it exists (never an input file)"
    )
    p.add_argument(
        "--discrepancy",
        default="auto",
        help="extrapolation discrepancy stored with the fit: auto (calibrated by leave-future-out "
        "with Laplace refits; default), off, or a fixed tau",
    )
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("summary", help="posterior table: mean, sd, 5/50/95%% quantiles, R-hat, ESS")
    p.add_argument("fit", help="netCDF file written by `bayes-scaling fit`")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_summary, needs_jax=False)

    p = sub.add_parser(
        "demo",
        help="fit the Chinchilla law to the embedded demo data (offline) and print the summary",
    )
    p.add_argument("--seed", type=_c.seed_type, default=0)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument(
        "--target-accept",
        type=float,
        default=0.99,
        help="NUTS target acceptance (default 0.99: the demo's 48 runs leave A weakly identified; "
        "at 0.95, seeds 0 and 2 of 0-3 gave 2 and 7 divergent transitions, at 0.99 none did)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr (default: when stderr is a terminal)",
    )
    p.add_argument("--out", help="also save the fit as netCDF")
    p.add_argument(
        "--force", action="store_true", help="replace --out if it exists (never an input file)"
    )
    p.set_defaults(func=cmd_demo)
