"""Relationship measures: satisfaction, contribution, value × satisfaction, all KPIs.

The library part of ``cvm kpis``. Table functions take Ibis tables and return Ibis
expressions, executed only by the caller, so they run on DuckDB, PySpark or any other
Ibis backend; the summary functions execute one small aggregate and return a
dataclass with ``to_dict()``. Everything is computed as of a date: only events on or
before ``as_of`` count. Loyalty, cohorts and retention live in
:mod:`cvm.segments.cohorts`; :func:`relationship_kpis` combines both for one run.

Definitions (in full in ``docs/kpis.md``)
-----------------------------------------
NPS category
    Of the 0–10 "would you recommend us" answer: promoter 9–10, passive 7–8,
    detractor 0–6 (fractional answers cut at ≥ 9 and ≥ 7).
Net Promoter Score
    % promoters − % detractors (Reichheld 2003). The headline counts each customer's
    latest answer in the NPS window (``nps_window_months`` up to ``as_of``; 0 = all
    history), so every customer counts once; the response-level NPS is reported
    beside it. Ties at a customer's latest time count as the lower answer. The 95 %
    interval is the adjusted Wald one (Rocks 2016, see :func:`nps_score`).
CSAT
    The 1–5 answers of surveys and interactions together: mean and share satisfied
    (4–5) over the NPS window; per customer over all answers up to ``as_of``.
Contribution; value × satisfaction grid
    Each tier's share of customers, realized and total value; tier × NPS category
    with customers and value per cell, cells of high-value tiers × detractor flagged.

References
----------
Reichheld, F. F. (2003). "The one number you need to grow". Harvard Business Review
81(12): 46–54.
Rocks, B. (2016). "Interval estimation for the 'Net Promoter Score'". The American
Statistician 70(4): 365–372.
Zeithaml, V. A., Rust, R. T. & Lemon, K. N. (2001). "The customer pyramid: creating and
serving profitable customers". California Management Review 43(4): 118–142.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from statistics import NormalDist
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
    months_before,
    retention_rates,
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

#: The three NPS categories, best first.
NPS_CATEGORIES: Final[tuple[str, str, str]] = ("promoter", "passive", "detractor")
#: The grid's category of customers without an NPS answer (in the window).
NO_ANSWER: Final[str] = "no answer"
#: How many of the best tiers count as high value when none are named.
DEFAULT_HIGH_VALUE_TIERS: Final[int] = 2

_SURVEY_COLUMNS: Final[dict[str, str]] = {
    "customer_id": "string",
    "ts": "timestamp",
    "nps": "float64",
    "csat": "float64",
}


# -- satisfaction --------------------------------------------------------------------
def _window(table: Table, *, as_of: dt.date, since: dt.date | None = None) -> Table:
    """Rows with ``since < date(ts) <= as_of`` (``since`` ``None``: no lower bound)."""
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    table = table.filter(table.ts < ibis.timestamp(end))
    if since is not None:
        start = dt.datetime.combine(since + dt.timedelta(days=1), dt.time())
        table = table.filter(table.ts >= ibis.timestamp(start))
    return table


def _category(score: Any) -> Any:
    return ibis.cases(
        (score >= 9, NPS_CATEGORIES[0]), (score >= 7, NPS_CATEGORIES[1]), else_=NPS_CATEGORIES[2]
    )


def _latest_answers(surveys: Table) -> Table:
    """Return each customer's latest NPS answer, its category and date."""
    answered = surveys.filter(surveys.nps.notnull())
    latest = answered.group_by("customer_id").aggregate(ts=answered.ts.max())
    at_latest = answered.semi_join(latest, ["customer_id", "ts"])
    per_customer = at_latest.group_by("customer_id").aggregate(
        nps=at_latest.nps.cast("float64").min(), nps_date=at_latest.ts.max().date()
    )
    return per_customer.mutate(nps_category=_category(per_customer.nps))


