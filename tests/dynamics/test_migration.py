"""Migration matrices between snapshots, their Markov projection, and the backfill."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.cli.test_cli import assert_error, one_line, run_cvm, run_json
from tests.conftest import shared
from typer.testing import CliRunner

import cvm.cli.main  # noqa: F401  (registers every command on the app)
from cvm import Settings, Store
from cvm.cli.common import app
from cvm.dynamics import analyze, backfill, list_runs, migration_matrix
from cvm.dynamics.backfill import period_ends
from cvm.dynamics.migration import project_sizes
from cvm.errors import DataError, NotFoundError, ValidationError
from cvm.ingest import ingest, ingest_transactions

# -- hand-built snapshots ---------------------------------------------------------------
Row = tuple[str, int, str, str, str, float]  # customer, tier, tier name, stage, rfm, value

_STAGE = {"platinum": "growth", "gold": "maturity", "iron": "decline"}


def insert_run(store: Store, run_id: str, as_of: str, created: str, rows: list[Row]) -> None:
    """Insert a run and its customer snapshot rows (only the columns migration reads)."""
    store.con.execute(
        "INSERT INTO runs VALUES (?, ?, ?, 'week', 'month', '{}', ?, 0, 'test', NULL)",
        [run_id, dt.date.fromisoformat(as_of), dt.datetime.fromisoformat(created), len(rows)],
    )
    frame = pd.DataFrame(
        rows, columns=["customer_id", "tier", "tier_name", "lifecycle_stage", "rfm_segment", "v"]
    )
    frame["run_id"] = run_id
    store.con.register("rows_", frame)
    try:
        store.con.execute(
            "INSERT INTO customer_snapshots (run_id, customer_id, frequency, recency, t, "
            "monetary_value, occasions, transactions, revenue, returns, margin, "
            "realized_value, total_value, tier, tier_name, lifecycle_stage, rfm_segment) "
            "SELECT run_id, customer_id, 0, 0, 0, 0, 1, 1, v, 0, v, v, v, tier, tier_name, "
            "lifecycle_stage, rfm_segment FROM rows_"
        )
    finally:
        store.con.unregister("rows_")


# A: six customers; B: c6 has left, c7 and c8 are new, the others moved or stayed.
RUN_A: list[Row] = [
    ("c1", 1, "platinum", "growth", "Champions", 100.0),
    ("c2", 1, "platinum", "maturity", "Loyal", 80.0),
    ("c3", 2, "gold", "growth", "Champions", 40.0),
    ("c4", 2, "gold", "decline", "At Risk", 30.0),
    ("c5", 3, "iron", "acquisition", "New", 5.0),
    ("c6", 3, "iron", "departure", "Lost", 2.0),
]
RUN_B: list[Row] = [
    ("c1", 1, "platinum", "maturity", "Champions", 120.0),
    ("c2", 2, "gold", "decline", "At Risk", 50.0),
    ("c3", 1, "platinum", "maturity", "Loyal", 90.0),
    ("c4", 3, "iron", "departure", "Lost", 10.0),
    ("c5", 3, "iron", "growth", "Loyal", 7.0),
    ("c7", 2, "gold", "acquisition", "New", 60.0),
    ("c8", 3, "iron", "acquisition", "New", 3.0),
]


@pytest.fixture
def two_runs(store: Store) -> Store:
    insert_run(store, "A", "2024-01-31", "2024-02-01 10:00", RUN_A)
    insert_run(store, "B", "2024-02-29", "2024-03-01 10:00", RUN_B)
    return store


def test_tier_matrix_counts_new_and_lost(two_runs: Store) -> None:
    m = migration_matrix(two_runs, by="tier")
    assert (m.from_run, m.to_run, m.period_days) == ("A", "B", 29)
    assert m.groups == ["platinum", "gold", "iron"]  # tier order, not alphabetical
    assert m.rows == ["platinum", "gold", "iron", "new"]
    assert m.columns == ["platinum", "gold", "iron", "lost"]
    assert m.counts == [
        [1, 1, 0, 0],  # c1 stays, c2 drops to gold
        [1, 0, 1, 0],  # c3 rises to platinum, c4 drops to iron
        [0, 0, 1, 1],  # c5 stays, c6 is lost
        [0, 1, 1, 0],  # c7 arrives in gold, c8 in iron
    ]
    # value: at A for A's customers (leavers included), at B for the new row
    assert m.value == [
        [100.0, 80.0, 0.0, 0.0],
        [40.0, 0.0, 30.0, 0.0],
        [0.0, 0.0, 5.0, 2.0],
        [0.0, 60.0, 3.0, 0.0],
    ]
    assert m.value_end == [
        [120.0, 50.0, 0.0, 0.0],
        [90.0, 0.0, 10.0, 0.0],
        [0.0, 0.0, 7.0, 0.0],
        [0.0, 60.0, 3.0, 0.0],
    ]
    data = m.to_dict()
    assert (data["new"], data["lost"]) == (2, 1)
    assert data["from_as_of"] == "2024-01-31" and data["probabilities"][0] == [0.5, 0.5, 0, 0]
    json.dumps(data)  # plain data
    cells = {(c["from"], c["to"]): c["customers"] for c in m.cells()}
    assert cells == {
        ("platinum", "platinum"): 1,
        ("platinum", "gold"): 1,
        ("gold", "platinum"): 1,
        ("gold", "iron"): 1,
        ("iron", "iron"): 1,
        ("iron", "lost"): 1,
        ("new", "gold"): 1,
        ("new", "iron"): 1,
    }


def _group_sums(store: Store, run_id: str, column: str) -> dict[str, tuple[int, float]]:
    rows = store.con.execute(
        f"SELECT {column}, count(*), sum(total_value) FROM customer_snapshots "
        "WHERE run_id = ? GROUP BY 1",
        [run_id],
    ).fetchall()
    return {name: (int(n), float(v)) for name, n, v in rows}


@pytest.mark.parametrize(
    ("by", "column"), [("tier", "tier_name"), ("stage", "lifecycle_stage"), ("rfm", "rfm_segment")]
)
def test_matrix_reconciles_with_both_snapshots(two_runs: Store, by: Any, column: str) -> None:
    m = migration_matrix(two_runs, "A", "B", by=by)
    counts, value, end = (np.asarray(x) for x in (m.counts, m.value, m.value_end))
    k = len(m.groups)
    at_a, at_b = _group_sums(two_runs, "A", column), _group_sums(two_runs, "B", column)
    assert dict(zip(m.groups, counts[:k].sum(axis=1).tolist(), strict=True)) == {
        g: at_a.get(g, (0, 0.0))[0] for g in m.groups
    }
    assert dict(zip(m.groups, counts[:, :k].sum(axis=0).tolist(), strict=True)) == {
        g: at_b.get(g, (0, 0.0))[0] for g in m.groups
    }
    for i, g in enumerate(m.groups):
        assert value[i].sum() == pytest.approx(at_a.get(g, (0, 0.0))[1])
        assert end[:, i].sum() == pytest.approx(at_b.get(g, (0, 0.0))[1])
    assert counts.sum() == len({r[0] for r in RUN_A} | {r[0] for r in RUN_B}) == 8
    assert counts[k, k] == 0
    assert m.from_sizes == counts[:k].sum(axis=1).tolist()
    assert m.to_sizes == counts[:, :k].sum(axis=0).tolist()


def test_stage_and_rfm_orders(two_runs: Store) -> None:
    stages = migration_matrix(two_runs, by="stage").groups
    assert stages == ["acquisition", "growth", "maturity", "decline", "departure"]
    rfm = migration_matrix(two_runs, by="rfm").groups
    assert rfm == ["Champions", "Loyal", "New", "At Risk", "Lost"]  # the rules' order


def test_default_runs_are_the_latest_and_the_latest_dated_before_it(two_runs: Store) -> None:
    # a re-run of A's date made later, and a newest run at a later date
    insert_run(two_runs, "A2", "2024-01-31", "2024-03-05 10:00", RUN_A[:2])
    insert_run(two_runs, "C", "2024-03-31", "2024-04-01 10:00", RUN_B)
    m = migration_matrix(two_runs)
    assert (m.from_run, m.to_run) == ("B", "C")
    m = migration_matrix(two_runs, to_run="B")
    assert (m.from_run, m.to_run) == ("A2", "B")  # the latest made of the latest date
    m = migration_matrix(two_runs, from_run="A")
    assert (m.from_run, m.to_run) == ("A", "C")
    assert m.counts == migration_matrix(two_runs, "A", "B").counts  # C holds B's rows


def test_errors_name_the_run(two_runs: Store) -> None:
    with pytest.raises(NotFoundError, match="no run 'nope'"):
        migration_matrix(two_runs, "nope")
    with pytest.raises(NotFoundError, match="no run 'nope'"):
        migration_matrix(two_runs, to_run="nope")
    with pytest.raises(ValidationError, match=r"run 'B' \(2024-02-29\) is dated after run 'A'"):
        migration_matrix(two_runs, "B", "A")
    with pytest.raises(NotFoundError, match=r"no run dated before run 'A' \(2024-01-31\)"):
        migration_matrix(two_runs, to_run="A")
    with pytest.raises(ValidationError, match="unknown grouping 'segment'"):
        migration_matrix(two_runs, by="segment")  # type: ignore[arg-type]


def test_no_runs_at_all(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no analysis runs yet"):
        migration_matrix(store)


def test_a_group_named_new_is_refused(store: Store) -> None:
    insert_run(store, "A", "2024-01-31", "2024-02-01", [("c1", 1, "new", "growth", "x", 1.0)])
    insert_run(store, "B", "2024-02-29", "2024-03-01", [("c1", 1, "new", "growth", "x", 1.0)])
    with pytest.raises(DataError, match="a tier group is named 'new'"):
        migration_matrix(store)
    assert migration_matrix(store, by="stage").counts == [[1, 0], [0, 0]]


# -- the Markov projection --------------------------------------------------------------
def _two_state_runs(store: Store) -> None:
    """X: 10 customers, 8 stay, 1 moves to Y, 1 is lost; Y: 10, 2 move to X, 8 stay;
    new: 3 into X, 1 into Y."""
    a: list[Row] = [(f"x{i}", 1, "X", "growth", "-", 1.0) for i in range(10)]
    a += [(f"y{i}", 2, "Y", "growth", "-", 1.0) for i in range(10)]
    b: list[Row] = [(f"x{i}", 1, "X", "growth", "-", 1.0) for i in range(8)]
    b += [("x8", 2, "Y", "growth", "-", 1.0)]
    b += [(f"y{i}", 1, "X", "growth", "-", 1.0) for i in range(2)]
    b += [(f"y{i}", 2, "Y", "growth", "-", 1.0) for i in range(2, 10)]
    b += [(f"n{i}", 1, "X", "growth", "-", 1.0) for i in range(3)] + [
        ("n3", 2, "Y", "growth", "-", 1.0)
    ]
    insert_run(store, "A", "2024-03-31", "2024-04-01", a)
    insert_run(store, "B", "2024-06-30", "2024-07-01", b)


def test_projection_of_two_states_by_hand(store: Store) -> None:
    _two_state_runs(store)
    m = migration_matrix(store)
    assert m.counts == [[8, 1, 1], [2, 8, 0], [3, 1, 0]]
    p = m.project(2)
    assert (p.groups, p.periods, p.period_days, p.start) == (
        ["X", "Y"],
        2,
        91,
        dt.date(2024, 6, 30),
    )
    assert np.asarray(p.transition) == pytest.approx(np.array([[0.8, 0.1, 0.1], [0.2, 0.8, 0]]))
    assert p.inflow == [3.0, 1.0]
    # period 0 is B: X = 8 + 2 + 3 = 13, Y = 1 + 8 + 1 = 10
    # period 1: X = 13·0.8 + 10·0.2 + 3 = 15.4, Y = 13·0.1 + 10·0.8 + 1 = 10.3, lost 1.3
    # period 2: X = 15.4·0.8 + 10.3·0.2 + 3 = 17.38, Y = 1.54 + 8.24 + 1 = 10.78, lost 1.54
    assert np.asarray(p.sizes) == pytest.approx(np.array([[13, 10], [15.4, 10.3], [17.38, 10.78]]))
    assert p.lost == pytest.approx([0.0, 1.3, 1.54])
    # steady state n = n·Q + a: 0.2 X − 0.2 Y = 3 and −0.1 X + 0.2 Y = 1 → X = 40, Y = 25
    assert p.steady_state == pytest.approx([40.0, 25.0])
    data = p.to_dict()
    assert data["totals"] == pytest.approx([23.0, 25.7, 28.16])
    assert data["start"] == "2024-06-30" and data["periods"] == 2
    assert m.project(0).sizes == [[13.0, 10.0]]


def test_project_sizes_keeps_the_customers_it_does_not_lose() -> None:
    transition = np.array([[0.5, 0.25, 0.25], [0.0, 0.9, 0.1]])
    sizes, lost = project_sizes(transition, np.array([2.0, 0.0]), np.array([8.0, 4.0]), 5)
    # every period: before + arrivals = after + leavers
    assert np.allclose(sizes[:-1].sum(axis=1) + 2.0, sizes[1:].sum(axis=1) + lost[1:])


def test_projection_without_leavers_grows_and_unobserved_groups_stay(store: Store) -> None:
    insert_run(store, "A", "2024-01-31", "2024-02-01", [("c1", 1, "platinum", "growth", "-", 1)])
    insert_run(
        store,
        "B",
        "2024-02-29",
        "2024-03-01",
        [("c1", 1, "platinum", "growth", "-", 1), ("c2", 2, "gold", "growth", "-", 1)],
    )
    p = migration_matrix(store).project(3)
    assert p.unobserved == ["gold"]
    assert p.transition == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    assert p.sizes == [[1.0, 1.0], [1.0, 2.0], [1.0, 3.0], [1.0, 4.0]]
    assert p.steady_state is None


def test_projection_needs_a_period(store: Store) -> None:
    insert_run(store, "A", "2024-01-31", "2024-02-01", RUN_A)
    insert_run(store, "A2", "2024-01-31", "2024-02-02", RUN_A)
    m = migration_matrix(store, "A", "A2")
    assert np.trace(np.asarray(m.counts)) == 6  # the same snapshot: everyone stays
    with pytest.raises(ValidationError, match="share their date 2024-01-31"):
        m.project(1)
    with pytest.raises(ValidationError, match="0 or more periods"):
        migration_matrix(store, "A", "A").project(-1)


# -- backfill ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "end", "every", "expected"),
    [
        (
            "2011-01-15",
            "2011-04-30",
            "month",
            ["2011-01-31", "2011-02-28", "2011-03-31", "2011-04-30"],
        ),
        ("2012-02-01", "2012-03-30", "month", ["2012-02-29"]),
        (
            "2010-11-30",
            "2011-12-09",
            "quarter",
            ["2010-12-31", "2011-03-31", "2011-06-30", "2011-09-30"],
        ),
        ("2011-04-01", "2011-06-29", "quarter", []),
        ("2011-12-31", "2011-12-31", "quarter", ["2011-12-31"]),
    ],
)  # fmt: skip
def test_period_ends(start: str, end: str, every: Any, expected: list[str]) -> None:
    dates = period_ends(dt.date.fromisoformat(start), dt.date.fromisoformat(end), every)
    assert [d.isoformat() for d in dates] == expected


def test_period_ends_rejects_bad_input() -> None:
    with pytest.raises(ValidationError, match="unknown backfill interval 'week'"):
        period_ends(dt.date(2011, 1, 1), dt.date(2011, 2, 1), "week")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="starts on 2011-02-01, after its end 2011-01-01"):
        period_ends(dt.date(2011, 2, 1), dt.date(2011, 1, 1), "month")


def _snapshot(store: Store, run_id: str) -> pd.DataFrame:
    frame = store.con.execute(
        "SELECT * EXCLUDE (run_id) FROM customer_snapshots WHERE run_id = ? ORDER BY customer_id",
        [run_id],
    ).df()
    return frame.reset_index(drop=True)


# features and values that do not depend on a model's optimiser
EXACT = ["customer_id", "first_purchase", "last_purchase", "frequency", "occasions"]
CLOSE = ["recency", "t", "revenue", "margin", "realized_value", "monetary_value"]


def test_backfill_quarters_matches_analyze_and_leaves_runs_alone(store: Store) -> None:
    ingest_transactions(store, shared("cdnow_sample.parquet"))
    # call-centre id "2" is customer "1": identity resolution merges them, so the
    # backfill reads materialised unified tables
    ingest(
        store,
        pd.DataFrame({"source": ["crm"], "source_id": ["2"], "customer_id": ["1"]}),
        table="identities",
    )
    before = analyze(store, as_of=dt.date(1997, 9, 30))
    kept = _snapshot(store, before.run_id)
    seen: list[tuple[int, int, str]] = []
    runs = backfill(
        store,
        Settings(),
        start=dt.date(1997, 6, 1),
        end=dt.date(1998, 2, 1),
        every="quarter",
        progress=lambda done, total, what: seen.append((done, total, what)),
    )
    assert [r.as_of.isoformat() for r in runs] == ["1997-06-30", "1997-09-30", "1997-12-31"]
    assert len({r.run_id for r in runs} | {before.run_id}) == 4
    assert all(r.customers == 2356 for r in runs)  # customers 1 and 2 are one
    listed = {r["run_id"]: r["as_of"] for r in list_runs(store)}
    assert {r.run_id: r.as_of.isoformat() for r in runs}.items() <= listed.items()
    # the earlier run is untouched
    pd.testing.assert_frame_equal(_snapshot(store, before.run_id), kept)
    # the backfilled run of 30 September is the analysis of that date
    again = _snapshot(store, runs[1].run_id)
    pd.testing.assert_frame_equal(again[EXACT], kept[EXACT])
    pd.testing.assert_frame_equal(again[CLOSE], kept[CLOSE], rtol=1e-9)
    assert again["potential_value"].sum() == pytest.approx(kept["potential_value"].sum(), rel=1e-3)
    # progress: identities once, then every date's steps, ending at the total
    assert seen[0] == (0, 19, "identities")
    assert seen[-1] == (19, 19, "1997-12-31: done")
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)


def test_backfill_errors(store: Store) -> None:
    with pytest.raises(DataError, match="no transactions"):
        backfill(store)
    ingest_transactions(store, shared("cdnow_sample.parquet"))
    with pytest.raises(
        DataError, match=r"1996-12-31 is before the first transaction \(1997-01-01\)"
    ):
        backfill(store, start=dt.date(1996, 12, 1), every="quarter")
    with pytest.raises(ValidationError, match="no quarter end between 1997-04-01 and 1997-06-29"):
        backfill(store, start=dt.date(1997, 4, 1), end=dt.date(1997, 6, 29), every="quarter")
    assert store.count("runs") == 0


def test_migration_between_analyses_of_real_data(store: Store) -> None:
    """CDNOW: customers who bought first in 1997-Q1; the March run has them all."""
    ingest_transactions(store, shared("cdnow_sample.parquet"))
    a = analyze(store, as_of=dt.date(1997, 2, 28))
    b = analyze(store, as_of=dt.date(1997, 3, 31))
    for by, column in (("tier", "tier_name"), ("stage", "lifecycle_stage")):
        m = migration_matrix(store, by=by)  # type: ignore[arg-type]
        assert (m.from_run, m.to_run) == (a.run_id, b.run_id)
        counts = np.asarray(m.counts)
        k = len(m.groups)
        assert counts[:k].sum() == a.customers and counts[:, :k].sum() == b.customers
        assert counts[k].sum() == b.customers - a.customers > 0  # March's first buyers
        assert counts[:, k].sum() == 0  # nobody leaves a cumulative snapshot
        at_b = _group_sums(store, b.run_id, column)
        assert m.to_sizes == [at_b[g][0] for g in m.groups]
        assert np.asarray(m.value_end)[:, :k].sum() == pytest.approx(b.total_value)
    stages = migration_matrix(store, by="stage")
    new = dict(zip(stages.columns, stages.counts[-1], strict=True))
    assert new["acquisition"] == sum(new.values())  # arrivals are being acquired


def test_a_customer_merged_by_identity_resolution_is_lost(store: Store) -> None:
    ingest_transactions(store, shared("cdnow_sample.parquet"))
    a = analyze(store, as_of=dt.date(1997, 3, 31))
    ingest(
        store,
        pd.DataFrame({"source": ["crm"], "source_id": ["2"], "customer_id": ["1"]}),
        table="identities",
    )
    b = analyze(store, as_of=dt.date(1997, 4, 30))
    m = migration_matrix(store, by="stage")
    assert (a.customers, b.customers) == (2357, 2356)
    lost = [(g, row[-1]) for g, row in zip(m.rows, m.counts, strict=True) if row[-1]]
    assert len(lost) == 1 and lost[0][1] == 1 and sum(m.counts[-1]) == 0
    group = store.con.execute(
        "SELECT lifecycle_stage, total_value FROM customer_snapshots "
        "WHERE run_id = ? AND customer_id = '2'",
        [a.run_id],
    ).fetchone()
    assert group is not None and lost[0][0] == group[0]
    i = m.groups.index(group[0])
    assert m.value[i][-1] == pytest.approx(group[1]) and m.value_end[i][-1] == 0


# -- the command line -------------------------------------------------------------------
runner = CliRunner()


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("migration")
    path = folder / "cdnow.duckdb"
    with Store(path) as store:
        ingest_transactions(store, shared("cdnow_sample.parquet"))
    return path


def test_cli_backfill_then_migration(cli_store: Path) -> None:
    folder = cli_store.parent
    runs = run_json(
        "analyze", "--every", "month", "--from", "1997-10-15", "--to", "1997-12-31",
        "--db", cli_store, cwd=folder,
    )  # fmt: skip
    assert [r["as_of"] for r in runs] == ["1997-10-31", "1997-11-30", "1997-12-31"]
    m = run_json("migration", "--by", "stage", "--project", "2", "--db", cli_store, cwd=folder)
    assert (m["from_run"], m["to_run"]) == (runs[1]["run_id"], runs[2]["run_id"])
    assert m["rows"][-1] == "new" and m["columns"][-1] == "lost"
    assert sum(map(sum, m["counts"])) == 2357 and m["new"] == 0 and m["lost"] == 0
    p = m["projection"]
    assert p["periods"] == 2 and p["period_days"] == 31
    assert p["totals"] == pytest.approx([2357.0] * 3)  # no arrivals, no leavers
    done = run_cvm(
        "migration", "--from", runs[0]["run_id"], "--values", "--db", cli_store, cwd=folder
    )
    shown = one_line(done.stdout)
    assert f"A = run {runs[0]['run_id']} (1997-10-31)" in shown
    assert "Customers" in shown and "Value (total_value" in shown and "(lost)" in shown
    assert "Projected customers per value tier, 4 periods of 61 days" in shown
    csv = run_cvm("migration", "--project", "1", "--format", "csv", "--db", cli_store, cwd=folder)
    lines = csv.stdout.splitlines()
    assert lines[0] == "kind,period,from,to,customers,share_of_from,value,value_end"
    migration_rows = [line for line in lines[1:] if line.startswith("migration,")]
    assert sum(int(line.split(",")[4]) for line in migration_rows) == 2357
    assert any(line.startswith("projection,1,,lost,") for line in lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "1997-12-31", "--every", "month"], "give either --as-of or --every"),
        (["--from", "1997-12-31"], "add --every month|quarter"),
        (["--every", "week"], "'week' is not one of"),
        (["--every", "month", "--from", "1997-13-01"], "expected a date YYYY-MM-DD"),
    ],
)
def test_analyze_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", *args, "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2
    assert message in one_line(result.output)
    assert not (tmp_path / "none.duckdb").exists()


def test_migration_errors(cli_store: Path) -> None:
    assert_error(
        run_cvm("migration", "--from", "nope", "--db", cli_store, cwd=cli_store.parent, code=1),
        "no run 'nope'",
    )
    result = runner.invoke(app, ["migration", "--project", "-1", "--db", str(cli_store)])
    assert result.exit_code == 2 and "--project" in result.output
