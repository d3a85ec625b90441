"""Realized value: the profit a customer has already contributed.

Realized value = Σ profit of the customer's transactions (margin, or amount − cost, or
amount × the configured margin rate; returns subtract) − Σ cost to serve. Cost to
serve comes from service interactions; until those are loaded it is zero.
"""

from __future__ import annotations

from typing import Any

import ibis

__all__ = ["realized_value"]

Table = Any  # ibis.expr.types.Table


def realized_value(totals: Table, cost_to_serve: Table | None = None) -> Table:
    """Add ``cost_to_serve`` and ``realized_value`` to per-customer totals.

    Parameters
    ----------
    totals
        Output of :func:`cvm.features.customer_totals` (needs ``customer_id`` and
        ``margin``).
    cost_to_serve
        Optional table of ``customer_id`` and ``cost`` (summed per customer here).

    Returns
    -------
    Table
        ``totals`` with ``cost_to_serve`` (0 when unknown) and ``realized_value``.
    """
    if cost_to_serve is None:
        with_cost = totals.mutate(cost_to_serve=ibis.literal(0.0, type="float64"))
    else:
        per_customer = cost_to_serve.group_by("customer_id").aggregate(
            cost_to_serve=cost_to_serve.cost.sum()
        )
        joined = totals.left_join(per_customer, "customer_id")
        with_cost = joined.select(
            *totals.columns, cost_to_serve=joined.cost_to_serve.fill_null(0.0)
        )
    return with_cost.mutate(realized_value=with_cost.margin - with_cost.cost_to_serve)
