"""Analysis runs kept as snapshots over time."""

from cvm.dynamics.backfill import backfill
from cvm.dynamics.card import customer_view, resolve_customer_id
from cvm.dynamics.migration import MarkovProjection, MigrationMatrix, migration_matrix
from cvm.dynamics.overview import SegmentOverview, run_kpis, segment_overview
from cvm.dynamics.snapshots import (
    RunOverview,
    analyze,
    latest_run_id,
    list_runs,
    model_fits,
    run_overview,
)

__all__ = [
    "MarkovProjection",
    "MigrationMatrix",
    "RunOverview",
    "SegmentOverview",
    "analyze",
    "backfill",
    "customer_view",
    "latest_run_id",
    "list_runs",
    "migration_matrix",
    "model_fits",
    "resolve_customer_id",
    "run_kpis",
    "run_overview",
    "segment_overview",
]
