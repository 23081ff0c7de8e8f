"""Compiled programs: an in-process cache per model structure, and program files on disk."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from bayes_scaling import _jaxcache
from bayes_scaling.engine.sampler import program
from bayes_scaling.engine.settings import SamplerSettings, bucket_size
from bayes_scaling.models import ModelSpec


def cache_from_environment() -> str | None:
    """Use ``$BAYES_SCALING_JAX_CACHE`` as JAX's persistent compilation cache when it is set.

    Compiling a fitting program takes 10-20 s on a CPU; with the cache, a later process that
    fits the same model structure, data size bucket and settings loads the executable instead.
    The command line sets a cache by default (``~/.cache/bayes-scaling/jax``); in Python it is
    used when the variable names a directory (or when JAX's own cache directory is configured).
    Must run before JAX's first compilation in the process to take effect: :func:`bayes_scaling.fit`
    and :func:`bayes_scaling.fit_many` call it before they compile (importing the package changes
    no JAX setting). Returns the directory in use, if any.
    """
    path = os.environ.get("BAYES_SCALING_JAX_CACHE")
    if path and not _cache_dir():
        return _jaxcache.enable(path)
    return _cache_dir()


def _cache_dir() -> str | None:
    """JAX's compilation cache directory, if one is configured."""
    return jax.config.values.get("jax_compilation_cache_dir")


PROGRAM_CACHE_SIZE = 32  # compiled programs kept in a process (oldest dropped first)
_PROGRAMS: dict[Any, Any] = {}


def _remember(key: Any, fn: Any) -> Any:
    """Keep ``fn`` under ``key`` in the bounded in-process program cache."""
    while len(_PROGRAMS) >= PROGRAM_CACHE_SIZE:
        _PROGRAMS.pop(next(iter(_PROGRAMS)))
    _PROGRAMS[key] = fn
    return fn


def compiled(
    spec: ModelSpec,
    num_points: int,
    settings: SamplerSettings,
    prior_samples: int,
    method: str = "nuts",
):
    """The jitted program for a model structure, padded data size and settings (cached)."""
    key = (
        spec.structure,
        bucket_size(num_points),
        settings.compile_key(),
        int(prior_samples),
        method,
    )
    fn = _PROGRAMS.get(key)
    if fn is None:
        fn = _remember(key, jax.jit(program(spec, settings, prior_samples, method)))
    return fn


# --------------------------------------------------------------------------- program files
#
# JAX's persistent compilation cache skips XLA compilation, but every new process still traces
# and lowers the program first (about 2.5 s for the Chinchilla fit on a 2-core CPU). A program
# file -- the traced program serialised with ``jax.export`` -- skips that too: a second
# ``bayes-scaling fit`` of same-shaped data deserialises it (milliseconds) and the compilation
# cache supplies the executable. Files are keyed by everything the program depends on,
# including a digest of this package's source, so an edit or an upgrade never reuses a stale
# one. Used when a compilation cache directory is configured (the CLI does) and the law is one
# of the package's own (a user's law function has no source digest here); ``flatbuffers``
# must be installed (``jax.export`` serialisation needs it), else programs are traced as usual.


def program_cache_dir() -> str | None:
    """Where program files go: ``$BAYES_SCALING_PROGRAM_CACHE``, else ``<jax cache>/programs``.

    ``None`` (no program files) when neither is set, or the variable is empty or ``0``.
    """
    env = os.environ.get("BAYES_SCALING_PROGRAM_CACHE")
    if env is not None:
        return env if env not in ("", "0") else None
    base = _cache_dir()
    return os.path.join(base, "programs") if base else None


@functools.cache
def _source_digest() -> str:
    package = Path(__file__).resolve().parents[1]
    files = sorted(package.glob("engine/*.py")) + [
        package / name
        for name in ("laplace.py", "models.py", "laws.py", "priors.py", "__init__.py")
    ]
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(package).as_posix().encode())
        h.update(path.read_bytes() if path.exists() else b"")
    return h.hexdigest()


def _program_file_key(
    spec: ModelSpec, args, settings: SamplerSettings, prior_samples: int, method: str
) -> str | None:
    if (
        getattr(spec.law.fn, "__module__", None) != "bayes_scaling.laws"
        or settings.resolved_chain_method() == "parallel"
    ):
        return None
    from importlib.metadata import version

    from bayes_scaling import __version__

    avals = [
        (jax.tree_util.keystr(path), tuple(np.shape(leaf)), str(np.asarray(leaf).dtype))
        for path, leaf in jax.tree_util.tree_flatten_with_path(args)[0]
    ]
    parts = [
        __version__,
        jax.__version__,
        version("numpyro"),
        _source_digest(),
        jax.default_backend(),
        spec.law.name,
        spec.priors.to_json(),
        spec.likelihood,
        spec.pooling,
        spec.num_groups,
        settings.compile_key(),
        int(prior_samples),
        method,
        avals,
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def _from_program_file(spec, args, settings, prior_samples, method):
    """A callable for the program, from its file when there is one (written when not)."""
    directory = program_cache_dir()
    if directory is None:
        return None
    if importlib.util.find_spec("flatbuffers") is None:  # jax.export serialisation needs it
        return None
    name = _program_file_key(spec, args, settings, prior_samples, method)
    if name is None:
        return None
    fn = _PROGRAMS.get(("file", name))
    if fn is not None:
        return fn
    path = Path(directory) / f"{name}.jaxprog"
    exported = None
    if path.is_file():
        try:
            exported = jax.export.deserialize(bytearray(path.read_bytes()))
        except Exception:
            exported = None
    if exported is None:
        jitted = compiled(spec, int(np.shape(args[2])[0]), settings, prior_samples, method)
        exported = jax.export.export(jitted)(*args)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(exported.serialize())
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache: trace every time
    fn = jax.jit(exported.call)
    _remember(("file", name), fn)
    return fn
