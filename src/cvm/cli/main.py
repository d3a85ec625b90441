"""The ``cvm`` command line: thin adapters over the library.

Every command that touches the store takes ``--db`` (default: the ``store.path`` of
``cvm.toml``, else ``./cvm.duckdb``) and ``--format table|json|csv``. Errors print
``Error: …`` on standard error, without a traceback, and exit with status 1.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from cvm import __version__
from cvm.cli.common import (
    ConfigOption,
    DbOption,
    FormatOption,
    app,
    open_store,
    parse_date,
    read_settings,
)
from cvm.cli.output import (
    Format,
    console,
    emit_csv,
    emit_json,
    emit_machine,
    err_console,
    progress_bar,
    table,
)
from cvm.cli.views import print_overview
from cvm.config import CONFIG_FILENAME, Settings, default_toml, load_settings
from cvm.dynamics import analyze, backfill
from cvm.errors import CVMError
from cvm.ingest import INPUT_TABLES, REFERENCING_TABLES, IngestReport, ingest
from cvm.store import Store


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint=option)
        result[name.strip()] = value.strip()
    return result


def _version(value: bool) -> None:
    if value:
        console.print(f"cvm {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Load customer data and see what each customer is worth."""


# -- init -------------------------------------------------------------------------------
@app.command()
def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder for cvm.toml and the store.", file_okay=False)
    ] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing cvm.toml.")] = False,
    fmt: FormatOption = Format.table,
) -> None:
    """Write a commented default cvm.toml and create an empty store."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CONFIG_FILENAME
    if path.exists() and not force:
        raise CVMError("already exists; use --force to overwrite", path=path)
    path.write_text(default_toml(), encoding="utf-8")
    settings = load_settings(path)
    with Store(settings.store_path()) as store:
        version = store.schema_version()
    result = {"config": str(path), "store": str(settings.store_path()), "schema_version": version}
    if not emit_machine(result, fmt):
        console.print(
            f"Wrote {path}\nCreated the store {settings.store_path()} (schema version {version})"
        )


# -- ingest -----------------------------------------------------------------------------
def _print_report(report: IngestReport, fmt: Format) -> None:
    if emit_machine(report.to_dict(), fmt):
        return
    console.print(f"[bold]{report.table}[/bold] from {report.source} (batch {report.batch_id})")
    counts = [
        ("read", report.read),
        ("loaded", report.loaded),
        ("quarantined", report.quarantined),
        ("duplicates", report.duplicates),
    ]
    if report.updated:
        counts.insert(2, ("of which updated", report.updated))
    if report.table in REFERENCING_TABLES:
        counts.append(("loaded, naming unknown customers", report.unknown_customers))
    console.print(table("Rows", ["", "rows"], counts))
    console.print(
        "read = loaded + quarantined + duplicates: "
        + ("[green]reconciles[/green]" if report.reconciles else "[red]DOES NOT reconcile[/red]")
    )
    if report.columns:
        console.print("columns: " + ", ".join(f"{k} ← {v}" for k, v in report.columns.items()))
    if report.ignored_columns:
        console.print("ignored: " + ", ".join(report.ignored_columns))
    if report.reasons:
        rows = [(reason, count) for reason, count in list(report.reasons.items())[:10]]
        console.print(
            table(
                "Quarantined (first 10 reasons; all in the quarantine table)",
                ["reason", "rows"],
                rows,
            )
        )
    for note in report.notes:
        console.print(f"note: {note}")


_TABLE_CHOICES = "|".join(INPUT_TABLES)


def _ingest_target(arguments: list[str], table_option: str | None) -> tuple[str, Path]:
    """Return (table, file) from ``[TABLE] FILE`` and ``--table``."""
    if len(arguments) > 2:
        raise typer.BadParameter(
            f"expected [TABLE] FILE, got {len(arguments)} arguments", param_hint="[TABLE] FILE"
        )
    if len(arguments) == 2:
        table_name, path = arguments[0], Path(arguments[1])
        if table_option is not None and table_option != table_name:
            raise typer.BadParameter(
                f"the table is given twice: {table_name!r} and --table {table_option!r}",
                param_hint="--table",
            )
    elif table_option is None:
        raise typer.BadParameter(
            f"name the table: cvm ingest FILE --table {_TABLE_CHOICES}", param_hint="--table"
        )
    else:
        table_name, path = table_option, Path(arguments[0])
    if table_name not in INPUT_TABLES:
        raise typer.BadParameter(
            f"expected one of {', '.join(INPUT_TABLES)}, got {table_name!r}",
            param_hint="--table" if table_option is not None else "TABLE",
        )
    return table_name, path


@app.command("ingest")
def ingest_command(
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="[TABLE] FILE",
            help=(
                "The CSV or Parquet file, optionally preceded by its table "
                "(cvm ingest transactions FILE is cvm ingest FILE --table transactions)."
            ),
            show_default=False,
        ),
    ],
    table_option: Annotated[
        str | None,
        typer.Option(
            "--table",
            metavar="TABLE",
            help=(
                f"The table to load: {_TABLE_CHOICES}. Interactions (customer_id, ts, kind; "
                "channel, cost, csat 1-5, resolved), surveys (customer_id, ts; nps 0-10, "
                "csat, comment), referrals (referrer_id, referred_id; ts), identities "
                "(source, source_id and a customer key: customer_id, email, phone, "
                "loyalty_card or external_id), actions (customer_id, action, ts, group "
                "treatment|control; campaign, cost, channel)."
            ),
        ),
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="Map a column: canonical=YourColumn (repeatable)."),
    ] = None,
    derive: Annotated[
        list[str] | None,
        typer.Option(
            "--derive", help='Derive a column: amount="quantity * unit_price" (repeatable).'
        ),
    ] = None,
    encoding: Annotated[
        str | None, typer.Option("--encoding", help="CSV text encoding (default: detect).")
    ] = None,
    delimiter: Annotated[
        str | None, typer.Option("--delimiter", help="CSV delimiter (default: detect).")
    ] = None,
    date_format: Annotated[
        str | None,
        typer.Option(
            "--date-format", help="Format of text dates, e.g. %d/%m/%Y (default: detect)."
        ),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Load a file into a table of the store; every row is loaded, quarantined or a duplicate.

    Rows of interactions, surveys, referrals and actions that name a customer the store
    does not know are loaded and counted (unknown_customers).
    """
    table_name, path = _ingest_target(arguments, table_option)
    mappings, derivations = _pairs(mapping, "--map"), _pairs(derive, "--derive")
    settings = read_settings(config)
    overrides: dict[str, Any] = {}
    if encoding:
        overrides["encoding"] = encoding
    if delimiter:
        overrides["delimiter"] = "\t" if delimiter in ("\\t", "tab") else delimiter
    if date_format:
        overrides["date_format"] = date_format
    if overrides:
        settings = settings.model_copy(
            update={"ingest": settings.ingest.model_copy(update=overrides)}
        )
    with (
        open_store(db, settings) as store,
        progress_bar(
            f"Reading {path.name}", enabled=fmt is Format.table and sys.stderr.isatty()
        ) as update,
    ):
        report = ingest(
            store,
            path,
            table=table_name,
            settings=settings,
            mapping=mappings,
            derive=derivations,
            progress=update,
        )
    _print_report(report, fmt)


