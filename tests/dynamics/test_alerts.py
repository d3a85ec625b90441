"""Early warnings between two snapshots: each rule, its boundary, ranking, the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pytest
from tests.cli.test_cli import assert_error, one_line, run_cvm, run_json
from tests.conftest import shared
from typer.testing import CliRunner

from cvm import Settings, Store
from cvm.cli.alerts import Rule
from cvm.cli.main import app
from cvm.config import AlertSettings, settings_from_dict
from cvm.dynamics import analyze
from cvm.dynamics.alerts import (
    ALERT_COLUMNS,
    ALERT_RULES,
    compare_snapshots,
    early_warnings,
)
from cvm.errors import ConfigError, DataError, NotFoundError, SchemaError
from cvm.ingest import ingest_transactions

SCHEMA = {
    "customer_id": "string",
    "tier": "int32",
    "tier_name": "string",
    "lifecycle_stage": "string",
    "lifecycle_reason": "string",
    "p_alive": "float64",
    "total_value": "float64",
    "potential_value": "float64",
    "nps": "float64",
    "nps_category": "string",
}
runner = CliRunner()
TIER_NAMES = {1: "platinum", 2: "gold", 3: "iron", 4: "lead"}


def row(customer_id: str = "c", **figures: Any) -> dict[str, Any]:
    """A snapshot row of a steady customer (no rule holds), with ``figures`` changed."""
    base: dict[str, Any] = {
        "customer_id": customer_id,
        "tier": 3,
        "lifecycle_stage": "maturity",
        "lifecycle_reason": "steady",
        "p_alive": 0.9,
        "total_value": 100.0,
        "potential_value": 50.0,
        "nps": None,
        "nps_category": None,
    }
    base |= figures
    base.setdefault("tier_name", TIER_NAMES.get(base["tier"]))
    return base


def snapshot(rows: list[dict[str, Any]]) -> Any:
    return ibis.memtable({c: [r[c] for r in rows] for c in SCHEMA}, schema=ibis.schema(SCHEMA))


def alerts(
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
    settings: AlertSettings | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    table = compare_snapshots(snapshot(before), snapshot(after), settings, **kwargs)
    result: list[dict[str, Any]] = table.to_pyarrow().to_pylist()
    return result


def rules_of(before: dict[str, Any], after: dict[str, Any], **settings: Any) -> str | None:
    """The rules one customer raises (None: no alert)."""
    found = alerts([before], [after], AlertSettings(**settings))
    assert len(found) <= 1
    return found[0]["rules"] if found else None


# -- each rule and its boundary ---------------------------------------------------------
@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({"tier": 1}, {"tier": 2}, "tier_drop"),
        ({"tier": 2}, {"tier": 4}, "tier_drop"),
        ({"tier": 3}, {"tier": 4}, None),  # not a high tier
        ({"tier": 2}, {"tier": 2}, None),
        ({"tier": 2}, {"tier": 1}, None),
        ({"tier": None}, {"tier": 4}, None),
    ],
)
def test_tier_drop(before: dict[str, Any], after: dict[str, Any], expected: str | None) -> None:
    assert rules_of(row(**before), row(**after)) == expected


def test_tier_drop_watches_the_configured_tiers() -> None:
    assert rules_of(row(tier=3), row(tier=4), high_tiers=3) == "tier_drop"
    assert rules_of(row(tier=2), row(tier=3), high_tiers=1) is None


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("maturity", "decline", "decline"),
        ("growth", "decline", "decline"),
        ("growth", "departure", "decline"),
        ("acquisition", "decline", None),
        ("decline", "departure", None),
        ("maturity", "growth", None),
        ("maturity", "acquisition", None),
    ],
)
def test_decline(before: str, after: str, expected: str | None) -> None:
    got = rules_of(row(lifecycle_stage=before), row(lifecycle_stage=after))
    assert got == expected


def test_decline_stages_are_configurable() -> None:
    before, after = row(lifecycle_stage="acquisition"), row(lifecycle_stage="departure")
    assert rules_of(before, after) is None
    assert rules_of(before, after, decline_from=["acquisition"]) == "decline"
    departing = row(lifecycle_stage="departure")
    assert rules_of(row(), departing, decline_to=["decline"]) is None


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (0.5, 0.4999, "p_alive"),  # from exactly the threshold
        (0.9, 0.1, "p_alive"),
        (0.6, 0.5, None),  # exactly the threshold is not below it
        (0.4999, 0.1, None),  # already below
        (None, 0.1, None),  # no model at the earlier snapshot
        (0.9, None, None),
    ],
)
def test_p_alive(before: float | None, after: float | None, expected: str | None) -> None:
    assert rules_of(row(p_alive=before), row(p_alive=after)) == expected


def test_p_alive_threshold_is_configurable() -> None:
    assert rules_of(row(p_alive=0.85), row(p_alive=0.75)) is None
    assert rules_of(row(p_alive=0.85), row(p_alive=0.75), p_alive_threshold=0.8) == "p_alive"


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (1000.0, 700.0, None),  # exactly 30 %: not more
        (1000.0, 699.99, "value_drop"),
        (100.0, 69.99, "value_drop"),
        (1.1, 0.77, None),  # 30 % in float noise: (1.1 - 0.77) / 1.1 = 0.30000000000000004
        (100.0, -12.5, "value_drop"),
        (0.0, -100.0, None),  # nothing positive to fall from
        (-10.0, -50.0, None),
        (100.0, 150.0, None),
    ],
)
def test_value_drop(before: float, after: float, expected: str | None) -> None:
    assert (1.1 - 0.77) / 1.1 > 0.3  # the noise the rounding removes
    assert rules_of(row(total_value=before), row(total_value=after)) == expected


def test_value_drop_share_is_configurable() -> None:
    assert rules_of(row(total_value=100.0), row(total_value=85.0)) is None
    got = rules_of(row(total_value=100.0), row(total_value=85.0), value_drop_share=0.1)
    assert got == "value_drop"


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({"tier": 1, "nps": 8, "nps_category": "passive"}, {"nps": 3}, "detractor"),
        ({"tier": 2, "nps": 10, "nps_category": "promoter"}, {"nps": 6}, "detractor"),
        ({"tier": 2}, {"nps": 0}, "detractor"),  # no answer before
        ({"tier": 3}, {"tier": 2, "nps": 4}, "detractor"),  # high tier at the later snapshot
        ({"tier": 3}, {"nps": 2}, None),  # not a high tier
        ({"tier": 1, "nps": 2, "nps_category": "detractor"}, {"nps": 5}, None),  # already
        (
            {"tier": 1, "nps": 9, "nps_category": "promoter"},
            {"nps": 7, "nps_category": "passive"},
            None,
        ),
    ],
)
def test_detractor(before: dict[str, Any], after: dict[str, Any], expected: str | None) -> None:
    after = {"tier": before["tier"], "nps_category": "detractor"} | after
    assert rules_of(row(**before), row(**after)) == expected


# -- one alert per customer, its reasons and value at risk ------------------------------
def test_one_alert_lists_every_reason_with_the_numbers() -> None:
    before = row(
        "vip",
        tier=1,
        p_alive=0.71,
        total_value=1000.0,
        potential_value=600.0,
        nps=8,
        nps_category="passive",
    )
    after = row(
        "vip",
        tier=2,
        lifecycle_stage="decline",
        lifecycle_reason="spend in the last 6 months down 52 % on the 6 months before",
        p_alive=0.38,
        total_value=-12.5,
        potential_value=200.0,
        nps=3,
        nps_category="detractor",
    )
    [alert] = alerts([before], [after])
    assert list(alert) == list(ALERT_COLUMNS)
    assert alert["rank"] == 1 and alert["customer_id"] == "vip"
    assert alert["rules"] == "tier_drop, decline, p_alive, value_drop, detractor"
    assert alert["reasons"] == (
        "tier platinum → gold (tier 1 → 2); "
        "stage maturity → decline: spend in the last 6 months down 52 % on the 6 months "
        "before; "
        "P(alive) 0.71 → 0.38 (below 0.50); "
        "total value 1000.00 → -12.50 (down 101.2 %, more than 30 %); "
        "tier gold customer became a detractor (NPS 3; before: passive)"
    )
    # potential value at the later snapshot + the fall in total value
    assert alert["value_at_risk"] == pytest.approx(200.0 + 1012.5)
    assert (alert["tier_before"], alert["tier_after"]) == (1, 2)
    assert (alert["nps_category_before"], alert["nps_category_after"]) == ("passive", "detractor")


def test_reasons_truncate_so_they_never_contradict_the_threshold() -> None:
    [alert] = alerts(
        [row(p_alive=0.5, total_value=1000.0)], [row(p_alive=0.4999, total_value=699.4)]
    )
    # 0.4999 shows as 0.49, not 0.50; a fall of 30.06 % as 30.0 %
    assert alert["reasons"] == (
        "P(alive) 0.50 → 0.49 (below 0.50); "
        "total value 1000.00 → 699.40 (down 30.0 %, more than 30 %)"
    )
    settings = AlertSettings(value_drop_share=0.125, p_alive_threshold=0.125)
    [alert] = alerts(
        [row(p_alive=0.2, total_value=8.0)], [row(p_alive=0.1, total_value=1.0)], settings
    )
    assert alert["reasons"] == (
        "P(alive) 0.20 → 0.10 (below 0.125); "
        "total value 8.00 → 1.00 (down 87.5 %, more than 12.5 %)"
    )


def test_value_at_risk_counts_the_future_and_the_fall_but_no_gain() -> None:
    before = [
        row("rose", tier=1, total_value=100.0, potential_value=80.0),
        row("fell", tier=1, total_value=100.0, potential_value=80.0),
        row("negative", tier=1, total_value=100.0, potential_value=80.0),
        row("unknown", tier=1, total_value=100.0, potential_value=80.0),
    ]
    after = [
        row("rose", tier=2, total_value=130.0, potential_value=90.0),
        row("fell", tier=2, total_value=60.0, potential_value=40.0),
        row("negative", tier=2, total_value=90.0, potential_value=-5.0),
        row("unknown", tier=2, total_value=100.0, potential_value=None),
    ]
    got = {a["customer_id"]: a["value_at_risk"] for a in alerts(before, after)}
    assert got == pytest.approx(
        {"rose": 90.0, "fell": 40.0 + 40.0, "negative": 10.0, "unknown": 0.0}
    )


def test_alerts_are_ranked_by_value_at_risk_then_earlier_value_then_id() -> None:
    before = [
        row("small", tier=1, total_value=100.0),
        row("big", tier=1, total_value=100.0),
        row("tie-b", tier=1, total_value=300.0),
        row("tie-a", tier=1, total_value=300.0),
        row("tie-low", tier=1, total_value=200.0),
        row("quiet", tier=1, total_value=5000.0),
    ]
    after = [
        row("small", tier=2, total_value=100.0, potential_value=10.0),
        row("big", tier=2, total_value=100.0, potential_value=900.0),
        row("tie-b", tier=2, total_value=300.0, potential_value=50.0),
        row("tie-a", tier=2, total_value=300.0, potential_value=50.0),
        row("tie-low", tier=2, total_value=200.0, potential_value=50.0),
        row("quiet", tier=1, total_value=5000.0, potential_value=4000.0),  # no rule holds
    ]
    ranked = alerts(before, after)
    assert [(a["rank"], a["customer_id"]) for a in ranked] == [
        (1, "big"),
        (2, "tie-a"),
        (3, "tie-b"),
        (4, "tie-low"),
        (5, "small"),
    ]


def test_new_and_lost_customers_raise_no_alert() -> None:
    before = [row("stays", tier=1), row("lost", tier=1, p_alive=0.9)]
    after = [row("stays", tier=1), row("new", tier=4, lifecycle_stage="departure", p_alive=0.1)]
    assert alerts(before, after) == []


def test_rules_can_be_chosen() -> None:
    before, after = [row(tier=1, p_alive=0.9)], [row(tier=2, p_alive=0.1)]
    assert alerts(before, after, rules=["p_alive"])[0]["rules"] == "p_alive"
    assert alerts(before, after, AlertSettings(rules=["tier_drop"]))[0]["rules"] == "tier_drop"
    assert alerts(before, after, rules=["decline", "value_drop"]) == []
    with pytest.raises(ConfigError, match="unknown alert rule 'tier'"):
        alerts(before, after, rules=["tier"])
    with pytest.raises(ConfigError, match="give at least one alert rule"):
        alerts(before, after, rules=[])


def test_dataframes_work_too() -> None:
    before = pd.DataFrame([row("x", tier=1, p_alive=0.9), row("y")])
    after = pd.DataFrame([row("x", tier=1, p_alive=0.2), row("y")])
    got = compare_snapshots(before, after).to_pyarrow().to_pylist()
    assert [(a["customer_id"], a["rules"]) for a in got] == [("x", "p_alive")]


def test_a_snapshot_without_the_columns_is_refused() -> None:
    before = snapshot([row()]).drop("p_alive")
    with pytest.raises(SchemaError, match="the before snapshot has no 'p_alive' column"):
        compare_snapshots(before, snapshot([row()]))


# -- configuration ----------------------------------------------------------------------
def test_defaults() -> None:
    s = Settings().dynamics.alerts
    assert s.rules == list(ALERT_RULES)
    assert (s.high_tiers, s.p_alive_threshold, s.value_drop_share) == (2, 0.5, 0.3)
    assert (s.decline_from, s.decline_to) == (["growth", "maturity"], ["decline", "departure"])
    assert [r.value for r in Rule] == list(ALERT_RULES)


@pytest.mark.parametrize(
    ("alerts_section", "message"),
    [
        ({"rules": []}, "give at least one of the rules"),
        ({"rules": ["p_alive", "p_alive"]}, "rules must not repeat"),
        ({"rules": ["tier"]}, "key 'dynamics.alerts.rules.0'"),
        ({"high_tiers": 0}, "greater than or equal to 1"),
        ({"p_alive_threshold": 1.5}, "less than or equal to 1"),
        ({"value_drop_share": 0.0}, "greater than 0"),
        ({"value_drop_share": 1.2}, "less than or equal to 1"),
        ({"decline_from": []}, "give at least one of the decline_from stages"),
        ({"decline_to": ["maturity"]}, "decline_to repeats stage(s) of decline_from: maturity"),
        ({"decline_to": ["gone"]}, "key 'dynamics.alerts.decline_to.0'"),
        ({"threshold": 0.5}, "unknown setting"),
    ],
)
def test_invalid_settings_are_refused(alerts_section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({"dynamics": {"alerts": alerts_section}})
    assert message in str(caught.value)


# -- between stored runs ----------------------------------------------------------------
def add_run(
    store: Store, run_id: str, as_of: dt.date, rows: list[dict[str, Any]], *, created: int
) -> None:
    """Insert a run and its snapshot rows directly (zeros for the other figures)."""
    store.con.execute(
        "INSERT INTO runs VALUES (?, ?, ?, 'week', 'month', '{}', ?, 0, 'test', NULL)",
        [run_id, as_of, dt.datetime(2024, 1, 1) + dt.timedelta(minutes=created), len(rows)],
    )
    frame = pd.DataFrame(rows).astype({"nps": "float64", "p_alive": "float64"})
    frame.insert(0, "run_id", run_id)
    store.con.register("new_rows", frame)
    try:
        columns = ", ".join(frame.columns)
        store.con.execute(
            f"INSERT INTO customer_snapshots (frequency, recency, t, monetary_value, occasions, "
            f"transactions, revenue, returns, margin, realized_value, {columns}) "
            f"SELECT 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, {columns} FROM new_rows"
        )
    finally:
        store.con.unregister("new_rows")


JAN = [row("a", tier=1, total_value=500.0), row("b", tier=2, p_alive=0.8), row("c")]
FEB = [
    row("a", tier=2, total_value=450.0, potential_value=300.0),
    row("b", tier=2, p_alive=0.3, potential_value=20.0),
    row("c"),
    row("d", tier=1),
]
MAR = [*FEB[:3], row("d", tier=1, lifecycle_stage="decline", lifecycle_reason="quiet")]


@pytest.fixture
def runs(store: Store) -> Store:
    # created out of date order: the earlier run is found by as_of, not by creation
    add_run(store, "feb", dt.date(2024, 2, 29), FEB, created=1)
    add_run(store, "jan", dt.date(2024, 1, 31), JAN, created=2)
    add_run(store, "mar", dt.date(2024, 3, 31), MAR, created=0)
    return store


def test_a_run_is_compared_with_the_one_before_it(runs: Store) -> None:
    w = early_warnings(runs, "feb")
    s = w.summary
    assert (s.run_id, s.against, s.as_of, s.against_as_of) == (
        "feb",
        "jan",
        dt.date(2024, 2, 29),
        dt.date(2024, 1, 31),
    )
    assert (s.customers, s.new_customers, s.lost_customers) == (3, 1, 0)
    assert [(r["customer_id"], r["rules"]) for r in w.rows()] == [
        ("a", "tier_drop"),
        ("b", "p_alive"),
    ]
    assert s.alerts == 2
    assert s.value_at_risk == pytest.approx(300.0 + 50.0 + 20.0)
    assert s.by_rule == {
        "tier_drop": {"alerts": 1, "value_at_risk": pytest.approx(350.0)},
        "decline": {"alerts": 0, "value_at_risk": 0.0},
        "p_alive": {"alerts": 1, "value_at_risk": pytest.approx(20.0)},
        "value_drop": {"alerts": 0, "value_at_risk": 0.0},
        "detractor": {"alerts": 0, "value_at_risk": 0.0},
    }
    assert w.to_pandas(top=1).customer_id.tolist() == ["a"]
    data = w.to_dict(top=5)
    json.dumps(data)  # plain data
    assert data["summary"]["against_as_of"] == "2024-01-31"
    assert data["summary"]["settings"]["p_alive_threshold"] == 0.5


def test_the_latest_run_and_an_explicit_earlier_one(runs: Store) -> None:
    # the latest run by creation is "jan"; its as_of has nothing before it
    with pytest.raises(NotFoundError, match="no run before 2024-01-31 to compare run jan with"):
        early_warnings(runs)
    w = early_warnings(runs, "mar")
    assert w.summary.against == "feb"
    assert [(r["customer_id"], r["rules"]) for r in w.rows()] == [("d", "decline")]
    w = early_warnings(runs, "mar", against="jan")
    assert w.summary.new_customers == 1  # d, whose decline is not an alert against jan
    assert [r["customer_id"] for r in w.rows()] == ["a", "b"]
    settings = settings_from_dict({"dynamics": {"alerts": {"p_alive_threshold": 0.2}}})
    w = early_warnings(runs, "mar", against="jan", settings=settings, rules=["p_alive"])
    assert (w.summary.alerts, w.summary.rules) == (0, ["p_alive"])


def test_runs_that_cannot_be_compared(runs: Store) -> None:
    with pytest.raises(DataError, match="cannot compare run feb with itself"):
        early_warnings(runs, "feb", against="feb")
    with pytest.raises(DataError, match=r"run mar \(as of 2024-03-31\) is later than run feb"):
        early_warnings(runs, "feb", against="mar")
    with pytest.raises(NotFoundError, match="no run 'apr'"):
        early_warnings(runs, "apr")
    with pytest.raises(NotFoundError, match="no run 'dec'"):
        early_warnings(runs, "feb", against="dec")


def invoke(*args: str | Path) -> str:
    """Run ``cvm ARGS`` through Typer's runner (in this process) and return its output."""
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_cli_as_a_user_runs_it(runs: Store, tmp_path: Path) -> None:
    runs.close()
    db = tmp_path / "test.duckdb"
    data = run_json("alerts", "--run", "feb", "--db", db, cwd=tmp_path)
    assert data["summary"]["alerts"] == 2 and data["summary"]["against"] == "jan"
    assert [a["customer_id"] for a in data["alerts"]] == ["a", "b"]
    assert data["alerts"][1]["reasons"] == "P(alive) 0.80 → 0.30 (below 0.50)"
    assert_error(run_cvm("alerts", "--db", db, cwd=tmp_path, code=1), "no run before 2024-01-31")


