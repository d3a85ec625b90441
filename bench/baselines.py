"""Hand-written DuckDB baselines for the foundation benchmark.

Two baselines are provided:

* :func:`btyd_summary_sql` -- the per-customer BTYD ("buy till you die")
  summary written directly in DuckDB SQL, the yardstick for
  ``cvm.features.btyd_summary``;
* :func:`ctas_scan` -- a plain ``CREATE TABLE t AS SELECT * FROM
  read_parquet(...)``, the yardstick for ``cvm.ingest.ingest_transactions``.

The ``step_*`` functions are the measured steps; they are executed in a
fresh process by :mod:`harness` and return a small dict of facts about the
work they did (row counts, checksums) that ends up in the results file.
``duckdb`` is imported lazily so that the orchestrating process stays lean.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

__all__ = [
    "btyd_summary_sql",
    "parquet_source",
    "step_ctas_scan",
    "step_parquet_count",
    "step_summary_sql",
    "summary_facts",
]


def parquet_source(path: str | Path) -> str:
    """Return a SQL relation expression reading a Parquet file or glob.

    Parameters
    ----------
    path : str or pathlib.Path
        Parquet file (or glob) path.

    Returns
    -------
    str
        ``read_parquet('<path>')`` with the path safely quoted.
    """
    return "read_parquet(" + _quote(str(path)) + ")"


def _quote(text: str) -> str:
    """Quote ``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def btyd_summary_sql(source_sql: str, observation_end: str, *, totals: bool = True) -> str:
    """Build the hand-written per-customer BTYD summary query.

    Semantics (lifetimes' ``summary_data_from_transaction_data`` with daily
    periods expressed in weeks):

    * only rows up to ``observation_end`` are used (a whole day when it is
      a date, ``ts <= observation_end`` when it is a timestamp);
    * purchases on the same calendar day are merged into one *occasion*
      whose value is the sum of the amounts (returns included);
    * ``frequency`` = number of distinct purchase days - 1;
    * ``recency`` = (last purchase date - first purchase date) / 7 weeks;
    * ``T`` = (date of ``observation_end`` - first purchase date) / 7 weeks;
    * ``monetary_value`` = mean value of the repeat (non-first) occasions,
      0 when ``frequency`` = 0;
    * per-customer totals (``totals=True``): ``revenue`` = sum(amount) (net
      of returns), ``returns`` = sum of the negative amounts (<= 0),
      ``orders`` = number of distinct non-null ``transaction_id``.
      ``COUNT(DISTINCT)`` roughly doubles the cost of the query, hence the
      option to leave the totals out.

    Parameters
    ----------
    source_sql : str
        A SQL relation usable after ``FROM`` with at least the columns
        ``customer_id``, ``ts``, ``amount`` and ``transaction_id``, e.g. a
        table name or ``read_parquet('x.parquet')`` (see
        :func:`parquet_source`). Subqueries must be parenthesised.
    observation_end : str
        ISO date (``'YYYY-MM-DD'``: that whole day is included, the same
        convention as ``cvm.features.btyd_summary``) or ISO timestamp
        (inclusive upper bound on ``ts``).
    totals : bool, default True
        Also compute ``revenue``, ``returns`` and ``orders``.

    Returns
    -------
    str
        The SQL text; one row per customer with columns ``customer_id,
        frequency, recency, T, monetary_value, first_purchase,
        last_purchase`` (+ ``revenue, returns, orders`` with ``totals``).

    Raises
    ------
    ValueError
        If ``observation_end`` is not an ISO date/timestamp.
    """
    text = observation_end.strip()
    try:
        end_day = dt.date.fromisoformat(text)
    except ValueError:
        end = dt.datetime.fromisoformat(text)
        end_day = end.date()
        ts_filter = f"ts <= TIMESTAMP {_quote(end.isoformat(sep=' '))}"
    else:
        next_day = dt.datetime.combine(end_day + dt.timedelta(days=1), dt.time())
        ts_filter = f"ts < TIMESTAMP {_quote(next_day.isoformat(sep=' '))}"
    day_lit = _quote(end_day.isoformat())
    # One aggregation pass per level: rows -> (customer, day) occasions ->
    # customers. The first occasion's value is picked with arg_min so no
    # window function (and no second scan) is needed. Distinct transactions
    # are counted per day and summed: exact as long as a transaction_id does
    # not span two calendar days (a transaction has a single timestamp).
    occ_totals = (
        ",\n        SUM(CASE WHEN amount < 0 THEN amount ELSE 0 END) AS day_returns"
        ",\n        COUNT(DISTINCT transaction_id) AS day_orders"
        if totals
        else ""
    )
    cust_totals = (
        ",\n        SUM(day_returns) AS returns,\n        SUM(day_orders) AS orders"
        if totals
        else ""
    )
    out_totals = (
        "\n    revenue,\n    returns,\n    CAST(orders AS BIGINT) AS orders," if totals else ""
    )
    return f"""
WITH occasions AS (
    SELECT
        customer_id,
        CAST(ts AS DATE) AS day,
        SUM(amount) AS day_amount{occ_totals}
    FROM {source_sql}
    WHERE {ts_filter}
    GROUP BY customer_id, CAST(ts AS DATE)
),
customers AS (
    SELECT
        customer_id,
        MIN(day) AS first_purchase,
        MAX(day) AS last_purchase,
        COUNT(*) AS n_days,
        SUM(day_amount) AS revenue,
        ARG_MIN(day_amount, day) AS first_amount{cust_totals}
    FROM occasions
    GROUP BY customer_id
)
SELECT
    customer_id,
    CAST(n_days - 1 AS BIGINT) AS frequency,
    DATE_DIFF('day', first_purchase, last_purchase) / 7.0 AS recency,
    DATE_DIFF('day', first_purchase, DATE {day_lit}) / 7.0 AS "T",
    CASE
        WHEN n_days > 1 THEN (revenue - first_amount) / (n_days - 1)
        ELSE 0.0
    END AS monetary_value,{out_totals}
    first_purchase,
    last_purchase
FROM customers
""".strip()


