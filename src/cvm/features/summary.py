"""Per-customer summaries, computed inside the store's engine with Ibis.

Every function here takes an Ibis table of canonical transactions (``customer_id``,
``ts``, ``amount`` and the optional columns) and returns an Ibis expression: nothing is
executed until the caller asks, and the same code runs on DuckDB, PySpark or any other
Ibis backend.

The BTYD summary follows the convention of Fader, Hardie & Lee (2005), "Counting your
customers the easy way", Marketing Science 24(2): purchases of one customer on one day
form one purchase occasion (amounts summed); frequency ``x`` is the number of repeat
occasions (occasions − 1); recency ``t_x`` is the time from the first to the last
occasion; ``T`` the time from the first occasion to the end of observation; monetary
value the mean amount of the repeat occasions (0 when ``x = 0``), as in the
Gamma-Gamma spend model (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value").
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, Literal

import ibis

__all__ = [
    "TIME_UNIT_DAYS",
    "btyd_summary",
    "calibration_holdout",
    "customer_totals",
    "period_series",
    "purchase_occasions",
    "repeat_purchases_by_period",
]

#: Length of each time unit in days (months and years are mean Gregorian lengths).
TIME_UNIT_DAYS: Final[dict[str, float]] = {
    "day": 1.0,
    "week": 7.0,
    "month": 365.2425 / 12,
    "year": 365.2425,
}

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)


def _unit_days(time_unit: str) -> float:
    try:
        return TIME_UNIT_DAYS[time_unit]
    except KeyError:
        raise ValueError(
            f"time_unit must be one of {', '.join(TIME_UNIT_DAYS)}, got {time_unit!r}"
        ) from None


def _days(later: Any, earlier: Any) -> Any:
    """Whole days between two dates, as float64.

    The cast matters on Spark, which reads a literal like ``7.0`` as DECIMAL and
    would round the quotient to 6 decimals.
    """
    return later.delta(earlier, unit="day").cast("float64")


def _until(transactions: Table, end: dt.date) -> Table:
    """Transactions on or before the end date (the whole end day included).

    Compared as ``ts < next midnight`` rather than ``date(ts) <= end`` so that the
    engine can prune by the column's min/max statistics without a cast per row.
    """
    next_day = dt.datetime.combine(end + dt.timedelta(days=1), dt.time())
    return transactions.filter(transactions.ts < ibis.timestamp(next_day))


def purchase_occasions(transactions: Table, *, end: dt.date | None = None) -> Table:
    """Merge each customer's same-day transactions into one purchase occasion.

    Returns
    -------
    Table
        ``customer_id``, ``day`` (date) and ``amount`` (summed), one row per occasion.
    """
    if end is not None:
        transactions = _until(transactions, end)
    return transactions.group_by(
        customer_id=transactions.customer_id, day=transactions.ts.date()
    ).aggregate(amount=transactions.amount.sum())


def btyd_summary(
    transactions: Table,
    *,
    observation_end: dt.date,
    time_unit: str = "week",
) -> Table:
    """Compute the recency-frequency-monetary summary used by the BTYD models.

    Parameters
    ----------
    transactions
        Canonical transactions (Ibis table).
    observation_end
        Last day of observation (inclusive); later transactions are ignored.
    time_unit
        Unit of ``recency`` and ``t``: ``"day"``, ``"week"``, ``"month"`` or ``"year"``.

    Returns
    -------
    Table
        One row per customer with a purchase by ``observation_end``: ``customer_id``,
        ``first_purchase``, ``last_purchase`` (dates), ``occasions``, ``frequency``
        (occasions − 1), ``recency``, ``t`` and ``monetary_value``.
    """
    unit = _unit_days(time_unit)
    occasions = purchase_occasions(transactions, end=observation_end)
    # One aggregation per level (rows → occasions → customers); the first occasion's
    # amount is picked with argmin, so no window function is needed.
    summary = occasions.group_by("customer_id").aggregate(
        first_purchase=occasions.day.min(),
        last_purchase=occasions.day.max(),
        occasions=occasions.day.count(),
        total_amount=occasions.amount.sum(),
        first_amount=occasions.amount.argmin(occasions.day),
    )
    frequency = summary.occasions - 1
    return summary.select(
        "customer_id",
        "first_purchase",
        "last_purchase",
        "occasions",
        frequency=frequency,
        recency=_days(summary.last_purchase, summary.first_purchase) / unit,
        t=_days(ibis.date(observation_end), summary.first_purchase) / unit,
        monetary_value=(frequency > 0).ifelse(
            (summary.total_amount - summary.first_amount) / frequency.cast("float64"), 0.0
        ),
    )


def calibration_holdout(
    transactions: Table,
    *,
    calibration_end: dt.date,
    observation_end: dt.date,
    time_unit: str = "week",
) -> Table:
    """Split history into a calibration summary and what happened in the holdout.

    Customers are those with a purchase by ``calibration_end``; their calibration
    summary is :func:`btyd_summary` at ``calibration_end``, and the holdout columns
    count their occasions after it, up to ``observation_end``.

    Returns
    -------
    Table
        The calibration summary plus ``frequency_holdout`` (occasions in the holdout),
        ``monetary_value_holdout`` (their mean amount, 0 when none) and
        ``duration_holdout`` (holdout length in ``time_unit``).
    """
    if calibration_end >= observation_end:
        raise ValueError(
            f"calibration_end ({calibration_end}) must be before observation_end "
            f"({observation_end})"
        )
    unit = _unit_days(time_unit)
    calibration = btyd_summary(transactions, observation_end=calibration_end, time_unit=time_unit)
    occasions = purchase_occasions(transactions, end=observation_end)
    later = occasions.filter(occasions.day > ibis.date(calibration_end))
    holdout = later.group_by("customer_id").aggregate(
        frequency_holdout=later.day.count(), holdout_amount=later.amount.sum()
    )
    joined = calibration.left_join(holdout, "customer_id")
    n = joined.frequency_holdout.fill_null(0)
    duration = (observation_end - calibration_end).days / unit
    return joined.select(
        *calibration.columns,
        frequency_holdout=n,
        monetary_value_holdout=(n > 0).ifelse(joined.holdout_amount / n.cast("float64"), 0.0),
        duration_holdout=ibis.literal(duration, type="float64"),
    )


def repeat_purchases_by_period(
    transactions: Table,
    *,
    start: dt.date,
    observation_end: dt.date,
    cohort_end: dt.date,
    time_unit: str = "week",
) -> Table:
    """Count the cohort's repeat purchase occasions per period (for tracking plots).

    The cohort is the customers whose first purchase falls on or before
    ``cohort_end``; a repeat occasion is any purchase day after a customer's first.
    Periods are whole ``time_unit`` steps counted from ``start`` (period 0 begins on
    ``start``).

    Returns
    -------
    Table
        ``period`` (0, 1, …) and ``repeat_purchases``, for periods with any.
    """
    unit = _unit_days(time_unit)
    occasions = purchase_occasions(transactions, end=observation_end)
    first = occasions.group_by("customer_id").aggregate(first_day=occasions.day.min())
    cohort = first.filter(first.first_day <= ibis.date(cohort_end))
    joined = occasions.join(cohort, "customer_id")
    repeats = joined.filter(joined.day > joined.first_day)
    period = (_days(repeats.day, ibis.date(start)) / unit).floor().cast("int64")
    return repeats.group_by(period=period).aggregate(repeat_purchases=repeats.count())


def customer_totals(transactions: Table, *, observation_end: dt.date, margin_rate: float) -> Table:
    """Sum each customer's history up to ``observation_end``.

    Profit of a transaction is its ``margin`` when given, else ``amount − cost`` when
    the cost is given, else ``amount × margin_rate``; returns (negative amounts)
    subtract from revenue and profit alike.

    Returns
    -------
    Table
        ``customer_id``, ``transactions``, ``orders`` (distinct transaction ids; rows
        without one count as one order each), ``revenue`` (net of returns),
        ``returns`` (value returned, positive), ``margin`` (profit) and
        ``first_purchase``/``last_purchase`` (dates).
    """
    if not 0.0 <= margin_rate <= 1.0:
        raise ValueError(f"margin_rate must be between 0 and 1, got {margin_rate}")
    t = _until(transactions, observation_end)
    profit = ibis.coalesce(t.margin, t.amount - t.cost, t.amount * margin_rate)
    order_key = ibis.coalesce(t.transaction_id, t.ts.cast("string"))
    return t.group_by("customer_id").aggregate(
        transactions=t.count(),
        orders=order_key.nunique(),
        revenue=t.amount.sum(),
        returns=(t.amount < 0).ifelse(-t.amount, 0.0).sum(),
        margin=profit.sum(),
        first_purchase=t.ts.date().min(),
        last_purchase=t.ts.date().max(),
    )


def period_series(
    transactions: Table,
    *,
    observation_end: dt.date,
    period: Literal["month", "quarter"] = "month",
    margin_rate: float = 0.3,
) -> Table:
    """Per-customer, per-period series for trend work.

    Returns
    -------
    Table
        ``customer_id``, ``period_start`` (date), ``occasions``, ``revenue`` and
        ``margin`` for every period in which the customer transacted.
    """
    units = {"month": "M", "quarter": "Q"}
    if period not in units:
        raise ValueError(f"period must be 'month' or 'quarter', got {period!r}")
    t = _until(transactions, observation_end)
    profit = ibis.coalesce(t.margin, t.amount - t.cost, t.amount * margin_rate)
    day = t.ts.date()
    return t.group_by(
        customer_id=t.customer_id, period_start=day.truncate(units[period])
    ).aggregate(
        occasions=day.nunique(),
        revenue=t.amount.sum(),
        margin=profit.sum(),
    )
