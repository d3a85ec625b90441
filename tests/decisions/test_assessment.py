"""The CRM investment assessment: the worked example, overrides, measured figures, the CLI."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import doctest
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from tests.cli.test_cli import one_line, run_cvm, run_json
from typer.testing import CliRunner

import cvm.cli.main  # noqa: F401  (registers every command and the main callback on app)
from cvm import Store
from cvm.cli.assess import OPTIONS
from cvm.cli.common import app
from cvm.config import AssessSettings, settings_from_dict
from cvm.decisions import assessment
from cvm.decisions.assessment import (
    AssessmentInputs,
    StoreMeasures,
    assess,
    assess_store,
    measure,
)
from cvm.dynamics import analyze
from cvm.errors import ConfigError, NotFoundError, ValidationError
from cvm.ingest import ingest, ingest_transactions

BILLION = 1e9


def figure(result: assessment.Assessment, name: str) -> float:
    value = result.figures[name].value
    assert value is not None, name
    return value


# -- the worked example -----------------------------------------------------------------
def test_worked_example_turnover_30_market_growth_15() -> None:
    """Revenue 1 billion, 30 % turnover, 15 % market growth (docs/assessment.md).

    Acquiring new customers only at the market growth rate loses 150 million of
    revenue, and winning back lost ground takes 30 % of sales and marketing expense.
    """
    expense = 0.2 * BILLION
    result = assess(
        AssessmentInputs(revenue=BILLION, turnover=0.30, market_growth=0.15, expense=expense)
    )
    assert figure(result, "revenue_lost_at_market_pace") == pytest.approx(150e6, rel=1e-12)
    assert figure(result, "replacement_effort") / expense == pytest.approx(0.30, rel=1e-12)
    assert figure(result, "revenue_lost_to_turnover") == pytest.approx(300e6, rel=1e-12)
    assert figure(result, "acquisition_needed") == pytest.approx(0.45, rel=1e-12)
    # default target: 70 % retention + 5 points → 75 %: 5 % of revenue regained
    assert result.inputs["target_retention"].source == "derived"
    assert figure(result, "retention_gain") == pytest.approx(50e6, rel=1e-12)
    assert {result.inputs[n].source for n in ("revenue", "turnover", "market_growth")} == {"given"}
    # without a referral value (no store, not given) the ceiling is unknown, not understated
    assert result.spending_ceiling is None
    assert result.figures["spending_ceiling"].missing == ("referral_value",)
    with_referrals = assess(dataclasses.replace(result_inputs(result), referral_value=10e6))
    assert with_referrals.spending_ceiling == pytest.approx(300e6 + 3e6, rel=1e-12)


def result_inputs(result: assessment.Assessment) -> AssessmentInputs:
    """The given inputs of an assessment computed from given inputs only."""
    given: dict[str, Any] = {n: i.value for n, i in result.inputs.items() if i.source == "given"}
    return dataclasses.replace(AssessmentInputs(), **given)


def test_the_module_docstring_example_runs() -> None:
    failed, attempted = doctest.testmod(assessment, raise_on_error=False, verbose=False)
    assert attempted >= 3 and failed == 0


@pytest.mark.parametrize(
    ("turnover", "market_growth", "acquisition"),
    [(0.30, 0.15, 0.15), (0.10, 0.25, 0.25), (0.40, 0.0, 0.0), (0.2, 0.05, 0.5)],
)
def test_formulas_follow_from_counting_customers(
    turnover: float, market_growth: float, acquisition: float
) -> None:
    """Count customers explicitly: N at start, N·t leave, N·a join, revenue per customer.

    The revenue still lost at market pace is the fall from today's revenue when a = g;
    the needed acquisition rate is the one that makes the base grow by g exactly.
    """
    n, per_customer = 10_000.0, 250.0
    revenue = n * per_customer
    end = n - n * turnover + n * acquisition
    result = assess(
        AssessmentInputs(
            revenue=revenue,
            turnover=turnover,
            market_growth=market_growth,
            acquisition_rate=acquisition,
        )
    )
    if acquisition == market_growth:
        fall = max(revenue - (n - n * turnover + n * market_growth) * per_customer, 0.0)
        assert figure(result, "revenue_lost_at_market_pace") == pytest.approx(fall)
    needed = figure(result, "acquisition_needed")
    assert n - n * turnover + n * needed == pytest.approx(n * (1 + market_growth))
    gap = figure(result, "acquisition_gap")
    assert end + n * gap == pytest.approx(n * (1 + market_growth))


def test_retention_gain_is_zero_when_retention_already_meets_the_target() -> None:
    result = assess(AssessmentInputs(revenue=100.0, turnover=0.1, target_retention=0.85))
    assert figure(result, "retention_gain") == 0.0
    assert result.inputs["target_retention"].source == "given"
    higher = assess(AssessmentInputs(revenue=100.0, turnover=0.1, target_retention=0.95))
    assert figure(higher, "retention_gain") == pytest.approx(5.0)
    capped = assess(AssessmentInputs(revenue=100.0, turnover=0.02, retention_improvement=0.1))
    assert capped.inputs["target_retention"].value == 1.0
    assert figure(capped, "retention_gain") == pytest.approx(2.0)


# -- bad inputs -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("turnover", 1.2, "key 'turnover': must be between 0 and 1"),
        ("turnover", -0.1, "key 'turnover': must be between 0 and 1"),
        ("market_growth", -0.05, "key 'market_growth': must be at least 0"),
        ("expense", -1.0, "key 'expense': must be at least 0"),
        ("acquisition_rate", -0.2, "key 'acquisition_rate': must be at least 0"),
        ("revenue", float("nan"), "key 'revenue': must be at least 0"),
        ("target_retention", 1.5, "key 'target_retention': must be between 0 and 1"),
        ("revenue_growth", -1.5, "key 'revenue_growth': must be at least -1"),
        ("margin_rate", 2.0, "key 'margin_rate': must be between 0 and 1"),
    ],
)
def test_bad_inputs_name_the_field(field: str, value: float, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        AssessmentInputs(**{field: value})
    assert caught.value.key == field
    with pytest.raises(ValueError):  # also a plain ValueError
        AssessmentInputs.from_settings(AssessSettings(), **{field: value})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("market_growth", -0.1, "must be a finite number of at least 0"),
        ("sales_marketing_expense", "lots", 'expected a number or "unknown"'),
        ("target_retention", 1.1, "at most 1"),
        ("retention_improvement", 2.0, "less than or equal to 1"),
    ],
)
def test_bad_settings_name_the_key(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=f"key 'assess.{key}': .*{message}"):
        settings_from_dict({"assess": {key: value}})


def test_settings_feed_the_given_inputs() -> None:
    settings = settings_from_dict(
        {"assess": {"market_growth": 0.05, "sales_marketing_expense": 2_000_000}}
    )
    given = AssessmentInputs.from_settings(settings.assess, turnover=0.2, expense=None)
    assert (given.market_growth, given.expense, given.turnover) == (0.05, 2e6, 0.2)
    assert given.target_retention is None and given.retention_improvement == 0.05
    defaults = AssessmentInputs.from_settings(AssessSettings())
    assert defaults == AssessmentInputs()


# -- measured figures on a store with known answers ---------------------------------------
#: Six customers, as of 2023-12-31: at the start (active in 2022) A, B, E, F; at the
#: end (active in 2023) A, C, D, E; D is new, C came back after a lapse, B and F left.
TINY = [
    ("A", "2022-06-01", 100.0),
    ("A", "2023-06-01", 150.0),
    ("B", "2022-03-01", 80.0),
    ("C", "2021-05-01", 60.0),
    ("C", "2023-03-01", 70.0),
    ("D", "2023-02-01", 200.0),
    ("D", "2023-02-01", -20.0),
    ("E", "2022-11-30", 50.0),
    ("E", "2023-12-31", 90.0),
    ("F", "2022-07-01", 40.0),
]

BGNBD = {"models": {"purchase": "bgnbd"}}  # tiny data: no holdout backtest


def _tiny_store(path: Path, rows: list[tuple[str, str, float]]) -> Store:
    frame = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    frame["ts"] = pd.to_datetime(frame["ts"])
    store = Store(path)
    ingest_transactions(store, frame)
    return store


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("tiny")
    store = _tiny_store(folder / "tiny.duckdb", TINY)
    # E (active) referred D; B (departed before as_of) referred A
    referrals = folder / "referrals.csv"
    referrals.write_text("referrer_id,referred_id\nE,D\nB,A\n", encoding="utf-8")
    ingest(store, referrals, table="referrals")
    analyze(store, settings_from_dict(BGNBD), as_of=dt.date(2023, 12, 31))
    with store:
        yield store


def test_measure_counts_customers_and_revenue(tiny: Store) -> None:
    m = measure(tiny)
    assert (m.start, m.previous_start) == (dt.date(2022, 12, 31), dt.date(2021, 12, 31))
    assert (m.customers_start, m.customers_end, m.new_customers) == (4, 4, 1)
    assert (m.retained, m.reactivated) == (2, 1)
    assert m.retention_rate == pytest.approx(0.75) and m.turnover == pytest.approx(0.25)
    assert m.acquisition_rate == pytest.approx(0.25)
    assert m.revenue == pytest.approx(150 + 70 + 200 - 20 + 90)
    assert m.revenue_previous == pytest.approx(100 + 80 + 50 + 40)
    assert m.revenue_growth == pytest.approx(490 / 270 - 1)
    assert m.margin_rate == pytest.approx(0.3)  # the default margin rate
    assert m.first_transaction == dt.date(2021, 5, 1) and m.notes == ()
    rows = tiny.con.execute(
        "SELECT customer_id, influence_value FROM customer_snapshots WHERE run_id = ?",
        [m.run_id],
    ).fetchall()
    influence = dict(rows)
    assert influence["E"] > 0 and influence["B"] > 0
    assert m.active_customers == 4
    assert m.referral_value == pytest.approx(influence["E"])  # B has departed


def test_assess_store_marks_measured_and_given_inputs(tiny: Store) -> None:
    result = assess_store(
        tiny,
        settings=settings_from_dict({**BGNBD, "assess": {"market_growth": 0.1}}),
    )
    sources = {name: item.source for name, item in result.inputs.items()}
    assert sources == {
        "revenue": "measured",
        "turnover": "measured",
        "acquisition_rate": "measured",
        "revenue_growth": "measured",
        "referral_value": "measured",
        "margin_rate": "measured",
        "market_growth": "given",
        "expense": "missing",
        "target_retention": "derived",
    }
    assert figure(result, "revenue_lost_to_turnover") == pytest.approx(490 * 0.25)
    assert figure(result, "revenue_lost_at_market_pace") == pytest.approx(490 * 0.15)
    assert figure(result, "acquisition_gap") == pytest.approx(0.25 + 0.1 - 0.25)
    assert figure(result, "growth_versus_market") == pytest.approx(490 / 270 - 1 - 0.1)
    assert figure(result, "retention_gain") == pytest.approx(490 * 0.05)
    assert result.figures["replacement_effort"].value is None
    assert any("sales and marketing expense is not given" in n for n in result.notes)
    referral = result.inputs["referral_value"].value
    assert referral is not None and referral > 0
    assert result.spending_ceiling == pytest.approx(490 * 0.25 + referral * 0.25)
    assert figure(result, "profit_ceiling") == pytest.approx(0.3 * 490 * 0.25 + referral * 0.25)
    assert result.run_id == measure(tiny).run_id and result.as_of == dt.date(2023, 12, 31)


def test_overrides_replace_measured_figures_and_say_so(tiny: Store) -> None:
    given = AssessmentInputs(revenue=1000.0, turnover=0.4, market_growth=0.1)
    result = assess_store(tiny, settings=settings_from_dict(BGNBD), given=given)
    revenue, turnover = result.inputs["revenue"], result.inputs["turnover"]
    assert (revenue.value, revenue.source, turnover.value, turnover.source) == (
        1000.0,
        "given",
        0.4,
        "given",
    )
    assert result.inputs["acquisition_rate"].source == "measured"
    assert result.measures is not None and result.measures.turnover == pytest.approx(0.25)
    assert figure(result, "revenue_lost_to_turnover") == pytest.approx(400.0)
    assert figure(result, "revenue_lost_at_market_pace") == pytest.approx(300.0)
    target = result.inputs["target_retention"]
    assert target.value == pytest.approx(0.65) and "turnover (given)" in target.basis
    sources = {i.name: i.source for i in result.figures["acquisition_gap"].inputs}
    assert sources == {
        "turnover": "given",
        "market_growth": "given",
        "acquisition_rate": "measured",
    }


def test_win_backs_above_departures_count_as_zero_turnover(tmp_path: Path) -> None:
    rows = [
        ("X", "2022-06-01", 10.0),
        ("X", "2023-06-01", 10.0),
        ("W", "2022-05-01", 10.0),
        ("Y", "2021-01-01", 10.0),
        ("Y", "2023-01-05", 10.0),
        ("Z", "2021-02-01", 10.0),
        ("Z", "2023-02-05", 10.0),
    ]
    with _tiny_store(tmp_path / "w.duckdb", rows) as store:
        analyze(store, settings_from_dict(BGNBD), as_of=dt.date(2023, 12, 31))
        m = measure(store)
    assert (m.customers_start, m.customers_end, m.new_customers) == (2, 3, 0)
    assert m.retention_rate == pytest.approx(1.5) and m.turnover == 0.0
    assert any("win-backs outnumber departures" in note for note in m.notes)
    assert m.revenue_growth == pytest.approx(30 / 20 - 1)
    assert len(m.notes) == 1


def test_store_measures_without_customers_at_start() -> None:
    m = StoreMeasures(
        run_id="r",
        as_of=dt.date(2020, 12, 31),
        start=dt.date(2019, 12, 31),
        previous_start=dt.date(2018, 12, 31),
        first_transaction=dt.date(2020, 3, 1),
        activity_window_months=12,
        customers_start=0,
        customers_end=10,
        new_customers=10,
        retained=0,
        reactivated=0,
        revenue=0.0,
        profit=0.0,
        revenue_previous=None,
        active_customers=10,
        referral_value=0.0,
    )
    assert m.turnover is None and m.acquisition_rate is None and m.margin_rate is None
    result = assess(AssessmentInputs(market_growth=0.1), m)
    assert result.inputs["turnover"].source == "missing"
    assert result.spending_ceiling is None
    assert result.figures["acquisition_needed"].missing == ("turnover",)


def test_measure_needs_a_run(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.duckdb") as store, pytest.raises(NotFoundError, match="run"):
        measure(store)


# -- the Online Retail demo ---------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Online Retail demo store (real transactions + synthetic referrals)."""
    folder = tmp_path_factory.mktemp("demo")
    run_json("demo", "--dir", "D", "--dataset", "online_retail", cwd=folder)
    return folder / "D" / "online_retail.duckdb"


