"""The ``bayes-scaling`` command line: argument parsing, file I/O and printing only.

Every subcommand calls the public API. Bad input ends with a one-line ``error: ...`` message and
exit code 2; warnings from the library are printed as ``warning: ...`` lines on stderr; Ctrl-C
and SIGTERM stop a command at once with 130 or 143 (:mod:`bayes_scaling.cli.signals`).

Modules: ``fitting`` (laws, fit, summary, demo), ``comparing`` (compare, contrast),
``predicting`` (predict, backtest), ``calibrating`` (calibrate; the discrepancy ``fit`` stores),
``reporting`` (report, plot), ``deciding`` (allocate, target, batch, next-runs), ``datasets``
(datasets list/get), and ``_common`` (what they share).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from bayes_scaling.cli import (
    calibrating,
    comparing,
    datasets,
    deciding,
    fitting,
    predicting,
    reporting,
)
from bayes_scaling.cli._common import EXIT_BAD_INPUT, cli_words, configure_jax, say, show_warning
from bayes_scaling.cli.signals import exit_on_signals

__all__ = ["EXIT_BAD_INPUT", "build_parser", "main"]

# each adds its subcommands to the parser, in the order `--help` lists them
COMMANDS = (
    fitting.register,
    comparing.register,
    reporting.register,
    predicting.register,
    calibrating.register,
    deciding.register,
    datasets.register,
    deciding.register_next_runs,
)

_exit_on_signals = exit_on_signals  # the name the tests and scripts use


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="bayes-scaling",
        description="Bayesian scaling-law fits, extrapolation and decisions under uncertainty.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    restore = exit_on_signals()
    try:
        code = _main(argv)
        sys.stdout.flush()  # a reader that went away is met here, not at interpreter exit
        return code
    except BrokenPipeError:
        # the reader went away (`... | head`): stop quietly, as other command-line tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    finally:
        restore()


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "needs_jax", True):
        configure_jax()
    warnings.showwarning = show_warning
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        raise
    except (ValueError, KeyError, TypeError, OSError) as exc:  # DataError is a ValueError
        if args.debug:
            raise
        say(f"error: {cli_words(_message(exc))}")
        return EXIT_BAD_INPUT


def _message(exc: Exception) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)
