"""Lifecycle stages: constructed customer histories land in the expected stage and reason."""

from __future__ import annotations

import datetime as dt
from typing import Any

import ibis
import pandas as pd
import pytest
from tests.conftest import shared

from cvm import Settings, Store
from cvm.config import LifecycleSettings, settings_from_dict
from cvm.dynamics import analyze
from cvm.errors import ConfigError, SchemaError
from cvm.features import btyd_summary, period_series, trend_features, value_trend
from cvm.ingest import ingest_transactions
from cvm.segments.lifecycle import (
    LIFECYCLE_STAGES,
    REQUIRED_COLUMNS,
    lifecycle_from_periods,
    lifecycle_stage,
)
from cvm.store.schema import SEGMENT_COLUMNS

END = dt.date(2011, 12, 31)  # recent window July–December, previous January–June
MID_MONTH = dt.date(2011, 12, 9)  # 9 of December's 31 days have passed
NO_MODEL = "no P(alive) (no purchase model fitted); "
Row = tuple[str, str, float]


def monthly(customer: str, start: str, months: int, amount: float, day: int = 15) -> list[Row]:
    first = pd.Timestamp(start)
    return [
        (customer, (first + pd.DateOffset(months=k)).replace(day=day).date().isoformat(), amount)
        for k in range(months)
    ]


def transactions(rows: list[Row]) -> Any:
    frame = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    frame["ts"] = pd.to_datetime(frame["ts"])
    frame["margin"] = frame["cost"] = float("nan")
    frame["transaction_id"] = pd.Series([None] * len(frame), dtype="string")
    return ibis.memtable(frame)


def customers_with(rows: list[Row], p_alive: dict[str, float | None], as_of: dt.date) -> Any:
    """BTYD summary with a given P(alive) per customer, and the monthly series."""
    frame = transactions(rows)
    summary = btyd_summary(frame, observation_end=as_of)
    probabilities = pd.DataFrame(
        {
            "customer_id": pd.array(list(p_alive), "string"),
            "p_alive": pd.array(list(p_alive.values()), "Float64"),
        }
    )
    summary = summary.left_join(ibis.memtable(probabilities), "customer_id")
    return summary, period_series(frame, observation_end=as_of)


def stages(
    rows: list[Row],
    p_alive: dict[str, float | None] | None,
    *,
    as_of: dt.date = END,
    settings: LifecycleSettings | None = None,
) -> pd.DataFrame:
    customers, periods = customers_with(rows, p_alive or {}, as_of)
    if p_alive is None:
        customers = customers.drop("p_alive")
    out = lifecycle_from_periods(customers, periods, as_of=as_of, settings=settings)
    return out.to_pandas().set_index("customer_id")


def stage_of(rows: list[Row], p_alive: float | None = 0.9, **kwargs: Any) -> tuple[str, str]:
    customer = rows[0][0]
    got = stages(rows, {customer: p_alive}, **kwargs).loc[customer]
    return got.lifecycle_stage, got.lifecycle_reason


# The five archetypes of the relationship (Dwyer, Schurr & Oh 1987).
ARCHETYPES: dict[str, tuple[list[Row], float, str, str]] = {
    "new buyer": (
        [("new", "2011-11-20", 50.0)],
        0.9,
        "acquisition",
        "first purchase 41 days ago (under 90 days: acquisition)",
    ),
    "ramping buyer": (
        monthly("ramp", "2010-01-01", 18, 100.0) + monthly("ramp", "2011-07-01", 6, 200.0),
        0.95,
        "growth",
        "spend in the last 6 months up 100 % on the 6 months before (growth at +30 %)",
    ),
    "steady buyer": (
        monthly("steady", "2010-01-01", 24, 100.0),
        0.97,
        "maturity",
        "spend in the last 6 months up 0 % on the 6 months before "
        "(maturity between −30 % and +30 %)",
    ),
    "fading buyer": (
        monthly("fade", "2010-01-01", 18, 100.0) + monthly("fade", "2011-07-01", 6, 38.0),
        0.8,
        "decline",
        "spend in the last 6 months down 62 % on the 6 months before (decline at −30 %)",
    ),
    "lost buyer": (
        monthly("lost", "2010-01-01", 9, 100.0),
        0.12,
        "departure",
        "P(alive) 0.12 below 0.20 (departure)",
    ),
}


