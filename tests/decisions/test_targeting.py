"""Target lists under a budget: greedy selection, control groups, export and recording."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import duckdb
import ibis
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.cli.test_cli import assert_error, one_line, run_cvm, run_json

from cvm import Store
from cvm.config import DecisionSettings, Settings
from cvm.decisions.actions import action_mix, actions_for_run
from cvm.decisions.playbook import assign_actions, load_playbook
from cvm.decisions.targeting import (
    COLUMNS,
    TargetList,
    control_group,
    export_targets,
    record_targets,
    select_within_budget,
    target_list,
)
from cvm.errors import ConfigError, DataError, SchemaError

DAY = dt.date(2024, 3, 1)
#: Expected-profit bands of the control group's strata.
_PROFIT_BANDS = 5


# -- the knapsack ------------------------------------------------------------------------
def brute_force(profit: np.ndarray, cost: np.ndarray, budget: float) -> float:
    """The best total profit of any subset within the budget."""
    best = 0.0
    n = len(profit)
    for mask in itertools.product((False, True), repeat=n):
        chosen = np.array(mask, dtype=bool)
        if cost[chosen].sum() <= budget + 1e-9:
            best = max(best, float(profit[chosen].sum()))
    return best


@pytest.mark.parametrize("seed", range(20))
def test_greedy_is_optimal_with_equal_costs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    profit = np.round(rng.normal(5.0, 8.0, n), 2)
    cost = np.full(n, 2.5)
    budget = float(rng.choice([0.0, 2.4, 2.5, 7.5, 12.0, 100.0]))
    chosen = select_within_budget(profit, cost, budget)
    assert cost[chosen].sum() <= budget
    assert (profit[chosen] > 0).all()
    assert profit[chosen].sum() == pytest.approx(brute_force(profit, cost, budget))


@pytest.mark.parametrize("seed", range(20))
def test_greedy_with_unequal_costs_is_within_half_of_the_optimum(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 12))
    profit = np.round(rng.normal(10.0, 15.0, n), 2)
    cost = np.round(rng.choice([0.2, 6.0, 16.0, 50.0], n), 2)
    budget = float(rng.uniform(0, 120))
    chosen = select_within_budget(profit, cost, budget)
    assert cost[chosen].sum() <= budget
    assert (profit[chosen] > 0).all()
    best = brute_force(profit, cost, budget)
    got = profit[chosen].sum()
    assert got >= 0.5 * best - 1e-9
    assert got <= best + 1e-9
    # short of the optimum by less than one customer's profit (the linear relaxation)
    fits = profit[(profit > 0) & (cost <= budget)]
    assert best - got < (fits.max() if fits.size else 0.0) + 1e-9


def test_greedy_examples() -> None:
    # profit per cost first: 3 small contacts beat one large one of less total profit
    chosen = select_within_budget([30.0, 12.0, 12.0, 12.0], [30.0, 10.0, 10.0, 10.0], 30.0)
    assert list(chosen) == [False, True, True, True]
    # an item that does not fit is skipped, later ones still fill the budget
    chosen = select_within_budget([50.0, 40.0, 3.0], [10.0, 10.0, 1.0], 11.0)
    assert list(chosen) == [True, False, True]
    # the single best item wins when the ratio order would strand the budget
    chosen = select_within_budget([2.0, 100.0], [1.0, 100.0], 100.0)
    assert list(chosen) == [False, True]
    # never a customer with zero or negative expected profit, whatever the budget
    chosen = select_within_budget([-1.0, 0.0, 5.0], [1.0, 0.0, 1.0], 1e9)
    assert list(chosen) == [False, False, True]
    # free contacts with positive profit are always taken, even with no budget
    assert list(select_within_budget([1.0, 2.0], [0.0, 1.0], 0.0)) == [True, False]
    # money adds up exactly: ten contacts of 0.1 fit a budget of 1.0
    assert select_within_budget(np.full(10, 1.0), np.full(10, 0.1), 1.0).all()
    with pytest.raises(ValueError, match="costs must be finite and not negative"):
        select_within_budget([1.0], [-1.0], 5.0)
    with pytest.raises(ValueError, match="budget must be a finite amount"):
        select_within_budget([1.0], [1.0], float("nan"))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-50, 200, allow_nan=False),
            st.sampled_from([0.0, 0.05, 0.1, 0.2, 2.2, 6.0, 16.0, 50.0]),
        ),
        max_size=60,
    ),
    st.floats(0, 500, allow_nan=False),
)
def test_budget_is_never_exceeded(items: list[tuple[float, float]], budget: float) -> None:
    profit = np.array([p for p, _ in items], dtype=float)
    cost = np.array([c for _, c in items], dtype=float)
    chosen = select_within_budget(profit, cost, budget)
    assert np.round(cost[chosen] * 1e6).sum() <= budget * 1e6 + 1e-6
    assert (profit[chosen] > 0).all()
    # nothing left out that would still fit and add profit
    left = (~chosen) & (profit > 0) & (cost <= budget - cost[chosen].sum() - 1e-9)
    assert not left.any() or chosen.sum() == 1


# -- control groups ------------------------------------------------------------------------
def test_control_group_share_per_stratum_and_seed() -> None:
    strata = np.repeat([0, 1, 2, 3], [7, 33, 160, 800])
    held = control_group(strata, 0.1, seed=1)
    assert abs(held.sum() - 100) <= 1
    for label, size in zip([0, 1, 2, 3], [7, 33, 160, 800], strict=True):
        got = held[strata == label].sum()
        assert np.floor(size * 0.1) <= got <= np.ceil(size * 0.1), label
    assert (control_group(strata, 0.1, seed=1) == held).all()  # reproducible
    assert not (control_group(strata, 0.1, seed=2) == held).all()  # another draw
    assert not control_group(strata, 0.0, seed=1).any()
    assert control_group(np.zeros(0, dtype=int), 0.5, seed=1).size == 0
    with pytest.raises(ValueError, match="control share"):
        control_group(strata, 1.0, seed=1)


def test_control_group_is_random_within_strata() -> None:
    """Over many draws, every customer of a stratum is held out about equally often."""
    strata = np.repeat([0, 1], [10, 30])
    counts = sum(control_group(strata, 0.25, seed=s).astype(int) for s in range(4000))
    assert counts.sum() == 4000 * 10
    assert np.allclose(counts / 4000, 0.25, atol=0.04)


# -- target lists on a small snapshot ------------------------------------------------------
def in_duckdb(frame: pd.DataFrame) -> Any:
    """The frame as a table of a new in-memory DuckDB."""
    return ibis.duckdb.connect().create_table("t", ibis.memtable(frame))


def assigned_table() -> Any:
    """Six retain customers (two channels), one develop customer, via the playbook."""
    frame = pd.DataFrame(
        {
            "customer_id": ["p1", "p2", "g1", "g2", "g3", "g4", "i1"],
            "tier_name": ["platinum", "platinum", "gold", "gold", "gold", "gold", "iron"],
            "lifecycle_stage": ["decline"] * 6 + ["growth"],
            "p_alive": [0.9] * 7,
            "nps_category": pd.Series([None] * 7, dtype="string"),
            "occasions": [5] * 7,
            "potential_value": [2000.0, 300.0, 900.0, 500.0, 100.0, 5.0, 800.0],
            "realized_value": [5000.0, 4000.0, 800.0, 700.0, 600.0, 500.0, 100.0],
            "total_value": [7000.0, 4300.0, 1700.0, 1200.0, 700.0, 505.0, 900.0],
        }
    )
    return assign_actions(in_duckdb(frame), load_playbook(), high_potential=10_000.0)


def test_target_list_expected_profit_and_budget() -> None:
    assigned = assigned_table()
    # retain: rate 0.1, offer 10 + account manager 40 (platinum) or phone 6 (gold)
    targets = target_list(assigned, "retain", 100.0, control_share=0.0, date=DAY)
    rows = targets.rows.set_index("customer_id")
    assert list(targets.rows.columns) == list(COLUMNS)
    # p2: 0.1 × 300 − 50, g3: 0.1 × 100 − 16 and g4: 0.1 × 5 − 16 are below 0: never chosen
    assert targets.eligible == 6 and targets.profitable == 3
    # by profit per cost: g1 74 / 16, then p1 150 / 50, then g2 34 / 16
    assert list(targets.rows["customer_id"]) == ["g1", "p1", "g2"]
    assert rows.loc["p1", "expected_profit"] == pytest.approx(0.1 * 2000 - 50)
    assert rows.loc["g1", "cost"] == pytest.approx(16.0)
    assert targets.spend == pytest.approx(82.0) and targets.spend <= targets.budget
    assert targets.expected_profit == pytest.approx(74 + 150 + 34)
    assert (targets.rows["group"] == "treatment").all()
    assert targets.rows.loc[0, "reason"] == (
        "rule retain-gold-declining (gold · decline · stable · unknown · repeat · potential "
        "low): expected profit 0.1 × 900.0 potential value − 16.0 contact = 74.0; rank 1 by "
        "profit per cost"
    )
    # a learned (given) rate replaces the configured one
    learned = target_list(assigned, "retain", 100.0, rates={"retain": 0.02}, date=DAY)
    assert learned.rate_source == "given" and learned.response_rate == 0.02
    # 0.02 × 2000 − 50 < 0 for p1, 0.02 × 900 − 16 = 2 for g1
    assert list(learned.rows["customer_id"]) == ["g1"]
    assert learned.profitable == 1
    ignored = target_list(assigned, "retain", 100.0, rates={"develop": 0.5}, date=DAY)
    assert ignored.rate_source == "configured" and ignored.response_rate == 0.1


def test_target_list_errors() -> None:
    assigned = assigned_table()
    with pytest.raises(ConfigError, match=r"no value for 'mystery'.*\[decisions\] response_rates"):
        target_list(assigned, "mystery", 100.0)
    priced = DecisionSettings(channel_costs={"phone": 1.0})
    assert "account_manager" in priced.channel_costs  # defaults kept for others
    with pytest.raises(ConfigError, match="control share"):
        target_list(assigned, "retain", 100.0, control_share=1.0)
    with pytest.raises(ConfigError, match="budget"):
        target_list(assigned, "retain", -1.0)
    with pytest.raises(SchemaError, match="'segment'"):
        target_list(assigned.drop("segment"), "retain", 100.0)


def test_missing_channel_cost_is_an_error() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a"],
            "action": ["retain"],
            "service_level": ["basic"],
            "channel": ["carrier_pigeon"],
            "rule": ["r"],
            "segment": ["s"],
            "potential_value": [100.0],
        }
    )
    with pytest.raises(ConfigError, match=r"'carrier_pigeon'.*\[decisions\] channel_costs"):
        target_list(in_duckdb(frame), "retain", 10.0)


def many_customers(n: int = 2000, seed: int = 5) -> Any:
    rng = np.random.default_rng(seed)
    stages = rng.choice(["decline", "growth", "maturity"], n)
    tiers = rng.choice(["platinum", "gold", "iron", "lead"], n, p=[0.05, 0.15, 0.3, 0.5])
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "tier_name": tiers,
            "lifecycle_stage": stages,
            "p_alive": rng.uniform(0.3, 1.0, n),
            "nps_category": rng.choice(["promoter", "passive", "detractor", None], n),
            "occasions": rng.integers(1, 10, n),
            "potential_value": rng.gamma(1.2, 600.0, n),
            "realized_value": rng.gamma(1.2, 400.0, n),
        }
    )
    frame["total_value"] = frame["potential_value"] + frame["realized_value"]
    return assign_actions(in_duckdb(frame), load_playbook())


@pytest.mark.parametrize("budget", [0.0, 75.0, 1500.0, 4000.0, 1e7])
def test_budget_never_exceeded_and_control_share(budget: float) -> None:
    assigned = many_customers()
    targets = target_list(assigned, "retain", budget, control_share=0.2, date=DAY, seed=9)
    assert targets.spend + targets.held_out_cost <= budget + 1e-9
    assert targets.spend == pytest.approx(
        targets.rows.loc[targets.rows["group"] == "treatment", "cost"].sum()
    )
    assert (targets.rows["expected_profit"] > 0).all()
    assert targets.selected == targets.treatment + targets.control == len(targets.rows)
    assert abs(targets.control - 0.2 * targets.selected) <= 1
    assert list(targets.rows["rank"]) == list(range(1, targets.selected + 1))
    assert targets.rows["customer_id"].is_unique
    if budget >= 1e7:  # enough for everyone: every profitable customer is chosen
        assert targets.selected == targets.profitable
    # the list's rank order is the greedy's: profit per cost, never increasing
    ratio = targets.rows["expected_profit"] / targets.rows["cost"]
    assert (ratio.diff().dropna() <= 1e-12).all()


def test_control_group_is_stratified_and_reproducible() -> None:
    assigned = many_customers()
    one = target_list(assigned, "develop", 1e6, control_share=0.25, campaign="spring", date=DAY)
    again = target_list(assigned, "develop", 1e6, control_share=0.25, campaign="spring", date=DAY)
    pd.testing.assert_frame_equal(one.rows, again.rows)
    assert one.seed == again.seed
    other = target_list(assigned, "develop", 1e6, control_share=0.25, campaign="autumn", date=DAY)
    assert set(one.rows["customer_id"]) == set(other.rows["customer_id"])
    assert not (one.rows["group"].to_numpy() == other.rows["group"].to_numpy()).all()
    seeded = target_list(assigned, "develop", 1e6, control_share=0.25, seed=one.seed, date=DAY)
    assert (seeded.rows["group"].to_numpy() == one.rows["group"].to_numpy()).all()
    # stratified by rule: each rule gives a quarter of its customers to the control group
    rows = one.rows
    by_rule = rows.groupby("rule")["group"].apply(lambda g: (g == "control").mean())
    sizes = rows.groupby("rule").size()
    for rule, share in by_rule.items():
        assert abs(share * sizes[rule] - 0.25 * sizes[rule]) <= _PROFIT_BANDS + 1, rule
    treated = rows[rows["group"] == "treatment"]["expected_profit"].mean()
    held = rows[rows["group"] == "control"]["expected_profit"].mean()
    assert held == pytest.approx(treated, rel=0.1)


def test_export_csv_and_parquet(tmp_path: Path) -> None:
    targets = target_list(many_customers(300), "retain", 500.0, date=DAY)
    assert targets.selected > 0
    csv_path = export_targets(targets, tmp_path / "list.csv")
    parquet_path = export_targets(targets, tmp_path / "list.parquet")
    from_csv = pd.read_csv(csv_path, dtype={"customer_id": str})
    from_parquet = pd.read_parquet(parquet_path)
    assert list(from_csv.columns) == list(COLUMNS) == list(from_parquet.columns)
    assert list(from_csv["customer_id"]) == list(targets.rows["customer_id"])
    assert from_csv["cost"].sum() == pytest.approx(targets.spend + targets.held_out_cost)
    pd.testing.assert_frame_equal(
        from_parquet.astype({"customer_id": str}),
        targets.rows.astype({"customer_id": str}),
        check_dtype=False,
    )
    assert from_csv["reason"].str.startswith("rule ").all()
    with pytest.raises(ConfigError, match=r"list\.xlsx: expected a file name ending"):
        export_targets(targets, tmp_path / "list.xlsx")


# -- recording -----------------------------------------------------------------------------
def test_recorded_actions_reconcile(store: Store) -> None:
    targets = target_list(many_customers(400), "retain", 800.0, date=DAY, campaign="r-1")
    assert targets.control > 0 and targets.treatment > 0
    report = record_targets(store, targets)
    assert report.reconciles and report.loaded == targets.selected
    assert report.quarantined == 0 and report.duplicates == 0
    rows = store.con.execute(
        'SELECT "group", count(*), sum(cost), min(action), min(campaign), min(ts), '
        "count(DISTINCT customer_id), count(channel) FROM actions GROUP BY 1 ORDER BY 1"
    ).fetchall()
    (c_group, c_n, c_cost, *_), (t_group, t_n, t_cost, action, campaign, ts, distinct, ch) = rows
    assert (c_group, c_n, c_cost) == ("control", targets.control, 0.0)
    assert (t_group, t_n) == ("treatment", targets.treatment)
    assert t_cost == pytest.approx(targets.spend)
    assert (action, campaign, ts) == ("retain", "r-1", dt.datetime(2024, 3, 1))
    assert distinct == t_n and ch == t_n
    with pytest.raises(DataError, match="campaign 'r-1' is already recorded"):
        record_targets(store, targets)
    ahead = target_list(
        many_customers(50), "retain", 80.0, date=dt.date.today() + dt.timedelta(days=30)
    )
    with pytest.raises(DataError, match="days ahead"):
        record_targets(store, ahead, Settings())
    assert store.count("actions") == targets.selected


def test_target_list_summary_is_plain_data() -> None:
    targets = target_list(assigned_table(), "retain", 100.0, date=DAY, campaign="x")
    data = targets.to_dict()
    assert "rows" not in data and data["date"] == "2024-03-01" and data["campaign"] == "x"
    assert isinstance(targets, TargetList)
    frame = targets.actions_frame()
    assert list(frame.columns) == [
        "customer_id",
        "action",
        "ts",
        "group",
        "campaign",
        "cost",
        "channel",
    ]


# -- the Online Retail demo ----------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    run_json("demo", "--dir", "D", "--dataset", "online_retail", cwd=folder)
    return folder / "D"


@pytest.mark.slow
def test_demo_action_mix(demo: Path) -> None:
    listed = run_json("actions", "list", "--db", "online_retail.duckdb", cwd=demo)
    mix = listed["mix"]
    n = listed["customers"]
    with Store(demo / "online_retail.duckdb", read_only=True) as store:
        runs = store.con.execute("SELECT n_customers FROM runs").fetchall()
        result = actions_for_run(store)
        assigned = result.table.to_pyarrow().to_pandas()
        direct = action_mix(result.table, result.playbook)
    assert n == runs[-1][0] == len(assigned) == assigned["customer_id"].nunique()
    assert assigned["action"].notna().all() and assigned["rule"].notna().all()
    for grouping in ("actions", "service_levels", "channels", "rules"):
        assert sum(r["customers"] for r in mix[grouping]) == n, grouping
    assert mix == direct
    actions = {r["action"]: r["customers"] for r in mix["actions"]}
    assert set(actions) >= {"retain", "develop", "cross_sell", "up_sell", "serve_low_cost"}
    # premium service: the top tier only, and never a one-time buyer of low potential
    premium = assigned[assigned["service_level"] == "premium"]
    assert set(premium["tier_name"]) == {"platinum"}
    assert not ((premium["occasions"] <= 1) & (premium["potential"] != "high")).any()
    one_time = assigned[assigned["rule"] == "one-time-large-buyer"]
    assert len(one_time) > 0 and set(one_time["service_level"]) == {"standard"}
    # the premium customers hold about half the value (the platinum tier's cut)
    premium_share = next(r for r in mix["service_levels"] if r["service_level"] == "premium")
    assert 0.45 < premium_share["value_share"] < 0.55
    assert listed["check"]["gaps"] == [] and listed["check"]["shadowed"] == []
    shown = one_line(run_cvm("actions", "list", "--db", "online_retail.duckdb", cwd=demo).stdout)
    assert "By action" in shown and "By service level" in shown and "no gaps" in shown


@pytest.mark.slow
def test_demo_target_list_exported_and_recorded(demo: Path) -> None:
    got = run_json(
        "actions",
        "export",
        "--action",
        "retain",
        "--budget",
        "2500",
        "--campaign",
        "demo-1",
        "--control-share",
        "0.2",
        "--out",
        "retain.csv",
        "--db",
        "online_retail.duckdb",
        cwd=demo,
    )
    assert got["spend"] <= 2500 and got["spend"] + got["held_out_cost"] <= 2500
    assert got["selected"] == got["treatment"] + got["control"] == len(got["rows"])
    assert abs(got["control"] - 0.2 * got["selected"]) <= 1
    assert got["recorded"]["loaded"] == got["selected"] and got["recorded"]["reconciles"]
    listed = pd.read_csv(demo / "retain.csv", dtype={"customer_id": str})
    assert list(listed["customer_id"]) == [r["customer_id"] for r in got["rows"]]
    con = duckdb.connect(str(demo / "online_retail.duckdb"), read_only=True)
    try:
        recorded = con.execute(
            "SELECT count(*), sum(cost), count(*) FILTER (WHERE \"group\" = 'control') "
            "FROM actions WHERE campaign = 'demo-1'"
        ).fetchone()
    finally:
        con.close()
    assert recorded is not None
    assert recorded[0] == got["selected"] and recorded[2] == got["control"]
    assert recorded[1] == pytest.approx(got["spend"])
    # the same campaign again is refused; an unknown action is a usage error
    again = run_cvm(
        "actions",
        "export",
        "--action",
        "retain",
        "--budget",
        "2500",
        "--campaign",
        "demo-1",
        "--db",
        "online_retail.duckdb",
        cwd=demo,
        code=1,
    )
    assert_error(again, "campaign 'demo-1' is already recorded")
    wrong = run_cvm(
        "actions",
        "export",
        "--action",
        "teleport",
        "--budget",
        "1",
        "--no-record",
        "--db",
        "online_retail.duckdb",
        cwd=demo,
        code=2,
    )
    assert "the playbook has no action 'teleport'" in one_line(wrong.stderr)
    shown = one_line(
        run_cvm(
            "actions",
            "export",
            "--action",
            "develop",
            "--budget",
            "1000",
            "--no-record",
            "--db",
            "online_retail.duckdb",
            cwd=demo,
        ).stdout
    )
    assert "Target list develop-" in shown and "Not recorded (--no-record)" in shown


# -- the command line ----------------------------------------------------------------------
def test_actions_help_and_usage_errors(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cvm.cli.main import app

    runner = CliRunner()
    shown = one_line(runner.invoke(app, ["actions", "--help"]).stdout)
    assert "list" in shown and "export" in shown
    shown = one_line(runner.invoke(app, ["actions", "export", "--help"]).stdout)
    for option in ("--action", "--budget", "--control-share", "--campaign", "--out", "--no-record"):
        assert option in shown, option
    done = runner.invoke(
        app,
        [
            "actions",
            "export",
            "--action",
            "retain",
            "--budget",
            "10",
            "--out",
            "x.xlsx",
            "--db",
            str(tmp_path / "none.duckdb"),
        ],
    )
    assert done.exit_code == 2 and "expected a file name ending .csv or .parquet" in one_line(
        done.output
    )
    done = runner.invoke(app, ["actions", "export", "--action", "retain", "--budget", "-5"])
    assert done.exit_code == 2
    assert not (tmp_path / "none.duckdb").exists()
