"""A run's segments and relationship measures: what ``cvm segments`` and ``cvm kpis`` show.

:func:`segment_overview` summarises a stored snapshot by value tier, lifecycle stage and
RFM segment (customers, value and shares, every customer in exactly one group of each),
with the value concentration (Lorenz curve, Gini, top share). :func:`run_kpis` computes
the relationship measures of :mod:`cvm.segments.relationship` for the run's date, on
the input tables with unified customer ids.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cvm.config import Settings
from cvm.dynamics.card import find_run
from cvm.segments.relationship import RelationshipKpis, relationship_kpis
from cvm.segments.tiers import gini, lorenz_curve, top_share
from cvm.store import Store
from cvm.store.identity import unified

__all__ = ["SegmentOverview", "input_table", "run_kpis", "segment_overview"]

#: Points of the Lorenz curve kept in the overview (customer shares 0, 1 %, …, 100 %).
_LORENZ_POINTS = 101


@dataclass(frozen=True)
class SegmentOverview:
    """Customers and value by tier, lifecycle stage and RFM segment for one run.

    Attributes
    ----------
    run_id, as_of, customers
        The run and its customer count.
    values
        Totals: ``realized_value`` (net of ``cost_to_serve``), ``potential_value``,
        ``influence_value``, ``total_value``.
    concentration
        ``gini`` and ``top_value_share`` of total value (the share held by the top
        ``top_share`` of customers) and ``lorenz``: [customer share, value share] pairs.
    tiers, stages, rfm
        One row per group: ``customers``, ``customer_share``, ``total_value``,
        ``value_share``, ``mean_value`` and the three values (tiers in tier order,
        stages in relationship order, RFM segments by customers).
    """

    run_id: str
    as_of: dt.date
    customers: int
    values: dict[str, float]
    concentration: dict[str, Any]
    tiers: list[dict[str, Any]]
    stages: list[dict[str, Any]]
    rfm: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        return data


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _groups(store: Store, run_id: str, column: str, order: str) -> list[dict[str, Any]]:
    cursor = store.con.execute(
        f"SELECT {column} AS name, count(*) AS customers, "
        "count(*) / sum(count(*)) OVER () AS customer_share, "
        "sum(total_value) AS total_value, "
        "sum(total_value) / nullif(sum(sum(total_value)) OVER (), 0) AS value_share, "
        "avg(total_value) AS mean_value, sum(realized_value) AS realized_value, "
        "sum(coalesce(potential_value, 0)) AS potential_value, "
        "sum(coalesce(influence_value, 0)) AS influence_value "
        f"FROM customer_snapshots WHERE run_id = ? GROUP BY {column} ORDER BY {order}",
        [run_id],
    )
    names = [d[0] for d in cursor.description]
    rows = []
    for row in cursor.fetchall():
        item = dict(zip(names, row, strict=True))
        for key in names[1:]:
            item[key] = int(item[key]) if key == "customers" else _finite(item[key])
        rows.append(item)
    return rows


def segment_overview(
    store: Store, run_id: str | None = None, *, top: float = 0.2
) -> SegmentOverview:
    """Summarise a run's customers by tier, lifecycle stage and RFM segment.

    Parameters
    ----------
    store
        The store.
    run_id
        The run; the latest when ``None``.
    top
        Share of customers in the concentration figure (the "20" of 80/20).

    Raises
    ------
    NotFoundError
        If there is no such run.
    """
    run_id, as_of, _ = find_run(store, run_id)
    row = store.con.execute(
        "SELECT count(*), sum(realized_value), sum(coalesce(cost_to_serve, 0)), "
        "sum(coalesce(potential_value, 0)), sum(coalesce(influence_value, 0)), "
        "sum(total_value) FROM customer_snapshots WHERE run_id = ?",
        [run_id],
    ).fetchone()
    assert row is not None
    keys = ("realized_value", "cost_to_serve", "potential_value", "influence_value", "total_value")
    values = {k: _finite(v) or 0.0 for k, v in zip(keys, row[1:], strict=True)}
    totals = np.asarray(
        [
            v
            for (v,) in store.con.execute(
                "SELECT coalesce(total_value, 0) FROM customer_snapshots WHERE run_id = ?",
                [run_id],
            ).fetchall()
        ],
        dtype=np.float64,
    )
    concentration: dict[str, Any] = {"top_share": top}
    if len(totals) and totals.sum() > 0:
        x, y = lorenz_curve(totals)
        keep = np.unique(np.searchsorted(x, np.linspace(0, 1, _LORENZ_POINTS)).clip(0, len(x) - 1))
        concentration |= {
            "gini": _finite(gini(totals)),
            "top_value_share": _finite(top_share(totals, top)),
            "lorenz": [[float(x[i]), float(y[i])] for i in keep],
        }
    stage_order = (
        "CASE name WHEN 'acquisition' THEN 1 WHEN 'growth' THEN 2 WHEN 'maturity' THEN 3 "
        "WHEN 'decline' THEN 4 WHEN 'departure' THEN 5 ELSE 6 END"
    )
    tiers = _groups(store, run_id, "tier_name", "min(tier), name")
    return SegmentOverview(
        run_id=run_id,
        as_of=as_of,
        customers=int(row[0]),
        values=values,
        concentration=concentration,
        tiers=tiers,
        stages=_groups(store, run_id, "lifecycle_stage", stage_order),
        rfm=_groups(store, run_id, "rfm_segment", "customers DESC, name"),
    )


def input_table(store: Store, name: str) -> Any:
    """Return an input table with unified customer ids (as stored when nothing was merged)."""
    row = store.con.execute("SELECT count(*) FROM customer_map").fetchone()
    return unified(store, name) if row and row[0] else store.table(name)


def run_kpis(
    store: Store, run_id: str | None = None, *, settings: Settings | None = None
) -> RelationshipKpis:
    """Compute the relationship measures of a run (satisfaction, loyalty, retention, …).

    Parameters
    ----------
    store
        The store.
    run_id
        The run; the latest when ``None``.
    settings
        The relationship and tier settings; defaults when ``None``.

    Raises
    ------
    NotFoundError
        If there is no such run.
    """
    settings = settings or Settings()
    run_id, as_of, _ = find_run(store, run_id)
    snapshot = store.table("customer_snapshots")
    customers = snapshot.filter(snapshot.run_id == run_id)
    surveys = input_table(store, "surveys")
    interactions = input_table(store, "interactions")
    has_surveys = store.count("surveys") > 0
    has_interactions = store.count("interactions") > 0
    return relationship_kpis(
        input_table(store, "transactions"),
        customers,
        as_of=as_of,
        surveys=surveys if has_surveys or has_interactions else None,
        interactions=interactions if has_interactions else None,
        settings=settings.segments.relationship,
        tier_order=list(settings.segments.tiers.names),
    )
