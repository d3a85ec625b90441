"""``cvm actions``: the playbook's actions and budgeted target lists."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

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
    parse_date,
    read_settings,
)
from cvm.cli.output import Format, console, emit_csv, emit_json, table
from cvm.config import Settings
from cvm.decisions.actions import RunActions, action_mix, actions_for_run
from cvm.decisions.targeting import (
    COLUMNS,
    TargetList,
    export_targets,
    record_targets,
    target_list,
)

actions_app = typer.Typer(
    name="actions",
    help="The playbook's actions per customer, and target lists under a budget.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(actions_app, name="actions")


def _bands(result: RunActions, settings: Any) -> dict[str, Any]:
    return {
        "at_risk_p_alive": settings.decisions.at_risk_p_alive,
        "high_potential_quantile": settings.decisions.high_potential_quantile,
        "high_potential": result.high_potential,
    }


def actions_overview(result: RunActions, settings: Settings) -> dict[str, Any]:
    """Summarise the playbook applied to a run: action mix, bands and the playbook's check."""
    mix = action_mix(result.table, result.playbook)
    return {
        "run_id": result.run_id,
        "as_of": result.as_of.isoformat(),
        "customers": sum(r["customers"] for r in mix["actions"]),
        "playbook": result.playbook.source,
        "bands": _bands(result, settings),
        "mix": mix,
        "check": result.playbook.check.to_dict(),
    }


def print_actions(data: dict[str, Any]) -> None:
    """Print the action mix of :func:`actions_overview`."""
    bands = data["bands"]
    console.print(
        f"[bold]Actions[/bold] run {escape(data['run_id'])} ({data['as_of']}): "
        f"{data['customers']:,} customers, playbook {escape(data['playbook'])}"
    )
    console.print(
        f"at risk: P(alive) below {bands['at_risk_p_alive']:g}; high potential: potential "
        f"value at least {maybe(bands['high_potential'], '{:,.2f}')} (the "
        f"{bands['high_potential_quantile']:g} quantile)"
    )
    columns = ["customers", "share", "total value", "value share"]

    def figures(row: dict[str, Any]) -> list[Any]:
        return [
            row["customers"],
            f"{row['customer_share']:.1%}",
            float(row["total_value"]),
            maybe(row["value_share"], "{:.1%}"),
        ]

    mix = data["mix"]
    for title, key, label in (
        ("By action", "action", "action"),
        ("By service level", "service_level", "service level"),
        ("By channel", "channel", "channel"),
    ):
        rows = [[r[key], *figures(r)] for r in mix[key + "s"]]
        console.print(table(title, [label, *columns], rows))
    console.print(
        table(
            "By rule (first match wins)",
            ["rule", "action", "service level", "channel", "customers", "total value"],
            [
                [
                    r["rule"],
                    r["action"],
                    r["service_level"],
                    r["channel"],
                    r["customers"],
                    float(r["total_value"]),
                ]
                for r in mix["rules"]
            ],
        )
    )
    check = data["check"]
    console.print(
        f"Playbook check: {check['segments']:,} segments, "
        + ("no gaps" if not check["gaps"] else f"gaps: {'; '.join(check['gaps'])}")
        + f"; {len(check['overlaps'])} overlaps (the earlier rule decides; "
        "--format json lists them)"
    )
    for rule in check["shadowed"]:
        console.print(f"[yellow]warning[/yellow]: rule {escape(rule)} never applies (shadowed)")


