"""Safe output files: checked before any work, written atomically, removed when interrupted.

Every file bayes-scaling writes goes through :func:`atomic_path`: the content is written to a
hidden temporary file beside the target and renamed over it only when complete, with the
permissions an ordinary ``open()`` would give (the user's umask). Temporary files still open
are listed in :data:`PENDING`, so a signal handler can remove them before the process exits.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["PENDING", "OutputError", "atomic_path", "check_output", "remove_pending"]

PENDING: set[str] = set()


class OutputError(ValueError):
    """An output path that cannot or must not be written; the message names the user's path."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(
    path: str | os.PathLike[str],
    *,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    force: bool = False,
    option: str = "--out",
) -> Path:
    """Check that ``path`` can be written, before any work is done.

    Parameters
    ----------
    path : str or path-like
        The output file the user asked for.
    inputs : iterable of paths, optional
        Files the command reads; writing over one of them is always refused.
    force : bool, default False
        Allow replacing an existing output file (never an input).
    option : str, default "--out"
        How the user named the path, for messages.

    Returns
    -------
    Path
        The output path.

    Raises
    ------
    OutputError
        The path is an input, a directory, an existing file (without ``force``), or its folder
        cannot be created or written.
    """
    out = Path(path)
    for src in inputs:
        if src is not None and _same_file(out, Path(src)):
            raise OutputError(
                f"{option} {str(out)!r} is the input file {str(src)!r}; choose another output file"
            )
    if out.is_dir():
        raise OutputError(f"{option} {str(out)!r} is a directory; give a file name inside it")
    if out.exists() and not force:
        raise OutputError(
            f"{option} {str(out)!r} exists; choose another name, or pass --force to replace it"
        )
    folder = out.parent if str(out.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{option} {str(out)!r}: cannot create its folder ({exc.strerror})"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {str(out)!r}: its folder {str(folder)!r} is not writable")
    return out


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    The temporary file is removed when the block raises (or a signal ends the process through
    :func:`remove_pending`), so a failed or interrupted write leaves nothing behind and an
    existing file at ``path`` stays as it was.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=".bayes-scaling-", suffix=suffix or target.suffix, dir=target.parent
        )
    except OSError as exc:
        raise OutputError(f"cannot write {str(target)!r}: {exc.strerror}") from None
    os.close(fd)
    PENDING.add(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        PENDING.discard(tmp)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def remove_pending() -> None:
    """Remove the temporary files of writes still under way (when a signal ends the process)."""
    for tmp in list(PENDING):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        PENDING.discard(tmp)
