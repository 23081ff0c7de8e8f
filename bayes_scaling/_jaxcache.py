"""JAX's persistent compilation cache: switched on in one place, and healed of broken entries.

A fitting program takes 10-20 s to compile on a CPU; with the cache a later process loads it
instead. JAX writes an entry in place, so a process killed while writing leaves a truncated
file, which JAX then fails to read (with a warning) and never replaces: every later fit
recompiles. :func:`heal` finds such entries (they do not decompress) and removes them so the
next compilation writes a good one. Entries checked once are recorded, by size, in a small
ledger beside them, so a start-up reads only entries it has not seen.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path

__all__ = ["default_cache_dir", "enable", "heal"]

_LEDGER = ".bayes-scaling-checked.json"
_MIN_AGE_S = 120.0  # younger entries may still be being written by another process


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/bayes-scaling/jax``, else ``~/.cache/bayes-scaling/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "bayes-scaling", "jax")


def _decompressor() -> Callable[[bytes], bytes]:
    """The decompression JAX uses for its entries: zstd where a zstd module is installed, else
    zlib."""
    try:
        from compression import zstd  # Python 3.14+

        return zstd.decompress
    except ImportError:
        pass
    try:
        import zstandard

        return zstandard.ZstdDecompressor().decompress
    except ImportError:
        return zlib.decompress


def heal(directory: str | os.PathLike[str], *, min_age_s: float = _MIN_AGE_S) -> list[str]:
    """Remove cache entries that cannot be decompressed (truncated or corrupt).

    Parameters
    ----------
    directory : str or path-like
        JAX's compilation cache directory.
    min_age_s : float, default 120
        Entries modified more recently are left alone (another process may be writing them).

    Returns
    -------
    list of str
        File names of the entries removed.
    """
    folder = Path(directory)
    ledger_path = folder / _LEDGER
    try:
        ledger = json.loads(ledger_path.read_text())
    except (OSError, ValueError):
        ledger = {}
    decompress, now, removed, changed = _decompressor(), time.time(), [], False
    for entry in folder.glob("*-cache"):
        try:
            stat = entry.stat()
            if ledger.get(entry.name) == stat.st_size or now - stat.st_mtime < min_age_s:
                continue
            decompress(entry.read_bytes())
            ledger[entry.name] = stat.st_size
        except OSError:
            continue
        except Exception:
            with contextlib.suppress(OSError):
                entry.unlink()
                Path(str(entry)[: -len("-cache")] + "-atime").unlink(missing_ok=True)
            ledger.pop(entry.name, None)
            removed.append(entry.name)
        changed = True
    if changed:
        with contextlib.suppress(OSError):
            tmp = ledger_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(ledger))
            os.replace(tmp, ledger_path)
    return removed


def enable(directory: str | os.PathLike[str] | None = None) -> str | None:
    """Use ``directory`` (default: :func:`default_cache_dir`) as JAX's compilation cache.

    Broken entries are removed first (:func:`heal`). Must run before JAX's first compilation
    in the process. Returns the directory in use, or None where it cannot be created (a
    read-only home: every process then compiles afresh).
    """
    import jax

    path = os.fspath(directory) if directory is not None else default_cache_dir()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    heal(path)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
