"""Interactions, surveys, referrals, identities and actions load like transactions.

For every table: a happy path with the stored values checked, idempotent re-loads of
the same and of overlapping rows, counts that reconcile with the ingest log, and each
validation rule quarantining its row with the exact line, column and reason.
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cvm import Store
from cvm.config import settings_from_dict
from cvm.errors import ConfigError, SchemaError
from cvm.ingest import INPUT_TABLES, IngestReport, ingest, loader
from cvm.ingest.mapping import TABLE_FIELDS, normalize_header
from cvm.store.schema import INPUT_COLUMNS

NEW_TABLES = ("interactions", "surveys", "referrals", "identities", "actions")

# table → (header, three valid rows, the stored values of those rows by line)
GOOD: dict[str, tuple[str, list[str], list[tuple[Any, ...]]]] = {
    "interactions": (
        "customer_id,ts,kind,channel,cost,csat,resolved\n",
        [
            "C1,2021-01-05,call,phone,4.5,4,yes",
            "C2,2021-01-06 14:30:00,email,web,0,5,N",
            "C1,2021-01-07,ticket,,,,",
        ],
        [
            ("C1", dt.datetime(2021, 1, 5), "call", "phone", 4.5, 4.0, True),
            ("C2", dt.datetime(2021, 1, 6, 14, 30), "email", "web", 0.0, 5.0, False),
            ("C1", dt.datetime(2021, 1, 7), "ticket", None, None, None, None),
        ],
    ),
    "surveys": (
        "customer_id,ts,nps,csat,comment\n",
        ["C1,2021-02-01,9,5,great", 'C2,2021-02-02,0,1,"slow, rude"', "C1,2021-03-01,,3.5,"],
        [
            ("C1", dt.datetime(2021, 2, 1), 9.0, 5.0, "great"),
            ("C2", dt.datetime(2021, 2, 2), 0.0, 1.0, "slow, rude"),
            ("C1", dt.datetime(2021, 3, 1), None, 3.5, None),
        ],
    ),
    "referrals": (
        "referrer_id,referred_id,ts\n",
        ["C1,C2,2021-01-10", "C1,C3,", "C2,C4,2021-02-01"],
        [
            ("C1", "C2", dt.datetime(2021, 1, 10)),
            ("C1", "C3", None),
            ("C2", "C4", dt.datetime(2021, 2, 1)),
        ],
    ),
    "identities": (
        "source,source_id,customer_id,email,phone,loyalty_card,external_id\n",
        ["web,w1,C1,a@x.com,,,", "pos,p9,,,555-1234,,", "crm,k7,,,,L42,EXT-1"],
        [
            ("web", "w1", "C1", "a@x.com", None, None, None),
            ("pos", "p9", None, None, "555-1234", None, None),
            ("crm", "k7", None, None, None, "L42", "EXT-1"),
        ],
    ),
    "actions": (
        "customer_id,action,ts,group,campaign,cost,channel\n",
        [
            "C1,coupon,2021-03-01,treatment,spring,1.5,email",
            "C2,coupon,2021-03-01,control,spring,0,email",
            "C3,call,2021-03-02,Test,,2,phone",
        ],
        [
            ("C1", "coupon", dt.datetime(2021, 3, 1), "treatment", "spring", 1.5, "email"),
            ("C2", "coupon", dt.datetime(2021, 3, 1), "control", "spring", 0.0, "email"),
            ("C3", "call", dt.datetime(2021, 3, 2), "treatment", None, 2.0, "phone"),
        ],
    ),
}

# table → a valid row not in GOOD, and an invalid one
MORE: dict[str, tuple[str, str]] = {
    "interactions": ("C3,2021-01-08,visit,store,2,3,1", "C3,2021-01-08,call,,-2,,"),
    "surveys": ("C3,2021-02-03,10,,", "C3,2021-02-03,12,,"),
    "referrals": ("C3,C5,2021-03-01", ",C5,"),
    "identities": ("app,a1,,b@x.com,,,", "web,w2,,,,,"),
    "actions": ("C4,coupon,2021-03-01,holdout,spring,1,email", "C4,coupon,2021-03-01,B,,,"),
}


# -- helpers ------------------------------------------------------------------------------
def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def good_file(tmp_path: Path, table: str, name: str = "good.csv") -> Path:
    header, rows, _ = GOOD[table]
    return write(tmp_path, name, header + "\n".join(rows) + "\n")


def stored(store: Store, table: str, batch_id: str | None = None) -> list[tuple[Any, ...]]:
    """The canonical columns of a table's rows (of one batch), by line."""
    columns = ", ".join(f'"{c}"' for c in INPUT_COLUMNS[table])
    where = "WHERE batch_id = ?" if batch_id else ""
    rows = store.con.execute(
        f"SELECT {columns} FROM {table} {where} ORDER BY line", [batch_id] if batch_id else []
    ).fetchall()
    return [tuple(r) for r in rows]