def test_the_cli_options_and_formats(runs: Store, tmp_path: Path) -> None:
    runs.close()
    db = tmp_path / "test.duckdb"
    top = json.loads(
        invoke(
            "alerts",
            "--run",
            "feb",
            "--top",
            "1",
            "--rule",
            "p_alive",
            "--db",
            db,
            "--format",
            "json",
        )
    )
    assert [a["customer_id"] for a in top["alerts"]] == ["b"]
    assert top["summary"]["rules"] == ["p_alive"]
    both = json.loads(
        invoke("alerts", "--run", "mar", "--against", "jan", "--db", db, "--format", "json")
    )
    assert [a["customer_id"] for a in both["alerts"]] == ["a", "b"]
    lines = invoke("alerts", "--run", "feb", "--db", db, "--format", "csv").splitlines()
    assert lines[0] == ",".join(ALERT_COLUMNS) and len(lines) == 3
    assert lines[1].startswith("1,a,350.0,tier_drop,")
    empty = invoke("alerts", "--run", "mar", "--rule", "value_drop", "--db", db, "--format", "csv")
    assert empty.splitlines() == [",".join(ALERT_COLUMNS)]
    shown = one_line(invoke("alerts", "--run", "feb", "--db", db))
    assert "2 of 3 customers in both, value at risk 370.00" in shown
    assert "1 new and 0 lost customers" in shown
    assert "tier platinum → gold (tier 1 → 2)" in shown
    wrong = runner.invoke(app, ["alerts", "--rule", "tier", "--db", str(db)])
    assert wrong.exit_code == 2 and "'tier' is not one of" in one_line(wrong.output)
    help_text = one_line(invoke("alerts", "--help"))
    assert "--against" in help_text and "value_drop" in help_text


