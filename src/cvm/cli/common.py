"""What every ``cvm`` command shares: the app, the common options, store and settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from cvm.cli.output import Format
from cvm.config import Settings, load_settings
from cvm.errors import NotFoundError
from cvm.store import Store

__all__ = [
    "ConfigOption",
    "DbOption",
    "FormatOption",
    "RunOption",
    "app",
    "maybe",
    "open_store",
    "parse_date",
    "read_settings",
]

app = typer.Typer(
    name="cvm",
    help="Customer Value Management: load customer data, see what each customer is worth.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Store file (default: store.path of cvm.toml, else ./cvm.duckdb)."),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Configuration file (default: ./cvm.toml when present)."),
]
FormatOption = Annotated[
    Format, typer.Option("--format", help="Output format: table, json or csv.")
]


def read_settings(config: Path | None) -> Settings:
    """Load cvm.toml (the given file, else ./cvm.toml when present, else defaults)."""
    return load_settings(config)


def open_store(
    db: Path | None, settings: Settings, *, read_only: bool = False, must_exist: bool = False
) -> Store:
    """Open the store named by --db, else cvm.toml's store.path, else ./cvm.duckdb.

    ``must_exist`` refuses to create a new, empty store (for commands that only read
    what earlier commands wrote).
    """
    path = (
        db
        if db is not None
        else (settings.store_path() if settings.source is not None else Path("cvm.duckdb"))
    )
    if must_exist and not path.exists():
        raise NotFoundError("no store here; run 'cvm ingest' or 'cvm demo' first", path=path)
    return Store(path, read_only=read_only)


def parse_date(value: str | None, option: str) -> dt.date | None:
    """Parse an ISO date option (``None`` stays ``None``)."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"expected a date YYYY-MM-DD, got {value!r}", param_hint=option
        ) from None


def maybe(value: float | None, pattern: str) -> str:
    """Format a number, or a dash when it is missing or NaN."""
    if value is None or value != value:
        return "–"
    return pattern.format(value)


RunOption = Annotated[str | None, typer.Option("--run", help="Run id (default: latest).")]