@actions_app.command("list")
def list_command(
    run: RunOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Show customers and value per action, service level, channel and playbook rule.

    Also the playbook's check: the segments it covers, its overlaps (later rules that
    an earlier one overrides) and shadowed rules; a playbook with gaps is an error that
    names them.
    """
    settings = read_settings(config)
    with open_store(db, settings, read_only=True, must_exist=True) as store:
        data = actions_overview(actions_for_run(store, settings, run_id=run), settings)
    if fmt is Format.json:
        emit_json(data)
    elif fmt is Format.csv:
        emit_csv(
            [
                {"grouping": grouping, "name": row.get(key), **_numbers(row)}
                for grouping, key in (
                    ("action", "action"),
                    ("service_level", "service_level"),
                    ("channel", "channel"),
                    ("rule", "rule"),
                )
                for row in data["mix"][grouping + "s"]
            ]
        )
    else:
        print_actions(data)


def _numbers(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("customers", "customer_share", "total_value", "value_share")
    return {k: row[k] for k in keys}


def _print_targets(targets: TargetList, data: dict[str, Any], top: int) -> None:
    t = targets
    console.print(
        f"[bold]Target list[/bold] {escape(t.campaign)}: action {escape(t.action)}, budget "
        f"{t.budget:,.2f}, run {escape(data['run_id'])} ({data['as_of']})"
    )
    console.print(
        f"{t.eligible:,} customers have the action, {t.profitable:,} with a positive expected "
        f"profit; chosen {t.selected:,}: {t.treatment:,} to contact (cost {t.spend:,.2f}, "
        f"expected incremental profit {t.expected_profit:,.2f}) and {t.control:,} held out "
        f"as the control group ({t.control_share:.0%}; their cost {t.held_out_cost:,.2f} "
        "is not spent)"
    )
    if t.selected and t.control_share > 0 and not t.control:
        console.print(
            f"[yellow]note[/yellow]: the control group is empty ({t.control_share:.0%} of "
            f"{t.selected} customers), so this campaign's effect cannot be measured"
        )
    console.print(
        f"response rate {t.response_rate:g} ({t.rate_source}), value at stake: "
        f"{t.value_at_stake.replace('_', ' ')}, seed {t.seed}"
    )
    rows = t.rows.head(top)
    if len(rows):
        console.print(
            table(
                f"Best {len(rows)} of {t.selected:,}",
                ["#", "customer", "group", "channel", "rule", "cost", "expected profit"],
                rows[
                    ["rank", "customer_id", "group", "channel", "rule", "cost", "expected_profit"]
                ].values.tolist(),
            )
        )
    if data.get("file"):
        console.print(f"Wrote {escape(data['file'])}")
    recorded = data.get("recorded")
    if recorded:
        console.print(
            f"Recorded {recorded['loaded']:,} actions (batch {escape(recorded['batch_id'])}): "
            f"read {recorded['read']:,} = loaded {recorded['loaded']:,} + quarantined "
            f"{recorded['quarantined']:,} + duplicates {recorded['duplicates']:,}"
        )
    else:
        console.print("Not recorded (--no-record)")


@actions_app.command("export")
def export_command(
    action: Annotated[
        str, typer.Option("--action", help="The action, e.g. retain, develop, win_back.")
    ],
    budget: Annotated[
        float, typer.Option("--budget", min=0.0, help="Most to spend on contacted customers.")
    ],
    control_share: Annotated[
        float | None,
        typer.Option(
            "--control-share",
            min=0.0,
            max=0.99,
            help="Share held out as a control group (default: [decisions] control_share).",
        ),
    ] = None,
    campaign: Annotated[
        str | None,
        typer.Option("--campaign", help="Campaign id (default: ACTION-YYYYMMDD)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the list to FILE.csv or FILE.parquet.", dir_okay=False),
    ] = None,
    no_record: Annotated[
        bool,
        typer.Option("--no-record", help="Do not record the list in the actions table."),
    ] = False,
    date: Annotated[
        str | None,
        typer.Option("--date", help="Campaign date YYYY-MM-DD, recorded as ts (default: today)."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed of the control group draw (default: from the campaign)."),
    ] = None,
    learned_rates: Annotated[
        bool,
        typer.Option(
            "--learned-rates",
            help="Use response rates measured by earlier campaigns' control groups, where known.",
        ),
    ] = False,
    top: Annotated[int, typer.Option("--top", min=0, help="Rows shown (table output).")] = 10,
    run: RunOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Choose the customers to contact for an action within a budget, with a control group.

    Customers the playbook gives the action are ranked by expected incremental profit
    per cost (response rate × value at stake − contact cost); those with a positive
    profit are taken until the budget is spent. A random, stratified share is held out
    as the control group. The list is written to --out and recorded in the actions
    table (group treatment or control, campaign, cost, channel) unless --no-record.
    """
    settings = read_settings(config)
    day = parse_date(date, "--date")
    if out is not None and out.suffix.lower() not in (".csv", ".parquet"):
        raise typer.BadParameter("expected a file name ending .csv or .parquet", param_hint="--out")
    with open_store(db, settings, read_only=no_record, must_exist=True) as store:
        result = actions_for_run(store, settings, run_id=run)
        known = sorted({r.action for r in result.playbook.rules})
        if action not in known:
            raise typer.BadParameter(
                f"the playbook has no action {action!r}; its actions: {', '.join(known)}",
                param_hint="--action",
            )
        rates = None
        if learned_rates:
            from cvm.decisions.uplift import learned_response_rates

            rates = learned_response_rates(store, settings)
        targets = target_list(
            result.table,
            action,
            budget,
            settings=settings.decisions,
            rates=rates,
            control_share=control_share,
            seed=seed,
            campaign=campaign,
            date=day,
        )
        data: dict[str, Any] = {
            "run_id": result.run_id,
            "as_of": result.as_of.isoformat(),
            **targets.to_dict(),
        }
        if out is not None:
            data["file"] = str(export_targets(targets, out))
        data["recorded"] = None if no_record else record_targets(store, targets, settings).to_dict()
    rows: list[dict[str, Any]] = json.loads(targets.rows.to_json(orient="records"))
    if fmt is Format.json:
        emit_json({**data, "rows": rows})
    elif fmt is Format.csv:
        if rows:
            emit_csv(rows)
        else:
            sys.stdout.write(",".join(COLUMNS) + "\n")
    else:
        _print_targets(targets, data, top)