def quarantined(store: Store) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in store.con.execute(
            "SELECT line, column_name, raw_value, reason FROM quarantine ORDER BY line"
        ).fetchall()
    ]


def counts(report: IngestReport) -> tuple[int, int, int, int]:
    assert report.reconciles
    return report.read, report.loaded, report.quarantined, report.duplicates


def summary(column: str | None, reason: str) -> str:
    """The key of a reason in ``IngestReport.reasons`` (quoted values elided)."""
    elided = re.sub("'.*'", "…", reason)
    return f"{column or 'record'}: {elided}"


# -- definitions ---------------------------------------------------------------------------
def test_ingest_accepts_all_seven_input_tables() -> None:
    assert INPUT_TABLES == (
        "transactions",
        "customers",
        "interactions",
        "surveys",
        "referrals",
        "identities",
        "actions",
    )


@pytest.mark.parametrize("table", NEW_TABLES)
def test_fields_match_the_store_schema(table: str) -> None:
    fields = TABLE_FIELDS[table]
    assert [f.name for f in fields] == list(INPUT_COLUMNS[table])
    for field in fields:
        assert field.required == INPUT_COLUMNS[table][field.name].endswith("NOT NULL"), field


@pytest.mark.parametrize("table", list(TABLE_FIELDS))
def test_no_header_matches_two_columns_of_a_table(table: str) -> None:
    names = [n for f in TABLE_FIELDS[table] for n in (f.name, *f.synonyms)]
    assert len(names) == len(set(names))
    assert all(normalize_header(n) == n for n in names)


# -- happy path -----------------------------------------------------------------------------
@pytest.mark.parametrize("table", NEW_TABLES)
def test_valid_rows_are_loaded_with_their_values(store: Store, tmp_path: Path, table: str) -> None:
    report = ingest(store, good_file(tmp_path, table), table=table)
    assert counts(report) == (3, 3, 0, 0)
    assert report.table == table and not report.already_ingested
    assert stored(store, table) == GOOD[table][2]
    lines = store.con.execute(f"SELECT line, batch_id, occurrence FROM {table} ORDER BY line")
    assert lines.fetchall() == [(n, report.batch_id, 1) for n in (2, 3, 4)]
    log = store.con.execute(
        "SELECT table_name, rows_read, rows_loaded FROM ingest_log WHERE batch_id = ?",
        [report.batch_id],
    ).fetchall()
    assert log == [(table, 3, 3)]


SYNONYMS = [
    (
        "interactions",
        "Customer ID,Interaction Type,Date,Cost to Serve,Satisfaction,Is Resolved\n"
        "C1,call,2021-01-01,1,5,no\n",
        {
            "customer_id": "Customer ID",
            "kind": "Interaction Type",
            "ts": "Date",
            "cost": "Cost to Serve",
            "csat": "Satisfaction",
            "resolved": "Is Resolved",
        },
    ),
    ("interactions", "customer,type,timestamp\nC1,email,2021-01-01\n", {"kind": "type"}),
    (
        "surveys",
        "customer_id,ResponseDate,NPS Score,comments\nC1,2021-01-01,7,ok\n",
        {"ts": "ResponseDate", "nps": "NPS Score", "comment": "comments"},
    ),
    (
        "surveys",
        "customer_id,date,likelihood_to_recommend\nC1,2021-01-01,7\n",
        {"nps": "likelihood_to_recommend"},
    ),
    (
        "referrals",
        "referrer,referred,date\nC1,C2,2021-01-01\n",
        {"referrer_id": "referrer", "referred_id": "referred", "ts": "date"},
    ),
    (
        "referrals",
        "Referring Customer,New Customer ID\nC1,C2\n",
        {"referrer_id": "Referring Customer", "referred_id": "New Customer ID"},
    ),
    (
        "identities",
        "system,source_id,E-mail,Mobile,Loyalty ID,CRM ID\nweb,w1,a@x,1,L1,K1\n",
        {
            "source": "system",
            "email": "E-mail",
            "phone": "Mobile",
            "loyalty_card": "Loyalty ID",
            "external_id": "CRM ID",
        },
    ),
    (
        "actions",
        "customer_id,action,date,treatment_group,campaign_id\nC1,mail,2021-01-01,control,K\n",
        {"group": "treatment_group", "campaign": "campaign_id"},
    ),
    ("actions", "customer_id,action,ts,arm\nC1,mail,2021-01-01,control\n", {"group": "arm"}),
    ("actions", "customer_id,action,ts,Variant\nC1,mail,2021-01-01,test\n", {"group": "Variant"}),
]


