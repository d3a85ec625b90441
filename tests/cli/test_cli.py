"""The ``cvm`` command line, run in a subprocess exactly as a user runs it.

Every test calls the installed console script (``cvm`` next to ``sys.executable``)
with ``cwd`` set to a temporary folder, and checks exit codes, standard output and
standard error. Figures are checked against a direct pandas computation on the same
input file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

import cvm
from cvm.config import Settings, load_settings

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CVM = Path(sys.executable).parent / "cvm"

SAMPLE_AS_OF = "1997-09-30"


# -- helpers ----------------------------------------------------------------------------
def shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"shared dataset {name} not available")
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FORCE_COLOR", None)
    env["NO_COLOR"] = "1"
    return env


def run_cvm(*args: str | Path, cwd: Path, code: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``cvm ARGS`` in ``cwd`` and check its exit status."""
    if not CVM.exists():
        pytest.skip(f"console script {CVM} not installed")
    done = subprocess.run(
        [str(CVM), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=_env(),
        timeout=120,
        check=False,
    )
    assert done.returncode == code, (
        f"cvm {' '.join(map(str, args))} exited {done.returncode}, expected {code}\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def run_json(*args: str | Path, cwd: Path) -> Any:
    done = run_cvm(*args, "--format", "json", cwd=cwd)
    return json.loads(done.stdout)


def one_line(text: str) -> str:
    """Collapse whitespace, so that checks ignore where the terminal wrapped a line."""
    return " ".join(text.split())


def assert_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """A domain error: ``Error: …`` on stderr naming every fragment, nothing on stdout."""
    assert done.returncode == 1
    assert done.stderr.startswith("Error: "), done.stderr
    message = one_line(done.stderr)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert done.stdout == ""


def store_rows(path: Path, table: str) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0])


def sample_frame(as_of: str | None = None) -> pd.DataFrame:
    df = pd.read_parquet(shared("cdnow_sample.parquet"))
    df["date"] = pd.to_datetime(df["date"])
    if as_of is not None:
        df = df[df["date"] <= pd.Timestamp(as_of)]
    return df


# -- help and version -------------------------------------------------------------------
HELP = {
    "": ["--version", "--help", "init", "ingest", "analyze", "customer", "demo"],
    "init": ["--force", "--format", "directory"],
    "ingest": [
        "TABLE",
        "--map",
        "--derive",
        "--encoding",
        "--delimiter",
        "--date-format",
        "--db",
        "--config",
        "--format",
    ],
    "analyze": ["--as-of", "--db", "--config", "--format"],
    "customer": ["customer_id", "--run", "--db", "--config", "--format"],
    "demo": ["--dir", "--dataset", "--format"],
}


@pytest.mark.parametrize("command", list(HELP), ids=lambda c: c or "cvm")
def test_help_exits_0_and_mentions_every_option(command: str, tmp_path: Path) -> None:
    args = [command, "--help"] if command else ["--help"]
    done = run_cvm(*args, cwd=tmp_path)
    assert done.stdout.startswith(f"Usage: cvm {command}".rstrip())
    for option in HELP[command]:
        assert option in done.stdout, f"{option} missing from 'cvm {command} --help'"
    assert done.stderr == ""


def test_version(tmp_path: Path) -> None:
    done = run_cvm("--version", cwd=tmp_path)
    assert done.stdout == f"cvm {cvm.__version__}\n"


# -- init -------------------------------------------------------------------------------
def test_init_writes_a_config_that_loads_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = run_json("init", "project", cwd=tmp_path)
    config = tmp_path / "project" / "cvm.toml"
    assert Path(result["config"]) == Path("project") / "cvm.toml"
    assert result["schema_version"] >= 1
    settings = load_settings(config)
    assert settings.model_dump() == Settings().model_dump()
    assert settings.store_path() == tmp_path / "project" / "cvm.duckdb"
    assert settings.store_path().exists()

    edited = config.read_text(encoding="utf-8") + "# my edit\n"
    config.write_text(edited, encoding="utf-8")
    refused = run_cvm("init", "project", cwd=tmp_path, code=1)
    assert_error(refused, "cvm.toml", "already exists", "--force")
    assert config.read_text(encoding="utf-8") == edited

    run_cvm("init", "project", "--force", cwd=tmp_path)
    assert "# my edit" not in config.read_text(encoding="utf-8")
    load_settings(config)


# -- ingest of the CDNOW sample ---------------------------------------------------------
@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sample")


