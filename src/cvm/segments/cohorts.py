"""Loyalty and retention as behaviour: repeat purchase, tenure, cohorts, retention rates.

Everything here is computed inside the engine with Ibis, so the same expressions run on
DuckDB and PySpark: loyalty from a per-customer table like the run snapshot, cohorts
and retention from purchase occasions (a customer's transactions of one day merged,
:func:`cvm.features.purchase_occasions`).

Definitions
-----------
Repeat-purchase rate
    The share of customers with at least two purchase occasions.
Purchase frequency
    Purchase occasions per customer-year of tenure, pooled over customers
    (Σ occasions / Σ tenure): a rate per unit of exposure that, unlike the mean of
    per-customer rates, does not explode for customers acquired days ago.
Tenure
    Years from a customer's first purchase to ``as_of`` (365.2425-day years).
Acquisition cohort
    The calendar month of a customer's first purchase occasion. Month ``k`` of a
    cohort is the ``k``-th calendar month after it (month 0 is the acquisition month
    itself); a customer is *retained in month k* when they have a purchase occasion
    in that calendar month. The cohort retention curve is the share of the cohort
    retained in each month (Blattberg, Kim & Neslin 2008, *Database Marketing*).
Customer at a date
    In a non-contractual business nobody cancels, so "a customer at date d" needs a
    rule: here a customer is *active* at ``d`` when they have a purchase occasion in
    the trailing activity window ``(d − W months, d]`` (``W`` =
    ``segments.relationship.activity_window_months``, default 12).
Retention rate of a period ``(start, end]``
    ``(customers at end − new customers) / customers at start`` (DESIGN.md; the
    usual counting definition, e.g. Gupta & Lehmann 2005, *Managing Customers as
    Investments*), where new customers are those active at ``end`` whose first
    purchase falls inside the period. Customers at end who are not new either were
    active at start (*retained*) or had lapsed and came back (*reactivated*), so the
    rate counts win-backs as retained and can exceed 1. Churn rate = 1 − retention.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import ibis

from cvm.errors import SchemaError

__all__ = [
    "CohortRetention",
    "Loyalty",
    "RetentionPeriod",
    "RetentionRate",
    "cohort_retention",
    "cohorts_from_matrix",
    "default_periods",
    "loyalty_summary",
    "months_before",
    "retention_rates",
]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)

#: Days per year for tenure (mean Gregorian year, as in :mod:`cvm.features`).
YEAR_DAYS: Final[float] = 365.2425


def _require(table: Table, columns: Iterable[str], what: str) -> None:
    """Raise :class:`SchemaError` naming the first required column ``table`` lacks."""
    present = set(table.columns)
    for column in columns:
        if column not in present:
            raise SchemaError(
                f"required column is missing (has: {', '.join(table.columns)})",
                path=what,
                column=column,
            )


def _rows(expr: Table) -> list[dict[str, Any]]:
    """Execute a small result expression and return its rows as dicts."""
    rows: list[dict[str, Any]] = expr.to_pyarrow().to_pylist()
    return rows


def _plain(value: Any) -> Any:
    """JSON-ready data: dates as ISO text, NaN as ``None``, containers recursively."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _until(table: Table, as_of: dt.date) -> Table:
    """Return the rows with ``ts`` on or before ``as_of`` (compared with next midnight)."""
    next_day = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    return table.filter(table.ts < ibis.timestamp(next_day))


def _as_date(column: Any) -> Any:
    """Return a date column as dates (timestamps truncated to their day)."""
    return column.date() if column.type().is_timestamp() else column


def months_before(day: dt.date, months: int) -> dt.date:
    """Return the same day ``months`` calendar months earlier, month ends to month ends.

    A day past the end of the earlier month is clamped to it
    (``months_before(date(2024, 3, 15), 1)`` is 2024-02-15, of 2024-03-31 it is
    2024-02-29), and the last day of a month maps to the last day of the earlier month
    (of 2023-06-30, 3 months, it is 2023-03-31), so that the 3 months up to 30 June
    are April to June.
    """
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    if day.day == calendar.monthrange(day.year, day.month)[1]:
        return dt.date(year, month + 1, last)
    return dt.date(year, month + 1, min(day.day, last))