def test_the_five_archetypes_each_land_in_their_stage() -> None:
    rows = [row for history, *_ in ARCHETYPES.values() for row in history]
    p_alive = {history[0][0]: p for history, p, *_ in ARCHETYPES.values()}
    got = stages(rows, p_alive)
    assert len(got) == 5
    for name, (history, _, stage, reason) in ARCHETYPES.items():
        row = got.loc[history[0][0]]
        assert (row.lifecycle_stage, row.lifecycle_reason) == (stage, reason), name
    assert set(got.lifecycle_stage) == set(LIFECYCLE_STAGES)


@pytest.mark.parametrize(
    ("rows", "p_alive", "stage", "reason"),
    [
        pytest.param(
            [("a", "2011-10-03", 10.0)],
            0.9,
            "acquisition",
            "first purchase 89 days ago (under 90 days: acquisition)",
            id="tenure 89 days",
        ),
        pytest.param(
            [("a", "2011-10-02", 10.0), ("a", "2011-12-01", 10.0)],
            0.9,
            "growth",
            "2 purchases since the first 90 days ago, all in the last 6 months "
            "(repeat buyer: growth)",
            id="tenure 90 days",
        ),
        pytest.param(
            monthly("d", "2010-01-01", 18, 100.0) + monthly("d", "2011-07-01", 6, 70.0),
            0.9,
            "decline",
            "spend in the last 6 months down 30 % on the 6 months before (decline at −30 %)",
            id="trend exactly -30 %",
        ),
        pytest.param(
            monthly("d", "2010-01-01", 18, 100.0)
            + monthly("d", "2011-07-01", 5, 70.0)
            + [("d", "2011-12-20", 71.0)],
            0.9,
            "maturity",
            "spend in the last 6 months down 29 % on the 6 months before "
            "(maturity between −30 % and +30 %)",
            id="trend -29.8 %",
        ),
        pytest.param(
            monthly("g", "2010-01-01", 18, 100.0) + monthly("g", "2011-07-01", 6, 130.0),
            0.9,
            "growth",
            "spend in the last 6 months up 30 % on the 6 months before (growth at +30 %)",
            id="trend exactly +30 %",
        ),
        pytest.param(
            monthly("g", "2010-01-01", 18, 100.0)
            + monthly("g", "2011-07-01", 5, 130.0)
            + [("g", "2011-12-20", 129.0)],
            0.9,
            "maturity",
            "spend in the last 6 months up 29 % on the 6 months before "
            "(maturity between −30 % and +30 %)",
            id="trend +29.8 %",
        ),
        pytest.param(
            monthly("p", "2010-01-01", 24, 100.0),
            0.2,
            "decline",
            "P(alive) 0.20 below 0.50 (decline)",
            id="P(alive) exactly 0.20",
        ),
        pytest.param(
            monthly("p", "2010-01-01", 24, 100.0),
            0.1999,
            "departure",
            "P(alive) 0.19 below 0.20 (departure)",
            id="P(alive) 0.1999",
        ),
        pytest.param(
            monthly("p", "2010-01-01", 24, 100.0),
            0.5,
            "maturity",
            "spend in the last 6 months up 0 % on the 6 months before "
            "(maturity between −30 % and +30 %)",
            id="P(alive) exactly 0.50",
        ),
        pytest.param(
            monthly("p", "2010-01-01", 24, 100.0),
            0.4999,
            "decline",
            "P(alive) 0.49 below 0.50 (decline)",
            id="P(alive) 0.4999",
        ),
        pytest.param(
            [("i", "2010-03-01", 50.0), ("i", "2010-12-31", 50.0)],
            0.9,
            "decline",
            "no spend in the last 6 months nor in the 6 months before (decline)",
            id="no purchase for 365 days",
        ),
        pytest.param(
            [("i", "2010-03-01", 50.0), ("i", "2010-12-30", 50.0)],
            0.9,
            "departure",
            "no purchase for 366 days (over 365: departure)",
            id="no purchase for 366 days",
        ),
    ],
)
def test_boundaries_at_the_thresholds(
    rows: list[Row], p_alive: float, stage: str, reason: str
) -> None:
    assert stage_of(rows, p_alive) == (stage, reason)


