"""Backfill: analysis runs at successive month or quarter ends.

:func:`backfill` builds the history that migration and alerts read: one analysis of
:func:`cvm.dynamics.analyze` at every month (or quarter) end between two dates, oldest
first, each kept as its own immutable run. Existing runs are never touched; a date that
already has a run gets another one (runs are told apart by their id and creation time).

What the dates share, and why that is safe:

* **identity resolution runs once.** It reads every identity record whatever the
  date, so :func:`~cvm.dynamics.analyze` at any date resolves to the same customer map;
  resolving again per date would only repeat the work;
* **the input tables with unified customer ids are materialised once** (temporary
  tables, dropped at the end), so each date reads plain tables instead of joining every
  transaction, interaction and survey through the customer map again.

What the dates do not share: everything that depends on ``as_of`` — features, realized
value and cost to serve, the margin ratio, the calibration/holdout split and the choice
of purchase model, **the model fits** (each date's models are fitted on the transactions
up to that date alone, from the models' own starting values, so that a run's potential
value is what was knowable at its date), influence, tiers, RFM, lifecycle and
satisfaction. A backfilled run therefore holds the same snapshot as
``cvm analyze --as-of`` at its date.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any, Literal

from cvm.config import Settings
from cvm.dynamics.snapshots import (
    ANALYZE_STEPS,
    RunOverview,
    _analyze_at,
    _input_tables,
)
from cvm.errors import DataError, ValidationError
from cvm.store import Store

__all__ = ["Every", "backfill", "period_ends"]

#: How often a backfill takes a snapshot.
Every = Literal["month", "quarter"]

_MONTHS: dict[str, int] = {"month": 1, "quarter": 3}


def _month_end(year: int, month: int) -> dt.date:
    """Return the last day of ``month`` of ``year``."""
    first_of_next = dt.date(year + month // 12, month % 12 + 1, 1)
    return first_of_next - dt.timedelta(days=1)


def period_ends(start: dt.date, end: dt.date, every: Every) -> list[dt.date]:
    """Return the month or quarter ends in ``[start, end]``, oldest first.

    Quarter ends are 31 March, 30 June, 30 September and 31 December.

    Raises
    ------
    ValidationError
        If ``every`` is neither ``"month"`` nor ``"quarter"``, or ``start`` is after
        ``end``.
    """
    if every not in _MONTHS:
        raise ValidationError(
            f"unknown backfill interval {every!r}; expected month or quarter", value=every
        )
    if start > end:
        raise ValidationError(
            f"the backfill starts on {start.isoformat()}, after its end {end.isoformat()}"
        )
    step = _MONTHS[every]
    # the month ending the period that holds ``start``: its end is on or after ``start``
    month = start.month + (-start.month) % step
    year = start.year
    dates: list[dt.date] = []
    while (date := _month_end(year, month)) <= end:
        dates.append(date)
        month += step
        if month > 12:
            year, month = year + 1, month - 12
    return dates


def _first_transaction(store: Store) -> tuple[dt.date | None, dt.date | None]:
    row = store.con.execute("SELECT min(ts)::DATE, max(ts)::DATE FROM transactions").fetchone()
    if row is None:
        return None, None
    return row[0], row[1]


def _materialise_inputs(store: Store, tables: dict[str, Any], created: list[str]) -> dict[str, Any]:
    """Write each unified input table into a temporary table; return those tables."""
    out: dict[str, Any] = {}
    tag = uuid.uuid4().hex[:8]
    for name, expr in tables.items():
        temp = f"__cvm_backfill_{name}_{tag}"
        store.con.execute(f"CREATE TEMP TABLE {temp} AS {store.backend.compile(expr)}")
        created.append(temp)
        out[name] = store.backend.table(temp)
    return out


def _date_progress(
    progress: Callable[[int, int, str], None] | None, offset: int, total: int, date: dt.date
) -> Callable[[int, int, str], None] | None:
    """Map one date's analysis steps (1 to ``ANALYZE_STEPS``) onto the backfill's."""
    if progress is None:
        return None
    report = progress

    def step(done: int, _steps: int, what: str) -> None:
        report(offset + done, total, f"{date.isoformat()}: {what}")

    return step


def backfill(
    store: Store,
    settings: Settings | None = None,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    every: Every = "month",
    progress: Callable[[int, int, str], None] | None = None,
) -> list[RunOverview]:
    """Analyse the store at every month or quarter end in ``[start, end]``.

    Parameters
    ----------
    store
        The open store (with transactions).
    settings
        The settings of every run; defaults when ``None``.
    start, end
        The first and last day that may be a snapshot date; by default the dates of the
        first and the last transaction.
    every
        ``"month"`` (month ends) or ``"quarter"`` (quarter ends).
    progress
        Optional callback ``(done, total, step)`` over all dates' analysis steps;
        ``step`` names the date and what is happening.

    Returns
    -------
    list[RunOverview]
        One new run per date, oldest first.

    Raises
    ------
    DataError
        If the store holds no transactions, or the first date is before the first
        transaction (that snapshot would be empty).
    ValidationError
        If ``every`` is unknown, ``start`` is after ``end``, or no month or quarter ends
        in ``[start, end]``.
    """
    settings = settings or Settings()
    first, last = _first_transaction(store)
    if first is None or last is None:
        raise DataError("the store has no transactions; run 'cvm ingest transactions' first")
    start = start or first
    end = end or last
    dates = period_ends(start, end, every)
    if not dates:
        raise ValidationError(f"no {every} end between {start.isoformat()} and {end.isoformat()}")
    if dates[0] < first:
        raise DataError(
            f"the first snapshot date {dates[0].isoformat()} is before the first "
            f"transaction ({first.isoformat()}); start the backfill on or after it"
        )
    # one step for the identities, then the analysis steps of each date (its first step,
    # identities, is the shared one)
    per_date = ANALYZE_STEPS - 1
    total = 1 + len(dates) * per_date
    if progress is not None:
        progress(0, total, "identities")
    tables, identity = _input_tables(store, settings)
    created: list[str] = []
    runs: list[RunOverview] = []
    try:
        if identity is not None:
            tables = _materialise_inputs(store, tables, created)
        for i, date in enumerate(dates):
            step = _date_progress(progress, i * per_date, total, date)
            runs.append(_analyze_at(store, settings, date, tables, identity, step))
    finally:
        for name in created:
            store.con.execute(f"DROP TABLE IF EXISTS {name}")
    return runs
