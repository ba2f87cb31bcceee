"""How commands print: Rich tables for people, JSON for scripts, errors to stderr.

Owns the console objects and the two renderings of a list of rows; commands
decide what the rows are.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table


def console() -> Console:
    # Piped output keeps tables at their natural width instead of folding them to 80 columns.
    probe = Console()
    return Console(soft_wrap=True, width=None if probe.is_terminal else 1000)


def error_console() -> Console:
    return Console(stderr=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def print_json(data: Any) -> None:
    """JSON on stdout; NaN and infinities become null so any parser reads it."""
    print(json.dumps(_jsonable(data), indent=2, sort_keys=False, default=str))


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def print_table(
    rows: Sequence[Mapping[str, Any]], *, title: str | None = None, columns: Sequence[str] = ()
) -> None:
    """A Rich table with one column per key (in first-seen order unless `columns` is given)."""
    names = list(columns) or list(dict.fromkeys(k for row in rows for k in row))
    table = Table(title=title, show_lines=False)
    for name in names:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(format_value(row.get(name)) for name in names))
    if not rows:
        table.caption = "(none)"
    console().print(table)


def frame_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a DataFrame as dicts, with missing values as None."""
    cleaned = frame.astype(object).where(frame.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in cleaned.to_dict(orient="records")]


def emit(rows: Sequence[Mapping[str, Any]], *, as_json: bool, title: str | None = None) -> None:
    if as_json:
        print_json(list(rows))
    else:
        print_table(rows, title=title)
