"""Warnings that point at the user's line: the first frame outside bayes-scaling."""

from __future__ import annotations

import sys
import types
import warnings

__all__ = ["warn"]

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
