"""Published scaling-law measurements by name: the manifest, packaged tables, downloads.

The manifest (``datasets/manifest.toml``, shipped as ``bayes_scaling._datasets``) records for each
dataset its file, checksum, source, license, units, loss definition and how its columns map onto
the canonical names ``N, D, C, U, B, steps, loss, group``. Datasets whose license allows
redistribution (MIT, Apache-2.0) ship inside the package as
``bayes_scaling._datasets/<folder>/<file>`` beside the source's license and a provenance note, as
does the synthetic ``demo``; they load offline, with no data directory (from ``data_dir`` only when
that argument is given and holds the file). The others (``epoch-chinchilla``: no license) are
looked for, in order, as ``<dir>/<folder>/<file>`` and ``<dir>/<file>`` in:

1. ``data_dir`` when given, else the directories in the environment variable
   ``BAYES_SCALING_DATA`` (``os.pathsep``-separated);
2. the user cache, ``$XDG_CACHE_HOME/bayes-scaling`` or ``~/.cache/bayes-scaling``.

A missing file with a download URL is fetched into the user cache (unless ``download=False`` or
``BAYES_SCALING_OFFLINE`` is set; :func:`download_dataset` does it ahead of time). Every file is
checked against the manifest's SHA-256.
"""

from __future__ import annotations

import ast
import copy
import functools
import hashlib
import json
import operator
import os
import re
import tempfile
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CANONICAL_COLUMNS",
    "DATA_ENV_VAR",
    "OFFLINE_ENV_VAR",
    "ChecksumError",
    "dataset_info",
    "dataset_status",
    "default_cache_dir",
    "download_dataset",
    "list_datasets",
    "load_dataset",
]

CANONICAL_COLUMNS = ("N", "D", "C", "U", "B", "steps", "loss", "group")
DATA_ENV_VAR = "BAYES_SCALING_DATA"
OFFLINE_ENV_VAR = "BAYES_SCALING_OFFLINE"
_NUMERIC = tuple(c for c in CANONICAL_COLUMNS if c != "group")
_DOWNLOAD_TIMEOUT_S = 60.0
_PACKAGE = "bayes_scaling._datasets"


class ChecksumError(ValueError):
    """A dataset file's SHA-256 differs from the one in the manifest."""


# --------------------------------------------------------------------------- manifest


@functools.cache
def _manifest() -> dict[str, Any]:
    """The parsed manifest (cached; callers that hand it out must copy)."""
    text = resources.files(_PACKAGE).joinpath("manifest.toml").read_text("utf-8")
    manifest = tomllib.loads(text)
    for name, view in manifest.get("views", {}).items():
        if view.get("base") not in manifest["datasets"]:
            raise ValueError(f"manifest: view {name!r} has unknown base {view.get('base')!r}")
    return manifest


def list_datasets() -> list[str]:
    """Names of the datasets in the manifest, views included, sorted.

    Returns
    -------
    list of str
        For example ``["datablations", "demo", "epoch-chinchilla", ...]``.

    Examples
    --------
    >>> "demo" in list_datasets()
    True
    """
    manifest = _manifest()
    return sorted([*manifest["datasets"], *manifest.get("views", {})])


