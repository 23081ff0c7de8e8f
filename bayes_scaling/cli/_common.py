"""What every command shares: messages on stderr, JAX start-up, parsing of options, reading data
and checking output paths."""

from __future__ import annotations

import argparse
import json
import os
import sys

from bayes_scaling._warnings import cli_words

EXIT_BAD_INPUT = 2


def configure_jax() -> None:
    """Before JAX starts: one host device per core and a persistent compilation cache."""
    from bayes_scaling import _jaxcache
    from bayes_scaling._devices import ask_host_devices

    ask_host_devices()

    cache = os.environ.get("BAYES_SCALING_JAX_CACHE")
    if cache != "":  # an empty value switches the cache off
        _jaxcache.enable(cache)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def show_warning(message, category, filename, lineno, file=None, line=None):
    say(f"warning: {cli_words(str(message))}")


def parse_mapping(text: str | None, what: str) -> dict[str, str]:
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{what} must look like name=value[,name=value]; got {item!r}")
        out[key.strip()] = value.strip()
    return out


def parse_pooling(text: str | None):
    if text is None:
        return None
    if "=" not in text:
        return text
    return parse_mapping(text, "--pool")


def read_data(args):
    """DATA (CSV or dataset name) with an optional --query filter, as a DataFrame."""
    from bayes_scaling import data as _data

    df = _data.read_table(args.data)
    if getattr(args, "query", None):
        try:
            df = _data.select_rows(df, args.query)
        except _data.DataError as exc:
            raise ValueError(f"--query: {exc}") from None
    return df


def seed_type(text: str) -> int:
    """--seed: an integer in JAX's key range."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**63 - 1; got {text}")
    return value


def trajectory_type(text: str) -> float | str | None:
    """--trajectory-length: ``auto``, ``nuts`` (None) or a positive number."""
    if text in ("auto", "nuts"):
        return None if text == "nuts" else text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be auto, nuts or a positive number; got {text!r}")
    return value


def add_trajectory_option(p: argparse.ArgumentParser) -> None:
    """--trajectory-length: the MCMC kernel."""
    p.add_argument(
        "--trajectory-length",
        type=trajectory_type,
        default="auto",
        metavar="auto|nuts|L",
        help="MCMC kernel: nuts, or static HMC with trajectories of mean length L (jittered, in "
        "coordinates scaled at the mode); auto (default): L = 3 for a hierarchical fit "
        "(--group), NUTS otherwise",
    )


def check_out(args, *inputs) -> None:
    """Refuse an unusable --out before any work.

    Refused: an input file, a directory, or an existing file without --force.
    """
    from bayes_scaling._files import check_output

    out = getattr(args, "out", None)
    if out:
        check_output(out, inputs=[i for i in inputs if i], force=getattr(args, "force", False))


def fit_kwargs(args) -> dict:
    return {
        "priors": args.priors,
        "group": args.group,
        "pooling": parse_pooling(args.pool),
        "likelihood": args.likelihood,
        "columns": parse_mapping(args.map, "--map") or None,
        "derive_tokens": args.derive_tokens,
        "flops_per_token": args.flops_per_token,
    }


def add_fit_options(
    p: argparse.ArgumentParser,
    *,
    law_default: str | None = "chinchilla",
    law_help: str = "law name (see `bayes-scaling laws`)",
    priors_help: str = "prior set name (e.g. chinchilla-literature) or TOML file",
) -> None:
    p.add_argument("--law", default=law_default, help=law_help)
    p.add_argument("--group", help="column defining groups for a hierarchical fit")
    p.add_argument(
        "--pool",
        help="pooling for all parameters (shared|pooled|independent) or per parameter, "
        "e.g. E=pooled,alpha=shared",
    )
    p.add_argument("--priors", help=priors_help)
    p.add_argument("--likelihood", default="student_t", choices=["student_t", "normal"])
    p.add_argument("--map", help="rename columns to canonical names, e.g. params=N,val_loss=loss")
    p.add_argument(
        "--derive-tokens", action="store_true", help="compute D = C / (k N) when D is missing"
    )
    p.add_argument("--flops-per-token", type=float, default=6.0, help="k in C = k N D (default 6)")
    p.add_argument(
        "--query",
        help="rows to keep: comparisons of columns with values, "
        "e.g. \"dataset == 'rw' and N >= 1e8\" "
        "(and, or, not, ==, <, in [...]; no function calls or @ names)",
    )
    p.add_argument("--seed", type=seed_type, default=0)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--target-accept", type=float, default=0.9)
    add_trajectory_option(p)
    p.add_argument(
        "--pilot",
        action=argparse.BooleanOptionalAction,
        default="auto",
        help="hierarchical fits: --pilot runs a short pilot first and samples in coordinates "
        "whitened by its draws, --no-pilot never re-whitens; by default a fit with three or "
        "more groups re-whitens half-way through warmup only where a population location is "
        "tied to its groups' offsets (progress then shows phases, not a bar)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr: compilation, mode search, and a bar with percentage and "
        "time left for warmup and sampling (default: when stderr is a terminal)",
    )
    p.add_argument(
        "--method",
        choices=["nuts", "laplace"],
        default="nuts",
        help="nuts (default) or laplace: Gaussian draws at the posterior mode, a quick look",
    )


def _count_type(text: str) -> int:
    """A whole number >= 1 (chains, warmup iterations)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {text}")
    return value