@pytest.mark.parametrize(
    ("table", "content", "expected"), SYNONYMS, ids=[f"{c[0]}-{i}" for i, c in enumerate(SYNONYMS)]
)
def test_header_synonyms(
    store: Store, tmp_path: Path, table: str, content: str, expected: dict[str, str]
) -> None:
    report = ingest(store, write(tmp_path, "x.csv", content), table=table)
    assert counts(report) == (1, 1, 0, 0)
    assert report.columns.items() >= expected.items()
    assert report.ignored_columns == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("FALSE", False),
        ("Yes", True),
        ("no", False),
        ("y", True),
        ("N", False),
        ("1", True),
        ("0", False),
        ("  yes ", True),
    ],
)
def test_boolean_spellings(store: Store, tmp_path: Path, text: str, value: bool) -> None:
    path = write(tmp_path, "i.csv", f"customer_id,ts,kind,resolved\nC1,2021-01-01,call,{text}\n")
    assert counts(ingest(store, path, table="interactions")) == (1, 1, 0, 0)
    assert store.con.execute("SELECT resolved FROM interactions").fetchall() == [(value,)]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("treatment", "treatment"),
        ("Treatment", "treatment"),
        ("TEST", "treatment"),
        ("treatment group", "treatment"),
        ("control", "control"),
        ("Control Group", "control"),
        ("control_group", "control"),
        ("holdout", "control"),
        ("Hold-out", "control"),
    ],
)
def test_group_spellings_are_stored_in_lower_case(
    store: Store, tmp_path: Path, text: str, value: str
) -> None:
    path = write(tmp_path, "a.csv", f"customer_id,action,ts,group\nC1,mail,2021-01-01,{text}\n")
    assert counts(ingest(store, path, table="actions")) == (1, 1, 0, 0)
    assert store.con.execute('SELECT "group" FROM actions').fetchall() == [(value,)]


def test_score_bounds_are_inclusive(store: Store, tmp_path: Path) -> None:
    content = "customer_id,ts,nps,csat\nC1,2021-01-01,0,1\nC1,2021-01-02,10,5\nC1,2021-01-03,7.0,\n"
    report = ingest(store, write(tmp_path, "s.csv", content), table="surveys")
    assert counts(report) == (3, 3, 0, 0)
    assert [r[2:4] for r in stored(store, "surveys")] == [(0.0, 1.0), (10.0, 5.0), (7.0, None)]


# -- idempotence ------------------------------------------------------------------------------
@pytest.mark.parametrize("table", NEW_TABLES)
def test_the_same_file_twice_writes_nothing(store: Store, tmp_path: Path, table: str) -> None:
    first = ingest(store, good_file(tmp_path, table), table=table)
    again = ingest(store, good_file(tmp_path, table), table=table)
    assert again.already_ingested and again.batch_id == first.batch_id
    assert counts(again) == (3, 0, 0, 3)
    assert store.count(table) == 3
    assert store.count("ingest_log") == 1