@pytest.fixture(scope="module")
def sample_ingests(sample_dir: Path) -> dict[str, Any]:
    """Ingest the CDNOW sample twice (JSON) and a third time (CSV), into ./cvm.duckdb."""
    data = shared("cdnow_sample.parquet")
    first = run_json("ingest", "transactions", data, cwd=sample_dir)
    second = run_json("ingest", "transactions", data, cwd=sample_dir)
    third = run_cvm("ingest", "transactions", data, "--format", "csv", cwd=sample_dir)
    return {"first": first, "second": second, "csv": third.stdout}


def test_ingest_sample_reconciles_and_loads_every_row(
    sample_ingests: dict[str, Any], sample_dir: Path
) -> None:
    report = sample_ingests["first"]
    assert report["table"] == "transactions"
    assert report["read"] == report["loaded"] + report["quarantined"] + report["duplicates"]
    assert (report["read"], report["loaded"], report["quarantined"], report["duplicates"]) == (
        6919,
        6919,
        0,
        0,
    )
    assert report["already_ingested"] is False
    assert report["reconciles"] is True
    assert report["columns"] == {
        "customer_id": "customer_id",
        "ts": "date",
        "amount": "dollar_value",
    }
    # No --db and no cvm.toml: the store is ./cvm.duckdb.
    assert store_rows(sample_dir / "cvm.duckdb", "transactions") == 6919


def test_second_identical_ingest_is_already_ingested(sample_ingests: dict[str, Any]) -> None:
    report = sample_ingests["second"]
    assert report["already_ingested"] is True
    assert report["duplicates"] == report["read"] == 6919
    assert report["loaded"] == report["quarantined"] == 0
    assert report["reconciles"] is True


def test_ingest_csv_format_prints_a_header_and_one_row(sample_ingests: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO(sample_ingests["csv"])))
    assert len(rows) == 1
    assert sample_ingests["csv"].count("\n") == 2
    row = rows[0]
    assert {"read", "loaded", "quarantined", "duplicates"} <= set(row)
    assert (row["read"], row["loaded"], row["duplicates"]) == ("6919", "0", "6919")


# -- analyze and customer on the sample -------------------------------------------------
@pytest.fixture(scope="module")
def sample_run(sample_ingests: dict[str, Any], sample_dir: Path) -> dict[str, Any]:
    overview: dict[str, Any] = run_json("analyze", "--as-of", SAMPLE_AS_OF, cwd=sample_dir)
    return overview


def test_analyze_matches_pandas(sample_run: dict[str, Any]) -> None:
    df = sample_frame(SAMPLE_AS_OF)
    margin_rate = Settings().value.margin_rate
    revenue = float(df["dollar_value"].sum())
    assert sample_run["as_of"] == SAMPLE_AS_OF
    assert sample_run["run_id"].startswith("19970930-")
    assert sample_run["customers"] == df["customer_id"].nunique() == 2357
    assert sample_run["transactions"] == len(df)
    assert sample_run["revenue"] == pytest.approx(revenue, rel=1e-9)
    assert sample_run["returns"] == 0.0
    assert sample_run["realized_value"] == pytest.approx(revenue * margin_rate, rel=1e-9)

    per_customer = df.groupby("customer_id")["dollar_value"].sum().sort_values(ascending=False)
    k = math.ceil(len(per_customer) * sample_run["top_share"])
    assert sample_run["top_value_share"] == pytest.approx(
        per_customer.iloc[:k].sum() / per_customer.sum(), rel=1e-9
    )
    top = sample_run["top_customers"][0]
    assert top["customer_id"] == str(per_customer.index[0])
    assert top["revenue"] == pytest.approx(per_customer.iloc[0], rel=1e-9)


def test_customer_json_shows_figures(sample_run: dict[str, Any], sample_dir: Path) -> None:
    df = sample_frame(SAMPLE_AS_OF)
    mine = df[df["customer_id"] == 1901]
    days = mine["date"].dt.normalize().drop_duplicates().sort_values()
    view = run_json("customer", "1901", "--run", sample_run["run_id"], cwd=sample_dir)
    assert view["customer_id"] == "1901"
    assert view["run_id"] == sample_run["run_id"]
    assert view["as_of"] == SAMPLE_AS_OF
    figures = view["figures"]
    assert figures["transactions"] == len(mine)
    assert figures["occasions"] == len(days)
    assert figures["frequency"] == len(days) - 1
    assert figures["revenue"] == pytest.approx(mine["dollar_value"].sum(), rel=1e-9)
    assert figures["first_purchase"] == days.iloc[0].date().isoformat()
    assert figures["last_purchase"] == days.iloc[-1].date().isoformat()
    as_of = pd.Timestamp(SAMPLE_AS_OF)
    assert figures["t"] == pytest.approx((as_of - days.iloc[0]).days / 7)
    assert figures["recency"] == pytest.approx((days.iloc[-1] - days.iloc[0]).days / 7)
    assert len(view["recent_transactions"]) == min(10, len(mine))


