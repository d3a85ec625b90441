"""``cvm ingest FILE --table …`` for the tables beyond transactions and customers."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from cvm.cli.main import app
from cvm.ingest import INPUT_TABLES

CVM = Path(sys.executable).parent / "cvm"
INTERACTIONS = (
    "customer_id,type,date,cost_to_serve,satisfaction,resolved\n"
    "C1,call,2021-01-01,3.5,4,yes\n"
    "C2,email,2021-01-02,1,7,no\n"
    "C3,visit,2021-01-03,,,\n"
)

runner = CliRunner()


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    (tmp_path / "int.csv").write_text(INTERACTIONS, encoding="utf-8")
    (tmp_path / "t.csv").write_text("customer_id,ts,amount\nC1,2021-01-01,5\n", encoding="utf-8")
    return tmp_path


def test_json_output_has_the_counts_and_unknown_customers(folder: Path) -> None:
    runner.invoke(app, ["ingest", "t.csv", "--table", "transactions"], catch_exceptions=False)
    result = runner.invoke(
        app,
        ["ingest", "int.csv", "--table", "interactions", "--format", "json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["table"] == "interactions"
    assert (report["read"], report["loaded"], report["quarantined"]) == (3, 2, 1)
    assert report["unknown_customers"] == 1
    assert report["reasons"] == {"satisfaction: expected a number from 1 to 5, got …": 1}
    assert report["columns"]["kind"] == "type" and report["columns"]["cost"] == "cost_to_serve"
    assert any("e.g. 'C3'" in note for note in report["notes"])
    con = duckdb.connect(str(folder / "cvm.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT customer_id, resolved FROM interactions ORDER BY line")
        assert rows.fetchall() == [("C1", True), ("C3", None)]
    finally:
        con.close()


def test_csv_output_has_unknown_customers(folder: Path) -> None:
    result = runner.invoke(app, ["ingest", "int.csv", "--table", "interactions", "--format", "csv"])
    assert result.exit_code == 0, result.output
    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert (row["table"], row["loaded"], row["unknown_customers"]) == ("interactions", "2", "2")


def test_table_output_shows_unknown_customers_and_reasons(folder: Path) -> None:
    result = runner.invoke(app, ["ingest", "int.csv", "--table", "interactions"])
    assert result.exit_code == 0, result.output
    out = one_line(result.stdout)
    assert "loaded, naming unknown customers │ 2" in out
    assert "reconciles" in out and "DOES NOT" not in out
    assert "satisfaction: expected a number from 1 to 5" in out
    assert "2 rows name 2 customer ids not in the store" in out


def test_the_table_may_also_come_first(folder: Path) -> None:
    result = runner.invoke(app, ["ingest", "interactions", "int.csv", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["loaded"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["int.csv"], "name the table: cvm ingest FILE --table transactions|customers|"),
        (["int.csv", "--table", "orders"], "expected one of transactions, customers, interactions"),
        (["surveys", "int.csv", "--table", "actions"], "the table is given twice"),
        (["orders", "int.csv"], "Invalid value for TABLE"),
        (["a", "b", "c"], "expected [TABLE] FILE, got 3 arguments"),
    ],
    ids=["no-table", "unknown-table", "two-tables", "unknown-positional", "three-arguments"],
)
def test_usage_errors(folder: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["ingest", *args])
    assert result.exit_code == 2
    assert message in one_line(result.output)
    assert not (folder / "cvm.duckdb").exists()


def test_help_lists_every_table() -> None:
    result = runner.invoke(app, ["ingest", "--help"])
    assert result.exit_code == 0
    out = one_line(result.stdout).replace(" ", "")
    assert "|".join(INPUT_TABLES) in out
    assert "--table" in result.stdout


def test_docs_list_every_table() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs"
    cli, ingestion = [(docs / n).read_text(encoding="utf-8") for n in ("cli.md", "ingestion.md")]
    assert "|".join(INPUT_TABLES) in cli.replace("\\|", "|")  # escaped in a Markdown table
    for table in INPUT_TABLES[2:]:  # transactions and customers: "Column mapping"
        assert f"### {table}" in ingestion


def test_subprocess_as_a_user_runs_it(tmp_path: Path) -> None:
    if not CVM.exists():
        pytest.skip(f"console script {CVM} not installed")
    (tmp_path / "actions.csv").write_text(
        "customer_id,action,ts,arm,campaign_id\n"
        "C1,coupon,2021-03-01,Test,spring\n"
        "C2,coupon,2021-03-01,holdout,spring\n"
        "C3,coupon,2021-03-01,B,spring\n",
        encoding="utf-8",
    )
    env = dict(os.environ, NO_COLOR="1")
    done = subprocess.run(
        [
            str(CVM),
            "ingest",
            "actions.csv",
            "--table",
            "actions",
            "--db",
            "s.duckdb",
            "--format",
            "json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["loaded"], report["quarantined"], report["unknown_customers"]) == (2, 1, 2)
    assert report["reasons"] == {"arm: expected treatment or control, got …": 1}
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    try:
        groups = con.execute('SELECT "group" FROM actions ORDER BY line').fetchall()
        quarantine = con.execute("SELECT line, column_name, reason FROM quarantine").fetchall()
    finally:
        con.close()
    assert groups == [("treatment",), ("control",)]
    assert quarantine == [(4, "arm", "expected treatment or control, got 'B'")]
