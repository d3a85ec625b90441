"""Human-readable renderings of the library's results (the ``--format table`` output)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cvm.cli.common import maybe
from cvm.cli.output import console, table
from cvm.dynamics import RunOverview, SegmentOverview
from cvm.segments.relationship import RelationshipKpis

__all__ = ["print_card", "print_kpis", "print_overview", "print_segments"]


def _money(value: float | None) -> str:
    return maybe(value, "{:,.2f}")


def _share(value: float | None) -> str:
    return maybe(value, "{:.1%}")


def print_overview(overview: RunOverview) -> None:
    """Print a run's headline figures: values, concentration, models, top customers."""
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
                ("cost to serve", overview.cost_to_serve),
                ("realized value (profit − cost to serve)", overview.realized_value),
                ("potential value", overview.potential_value),
                ("influence value (referrals)", overview.influence_value),
                ("total value", overview.total_value),
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


def _group_rows(groups: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            g["name"] if g["name"] is not None else "–",
            g["customers"],
            _share(g["customer_share"]),
            _money(g["total_value"]),
            _share(g["value_share"]),
            _money(g["mean_value"]),
        )
        for g in groups
    ]


def print_segments(overview: SegmentOverview, by: Sequence[str] = ("tier", "stage", "rfm")) -> None:
    """Print tiers, lifecycle stages and RFM segments (those in ``by``) with their value."""
    v = overview.values
    c = overview.concentration
    console.print(
        f"[bold]Run {overview.run_id}[/bold] as of {overview.as_of.isoformat()}: "
        f"{overview.customers:,} customers, total value {_money(v['total_value'])} = "
        f"realized {_money(v['realized_value'])} + potential {_money(v['potential_value'])} "
        f"+ influence {_money(v['influence_value'])}"
    )
    if c.get("gini") is not None:
        console.print(
            f"The top {c['top_share']:.0%} of customers bring {_share(c['top_value_share'])} "
            f"of total value (Gini {c['gini']:.3f})."
        )
    columns = ["customers", "share", "total value", "value share", "mean value"]
    sections = {
        "tier": ("Value tiers", overview.tiers),
        "stage": ("Lifecycle stages", overview.stages),
        "rfm": ("RFM segments", overview.rfm),
    }
    for key, (title, groups) in sections.items():
        if key in by:
            console.print(table(title, [key, *columns], _group_rows(groups)))


def print_kpis(kpis: RelationshipKpis) -> None:
    """Print the relationship measures: satisfaction, loyalty, retention, contribution."""
    console.print(f"[bold]Relationship measures[/bold] as of {kpis.as_of.isoformat()}")
    rows: list[tuple[str, str]] = []
    s = kpis.satisfaction
    if s is not None:
        nps = s.nps
        if nps.nps is not None:
            interval = (
                f"; 95 % {nps.ci_low:+.1f} to {nps.ci_high:+.1f}"
                if nps.ci_low is not None and nps.ci_high is not None
                else ""
            )
            rows.append(
                (
                    f"NPS (latest answer, last {kpis.nps_window_months} months)",
                    f"{nps.nps:+.1f} ({nps.promoters:,} promoters, {nps.detractors:,} "
                    f"detractors of {nps.n:,}{interval})",
                )
            )
        if s.csat_mean is not None:
            rows.append(
                (
                    "CSAT",
                    f"{s.csat_mean:.2f} of 5, {_share(s.csat_satisfied_share)} satisfied (4–5)",
                )
            )
    loyalty = kpis.loyalty
    rows += [
        ("repeat-purchase rate", _share(loyalty.repeat_rate)),
        ("purchase occasions per customer-year", maybe(loyalty.purchase_frequency, "{:.2f}")),
        ("mean tenure (years)", maybe(loyalty.mean_tenure_years, "{:.2f}")),
    ]
    r = kpis.retention
    rows += [
        (f"retention {r.start.isoformat()} → {r.end.isoformat()}", _share(r.retention_rate)),
        ("churn", _share(r.churn_rate)),
    ]
    if kpis.high_value_detractors is not None:
        rows.append(
            (
                f"high-value detractors ({', '.join(kpis.high_value_tiers or [])})",
                f"{kpis.high_value_detractors:,} holding {_money(kpis.high_value_detractor_value)}",
            )
        )
    console.print(table("Satisfaction, loyalty, retention", ["", "value"], rows))
    if kpis.contribution:
        console.print(
            table(
                "Contribution by tier",
                ["tier", "customers", "realized value", "share", "total value", "share"],
                [
                    (
                        t.tier,
                        t.customers,
                        _money(t.realized_value),
                        _share(t.realized_share),
                        _money(t.total_value),
                        _share(t.total_share),
                    )
                    for t in kpis.contribution
                ],
            )
        )