def _csat_answers(surveys: Table, interactions: Table | None) -> Table:
    """CSAT answers of surveys and interactions: ``customer_id``, ``csat``."""
    # both sides nullable: a unified table's ids are computed, a stored one's are NOT NULL
    answers = surveys.filter(surveys.csat.notnull()).select(
        customer_id=surveys.customer_id.cast("string"), csat=surveys.csat.cast("float64")
    )
    if interactions is not None and "csat" in interactions.columns:
        more = interactions.filter(interactions.csat.notnull()).select(
            customer_id=interactions.customer_id.cast("string"),
            csat=interactions.csat.cast("float64"),
        )
        answers = answers.union(more, distinct=False)
    return answers


def _check_inputs(surveys: Table, interactions: Table | None) -> None:
    _require(surveys, _SURVEY_COLUMNS, "surveys")
    if interactions is not None:
        _require(interactions, ("customer_id", "ts"), "interactions")


def customer_satisfaction(
    surveys: Table, interactions: Table | None = None, *, as_of: dt.date
) -> Table:
    """Each customer's satisfaction as of ``as_of``.

    Parameters
    ----------
    surveys
        Canonical surveys (``customer_id``, ``ts``, ``nps`` 0–10, ``csat`` 1–5).
    interactions
        Optional canonical interactions; their ``csat`` answers join the survey ones.
    as_of
        Last day counted (inclusive).

    Returns
    -------
    Table
        One row per customer with a survey or a CSAT answer: ``customer_id``, ``nps``
        (latest answer, null if none), ``nps_category`` (promoter, passive,
        detractor; null if none), ``nps_date`` (date of that answer), ``surveys``
        (survey rows), ``last_survey`` (date), ``csat`` (mean of all CSAT answers)
        and ``csat_responses``.

    Raises
    ------
    SchemaError
        If a required column is missing.
    """
    _check_inputs(surveys, interactions)
    s = _window(surveys, as_of=as_of)
    answers = _csat_answers(s, None if interactions is None else _window(interactions, as_of=as_of))
    counts = s.group_by("customer_id").aggregate(surveys=s.count(), last_survey=s.ts.max().date())
    csat = answers.group_by("customer_id").aggregate(
        csat=answers.csat.mean(), csat_responses=answers.count()
    )
    keys = counts.select(customer_id=counts.customer_id.cast("string")).union(
        csat.select("customer_id"), distinct=True
    )
    joined = (
        keys.left_join(counts, "customer_id")
        .left_join(_latest_answers(s), "customer_id")
        .left_join(csat, "customer_id")
    )
    return joined.select(
        "customer_id",
        "nps",
        "nps_category",
        "nps_date",
        surveys=joined.surveys.fill_null(0),
        last_survey=joined.last_survey,
        csat=joined.csat,
        csat_responses=joined.csat_responses.fill_null(0),
    )


@dataclass(frozen=True)
class NpsScore:
    """A Net Promoter Score with its counts and 95 % interval (points, −100…100).

    ``nps``, ``se``, ``ci_low`` and ``ci_high`` are ``None`` when ``n`` is 0.
    """

    basis: str
    n: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return dict(_plain(asdict(self)))


def nps_score(
    promoters: int,
    passives: int,
    detractors: int,
    *,
    basis: str = "customers",
    confidence: float = 0.95,
) -> NpsScore:
    """NPS from category counts, with its standard error and adjusted-Wald interval.

    Parameters
    ----------
    promoters, passives, detractors
        Counts of answers 9–10, 7–8 and 0–6.
    basis
        What was counted: ``"customers"`` (latest answer each) or ``"responses"``.
    confidence
        Confidence level of the interval.

    Returns
    -------
    NpsScore
        ``nps = 100 (p − d)`` with ``p``, ``d`` the promoter and detractor shares;
        ``se = 100 √((p + d − (p − d)²) / n)``, the standard error of a difference
        of two proportions of one trinomial sample; the interval is the adjusted
        Wald one of Rocks (2016): the same formula on ``(promoters + 3/4)``,
        ``(detractors + 3/4)`` out of ``n + 3``, centred on the adjusted NPS and
        clipped to [−100, 100].

    References
    ----------
    Rocks, B. (2016). "Interval estimation for the 'Net Promoter Score'". The
    American Statistician 70(4): 365–372.
    """
    if min(promoters, passives, detractors) < 0:
        raise ValueError("NPS counts must not be negative")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    n = promoters + passives + detractors
    counts = {"promoters": promoters, "passives": passives, "detractors": detractors}
    if n == 0:
        return NpsScore(
            basis, 0, **counts, nps=None, se=None, ci_low=None, ci_high=None, confidence=confidence
        )
    p, d = promoters / n, detractors / n
    se = math.sqrt(max(p + d - (p - d) ** 2, 0.0) / n)
    n_adj = n + 3
    p_adj, d_adj = (promoters + 0.75) / n_adj, (detractors + 0.75) / n_adj
    centre = p_adj - d_adj
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * math.sqrt(
        (p_adj + d_adj - centre**2) / n_adj
    )
    return NpsScore(
        basis,
        n,
        **counts,
        nps=100.0 * (p - d),
        se=100.0 * se,
        ci_low=max(-100.0, 100.0 * (centre - half)),
        ci_high=min(100.0, 100.0 * (centre + half)),
        confidence=confidence,
    )


