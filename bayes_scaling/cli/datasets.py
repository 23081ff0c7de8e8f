"""The ``datasets`` command: which published datasets there are, and fetching the unpackaged ones.

``bayes-scaling datasets list`` shows each dataset's rows, license and where it comes from (the
package, a local copy, a download); ``bayes-scaling datasets get NAME`` downloads a dataset that is
not packaged into the user cache and checks its SHA-256. Like the rest of the CLI this module only
parses, calls :mod:`bayes_scaling.datasets` and prints; the library is imported when a command runs.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

__all__ = ["cmd_datasets_get", "cmd_datasets_list", "register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``datasets`` command, with its ``list`` and ``get`` actions, to the CLI parser."""
    parser = sub.add_parser(
        "datasets", help="list the published datasets; download one that is not packaged"
    )
    actions = parser.add_subparsers(dest="datasets_command", required=True, metavar="ACTION")
    p = actions.add_parser(
        "list", help="name, rows, license, and whether packaged, cached or downloadable"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per dataset")
    p.set_defaults(func=cmd_datasets_list, needs_jax=False)
    p = actions.add_parser(
        "get", help="download a dataset into the user cache and check its SHA-256"
    )
    p.add_argument("name", help="dataset name (see `bayes-scaling datasets list`)")
    p.add_argument(
        "--force", action="store_true", help="download again even when the cache has a good copy"
    )
    p.set_defaults(func=cmd_datasets_get, needs_jax=False)


def _short_license(text: str) -> str:
    """The license's short name.

    ``"Apache-2.0 (part of bayes-scaling)"`` -> ``"Apache-2.0"``;
    ``"none found: ..."`` -> ``"none found"``.
    """
    return re.split(r"[:(]", text, maxsplit=1)[0].strip()


def _cached_label(status: dict) -> str:
    if status["packaged"]:
        return "-"
    if status["cached"] is None:
        return "no"
    return "yes" if status["cached_ok"] else "bad checksum"


def cmd_datasets_list(args: argparse.Namespace) -> int:
    """Print a table (or JSON lines with ``--json``) of every dataset and view."""
    from bayes_scaling import datasets

    rows = [datasets.dataset_status(name) for name in datasets.list_datasets()]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    header = ("name", "rows", "license", "packaged", "cached", "download")
    table = [
        (
            row["name"],
            str(row["rows"]),
            _short_license(row["license"]),
            "yes" if row["packaged"] else "no",
            _cached_label(row),
            "yes" if row["downloadable"] else "no",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *table]) for i in range(len(header))]
    for line in [header, *table]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)).rstrip()
        )
    print(f"user cache: {datasets.default_cache_dir()}")
    return 0


def cmd_datasets_get(args: argparse.Namespace) -> int:
    """Download NAME into the user cache (or say that it ships with the package)."""
    from bayes_scaling import datasets

    status = datasets.dataset_status(args.name)
    if status["packaged"]:
        print(
            f"{args.name}: ships with the package ({status['rows']} rows, "
            f"{_short_license(status['license'])}); load_dataset({args.name!r}) reads it offline, "
            "nothing to download"
        )
        return 0
    info = datasets.dataset_info(args.name)
    target = datasets.default_cache_dir() / info["folder"] / info["file"]
    before = _stat(target)
    path = datasets.download_dataset(args.name, force=args.force)
    what = "already in the cache" if before is not None and _stat(path) == before else "downloaded"
    print(f"{args.name}: {what}, sha256 checked: {path}")
    return 0


def _stat(path: Path) -> tuple[int, int, int] | None:
    """Inode, size and modification time: a download replaces the file, changing the inode."""
    if not path.is_file():
        return None
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns
