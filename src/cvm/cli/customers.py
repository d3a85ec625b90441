"""``cvm customer``, ``cvm segments`` and ``cvm kpis``: who is worth what, and where."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from cvm.cli.common import (
    ConfigOption,
    DbOption,
    FormatOption,
    RunOption,
    app,
    open_store,
    read_settings,
)
from cvm.cli.output import Format, emit_csv, emit_json, emit_machine
from cvm.cli.views import print_card, print_kpis, print_segments
from cvm.dynamics import customer_view, run_kpis, segment_overview


@app.command("customer")
def customer_command(
    customer_id: Annotated[
        str, typer.Argument(help="Any id of the customer (unified, or from another source).")
    ],
    run: RunOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Show one customer's card: values, tier, segment, stage, risk, satisfaction, history."""
    settings = read_settings(config)
    with open_store(db, settings, read_only=True, must_exist=True) as store:
        view = customer_view(store, customer_id, run_id=run)
    if fmt is Format.json:
        emit_json(view)
    elif fmt is Format.csv:
        emit_csv([view["figures"]])
    else:
        print_card(view)


class GroupBy(StrEnum):
    """Which grouping ``cvm segments`` shows."""

    all = "all"
    tier = "tier"
    stage = "stage"
    rfm = "rfm"


@app.command("segments")
def segments_command(
    by: Annotated[
        GroupBy, typer.Option("--by", help="tier, stage, rfm or all (default).")
    ] = GroupBy.all,
    run: RunOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Show value tiers, lifecycle stages and RFM segments with customers and value."""
    settings = read_settings(config)
    with open_store(db, settings, read_only=True, must_exist=True) as store:
        overview = segment_overview(store, run, top=settings.value.top_share)
    if fmt is Format.csv:
        keys = {"tier": "tiers", "stage": "stages", "rfm": "rfm"}
        emit_csv(
            [
                {"grouping": key, **group}
                for key, field in keys.items()
                if by in (GroupBy.all, key)
                for group in getattr(overview, field)
            ]
        )
    elif not emit_machine(overview.to_dict(), fmt):
        print_segments(overview, ("tier", "stage", "rfm") if by is GroupBy.all else (by.value,))


@app.command("kpis")
def kpis_command(
    run: RunOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Show relationship measures: NPS, CSAT, loyalty, retention, contribution by tier."""
    settings = read_settings(config)
    with open_store(db, settings, read_only=True, must_exist=True) as store:
        kpis = run_kpis(store, run, settings=settings)
    if fmt is Format.csv:
        emit_csv([c.__dict__ for c in kpis.contribution or []])
    elif not emit_machine(kpis.to_dict(), fmt):
        print_kpis(kpis)
