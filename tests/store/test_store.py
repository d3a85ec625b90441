from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from cvm import Store
from cvm.errors import NotFoundError, StorageError
from cvm.ingest import ingest_transactions, loader
from cvm.store import SCHEMA_VERSION

TABLES = {
    "cvm_schema",
    "ingest_log",
    "quarantine",
    "transactions",
    "customers",
    "runs",
    "customer_snapshots",
    "period_snapshots",
}


def test_new_store_is_migrated(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert TABLES <= set(store.backend.list_tables())
        assert store.count("transactions") == 0


def test_reopening_does_not_migrate_twice(tmp_path: Path) -> None:
    Store(tmp_path / "s.duckdb").close()
    with Store(tmp_path / "s.duckdb") as store:
        assert store.count("cvm_schema") == SCHEMA_VERSION


def test_store_from_a_newer_cvm_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        store.con.execute("INSERT INTO cvm_schema VALUES (999, 'future', now())")
    with pytest.raises(StorageError, match="schema version 999, newer than this cvm"):
        Store(tmp_path / "s.duckdb")


def test_missing_folder_and_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="folder does not exist"):
        Store(tmp_path / "nope" / "s.duckdb")
    with pytest.raises(NotFoundError, match="no store here"):
        Store(tmp_path / "absent.duckdb", read_only=True)


def test_not_a_duckdb_file(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    path.write_text("hello, I am a text file\n" * 100)
    with pytest.raises(StorageError, match=r"s\.duckdb"):
        Store(path)


def test_store_locked_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    Store(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('ok', flush=True); "
            "time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        with pytest.raises(StorageError, match="cannot open the store"):
            Store(path)
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


def test_unknown_table(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no table 'nope'"):
        store.table("nope")


def test_failed_load_leaves_the_store_unchanged(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("customer_id,ts,amount\n1,2020-01-01,5\n,2020-01-02,6\n2,2020-01-03,7\n")

    def boom(*args: object, **kwargs: object) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(loader, "_load_transactions", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest_transactions(store, csv)
    assert store.count("quarantine") == 0  # written before the failure, rolled back
    assert store.count("transactions") == 0
    assert store.count("ingest_log") == 0
    monkeypatch.undo()
    report = ingest_transactions(store, csv)
    assert (report.loaded, report.quarantined) == (2, 1)


def _write_big_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(7)
    customers = rng.integers(1, 50_000, rows)
    days = rng.integers(0, 700, rows)
    amounts = np.round(rng.lognormal(3, 1, rows), 2)
    customer_ids = pa.array([str(c) if i % 10 else "" for i, c in enumerate(customers)])
    table = pa.table(
        {
            "customer_id": customer_ids,
            "ts": pa.array(np.datetime64("2020-01-01") + days.astype("timedelta64[D]")),
            "amount": amounts,
        }
    )
    pacsv.write_csv(table, path)


@pytest.mark.slow
def test_killed_ingest_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    """SIGKILL an ingest at several moments; the store is always before or after it."""
    csv = tmp_path / "big.csv"
    rows = 300_000
    _write_big_csv(csv, rows)
    db = tmp_path / "s.duckdb"
    Store(db).close()
    script = (
        "import sys; from cvm import Store; from cvm.ingest import ingest_transactions\n"
        f"s = Store({str(db)!r}); print('start', flush=True)\n"
        f"ingest_transactions(s, {str(csv)!r}); s.close(); print('done', flush=True)\n"
    )
    outcomes = set()
    for delay in (0.2, 0.8, 1.5, 2.5, 4.0):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "start"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        with warnings.catch_warnings(record=True), Store(db) as store:
            loaded, quarantined, logged = (
                store.count("transactions"),
                store.count("quarantine"),
                store.count("ingest_log"),
            )
            if logged == 0:
                assert (loaded, quarantined) == (0, 0)
                outcomes.add("before")
            else:
                assert logged == 1
                assert loaded + quarantined == rows
                assert quarantined == rows // 10
                outcomes.add("after")
                break
    assert "before" in outcomes


def test_rows_without_a_commit_record_are_removed_on_open(tmp_path: Path) -> None:
    """What a commit killed midway can leave behind (duckdb/duckdb PR #25931)."""
    path = tmp_path / "s.duckdb"
    csv = tmp_path / "t.csv"
    csv.write_text("customer_id,ts,amount\n1,2020-01-01,5\n,2020-01-02,6\n")
    with Store(path) as store:
        ingest_transactions(store, csv)
        store.con.execute(
            "INSERT INTO transactions SELECT * REPLACE ('lost-batch' AS batch_id) FROM transactions"
        )
        store.con.execute(
            "INSERT INTO quarantine SELECT * REPLACE ('lost-batch' AS batch_id) FROM quarantine"
        )
        store.con.execute(
            "INSERT INTO customer_snapshots (run_id, customer_id, frequency, recency, t, "
            "monetary_value, occasions, transactions, revenue, returns, margin, realized_value) "
            "VALUES ('lost-run', '1', 0, 0, 1, 0, 1, 1, 5, 0, 1.5, 1.5)"
        )
    with pytest.warns(UserWarning, match="removed the rows of an interrupted load"):
        store = Store(path)
    with store:
        assert (store.count("transactions"), store.count("quarantine")) == (1, 1)
        assert store.count("customer_snapshots") == 0
        assert store.recover() == {}
