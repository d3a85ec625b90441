"""Relationship measures: contribution, value × satisfaction, all KPIs for one run.

The library part of ``cvm kpis``. Table functions take Ibis tables and return Ibis
expressions, executed only by the caller, so they run on DuckDB, PySpark or any other
Ibis backend; :func:`relationship_kpis` executes a few small aggregates and returns a
dataclass with ``to_dict()``. Everything is computed as of a date: only events on or
before ``as_of`` count. Satisfaction (NPS, CSAT) lives in
:mod:`cvm.segments.satisfaction`, whose public names are re-exported here; loyalty,
cohorts and retention live in :mod:`cvm.segments.cohorts`; :func:`relationship_kpis`
combines them all for one run.

Definitions (in full in ``docs/kpis.md``)
-----------------------------------------
Contribution
    Each tier's share of customers, realized and total value.
Value × satisfaction grid
    Tier × NPS category (of each customer's latest answer in the NPS window, see
    :mod:`cvm.segments.satisfaction`) with customers and value per cell, cells of
    high-value tiers × detractor flagged.

References
----------
Zeithaml, V. A., Rust, R. T. & Lemon, K. N. (2001). "The customer pyramid: creating and
serving profitable customers". California Management Review 43(4): 118–142.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Final

import ibis

from cvm.config import RelationshipSettings
from cvm.errors import DataError
from cvm.segments.cohorts import (
    CohortRetention,
    Loyalty,
    RetentionRate,
    _plain,
    _require,
    _rows,
    cohort_retention,
    cohorts_from_matrix,
    default_periods,
    loyalty_summary,
    retention_rates,
)
from cvm.segments.satisfaction import (
    _SURVEY_COLUMNS,
    NPS_CATEGORIES,
    NpsScore,
    SatisfactionSummary,
    _window,
    customer_satisfaction,
    nps_score,
    satisfaction_summary,
)

__all__ = [
    "NO_ANSWER",
    "NPS_CATEGORIES",
    "GridCell",
    "NpsScore",
    "RelationshipKpis",
    "SatisfactionSummary",
    "TierContribution",
    "customer_satisfaction",
    "high_value_detractors",
    "nps_score",
    "relationship_kpis",
    "satisfaction_summary",
    "tier_contribution",
    "value_satisfaction_grid",
]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)

#: The grid's category of customers without an NPS answer (in the window).
NO_ANSWER: Final[str] = "no answer"
#: How many of the best tiers count as high value when none are named.
DEFAULT_HIGH_VALUE_TIERS: Final[int] = 2


# -- contribution and the value × satisfaction grid ------------------------------------
def _share(part: Any, whole: Any) -> Any:
    """``part / whole``, null when ``whole`` is 0 (Spark's ANSI mode would raise)."""
    return (whole != 0).ifelse(part.cast("float64") / whole.cast("float64"), ibis.null("float64"))


def tier_contribution(
    customers: Table,
    *,
    tier: str = "tier_name",
    realized: str = "realized_value",
    total: str | None = "total_value",
) -> Table:
    """Each tier's share of customers, of realized value (profit) and of total value.

    Parameters
    ----------
    customers
        One row per customer with ``customer_id``, the tier column and the value
        columns (tiers come from :mod:`cvm.segments` tiers or any other grouping).
    tier, realized, total
        Column names; ``total=None`` leaves total value out.

    Returns
    -------
    Table
        One row per tier: ``tier``, ``customers``, ``customer_share``,
        ``realized_value``, ``realized_share`` and, with ``total``, ``total_value``
        and ``total_share``. Shares are of the sum over all tiers (null when that is
        0); with negative values a tier's share can exceed 1.

    Raises
    ------
    SchemaError
        If a named column is missing.
    """
    _require(customers, ("customer_id", tier, realized, *([total] if total else [])), "customers")
    values = {"realized_value": customers[realized].cast("float64")}
    if total:
        values["total_value"] = customers[total].cast("float64")
    grouped = customers.group_by(tier=customers[tier].cast("string")).aggregate(
        customers=customers.count(), **{name: value.sum() for name, value in values.items()}
    )
    shares = {
        "customer_share": _share(grouped.customers, grouped.customers.sum().over()),
        "realized_share": _share(grouped.realized_value, grouped.realized_value.sum().over()),
    }
    if total:
        shares["total_share"] = _share(grouped.total_value, grouped.total_value.sum().over())
    return grouped.mutate(**shares).select(
        "tier",
        "customers",
        "customer_share",
        "realized_value",
        "realized_share",
        *(["total_value", "total_share"] if total else []),
    )


def _graded(
    customers: Table,
    satisfaction: Table,
    *,
    tier: str,
    value: str,
    high_value_tiers: Sequence[str] | None,
    tier_order: Sequence[str] | None,
    answered_since: dt.date | None,
) -> Table:
    """Per customer: tier, value, NPS category (or no answer) and the high-value flag."""
    _require(customers, ("customer_id", tier, value), "customers")
    _require(satisfaction, ("customer_id", "nps", "nps_category", "nps_date"), "satisfaction")
    base = customers.select(
        customer_id=customers.customer_id.cast("string"),
        tier=customers[tier].cast("string"),
        value=customers[value].cast("float64"),
    )
    sat = satisfaction.select(
        customer_id=satisfaction.customer_id.cast("string"),
        nps=satisfaction.nps,
        nps_date=satisfaction.nps_date,
        nps_category=satisfaction.nps_category,
    )
    if answered_since is not None:
        sat = sat.filter(sat.nps_date > ibis.date(answered_since))
    joined = base.left_join(sat, "customer_id")
    graded = joined.select(
        "customer_id",
        "tier",
        "value",
        "nps",
        "nps_date",
        nps_category=joined.nps_category.fill_null(NO_ANSWER),
    )
    if high_value_tiers:
        chosen: Sequence[str] | None = list(high_value_tiers)
    elif tier_order:
        chosen = list(tier_order)[:DEFAULT_HIGH_VALUE_TIERS]
    else:
        chosen = None
    if chosen is not None:
        return graded.mutate(high_value=graded.tier.isin(chosen))
    means = base.group_by("tier").aggregate(mean_value=base.value.mean())
    ranked = means.select("tier", rank=ibis.dense_rank().over(order_by=ibis.desc(means.mean_value)))
    flagged = graded.left_join(ranked, "tier")
    return flagged.select(*graded.columns, high_value=flagged["rank"] < DEFAULT_HIGH_VALUE_TIERS)


def value_satisfaction_grid(
    customers: Table,
    satisfaction: Table,
    *,
    tier: str = "tier_name",
    value: str = "total_value",
    high_value_tiers: Sequence[str] | None = None,
    tier_order: Sequence[str] | None = None,
    answered_since: dt.date | None = None,
) -> Table:
    """Tier × NPS category: customers and value per cell, high-value detractors flagged.

    Parameters
    ----------
    customers
        One row per customer with ``customer_id``, the tier and value columns.
    satisfaction
        :func:`customer_satisfaction` (``customer_id``, ``nps``, ``nps_category``,
        ``nps_date``).
    tier, value
        Column names in ``customers``.
    high_value_tiers
        Tiers counted as high value. When empty: the first two of ``tier_order``
        (tier names, best first) if given, else the two tiers with the highest mean
        value per customer.
    tier_order
        Tier names, best first (e.g. ``segments.tiers.names``).
    answered_since
        Answers on or before this date count as no answer (the NPS window's start).

    Returns
    -------
    Table
        Every tier × {promoter, passive, detractor, no answer}, empty cells included:
        ``tier``, ``nps_category``, ``customers``, ``customer_share`` (of all
        customers), ``value``, ``value_share`` (of all value; null when it is 0),
        ``high_value`` and ``high_value_detractor``.

    Raises
    ------
    SchemaError
        If a required column is missing.
    """
    graded = _graded(
        customers,
        satisfaction,
        tier=tier,
        value=value,
        high_value_tiers=high_value_tiers,
        tier_order=tier_order,
        answered_since=answered_since,
    )
    counts = graded.group_by("tier", "nps_category").aggregate(
        customers=graded.count(), value=graded.value.sum()
    )
    tiers = graded.group_by("tier").aggregate(high_value=graded.high_value.max())
    categories = ibis.memtable(
        {"nps_category": [*NPS_CATEGORIES, NO_ANSWER]}, schema={"nps_category": "string"}
    )
    cells = tiers.cross_join(categories)
    joined = cells.left_join(counts, ["tier", "nps_category"])
    customers_in = joined.customers.fill_null(0).cast("int64")
    value_in = joined.value.fill_null(0.0)
    grid = joined.select(
        tier=joined.tier,
        nps_category=joined.nps_category,
        customers=customers_in,
        value=value_in,
        high_value=joined.high_value.fill_null(False),
    )
    return grid.select(
        "tier",
        "nps_category",
        "customers",
        customer_share=_share(grid.customers, grid.customers.sum().over()),
        value=grid.value,
        value_share=_share(grid.value, grid.value.sum().over()),
        high_value=grid.high_value,
        high_value_detractor=grid.high_value & (grid.nps_category == NPS_CATEGORIES[2]),
    )


def high_value_detractors(
    customers: Table,
    satisfaction: Table,
    *,
    tier: str = "tier_name",
    value: str = "total_value",
    high_value_tiers: Sequence[str] | None = None,
    tier_order: Sequence[str] | None = None,
    answered_since: dt.date | None = None,
) -> Table:
    """List the customers of high-value tiers whose latest NPS answer is a detractor's.

    Parameters are those of :func:`value_satisfaction_grid`.

    Returns
    -------
    Table
        ``customer_id``, ``tier``, ``value``, ``nps`` and ``nps_date``: a service
        recovery list (Zeithaml, Rust & Lemon 2001).
    """
    graded = _graded(
        customers,
        satisfaction,
        tier=tier,
        value=value,
        high_value_tiers=high_value_tiers,
        tier_order=tier_order,
        answered_since=answered_since,
    )
    chosen = graded.filter(graded.high_value & (graded.nps_category == NPS_CATEGORIES[2]))
    return chosen.select("customer_id", "tier", "value", "nps", "nps_date")


# -- everything for one run ------------------------------------------------------------
@dataclass(frozen=True)
class TierContribution:
    """One tier's contribution (a row of :func:`tier_contribution`)."""

    tier: str
    customers: int
    customer_share: float | None
    realized_value: float
    realized_share: float | None
    total_value: float | None = None
    total_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return dict(_plain(asdict(self)))


@dataclass(frozen=True)
class GridCell:
    """One cell of :func:`value_satisfaction_grid`."""

    tier: str
    nps_category: str
    customers: int
    customer_share: float | None
    value: float
    value_share: float | None
    high_value: bool
    high_value_detractor: bool

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return dict(_plain(asdict(self)))


@dataclass(frozen=True)
class RelationshipKpis:
    """The relationship measures of one run (``cvm kpis``).

    ``retention`` is the last 12 months to ``as_of``; ``retention_by_year`` one entry
    per calendar year (the last one up to ``as_of``). ``satisfaction`` is ``None``
    without surveys or interactions; ``contribution``, ``grid`` and the high-value
    figures are ``None`` without tiers (the grid also without satisfaction data).
    Tiers are listed best first.
    """

    as_of: dt.date
    nps_window_months: int
    activity_window_months: int
    loyalty: Loyalty
    retention: RetentionRate
    retention_by_year: list[RetentionRate]
    cohorts: list[CohortRetention]
    satisfaction: SatisfactionSummary | None = None
    contribution: list[TierContribution] | None = None
    grid: list[GridCell] | None = None
    high_value_tiers: list[str] | None = None
    high_value_detractors: int | None = None
    high_value_detractor_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output): dates as ISO text, NaN as null."""
        return dict(_plain(asdict(self)))


def _tier_rank(
    contribution: list[TierContribution], tier_order: Sequence[str] | None
) -> dict[str, int]:
    """Tiers best first: by ``tier_order``, then by mean value per customer."""
    order = {name: i for i, name in enumerate(tier_order or [])}

    def mean(c: TierContribution) -> float:
        total = c.total_value if c.total_value is not None else c.realized_value
        return total / c.customers if c.customers else -math.inf

    ranked = sorted(contribution, key=lambda c: (order.get(c.tier, len(order)), -mean(c)))
    return {c.tier: i for i, c in enumerate(ranked)}


def relationship_kpis(
    transactions: Table,
    customers: Table,
    *,
    as_of: dt.date,
    surveys: Table | None = None,
    interactions: Table | None = None,
    settings: RelationshipSettings | None = None,
    tier: str | None = "tier_name",
    value: str | None = "total_value",
    realized: str = "realized_value",
    tier_order: Sequence[str] | None = None,
) -> RelationshipKpis:
    """Compute every relationship measure for one ``as_of`` date.

    Parameters
    ----------
    transactions
        Canonical transactions (cohorts and retention).
    customers
        One row per customer: ``occasions``, ``first_purchase``, ``last_purchase``
        (loyalty) and, for contribution and the grid, the tier and value columns — a
        run's ``customer_snapshots`` joined with its tiers.
    as_of
        The date of the figures.
    surveys, interactions
        Canonical surveys and interactions, if any (satisfaction and the grid).
    settings
        Windows and high-value tiers; defaults when ``None``.
    tier
        Tier column of ``customers``; ``None`` leaves contribution and grid out.
    value
        Total value column (grid; contribution's total share); ``None`` uses
        ``realized`` for the grid and leaves total value out of the contribution.
    realized
        Realized value column (contribution).
    tier_order
        Tier names, best first (e.g. ``settings.segments.tiers.names``): orders the
        tiers and names the high-value ones when ``settings`` does not.

    Returns
    -------
    RelationshipKpis
        The measures; runs about eight small aggregate queries.

    Raises
    ------
    DataError
        If there is no transaction on or before ``as_of``.
    SchemaError
        If a required column is missing.
    """
    settings = settings or RelationshipSettings()
    activity = settings.activity_window_months
    loyalty = loyalty_summary(customers, as_of=as_of, activity_months=activity)
    occasions = _window(transactions, as_of=as_of)
    (first,) = _rows(occasions.aggregate(first_day=occasions.ts.min().date()))
    if first["first_day"] is None:
        raise DataError(f"no transactions on or before {as_of.isoformat()}")
    periods = default_periods(as_of=as_of, first_day=first["first_day"])
    rates = {
        row["period"]: RetentionRate.from_row(row)
        for row in _rows(retention_rates(transactions, periods, activity_months=activity))
    }
    cohorts = cohorts_from_matrix(_rows(cohort_retention(transactions, as_of=as_of)))

    satisfaction = per_customer = None
    if surveys is not None or interactions is not None:
        if surveys is None:
            surveys = ibis.memtable(ibis.schema(_SURVEY_COLUMNS).to_pyarrow().empty_table())
        satisfaction = satisfaction_summary(
            surveys, interactions, as_of=as_of, window_months=settings.nps_window_months
        )
        per_customer = customer_satisfaction(surveys, interactions, as_of=as_of)

    kpis = RelationshipKpis(
        as_of=as_of,
        nps_window_months=settings.nps_window_months,
        activity_window_months=activity,
        loyalty=loyalty,
        retention=rates[periods[0].label],
        retention_by_year=[rates[p.label] for p in periods[1:]],
        cohorts=cohorts,
        satisfaction=satisfaction,
    )
    if tier is None:
        return kpis
    contribution = [
        TierContribution(**row)
        for row in _rows(tier_contribution(customers, tier=tier, realized=realized, total=value))
    ]
    rank = _tier_rank(contribution, tier_order)
    contribution.sort(key=lambda c: rank[c.tier])
    if per_customer is None or satisfaction is None:
        return replace(kpis, contribution=contribution)
    grid_rows = _rows(
        value_satisfaction_grid(
            customers,
            per_customer,
            tier=tier,
            value=value or realized,
            high_value_tiers=settings.high_value_tiers,
            tier_order=tier_order,
            answered_since=satisfaction.since,
        )
    )
    order = {name: i for i, name in enumerate((*NPS_CATEGORIES, NO_ANSWER))}
    grid = sorted(
        (GridCell(**row) for row in grid_rows),
        key=lambda cell: (rank.get(cell.tier, len(rank)), order[cell.nps_category]),
    )
    detractors = [cell for cell in grid if cell.high_value_detractor]
    return replace(
        kpis,
        contribution=contribution,
        grid=grid,
        high_value_tiers=sorted(
            {cell.tier for cell in grid if cell.high_value}, key=lambda t: rank.get(t, len(rank))
        ),
        high_value_detractors=sum(cell.customers for cell in detractors),
        high_value_detractor_value=sum(cell.value for cell in detractors),
    )