def _effect(effect: Any, pattern: str) -> str:
    if effect is None:
        return "–"
    return (
        f"{pattern.format(effect.estimate)} "
        f"[{pattern.format(effect.low)}, {pattern.format(effect.high)}]"
    )


@actions_app.command("uplift")
def uplift_command(
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Measure each campaign's effect on retention and spend against its control group.

    For every campaign recorded in the actions table: the share of customers who buy in
    the window after the action and their spend, treatment minus control, with
    confidence intervals (Newcombe for retention, Welch for spend), and the incremental
    profit after the campaign's cost. See docs/uplift.md.
    """
    from cvm.decisions.uplift import campaign_uplift

    settings = read_settings(config)
    with open_store(db, settings, read_only=True, must_exist=True) as store:
        report = campaign_uplift(store, settings)
    data = report.to_dict()
    if fmt is Format.json:
        emit_json(data)
        return
    rows = [
        {
            "campaign": u.name,
            "treatment": u.treatment.customers,
            "control": u.control.customers,
            "retention_uplift": u.retention.estimate if u.retention else None,
            "spend_uplift": u.spend.estimate if u.spend else None,
            "incremental_profit": u.incremental_profit.estimate if u.incremental_profit else None,
        }
        for u in report.campaigns
    ]
    if fmt is Format.csv:
        emit_csv(rows)
        return
    level = f"{report.confidence:.0%}"
    console.print(
        table(
            f"Uplift per campaign ({report.window_days}-day window, {level} intervals)",
            ["campaign", "treated", "control", "retention", "spend / customer", "profit"],
            [
                (
                    escape(u.name),
                    u.treatment.customers,
                    u.control.customers,
                    _effect(u.retention, "{:+.1%}"),
                    _effect(u.spend, "{:+,.2f}"),
                    _effect(u.incremental_profit, "{:+,.0f}"),
                )
                for u in report.campaigns
            ],
        )
    )
    for u in report.campaigns:
        for note in u.notes:
            console.print(f"{u.name}: {note}", markup=False)


@actions_app.command("recommend")
def recommend_command(
    customer: Annotated[
        str | None, typer.Option("--customer", help="Only this customer (any of its ids).")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Rows shown (table output).")] = 20,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Recommend products each customer has not bought yet, from co-purchase affinity.

    Scores are the strongest rule's confidence from a product the customer bought
    (see docs/cross-sell.md); needs transactions with product ids.
    """
    from cvm.decisions.cross_sell import store_recommendations
    from cvm.dynamics import resolve_customer_id

    settings = read_settings(config)
    with open_store(db, settings, read_only=True, must_exist=True) as store:
        recommended = store_recommendations(store, settings=settings.decisions.cross_sell)
        if customer is not None:
            wanted = resolve_customer_id(store, customer)
            recommended = recommended.filter(recommended.customer_id == wanted)
        frame = store.to_arrow(recommended.order_by(["customer_id", "rank"])).to_pandas()
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    if fmt is Format.json:
        emit_json(rows)
    elif fmt is Format.csv:
        emit_csv(rows)
    else:
        shown = rows[:top]
        console.print(
            table(
                f"Recommendations ({len(shown)} of {len(rows):,})",
                ["customer", "rank", "product", "score", "because of"],
                [
                    (r["customer_id"], r["rank"], r["product_id"], r["score"], r["because"])
                    for r in shown
                ],
            )
        )
