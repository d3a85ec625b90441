"""Analysis runs kept as snapshots over time."""

from cvm.dynamics.snapshots import (
    RunOverview,
    analyze,
    customer_view,
    latest_run_id,
    list_runs,
    model_fits,
    run_overview,
)

__all__ = [
    "RunOverview",
    "analyze",
    "customer_view",
    "latest_run_id",
    "list_runs",
    "model_fits",
    "run_overview",
]