def print_card(view: dict[str, Any]) -> None:
    """Print a customer card: who they are, what they are worth, where they stand."""
    f = view["figures"]
    unit = view["time_unit"]
    asked = view["asked_id"]
    also = f" (asked for {asked})" if asked != view["customer_id"] else ""
    console.print(
        f"[bold]Customer {view['customer_id']}[/bold]{also}  "
        f"(run {view['run_id']}, as of {view['as_of']})",
        markup=True,
    )
    console.print(
        f"{f.get('tier_name') or '–'} tier · {f.get('lifecycle_stage') or '–'} · "
        f"RFM {f.get('rfm_code') or '–'} {f.get('rfm_segment') or ''}",
        markup=False,
    )
    if f.get("lifecycle_reason"):
        console.print(f"Stage: {f['lifecycle_reason']}", markup=False)
    console.print(
        table(
            "Value",
            ["", "value"],
            [
                ("realized value (profit − cost to serve)", _money(f["realized_value"])),
                ("  of which cost to serve", _money(f.get("cost_to_serve"))),
                ("potential value (CLV)", _money(f.get("potential_value"))),
                ("influence value (referrals)", _money(f.get("influence_value"))),
                ("total value", _money(f.get("total_value"))),
                ("P(alive)", maybe(f.get("p_alive"), "{:.3f}")),
                (
                    "expected purchases, next 90 days",
                    maybe(f.get("expected_purchases_90d"), "{:.2f}"),
                ),
                ("expected spend per purchase", _money(f.get("expected_spend"))),
                ("NPS (latest)", maybe(f.get("nps"), "{:.0f}") + f" {f.get('nps_category') or ''}"),
                ("CSAT (mean)", maybe(f.get("csat"), "{:.2f}")),
            ],
        )
    )
    console.print(
        table(
            "Behaviour",
            ["", "value"],
            [
                ("first purchase", f["first_purchase"]),
                ("last purchase", f["last_purchase"]),
                ("purchase occasions", f["occasions"]),
                ("repeat purchases (frequency)", f["frequency"]),
                (f"recency ({unit}s)", round(f["recency"], 2)),
                (f"age T ({unit}s)", round(f["t"], 2)),
                ("revenue (net of returns)", _money(f["revenue"])),
                ("returns", _money(f["returns"])),
                ("value trend (recent vs earlier)", maybe(f.get("trend"), "{:+.0%}")),
                ("referred customers (direct / all levels)", _referred(f)),
            ],
        )
    )
    if len(view["ids"]) > 1 or view["identities"]:
        console.print(
            table(
                "Identities",
                ["id", "linked by"],
                [(i["id"], i["rule"]) for i in view["ids"]],
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
    if view["recent_interactions"]:
        console.print(
            table(
                "Recent interactions",
                ["when", "kind", "channel", "cost", "CSAT", "resolved"],
                [
                    (
                        i["ts"],
                        i["kind"],
                        i["channel"] or "",
                        maybe(i["cost"], "{:,.2f}"),
                        maybe(i["csat"], "{:.0f}"),
                        {True: "yes", False: "no"}.get(i["resolved"], ""),
                    )
                    for i in view["recent_interactions"]
                ],
            )
        )
    for r in view["referred_by"][:1]:
        console.print(f"Referred by {r['referrer_id']}", markup=False)


def _referred(f: dict[str, Any]) -> str:
    direct, total = f.get("referred_customers"), f.get("referred_total")
    return f"{direct or 0} / {total or 0}"
