"""``cvm demo``: the whole job on real data bundled with cvm.

CDNOW (transactions only) and UCI Online Retail, whose real customers get synthetic,
clearly labelled relationship data (customers with contact details, a call-centre
system's records, service interactions, NPS surveys and referrals; see
docs/synthetic-data.md), so the demo shows identity resolution, the three values, tiers,
lifecycle stages and the relationship measures.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cvm.cli.actions import actions_overview, print_actions
from cvm.cli.alerts import print_alerts
from cvm.cli.assess import print_assessment
from cvm.cli.common import FormatOption, app
from cvm.cli.migration import print_migration
from cvm.cli.output import Format, console, emit_csv, emit_json, progress_bar
from cvm.cli.views import print_kpis, print_overview, print_segments
from cvm.config import CONFIG_FILENAME, Settings, default_toml, load_settings, toml_value
from cvm.data import ONLINE_RETAIL_NON_PRODUCTS
from cvm.decisions.actions import actions_for_run
from cvm.decisions.assessment import AssessmentInputs, assess, measure
from cvm.decisions.targeting import export_targets, target_list
from cvm.dynamics import analyze, migration_matrix, run_kpis, segment_overview
from cvm.dynamics.alerts import early_warnings
from cvm.ingest import IngestReport, ingest
from cvm.store import Store

_DATASETS = {
    "cdnow": ("cdnow_master.parquet", "CDNOW first-time buyers, 1997-1998"),
    "online_retail": ("online_retail.parquet", "UCI Online Retail, 2010-2011 (CC BY 4.0)"),
}

#: The earlier snapshot of each dataset, compared with the latest (migration, alerts).
_EARLIER = {"cdnow": dt.date(1998, 3, 31), "online_retail": dt.date(2011, 9, 30)}

#: The demo's target list: an action, a budget and the file it is written to.
_TARGET_ACTION, _TARGET_BUDGET = "retain", 2_500.0

#: Assessment inputs the data cannot measure: market growth, and sales & marketing
#: expense as a share of the measured annual revenue (illustrative figures).
_MARKET_GROWTH, _EXPENSE_SHARE = 0.05, 0.10

#: The demo's one change to the default settings: Online Retail is a UK shop, so
#: national phone numbers are British.
_DEMO_COUNTRY = '"44"'

#: Synthetic tables loaded for Online Retail, in an order where referenced ids exist.
_SYNTHETIC_TABLES = ("customers", "identities", "interactions", "surveys", "referrals")


def _demo_config(path: Path) -> None:
    default = default_toml()
    generic = default[default.index("exclude_products = ") :].split("\n", 1)[0]
    text = default.replace(
        'default_country_code = ""',
        f"default_country_code = {_DEMO_COUNTRY}  # the demo's UK shop (Online Retail)",
    ).replace(
        generic,
        f"exclude_products = {toml_value(list(ONLINE_RETAIL_NON_PRODUCTS))}"
        "  # Online Retail's codes that are not products",
    )
    path.write_text(text, encoding="utf-8")


def _synthetic_files(directory: Path) -> dict[str, Path]:
    """Generate (once) the labelled synthetic relationship data for Online Retail."""
    from cvm.data.synthetic import (
        generate_relationship_data,
        online_retail_transactions,
        write_synthetic,
    )

    folder = directory / "synthetic"
    expected = {name: folder / f"synthetic_{name}.csv" for name in _SYNTHETIC_TABLES}
    if all(path.exists() for path in expected.values()):
        return expected
    data = generate_relationship_data(
        online_retail_transactions(), source="UCI Online Retail (bundled with cvm)"
    )
    written = write_synthetic(data, folder)
    return {name: written[name] for name in _SYNTHETIC_TABLES}


def _load(
    store: Store, name: str, settings: Settings, directory: Path, fmt: Format
) -> list[IngestReport]:
    from importlib.resources import as_file, files

    filename, _ = _DATASETS[name]
    show = fmt is Format.table and sys.stderr.isatty()
    with as_file(files("cvm.data") / filename) as data_path:
        with progress_bar(f"Ingesting {name}", enabled=show) as update:
            reports = [
                ingest(store, data_path, table="transactions", settings=settings, progress=update)
            ]
    if name == "online_retail":
        for table, path in _synthetic_files(directory).items():
            reports.append(ingest(store, path, table=table, settings=settings))
    return reports


def _print_reports(reports: list[IngestReport]) -> None:
    for report in reports:
        label = "" if report.table == "transactions" else f" of {report.table}"
        if "synthetic_" in report.source:
            label += " (synthetic)"
        line = (
            f"Ingested {report.read:,} rows{label}: {report.loaded:,} loaded, "
            f"{report.quarantined:,} quarantined, {report.duplicates:,} duplicates"
        )
        if report.unknown_customers:
            line += f", {report.unknown_customers:,} naming unknown customers"
        if report.already_ingested:
            line += " (already in the store)"
        console.print(line, markup=False)
        for reason, count in list(report.reasons.items())[:3]:
            console.print(f"  quarantined {count:,}: {reason}", markup=False)


@app.command("demo")
def demo_command(
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder for the demo's config, data and stores.")
    ] = Path("cvm-demo"),
    dataset: Annotated[str, typer.Option("--dataset", help="cdnow, online_retail or all.")] = "all",
    fmt: FormatOption = Format.table,
) -> None:
    """Run the whole job on real data bundled with cvm: ingest, analyze, segments, KPIs."""
    names = list(_DATASETS) if dataset == "all" else [dataset]
    for name in names:
        if name not in _DATASETS:
            raise typer.BadParameter(
                f"expected cdnow, online_retail or all, got {dataset!r}", param_hint="--dataset"
            )
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / CONFIG_FILENAME
    if not config.exists():
        _demo_config(config)
    settings = load_settings(config)
    results: list[dict[str, Any]] = []
    for name in names:
        _, title = _DATASETS[name]
        store_path = directory / f"{name}.duckdb"
        with Store(store_path) as store:
            reports = _load(store, name, settings, directory, fmt)
            earlier = analyze(store, settings, as_of=_EARLIER[name])
            overview = analyze(store, settings)
            segments = segment_overview(store, overview.run_id, top=settings.value.top_share)
            kpis = run_kpis(store, overview.run_id, settings=settings)
            moves = migration_matrix(store, earlier.run_id, overview.run_id, by="tier")
            projection = moves.project(settings.dynamics.migration.projection_periods)
            warnings = early_warnings(
                store, overview.run_id, against=earlier.run_id, settings=settings
            )
            alert_rows = warnings.rows(5)
            alert_summary = warnings.summary
            assigned = actions_for_run(store, settings, run_id=overview.run_id)
            actions = actions_overview(assigned, settings)
            targets = target_list(
                assigned.table,
                _TARGET_ACTION,
                _TARGET_BUDGET,
                settings=settings.decisions,
                campaign=f"demo-{_TARGET_ACTION}",
                date=overview.as_of,
            )
            target_file = export_targets(
                targets, directory / f"targets_{name}_{_TARGET_ACTION}.csv"
            )
            measured = measure(store, overview.run_id, settings=settings)
            given = AssessmentInputs(
                market_growth=_MARKET_GROWTH,
                expense=_EXPENSE_SHARE * measured.revenue if measured.revenue else None,
            )
            assessment = assess(given, measured)
        results.append(
            {
                "dataset": name,
                "title": title,
                "store": str(store_path),
                "ingest": [r.to_dict() for r in reports],
                "earlier": earlier.to_dict(),
                "overview": overview.to_dict(),
                "segments": segments.to_dict(),
                "kpis": kpis.to_dict(),
                "migration": moves.to_dict(),
                "projection": projection.to_dict(),
                "alerts": {"summary": alert_summary.to_dict(), "top": alert_rows},
                "actions": actions,
                "targets": {**targets.to_dict(), "file": str(target_file)},
                "assessment": assessment.to_dict(),
            }
        )
        if fmt is Format.table:
            console.rule(f"[bold]{title}[/bold]")
            _print_reports(reports)
            print_overview(overview)
            print_segments(segments, ("tier", "stage"))
            print_kpis(kpis)
            console.rule(f"Since the snapshot of {earlier.as_of.isoformat()}")
            print_migration(moves, projection, values=False)
            print_alerts(alert_summary, alert_rows, 5)
            console.rule("What to do")
            print_actions(actions)
            console.print(
                f"Target list '{_TARGET_ACTION}' within {_TARGET_BUDGET:,.0f}: "
                f"{targets.treatment:,} to contact, {targets.control:,} held out as control, "
                f"expected incremental profit {targets.expected_profit:,.2f} → {target_file} "
                "(not recorded; `cvm actions export` records lists)",
                markup=False,
            )
            print_assessment(assessment)
            console.print(
                f"(assessment: market growth {_MARKET_GROWTH:.0%} and sales & marketing "
                f"expense {_EXPENSE_SHARE:.0%} of revenue are illustrative inputs)",
                markup=False,
            )
            console.print(
                f"Store: {store_path}  —  try: cvm customer "
                f"{overview.top_customers[0]['customer_id']} --db {store_path}\n",
                markup=False,
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
                    "potential_value": r["overview"]["potential_value"],
                    "influence_value": r["overview"]["influence_value"],
                    "total_value": r["overview"]["total_value"],
                    "top_value_share": r["overview"]["top_value_share"],
                }
                for r in results
            ]
        )
