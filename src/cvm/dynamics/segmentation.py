"""Values, tiers, RFM, lifecycle and satisfaction for one run's customers.

The stage of :func:`cvm.dynamics.analyze` after the models: from the run's base snapshot
(features, realized and potential value, held in a temporary table) it adds influence
value from the referral graph, the value score and tier, the RFM segment, the lifecycle
stage with its reason and each customer's latest satisfaction — every later stage
(migration, alerts, playbook) reads these columns from the stored snapshot.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import ibis
import pyarrow as pa

from cvm.config import Settings
from cvm.segments.lifecycle import lifecycle_from_periods
from cvm.segments.relationship import customer_satisfaction
from cvm.segments.rfm import load_rfm_rules, rfm
from cvm.segments.tiers import value_tiers
from cvm.store import Store
from cvm.store.schema import SEGMENT_COLUMNS
from cvm.value.influence import influence_value
from cvm.value.score import value_score

__all__ = ["SegmentationResult", "segment_customers"]

Table = Any  # ibis.expr.types.Table


@dataclass(frozen=True)
class SegmentationResult:
    """Where the enriched rows are and what the referral graph's cleaning found.

    Attributes
    ----------
    table
        Temporary table with the enriched rows.
    temporary
        Every temporary table created (``table`` included), for the caller to drop.
    referrals
        The referral graph's cleaning counts (:meth:`InfluenceResult.counts`).
    """

    table: str
    temporary: list[str] = field(default_factory=list)
    referrals: dict[str, int] = field(default_factory=dict)


def _materialise(store: Store, expr: Table, prefix: str, created: list[str]) -> Table:
    """Write ``expr`` into a temporary table and return that table (read it twice, cheaply)."""
    name = f"__cvm_{prefix}_{uuid.uuid4().hex[:12]}"
    store.con.execute(f"CREATE TEMP TABLE {name} AS {store.backend.compile(expr)}")
    created.append(name)
    return store.backend.table(name)


def _until(table: Table, as_of: dt.date) -> Table:
    return table.filter(table.ts.isnull() | (table.ts.date() <= as_of))


def _influence(
    store: Store,
    base: Table,
    referrals: Table,
    as_of: dt.date,
    settings: Settings,
    created: list[str],
) -> tuple[Table | None, dict[str, int]]:
    """Influence value of the customers of ``base`` in the referral graph.

    Returns ``None`` without referrals. Only the base values of the customers named by
    a referral are read (everyone else's influence is 0 and does not depend on them).
    """
    edges = _until(referrals, as_of).select("referrer_id", "referred_id", "ts")
    frame = store.to_arrow(edges).to_pandas()
    if frame.empty:
        return None, {}
    named = edges.select(customer_id=edges.referrer_id).union(
        edges.select(customer_id=edges.referred_id)
    )
    in_graph = base.semi_join(named, "customer_id")
    values = store.to_arrow(
        in_graph.select(
            "customer_id",
            base_value=in_graph.realized_value.fill_null(0.0)
            + in_graph.potential_value.fill_null(0.0),
        )
    ).to_pandas()
    result = influence_value(frame, values, settings.value.influence)
    columns = ["customer_id", "influence_value", "referred_customers", "referred_total"]
    name = f"__cvm_influence_{uuid.uuid4().hex[:12]}"
    store.con.register(name, pa.Table.from_pandas(result.frame[columns], preserve_index=False))
    try:
        table = _materialise(store, store.backend.table(name), "influence", created)
    finally:
        store.con.unregister(name)
    return table, result.counts()


def segment_customers(
    store: Store,
    base: Table,
    *,
    periods: Table,
    settings: Settings,
    as_of: dt.date,
    tables: dict[str, Table],
) -> SegmentationResult:
    """Add influence value, score, tier, RFM, lifecycle and satisfaction to ``base``.

    Parameters
    ----------
    store
        The open store (temporary tables are created on its connection).
    base
        The run's base snapshot: one row per customer with the features, ``margin``,
        ``cost_to_serve``, ``realized_value``, ``p_alive`` and ``potential_value``.
    periods
        The run's per-period series (``customer_id``, ``period_start``, ``occasions``,
        ``revenue``, ``margin``).
    settings
        Value, segment and lifecycle settings.
    as_of
        The run's date.
    tables
        The input tables with unified customer ids: ``referrals``, ``surveys``,
        ``interactions`` and ``customers``.

    Returns
    -------
    SegmentationResult
        The temporary table holding ``base``'s columns plus
        :data:`~cvm.store.schema.SEGMENT_COLUMNS`, and the referral cleaning counts.
    """
    created: list[str] = []
    influence, counts = _influence(store, base, tables["referrals"], as_of, settings, created)
    # RFM needs only the base's columns: its cut points come from a scan of ``base``.
    folder = settings.source.parent if settings.source is not None else None
    rules = load_rfm_rules(settings.segments.rfm.rules_path(folder))
    segmented = rfm(base, settings.segments.rfm, as_of=as_of, rules=rules)
    if influence is None:
        with_influence = segmented.mutate(
            influence_value=ibis.literal(0.0, type="float64"),
            referred_customers=ibis.literal(0, type="int64"),
            referred_total=ibis.literal(0, type="int64"),
        )
    else:
        joined = segmented.left_join(influence, "customer_id")
        with_influence = joined.select(
            *segmented.columns,
            influence_value=joined.influence_value.fill_null(0.0),
            referred_customers=joined.referred_customers.fill_null(0),
            referred_total=joined.referred_total.fill_null(0),
        )
    attributes = None
    if settings.value.score.attributes:
        customers = tables["customers"]
        attributes = customers.select("customer_id", "attributes")
    # Tiers and RFM read their input twice (cut points first, then the comparison).
    # ``base`` is a table and the influence join's build side is small, so the scored
    # and tiered rows stay lazy: the only full-width write is the enriched table (each
    # intermediate one cost about as much as the stage's trend). Attribute weights
    # parse JSON per customer, which is worth doing once.
    scored = value_score(with_influence, settings.value.score, attributes=attributes)
    if attributes is not None:
        scored = _materialise(store, scored, "scored", created)
    tiered = value_tiers(scored, settings.segments.tiers)
    satisfaction = customer_satisfaction(
        tables["surveys"], tables["interactions"], as_of=as_of
    ).select("customer_id", "nps", "nps_category", "csat")
    joined = tiered.left_join(satisfaction, "customer_id")
    satisfied = joined.select(
        *tiered.columns,
        nps=joined.nps.cast("float64"),
        nps_category=joined.nps_category,
        csat=joined.csat.cast("float64"),
    )
    staged = lifecycle_from_periods(
        satisfied,
        periods,
        as_of=as_of,
        settings=settings.segments.lifecycle,
        period=settings.features.period,
    )
    keep = [*base.columns, *(c for c in SEGMENT_COLUMNS if c not in base.columns)]
    final = staged.select(*[c for c in keep if c in staged.columns])
    missing = [c for c in keep if c not in final.columns]
    if missing:  # pragma: no cover - a contract between the stages
        raise RuntimeError(f"segmentation lost columns {missing}")
    table = _materialise(store, final, "segmented", created)
    return SegmentationResult(table=table.get_name(), temporary=created, referrals=counts)
