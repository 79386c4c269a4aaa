"""One way to show money, sizes, durations and tables, everywhere in the package.

Markdown tables escape ``$`` and ``|`` in their cells: JupyterLab renders ``$0 | $0`` as a
formula, which swallows a column and turns the money into maths.

Thread safety: pure functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = [
    "duration",
    "markdown_table",
    "moment",
    "money",
    "records_table",
    "size",
    "text_table",
    "total_cost",
]


def money(usd: float | None) -> str:
    """``$1,234.56`` from a dollar up; below, four significant digits (``$0.00123``),
    so a small cost never reads as zero; ``$0`` for nothing; ``unknown`` for None."""
    if usd is None or not math.isfinite(usd):
        return "unknown"
    if usd == 0:
        return "$0"
    sign, usd = ("-", -usd) if usd < 0 else ("", usd)
    if usd >= 1:
        return f"{sign}${usd:,.2f}"
    if usd < 1e-9:
        return f"{sign}$<0.000000001"
    digits = max(2, 3 - math.floor(math.log10(usd)))
    text = f"{usd:.{digits}f}".rstrip("0")
    if len(text.partition(".")[2]) < 2:
        text = f"{usd:.2f}"
    return f"{sign}${text}"


def total_cost(usd: float, unpriced: int = 0, calls: int | None = None) -> str:
    """The cost of several calls: :func:`money` of the priced ones, ``+?`` after it when
    ``unpriced`` of them had no known price, ``unknown`` when none had (of ``calls``)."""
    if unpriced and calls is not None and unpriced >= calls:
        return "unknown"
    return money(usd) + ("+?" if unpriced else "")


def moment(timestamp: float | None) -> str:
    """A time as a person reads it in a listing, local time to the minute:
    ``2025-01-31 14:05``; ``-`` when unknown."""
    if timestamp is None or not math.isfinite(timestamp) or timestamp <= 0:
        return "-"
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def size(count: float) -> str:
    """Bytes in binary units: ``512 B``, ``1.5 KiB``, ``3.2 MiB``, ``1.0 GiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop always returns


def duration(seconds: float | None) -> str:
    """``0.4 s``, ``42 s``, ``3 min 5 s``, ``2 h 5 min``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if round(seconds, 1) < 10:
        return f"{seconds:.1f} s"
    if round(seconds) < 120:
        return f"{seconds:.0f} s"
    total = round(seconds)
    if total < 3600:
        minutes, rest = divmod(total, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(total, 3600)
    minutes = rest // 60
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def markdown_cell(text: object) -> str:
    """A value as one Markdown table cell: ``$`` and ``|`` escaped, newlines as spaces."""
    return (
        str(text).replace("\\", "\\\\").replace("$", "\\$").replace("|", "\\|").replace("\n", " ")
    )


def markdown_table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table whose cells read as written in JupyterLab (see the module docstring)."""
    lines = [
        "| " + " | ".join(markdown_cell(h) for h in header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(
    header: Sequence[object], rows: Sequence[Sequence[object]], *, numbers: bool = False
) -> str:
    """Plain aligned columns under a dashed rule (monospace in notebooks and terminals);
    with ``numbers``, every column after the first is right-aligned."""
    cells = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if numbers and i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])


def records_table(
    rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None
) -> str:
    """:func:`text_table` of dicts: one column per key (of the first row, or ``columns``)."""
    if not rows:
        return ""
    cols = list(columns or rows[0].keys())
    return text_table(cols, [[r.get(c, "") for c in cols] for r in rows])