@dataclass(frozen=True)
class SatisfactionSummary:
    """Satisfaction over the NPS window ``(since, as_of]`` (``since`` ``None``: all).

    ``nps`` is the headline (customers' latest answers); ``nps_responses`` counts
    every answer in the window.
    """

    as_of: dt.date
    since: dt.date | None
    surveys: int
    nps: NpsScore
    nps_responses: NpsScore
    csat_mean: float | None
    csat_satisfied_share: float | None
    csat_responses: int

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return dict(_plain(asdict(self)))


def satisfaction_summary(
    surveys: Table,
    interactions: Table | None = None,
    *,
    as_of: dt.date,
    window_months: int = 12,
    confidence: float = 0.95,
) -> SatisfactionSummary:
    """NPS (per customer and per response), CSAT and counts over the NPS window.

    Parameters
    ----------
    surveys
        Canonical surveys (``customer_id``, ``ts``, ``nps``, ``csat``).
    interactions
        Optional canonical interactions (their ``csat`` counts with the surveys').
    as_of
        Last day counted (inclusive).
    window_months
        Months up to ``as_of`` counted; 0 counts all history.
    confidence
        Confidence level of the NPS intervals.

    Returns
    -------
    SatisfactionSummary
        The figures (definitions in the module docstring).

    Raises
    ------
    SchemaError
        If a required column is missing.
    """
    _check_inputs(surveys, interactions)
    if window_months < 0:
        raise ValueError(f"window_months must not be negative, got {window_months}")
    since = months_before(as_of, window_months) if window_months else None
    s = _window(surveys, as_of=as_of, since=since)
    latest = _latest_answers(s)
    per_customer = latest.aggregate(
        c_promoters=latest.count(where=latest.nps_category == NPS_CATEGORIES[0]),
        c_passives=latest.count(where=latest.nps_category == NPS_CATEGORIES[1]),
        c_detractors=latest.count(where=latest.nps_category == NPS_CATEGORIES[2]),
    )
    per_response = s.aggregate(
        surveys=s.count(),
        r_promoters=s.count(where=s.nps >= 9),
        r_passives=s.count(where=(s.nps >= 7) & (s.nps < 9)),
        r_detractors=s.count(where=s.nps < 7),
    )
    answers = _csat_answers(
        s, None if interactions is None else _window(interactions, as_of=as_of, since=since)
    )
    csat = answers.aggregate(
        csat_mean=answers.csat.mean(),
        csat_satisfied=answers.count(where=answers.csat >= 4),
        csat_responses=answers.count(),
    )
    (row,) = _rows(per_customer.cross_join(per_response).cross_join(csat))
    n_csat = int(row["csat_responses"])

    def score(prefix: str, basis: str) -> NpsScore:
        return nps_score(
            int(row[f"{prefix}_promoters"]),
            int(row[f"{prefix}_passives"]),
            int(row[f"{prefix}_detractors"]),
            basis=basis,
            confidence=confidence,
        )

    return SatisfactionSummary(
        as_of=as_of,
        since=since,
        surveys=int(row["surveys"]),
        nps=score("c", "customers"),
        nps_responses=score("r", "responses"),
        csat_mean=row["csat_mean"] if n_csat else None,
        csat_satisfied_share=int(row["csat_satisfied"]) / n_csat if n_csat else None,
        csat_responses=n_csat,
    )


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