@pytest.mark.parametrize("table", NEW_TABLES)
def test_overlapping_rows_load_only_the_new_ones(store: Store, tmp_path: Path, table: str) -> None:
    header, rows, values = GOOD[table]
    first = ingest(store, good_file(tmp_path, table), table=table)
    new, _ = MORE[table]
    overlap = write(tmp_path, "overlap.csv", header + "\n".join([rows[2], new, rows[0]]) + "\n")
    report = ingest(store, overlap, table=table)
    assert counts(report) == (3, 1, 0, 2)
    assert store.count(table) == 4
    assert stored(store, table, first.batch_id) == values
    assert store.con.execute(
        f"SELECT line FROM {table} WHERE batch_id = ?", [report.batch_id]
    ).fetchall() == [(3,)]
    again = write(tmp_path, "again.csv", header + "\n".join([new, rows[1]]) + "\n")
    assert counts(ingest(store, again, table=table)) == (2, 0, 0, 2)
    assert store.count(table) == 4


@pytest.mark.parametrize("table", NEW_TABLES)
def test_the_same_dataframe_twice_writes_nothing(store: Store, table: str) -> None:
    frame = pd.DataFrame(GOOD[table][2], columns=list(INPUT_COLUMNS[table]))
    assert counts(ingest(store, frame, table=table)) == (3, 3, 0, 0)
    again = ingest(store, frame, table=table)
    assert again.already_ingested and counts(again) == (3, 0, 0, 3)
    assert stored(store, table) == GOOD[table][2]


def test_identical_interactions_are_events_unless_skipped(store: Store, tmp_path: Path) -> None:
    content = "customer_id,ts,kind\nC1,2021-01-01,call\nC1,2021-01-01,call\n"
    report = ingest(store, write(tmp_path, "i.csv", content), table="interactions")
    assert counts(report) == (2, 2, 0, 0)
    assert store.con.execute("SELECT occurrence FROM interactions ORDER BY line").fetchall() == [
        (1,),
        (2,),
    ]
    skip = settings_from_dict({"ingest": {"exact_duplicates": "skip"}})
    report = ingest(store, write(tmp_path, "s.csv", content), table="surveys", settings=skip)
    assert counts(report) == (2, 1, 0, 1)


@pytest.mark.parametrize(
    ("table", "content"),
    [
        ("referrals", "referrer_id,referred_id\nC1,C2\nC1,C2\n"),
        ("identities", "source,source_id,email\nweb,w1,a@x\nweb,w1,a@x\n"),
    ],
)
def test_a_fact_stated_twice_is_a_duplicate(
    store: Store, tmp_path: Path, table: str, content: str
) -> None:
    report = ingest(store, write(tmp_path, "x.csv", content), table=table)
    assert counts(report) == (2, 1, 0, 1)
    assert store.count(table) == 1


# -- reconciliation ------------------------------------------------------------------------
@pytest.mark.parametrize("table", NEW_TABLES)
def test_every_row_is_loaded_quarantined_or_a_duplicate(
    store: Store, tmp_path: Path, table: str
) -> None:
    header, rows, _ = GOOD[table]
    ingest(store, good_file(tmp_path, table), table=table)
    new, bad = MORE[table]
    too_many = rows[0] + ",extra"
    content = header + "\n".join([rows[0], bad, new, too_many]) + "\n"
    report = ingest(store, write(tmp_path, "mixed.csv", content), table=table)
    assert counts(report) == (4, 1, 2, 1)
    assert [q[0] for q in quarantined(store)] == [3, 5]
    log = store.con.execute(
        "SELECT rows_read, rows_loaded, rows_quarantined, rows_duplicate FROM ingest_log "
        "WHERE batch_id = ?",
        [report.batch_id],
    ).fetchone()
    assert log == (4, 1, 2, 1)
    batch_lines = store.con.execute(
        f"SELECT line FROM {table} WHERE batch_id = ?", [report.batch_id]
    ).fetchall()
    assert batch_lines == [(4,)]


