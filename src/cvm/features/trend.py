"""The trend of each customer's value per period, for lifecycle stages.

A customer's recent behaviour is compared with their own past: the value (spend,
margin or purchase occasions) of the *recent window* — the ``window_months`` up to
``as_of`` — against the *previous window* of equal length just before it, each as a
rate per period of the customer's exposure, so that neither a partial current period
nor a customer who arrived during the previous window distorts the comparison:

* Windows are made of whole calendar periods of the :func:`~cvm.features.period_series`
  (months or quarters). The recent window ends with the period holding ``as_of``;
  that period counts only with the share of its days already elapsed (a month 9 days
  old counts 9/31 of a period), so a recent window of 6 months on the 9th of a month
  is 5 + 9/31 periods long. The previous window is the ``window_months`` before.
* A customer's exposure in a window starts with the period of their first purchase:
  someone whose first purchase fell in the last 2 months of the previous window is
  compared on those 2 months, not on 6.
* ``trend`` is the relative change of the rate, ``recent_rate / previous_rate − 1``
  (−0.62 means down 62 %), rounded to 6 decimals so that values at a threshold compare
  as written. It is NULL — "no earlier value" — when the customer has no exposure in
  the previous window (all their history is recent) or no positive value in it (a
  relative change from nothing is undefined); ``previous_exposure`` and
  ``previous_value`` tell these cases apart.

Everything is one aggregation per customer (no per-customer loops, no window
functions) — :func:`trend_features` reads only the two windows of the series — expressed
in Ibis so that it runs on DuckDB, PySpark or any other backend.

References
----------
Dwyer, F. R., Schurr, P. H. & Oh, S. (1987), "Developing buyer-seller relationships",
Journal of Marketing 51(2), 11–27: relationships move through phases (exploration,
expansion, commitment, dissolution) that show in the trajectory of exchange over time.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Any, Final, Literal

import ibis

from cvm.errors import SchemaError

__all__ = ["TREND_MEASURES", "trend_features", "value_trend"]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)

#: The values whose trend can be followed: columns of the period series.
TREND_MEASURES: Final[tuple[str, ...]] = ("revenue", "margin", "occasions")

_PERIOD_MONTHS: Final[dict[str, int]] = {"month": 1, "quarter": 3}

_TREND_COLUMNS: Final[tuple[str, ...]] = (
    "recent_value",
    "previous_value",
    "recent_exposure",
    "previous_exposure",
    "recent_rate",
    "previous_rate",
    "trend",
)


@dataclass(frozen=True)
class _Windows:
    """The two windows, as consecutive period indexes (see :func:`_period_index`)."""

    months: int  # months per period
    current: int  # index of the period holding as_of
    elapsed: float  # share of the current period's days up to as_of
    recent_start: int  # first period of the recent window
    previous_start: int  # first period of the previous window

    def start_date(self, index: int) -> dt.date:
        """Return the first day of the period with this index."""
        per_year = 12 // self.months
        return dt.date(index // per_year, index % per_year * self.months + 1, 1)


def _windows(as_of: dt.date, window_months: int, period: str, measure: str) -> _Windows:
    if period not in _PERIOD_MONTHS:
        raise ValueError(f"period must be 'month' or 'quarter', got {period!r}")
    if measure not in TREND_MEASURES:
        raise ValueError(f"measure must be one of {', '.join(TREND_MEASURES)}, got {measure!r}")
    months = _PERIOD_MONTHS[period]
    if window_months < 1 or window_months % months:
        raise ValueError(
            f"window_months must be a positive multiple of {months} for {period}s, "
            f"got {window_months}"
        )
    width = window_months // months
    first_month = (as_of.month - 1) // months * months + 1
    start = dt.date(as_of.year, first_month, 1)
    days = sum(calendar.monthrange(as_of.year, first_month + k)[1] for k in range(months))
    current = as_of.year * (12 // months) + (as_of.month - 1) // months
    return _Windows(
        months=months,
        current=current,
        elapsed=((as_of - start).days + 1) / days,
        recent_start=current - width + 1,
        previous_start=current - 2 * width + 1,
    )


def _period_index(day: Any, months: int) -> Any:
    """Consecutive integer index of the period holding a date (year × periods + period)."""
    year = day.year().cast("int64")
    month = day.month().cast("int64")
    return year * (12 // months) + (month - 1) // months


def _require(table: Table, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SchemaError(
            f"{what} lacks column(s) {', '.join(missing)}", expected=", ".join(columns)
        )


def _window_sums(series: Table, value: Any, w: _Windows) -> dict[str, Any]:
    """Sum the value in each window over rows of a period series."""
    start = series.period_start
    recent = start >= ibis.date(w.start_date(w.recent_start))
    previous = ~recent & (start >= ibis.date(w.start_date(w.previous_start)))
    value = value.cast("float64")
    return {"recent_value": value.sum(where=recent), "previous_value": value.sum(where=previous)}


def _trend_columns(
    first_index: Any, recent_value: Any, previous_value: Any, w: _Windows
) -> dict[str, Any]:
    """Exposures, rates and the trend from the first period and the window sums.

    The sums are rounded to millionths first: sales and returns that net to zero leave
    floating-point residues (1e-13) that would otherwise count as an earlier value and
    make the trend astronomically large.
    """
    recent_value = recent_value.fill_null(0.0).round(6)
    previous_value = previous_value.fill_null(0.0).round(6)
    recent_exposure = (w.current - ibis.greatest(first_index, w.recent_start)).cast(
        "float64"
    ) + w.elapsed
    previous_exposure = ibis.greatest(
        w.recent_start - ibis.greatest(first_index, w.previous_start), 0
    ).cast("float64")
    # The ratio of rates written as one quotient of products (less rounding error),
    # rounded so that values at a threshold compare as written: 130 on 100 is 0.3.
    trend = (previous_value > 0).ifelse(
        (recent_value * previous_exposure) / (previous_value * recent_exposure) - 1.0,
        ibis.null("float64"),
    )
    return {
        "recent_value": recent_value,
        "previous_value": previous_value,
        "recent_exposure": recent_exposure,
        "previous_exposure": previous_exposure.fill_null(0.0),
        "recent_rate": recent_value / recent_exposure,
        "previous_rate": (previous_exposure > 0).ifelse(
            previous_value / previous_exposure, ibis.null("float64")
        ),
        "trend": trend.round(6),
    }


def value_trend(
    periods: Table,
    *,
    as_of: dt.date,
    window_months: int = 6,
    period: Literal["month", "quarter"] = "month",
    measure: Literal["revenue", "margin", "occasions"] = "revenue",
) -> Table:
    """Compare each customer's recent value per period with the window before.

    The customer's first period is taken from the series itself, so the whole series
    is read; :func:`trend_features` reads only the two windows.

    Parameters
    ----------
    periods
        The per-period series of :func:`~cvm.features.period_series` computed with
        ``observation_end = as_of`` (``customer_id``, ``period_start``, ``occasions``,
        ``revenue``, ``margin``); periods after ``as_of`` are ignored.
    as_of
        The analysis date (inclusive); the period holding it is the partial current
        period.
    window_months
        Length of each of the two windows in months; a multiple of 3 for quarters.
    period
        The series' period: ``"month"`` or ``"quarter"``.
    measure
        The value followed: ``"revenue"`` (spend), ``"margin"`` or ``"occasions"``.

    Returns
    -------
    Table
        One row per customer of the series: ``customer_id``, ``first_period`` and
        ``last_period`` (start dates of the first and last periods with a
        transaction), ``active_periods`` (periods with a transaction), then the
        trend columns: ``recent_value`` and ``previous_value`` (sums in the two
        windows, 0 when none), ``recent_exposure`` and ``previous_exposure``
        (the customer's periods in each window, the current one fractional),
        ``recent_rate`` and ``previous_rate`` (value per period of exposure; NULL
        without exposure) and ``trend`` (relative change of the rate; NULL without an
        earlier positive value).

    Raises
    ------
    ValueError
        If ``period``, ``measure`` or ``window_months`` is not usable.
    SchemaError
        If the series lacks a needed column.
    """
    w = _windows(as_of, window_months, period, measure)
    _require(periods, ("customer_id", "period_start", measure), "the period series")
    series = periods.filter(periods.period_start < ibis.date(w.start_date(w.current + 1)))
    sums = _window_sums(series, series[measure], w)
    summary = series.group_by("customer_id").aggregate(
        first_period=series.period_start.min(),
        last_period=series.period_start.max(),
        active_periods=series.count(),
        **sums,
    )
    first_index = _period_index(summary.first_period, w.months)
    columns = _trend_columns(first_index, summary.recent_value, summary.previous_value, w)
    return summary.select(
        "customer_id",
        "first_period",
        "last_period",
        "active_periods",
        **columns,
    )


def trend_features(
    customers: Table,
    periods: Table,
    *,
    as_of: dt.date,
    window_months: int = 6,
    period: Literal["month", "quarter"] = "month",
    measure: Literal["revenue", "margin", "occasions"] = "revenue",
) -> Table:
    """Add tenure, days since the last purchase and the value trend to customers.

    Only the two windows of the series are read (the first purchase comes from
    ``customers``), so the cost grows with the customers, not with the history.

    Parameters
    ----------
    customers
        One row per customer with ``customer_id``, ``first_purchase`` and
        ``last_purchase`` (dates), e.g. :func:`~cvm.features.btyd_summary`, the output
        of :func:`~cvm.features.customer_totals` or a stored customer snapshot; other
        columns are kept.
    periods
        The customers' period series (see :func:`value_trend`).
    as_of, window_months, period, measure
        As for :func:`value_trend`.

    Returns
    -------
    Table
        ``customers`` plus ``tenure_days`` (days from the first purchase to ``as_of``),
        ``days_since_last`` (days from the last purchase to ``as_of``) and the trend
        columns of :func:`value_trend` (``recent_value`` … ``trend``; values 0 for a
        customer without a transaction in the windows).

    Raises
    ------
    ValueError
        If ``period``, ``measure`` or ``window_months`` is not usable.
    SchemaError
        If ``customers`` lacks a needed column, or already has a column this adds.
    """
    w = _windows(as_of, window_months, period, measure)
    _require(customers, ("customer_id", "first_purchase", "last_purchase"), "customers")
    _require(periods, ("customer_id", "period_start", measure), "the period series")
    added = (
        "tenure_days",
        "days_since_last",
        *_TREND_COLUMNS,
    )
    clash = [c for c in added if c in customers.columns]
    if clash:
        raise SchemaError(f"customers already has column(s) {', '.join(clash)}")
    start = periods.period_start
    series = periods.filter(
        (start >= ibis.date(w.start_date(w.previous_start)))
        & (start < ibis.date(w.start_date(w.current + 1)))
    )
    windows = series.group_by("customer_id").aggregate(**_window_sums(series, series[measure], w))
    joined = customers.left_join(windows, "customer_id")
    end = ibis.date(as_of)
    first = joined.first_purchase.cast("date")
    columns = _trend_columns(
        _period_index(first, w.months), joined.recent_value, joined.previous_value, w
    )
    return joined.select(
        *customers.columns,
        tenure_days=end.delta(first, unit="day").cast("int64"),
        days_since_last=end.delta(joined.last_purchase.cast("date"), unit="day").cast("int64"),
        **columns,
    )