def add_calibration_options(p, refit_budget: bool = True) -> None:
    """The settings of the refits that learn the extrapolation discrepancy (their chains and
    warmup only where they can be NUTS refits: not for ``fit``, whose refits are Laplace's)."""
    if refit_budget:
        _add_refit_budget(p)
    p.add_argument(
        "--calibration-axes",
        type=_axes_type,
        help="axes along which the runs are cut to learn the discrepancy, comma-separated: "
        "scale (log N*D; the default) and any of the law's covariates, e.g. scale,N,D (larger "
        "models and longer training too; each axis adds three refits)",
    )


def _add_refit_budget(p) -> None:
    p.add_argument(
        "--calibration-chains",
        type=_count_type,
        help="chains of each leave-future-out refit that learns the discrepancy (default 2)",
    )
    p.add_argument(
        "--calibration-warmup",
        type=_count_type,
        help="warmup iterations of each such refit (default 300; NUTS refits only); more, "
        "with more chains, settle refits whose chains disagree",
    )


def _axes_type(text: str) -> tuple[str, ...]:
    axes = tuple(a.strip() for a in text.split(",") if a.strip())
    if not axes:
        raise argparse.ArgumentTypeError(f"give one or more axes, e.g. scale,N; got {text!r}")
    return axes


def calibration_kwargs(args) -> dict:
    """``calibration=`` for backtest and calibrate (the keyword arguments of the discrepancy's
    calibration for fit): only the settings given. Axes the law does not have are refused here,
    before any fit."""
    if args.calibration_axes is not None:
        from bayes_scaling.laws import get_law

        allowed = ("scale", *get_law(args.law).covariates)
        bad = [a for a in args.calibration_axes if a not in allowed]
        if bad:
            raise ValueError(
                f"--calibration-axes takes {', '.join(allowed)} for law {args.law!r}; "
                f"got {', '.join(bad)}"
            )
    given = {
        "num_chains": getattr(args, "calibration_chains", None),
        "num_warmup": getattr(args, "calibration_warmup", None),
        "axes": args.calibration_axes,
    }
    return {k: v for k, v in given.items() if v is not None}


def fmt(v, spec: str = ".4g") -> str:
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return str(v)


def parse_floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers; got {text!r}") from None


def parse_pair(text: str | None, what: str, unit: str) -> tuple[float, float] | None:
    """``low,high`` as two floats (None when the option was not given)."""
    values = parse_floats(text, what)
    if values is None:
        return None
    if len(values) != 2:
        raise ValueError(f"{what} must be low,high {unit}; got {text!r}")
    return values[0], values[1]


def report_discrepancy(text: str | None):
    """--discrepancy of report/plot: recorded (the fit's own, else none), calibrate, off, tau."""
    if text in (None, "recorded", "auto"):
        return "recorded"
    if text == "calibrate":
        return "calibrate"
    if text in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"--discrepancy must be recorded, calibrate, off or a number (tau); got {text!r}"
        ) from None


def parse_quantiles(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(q) for q in text.split(","))
    except ValueError:
        raise ValueError(
            f"--quantiles must be comma-separated probabilities, e.g. 0.05,0.5,0.95; got {text!r}"
        ) from None
    bad = [q for q in values if not 0 < q < 1]
    if bad:
        raise ValueError(f"--quantiles must lie strictly between 0 and 1; got {bad[0]:g}")
    return values


def parse_discrepancy(text: str):
    """--discrepancy: auto (the fit's stored one), calibrate (learn it now), off or a tau."""
    if text in ("auto", "calibrate", None):
        return text or "auto"
    if text in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"--discrepancy must be auto, calibrate, off or a number (tau); got {text!r}"
        ) from None


def float_or_none(text):
    return None if text is None else float(text)


def print_json_or_lines(result: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=float))
    else:
        print("\n".join(lines))