@pytest.mark.parametrize(
    ("rows", "stage", "reason"),
    [
        pytest.param(
            [("a", "2011-08-03", 30.0)],
            "acquisition",
            "one purchase, 150 days ago, none since (acquisition until a repeat purchase)",
            id="one-time buyer past 90 days",
        ),
        pytest.param(
            [("r", "2010-03-01", 40.0), ("r", "2010-05-01", 40.0), ("r", "2011-10-01", 40.0)],
            "growth",
            "spend in the last 6 months after none in the 6 months before (growth)",
            id="back after a pause",
        ),
        pytest.param(
            monthly("y", "2011-04-01", 3, 100.0) + monthly("y", "2011-07-01", 6, 110.0),
            "growth",
            "spend in the last 6 months up 10 % on the 6 months before, first purchase "
            "260 days ago (rising within 365 days: growth)",
            id="young customer rising a little",
        ),
        pytest.param(
            monthly("o", "2010-01-01", 18, 100.0) + monthly("o", "2011-07-01", 6, 110.0),
            "maturity",
            "spend in the last 6 months up 10 % on the 6 months before "
            "(maturity between −30 % and +30 %)",
            id="established customer rising a little",
        ),
        pytest.param(
            monthly("f", "2011-03-01", 2, 100.0),
            "decline",
            "spend in the last 6 months down 100 % on the 6 months before (decline at −30 %)",
            id="stopped after arriving in the previous window",
        ),
    ],
)
def test_the_other_rules(rows: list[Row], stage: str, reason: str) -> None:
    assert stage_of(rows) == (stage, reason)


def test_without_p_alive_days_since_last_purchase_decide() -> None:
    # One purchase a half-year: no decline in the trend, but the last one is old.
    base = [("x", "2010-03-01", 100.0), ("x", "2011-01-10", 100.0)]
    stale = [*base, ("x", "2011-07-01", 100.0)]  # 183 days before 31 December
    fresh = [*base, ("x", "2011-07-04", 100.0)]  # 180 days
    maturity = (
        "maturity",
        "spend in the last 6 months up 0 % on the 6 months before "
        "(maturity between −30 % and +30 %)",
    )
    assert stage_of(stale, None) == (
        "decline",
        NO_MODEL + "no purchase for 183 days (over 180: decline)",
    )
    assert stage_of(fresh, None) == maturity
    assert stage_of(stale, 0.9) == maturity  # the model's P(alive) overrules the days
    gone = [("z", "2010-11-26", 100.0)]
    assert stage_of(gone, None) == (
        "departure",
        NO_MODEL + "no purchase for 400 days (over 365: departure)",
    )
    # No p_alive column at all is the same as a NULL one.
    got = stages(stale + gone, None)
    assert list(got.sort_index().lifecycle_stage) == ["decline", "departure"]
    assert got.loc["x", "lifecycle_reason"].startswith(NO_MODEL)


def test_purchases_only_in_the_current_partial_month() -> None:
    rows = [("n", "2011-12-02", 40.0), ("n", "2011-12-08", 60.0)]
    got = stages(rows, {"n": 1.0}, as_of=MID_MONTH).loc["n"]
    assert (got.lifecycle_stage, got.lifecycle_reason) == (
        "acquisition",
        "first purchase 7 days ago (under 90 days: acquisition)",
    )
    assert got.recent_exposure == pytest.approx(9 / 31)
    assert pd.isna(got.trend)


def test_steady_buyers_stay_mature_in_a_partial_month() -> None:
    """Whether December's purchase falls before or after as_of, the trend stays small."""
    early = monthly("early", "2010-01-01", 24, 100.0, day=5)  # bought on 5 December
    late = monthly("late", "2010-01-01", 23, 100.0, day=15)  # not yet in December
    got = stages(early + late, {"early": 0.9, "late": 0.9}, as_of=MID_MONTH)
    assert list(got.lifecycle_stage) == ["maturity", "maturity"]
    assert got.loc["early", "lifecycle_reason"].startswith("spend in the last 6 months up 13 %")
    assert got.loc["late", "lifecycle_reason"].startswith("spend in the last 6 months down 5 %")


