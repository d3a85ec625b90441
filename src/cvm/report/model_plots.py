"""Diagnostic plots of a run's purchase model, as SVG.

For the report and the dashboard: aggregate tracking of the cohort's repeat purchases
(cumulative and per period), conditional expectations against holdout purchases by
calibration frequency, and the P(alive) and expected-purchases matrices over frequency
and recency (Fader, Hardie & Lee 2005, Figs. 2–5).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from cvm.dynamics import latest_run_id, model_fits
from cvm.errors import NotFoundError
from cvm.features import TIME_UNIT_DAYS, calibration_holdout, repeat_purchases_by_period
from cvm.models import model_from_dict
from cvm.models.validation import by_calibration_frequency, frequency_recency_matrix, tracking
from cvm.report.charts import grouped_bars, heatmap, line_chart
from cvm.store import Store
from cvm.value.potential import purchase_model_classes

__all__ = ["model_plots"]


def _model(fitted: str | None) -> Any:
    """Rebuild a stored purchase model (None when it was not stored)."""
    if not fitted:
        return None
    return model_from_dict(json.loads(fitted))


def model_plots(store: Store, run_id: str | None = None) -> dict[str, str]:
    """Return the diagnostic plots of a run's chosen purchase model, by file name.

    Raises
    ------
    NotFoundError
        If the run has no fitted purchase model.
    """
    run_id = run_id or latest_run_id(store)
    row = store.con.execute(
        "SELECT as_of, time_unit, settings FROM runs WHERE run_id = ?", [run_id]
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no run '{run_id}'", path=store.path)
    as_of: dt.date = row[0]
    unit: str = row[1]
    holdout_days = int(json.loads(row[2])["models"]["holdout_days"])
    chosen = next(
        (f for f in model_fits(store, run_id=run_id) if f["role"] == "purchase" and f["chosen"]),
        None,
    )
    if chosen is None:
        raise NotFoundError(f"run {run_id} has no fitted purchase model", path=store.path)
    fitted = store.con.execute(
        "SELECT role, fitted FROM model_fits WHERE run_id = ? AND model = ? "
        "AND role IN ('purchase', 'purchase-backtest')",
        [run_id, chosen["model"]],
    ).fetchall()
    by_role = {role: text for role, text in fitted}
    full = _model(by_role.get("purchase"))
    assert full is not None
    days = TIME_UNIT_DAYS[unit]
    transactions = store.table("transactions")
    calibration_end = as_of - dt.timedelta(days=holdout_days)
    split = store.to_arrow(
        calibration_holdout(
            transactions, calibration_end=calibration_end, observation_end=as_of, time_unit=unit
        )
    ).to_pandas()
    calibrated = _model(by_role.get("purchase-backtest"))
    if calibrated is None:
        calibrated = purchase_model_classes()[chosen["model"]]().fit(split)
    plots: dict[str, str] = {}
    name = chosen["model"]

    table = by_calibration_frequency(calibrated, split)
    labels = [str(f) if f < table["frequency"].max() else f"{f}+" for f in table["frequency"]]
    plots["calibration_holdout.svg"] = grouped_bars(
        f"Holdout purchases by calibration frequency ({name})",
        labels,
        {"actual": table["actual"], "expected": table["expected"]},
        x_label="repeat purchases in calibration",
        y_label=f"mean purchases in the {holdout_days}-day holdout",
    )

    start = pd.to_datetime(split["first_purchase"]).min().date()
    periods = max(1, math.ceil(((as_of - start).days + 1) / days))
    counts = store.to_arrow(
        repeat_purchases_by_period(
            transactions,
            start=start,
            observation_end=as_of,
            cohort_end=calibration_end,
            time_unit=unit,
        )
    ).to_pandas()
    actual = np.zeros(periods)
    inside = counts["period"].to_numpy() < periods
    actual[counts["period"].to_numpy()[inside]] = counts["repeat_purchases"].to_numpy()[inside]
    births = (pd.to_datetime(split["first_purchase"]) - pd.Timestamp(start)).dt.days / days
    track = tracking(calibrated, births.to_numpy(), periods=periods, actual=actual)
    x = track["period"].to_numpy() + 1
    plots["tracking_cumulative.svg"] = line_chart(
        f"Cumulative repeat purchases of the cohort ({name})",
        x,
        {"actual": track["actual_cumulative"], "expected": track["expected_cumulative"]},
        x_label=f"{unit}s since {start.isoformat()} (holdout after {calibration_end})",
        y_label="repeat purchases",
    )
    plots["tracking_per_period.svg"] = line_chart(
        f"Repeat purchases per {unit} ({name})",
        x,
        {"actual": track["actual"], "expected": track["expected"]},
        x_label=f"{unit}s since {start.isoformat()}",
        y_label="repeat purchases",
    )

    summary: Any = store.con.execute(
        "SELECT max(t), quantile_cont(frequency, 0.99) FROM customer_snapshots WHERE run_id = ?",
        [run_id],
    ).fetchone()
    age, top = float(summary[0]), int(max(5, min(40, summary[1])))
    alive = frequency_recency_matrix(full, age=age, max_frequency=top)
    plots["p_alive_matrix.svg"] = heatmap(
        f"P(alive) by frequency and recency, T = {age:.1f} {unit}s ({name})",
        alive,
        x_label=f"recency ({unit}s)",
        y_label="repeat purchases",
    )
    expected = frequency_recency_matrix(full, age=age, max_frequency=top, horizon=90 / days)
    plots["expected_purchases_matrix.svg"] = heatmap(
        f"Expected purchases in the next 90 days ({name})",
        expected,
        x_label=f"recency ({unit}s)",
        y_label="repeat purchases",
    )
    return plots
