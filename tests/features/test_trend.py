"""The value trend: recent window against the window before, per period of exposure."""

from __future__ import annotations

import datetime as dt
from typing import Any

import ibis
import pandas as pd
import pytest

from cvm.errors import SchemaError
from cvm.features import btyd_summary, period_series, trend_features, value_trend

MONTH_END = dt.date(2011, 12, 31)
MID_MONTH = dt.date(2011, 12, 9)  # 9 of December's 31 days have passed


def transactions(rows: list[tuple[str, str, float]], **extra: list[Any]) -> Any:
    frame = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    frame["ts"] = pd.to_datetime(frame["ts"])
    for column in ("margin", "cost"):
        frame[column] = extra.get(column, [None] * len(frame))
        frame[column] = frame[column].astype("float64")
    frame["transaction_id"] = pd.Series([None] * len(frame), dtype="string")
    return ibis.memtable(frame)


def monthly(customer: str, start: str, months: int, amount: float, day: int = 15) -> list[Any]:
    first = pd.Timestamp(start)
    return [
        (customer, (first + pd.DateOffset(months=k)).replace(day=day).date().isoformat(), amount)
        for k in range(months)
    ]


def trend_of(rows: list[Any], as_of: dt.date, **kwargs: Any) -> pd.DataFrame:
    series = period_series(
        transactions(rows), observation_end=as_of, period=kwargs.get("period", "month")
    )
    return value_trend(series, as_of=as_of, **kwargs).to_pandas().set_index("customer_id")


def test_steady_buyer_has_no_trend_at_a_month_end() -> None:
    got = trend_of(monthly("s", "2010-01-01", 24, 100.0), MONTH_END).loc["s"]
    assert got.recent_value == got.previous_value == 600.0
    assert got.recent_exposure == got.previous_exposure == 6.0
    assert got.recent_rate == got.previous_rate == 100.0
    assert got.trend == 0.0
    assert got.active_periods == 24
    assert pd.Timestamp(got.first_period) == pd.Timestamp("2010-01-01")
    assert pd.Timestamp(got.last_period) == pd.Timestamp("2011-12-01")


def test_relative_change_is_exact_at_round_numbers() -> None:
    rows = monthly("up", "2011-01-01", 6, 100.0) + monthly("up", "2011-07-01", 6, 130.0)
    rows += monthly("down", "2011-01-01", 6, 100.0) + monthly("down", "2011-07-01", 6, 70.0)
    got = trend_of(rows, MONTH_END)
    assert got.loc["up", "trend"] == 0.3
    assert got.loc["down", "trend"] == -0.3


def test_partial_current_month_counts_by_its_elapsed_days() -> None:
    """On 9 December the recent window is July–November plus 9/31 of December."""
    rows = [*monthly("s", "2011-01-01", 11, 100.0), ("s", "2011-12-05", 100.0)]
    got = trend_of(rows, MID_MONTH).loc["s"]
    assert got.recent_exposure == pytest.approx(5 + 9 / 31)
    assert got.previous_exposure == 6.0
    assert got.recent_value == 600.0  # July–November and the 5 December
    assert got.trend == pytest.approx(round(600 / (5 + 9 / 31) / 100 - 1, 6))
    # Steady buyer on the 15th: December's purchase is still to come, and the
    # trend stays small (−5.5 %), not −17 % as a 5 against 6 months count would say.
    late = trend_of(monthly("l", "2011-01-01", 12, 100.0), MID_MONTH).loc["l"]
    assert late.recent_value == 500.0
    assert late.trend == pytest.approx(500 / (5 + 9 / 31) / 100 - 1, abs=1e-6)


def test_purchases_only_in_the_current_partial_month() -> None:
    rows = [("n", "2011-12-02", 40.0), ("n", "2011-12-08", 60.0)]
    got = trend_of(rows, MID_MONTH).loc["n"]
    assert got.recent_value == 100.0
    assert got.recent_exposure == pytest.approx(9 / 31)
    assert got.previous_exposure == 0.0
    assert got.previous_value == 0.0
    assert pd.isna(got.previous_rate)
    assert pd.isna(got.trend)  # no earlier value
    assert got.active_periods == 1


def test_a_customer_who_arrived_during_the_previous_window() -> None:
    """First purchase in May: compared on May–June (2 periods), not on 6."""
    rows = monthly("a", "2011-05-01", 8, 100.0)
    got = trend_of(rows, MONTH_END).loc["a"]
    assert got.previous_exposure == 2.0
    assert got.previous_value == 200.0
    assert got.recent_value == 600.0
    assert got.trend == 0.0


def test_no_purchase_in_either_window_and_nothing_earlier() -> None:
    rows = [("old", "2010-03-01", 50.0), ("ret", "2010-03-01", 50.0), ("ret", "2011-09-01", 80.0)]
    got = trend_of(rows, MONTH_END)
    old = got.loc["old"]
    assert (old.recent_value, old.previous_value, old.previous_exposure) == (0.0, 0.0, 6.0)
    assert old.recent_rate == 0.0 and old.previous_rate == 0.0
    assert pd.isna(old.trend)  # a relative change from nothing is undefined
    ret = got.loc["ret"]
    assert (ret.recent_value, ret.previous_value) == (80.0, 0.0)
    assert pd.isna(ret.trend)