@dataclass(frozen=True)
class Loyalty:
    """Loyalty as behaviour at ``as_of`` (definitions in :mod:`cvm.segments.cohorts`).

    Attributes
    ----------
    customers
        Customers with a first purchase on or before ``as_of``.
    repeat_customers, repeat_rate
        Customers with at least two purchase occasions, and their share.
    occasions
        Purchase occasions of all customers.
    purchase_frequency
        Σ occasions / Σ tenure in years (occasions per customer-year).
    mean_tenure_years, median_tenure_years
        Tenure: years from first purchase to ``as_of``.
    active_customers, active_share
        Customers whose last purchase lies in the activity window before ``as_of``.
    activity_window_months
        That window.
    """

    customers: int
    repeat_customers: int
    repeat_rate: float | None
    occasions: int
    purchase_frequency: float | None
    mean_tenure_years: float | None
    median_tenure_years: float | None
    active_customers: int
    active_share: float | None
    activity_window_months: int

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return dict(_plain(asdict(self)))


def loyalty_summary(customers: Table, *, as_of: dt.date, activity_months: int = 12) -> Loyalty:
    """Repeat-purchase rate, purchase frequency, tenure and activity of a customer base.

    Parameters
    ----------
    customers
        One row per customer with ``occasions``, ``first_purchase`` and
        ``last_purchase`` (dates), e.g. a run's ``customer_snapshots`` or
        :func:`cvm.features.btyd_summary`.
    as_of
        The date of the figures; customers first buying after it are left out.
    activity_months
        A customer is active when their last purchase is in the trailing
        ``activity_months`` up to ``as_of``.

    Returns
    -------
    Loyalty
        The figures; rates are ``None`` when their denominator is 0.

    Raises
    ------
    SchemaError
        If a required column is missing.

    References
    ----------
    Reinartz, W. J. & Kumar, V. (2000). "On the profitability of long-life customers in
    a noncontractual setting", Journal of Marketing 64(4): loyalty as behaviour
    (repeat purchase, lifetime) rather than attitude.
    """
    _require(
        customers, ("customer_id", "occasions", "first_purchase", "last_purchase"), "customers"
    )
    if activity_months < 1:
        raise ValueError(f"activity_months must be at least 1, got {activity_months}")
    base = customers.select(
        occasions=customers.occasions.cast("int64"),
        first=_as_date(customers.first_purchase),
        last=_as_date(customers.last_purchase),
    )
    base = base.filter(base.first <= ibis.date(as_of))
    tenure = ibis.date(as_of).delta(base.first, unit="day").cast("float64") / YEAR_DAYS
    since = months_before(as_of, activity_months)
    (row,) = _rows(
        base.aggregate(
            customers=base.count(),
            repeat_customers=base.count(where=base.occasions >= 2),
            occasions=base.occasions.sum(),
            tenure=tenure.sum(),
            mean_tenure=tenure.mean(),
            median_tenure=tenure.median(),
            active=base.count(where=base.last > ibis.date(since)),
        )
    )
    n = int(row["customers"])
    tenure_total = float(row["tenure"] or 0.0)
    occasions = int(row["occasions"] or 0)
    return Loyalty(
        customers=n,
        repeat_customers=int(row["repeat_customers"]),
        repeat_rate=_ratio(int(row["repeat_customers"]), n),
        occasions=occasions,
        purchase_frequency=_ratio(occasions, tenure_total),
        mean_tenure_years=row["mean_tenure"],
        median_tenure_years=row["median_tenure"],
        active_customers=int(row["active"]),
        active_share=_ratio(int(row["active"]), n),
        activity_window_months=activity_months,
    )


def _month_index(day: Any) -> Any:
    """Calendar month number of a date column (year × 12 + month − 1)."""
    return day.year() * 12 + day.month() - 1


