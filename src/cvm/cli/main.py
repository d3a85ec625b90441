"""The ``cvm`` command line: thin adapters over the library.

Every command that touches the store takes ``--db`` (default: the ``store.path`` of
``cvm.toml``, else ``./cvm.duckdb``) and ``--format table|json|csv``. Errors print
``Error: …`` on standard error, without a traceback, and exit with status 1.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cvm import __version__
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
from cvm.config import CONFIG_FILENAME, Settings, default_toml, load_settings
from cvm.dynamics import analyze, customer_view, model_fits
from cvm.dynamics.snapshots import RunOverview
from cvm.errors import CVMError, NotFoundError
from cvm.ingest import INPUT_TABLES, REFERENCING_TABLES, IngestReport, ingest
from cvm.store import Store

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


def _settings(config: Path | None) -> Settings:
    return load_settings(config)


def _open_store(
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
    settings = _settings(config)
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
        _open_store(db, settings) as store,
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
def _print_overview(overview: RunOverview, fmt: Format) -> None:
    if emit_machine(overview.to_dict(), fmt):
        return
    console.print(f"[bold]Run {overview.run_id}[/bold] as of {overview.as_of.isoformat()}")
    console.print(
        table(
            "Overview",
            ["", "value"],
            [
                ("customers", overview.customers),
                ("transactions", overview.transactions),
                ("revenue (net of returns)", overview.revenue),
                ("returns", overview.returns),
                ("realized value", overview.realized_value),
                ("potential value", overview.potential_value),
            ],
        )
    )
    console.print(
        f"The top {overview.top_share:.0%} of customers hold "
        f"{overview.top_value_share:.1%} of realized value."
    )
    if overview.purchase_model:
        console.print(f"Purchase model: {overview.model_reason}", markup=False)
        console.print(f"Spend model: {overview.spend_model}")
    for error in overview.model_errors:
        console.print(f"note: {error}", markup=False)
    console.print(
        table(
            "Top customers by realized value",
            ["customer", "purchase occasions", "revenue", "realized value"],
            [
                (c["customer_id"], c["occasions"], c["revenue"], c["realized_value"])
                for c in overview.top_customers
            ],
        )
    )


def _parse_date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"expected a date YYYY-MM-DD, got {value!r}", param_hint=option
        ) from None


@app.command("analyze")
def analyze_command(
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Observation end YYYY-MM-DD (default: last transaction)."),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Compute features and realized value at a date and keep them as a snapshot."""
    settings = _settings(config)
    date = _parse_date(as_of, "--as-of")
    with (
        _open_store(db, settings, must_exist=True) as store,
        progress_bar("Analyzing", enabled=fmt is Format.table and sys.stderr.isatty()) as update,
    ):
        overview = analyze(
            store, settings, as_of=date, progress=lambda done, total, _: update(done, total)
        )
    _print_overview(overview, fmt)


