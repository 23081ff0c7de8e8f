"""The building blocks of a report: sections, tables, figures, and number formatting."""

from __future__ import annotations

import dataclasses
import io
import math
import warnings
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_GROUP_PANELS",
    "FigureBlock",
    "Figures",
    "Report",
    "Section",
    "Table",
    "anchor",
    "cell",
    "fmt_g",
    "panel_grid",
    "png_bytes",
    "sci",
]

#: Figures and tables show at most this many groups.
MAX_GROUP_PANELS = 6


@dataclasses.dataclass(frozen=True)
class FigureBlock:
    """A rendered figure: a file-safe ``name``, a caption and the PNG bytes."""

    name: str
    caption: str
    png: bytes


@dataclasses.dataclass(frozen=True)
class Table:
    """A table of strings; ``status`` (one per row, ``"ok"``/``"warn"``/``"bad"``/``""``)
    colours the rows of the HTML version."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    status: tuple[str, ...] = ()


@dataclasses.dataclass
class Section:
    """A titled list of blocks: ``str`` (a paragraph), :class:`Table` or :class:`FigureBlock`."""

    title: str
    anchor: str
    blocks: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Report:
    """Everything a report shows, independent of the output format."""

    title: str
    sections: list[Section]
    generated: str

    @property
    def figures(self) -> list[FigureBlock]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, FigureBlock)]

    def to_html(self) -> str:
        """One self-contained HTML document (figures as base64 ``data:`` URIs, no scripts)."""
        from bayes_scaling.report.render import render_html

        return render_html(self)

    def write_html(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_html(), encoding="utf-8")
        return path

    def write_markdown(self, path: str | Path) -> Path:
        """Write ``path`` (Markdown) and the figures into ``<stem>_files/`` beside it."""
        path = Path(path)
        folder = path.parent / f"{path.stem}_files"
        folder.mkdir(parents=True, exist_ok=True)
        for fig in self.figures:
            (folder / f"{fig.name}.png").write_bytes(fig.png)
        from bayes_scaling.report.render import render_markdown

        path.write_text(render_markdown(self, folder.name), encoding="utf-8")
        return path


def png_bytes(fig, dpi: int = 100) -> bytes:
    """A figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


class Figures:
    """Numbers figures in order and turns failures into a paragraph instead of a crash."""

    def __init__(self, dpi: int) -> None:
        self.dpi = dpi
        self.count = 0

    def make(self, slug: str, caption: str, draw, *args, **kwargs) -> FigureBlock | str:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message=".*(tight_layout|constrained_layout|layout).*"
                )
                fig = draw(*args, **kwargs)
                png = png_bytes(fig, self.dpi)
        except (ValueError, KeyError) as exc:
            warnings.warn(f"report figure '{slug}' skipped: {exc}", UserWarning, stacklevel=3)
            return f"(Figure '{slug}' could not be drawn: {exc})"
        self.count += 1
        return FigureBlock(f"fig{self.count:02d}-{slug}", caption, png)


def fmt_g(x: float | None, digits: int = 4) -> str:
    """``x`` with ``digits`` significant digits; a dash for None and non-finite values."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}"


def sci(x: float) -> str:
    """``x`` with three significant digits (compute, sizes)."""
    return f"{x:.3g}"


def anchor(title: str) -> str:
    """A file- and URL-safe slug of a title."""
    return "".join(ch if ch.isalnum() else "-" for ch in title.lower()).strip("-")


def panel_grid(n: int, size=(6.4, 4.2)):
    """A new figure with ``n`` panels (one per group shown), two a row: ``(figure, [axes])``."""
    from matplotlib.figure import Figure

    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(size[0] * cols, size[1] * rows), layout="constrained")
    return fig, [fig.add_subplot(rows, cols, i + 1) for i in range(n)]


def cell(value: Any) -> str:
    """A table cell from a number, flag, string or None."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return fmt_g(float(value))
    return str(value)