def _pandas_measures(db: Path) -> dict[str, Any]:
    """The assessment's measured inputs, computed independently with pandas."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tx = con.execute("SELECT customer_id, ts, amount, margin, cost FROM transactions").df()
        mapping = dict(con.execute("SELECT customer_id, unified_id FROM customer_map").fetchall())
        run_id, as_of = con.execute(
            "SELECT run_id, as_of FROM runs ORDER BY created_at DESC LIMIT 1"
        ).fetchone() or (None, None)
        snapshot = con.execute(
            "SELECT last_purchase, influence_value FROM customer_snapshots WHERE run_id = ?",
            [run_id],
        ).df()
    finally:
        con.close()
    assert as_of == dt.date(2011, 12, 9)
    end, start, before = (pd.Timestamp(d) for d in ("2011-12-09", "2010-12-09", "2009-12-09"))
    tx["cid"] = tx["customer_id"].map(mapping).fillna(tx["customer_id"])
    day = tx["ts"].dt.normalize()
    tx = tx[day <= end]
    day = day[day <= end]
    at_start = set(tx.loc[(day > before) & (day <= start), "cid"])
    at_end = set(tx.loc[(day > start) & (day <= end), "cid"])
    first = tx.groupby("cid")["ts"].min().dt.normalize()
    new = {c for c in at_end if start < first[c] <= end}
    period = (day > start) & (day <= end)
    profit = tx["margin"].fillna(tx["amount"] - tx["cost"]).fillna(tx["amount"] * 0.3)
    active = pd.to_datetime(snapshot["last_purchase"]) > start
    return {
        "customers_start": len(at_start),
        "customers_end": len(at_end),
        "new_customers": len(new),
        "revenue": tx.loc[period, "amount"].sum(),
        "profit": profit[period].sum(),
        "referral_value": snapshot.loc[active, "influence_value"].fillna(0).sum(),
        "active_customers": int(active.sum()),
    }


def test_online_retail_measures_match_pandas(demo: Path) -> None:
    expected = _pandas_measures(demo)
    with Store(demo, read_only=True) as store:
        m = measure(store)
        result = assess_store(store, given=AssessmentInputs(market_growth=0.05, expense=1e6))
    assert (m.customers_start, m.customers_end, m.new_customers, m.active_customers) == (
        expected["customers_start"],
        expected["customers_end"],
        expected["new_customers"],
        expected["active_customers"],
    )
    assert m.revenue == pytest.approx(expected["revenue"], rel=1e-9)
    assert m.profit == pytest.approx(expected["profit"], rel=1e-9)
    assert m.referral_value == pytest.approx(expected["referral_value"], rel=1e-9)
    turnover = (
        1 - (expected["customers_end"] - expected["new_customers"]) / expected["customers_start"]
    )
    assert m.turnover == pytest.approx(turnover, rel=1e-12)
    assert 0 < turnover < 1 and m.referral_value > 0
    # one year of data: no growth, and the few days before the period bias the counts
    assert m.revenue_growth is None
    assert any("less than 12 months before the period" in note for note in m.notes)
    assert figure(result, "revenue_lost_to_turnover") == pytest.approx(
        expected["revenue"] * turnover, rel=1e-9
    )
    assert figure(result, "revenue_lost_at_market_pace") == pytest.approx(
        expected["revenue"] * (turnover - 0.05), rel=1e-9
    )
    assert figure(result, "replacement_effort") == pytest.approx(1e6 * turnover, rel=1e-9)
    assert result.spending_ceiling == pytest.approx(
        (expected["revenue"] + expected["referral_value"]) * turnover, rel=1e-9
    )


def test_cli_assess_on_the_demo(demo: Path, tmp_path: Path) -> None:
    folder = demo.parent
    config = tmp_path / "assess.toml"
    config.write_text("[assess]\nmarket_growth = 0.05\n", encoding="utf-8")
    shown = run_json("assess", "--db", demo, "--config", config, "--expense", "1000000", cwd=folder)
    with Store(demo, read_only=True) as store:
        direct = assess_store(
            store,
            settings=settings_from_dict({"assess": {"market_growth": 0.05}}),
            given=AssessmentInputs(market_growth=0.05, expense=1e6),
        )
    assert shown["spending_ceiling"] == pytest.approx(direct.spending_ceiling, rel=1e-12)
    for name, item in direct.figures.items():
        expected = None if item.value is None else pytest.approx(item.value, rel=1e-12)
        assert shown["figures"][name]["value"] == expected, name
    assert shown["inputs"]["market_growth"]["source"] == "given"  # from the config file
    assert shown["inputs"]["turnover"]["source"] == "measured"
    assert shown["figures"]["replacement_effort"]["inputs"]["expense"] == {
        "value": 1e6,
        "source": "given",
    }

    overridden = run_json(
        "assess", "--db", demo, "--turnover", "0.2", "--revenue", "5000000", cwd=folder
    )
    assert overridden["inputs"]["turnover"] | {"basis": ""} == {
        "name": "turnover",
        "label": "customer turnover rate",
        "value": 0.2,
        "unit": "rate",
        "source": "given",
        "basis": "",
    }
    assert overridden["figures"]["revenue_lost_to_turnover"]["value"] == pytest.approx(1e6)
    assert overridden["inputs"]["referral_value"]["source"] == "measured"

    table = one_line(run_cvm("assess", "--db", demo, "--market-growth", "0.05", cwd=folder).stdout)
    assert "revenue still lost if acquisition only keeps pace with the market" in table
    assert "turnover = 12.1% (measured)" in table and "market_growth = 5.0% (given)" in table
    assert "Spending ceiling = revenue lost to customer turnover + referral value lost" in table
    assert "note: the data begin on 2010-12-01" in table

    text = run_cvm("assess", "--db", demo, "--format", "csv", cwd=folder).stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["name"] for r in rows if r["kind"] == "input"] == list(assessment.INPUTS)
    ceiling = next(r for r in rows if r["name"] == "spending_ceiling")
    assert float(ceiling["value"]) == pytest.approx(direct.spending_ceiling, rel=1e-9)
    assert "turnover=" in ceiling["inputs"] and "(measured)" in ceiling["inputs"]


# -- the CLI without a store, and its errors ----------------------------------------------
def test_cli_worked_example_without_a_store(tmp_path: Path) -> None:
    shown = run_json(
        "assess",
        "--revenue",
        "1e9",
        "--turnover",
        "0.3",
        "--market-growth",
        "0.15",
        "--expense",
        "2e8",
        "--referral-value",
        "0",
        cwd=tmp_path,
    )
    figures = shown["figures"]
    assert figures["revenue_lost_at_market_pace"]["value"] == pytest.approx(150e6)
    assert figures["replacement_effort"]["value"] == pytest.approx(0.3 * 2e8)
    assert shown["spending_ceiling"] == pytest.approx(300e6)
    assert shown["run_id"] is None and shown["measures"] is None
    assert not (tmp_path / "cvm.duckdb").exists()


def test_every_input_has_an_option() -> None:
    fields = [f.name for f in dataclasses.fields(AssessmentInputs)]
    assert list(OPTIONS) == fields
    assert all(OPTIONS[name] == "--" + name.replace("_", "-") for name in fields)


def test_cli_errors_name_the_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["assess", "--revenue", "1", "--turnover", "1.5"])
    assert done.exit_code == 2
    assert "--turnover" in done.output and "must be between 0 and 1" in one_line(done.output)
    bad_growth = ["--turnover", "0.1", "--market-growth", "-0.1"]
    done = runner.invoke(app, ["assess", "--revenue", "1", *bad_growth])
    assert done.exit_code == 2
    assert "--market-growth" in done.output and "must be at least 0" in one_line(done.output)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text("[assess]\nmarket_growth = -0.1\n", encoding="utf-8")
    done = runner.invoke(app, ["assess", "--config", "bad.toml"])
    assert isinstance(done.exception, ConfigError)
    assert "key 'assess.market_growth'" in str(done.exception)
    # as a user sees it: no store, and not enough given to go without one
    done_cli = run_cvm("assess", "--turnover", "0.3", cwd=tmp_path, code=1)
    assert "or give --revenue and --turnover" in one_line(done_cli.stderr)
    assert not (tmp_path / "cvm.duckdb").exists()
