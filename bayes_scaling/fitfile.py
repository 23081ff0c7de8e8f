"""A light reader of fit files: the posterior's arrays and attributes, read with netCDF4 alone.

Commands that only read a fit (``bayes-scaling summary``) use it so that they start in well under
a second: it imports neither JAX, arviz, xarray, pandas nor SciPy. The full reader is
:func:`bayes_scaling.inference.load_fit`, which returns ArviZ ``InferenceData``; both read the
same netCDF-4 file, and :func:`summarize_file` gives the same table as
:func:`bayes_scaling.inference.summarize` (both compute it with :mod:`bayes_scaling.convergence`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from bayes_scaling import convergence

__all__ = ["FitArrays", "read_fit_arrays", "summarize_file", "summary_names"]


@dataclasses.dataclass(frozen=True)
class FitArrays:
    """The posterior of a fit file as plain arrays.

    Attributes
    ----------
    attrs : dict of str to str
        The posterior's attributes (law, formula, priors, groups, ... as written by ``fit``).
    variables : dict of str to ndarray
        Draws of each posterior variable, shape ``(chain, draw, ...)``.
    dims : dict of str to tuple of str
        Each variable's dimension names.
    coords : dict of str to list
        Labels of the non-sample dimensions (``group``).
    divergences : int
        Divergent transitions recorded in ``sample_stats`` (0 when it has none).
    """

    attrs: dict[str, Any]
    variables: dict[str, np.ndarray]
    dims: dict[str, tuple[str, ...]]
    coords: dict[str, list]
    divergences: int


def _open(path: Path):
    import netCDF4

    if not path.is_file():
        raise FileNotFoundError(f"fit file {str(path)!r} does not exist")
    try:
        return netCDF4.Dataset(path, "r")
    except OSError as exc:
        raise ValueError(f"{str(path)!r} is not a bayes-scaling fit file (netCDF): {exc}") from None


def read_fit_arrays(path: str | Path) -> FitArrays:
    """Read the posterior (and the divergence count) of a fit file written by ``save_fit``.

    Parameters
    ----------
    path : str or Path
        A netCDF file written by ``bayes-scaling fit`` or :func:`bayes_scaling.save_fit`.

    Returns
    -------
    FitArrays

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    ValueError
        When the file is not netCDF, or has no posterior with a ``law`` attribute.
    """
    path = Path(path)
    with _open(path) as root:
        post = root.groups.get("posterior")
        if post is None or "law" not in post.ncattrs():
            raise ValueError(
                f"{str(path)!r} has no posterior with a 'law' attribute; was it written by "
                "bayes-scaling fit?"
            )
        post.set_auto_mask(False)
        attrs = {key: post.getncattr(key) for key in post.ncattrs()}
        variables, dims, coords = {}, {}, {}
        for name, var in post.variables.items():
            if name in post.dimensions:
                if name not in ("chain", "draw"):
                    coords[name] = [str(v) for v in np.asarray(var[:]).ravel()]
                continue
            variables[name] = np.asarray(var[:])
            dims[name] = tuple(var.dimensions)
        stats = root.groups.get("sample_stats")
        divergences = 0
        if stats is not None and "diverging" in stats.variables:
            stats.set_auto_mask(False)
            divergences = int(np.asarray(stats.variables["diverging"][:]).sum())
    return FitArrays(attrs, variables, dims, coords, divergences)


def summary_names(fit: FitArrays) -> list[str]:
    """The law's parameters, ``sigma`` and ``nu``, in the order the fit stored them.

    The law's parameter names are the keys of the recorded priors (a law and its priors name
    the same parameters), so the law registry -- and JAX -- is not needed.
    """
    priors = json.loads(fit.attrs.get("priors", "{}"))
    wanted = {*priors.get("params", {}), "sigma", "nu"}
    return [name for name in fit.variables if name in wanted]


def summarize_file(
    path: str | Path, quantiles=(0.05, 0.5, 0.95)
) -> tuple[FitArrays, dict[str, dict[str, float]]]:
    """The fit's arrays and its posterior table (see :func:`convergence.summary_rows`).

    Parameters
    ----------
    path : str or Path
        A fit file.
    quantiles : sequence of float, default (0.05, 0.5, 0.95)
        Quantile columns of the table.

    Returns
    -------
    tuple of (FitArrays, dict)
        The arrays and the table's rows by parameter (``alpha[rw]`` for per-group ones).
    """
    fit = read_fit_arrays(path)
    variables = {}
    for name in summary_names(fit):
        extra = [d for d in fit.dims[name] if d not in ("chain", "draw")]
        labels = fit.coords.get(extra[0]) if extra else None
        variables[name] = (fit.variables[name], labels)
    return fit, convergence.summary_rows(variables, quantiles)
