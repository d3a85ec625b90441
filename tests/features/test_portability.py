"""The feature step runs unchanged on PySpark (local mode) with identical results.

The same Ibis expressions from ``cvm.features`` are executed on the DuckDB store and
on a local Spark session holding the same transactions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pytest
from tests.conftest import shared
from tests.spark_support import pyspark_available, spark_ibis_backend

from cvm import Store
from cvm.features import btyd_summary, calibration_holdout, customer_totals, period_series
from cvm.ingest import ingest_transactions
from cvm.store import TRANSACTION_COLUMNS

pytestmark = [pytest.mark.spark, pytest.mark.slow]

END = dt.date(1998, 6, 30)
CAL = dt.date(1997, 9, 30)

FEATURES: dict[str, Callable[[Any], Any]] = {
    "btyd_weeks": lambda t: btyd_summary(t, observation_end=CAL),
    "btyd_days": lambda t: btyd_summary(t, observation_end=END, time_unit="day"),
    "btyd_months": lambda t: btyd_summary(t, observation_end=END, time_unit="month"),
    "split": lambda t: calibration_holdout(t, calibration_end=CAL, observation_end=END),
    "totals": lambda t: customer_totals(t, observation_end=END, margin_rate=0.3),
    "months": lambda t: period_series(t, observation_end=END, period="month"),
    "quarters": lambda t: period_series(t, observation_end=END, period="quarter"),
}


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    if not pyspark_available():
        pytest.skip("pyspark is not installed (pip install 'cvm[spark]')")
    store = Store(tmp_path_factory.mktemp("spark") / "s.duckdb")
    ingest_transactions(store, shared("cdnow_sample.parquet"))
    # Returns, margins and costs too, so every branch of the profit rule runs.
    rng = np.random.default_rng(3)
    n = 500
    extra = pd.DataFrame(
        {
            "customer_id": [f"x{i}" for i in rng.integers(0, 60, n)],
            "ts": pd.Timestamp("1997-01-01")
            + pd.to_timedelta(rng.integers(0, 540, n), unit="D")
            + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
            "amount": np.round(rng.normal(40, 30, n), 2),
            "margin": np.where(rng.random(n) < 0.3, 5.0, np.nan),
            "cost": np.where(rng.random(n) < 0.3, 20.0, np.nan),
            "transaction_id": [f"o{i}" for i in rng.integers(0, 300, n)],
        }
    )
    ingest_transactions(store, extra)
    duck = store.table("transactions").select(*TRANSACTION_COLUMNS)
    frame = duck.to_pandas()
    spark = spark_ibis_backend()
    spark.create_view("cvm_transactions", ibis.memtable(frame), overwrite=True)
    yield duck, spark.table("cvm_transactions")
    store.close()


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].astype("datetime64[s]")
        elif pd.api.types.is_integer_dtype(out[column]):
            out[column] = out[column].astype("int64")
        elif out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].astype(str)
    keys = [c for c in ("customer_id", "period_start") if c in out.columns]
    return out.sort_values(keys).reset_index(drop=True)


@pytest.mark.parametrize("name", list(FEATURES))
def test_feature_step_is_identical_on_duckdb_and_pyspark(
    engines: tuple[Any, Any], name: str
) -> None:
    duck, spark = engines
    expected = _normalise(FEATURES[name](duck).to_pandas())
    got = _normalise(FEATURES[name](spark).to_pandas())
    assert len(expected) > 0
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12, atol=1e-9)
