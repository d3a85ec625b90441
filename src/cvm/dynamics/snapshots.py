"""Analysis runs and their snapshots.

``analyze`` computes every customer's features and realized value at an ``as_of`` date
inside the store's engine and keeps them, with the settings used, as an immutable
snapshot tied to a run id, so that results can be compared over time and reproduced.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import ibis

from cvm import __version__
from cvm.config import Settings
from cvm.errors import DataError, NotFoundError
from cvm.features import btyd_summary, customer_totals, period_series
from cvm.store import Store
from cvm.value import realized_value

__all__ = [
    "RunOverview",
    "analyze",
    "customer_view",
    "latest_run_id",
    "list_runs",
    "run_overview",
]

#: Called with (steps done, steps total, what is happening).
StepProgress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class RunOverview:
    """The headline figures of one analysis run."""

    run_id: str
    as_of: dt.date
    customers: int
    transactions: int
    revenue: float
    returns: float
    realized_value: float
    top_share: float
    top_value_share: float
    top_customers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        return data


def _default_as_of(store: Store) -> dt.date:
    row = store.con.execute("SELECT max(ts)::DATE FROM transactions").fetchone()
    if row is None or row[0] is None:
        raise DataError("the store has no transactions; run 'cvm ingest transactions' first")
    value: dt.date = row[0]
    return value


def analyze(
    store: Store,
    settings: Settings | None = None,
    *,
    as_of: dt.date | None = None,
    progress: StepProgress | None = None,
) -> RunOverview:
    """Compute features and realized value at ``as_of`` and store them as a snapshot.

    Parameters
    ----------
    store
        The open store (with transactions).
    settings
        Settings (time unit, period, margin rate); defaults when ``None``.
    as_of
        Observation end (inclusive); defaults to the date of the last transaction.
    progress
        Optional callback ``(done, total, step)``.

    Returns
    -------
    RunOverview
        The run's headline figures.

    Raises
    ------
    DataError
        If the store holds no transactions on or before ``as_of``.
    """
    settings = settings or Settings()
    as_of = as_of or _default_as_of(store)
    steps = 4

    def step(done: int, what: str) -> None:
        if progress is not None:
            progress(done, steps, what)

    step(0, "features")
    transactions = store.table("transactions")
    unit = settings.features.time_unit
    rate = settings.value.margin_rate
    summary = btyd_summary(transactions, observation_end=as_of, time_unit=unit)
    totals = realized_value(customer_totals(transactions, observation_end=as_of, margin_rate=rate))
    joined = summary.join(totals.drop("first_purchase", "last_purchase"), "customer_id")
    run_id = f"{as_of:%Y%m%d}-{uuid.uuid4().hex[:8]}"
    snapshot = joined.select(
        run_id=ibis.literal(run_id),
        customer_id=joined.customer_id,
        first_purchase=joined.first_purchase,
        last_purchase=joined.last_purchase,
        frequency=joined.frequency,
        recency=joined.recency,
        t=joined.t,
        monetary_value=joined.monetary_value,
        occasions=joined.occasions,
        transactions=joined.transactions,
        revenue=joined.revenue,
        returns=joined.returns,
        margin=joined.margin,
        realized_value=joined.realized_value,
    )
    periods = period_series(
        transactions, observation_end=as_of, period=settings.features.period, margin_rate=rate
    )
    periods = periods.select(
        run_id=ibis.literal(run_id), **{c: periods[c] for c in periods.columns}
    )
    con = store.con
    with store.transaction():
        step(1, "customer snapshot")
        con.execute(f"INSERT INTO customer_snapshots {store.backend.compile(snapshot)}")
        step(2, "period series")
        inserted = con.execute(
            f"INSERT INTO period_snapshots {store.backend.compile(periods)}"
        ).fetchone()
        n_periods = int(inserted[0]) if inserted else 0
        row = con.execute(
            "SELECT count(*) FROM customer_snapshots WHERE run_id = ?", [run_id]
        ).fetchone()
        n = int(row[0]) if row else 0
        if n == 0:
            raise DataError(f"no transactions on or before {as_of.isoformat()}")
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                as_of,
                dt.datetime.now(),
                unit,
                settings.features.period,
                settings.model_dump_json(),
                n,
                n_periods,
                __version__,
            ],
        )
    step(3, "overview")
    overview = run_overview(store, run_id, top_share=settings.value.top_share)
    step(4, "done")
    return overview


def list_runs(store: Store) -> list[dict[str, Any]]:
    """Return every run, newest first: run id, as_of, created, customers."""
    rows = store.con.execute(
        "SELECT run_id, as_of, created_at, n_customers FROM runs ORDER BY created_at DESC"
    ).fetchall()
    return [
        {
            "run_id": r[0],
            "as_of": r[1].isoformat(),
            "created_at": r[2].isoformat(),
            "customers": int(r[3]),
        }
        for r in rows
    ]


def latest_run_id(store: Store) -> str:
    """Return the id of the most recent run.

    Raises
    ------
    NotFoundError
        If no analysis has been run.
    """
    row = store.con.execute("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()
    if row is None:
        raise NotFoundError("no analysis run yet; run 'cvm analyze' first", path=store.path)
    return str(row[0])


def _run_as_of(store: Store, run_id: str) -> dt.date:
    row = store.con.execute("SELECT as_of FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        raise NotFoundError(f"no run '{run_id}'", path=store.path)
    as_of: dt.date = row[0]
    return as_of


def run_overview(
    store: Store, run_id: str | None = None, *, top_share: float = 0.2, top_n: int = 5
) -> RunOverview:
    """Summarise a run: customers, revenue, realized value and its concentration.

    ``top_value_share`` is the share of total realized value held by the top
    ``top_share`` of customers ranked by realized value (the 80/20 view).
    """
    run_id = run_id or latest_run_id(store)
    as_of = _run_as_of(store, run_id)
    con = store.con
    row = con.execute(
        "SELECT count(*), sum(transactions), sum(revenue), sum(returns), sum(realized_value) "
        "FROM customer_snapshots WHERE run_id = ?",
        [run_id],
    ).fetchone()
    assert row is not None
    customers, n_tx, revenue, returns, value = int(row[0]), int(row[1] or 0), *row[2:]
    k = max(1, math.ceil(customers * top_share))
    top_row = con.execute(
        "SELECT sum(realized_value) FROM (SELECT realized_value FROM customer_snapshots "
        "WHERE run_id = ? ORDER BY realized_value DESC LIMIT ?)",
        [run_id, k],
    ).fetchone()
    top_value = float(top_row[0]) if top_row and top_row[0] is not None else 0.0
    total = float(value or 0.0)
    top = con.execute(
        "SELECT customer_id, occasions, revenue, realized_value FROM customer_snapshots "
        "WHERE run_id = ? ORDER BY realized_value DESC, customer_id LIMIT ?",
        [run_id, top_n],
    ).fetchall()
    return RunOverview(
        run_id=run_id,
        as_of=as_of,
        customers=customers,
        transactions=n_tx,
        revenue=float(revenue or 0.0),
        returns=float(returns or 0.0),
        realized_value=total,
        top_share=top_share,
        top_value_share=top_value / total if total > 0 else float("nan"),
        top_customers=[
            {"customer_id": c, "occasions": int(o), "revenue": float(r), "realized_value": float(v)}
            for c, o, r, v in top
        ],
    )


def customer_view(
    store: Store, customer_id: str, *, run_id: str | None = None, recent: int = 10
) -> dict[str, Any]:
    """Return one customer's figures from a run plus their recent transactions.

    Raises
    ------
    NotFoundError
        If the run does not exist or does not contain the customer.
    """
    run_id = run_id or latest_run_id(store)
    as_of = _run_as_of(store, run_id)
    cursor = store.con.execute(
        "SELECT * EXCLUDE (run_id) FROM customer_snapshots WHERE run_id = ? AND customer_id = ?",
        [run_id, customer_id],
    )
    row = cursor.fetchone()
    if row is None:
        raise NotFoundError(
            f"customer '{customer_id}' has no purchase on or before {as_of.isoformat()} "
            f"in run {run_id}",
            path=store.path,
        )
    names = [d[0] for d in cursor.description]
    figures = {
        n: (v.isoformat() if isinstance(v, dt.date) else v) for n, v in zip(names, row, strict=True)
    }
    tx = store.con.execute(
        "SELECT ts, amount, transaction_id, product_id, quantity FROM transactions "
        "WHERE customer_id = ? AND ts::DATE <= ? ORDER BY ts DESC LIMIT ?",
        [customer_id, as_of, recent],
    ).fetchall()
    periods = store.con.execute(
        "SELECT period_start, occasions, revenue, margin FROM period_snapshots "
        "WHERE run_id = ? AND customer_id = ? ORDER BY period_start",
        [run_id, customer_id],
    ).fetchall()
    settings = store.con.execute(
        "SELECT time_unit, period FROM runs WHERE run_id = ?", [run_id]
    ).fetchone()
    assert settings is not None
    return {
        "customer_id": customer_id,
        "run_id": run_id,
        "as_of": as_of.isoformat(),
        "time_unit": settings[0],
        "figures": figures,
        "periods": [
            {
                "period_start": p.isoformat(),
                "occasions": int(o),
                "revenue": float(r),
                "margin": float(m),
            }
            for p, o, r, m in periods
        ],
        "recent_transactions": [
            {
                "ts": ts.isoformat(sep=" "),
                "amount": float(a),
                "transaction_id": t,
                "product_id": p,
                "quantity": q,
            }
            for ts, a, t, p, q in tx
        ],
    }
