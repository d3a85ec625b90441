from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from tests.conftest import shared

from cvm import Settings, Store
from cvm.config import settings_from_dict
from cvm.dynamics import analyze, customer_view, latest_run_id, list_runs, run_overview
from cvm.errors import DataError, NotFoundError
from cvm.ingest import ingest_transactions


@pytest.mark.slow
def test_online_retail_reconciles_and_analyzes(store: Store) -> None:
    """Full ingest of UCI Online Retail: 541,909 rows reconcile; figures match pandas."""
    path = shared("online_retail.parquet")
    report = ingest_transactions(store, path)
    assert report.read == 541_909
    assert report.reconciles
    raw = pd.read_parquet(path)
    with_id = raw[raw["customer_id"].notna()]
    assert report.quarantined == 135_080 == raw["customer_id"].isna().sum()
    assert report.loaded == len(with_id) == 406_829
    assert report.reasons == {"customer_id: missing customer_id": 135_080}
    assert store.count("quarantine") == report.quarantined

    overview = analyze(store, Settings())
    assert overview.as_of == dt.date(2011, 12, 9)
    assert overview.customers == with_id["customer_id"].nunique() == 4372
    revenue = (with_id["quantity"] * with_id["unit_price"]).sum()
    assert overview.revenue == pytest.approx(revenue)
    assert overview.realized_value == pytest.approx(revenue * 0.3)
    per_customer = (with_id["quantity"] * with_id["unit_price"]).groupby(
        with_id["customer_id"]
    ).sum().sort_values(ascending=False) * 0.3
    top = per_customer.iloc[: -(-len(per_customer) * 2 // 10)].sum()
    assert overview.top_value_share == pytest.approx(top / per_customer.sum())
    assert overview.top_customers[0]["customer_id"] == str(int(per_customer.index[0]))


def test_analyze_stores_a_snapshot_per_run(store: Store) -> None:
    ingest_transactions(store, shared("cdnow_sample.parquet"))
    first = analyze(store, as_of=dt.date(1997, 9, 30))
    second = analyze(store, settings_from_dict({"value": {"margin_rate": 0.5}}))
    assert first.run_id != second.run_id
    assert (first.customers, second.customers) == (2357, 2357)
    assert second.as_of == dt.date(1998, 6, 30)
    assert second.revenue == pytest.approx(244_091.94)
    assert second.realized_value == pytest.approx(244_091.94 * 0.5)
    assert [r["run_id"] for r in list_runs(store)] == [second.run_id, first.run_id]
    assert latest_run_id(store) == second.run_id
    assert run_overview(store, first.run_id).customers == 2357
    assert store.count("customer_snapshots") == 2 * 2357
    periods = store.con.execute(
        "SELECT sum(revenue) FROM period_snapshots WHERE run_id = ?", [second.run_id]
    ).fetchone()
    assert periods is not None and periods[0] == pytest.approx(244_091.94)


def test_customer_view(store: Store) -> None:
    ingest_transactions(store, shared("cdnow_sample.parquet"))
    run = analyze(store, as_of=dt.date(1997, 9, 30))
    view = customer_view(store, "1")
    assert view["run_id"] == run.run_id
    assert view["figures"]["frequency"] >= 0
    assert all(t["ts"] <= "1997-09-30 23:59:59" for t in view["recent_transactions"])
    with pytest.raises(NotFoundError, match="customer 'nobody' has no purchase"):
        customer_view(store, "nobody")
    with pytest.raises(NotFoundError, match="no run 'r0'"):
        customer_view(store, "1", run_id="r0")


def test_analyze_without_data_is_a_clear_error(store: Store) -> None:
    with pytest.raises(DataError, match="no transactions"):
        analyze(store)
    with pytest.raises(NotFoundError, match="no analysis run yet"):
        latest_run_id(store)
    ingest_transactions(store, shared("cdnow_sample.parquet"))
    with pytest.raises(DataError, match="no transactions on or before 1990-01-01"):
        analyze(store, as_of=dt.date(1990, 1, 1))
    assert store.count("runs") == 0