# -- on real data -----------------------------------------------------------------------
@pytest.mark.slow
def test_online_retail_between_two_month_ends(tmp_path: Path) -> None:
    """Alerts between the October and November 2011 month-ends, checked with pandas."""
    with Store(tmp_path / "retail.duckdb") as store:
        ingest_transactions(store, shared("online_retail.parquet"))
        october = analyze(store, as_of=dt.date(2011, 10, 31))
        november = analyze(store, as_of=dt.date(2011, 11, 30))
        w = early_warnings(store)
        got = w.to_pandas()
        snaps = store.con.execute(
            "SELECT run_id, customer_id, tier, lifecycle_stage, p_alive, total_value, "
            "potential_value, nps_category FROM customer_snapshots"
        ).df()
    s = w.summary
    assert (s.run_id, s.against) == (november.run_id, october.run_id)
    assert s.customers + s.new_customers == november.customers
    assert s.customers == october.customers and s.lost_customers == 0

    a = snaps[snaps.run_id == october.run_id].set_index("customer_id")
    b = snaps[snaps.run_id == november.run_id].set_index("customer_id")
    a, b = a.align(b, join="inner", axis=0)
    expected = pd.DataFrame(
        {
            "tier_drop": (a.tier <= 2) & (b.tier > a.tier),
            "decline": a.lifecycle_stage.isin(["growth", "maturity"])
            & b.lifecycle_stage.isin(["decline", "departure"]),
            "p_alive": (a.p_alive >= 0.5) & (b.p_alive < 0.5),
            "value_drop": (a.total_value > 0)
            & (((a.total_value - b.total_value) / a.total_value).round(9) > 0.3),
            "detractor": ((a.tier <= 2) | (b.tier <= 2))
            & (b.nps_category == "detractor")
            & (a.nps_category.fillna("") != "detractor"),
        }
    )
    at_risk = b.potential_value.fillna(0).clip(lower=0) + (a.total_value - b.total_value).clip(
        lower=0
    )
    alerted = expected.any(axis=1)
    assert s.alerts == int(alerted.sum()) == len(got)
    assert s.value_at_risk == pytest.approx(at_risk[alerted].sum())
    for rule in ALERT_RULES:
        assert s.by_rule[rule]["alerts"] == int(expected[rule].sum()), rule
        assert s.by_rule[rule]["value_at_risk"] == pytest.approx(at_risk[expected[rule]].sum())
    assert got.value_at_risk.is_monotonic_decreasing
    assert got["rank"].tolist() == list(range(1, len(got) + 1))
    top = got.iloc[0]
    assert top.value_at_risk == pytest.approx(at_risk[alerted].max())
    # cumulative tiers: a platinum customer slips to gold as others grow, so tier drops
    # are common between month-ends (246 of 514 alerts with the models of 2025-06)
    assert s.by_rule["tier_drop"]["alerts"] > 0 and s.by_rule["decline"]["alerts"] > 0
