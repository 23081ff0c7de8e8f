"""Progress on stderr for fits run in stages: phase messages and a bar between compiled chunks.

Plain text, no dependency: on a terminal (or a Jupyter output stream) the bar redraws one line
with ``\\r``; elsewhere (a log file, a pipe) every update is a line of its own.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from typing import TextIO

BAR_WIDTH = 24


def _redraws(stream: TextIO) -> bool:
    """Whether ``stream`` can redraw a line: a terminal, or a Jupyter kernel's output stream."""
    if "ipykernel" in type(stream).__module__:
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def format_seconds(seconds: float) -> str:
    """``12.3 s`` under a minute, ``4m05s`` above.

    Examples
    --------
    >>> format_seconds(12.34), format_seconds(245)
    ('12.3 s', '4m05s')
    """
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def bar_line(phase: str, done: int, total: int, elapsed: float) -> str:
    """One progress line: phase, bar, percentage, iterations, elapsed and remaining time.

    Examples
    --------
    >>> bar_line("warmup", 300, 1500, 3.0)
    'warmup   [#####-------------------]  20%  300/1500 iterations  3.0 s elapsed, 12.0 s left'
    """
    fraction = done / total if total else 1.0
    filled = round(BAR_WIDTH * fraction)
    left = elapsed / done * (total - done) if done else math.nan
    return (
        f"{phase:<8} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {math.floor(100 * fraction):3d}%"
        f"  {done}/{total} iterations  {format_seconds(elapsed)} elapsed, "
        f"{format_seconds(left)} left"
    )


class Progress:
    """Phase messages and an iteration bar, written to ``sys.stderr`` (looked up at each write).

    Parameters
    ----------
    enabled : bool, default True
        When False every method does nothing.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._width = 0  # length of the line a redrawing bar last wrote
        self._total, self._done, self._t0 = 0, 0, time.perf_counter()

    def _write(self, text: str) -> None:
        stream = sys.stderr
        stream.write(text)
        stream.flush()

    @contextlib.contextmanager
    def phase(self, text: str) -> Iterator[None]:
        """Write ``text...`` before the block and ``done in N s`` after it."""
        if not self.enabled:
            yield
            return
        if self._width:  # a redrawn bar is on the line: the message goes below it
            self._write("\n")
            self._width = 0
        self._write(f"{text}... ")
        t0 = time.perf_counter()
        yield
        self._write(f"done in {format_seconds(time.perf_counter() - t0)}\n")

    def start_bar(self, total: int) -> None:
        """Start counting ``total`` iterations (the clock starts now)."""
        self._total, self._done, self._t0 = total, 0, time.perf_counter()
        self._width = 0

    @property
    def done(self) -> int:
        """The iterations counted since :meth:`start_bar`."""
        return self._done

    def retotal(self, total: int) -> None:
        """Count to ``total`` iterations from now on (a run that changed its plan midway)."""
        self._total = total

    def advance(self, phase: str, iterations: int) -> None:
        """Count ``iterations`` more, done in ``phase``, and show the bar."""
        self._done += iterations
        if not self.enabled:
            return
        line = bar_line(phase, self._done, self._total, time.perf_counter() - self._t0)
        if _redraws(sys.stderr):
            self._write("\r" + line.ljust(self._width))
            self._width = len(line)
            if self._done >= self._total:
                self._write("\n")
                self._width = 0
        else:
            self._write(line + "\n")