def test_settings_change_windows_measure_and_thresholds() -> None:
    # July–September two purchases of 50 a month, October–December one of 100.
    rows = monthly("c", "2010-01-01", 18, 100.0)
    rows += monthly("c", "2011-07-01", 3, 50.0, day=5) + monthly("c", "2011-07-01", 3, 50.0)
    rows += monthly("c", "2011-10-01", 3, 100.0)
    default = stage_of(rows)
    assert default[0] == "maturity"
    settings = LifecycleSettings(window_months=3, measure="occasions")
    assert stage_of(rows, settings=settings) == (
        "decline",
        "purchases in the last 3 months down 50 % on the 3 months before (decline at −30 %)",
    )
    steady = monthly("s", "2010-01-01", 24, 100.0)
    one_month = LifecycleSettings(window_months=1, decline_trend=-0.125, growth_trend=0.05)
    assert stage_of(steady, settings=one_month) == (
        "maturity",
        "spend in the last month up 0 % on the month before (maturity between −12.5 % and +5 %)",
    )
    late = LifecycleSettings(acquisition_days=200, developing_days=200)
    assert stage_of([("n", "2011-11-20", 50.0)], settings=late)[1] == (
        "first purchase 41 days ago (under 200 days: acquisition)"
    )


def test_quarterly_series() -> None:
    rows = monthly("q", "2010-01-01", 18, 100.0) + monthly("q", "2011-07-01", 6, 200.0)
    customers, _ = customers_with(rows, {"q": 0.9}, END)
    quarters = period_series(transactions(rows), observation_end=END, period="quarter")
    got = lifecycle_from_periods(customers, quarters, as_of=END, period="quarter").to_pandas()
    assert got.lifecycle_stage.tolist() == ["growth"]
    with pytest.raises(ConfigError, match=r"key 'segments.lifecycle.window_months'.*got 4"):
        lifecycle_from_periods(
            customers,
            quarters,
            as_of=END,
            period="quarter",
            settings=LifecycleSettings(window_months=4),
        )


def test_missing_columns_are_named() -> None:
    customers, periods = customers_with([("a", "2011-01-01", 1.0)], {"a": 0.5}, END)
    features = trend_features(customers, periods, as_of=END)
    with pytest.raises(SchemaError, match=r"lack column\(s\) occasions, trend for lifecycle"):
        lifecycle_stage(features.drop("occasions", "trend"))
    assert "p_alive" not in REQUIRED_COLUMNS
    assert lifecycle_stage(features.drop("p_alive")).to_pandas().lifecycle_stage.tolist() == [
        "decline"
    ]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"decline_trend": 0.1}, "decline_trend.*must be a fall"),
        ({"decline_trend": -1.5}, "decline_trend.*at least -1"),
        ({"growth_trend": 0.0}, "growth_trend.*must be a rise"),
        ({"growth_trend": float("inf")}, "growth_trend.*must be a rise"),
        ({"decline_p_alive": 0.1}, r"decline_p_alive.*must not be below departure_p_alive \(0.2\)"),
        ({"departure_p_alive": 1.5}, "departure_p_alive.*less than or equal to 1"),
        ({"decline_days": 400}, r"decline_days.*must not be above departure_days \(365\)"),
        ({"developing_days": 60}, r"developing_days.*must not be below acquisition_days \(90\)"),
        ({"window_months": 0}, "window_months.*greater than or equal to 1"),
        ({"measure": "profit"}, "measure.*profit"),
    ],
)
def test_settings_are_validated(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=rf"key 'segments.lifecycle.{message}"):
        settings_from_dict({"segments": {"lifecycle": section}})


def test_default_settings_are_in_the_configuration() -> None:
    settings = Settings()
    assert settings.segments.lifecycle == LifecycleSettings()
    custom = settings_from_dict(
        {"segments": {"lifecycle": {"growth_trend": 1, "window_months": 3}}}
    )
    assert (custom.segments.lifecycle.growth_trend, custom.segments.lifecycle.window_months) == (
        1.0,
        3,
    )