def _connect(database: str | Path | None, threads: int | None, read_only: bool) -> Any:
    """Open a DuckDB connection (lazy import keeps the parent process lean)."""
    import duckdb

    config: dict[str, str | bool | int | float | list[str]] = {}
    if threads:
        config["threads"] = threads
    db = ":memory:" if database is None else str(database)
    return duckdb.connect(db, read_only=read_only and database is not None, config=config)


def step_parquet_count(parquet: str, threads: int | None = None) -> dict[str, Any]:
    """Measured step: ``SELECT count(*) FROM read_parquet(path)``.

    Parameters
    ----------
    parquet : str
        Parquet file path.
    threads : int, optional
        DuckDB thread count (default: DuckDB's own default).

    Returns
    -------
    dict
        ``{"rows": int}``.
    """
    con = _connect(None, threads, read_only=False)
    row = con.execute(f"SELECT count(*) FROM {parquet_source(parquet)}").fetchone()
    con.close()
    return {"rows": int(row[0])}


def step_ctas_scan(parquet: str, database: str, threads: int | None = None) -> dict[str, Any]:
    """Measured step: ``CREATE TABLE t AS SELECT * FROM read_parquet(path)``.

    The table is created in a fresh persistent DuckDB file (deleted first),
    which is the like-for-like baseline for ingesting into an on-disk store.

    Parameters
    ----------
    parquet : str
        Parquet file path.
    database : str
        DuckDB database file to (re)create.
    threads : int, optional
        DuckDB thread count.

    Returns
    -------
    dict
        Row count of ``t`` and the split between CTAS and ``count(*)``.
    """
    db = Path(database)
    db.parent.mkdir(parents=True, exist_ok=True)
    for stale in (db, db.with_name(db.name + ".wal")):
        stale.unlink(missing_ok=True)
    con = _connect(db, threads, read_only=False)
    t0 = time.perf_counter()
    con.execute(f"CREATE TABLE t AS SELECT * FROM {parquet_source(parquet)}")
    t1 = time.perf_counter()
    row = con.execute("SELECT count(*) FROM t").fetchone()
    t2 = time.perf_counter()
    con.close()
    t3 = time.perf_counter()
    return {
        "rows": int(row[0]),
        "ctas_s": round(t1 - t0, 4),
        "count_s": round(t2 - t1, 4),
        "close_s": round(t3 - t2, 4),
        "db_bytes": db.stat().st_size,
    }


def step_summary_sql(
    observation_end: str,
    parquet: str | None = None,
    database: str | None = None,
    table: str = "t",
    threads: int | None = None,
    totals: bool = True,
) -> dict[str, Any]:
    """Measured step: run :func:`btyd_summary_sql` and fetch it into Arrow.

    Exactly one of ``parquet`` (query the file directly) or ``database``
    (query ``table`` in an existing DuckDB file, read-only) must be given.
    The full result is materialised as a ``pyarrow.Table`` -- what a caller
    consuming the features would pay for.

    Parameters
    ----------
    observation_end : str
        ISO date (whole day included) or timestamp; see
        :func:`btyd_summary_sql`.
    parquet : str, optional
        Parquet file path.
    database : str, optional
        DuckDB database file holding ``table``.
    table : str, default "t"
        Table name inside ``database``.
    threads : int, optional
        DuckDB thread count.
    totals : bool, default True
        Passed to :func:`btyd_summary_sql`.

    Returns
    -------
    dict
        Number of customers and a few checksums (handy to compare with the
        cvm implementation).

    Raises
    ------
    ValueError
        If not exactly one of ``parquet``/``database`` is given.
    """
    if (parquet is None) == (database is None):
        raise ValueError("give exactly one of parquet= or database=")
    if parquet is not None:
        con = _connect(None, threads, read_only=False)
        source = parquet_source(parquet)
    else:
        con = _connect(database, threads, read_only=True)
        source = '"' + table.replace('"', '""') + '"'
    result = con.sql(btyd_summary_sql(source, observation_end, totals=totals)).to_arrow_table()
    con.close()
    return summary_facts(result)


def summary_facts(result: Any) -> dict[str, Any]:
    """Checksums of a BTYD summary table, for cross-implementation checks.

    Parameters
    ----------
    result : pyarrow.Table
        Summary with (some of) the columns ``frequency, recency, T`` (or
        ``t``), ``monetary_value, revenue, returns, orders``; missing ones are
        skipped.

    Returns
    -------
    dict
        Row count and rounded column sums (``sum_<column>``).
    """
    import pyarrow.compute as pc

    facts: dict[str, Any] = {"customers": int(result.num_rows)}
    names = {name.lower(): name for name in result.column_names}  # "T" or "t"
    for col in ("frequency", "recency", "T", "monetary_value", "revenue", "returns", "orders"):
        if col.lower() in names:
            value = pc.sum(result.column(names[col.lower()])).as_py()
            facts[f"sum_{col}"] = round(float(value or 0.0), 4)
    return facts
