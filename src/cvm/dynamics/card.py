"""The customer card: everything an agent needs about one customer, mid-call.

One call gathers the customer's figures from an analysis run (the three values, tier,
RFM segment, lifecycle stage and its reason, P(alive), expected purchases, CLV,
satisfaction) with the records behind them: the ids and identity records that make up
the customer, recent transactions and interactions, survey answers and referrals. Any
id of the customer works — the unified id, or an id from another source (a call-centre
id, a web account) that identity resolution merged into it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cvm.errors import NotFoundError
from cvm.store import Store

__all__ = ["customer_view", "find_run", "resolve_customer_id"]


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _rows(store: Store, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = store.con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]


def resolve_customer_id(store: Store, customer_id: str) -> str:
    """Return the unified id of any id of a customer (itself when it was never merged)."""
    row = store.con.execute(
        "SELECT unified_id FROM customer_map WHERE customer_id = ?", [customer_id]
    ).fetchone()
    return str(row[0]) if row else customer_id


def find_run(store: Store, run_id: str | None) -> tuple[str, dt.date, str]:
    """Return (run id, as_of, time unit) of a run, the latest when ``run_id`` is None."""
    if run_id is None:
        row = store.con.execute(
            "SELECT run_id, as_of, time_unit FROM runs ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
        if row is None:
            raise NotFoundError("no analysis runs yet; run 'cvm analyze' first", path=store.path)
    else:
        row = store.con.execute(
            "SELECT run_id, as_of, time_unit FROM runs WHERE run_id = ?", [run_id]
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no run '{run_id}'", path=store.path)
    return str(row[0]), row[1], str(row[2])


def customer_view(
    store: Store, customer_id: str, *, run_id: str | None = None, recent: int = 10
) -> dict[str, Any]:
    """Return one customer's card from a run (default: the latest).

    Parameters
    ----------
    store
        The store.
    customer_id
        Any id of the customer (see the module docstring).
    run_id
        The analysis run; the latest when ``None``.
    recent
        How many recent transactions and interactions to include.

    Returns
    -------
    dict
        ``customer_id`` (the unified id), ``asked_id``, ``run_id``, ``as_of``,
        ``time_unit``, ``figures`` (the snapshot row: values, tier, segments, stage,
        predictions, satisfaction), ``ids`` (every id merged into the customer, with the
        rule that linked it), ``identities`` (identity records), ``profile`` (the
        customers-table row), ``periods``, ``recent_transactions``,
        ``recent_interactions``, ``surveys``, ``referred_by`` and ``referred``.

    Raises
    ------
    NotFoundError
        If the run does not exist or does not contain the customer.
    """
    run_id, as_of, unit = find_run(store, run_id)
    unified_id = resolve_customer_id(store, customer_id)
    cursor = store.con.execute(
        "SELECT * EXCLUDE (run_id) FROM customer_snapshots WHERE run_id = ? AND customer_id = ?",
        [run_id, unified_id],
    )
    row = cursor.fetchone()
    if row is None:
        shown = customer_id if unified_id == customer_id else f"{customer_id} ({unified_id})"
        raise NotFoundError(
            f"customer '{shown}' has no purchase on or before {as_of.isoformat()} in run {run_id}",
            path=store.path,
        )
    names = [d[0] for d in cursor.description]
    figures = {n: _plain(v) for n, v in zip(names, row, strict=True)}
    # every id of this customer: itself plus the ids merged into it
    ids = _rows(
        store,
        "SELECT customer_id AS id, rule FROM customer_map WHERE unified_id = ? "
        "ORDER BY customer_id <> ?, customer_id",
        [unified_id, unified_id],
    ) or [{"id": unified_id, "rule": "self"}]
    all_ids = [i["id"] for i in ids]
    marks = ", ".join("?" for _ in all_ids)
    day = [as_of]
    return {
        "customer_id": unified_id,
        "asked_id": customer_id,
        "run_id": run_id,
        "as_of": as_of.isoformat(),
        "time_unit": unit,
        "figures": figures,
        "ids": ids,
        "identities": _rows(
            store,
            "SELECT DISTINCT source, source_id, customer_id, email, phone, loyalty_card, "
            f"external_id FROM identities WHERE source_id IN ({marks}) "
            f"OR customer_id IN ({marks}) ORDER BY source, source_id",
            [*all_ids, *all_ids],
        ),
        "profile": next(
            iter(
                _rows(
                    store,
                    "SELECT customer_id, acquired_at, acquisition_channel, email, phone, "
                    f"loyalty_card, attributes FROM customers WHERE customer_id IN ({marks}) "
                    "ORDER BY customer_id <> ?, customer_id LIMIT 1",
                    [*all_ids, unified_id],
                )
            ),
            None,
        ),
        "periods": _rows(
            store,
            "SELECT period_start, occasions, revenue, margin FROM period_snapshots "
            "WHERE run_id = ? AND customer_id = ? ORDER BY period_start",
            [run_id, unified_id],
        ),
        "recent_transactions": _rows(
            store,
            "SELECT ts, amount, transaction_id, product_id, quantity, channel FROM transactions "
            f"WHERE customer_id IN ({marks}) AND ts::DATE <= ? ORDER BY ts DESC LIMIT ?",
            [*all_ids, *day, recent],
        ),
        "recent_interactions": _rows(
            store,
            "SELECT ts, kind, channel, cost, csat, resolved, customer_id AS recorded_as "
            f"FROM interactions WHERE customer_id IN ({marks}) AND ts::DATE <= ? "
            "ORDER BY ts DESC LIMIT ?",
            [*all_ids, *day, recent],
        ),
        "surveys": _rows(
            store,
            "SELECT ts, nps, csat, comment FROM surveys "
            f"WHERE customer_id IN ({marks}) AND ts::DATE <= ? ORDER BY ts DESC LIMIT ?",
            [*all_ids, *day, recent],
        ),
        "referred_by": _rows(
            store,
            "SELECT referrer_id, ts FROM referrals "
            f"WHERE referred_id IN ({marks}) ORDER BY ts NULLS LAST, referrer_id",
            all_ids,
        ),
        "referred": _rows(
            store,
            "SELECT referred_id, ts FROM referrals "
            f"WHERE referrer_id IN ({marks}) AND referred_id NOT IN ({marks}) "
            "ORDER BY ts NULLS LAST, referred_id",
            [*all_ids, *all_ids],
        ),
    }