@pytest.mark.parametrize("table", NEW_TABLES)
def test_a_failed_load_writes_nothing(
    store: Store, tmp_path: Path, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(loader, "reference_check", boom)
    header, rows, _ = GOOD[table]
    _, bad = MORE[table]
    path = write(tmp_path, "x.csv", header + "\n".join([*rows, bad]) + "\n")
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest(store, path, table=table)
    for name in (table, "quarantine", "ingest_log"):
        assert store.count(name) == 0, name
    monkeypatch.undo()
    assert counts(ingest(store, path, table=table)) == (4, 3, 1, 0)


@pytest.mark.parametrize("table", NEW_TABLES)
def test_rows_without_a_commit_record_are_removed_on_open(tmp_path: Path, table: str) -> None:
    path = tmp_path / "s.duckdb"
    with Store(path) as store:
        ingest(store, good_file(tmp_path, table), table=table)
        store.con.execute(
            f"INSERT INTO {table} SELECT * REPLACE ('lost-batch' AS batch_id) FROM {table}"
        )
    with pytest.warns(UserWarning, match=f"{table}: 3"):
        store = Store(path)
    with store:
        assert store.count(table) == 3
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert store.recover() == {}


# -- bad input: each rule quarantines the row with line, column and reason ----------------------
# (id, table, header, bad row at line 3, column, raw value, reason); line 2 is a good row.
_I = "customer_id,ts,kind,cost,csat,resolved\n"
_S = "customer_id,ts,nps,csat\n"
_R = "referrer_id,referred_id,ts\n"
_ID = "source,source_id,customer_id,email,phone,loyalty_card,external_id\n"
_A = "customer_id,action,ts,group,cost\n"
RULES = [
    ("csat-0", "interactions", _I, "C2,2021-01-06,call,,0,", "csat", "0", "from 1 to 5, got '0'"),
    ("csat-5.5", "interactions", _I, "C2,2021-01-06,call,,5.5,", "csat", "5.5", "1 to 5"),
    (
        "csat-text",
        "interactions",
        _I,
        "C2,2021-01-06,call,,good,",
        "csat",
        "good",
        "expected a number, got 'good'",
    ),
    (
        "cost-negative",
        "interactions",
        _I,
        "C2,2021-01-06,call,-0.01,,",
        "cost",
        "-0.01",
        "expected a number of 0 or more, got '-0.01'",
    ),
    (
        "cost-infinite",
        "interactions",
        _I,
        "C2,2021-01-06,call,inf,,",
        "cost",
        "inf",
        "expected a finite number, got 'inf'",
    ),
    (
        "resolved-maybe",
        "interactions",
        _I,
        "C2,2021-01-06,call,,,maybe",
        "resolved",
        "maybe",
        "expected true/false, yes/no, y/n or 1/0, got 'maybe'",
    ),
    ("kind-missing", "interactions", _I, "C2,2021-01-06,,,,", "kind", None, "missing kind"),
    (
        "interaction-date",
        "interactions",
        _I,
        "C2,2021-02-30,call,,,",
        "ts",
        "2021-02-30",
        "no such date '2021-02-30': the month has no such day (or no such month)",
    ),
    (
        "nps-7.5",
        "surveys",
        _S,
        "C2,2021-01-06,7.5,",
        "nps",
        "7.5",
        "expected a whole number from 0 to 10, got '7.5'",
    ),
    (
        "nps-11",
        "surveys",
        _S,
        "C2,2021-01-06,11,",
        "nps",
        "11",
        "expected a whole number from 0 to 10, got '11'",
    ),
    ("nps-negative", "surveys", _S, "C2,2021-01-06,-1,", "nps", "-1", "0 to 10, got '-1'"),
    ("nps-text", "surveys", _S, "C2,2021-01-06,ten,", "nps", "ten", "expected a number"),
    ("survey-csat-6", "surveys", _S, "C2,2021-01-06,,6", "csat", "6", "from 1 to 5, got '6'"),
    ("survey-no-date", "surveys", _S, "C2,,5,", "ts", None, "missing ts"),
    ("referrer-missing", "referrals", _R, ",C2,", "referrer_id", None, "missing referrer_id"),
    ("referred-missing", "referrals", _R, "C1, ,", "referred_id", None, "missing referred_id"),
    (
        "referral-date",
        "referrals",
        _R,
        "C1,C9,yesterday",
        "ts",
        "yesterday",
        "expected a date (YYYY-MM-DD), got 'yesterday'",
    ),
    (
        "no-customer-key",
        "identities",
        _ID,
        "web,w2,,,, ,",
        None,
        None,
        "no customer key: customer_id, email, phone, loyalty_card, external_id are empty",
    ),
    ("source-missing", "identities", _ID, ",w2,C2,,,,", "source", None, "missing source"),
    ("source-id-missing", "identities", _ID, "web,,C2,,,,", "source_id", None, "missing source_id"),
    (
        "group-B",
        "actions",
        _A,
        "C2,mail,2021-01-06,B,",
        "group",
        "B",
        "expected treatment or control, got 'B'",
    ),
    ("group-missing", "actions", _A, "C2,mail,2021-01-06,,", "group", None, "missing group"),
    ("action-missing", "actions", _A, "C2,,2021-01-06,control,", "action", None, "missing action"),
    (
        "action-cost-negative",
        "actions",
        _A,
        "C2,mail,2021-01-06,control,-1",
        "cost",
        "-1",
        "expected a number of 0 or more, got '-1'",
    ),
]
GOOD_LINE = {
    "interactions": "C1,2021-01-05,call,1,4,yes",
    "surveys": "C1,2021-01-05,9,4",
    "referrals": "C1,C2,2021-01-05",
    "identities": "web,w1,C1,,,,",
    "actions": "C1,mail,2021-01-05,treatment,1",
}


@pytest.mark.parametrize(
    ("table", "header", "row", "column", "raw", "reason"),
    [case[1:] for case in RULES],
    ids=[case[0] for case in RULES],
)
def test_bad_value_is_quarantined_with_line_column_and_reason(
    store: Store,
    tmp_path: Path,
    table: str,
    header: str,
    row: str,
    column: str | None,
    raw: str | None,
    reason: str,
) -> None:
    path = write(tmp_path, "x.csv", header + GOOD_LINE[table] + "\n" + row + "\n")
    report = ingest(store, path, table=table)
    assert counts(report) == (2, 1, 1, 0)
    [(line, got_column, got_raw, got_reason)] = quarantined(store)
    assert (line, got_column, got_raw) == (3, column, raw)
    assert reason in got_reason
    assert report.reasons == {summary(column, got_reason): 1}
    assert store.con.execute(f"SELECT line FROM {table}").fetchall() == [(2,)]


def test_the_reason_names_the_source_column(store: Store, tmp_path: Path) -> None:
    content = "Client,When,Type,Satisfaction\nC1,2021-01-01,call,4\nC2,2021-01-02,call,9\n"
    report = ingest(
        store,
        write(tmp_path, "x.csv", content),
        table="interactions",
        mapping={"customer_id": "Client", "ts": "When"},
    )
    assert counts(report) == (2, 1, 1, 0)
    assert quarantined(store) == [
        (3, "Satisfaction", "9", "expected a number from 1 to 5, got '9'")
    ]
    assert report.reasons == {"Satisfaction: expected a number from 1 to 5, got …": 1}


def test_the_first_problem_of_a_row_is_its_reason(store: Store, tmp_path: Path) -> None:
    content = _I + "C1,2021-01-05,call,-1,9,maybe\n"
    report = ingest(store, write(tmp_path, "x.csv", content), table="interactions")
    assert counts(report) == (1, 0, 1, 0)
    assert quarantined(store) == [(2, "cost", "-1", "expected a number of 0 or more, got '-1'")]


def test_identities_without_a_customer_key_column_are_refused(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "ids.csv", "source,source_id,name\nweb,w1,Ann\n")
    with pytest.raises(
        SchemaError,
        match=r"ids\.csv, column 'customer_id': identities need at least one customer key "
        r"column \(customer_id, email, phone, loyalty_card, external_id\)",
    ):
        ingest(store, path, table="identities")
    for name in ("identities", "quarantine", "ingest_log"):
        assert store.count(name) == 0


def test_one_key_column_is_enough_and_names_itself(store: Store, tmp_path: Path) -> None:
    content = "source,source_id,Email\nweb,w1,a@x.com\nweb,w2,\n"
    report = ingest(store, write(tmp_path, "ids.csv", content), table="identities")
    assert counts(report) == (2, 1, 1, 0)
    assert quarantined(store) == [(3, None, None, "no customer key: Email is empty")]


def test_a_missing_required_column_is_a_schema_error(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "customer_id,action,ts\nC1,mail,2021-01-01\n")
    with pytest.raises(SchemaError, match=r"a\.csv, column 'group': required column 'group'"):
        ingest(store, path, table="actions")
    assert store.count("ingest_log") == 0


def test_a_derived_cost_is_checked_against_its_range(store: Store, tmp_path: Path) -> None:
    content = (
        "customer_id,ts,kind,minutes,rate\nC1,2021-01-01,call,4,0.5\nC1,2021-01-02,call,4,-0.5\n"
    )
    report = ingest(
        store,
        write(tmp_path, "i.csv", content),
        table="interactions",
        derive={"cost": "minutes * rate"},
    )
    assert counts(report) == (2, 1, 1, 0)
    assert quarantined(store) == [
        (3, "cost", "-2.0", "cost = minutes * rate: expected a number of 0 or more, got '-2.0'")
    ]
    assert [r[4] for r in stored(store, "interactions")] == [2.0]


def test_only_numbers_can_be_derived(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "customer_id,action,ts,arm\nC1,mail,2021-01-01,1\n")
    with pytest.raises(ConfigError, match=r"key 'ingest.actions.derive.group'.*not a number"):
        ingest(store, path, table="actions", derive={"group": "arm * 1"})


def test_unknown_table(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown table 'orders'; expected one of"):
        ingest(store, good_file(tmp_path, "surveys"), table="orders")


# -- other sources and settings ---------------------------------------------------------------
def test_dataframe_with_native_booleans_and_numbers(store: Store) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3", "C4"],
            "ts": pd.to_datetime(["2021-01-01", "2021-01-02", "2021-01-03", "2021-01-04"]),
            "kind": ["call", "call", "email", "visit"],
            "cost": [1, 0, 2, -3],
            "csat": [5.0, float("nan"), 1.0, 2.0],
            "resolved": pd.array([True, None, False, True], dtype="boolean"),
        }
    )
    report = ingest(store, frame, table="interactions")
    assert counts(report) == (4, 3, 1, 0)
    assert quarantined(store) == [(4, "cost", "-3", "expected a number of 0 or more, got '-3'")]
    assert [r[4:] for r in stored(store, "interactions")] == [
        (1.0, 5.0, True),
        (0.0, None, None),
        (2.0, 1.0, False),
    ]


