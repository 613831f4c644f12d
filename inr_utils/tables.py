"""Result tables as text: CSV and GitHub Markdown from rows (mappings of column name -> value).

Used by the sweep outputs (:mod:`inr_utils.sweeps`) and the classic experiments (:mod:`inr_utils.studies`).
Missing values (``None``, float NaN) are empty CSV cells and ``n/a`` in Markdown.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Row = Mapping[str, Any]


def all_columns(rows: Sequence[Row]) -> list[str]:
    """Every key of ``rows`` in order of first appearance."""
    return list(dict.fromkeys(key for row in rows for key in row))


def is_missing(value: Any) -> bool:
    """True for ``None`` and float NaN (cells written empty in CSV and as ``n/a`` in Markdown)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def csv_cell(value: Any) -> str:
    """One CSV cell: missing -> ``""``, floats with 6 significant digits, everything else ``str``."""
    if is_missing(value):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def to_csv(rows: Sequence[Row], columns: Sequence[str] | None = None) -> str:
    """CSV text (header line, then one line per row, ``\\n`` line ends) of ``columns`` of ``rows``; a column
    a row lacks is an empty cell. ``columns=None``: every column of ``rows`` (:func:`all_columns`)."""
    columns = all_columns(rows) if columns is None else columns
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def markdown_cell(value: Any, fmt: str | None = None) -> str:
    """One Markdown cell: missing -> ``n/a``; ``fmt`` (a ``str.format`` pattern such as ``"{:.2f}"``; a bare spec
    such as ``".2f"`` is a ``ValueError``) if given; else ints with thousands separators, floats with 4
    significant digits, the rest ``str``. Pipes are escaped."""
    if is_missing(value):
        return "n/a"
    if fmt is not None:
        if "{" not in fmt:  # a bare spec such as ".2f" would be written as the cell's text
            raise ValueError(f"Markdown cell format {fmt!r} has no replacement field; write it as '{{:{fmt}}}'")
        text = fmt.format(value)
    elif isinstance(value, bool):
        text = str(value)
    elif isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    return text.replace("|", "\\|")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def to_markdown(rows: Sequence[Row], columns: Sequence[str] | None = None, formats: Mapping[str, str] | None = None,
                headers: Mapping[str, str] | None = None) -> str:
    """A GitHub Markdown table of ``columns`` of ``rows``, ending in a newline.

    Args:
      rows: one mapping per table row.
      columns: keys to show, in order (default: every column of ``rows``).
      formats: column -> ``str.format`` pattern (default per value type, see :func:`markdown_cell`).
      headers: column -> header text (default: the column name).

    Columns whose present values are all numbers are right-aligned (``---:``), the others left-aligned.
    """
    columns = all_columns(rows) if columns is None else columns
    formats, headers = formats or {}, headers or {}
    lines = ["| " + " | ".join(headers.get(c, c) for c in columns) + " |"]
    align = []
    for column in columns:
        values = [row.get(column) for row in rows if not is_missing(row.get(column))]
        align.append("---:" if values and all(_is_number(v) for v in values) else "---")
    lines.append("|" + "|".join(align) + "|")
    for row in rows:
        lines.append("| " + " | ".join(markdown_cell(row.get(c), formats.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def pivot(rows: Sequence[Row], index: str, columns: str, value: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Reshapes long rows to wide: one output row per distinct ``row[index]`` (first-seen order) holding
    ``row[value]`` under the key ``str(row[columns])``; returns ``(wide_rows, column_names)`` with
    ``column_names = [index, *distinct columns values]``. Missing combinations are ``None``; a repeated
    (index, column) pair keeps the last value."""
    keys: list[Any] = []
    names: list[str] = []
    table: dict[Any, dict[str, Any]] = {}
    for row in rows:
        key, name = row[index], str(row[columns])
        if key not in table:
            keys.append(key)
            table[key] = {index: key}
        if name not in names:
            names.append(name)
        table[key][name] = row[value]
    wide = [{index: key, **{name: table[key].get(name) for name in names}} for key in keys]
    return wide, [index, *names]


def mean_of(values: Iterable[Any]) -> float:
    """Mean of the non-missing values (NaN when there are none)."""
    present = [float(v) for v in values if not is_missing(v)]
    return float(np.mean(present)) if present else float("nan")


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts of strings (header keys)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