# -- customer ---------------------------------------------------------------------------
@app.command("customer")
def customer_command(
    customer_id: Annotated[str, typer.Argument(help="The customer's id.")],
    run: Annotated[str | None, typer.Option("--run", help="Run id (default: latest).")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Show one customer's figures from an analysis run."""
    settings = _settings(config)
    with _open_store(db, settings, read_only=True) as store:
        view = customer_view(store, customer_id, run_id=run)
    if fmt is Format.json:
        emit_json(view)
        return
    if fmt is Format.csv:
        emit_csv([view["figures"]])
        return
    f = view["figures"]
    unit = view["time_unit"]
    console.print(
        f"[bold]Customer {customer_id}[/bold]  (run {view['run_id']}, as of {view['as_of']})"
    )
    console.print(
        table(
            "Figures",
            ["", "value"],
            [
                ("first purchase", f["first_purchase"]),
                ("last purchase", f["last_purchase"]),
                ("purchase occasions", f["occasions"]),
                ("repeat purchases (frequency)", f["frequency"]),
                (f"recency ({unit}s)", round(f["recency"], 2)),
                (f"age T ({unit}s)", round(f["t"], 2)),
                ("mean repeat purchase", f["monetary_value"]),
                ("transactions", f["transactions"]),
                ("revenue (net of returns)", f["revenue"]),
                ("returns", f["returns"]),
                ("profit (margin)", f["margin"]),
                ("realized value", f["realized_value"]),
                ("P(alive)", _maybe(f.get("p_alive"), "{:.3f}")),
                (
                    "expected purchases, next 90 days",
                    _maybe(f.get("expected_purchases_90d"), "{:.2f}"),
                ),
                ("expected spend per purchase", _maybe(f.get("expected_spend"), "{:,.2f}")),
                ("potential value (CLV)", _maybe(f.get("potential_value"), "{:,.2f}")),
            ],
        )
    )
    if view["recent_transactions"]:
        console.print(
            table(
                "Recent transactions",
                ["when", "amount", "transaction", "product"],
                [
                    (t["ts"], t["amount"], t["transaction_id"] or "", t["product_id"] or "")
                    for t in view["recent_transactions"]
                ],
            )
        )


def _maybe(value: float | None, pattern: str) -> str:
    if value is None or value != value:
        return "–"
    return pattern.format(value)


# -- models -----------------------------------------------------------------------------
@app.command("models")
def models_command(
    run: Annotated[str | None, typer.Option("--run", help="Run id (default: latest).")] = None,
    plots: Annotated[
        Path | None,
        typer.Option(
            "--plots", help="Write diagnostic plots (SVG) into this folder.", file_okay=False
        ),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Show the models fitted for a run: parameters, fit, backtest and the choice."""
    settings = _settings(config)
    with _open_store(db, settings, read_only=True) as store:
        fits = model_fits(store, run_id=run)
        written = _write_plots(store, run, plots) if plots is not None else []
    if fmt is Format.json:
        emit_json(fits)
        return
    if fmt is Format.csv:
        emit_csv([{k: v for k, v in f.items() if not isinstance(v, dict)} for f in fits])
        return
    rows = []
    for f in fits:
        test = f["backtest"] or {}
        rows.append(
            (
                f["role"],
                f["model"],
                "yes" if f["chosen"] else "",
                _maybe(f["log_likelihood"], "{:,.1f}"),
                _maybe(f["bic"], "{:,.1f}"),
                _maybe(test.get("mae"), "{:.4f}"),
                _maybe(test.get("auc_expected"), "{:.3f}"),
            )
        )
    title = f"Models of run {fits[0]['run_id']}" if fits else "Models"
    columns = ["role", "model", "used", "log-lik.", "BIC", "holdout MAE", "AUC"]
    console.print(table(title, columns, rows))
    for f in fits:
        params = ", ".join(f"{k} = {v:.4g}" for k, v in (f["params"] or {}).items())
        detail = params or f"not fitted: {f['error']}"
        console.print(f"{f['role']} {f['model']}: {detail}", markup=False, soft_wrap=True)
    for f in fits:
        if f["chosen"] and f["reason"]:
            console.print(f"Chosen {f['role']} model: {f['reason']}", markup=False)
    for path in written:
        console.print(f"wrote {path}", markup=False)


def _write_plots(store: Store, run: str | None, folder: Path) -> list[Path]:
    from cvm.report.model_plots import model_plots

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, svg in model_plots(store, run).items():
        path = folder / name
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    return written


# -- demo -------------------------------------------------------------------------------
_DATASETS = {
    "cdnow": ("cdnow_master.parquet", "CDNOW first-time buyers, 1997-1998"),
    "online_retail": ("online_retail.parquet", "UCI Online Retail, 2010-2011 (CC BY 4.0)"),
}


@app.command("demo")
def demo_command(
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder for the demo's config and stores.")
    ] = Path("cvm-demo"),
    dataset: Annotated[str, typer.Option("--dataset", help="cdnow, online_retail or all.")] = "all",
    fmt: FormatOption = Format.table,
) -> None:
    """Run init → ingest → analyze on real data bundled with cvm and summarise it."""
    from importlib.resources import as_file, files

    names = list(_DATASETS) if dataset == "all" else [dataset]
    for name in names:
        if name not in _DATASETS:
            raise typer.BadParameter(
                f"expected cdnow, online_retail or all, got {dataset!r}", param_hint="--dataset"
            )
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / CONFIG_FILENAME
    if not config.exists():
        config.write_text(default_toml(), encoding="utf-8")
    settings = load_settings(config)
    results: list[dict[str, Any]] = []
    for name in names:
        filename, title = _DATASETS[name]
        store_path = directory / f"{name}.duckdb"
        with as_file(files("cvm.data") / filename) as data_path, Store(store_path) as store:
            with progress_bar(
                f"Ingesting {name}", enabled=fmt is Format.table and sys.stderr.isatty()
            ) as update:
                report = ingest(
                    store, data_path, table="transactions", settings=settings, progress=update
                )
            overview = analyze(store, settings)
        results.append(
            {
                "dataset": name,
                "title": title,
                "store": str(store_path),
                "ingest": report.to_dict(),
                "overview": overview.to_dict(),
            }
        )
        if fmt is Format.table:
            console.rule(f"[bold]{title}[/bold]")
            console.print(
                f"Ingested {report.read:,} rows: {report.loaded:,} loaded, "
                f"{report.quarantined:,} quarantined, {report.duplicates:,} duplicates"
                + (" (already in the store)" if report.already_ingested else "")
            )
            for reason, count in list(report.reasons.items())[:3]:
                console.print(f"  quarantined {count:,}: {reason}")
            _print_overview(overview, fmt)
            console.print(
                f"Store: {store_path}  —  try: cvm customer "
                f"{overview.top_customers[0]['customer_id']} --db {store_path}\n"
            )
    if fmt is Format.json:
        emit_json(results)
    elif fmt is Format.csv:
        emit_csv(
            [
                {
                    "dataset": r["dataset"],
                    "customers": r["overview"]["customers"],
                    "revenue": r["overview"]["revenue"],
                    "realized_value": r["overview"]["realized_value"],
                    "top_value_share": r["overview"]["top_value_share"],
                }
                for r in results
            ]
        )


def run() -> None:
    """Entry point of the ``cvm`` console script."""
    try:
        app()
    except CVMError as exc:
        err_console.print(f"Error: {exc}", markup=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    run()