def test_numeric_resolved_column(store: Store) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3"],
            "ts": ["2021-01-01", "2021-01-02", "2021-01-03"],
            "kind": ["call"] * 3,
            "resolved": [1.0, 0.0, 2.0],
        }
    )
    report = ingest(store, frame, table="interactions")
    assert counts(report) == (3, 2, 1, 0)
    assert quarantined(store) == [
        (3, "resolved", "2.0", "expected true/false, yes/no, y/n or 1/0, got '2.0'")
    ]


def test_parquet_integer_scores(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    pq.write_table(
        pa.table(
            {
                "customer_id": ["C1", "C2"],
                "ts": pa.array([dt.date(2021, 1, 1), dt.date(2021, 1, 2)]),
                "nps_score": pa.array([10, 11], type=pa.int32()),
            }
        ),
        path,
    )
    report = ingest(store, path, table="surveys")
    assert counts(report) == (2, 1, 1, 0)
    assert quarantined(store) == [
        (2, "nps_score", "11", "expected a whole number from 0 to 10, got '11'")
    ]


def test_mapping_from_the_settings(store: Store, tmp_path: Path) -> None:
    settings = settings_from_dict(
        {"ingest": {"surveys": {"columns": {"nps": "Q1", "comment": "Q2"}}}}
    )
    assert settings.ingest.surveys.columns == {"nps": "Q1", "comment": "Q2"}
    content = "customer_id,ts,Q1,Q2\nC1,2021-01-01,8,fine\n"
    report = ingest(store, write(tmp_path, "s.csv", content), table="surveys", settings=settings)
    assert counts(report) == (1, 1, 0, 0)
    assert stored(store, "surveys") == [("C1", dt.datetime(2021, 1, 1), 8.0, None, "fine")]


@pytest.mark.parametrize("table", NEW_TABLES)
def test_every_table_has_a_mapping_setting(table: str) -> None:
    settings = settings_from_dict({"ingest": {table: {"columns": {"ts": "When"}}}})
    assert getattr(settings.ingest, table).columns == {"ts": "When"}
    with pytest.raises(ConfigError, match=rf"key 'ingest\.{table}\.bogus'"):
        settings_from_dict({"ingest": {table: {"bogus": {}}}})
