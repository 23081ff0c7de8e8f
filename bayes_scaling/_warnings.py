"""Warnings that point at the user's line (the first frame outside bayes-scaling), and the
command line's words for the Python arguments that messages name."""

from __future__ import annotations

import re
import sys
import types
import warnings

__all__ = ["cli_words", "warn"]

_PACKAGE = __name__.split(".")[0]


def _user_stacklevel() -> int:
    """``stacklevel`` for :func:`warnings.warn` in :func:`warn`: past every package frame."""
    level = 1
    frame: types.FrameType | None = sys._getframe(1)  # this function's caller is `warn`
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == _PACKAGE:
        level += 1
        frame = frame.f_back
    return level


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Issue a warning attributed to the code that called into bayes-scaling.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     warn("look here")
    >>> seen[0].message.args[0]
    'look here'
    """
    warnings.warn(message, category, stacklevel=_user_stacklevel())


# the library's messages name Python arguments; on the command line they read as flags
_FLAG_WORDS = (
    (
        re.compile(r"\(the refits' settings: [^)]*\)"),
        "(--calibration-warmup, --calibration-chains)",
    ),
    (re.compile(r"target_accept_prob=(\S+) or (\S+)"), r"--target-accept \1 or \2"),
    (re.compile(r"target_accept_prob=([0-9.]+)"), r"--target-accept \1"),
    (re.compile(r"\bnum_samples\b"), "--samples"),
    (re.compile(r"\bnum_warmup\b"), "--warmup"),
    (re.compile(r"\bnum_chains\b"), "--chains"),
    (re.compile(r"\btarget_accept_prob\b"), "--target-accept"),
    (re.compile(r"trajectory_length=None"), "--trajectory-length nuts"),
    (re.compile(r"\bpilot=True"), "--pilot"),
    (re.compile(r"\bpass group= "), "pass --group with "),
    (re.compile(r"\bcuts=\[\.\.\.\]"), "--cuts Q1,Q2,..."),
    (re.compile(r"\braise target_loss\b"), "raise --loss"),
    (re.compile(r"\bprob=([0-9.eE+-]+)"), r"--prob \1"),
    (re.compile(r"\blower prob\b"), "lower --prob"),
    (re.compile(r"n_range=\(low, high\)"), "--n-range LOW,HIGH"),
    (re.compile(r"compute_bounds=\(low, high\)"), "--compute-bounds LOW,HIGH"),
    (re.compile(r"derive_tokens=True"), "--derive-tokens"),
    (re.compile(r"pooling=\{((?:'\w+': '\w+'(?:, )?)+)\}"), lambda m: _pool_flag(m.group(1))),
    (re.compile(r"columns=\{'your_name': 'canonical'\}"), "--map your_name=canonical"),
    (
        re.compile(r"the calibration's axes=\(([^)]*)\)"),
        lambda m: "--calibration-axes " + ",".join(re.findall(r"'([^']+)'", m.group(1))),
    ),
)


def _pool_flag(pairs: str) -> str:
    """``'A': 'shared', 'alpha': 'shared'`` as ``--pool A=shared,alpha=shared``."""
    return "--pool " + ",".join(f"{k}={v}" for k, v in re.findall(r"'(\w+)': '(\w+)'", pairs))


def cli_words(message: str) -> str:
    """A library message with its Python argument names replaced by the matching flags.

    >>> cli_words("share them (pooling={'alpha': 'shared', 'A': 'shared'})")
    'share them (--pool alpha=shared,A=shared)'
    """
    for pattern, flag in _FLAG_WORDS:
        message = pattern.sub(flag, message)
    return message
