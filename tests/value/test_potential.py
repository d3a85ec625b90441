"""Potential value in the pipeline: models fitted by analyze, predictions in the snapshot."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.conftest import shared

from cvm import Store
from cvm.config import settings_from_dict
from cvm.dynamics import analyze, model_fits
from cvm.features import btyd_summary
from cvm.ingest import ingest_transactions
from cvm.models import BetaGeoModel, load_model
from cvm.models.base import BaseModel
from cvm.models.clv import customer_lifetime_value

WEEKS = 365.2425 / 7


def snapshot(store: Store, run_id: str) -> pd.DataFrame:
    frame: pd.DataFrame = store.con.execute(
        "SELECT * FROM customer_snapshots WHERE run_id = ? ORDER BY customer_id", [run_id]
    ).df()
    return frame


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(tmp_path_factory.mktemp("pv") / "s.duckdb")
    ingest_transactions(store, shared("cdnow_sample.parquet"))
    return store


def test_analyze_adds_potential_value_with_the_chosen_model(cdnow: Store) -> None:
    overview = analyze(cdnow, as_of=dt.date(1998, 6, 30))
    frame = snapshot(cdnow, overview.run_id)
    assert frame["p_alive"].between(0, 1).all()
    assert (frame["expected_purchases_90d"] >= 0).all()
    assert (frame["potential_value"] >= 0).all() and frame["potential_value"].notna().all()
    assert overview.potential_value == pytest.approx(frame["potential_value"].sum())
    assert overview.purchase_model in {"bgnbd", "mbgnbd", "pareto_nbd"}
    assert overview.model_reason and "lowest holdout mean absolute error" in overview.model_reason
    assert overview.spend_model == "gamma_gamma"
    fits = model_fits(cdnow, run_id=overview.run_id)
    tested = [f for f in fits if f["role"] == "purchase-backtest"]
    assert {f["model"] for f in tested} == {"bgnbd", "mbgnbd", "pareto_nbd"}
    assert all(f["backtest"]["customers"] > 0 for f in tested)
    assert [f["model"] for f in fits if f["chosen"] and f["role"] == "purchase"] == [
        overview.purchase_model
    ]


def test_potential_value_is_the_documented_clv(cdnow: Store) -> None:
    """Recompute one run's CLV from its stored models: the same numbers."""
    settings = settings_from_dict(
        {"models": {"purchase": "bgnbd", "horizon_years": 2.0, "discount_rate": 0.15}}
    )
    overview = analyze(cdnow, settings, as_of=dt.date(1997, 9, 30))
    fits = {f["role"]: f for f in model_fits(cdnow, run_id=overview.run_id)}
    assert fits["purchase"]["reason"] == "bgnbd: configured"
    row = cdnow.con.execute(
        "SELECT fitted FROM model_fits WHERE run_id = ? AND role = 'purchase'", [overview.run_id]
    ).fetchone()
    assert row is not None
    summary = (
        cdnow.to_arrow(
            btyd_summary(cdnow.table("transactions"), observation_end=dt.date(1997, 9, 30))
        )
        .to_pandas()
        .sort_values("customer_id")
        .reset_index(drop=True)
    )
    direct = BetaGeoModel().fit(summary)
    assert fits["purchase"]["params"] == pytest.approx(direct.params_, rel=1e-6)
    frame = snapshot(cdnow, overview.run_id)
    clv = customer_lifetime_value(
        direct,
        summary,
        horizon=2 * WEEKS,
        discount_rate=0.15,
        units_per_year=WEEKS,
        spend=frame["expected_spend"].to_numpy(),
        margin=0.3,
    )
    np.testing.assert_allclose(frame["potential_value"], clv, rtol=1e-6)
    np.testing.assert_allclose(frame["p_alive"], direct.probability_alive(summary), rtol=1e-6)


def test_saved_fits_load_back(cdnow: Store, tmp_path: Path) -> None:
    overview = analyze(cdnow, settings_from_dict({"models": {"purchase": "bgnbd"}}))
    row = cdnow.con.execute(
        "SELECT fitted FROM model_fits WHERE run_id = ? AND role = 'spend'", [overview.run_id]
    ).fetchone()
    assert row is not None
    path = tmp_path / "gg.json"
    path.write_text(row[0])
    model = load_model(path)
    assert isinstance(model, BaseModel) and type(model).__name__ == "GammaGammaModel"


def test_a_model_that_cannot_be_fitted_is_reported_not_fatal(
    tmp_path: Path,
) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "ts": pd.to_datetime(["2020-01-01 00:00", "2020-01-02 00:00"]),
            "amount": [10.0, 20.0],
        }
    )
    with Store(tmp_path / "tiny.duckdb") as store:
        ingest_transactions(store, frame)
        overview = analyze(store, settings_from_dict({"models": {"purchase": "bgnbd"}}))
        assert overview.customers == 2
        assert overview.potential_value is None
        assert overview.model_errors
        assert snapshot(store, overview.run_id)["potential_value"].isna().all()


def test_measured_margin_is_used_for_clv(tmp_path: Path) -> None:
    """With margins in the data, potential value uses the measured profit ratio."""
    raw = pd.read_parquet(shared("cdnow_sample.parquet"))
    frame = pd.DataFrame(
        {
            "customer_id": raw["customer_id"].astype(str),
            "ts": pd.to_datetime(raw["date"]),
            "amount": raw["dollar_value"],
            "margin": raw["dollar_value"] * 0.5,
        }
    )
    runs = {}
    for label, data in (("with", frame), ("without", frame.drop(columns="margin"))):
        with Store(tmp_path / f"{label}.duckdb") as store:
            ingest_transactions(store, data)
            overview = analyze(store, settings_from_dict({"models": {"purchase": "bgnbd"}}))
            runs[label] = overview.potential_value
    assert runs["with"] == pytest.approx(runs["without"] / 0.3 * 0.5, rel=1e-6)