def test_customer_table_output(sample_run: dict[str, Any], sample_dir: Path) -> None:
    done = run_cvm("customer", "1901", "--run", sample_run["run_id"], cwd=sample_dir)
    assert "Customer 1901" in done.stdout
    for label in (
        "purchase occasions",
        "revenue (net of returns)",
        "realized value",
        "Recent transactions",
    ):
        assert label in done.stdout


def test_unknown_customer_exits_1(sample_run: dict[str, Any], sample_dir: Path) -> None:
    done = run_cvm("customer", "999999", "--run", sample_run["run_id"], cwd=sample_dir, code=1)
    assert_error(done, "customer '999999'", f"no purchase on or before {SAMPLE_AS_OF}")


# -- ingest of user files ---------------------------------------------------------------
def test_bad_rows_are_quarantined_with_reasons_in_table_output(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text(
        "customer_id,ts,amount\n"
        "1,2020-01-01,10.5\n"
        "2,2020-01-02,abc\n"
        ",2020-01-03,5\n"
        "3,not a date,7\n"
        "4,2020-01-05,8\n",
        encoding="utf-8",
    )
    done = run_cvm("ingest", "transactions", "bad.csv", cwd=tmp_path)
    out = done.stdout
    assert "reconciles" in out and "DOES NOT" not in out
    for reason in (
        "amount: expected a number",
        "customer_id: missing customer_id",
        "ts: expected a date",
    ):
        assert reason in out, out
    store = tmp_path / "cvm.duckdb"
    assert store_rows(store, "transactions") == 2
    con = duckdb.connect(str(store), read_only=True)
    try:
        lines = con.execute("SELECT line, column_name FROM quarantine ORDER BY line").fetchall()
    finally:
        con.close()
    assert lines == [(3, "amount"), (4, "customer_id"), (5, "ts")]


def test_map_and_derive(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "Client,When,Qty,Price\nA,2021-03-01,2,3.5\nB,2021-03-02,1,10\nA,2021-04-01,3,1\n",
        encoding="utf-8",
    )
    report = run_json(
        "ingest",
        "transactions",
        "orders.csv",
        "--db",
        "m.duckdb",
        "--map",
        "customer_id=Client",
        "--map",
        "ts=When",
        "--derive",
        "amount=Qty * Price",
        cwd=tmp_path,
    )
    assert (report["read"], report["loaded"], report["quarantined"]) == (3, 3, 0)
    assert report["columns"]["customer_id"] == "Client"
    assert report["columns"]["ts"] == "When"
    assert report["columns"]["amount"] == "Qty * Price"
    con = duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT customer_id, ts::DATE::VARCHAR, amount FROM transactions ORDER BY ts"
        ).fetchall()
    finally:
        con.close()
    assert rows == [("A", "2021-03-01", 7.0), ("B", "2021-03-02", 10.0), ("A", "2021-04-01", 3.0)]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["ingest", "transactions", "x.csv", "--map", "customer_id"], "--map"),
        (["analyze", "--as-of", "1997-13-01"], "--as-of"),
    ],
    ids=["map-without-equals", "bad-date"],
)
def test_usage_errors_exit_2(args: list[str], fragment: str, tmp_path: Path) -> None:
    done = run_cvm(*args, cwd=tmp_path, code=2)
    assert "Usage: cvm" in done.stderr
    assert f"Invalid value for {fragment}" in done.stderr
    assert done.stdout == ""


def test_bad_map_creates_no_store(tmp_path: Path) -> None:
    run_cvm("ingest", "transactions", "x.csv", "--map", "customer_id", cwd=tmp_path, code=2)
    assert not (tmp_path / "cvm.duckdb").exists()


def test_missing_file(tmp_path: Path) -> None:
    done = run_cvm("ingest", "transactions", "nope.csv", cwd=tmp_path, code=1)
    assert_error(done, "nope.csv", "file not found")


