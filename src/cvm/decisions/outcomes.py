"""The outcomes of logged actions, aggregated in the store's engine (Ibis).

The unit of measurement of :mod:`cvm.decisions.uplift` is a *cell*: one action within one
campaign. :func:`cell_outcomes` computes, in one set-based query on any Ibis backend,
each cell's groups (treatment, control): customers, buyers in the window after their
action, the mean and sample variance of their net revenue in the window (overall and
among buyers), cost, customers unknown to the store and customers found in both groups.
Only these sufficient statistics leave the engine; the intervals are computed from them.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Final

import ibis
import numpy as np

from cvm.errors import ValidationError

__all__ = ["GROUPS", "MIN_GROUP", "Cell", "cell_outcomes"]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)
FloatArray = np.ndarray[Any, np.dtype[np.float64]]

#: The two groups of a randomised action, in the order treatment − control.
GROUPS: Final[tuple[str, str]] = ("treatment", "control")

#: Fewest customers per group for a cell to be measured (a sample variance needs two).
MIN_GROUP: Final[int] = 2


@dataclass(frozen=True)
class Cell:
    """One action in one campaign; each array holds (treatment, control).

    Attributes
    ----------
    campaign, action
        The cell.
    n, buyers, revenue, cost, unknown
        Customers, buyers in the window, their net revenue in the window, the cost of
        their action rows, and customers unknown to the store.
    mean, var, buyer_mean, buyer_var
        Mean and sample variance of net revenue per customer, and among buyers (NaN
        when undefined).
    first, last
        Earliest and latest action time.
    conflicting
        Customers in both groups (left out of every other figure).
    """

    campaign: str
    action: str
    n: FloatArray
    buyers: FloatArray
    revenue: FloatArray
    mean: FloatArray
    var: FloatArray
    buyer_mean: FloatArray
    buyer_var: FloatArray
    cost: FloatArray
    unknown: FloatArray
    first: dt.datetime
    last: dt.datetime
    conflicting: int

    @property
    def problem(self) -> str | None:
        """Why the cell cannot be measured, or ``None``."""
        treated, control = int(self.n[0]), int(self.n[1])
        if control == 0:
            return "no control group"
        if treated == 0:
            return "no treatment group"
        if min(treated, control) < MIN_GROUP:
            return (
                f"too few customers to measure ({treated} treated, {control} control; "
                f"at least {MIN_GROUP} each)"
            )
        return None


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _group_rows(
    actions: Table, transactions: Table, known: Table | None, *, window_days: int, end: Any
) -> list[dict[str, Any]]:
    """Aggregate each cell's groups in the engine: one row per (campaign, action, group).

    One query: each customer of a cell is one unit (first action time, group); units
    in both groups are counted in ``conflicting`` and kept out of every other figure;
    ``invalid`` holds a group value other than treatment or control, if any.
    """
    end_ts = ibis.literal(end, type="timestamp")
    a = actions.filter(actions.ts < end_ts)
    campaign = ibis.coalesce(a.campaign, a.action) if "campaign" in a.columns else a.action
    cost = a.cost.cast("float64").fill_null(0.0) if "cost" in a.columns else ibis.literal(0.0)
    a = a.select(
        campaign=campaign.cast("string"),
        action=a.action.cast("string"),
        customer_id=a.customer_id.cast("string"),
        ts=a.ts,
        arm=a["group"].cast("string"),
        cost=cost,
    )
    units = a.group_by("campaign", "action", "customer_id").aggregate(
        start=a.ts.min(),
        arm=a.arm.min(),
        conflict=a.arm.nunique() > 1,
        invalid=a.arm.min(where=~a.arm.isin(GROUPS)),
        cost=a.cost.sum(),
    )
    tx = transactions.filter(transactions.ts < end_ts).select(
        tx_customer=transactions.customer_id.cast("string"),
        tx_ts=transactions.ts,
        amount=transactions.amount.cast("float64"),
    )
    joined = units.left_join(
        tx,
        [
            units.customer_id == tx.tx_customer,
            tx.tx_ts > units.start,
            tx.tx_ts <= units.start + ibis.interval(days=window_days),
        ],
    )
    per_unit = joined.group_by(*units.columns).aggregate(
        revenue=joined.amount.sum(), purchases=joined.amount.count(where=joined.amount > 0)
    )
    if known is not None:
        ids = known.select(known_id=known.customer_id.cast("string")).distinct()
        flagged = per_unit.left_join(ids, per_unit.customer_id == ids.known_id)
        per_unit = flagged.select(*per_unit.columns, is_known=flagged.known_id.notnull())
    else:
        per_unit = per_unit.mutate(is_known=ibis.literal(True))
    p = per_unit.mutate(revenue=per_unit.revenue.fill_null(0.0), bought=per_unit.purchases > 0)
    ok = ~p.conflict
    stats = p.group_by("campaign", "action", "arm").aggregate(
        customers=p.count(where=ok),
        buyers=p.count(where=ok & p.bought),
        revenue=p.revenue.sum(where=ok),
        mean=p.revenue.mean(where=ok),
        var=p.revenue.var(how="sample", where=ok),
        buyer_mean=p.revenue.mean(where=ok & p.bought),
        buyer_var=p.revenue.var(how="sample", where=ok & p.bought),
        cost=p.cost.sum(where=ok),
        unknown=p.count(where=ok & ~p.is_known),
        conflicting=p.count(where=p.conflict),
        invalid=p.invalid.max(),
        first=p.start.min(where=ok),
        last=p.start.max(where=ok),
    )
    rows: list[dict[str, Any]] = stats.to_pyarrow().to_pylist()
    return rows


def _pivot(rows: list[dict[str, Any]]) -> list[Cell]:
    """Pivot the per-group rows into cells (a group missing from a cell counts 0)."""
    by_cell: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in rows:
        bad = row["invalid"] if row["invalid"] is not None else row["arm"]
        if bad not in GROUPS:
            raise ValidationError(
                f"an action's group must be 'treatment' or 'control', got {bad!r} "
                f"(campaign '{row['campaign']}', action '{row['action']}')",
                column="group",
                value=bad,
                expected="treatment or control",
            )
        by_cell.setdefault((str(row["campaign"]), str(row["action"])), {})[str(row["arm"])] = row
    cells = []
    for (campaign, action), groups in by_cell.items():

        def column(name: str, groups: dict[str, dict[str, Any]] = groups) -> Any:
            return np.array(
                [_number(groups[g][name]) if g in groups else 0.0 for g in GROUPS],
                dtype=np.float64,
            )

        times = [r[k] for r in groups.values() for k in ("first", "last") if r[k] is not None]
        cells.append(
            Cell(
                campaign=campaign,
                action=action,
                n=column("customers"),
                buyers=column("buyers"),
                revenue=column("revenue"),
                mean=column("mean"),
                var=column("var"),
                buyer_mean=column("buyer_mean"),
                buyer_var=column("buyer_var"),
                cost=column("cost"),
                unknown=column("unknown"),
                first=min(times, default=dt.datetime.min),
                last=max(times, default=dt.datetime.min),
                conflicting=sum(int(r["conflicting"]) for r in groups.values()),
            )
        )
    return cells


def cell_outcomes(
    actions: Table,
    transactions: Table,
    known: Table | None,
    *,
    window_days: int,
    end: dt.datetime,
) -> list[Cell]:
    """Return each cell's outcomes from actions and the transactions that follow them.

    Parameters
    ----------
    actions
        ``customer_id``, ``action``, ``ts``, ``group`` and optionally ``campaign``
        (rows without one form a campaign named after their action) and ``cost``.
    transactions
        ``customer_id``, ``ts``, ``amount``.
    known
        A table whose ``customer_id`` lists the known customers, or ``None``.
    window_days
        A customer's window is ``(first action ts, + window_days]``.
    end
        Actions and transactions at or after this moment are ignored.

    Raises
    ------
    ValidationError
        If a group is neither ``"treatment"`` nor ``"control"``.
    """
    return _pivot(_group_rows(actions, transactions, known, window_days=window_days, end=end))