@pytest.mark.slow
def test_online_retail_stage_mix(store: Store, record_property: Any) -> None:
    """UCI Online Retail: every customer gets one stage and a reason; the mix is plausible."""
    ingest_transactions(store, shared("online_retail.parquet"))
    run = analyze(store, Settings())
    snapshot = store.table("customer_snapshots")
    stored = snapshot.filter(snapshot.run_id == run.run_id).drop("run_id")
    added = [c for c in SEGMENT_COLUMNS if c != "cost_to_serve"]
    snapshot = stored.drop(*added)
    periods = store.table("period_snapshots")
    periods = periods.filter(periods.run_id == run.run_id).drop("run_id")
    got = lifecycle_from_periods(snapshot, periods, as_of=run.as_of).to_pandas()
    # analyze stores exactly these stages
    kept = stored.select("customer_id", "lifecycle_stage", "lifecycle_reason").to_pandas()
    both = got.merge(kept, on="customer_id", suffixes=("", "_stored"))
    assert len(both) == len(got)
    assert (both.lifecycle_stage == both.lifecycle_stage_stored).all()
    assert (both.lifecycle_reason == both.lifecycle_reason_stored).all()

    assert len(got) == got.customer_id.nunique() == run.customers
    assert got.lifecycle_stage.isin(LIFECYCLE_STAGES).all()
    assert got.lifecycle_reason.str.len().gt(0).all()
    # Each reason names its stage.
    assert all(s in r for s, r in zip(got.lifecycle_stage, got.lifecycle_reason, strict=True))
    mix = got.lifecycle_stage.value_counts(normalize=True)
    record_property("lifecycle_mix", mix.round(3).to_dict())
    print("lifecycle mix, Online Retail:", mix.round(3).to_dict())
    # Twelve months of a wholesaler's customers: every stage occurs, none dominates.
    assert set(mix.index) == set(LIFECYCLE_STAGES)
    assert mix.max() < 0.5
    assert mix["departure"] < 0.1  # the data span only 373 days

    # The first two rules, recomputed in pandas from the snapshot.
    as_of = pd.Timestamp(run.as_of)
    idle = (as_of - pd.to_datetime(got.last_purchase)).dt.days
    tenure = (as_of - pd.to_datetime(got.first_purchase)).dt.days
    departure = (got.p_alive < 0.2) | (idle > 365)
    assert (got.lifecycle_stage == "departure").eq(departure).all()
    assert (got.lifecycle_stage[~departure & (tenure < 90)] == "acquisition").all()
    # The reasons' numbers are the customers' own.
    new = got[~departure & (tenure < 90)]
    expected = "first purchase " + tenure[new.index].astype(str) + " days ago"
    assert (new.lifecycle_reason.str.split(" \\(").str[0] == expected).all()


@pytest.mark.spark
@pytest.mark.slow
def test_lifecycle_is_identical_on_duckdb_and_pyspark() -> None:
    from tests.spark_support import pyspark_available, spark_ibis_backend

    if not pyspark_available():
        pytest.skip("pyspark is not installed (pip install 'cvm[spark]')")
    rows = [row for history, *_ in ARCHETYPES.values() for row in history]
    rows += monthly("d", "2010-01-01", 18, 100.0) + monthly("d", "2011-07-01", 6, 70.0)
    rows += [("x", "2010-03-01", 100.0), ("x", "2011-01-10", 100.0), ("x", "2011-07-01", 1.0)]
    frame = transactions(rows).to_pandas()
    p_alive = {history[0][0]: p for history, p, *_ in ARCHETYPES.values()}
    probabilities = pd.DataFrame(
        {"customer_id": [*p_alive, "d", "x"], "p_alive": [*p_alive.values(), 0.9, None]}
    )
    spark = spark_ibis_backend()
    spark.create_view("cvm_lifecycle_tx", ibis.memtable(frame), overwrite=True)
    spark.create_view("cvm_lifecycle_p", ibis.memtable(probabilities), overwrite=True)

    def run(tx: Any, p: Any) -> pd.DataFrame:
        customers = btyd_summary(tx, observation_end=MID_MONTH)
        customers = customers.left_join(p, "customer_id")
        periods = period_series(tx, observation_end=MID_MONTH)
        out = lifecycle_from_periods(customers, periods, as_of=MID_MONTH)
        return out.select("customer_id", "lifecycle_stage", "lifecycle_reason", "trend").to_pandas()

    def trend(tx: Any) -> pd.DataFrame:
        periods = period_series(tx, observation_end=MID_MONTH)
        out = value_trend(periods, as_of=MID_MONTH).to_pandas()
        out[["first_period", "last_period"]] = out[["first_period", "last_period"]].astype(
            "datetime64[s]"
        )
        return out

    for step in (run, lambda tx, _: trend(tx)):
        duck = step(ibis.memtable(frame), ibis.memtable(probabilities))
        on_spark = step(spark.table("cvm_lifecycle_tx"), spark.table("cvm_lifecycle_p"))
        duck, on_spark = (
            f.sort_values("customer_id").reset_index(drop=True) for f in (duck, on_spark)
        )
        assert len(duck) == 7
        pd.testing.assert_frame_equal(on_spark, duck, check_dtype=False)