def cohort_retention(transactions: Table, *, as_of: dt.date) -> Table:
    """Cohort retention matrix by acquisition month (first purchase month).

    Parameters
    ----------
    transactions
        Canonical transactions (``customer_id``, ``ts``, ``amount``).
    as_of
        Last day counted (inclusive).

    Returns
    -------
    Table
        One row per cohort and month since acquisition, zeros included:
        ``cohort`` (first day of the acquisition month), ``cohort_size`` (customers
        acquired that month), ``month`` (0, 1, … up to the month of ``as_of``),
        ``customers`` (cohort members with a purchase occasion in that month),
        ``share`` (``customers / cohort_size``; 1 in month 0) and ``complete``
        (whether the month ended on or before ``as_of``; the month of ``as_of``
        is partial unless ``as_of`` is its last day).

    Notes
    -----
    Customers whose first purchase in the data falls in its first month may have
    bought before the data begin (left censoring); their cohort is then too early.

    References
    ----------
    Blattberg, R. C., Kim, B.-D. & Neslin, S. A. (2008). *Database Marketing:
    Analyzing and Managing Customers*. Springer.
    """
    t = _until(transactions, as_of)
    active = t.select("customer_id", month=_month_index(t.ts.date())).distinct()
    first = active.group_by("customer_id").aggregate(cohort=active.month.min())
    sizes = first.group_by("cohort").aggregate(cohort_size=first.count())
    joined = active.join(first, "customer_id")
    counts = joined.group_by(cohort=joined.cohort, month=joined.month - joined.cohort).aggregate(
        customers=joined.count()
    )
    last = as_of.year * 12 + as_of.month - 1
    month_complete = as_of.day == calendar.monthrange(as_of.year, as_of.month)[1]
    cells = sizes.select(
        "cohort", "cohort_size", month=ibis.range(0, last - sizes.cohort + 1).unnest()
    )
    matrix = cells.left_join(counts, ["cohort", "month"])
    customers = matrix.customers.fill_null(0)
    return matrix.select(
        cohort=ibis.date(matrix.cohort // 12, matrix.cohort % 12 + 1, 1),
        cohort_size=matrix.cohort_size,
        month=matrix.month.cast("int64"),
        customers=customers,
        share=customers.cast("float64") / matrix.cohort_size.cast("float64"),
        complete=(matrix.cohort + matrix.month < last) | ibis.literal(month_complete),
    )


@dataclass(frozen=True)
class RetentionPeriod:
    """A period ``(start, end]`` over which retention is measured.

    ``start`` is the last day before the period, ``end`` its last day: customers at
    start are those active on ``start``, customers at end those active on ``end``.
    """

    label: str
    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(
                f"period {self.label!r}: end ({self.end}) must be after start ({self.start})"
            )


def default_periods(*, as_of: dt.date, first_day: dt.date) -> list[RetentionPeriod]:
    """Return the periods ``cvm kpis`` reports: the last 12 months, each calendar year.

    Parameters
    ----------
    as_of
        Last day of the analysis.
    first_day
        First day of the data; calendar years from its year to that of ``as_of``.

    Returns
    -------
    list of RetentionPeriod
        ``last_12_months`` = ``(as_of − 12 months, as_of]``, then one period per
        calendar year ``(31 Dec of the year before, 31 Dec]``, the last one ending on
        ``as_of`` (so partial unless ``as_of`` is 31 December).
    """
    periods = [RetentionPeriod("last_12_months", months_before(as_of, 12), as_of)]
    for year in range(first_day.year, as_of.year + 1):
        end = min(dt.date(year, 12, 31), as_of)
        periods.append(RetentionPeriod(str(year), dt.date(year - 1, 12, 31), end))
    return periods


def retention_rates(
    transactions: Table,
    periods: Sequence[RetentionPeriod],
    *,
    activity_months: int = 12,
) -> Table:
    """Count customers at start and end, new and retained, and the retention rate.

    Parameters
    ----------
    transactions
        Canonical transactions (``customer_id``, ``ts``, ``amount``).
    periods
        The periods to measure (e.g. :func:`default_periods`); transactions after the
        latest ``end`` are ignored.
    activity_months
        Trailing activity window ``W``: a customer is a customer at date ``d`` when
        they have a purchase occasion in ``(d − W months, d]``.

    Returns
    -------
    Table
        One row per period, in no particular order: ``period``, ``start``, ``end``,
        ``customers_start``, ``customers_end``, ``new_customers`` (active at end,
        first purchase in the period), ``retained`` (active at start and at end),
        ``reactivated`` (active at end, acquired by start but not active then),
        ``retention_rate`` = (customers_end − new_customers) / customers_start (null
        when there were no customers at start) and ``churn_rate`` = 1 − retention_rate.

    Raises
    ------
    ValueError
        If ``periods`` is empty, labels repeat or ``activity_months`` < 1.

    References
    ----------
    Gupta, S. & Lehmann, D. R. (2005). *Managing Customers as Investments*. Wharton
    School Publishing.
    """
    if not periods:
        raise ValueError("periods must not be empty")
    labels = [p.label for p in periods]
    if len(set(labels)) != len(labels):
        raise ValueError(f"period labels must be unique, got {labels}")
    if activity_months < 1:
        raise ValueError(f"activity_months must be at least 1, got {activity_months}")
    # One pass over the transactions: per customer, the first purchase day and, per
    # period, whether they bought in the window before its start and before its end.
    # Buying on a day is the same whether its transactions are merged into one
    # occasion or not, so the day-level grouping of purchase_occasions is skipped.
    t = _until(transactions, max(p.end for p in periods))
    day = t.ts.date()

    def bought(since: dt.date, until: dt.date) -> Any:
        return ((day > ibis.date(since)) & (day <= ibis.date(until))).ifelse(1, 0).max()

    flags: dict[str, Any] = {"first_day": day.min()}
    for i, period in enumerate(periods):
        flags[f"s{i}"] = bought(months_before(period.start, activity_months), period.start)
        flags[f"e{i}"] = bought(months_before(period.end, activity_months), period.end)
    per_customer = t.group_by("customer_id").aggregate(**flags)
    sums: dict[str, Any] = {}
    for i, period in enumerate(periods):
        at_start, at_end = per_customer[f"s{i}"] == 1, per_customer[f"e{i}"] == 1
        first = per_customer.first_day
        acquired = (first > ibis.date(period.start)) & (first <= ibis.date(period.end))
        sums[f"s{i}"] = at_start.ifelse(1, 0).sum()
        sums[f"e{i}"] = at_end.ifelse(1, 0).sum()
        sums[f"n{i}"] = (at_end & acquired).ifelse(1, 0).sum()
        sums[f"r{i}"] = (at_start & at_end).ifelse(1, 0).sum()
    totals = per_customer.aggregate(**sums)

    def count(name: str) -> Any:
        return totals[name].fill_null(0).cast("int64")

    # The one-row totals, unpivoted into one row per period.
    rows = ibis.array(
        [
            ibis.struct(
                {
                    "period": ibis.literal(period.label, type="string"),
                    "start": ibis.date(period.start),
                    "end": ibis.date(period.end),
                    "customers_start": count(f"s{i}"),
                    "customers_end": count(f"e{i}"),
                    "new_customers": count(f"n{i}"),
                    "retained": count(f"r{i}"),
                }
            )
            for i, period in enumerate(periods)
        ]
    )
    long = totals.select(row=rows.unnest()).unpack("row")
    start, end, new = long.customers_start, long.customers_end, long.new_customers
    rate = (start > 0).ifelse(
        (end - new).cast("float64") / start.cast("float64"), ibis.null("float64")
    )
    return long.select(
        "period",
        "start",
        "end",
        "customers_start",
        "customers_end",
        "new_customers",
        "retained",
        reactivated=end - new - long.retained,
        retention_rate=rate,
        churn_rate=1.0 - rate,
    )


@dataclass(frozen=True)
class CohortRetention:
    """One acquisition cohort's retention curve.

    ``active[k]`` customers of the cohort purchased in month ``k`` after acquisition,
    ``share[k] = active[k] / customers``; the last month is partial when
    ``last_month_complete`` is false.
    """

    cohort: dt.date
    customers: int
    active: list[int]
    share: list[float]
    last_month_complete: bool

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return dict(_plain(asdict(self)))


def cohorts_from_matrix(rows: Iterable[dict[str, Any]]) -> list[CohortRetention]:
    """Group executed :func:`cohort_retention` rows into one curve per cohort.

    Loops over cells of the matrix (cohorts × months, a few thousand at most), never
    over customers.
    """
    cells: dict[dt.date, list[dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault(row["cohort"], []).append(row)
    out = []
    for cohort in sorted(cells):
        months = sorted(cells[cohort], key=lambda cell: int(cell["month"]))
        out.append(
            CohortRetention(
                cohort=cohort,
                customers=int(months[0]["cohort_size"]),
                active=[int(cell["customers"]) for cell in months],
                share=[float(cell["share"]) for cell in months],
                last_month_complete=bool(months[-1]["complete"]),
            )
        )
    return out


@dataclass(frozen=True)
class RetentionRate:
    """Retention over one period (a row of :func:`retention_rates`)."""

    period: str
    start: dt.date
    end: dt.date
    customers_start: int
    customers_end: int
    new_customers: int
    retained: int
    reactivated: int
    retention_rate: float | None
    churn_rate: float | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RetentionRate:
        """Build from an executed row of :func:`retention_rates`."""
        rate = row["retention_rate"]
        churn = row["churn_rate"]
        return cls(
            period=str(row["period"]),
            start=row["start"],
            end=row["end"],
            customers_start=int(row["customers_start"]),
            customers_end=int(row["customers_end"]),
            new_customers=int(row["new_customers"]),
            retained=int(row["retained"]),
            reactivated=int(row["reactivated"]),
            retention_rate=None if rate is None else float(rate),
            churn_rate=None if churn is None else float(churn),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return dict(_plain(asdict(self)))
