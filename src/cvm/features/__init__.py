"""Per-customer features computed in the store's engine (portable Ibis expressions)."""

from cvm.features.summary import (
    TIME_UNIT_DAYS,
    btyd_summary,
    calibration_holdout,
    customer_totals,
    period_series,
    purchase_occasions,
    repeat_purchases_by_period,
)
from cvm.features.trend import TREND_MEASURES, trend_features, value_trend

__all__ = [
    "TIME_UNIT_DAYS",
    "TREND_MEASURES",
    "btyd_summary",
    "calibration_holdout",
    "customer_totals",
    "period_series",
    "purchase_occasions",
    "repeat_purchases_by_period",
    "trend_features",
    "value_trend",
]
