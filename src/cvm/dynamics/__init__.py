"""Analysis runs kept as snapshots over time."""

from cvm.dynamics.card import customer_view, resolve_customer_id
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
    "RunOverview",
    "SegmentOverview",
    "analyze",
    "customer_view",
    "latest_run_id",
    "list_runs",
    "model_fits",
    "resolve_customer_id",
    "run_kpis",
    "run_overview",
    "segment_overview",
]
