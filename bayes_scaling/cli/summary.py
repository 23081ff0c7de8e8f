"""The ``summary`` command: a fit's posterior table, read without JAX, arviz or pandas.

It starts in well under a second: :mod:`bayes_scaling.fitfile` reads the netCDF file with netCDF4
and :mod:`bayes_scaling.convergence` computes the table (arviz's R-hat and ESS, in numpy).
"""

from __future__ import annotations

import json
import math

__all__ = ["cmd_summary", "format_table"]


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """The table as aligned text: one line per parameter, numbers to 4 significant digits."""
    columns = list(next(iter(rows.values()), {}))
    cells = [["parameter", *columns]]
    cells += [[name, *(format(row[c], ".4g") for c in columns)] for name, row in rows.items()]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    )


def _json_value(value: float) -> float | None:
    return None if math.isnan(value) else value


def cmd_summary(args) -> int:
    """Print the posterior table of ``args.fit`` (as JSON by parameter with ``--json``)."""
    from bayes_scaling.fitfile import summarize_file

    fit, rows = summarize_file(args.fit)
    if args.json:
        out = {name: {k: _json_value(v) for k, v in row.items()} for name, row in rows.items()}
        print(json.dumps(out, indent=2))
        return 0
    attrs = fit.attrs
    print(f"law: {attrs['law']}   {attrs.get('formula', '')}")
    print(
        f"likelihood: {attrs.get('likelihood')}   points: {attrs.get('num_points')}   groups: "
        f"{json.loads(attrs.get('groups', '[]')) or 'none'}"
    )
    print(format_table(rows))
    print(f"divergences: {fit.divergences}")
    return 0