def test_net_returns_in_the_previous_window_give_no_trend() -> None:
    rows = [("r", "2010-01-10", 100.0), ("r", "2011-02-01", 50.0), ("r", "2011-03-01", -80.0)]
    rows += [("r", "2011-08-01", 30.0)]
    got = trend_of(rows, MONTH_END).loc["r"]
    assert got.previous_value == -30.0
    assert pd.isna(got.trend)


def test_periods_after_as_of_are_ignored() -> None:
    rows = monthly("s", "2011-01-01", 6, 100.0) + monthly("s", "2011-07-01", 9, 50.0)
    series = period_series(transactions(rows), observation_end=dt.date(2012, 3, 31))
    got = value_trend(series, as_of=MONTH_END).to_pandas().set_index("customer_id").loc["s"]
    assert got.recent_value == 300.0
    assert got.trend == -0.5
    assert got.active_periods == 12


def test_quarters_margin_and_occasions() -> None:
    rows = monthly("q", "2011-01-01", 12, 100.0)
    rows += [("q", "2011-11-20", 100.0)]  # a second occasion in November
    frame = transactions(rows, margin=[10.0] * 6 + [40.0] * 7)
    series = period_series(frame, observation_end=MONTH_END, period="quarter")
    by_quarter = value_trend(series, as_of=MONTH_END, period="quarter").to_pandas().iloc[0]
    assert (by_quarter.recent_exposure, by_quarter.previous_exposure) == (2.0, 2.0)
    assert by_quarter.trend == pytest.approx(700 / 600 - 1, abs=1e-6)
    assert by_quarter.active_periods == 4
    months = period_series(frame, observation_end=MONTH_END)
    margin = value_trend(months, as_of=MONTH_END, measure="margin").to_pandas().iloc[0]
    assert (margin.previous_value, margin.recent_value, margin.trend) == (
        60.0,
        280.0,
        round(280 / 60 - 1, 6),
    )
    occasions = value_trend(months, as_of=MONTH_END, measure="occasions").to_pandas().iloc[0]
    assert (occasions.previous_value, occasions.recent_value) == (6.0, 7.0)


def test_arguments_are_checked() -> None:
    series = period_series(
        transactions(monthly("s", "2011-01-01", 3, 1.0)), observation_end=MONTH_END
    )
    with pytest.raises(ValueError, match="multiple of 3 for quarters, got 4"):
        value_trend(series, as_of=MONTH_END, period="quarter", window_months=4)
    with pytest.raises(ValueError, match="positive multiple of 1 for months, got 0"):
        value_trend(series, as_of=MONTH_END, window_months=0)
    with pytest.raises(ValueError, match="measure must be one of"):
        value_trend(series, as_of=MONTH_END, measure="profit")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="period must be"):
        value_trend(series, as_of=MONTH_END, period="week")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=r"the period series lacks column.*period_start"):
        value_trend(series.drop("period_start"), as_of=MONTH_END)


def test_trend_features_add_tenure_and_days_since_last() -> None:
    rows = [*monthly("s", "2010-01-01", 24, 100.0), ("n", "2011-11-20", 5.0)]
    frame = transactions(rows)
    customers = btyd_summary(frame, observation_end=MONTH_END)
    # A customer absent from the series (e.g. a filtered series) keeps zeros and no trend.
    series = period_series(frame, observation_end=MONTH_END)
    series = series.filter(series.customer_id != "n")
    got = trend_features(customers, series, as_of=MONTH_END).to_pandas().set_index("customer_id")
    assert set(customers.columns) - {"customer_id"} < set(got.columns)
    assert (got.loc["s", "tenure_days"], got.loc["s", "days_since_last"]) == (
        715,
        16,
    )  # first 2010-01-15, last 2011-12-15
    assert (got.loc["n", "tenure_days"], got.loc["n", "days_since_last"]) == (41, 41)
    assert got.loc["s", "trend"] == 0.0
    assert got.loc["n", "recent_value"] == 0.0 and got.loc["n", "recent_exposure"] == 2.0
    assert got.loc["n", "previous_exposure"] == 0.0 and pd.isna(got.loc["n", "trend"])


def test_trend_features_check_their_input() -> None:
    frame = transactions(monthly("s", "2011-01-01", 3, 1.0))
    customers = btyd_summary(frame, observation_end=MONTH_END)
    series = period_series(frame, observation_end=MONTH_END)
    with pytest.raises(SchemaError, match=r"customers lacks column.*first_purchase"):
        trend_features(customers.drop("first_purchase"), series, as_of=MONTH_END)
    with pytest.raises(SchemaError, match=r"already has column.*trend"):
        trend_features(customers.mutate(trend=1.0), series, as_of=MONTH_END)


def test_sales_and_returns_netting_to_zero_leave_no_earlier_value() -> None:
    """Float residues (1e-13) of netted returns made the trend astronomically large."""
    periods = ibis.memtable(
        {
            "customer_id": ["a", "a"],
            "period_start": [dt.date(2011, 3, 1), dt.date(2011, 9, 1)],
            "occasions": [2, 1],
            "revenue": [0.1 + 0.2 - 0.3, 50.0],  # 5.55e-17, not 0
            "margin": [0.0, 15.0],
        }
    )
    got = value_trend(periods, as_of=dt.date(2011, 9, 30)).to_pandas()
    assert got.previous_value.iloc[0] == 0.0
    assert got.trend.isna().iloc[0]