# -- analyze ----------------------------------------------------------------------------
class Every(StrEnum):
    """How often ``cvm analyze --every`` takes a snapshot."""

    month = "month"
    quarter = "quarter"


def _backfill(
    every: Every,
    start: str | None,
    end: str | None,
    db: Path | None,
    settings: Settings,
    fmt: Format,
) -> None:
    """``cvm analyze --every``: one run per month or quarter end, oldest first."""
    first, last = parse_date(start, "--from"), parse_date(end, "--to")
    with (
        open_store(db, settings, must_exist=True) as store,
        progress_bar(
            f"Analyzing every {every.value} end",
            enabled=fmt is Format.table and sys.stderr.isatty(),
        ) as update,
    ):
        runs = backfill(
            store,
            settings,
            start=first,
            end=last,
            every=every.value,
            progress=lambda done, total, _: update(done, total),
        )
    rows = [
        {
            "run_id": r.run_id,
            "as_of": r.as_of.isoformat(),
            "customers": r.customers,
            "transactions": r.transactions,
            "revenue": r.revenue,
            "realized_value": r.realized_value,
            "potential_value": r.potential_value,
            "total_value": r.total_value,
            "purchase_model": r.purchase_model,
        }
        for r in runs
    ]
    if fmt is Format.json:
        emit_json([r.to_dict() for r in runs])
    elif fmt is Format.csv:
        emit_csv(rows)
    else:
        console.print(
            table(
                f"{len(runs)} runs, one per {every.value} end",
                ["run", "as of", "customers", "total value", "model"],
                [
                    (
                        r["run_id"],
                        r["as_of"],
                        r["customers"],
                        r["total_value"] if r["total_value"] is not None else "–",
                        r["purchase_model"] or "–",
                    )
                    for r in rows
                ],
            )
        )
        console.print("Compare two of them with 'cvm migration --from RUN --to RUN'.")


@app.command("analyze")
def analyze_command(
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Observation end YYYY-MM-DD (default: last transaction)."),
    ] = None,
    every: Annotated[
        Every | None,
        typer.Option(
            "--every",
            help=(
                "Backfill: one run at every month or quarter end between --from and --to "
                "(identities resolved once; models fitted per date on its own history)."
            ),
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from", help="With --every: first day YYYY-MM-DD (default: first transaction)."
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="With --every: last day YYYY-MM-DD (default: last transaction)."),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Compute features and realized value at a date and keep them as a snapshot.

    With --every month|quarter, backfill the history: one snapshot at every month or
    quarter end between --from and --to, each its own run.
    """
    if every is not None and as_of is not None:
        raise typer.BadParameter("give either --as-of or --every, not both", param_hint="--every")
    if every is None and (start is not None or end is not None):
        raise typer.BadParameter(
            "--from and --to choose the dates of a backfill; add --every month|quarter",
            param_hint="--from/--to",
        )
    settings = read_settings(config)
    if every is not None:
        _backfill(every, start, end, db, settings, fmt)
        return
    date = parse_date(as_of, "--as-of")
    with (
        open_store(db, settings, must_exist=True) as store,
        progress_bar("Analyzing", enabled=fmt is Format.table and sys.stderr.isatty()) as update,
    ):
        overview = analyze(
            store, settings, as_of=date, progress=lambda done, total, _: update(done, total)
        )
    if not emit_machine(overview.to_dict(), fmt):
        print_overview(overview)


# the other commands register themselves on ``app`` when imported
from cvm.cli import actions, alerts, assess, customers, demo, migration, models  # noqa: E402, F401


def run() -> None:
    """Entry point of the ``cvm`` console script."""
    try:
        app()
    except CVMError as exc:
        err_console.print(f"Error: {exc}", markup=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    run()