def _entry(name: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The manifest entry of a dataset (the base entry for a view) and the view table or None."""
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string; got {type(name).__name__}")
    manifest = _manifest()
    if name in manifest["datasets"]:
        return manifest["datasets"][name], None
    views = manifest.get("views", {})
    if name in views:
        return manifest["datasets"][views[name]["base"]], views[name]
    raise KeyError(f"unknown dataset {name!r}; available: {', '.join(list_datasets())}")


def dataset_info(name: str) -> dict[str, Any]:
    """The manifest entry of a dataset: provenance, license, units, column mapping.

    Parameters
    ----------
    name : str
        A name from :func:`list_datasets`.

    Returns
    -------
    dict
        A copy of the manifest table with ``name`` and ``kind`` (``"file"``, ``"packaged"`` or
        ``"view"``) added. A view returns its base dataset's entry with the view's
        ``description`` and ``rows``, plus ``base``, ``drop_largest`` and ``note``.

    Raises
    ------
    KeyError
        For an unknown name, listing the available ones.

    Examples
    --------
    >>> dataset_info("epoch-chinchilla")["columns"]["N"]
    'Model Size'
    >>> dataset_info("epoch-chinchilla-240")["base"]
    'epoch-chinchilla'
    """
    entry, view = _entry(name)
    info = copy.deepcopy(entry)
    info["name"] = name
    info["kind"] = "packaged" if entry.get("packaged", False) else "file"
    if view is not None:
        info.update(copy.deepcopy(view))
        info["kind"] = "view"
    return info


# --------------------------------------------------------------------------- directories


def default_cache_dir() -> Path:
    """The user cache: ``$XDG_CACHE_HOME/bayes-scaling``, else ``~/.cache/bayes-scaling``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "bayes-scaling"


def _search_dirs(data_dir: str | os.PathLike[str] | None) -> list[Path]:
    if data_dir is not None:
        dirs = [Path(data_dir).expanduser()]
    else:
        env = os.environ.get(DATA_ENV_VAR, "")
        dirs = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    cache = default_cache_dir()
    return dirs + ([cache] if cache not in dirs else [])


def _candidates(entry: Mapping[str, Any], dirs: list[Path]) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        for path in (d / entry["folder"] / entry["file"], d / entry["file"]):
            if path not in out:
                out.append(path)
    return out


# --------------------------------------------------------------------------- checksums


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return _sha256(Path(path))


def _file_sha256(path: Path) -> str:
    """SHA-256 of a file, remembered while its size and modification time stay the same."""
    stat = path.stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(name: str, entry: Mapping[str, Any], path: Path) -> None:
    found = _file_sha256(path)
    if found != entry["sha256"]:
        raise ChecksumError(
            f"dataset {name!r}: checksum mismatch for {path}: expected sha256 {entry['sha256']}, "
            f"found {found}; the file is damaged or a different version than the manifest "
            f"records ({entry.get('repository', '')} at {entry.get('commit', '')}). Replace the "
            "file, or pass verify=False to load it anyway."
        )


# --------------------------------------------------------------------------- download


def _download_allowed(download: bool | None) -> bool:
    if download is not None:
        return bool(download)
    return os.environ.get(OFFLINE_ENV_VAR, "").strip().lower() in ("", "0", "false", "no")


def _download(name: str, entry: Mapping[str, Any], verify: bool) -> Path:
    """Fetch ``entry['url']`` into the user cache, check it, and return its path."""
    url = entry["url"]
    target = default_cache_dir() / entry["folder"] / entry["file"]
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry['file']}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
            except (urllib.error.URLError, OSError) as exc:
                raise OSError(
                    f"dataset {name!r}: download from {url} failed ({exc}). If this machine is "
                    f"offline, run `bayes-scaling datasets get {name}` where there is network "
                    f"access and copy {default_cache_dir() / entry['folder']}, or place "
                    f"{entry['file']!r} in a folder and set {DATA_ENV_VAR} to it (or pass data_dir)"
                ) from exc
        found = _sha256(tmp)
        if verify and found != entry["sha256"]:
            raise ChecksumError(
                f"dataset {name!r}: the file downloaded from {url} has sha256 {found}, expected "
                f"{entry['sha256']}; it was deleted. The source may have changed: get the file "
                f"at commit {entry.get('commit', '')} and point {DATA_ENV_VAR} at its folder."
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _not_found(
    name: str, entry: Mapping[str, Any], looked: list[Path], reason: str
) -> FileNotFoundError:
    where = "\n  ".join(str(p) for p in looked)
    return FileNotFoundError(
        f"dataset {name!r}: file {entry['file']!r} not found; looked in:\n  {where}\n"
        f"{reason} Set {DATA_ENV_VAR} to a folder holding {entry['folder']}/{entry['file']} "
        f"(or {entry['file']}), or pass data_dir. Source: {entry.get('repository', '')} at commit "
        f"{entry.get('commit', '')}."
    )


def _locate(
    name: str,
    entry: Mapping[str, Any],
    data_dir: str | os.PathLike[str] | None,
    download: bool | None,
    verify: bool,
) -> Path:
    looked = _candidates(entry, _search_dirs(data_dir))
    for path in looked:
        if path.is_file():
            if verify:
                _verify(name, entry, path)
            return path
    if not entry.get("url"):
        reason = "The source publishes no copy of this exact file (see the manifest's provenance)."
        raise _not_found(name, entry, looked, reason)
    if not _download_allowed(download):
        why = "download=False" if download is False else f"{OFFLINE_ENV_VAR} is set"
        reason = (
            f"Downloading is off ({why}); with network access, `bayes-scaling datasets get "
            f"{name}` or download_dataset({name!r}) fetches it into the user cache."
        )
        raise _not_found(name, entry, looked, reason)
    return _download(name, entry, verify)


def _packaged_file(entry: Mapping[str, Any]) -> Any:
    """The packaged copy of a dataset's file (an importlib.resources Traversable)."""
    parts = [p for p in (entry.get("folder"), entry["file"]) if p]
    return functools.reduce(lambda res, part: res.joinpath(part), parts, resources.files(_PACKAGE))


def _read(path: Path) -> pd.DataFrame:
    """A CSV file (compressed by suffix, as pandas reads it) or a JSON-lines file."""
    if path.name.endswith(".jsonl"):
        with open(path, encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh if line.strip()]
        return pd.DataFrame.from_records(records)
    return pd.read_csv(path)


def _read_entry(
    name: str,
    entry: Mapping[str, Any],
    data_dir: str | os.PathLike[str] | None,
    download: bool | None,
    verify: bool,
) -> tuple[pd.DataFrame, str]:
    """The raw table and where it came from: a packaged one from ``data_dir`` if it is given and
    holds the file, else from the package; the others as :func:`_locate` finds them."""
    if entry.get("packaged", False):
        explicit = [] if data_dir is None else _candidates(entry, [Path(data_dir).expanduser()])
        for path in explicit:
            if path.is_file():
                if verify:
                    _verify(name, entry, path)
                return _read(path), str(path)
        with resources.as_file(_packaged_file(entry)) as path:
            if verify:
                _verify(name, entry, path)
            raw = _read(path)
        parts = [p for p in (entry.get("folder"), entry["file"]) if p]
        return raw, "/".join([_PACKAGE, *parts])
    path = _locate(name, entry, data_dir, download, verify)
    return _read(path), str(path)


def dataset_status(name: str, data_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Where a dataset can come from: the package, a local copy, a download.

    Parameters
    ----------
    name : str
        A name from :func:`list_datasets` (a view reports its base dataset's file).
    data_dir : str or path-like, optional
        Searched instead of ``BAYES_SCALING_DATA``, as in :func:`load_dataset`.

    Returns
    -------
    dict
        ``name``, ``rows``, ``license``, ``packaged`` (the file ships in the package),
        ``cached`` (the first copy in the data directories or user cache, or None), ``cached_ok``
        (its SHA-256 matches), ``downloadable`` (the manifest has a download URL).

    Examples
    --------
    >>> dataset_status("demo")["packaged"]
    True
    """
    entry, view = _entry(name)
    found = [p for p in _candidates(entry, _search_dirs(data_dir)) if p.is_file()]
    return {
        "name": name,
        "rows": (view or entry)["rows"],
        "license": entry["license"],
        "packaged": bool(entry.get("packaged", False)),
        "cached": str(found[0]) if found else None,
        "cached_ok": bool(found) and _file_sha256(found[0]) == entry["sha256"],
        "downloadable": bool(entry.get("url")),
    }


def download_dataset(name: str, force: bool = False) -> Path:
    """Download a dataset's file into the user cache and check its SHA-256.

    Parameters
    ----------
    name : str
        A dataset with a download URL (``epoch-chinchilla``, or a view of it).
    force : bool, default False
        Download again even when the cache already holds a copy with the right checksum.

    Returns
    -------
    pathlib.Path
        The file in the user cache (:func:`default_cache_dir`).

    Raises
    ------
    ValueError
        The dataset has no download URL (packaged ones need none).
    OSError
        ``BAYES_SCALING_OFFLINE`` is set, or the download failed.
    ChecksumError
        The download's SHA-256 differs from the manifest's (the file is deleted).
    """
    entry, view = _entry(name)
    base = view["base"] if view is not None else name
    if not entry.get("url"):
        packaged = entry.get("packaged", False)
        why = "it ships with the package" if packaged else f"put its file in {DATA_ENV_VAR}"
        raise ValueError(f"dataset {base!r} has no download URL: {why}")
    target = default_cache_dir() / entry["folder"] / entry["file"]
    if target.is_file() and not force and _file_sha256(target) == entry["sha256"]:
        return target
    if not _download_allowed(None):
        raise OSError(
            f"dataset {base!r}: downloading is off ({OFFLINE_ENV_VAR} is set); unset it to "
            f"download {entry['url']}"
        )
    return _download(base, entry, verify=True)


# --------------------------------------------------------------------------- column mapping

_BINARY_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_SIZE_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


def _arithmetic(expression: str, frame: pd.DataFrame) -> pd.Series:
    """Evaluate ``+ - * / **`` over numbers and column names (no other Python)."""

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
            return _BINARY_OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in frame.columns:
                raise ValueError(f"column {node.id!r} is not in the frame")
            return frame[node.id].astype(float)
        raise ValueError(f"unsupported element {ast.dump(node)}")

    return walk(ast.parse(expression, mode="eval"))


def _parse_size(label: str) -> float:
    """``"85M"`` -> 8.5e7, ``"1.2B"`` -> 1.2e9."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMBGT]?)\s*", str(label), flags=re.IGNORECASE)
    if match is None:
        raise ValueError(f"cannot parse model size {label!r}; expected a number with K/M/B/T")
    return float(match.group(1)) * _SIZE_SUFFIX[match.group(2).upper()]


def _derive(name: str, column: str, recipe: Any, frame: pd.DataFrame) -> pd.Series:
    try:
        if isinstance(recipe, str):
            return _arithmetic(recipe, frame)
        if isinstance(recipe, Mapping) and "join" in recipe:
            parts = [frame[c].astype(str) for c in recipe["join"]]
            joined: pd.Series = functools.reduce(lambda a, b: a + recipe.get("sep", "/") + b, parts)
            return joined
        if isinstance(recipe, Mapping) and "parse_size" in recipe:
            return pd.Series(frame[recipe["parse_size"]].map(_parse_size), dtype=float)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"dataset {name!r}: cannot derive column {column!r} ({exc})") from exc
    raise ValueError(
        f"dataset {name!r}: derived column {column!r} has recipe {recipe!r}; expected an "
        "arithmetic string, {join = [...]} or {parse_size = column}"
    )


def _canonical(name: str, entry: Mapping[str, Any], raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Rename mapped columns, add derived ones, order canonical columns first."""
    mapping: dict[str, str] = dict(entry.get("columns", {}))
    missing = [orig for orig in mapping.values() if orig not in raw.columns]
    if missing:
        raise ValueError(
            f"dataset {name!r}: {path} lacks the columns {missing}; expected "
            f"{sorted(mapping.values())}, found {list(raw.columns)}"
        )
    frame = raw.rename(columns={orig: canon for canon, orig in mapping.items()})
    duplicated = set(frame.columns[frame.columns.duplicated()])
    clash = sorted(duplicated | (set(entry.get("derived", {})) & set(frame.columns)))
    if clash:
        raise ValueError(
            f"dataset {name!r}: {path} has columns {clash} that clash with the manifest's "
            "canonical or derived columns; map them explicitly in the manifest"
        )
    for column, recipe in entry.get("derived", {}).items():
        frame[column] = _derive(name, column, recipe, frame)
    for column in _NUMERIC:
        if column in frame.columns:
            frame[column] = frame[column].astype(np.float64)
    if "group" in frame.columns:
        frame["group"] = frame["group"].astype(str)
    canonical = [c for c in CANONICAL_COLUMNS if c in frame.columns]
    extra = [c for c in frame.columns if c not in CANONICAL_COLUMNS]
    return frame[canonical + extra].reset_index(drop=True)


def _apply_view(view: Mapping[str, Any], frame: pd.DataFrame) -> pd.DataFrame:
    rule = view["drop_largest"]
    drop = frame[rule["column"]].nlargest(int(rule["count"]), keep="first").index
    return frame.drop(index=drop).reset_index(drop=True)


# --------------------------------------------------------------------------- loading


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool | None = None,
    verify: bool = True,
) -> pd.DataFrame:
    """Load a dataset by name as a frame with canonical columns.

    Parameters
    ----------
    name : str
        A name from :func:`list_datasets`, e.g. ``"gadre-overtraining"`` or ``"demo"``.
    data_dir : str or path-like, optional
        Folder holding the data, laid out as ``<data_dir>/<folder>/<file>`` (the layout of the
        project's ``shared/datasets``) or flat as ``<data_dir>/<file>``. For a dataset that is
        not packaged it defaults to the ``BAYES_SCALING_DATA`` environment variable, and the
        user cache (:func:`default_cache_dir`) is searched last either way. A packaged dataset
        is read from ``data_dir`` only when it is given and holds the file, else from the
        package (the environment variable and the cache are not consulted).
    download : bool, optional
        Whether a missing file may be downloaded into the user cache from the manifest's
        ``url``. ``None`` (default) allows it unless ``BAYES_SCALING_OFFLINE`` is set. Only
        ``epoch-chinchilla`` has a URL: it is not packaged because its source has no license.
    verify : bool, default True
        Check the file's SHA-256 against the manifest (packaged copies and downloads too).

    Returns
    -------
    pandas.DataFrame
        Canonical columns present in the dataset first, in the order ``N, D, C, U, B, steps,
        loss, group`` (numeric ones as float64, ``group`` as strings), then the source's other
        columns under their original names. ``attrs`` holds ``name``, ``source``, ``license``,
        ``loss_definition``, ``units`` (dict), ``citation``, ``sha256``, ``path``, and for a
        view ``view`` (what was dropped and why).

    Raises
    ------
    KeyError
        Unknown name (the message lists the available ones).
    FileNotFoundError
        A file that is not packaged is in none of the searched places and cannot be downloaded;
        the message lists the places and how to get the file.
    ChecksumError
        The file's SHA-256 differs from the manifest's (a ``ValueError``; bad downloads are
        deleted).
    OSError
        A download failed.

    Notes
    -----
    Derived columns follow the manifest: :math:`D = C / (6 N)` for ``epoch-chinchilla`` (as in
    Besiroglu et al.'s notebook), :math:`C = 6 N D` for ``gadre-overtraining`` and ``gemstones``;
    ``zhang-critical-batch-size`` has ``B`` in sequences of 512 tokens and ``N`` parsed from the
    model label; ``porian-discrepancies`` labels its 15 settings as ``group``.
    ``epoch-chinchilla-240`` drops the 5 highest-loss rows (the 240 points Besiroglu et al. fit).

    References
    ----------
    Besiroglu, Erdil, Barnett, You (2024), "Chinchilla Scaling: A replication attempt",
    arXiv:2404.10102. Each dataset's own citation is in ``dataset_info(name)["citation"]``.

    Examples
    --------
    >>> demo = load_dataset("demo")
    >>> list(demo.columns)
    ['N', 'D', 'C', 'loss']
    >>> demo.attrs["name"]
    'demo'
    """
    entry, view = _entry(name)
    base_name = view["base"] if view is not None else name
    raw, location = _read_entry(base_name, entry, data_dir, download, verify)
    frame = _canonical(base_name, entry, raw, Path(location))
    if verify and len(frame) != entry["rows"]:
        raise ValueError(
            f"dataset {base_name!r}: {location} has {len(frame)} rows; expected {entry['rows']}"
        )
    if view is not None:
        frame = _apply_view(view, frame)
    repository = entry.get("repository", "")
    commit = entry.get("commit", "")
    frame.attrs = {
        "name": name,
        "source": f"{repository} @ {commit}" if commit else repository,
        "source_urls": list(entry.get("source_urls", [])),
        "license": entry["license"],
        "loss_definition": entry["loss_definition"],
        "units": dict(entry.get("units", {})),
        "citation": entry.get("citation", ""),
        "sha256": entry["sha256"],
        "path": location,
    }
    if view is not None:
        frame.attrs["base"] = view["base"]
        frame.attrs["view"] = view["note"]
    return frame
