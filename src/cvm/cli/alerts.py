"""``cvm alerts``: early warnings when valuable customers slip."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape

from cvm.cli.common import (
    ConfigOption,
    DbOption,
    FormatOption,
    RunOption,
    app,
    maybe,
    open_store,
    read_settings,
)
from cvm.cli.output import Format, console, emit_csv, emit_json, table
from cvm.dynamics.alerts import ALERT_COLUMNS, ALERT_RULES, AlertSummary, early_warnings


class Rule(StrEnum):
    """The alert rules (:data:`cvm.dynamics.alerts.ALERT_RULES`)."""

    tier_drop = "tier_drop"
    decline = "decline"
    p_alive = "p_alive"
    value_drop = "value_drop"
    detractor = "detractor"


def print_alerts(summary: AlertSummary, rows: list[dict[str, object]], top: int | None) -> None:
    """Print an alert summary and the top alerts."""
    console.print(
        f"[bold]Alerts[/bold] run {escape(summary.run_id)} ({summary.as_of.isoformat()}) "
        f"against {escape(summary.against)} ({summary.against_as_of.isoformat()}): "
        f"{summary.alerts:,} of {summary.customers:,} customers in both, value at risk "
        f"{maybe(summary.value_at_risk, '{:,.2f}')}"
    )
    console.print(
        f"({summary.new_customers:,} new and {summary.lost_customers:,} lost customers "
        "are not compared)"
    )
    console.print(
        table(
            "By rule (a customer can meet several)",
            ["rule", "alerts", "value at risk"],
            [(r, c["alerts"], float(c["value_at_risk"])) for r, c in summary.by_rule.items()],
        )
    )
    if not rows:
        return
    shown = "all alerts" if top is None or len(rows) == summary.alerts else f"top {len(rows)}"
    console.print(
        table(
            f"Alerts by value at risk ({shown})",
            ["#", "customer", "value at risk", "rules", "reasons"],
            [
                (r["rank"], r["customer_id"], r["value_at_risk"], r["rules"], r["reasons"])
                for r in rows
            ],
        )
    )


@app.command("alerts")
def alerts_command(
    run: RunOption = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="Earlier run to compare with (default: the run with the latest earlier as_of).",
        ),
    ] = None,
    rule: Annotated[
        list[Rule] | None,
        typer.Option(
            "--rule",
            help=(
                "Only this rule (repeatable; default: [dynamics.alerts] rules): "
                + ", ".join(ALERT_RULES)
                + "."
            ),
        ),
    ] = None,
    top: Annotated[
        int,
        typer.Option("--top", min=0, help="Show the N alerts with most value at risk (0 = all)."),
    ] = 20,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Warn of valuable customers who slipped since an earlier run, ranked by value at risk.

    Rules: a high-tier customer dropped a tier, left growth or maturity for decline or
    departure, P(alive) fell below a threshold, total value fell by more than a share,
    or a high-tier customer became a detractor ([dynamics.alerts] in cvm.toml).
    """
    settings = read_settings(config)
    limit = top or None
    with open_store(db, settings, read_only=True, must_exist=True) as store:
        warnings = early_warnings(
            store,
            run,
            against=against,
            settings=settings,
            rules=[r.value for r in rule] if rule else None,
        )
        rows = warnings.rows(limit)
    if fmt is Format.json:
        emit_json({"summary": warnings.summary.to_dict(), "alerts": rows})
    elif fmt is Format.csv:
        if rows:
            emit_csv(rows)
        else:
            sys.stdout.write(",".join(ALERT_COLUMNS) + "\n")
    else:
        print_alerts(warnings.summary, rows, limit)