def test_missing_required_column_names_file_and_column_and_writes_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "no_ts.csv").write_text("customer_id,amount\n1,2.5\n2,3\n", encoding="utf-8")
    done = run_cvm("ingest", "transactions", "no_ts.csv", "--db", "s.duckdb", cwd=tmp_path, code=1)
    assert_error(done, "no_ts.csv", "column 'ts'", "required column 'ts'", "--map ts=")
    store = tmp_path / "s.duckdb"
    if store.exists():
        for table in ("transactions", "quarantine", "ingest_log"):
            assert store_rows(store, table) == 0


@pytest.mark.parametrize(
    ("filename", "text", "where", "message"),
    [
        ("cvm.toml", "[ingest]\nbogus = 1\n", "line 2, key 'ingest.bogus'", "unknown setting"),
        (
            "other.toml",
            '[value]\n\nmargin_rate = "high"\n',
            "line 3, key 'value.margin_rate'",
            "got 'high'",
        ),
    ],
    ids=["unknown-key", "wrong-type"],
)
def test_invalid_config(filename: str, text: str, where: str, message: str, tmp_path: Path) -> None:
    (tmp_path / filename).write_text(text, encoding="utf-8")
    args = ["analyze"] if filename == "cvm.toml" else ["analyze", "--config", filename]
    done = run_cvm(*args, cwd=tmp_path, code=1)
    assert_error(done, f"{filename}, {where}", message)
    assert not (tmp_path / "cvm.duckdb").exists()


def test_analyze_without_a_store_creates_none(tmp_path: Path) -> None:
    done = run_cvm("analyze", "--db", "typo.duckdb", cwd=tmp_path, code=1)
    assert_error(done, "typo.duckdb", "no store here")
    assert not (tmp_path / "typo.duckdb").exists()


def test_analyze_on_an_empty_store(tmp_path: Path) -> None:
    run_cvm("init", ".", cwd=tmp_path)
    done = run_cvm("analyze", cwd=tmp_path, code=1)
    assert_error(done, "no transactions", "cvm ingest transactions")


def test_error_message_is_one_unbroken_line(tmp_path: Path) -> None:
    name = "quarterly_exports/" + "customer_transactions_" * 4 + "2024.csv"
    done = run_cvm("ingest", "transactions", name, cwd=tmp_path, code=1)
    assert done.stderr == f"Error: {name}: file not found\n"


# -- demo -------------------------------------------------------------------------------
def test_demo_cdnow_and_rerun_is_idempotent(tmp_path: Path) -> None:
    master = pd.read_parquet(shared("cdnow_master.parquet"))
    first = run_json("demo", "--dir", "D", "--dataset", "cdnow", cwd=tmp_path)
    assert [r["dataset"] for r in first] == ["cdnow"]
    report, overview = first[0]["ingest"][0], first[0]["overview"]
    assert [r["table"] for r in first[0]["ingest"]] == ["transactions"]  # no synthetic data
    assert (report["read"], report["loaded"], report["quarantined"], report["duplicates"]) == (
        69659,
        69659,
        0,
        0,
    )
    assert report["already_ingested"] is False
    assert overview["customers"] == master["customer_id"].nunique() == 23570
    assert overview["transactions"] == len(master) == 69659
    assert overview["revenue"] == pytest.approx(master["dollar_value"].sum(), rel=1e-9)
    assert (tmp_path / "D" / "cvm.toml").exists()
    load_settings(tmp_path / "D" / "cvm.toml")
    assert (tmp_path / "D" / "cdnow.duckdb").exists()

    second = run_json("demo", "--dir", "D", "--dataset", "cdnow", cwd=tmp_path)
    again = second[0]["ingest"][0]
    assert again["already_ingested"] is True
    assert again["duplicates"] == again["read"] == 69659
    assert again["loaded"] == 0
    assert second[0]["overview"]["customers"] == 23570
    assert store_rows(tmp_path / "D" / "cdnow.duckdb", "transactions") == 69659


@pytest.mark.slow
def test_demo_all_datasets_csv(tmp_path: Path) -> None:
    done = run_cvm("demo", "--dir", "D", "--format", "csv", cwd=tmp_path)
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["dataset"] for r in rows] == ["cdnow", "online_retail"]
    assert rows[0]["customers"] == "23570"
    assert int(rows[1]["customers"]) > 0
    assert (tmp_path / "D" / "online_retail.duckdb").exists()
