"""Feature step tests, pinned to the published CDNOW summary."""

from __future__ import annotations

import datetime as dt

import ibis
import pandas as pd
import pytest
from tests.conftest import shared

from cvm import Store
from cvm.features import btyd_summary, calibration_holdout, customer_totals, period_series
from cvm.ingest import ingest_transactions

CAL_END = dt.date(1997, 9, 30)
END = dt.date(1998, 6, 30)


@pytest.fixture
def cdnow(store: Store) -> Store:
    ingest_transactions(store, shared("cdnow_sample.parquet"))
    return store


def test_btyd_summary_equals_the_published_cdnow_summary(cdnow: Store) -> None:
    """Fader, Hardie & Lee (2005) CDNOW sample, calibration to 1997-09-30, in weeks.

    Reference: lifetimes' cdnow_customers_summary.csv (Hardie's published x, t_x, T,
    zbar), as ../shared/data/cdnow_sample_summary.parquet; t_x and T are rounded to
    2 decimals there, so agreement is to 0.005.
    """
    got = btyd_summary(cdnow.table("transactions"), observation_end=CAL_END).to_pandas()
    ref = pd.read_parquet(shared("cdnow_sample_summary.parquet"))
    got["customer_id"] = got["customer_id"].astype("int64")
    merged = ref.merge(got, on="customer_id", suffixes=("_ref", ""), validate="1:1")
    assert len(merged) == len(ref) == len(got) == 2357
    assert (merged["frequency_ref"] == merged["frequency"]).all()
    assert (merged["recency_ref"] - merged["recency"]).abs().max() <= 0.005 + 1e-9
    assert (merged["t_ref"] - merged["t"]).abs().max() <= 0.005 + 1e-9
    assert (merged["monetary_value_ref"] - merged["monetary_value"]).abs().max() <= 0.005 + 1e-9
    assert int(got["frequency"].sum()) == 2457  # repeat transactions in calibration
    assert int((got["frequency"] > 0).sum()) == 946


def test_time_units_scale_recency_and_t(cdnow: Store) -> None:
    t = cdnow.table("transactions")
    weeks = btyd_summary(t, observation_end=CAL_END).to_pandas().set_index("customer_id")
    days = btyd_summary(t, observation_end=CAL_END, time_unit="day").to_pandas()
    days = days.set_index("customer_id").loc[weeks.index]
    assert ((days["t"] / 7 - weeks["t"]).abs() < 1e-9).all()
    assert (days["recency"] == days["recency"].round()).all()
    with pytest.raises(ValueError, match="time_unit must be one of"):
        btyd_summary(t, observation_end=CAL_END, time_unit="fortnight")


def test_calibration_holdout_counts_the_holdout(cdnow: Store) -> None:
    """The README of the shared data: 1,882 distinct customer-days in the holdout."""
    split = calibration_holdout(
        cdnow.table("transactions"), calibration_end=CAL_END, observation_end=END
    ).to_pandas()
    assert len(split) == 2357
    assert int(split["frequency_holdout"].sum()) == 1882
    assert split["duration_holdout"].iloc[0] == pytest.approx(273 / 7)
    assert (split.loc[split.frequency_holdout == 0, "monetary_value_holdout"] == 0).all()
    with pytest.raises(ValueError, match="must be before"):
        calibration_holdout(cdnow.table("transactions"), calibration_end=END, observation_end=END)


def test_totals_and_period_series_add_up(cdnow: Store) -> None:
    t = cdnow.table("transactions")
    totals = customer_totals(t, observation_end=END, margin_rate=0.25).to_pandas()
    assert totals["revenue"].sum() == pytest.approx(244_091.94)
    assert totals["margin"].sum() == pytest.approx(244_091.94 * 0.25)
    assert int(totals["transactions"].sum()) == 6919
    series = period_series(t, observation_end=END, period="quarter", margin_rate=0.25).to_pandas()
    assert series["revenue"].sum() == pytest.approx(244_091.94)
    assert set(pd.to_datetime(series["period_start"]).dt.month) <= {1, 4, 7, 10}
    monthly = period_series(t, observation_end=END).to_pandas()
    assert pd.to_datetime(monthly["period_start"]).dt.day.eq(1).all()
    with pytest.raises(ValueError, match="margin_rate"):
        customer_totals(t, observation_end=END, margin_rate=2.0)


def test_profit_prefers_margin_then_cost_then_rate(store: Store) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c"],
            "ts": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-01", "2020-01-01"]),
            "amount": [100.0, -20.0, 50.0, 10.0],
            "margin": [40.0, None, None, None],
            "cost": [None, None, 30.0, None],
        }
    )
    ingest_transactions(store, frame)
    totals = (
        customer_totals(
            store.table("transactions"), observation_end=dt.date(2020, 12, 31), margin_rate=0.5
        )
        .to_pandas()
        .set_index("customer_id")
    )
    assert totals.loc["a", "margin"] == pytest.approx(40.0 - 10.0)  # return × rate subtracts
    assert totals.loc["a", "returns"] == pytest.approx(20.0)
    assert totals.loc["a", "revenue"] == pytest.approx(80.0)
    assert totals.loc["b", "margin"] == pytest.approx(20.0)  # amount − cost
    assert totals.loc["c", "margin"] == pytest.approx(5.0)  # amount × rate


def test_same_day_purchases_are_one_occasion(store: Store) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a"],
            "ts": pd.to_datetime(
                ["2020-01-01 09:00", "2020-01-01 17:00", "2020-01-08 00:00", "2020-01-15 00:00"]
            ),
            "amount": [10.0, 5.0, 20.0, 40.0],
        }
    )
    ingest_transactions(store, frame)
    row = (
        btyd_summary(store.table("transactions"), observation_end=dt.date(2020, 1, 29))
        .to_pandas()
        .iloc[0]
    )
    assert (row["occasions"], row["frequency"]) == (3, 2)
    assert row["recency"] == pytest.approx(2.0)
    assert row["t"] == pytest.approx(4.0)
    assert row["monetary_value"] == pytest.approx(30.0)


def test_store_to_arrow_matches_ibis(cdnow: Store) -> None:
    expr = btyd_summary(cdnow.table("transactions"), observation_end=CAL_END)
    fast = cdnow.to_arrow(expr).sort_by("customer_id")
    slow = expr.to_pyarrow().sort_by("customer_id")
    assert fast.column_names == slow.column_names
    assert fast.to_pylist() == slow.to_pylist()
    other = ibis.memtable({"a": [1, 2]})  # bound to no store: falls back to Ibis
    assert cdnow.to_arrow(other.mutate(b=other.a * 2)).column("b").to_pylist() == [2, 4]
