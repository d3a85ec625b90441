"""Output helpers shared by the CLI commands: formats, tables, progress bars."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class Format(StrEnum):
    """Output formats of every command."""

    table = "table"
    json = "json"
    csv = "csv"


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def emit_json(data: Any) -> None:
    """Write data as JSON to standard output."""
    sys.stdout.write(json.dumps(_clean(data), default=_default, indent=2) + "\n")


def emit_csv(rows: Sequence[dict[str, Any]]) -> None:
    """Write rows as CSV to standard output."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: _default(v) if v is not None and not isinstance(v, str | int | float) else v
                    for k, v in row.items()
                }
            )
    sys.stdout.write(buffer.getvalue())


def emit_machine(data: dict[str, Any], fmt: Format) -> bool:
    """Write ``data`` as JSON, or its scalar fields as one CSV row; False for tables.

    The human (table) output is the caller's; this returns True when it wrote.
    """
    if fmt is Format.json:
        emit_json(data)
        return True
    if fmt is Format.csv:
        emit_csv([{k: v for k, v in data.items() if not isinstance(v, dict | list)}])
        return True
    return False


def money(value: float | None) -> str:
    """Format an amount with thousands separators and two decimals."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:,.2f}"


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """Build a rich table with right-aligned numbers."""
    out = Table(title=title, title_justify="left", show_lines=False)
    numeric = [
        all(isinstance(r[i], int | float) for r in rows) if rows else False
        for i in range(len(columns))
    ]
    for name, is_number in zip(columns, numeric, strict=True):
        out.add_column(name, justify="right" if is_number else "left")
    for row in rows:
        out.add_row(*[money(v) if isinstance(v, float) else str(v) for v in row])
    return out


@contextmanager
def progress_bar(label: str, *, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``(done, total)`` callback drawing a progress bar on standard error."""
    if not enabled:
        yield lambda done, total: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
