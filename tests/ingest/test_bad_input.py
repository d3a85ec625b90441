"""A corpus of bad input files: every record is loaded, quarantined or counted.

Each case writes a small file (or builds a DataFrame) the way real exports come out of
tills, webshops, spreadsheets and CRMs, and checks two things:

* where each problem is reported: the exact physical line (header = line 1), column
  and message in the ``quarantine`` table; or, for problems with the file as a whole,
  the error class and a message naming the file and column, with nothing written;
* that the counts reconcile: ``read == loaded + quarantined + duplicates``.

Cases marked ``xfail(strict=True)`` describe the correct behaviour of a known bug in
``cvm.ingest``; the reason names it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cvm import Store
from cvm.config import settings_from_dict
from cvm.errors import ConfigError, DataError, SchemaError
from cvm.ingest import IngestReport, ingest_customers, ingest_transactions

HEADER = "customer_id,ts,amount\n"
GOOD = "1,2020-01-01,5\n"


# -- helpers ------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store(tmp_path / "s.duckdb") as opened:
        yield opened


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def quarantined(store: Store) -> list[tuple[int | None, str | None, str | None, str]]:
    """(line, column, raw value, reason) of every quarantined record, by line."""
    return [
        tuple(row)
        for row in store.con.execute(
            "SELECT line, column_name, raw_value, reason FROM quarantine ORDER BY line"
        ).fetchall()
    ]


def loaded_lines(store: Store, table: str = "transactions") -> list[int]:
    rows = store.con.execute(f"SELECT line FROM {table} ORDER BY line").fetchall()
    return [int(r[0]) for r in rows]


def column(store: Store, name: str, table: str = "transactions") -> list[Any]:
    rows = store.con.execute(f"SELECT {name} FROM {table} ORDER BY line").fetchall()
    return [r[0] for r in rows]


def check_counts(
    report: IngestReport, *, read: int, loaded: int, quarantined: int = 0, duplicates: int = 0
) -> None:
    assert (report.read, report.loaded, report.quarantined, report.duplicates) == (
        read,
        loaded,
        quarantined,
        duplicates,
    )
    assert report.reconciles
    assert report.read == report.loaded + report.quarantined + report.duplicates


def check_nothing_written(store: Store) -> None:
    for table in ("transactions", "customers", "quarantine", "ingest_log"):
        assert store.count(table) == 0, table


# -- one bad value among good rows ----------------------------------------------------------
# (id, data line 3, column, raw value, reason); line 2 is always a good row.
BAD_VALUES = [
    ("empty-customer-id", ",2020-01-02,6", "customer_id", None, "missing customer_id"),
    ("blank-customer-id", "   ,2020-01-02,6", "customer_id", None, "missing customer_id"),
    ("empty-date", "2,,6", "ts", None, "missing ts"),
    ("empty-amount", "2,2020-01-02,", "amount", None, "missing amount"),
    (
        "unparseable-date",
        "2,not a date,6",
        "ts",
        "not a date",
        "expected a date (YYYY-MM-DD), got 'not a date'",
    ),
    (
        "month-13",
        "2,2020-13-01,6",
        "ts",
        "2020-13-01",
        "no such date '2020-13-01': the month has no such day (or no such month)",
    ),
    (
        "excel-serial-date",
        "2,43831,6",
        "ts",
        "43831",
        "expected a date (YYYY-MM-DD), got '43831'",
    ),
    (
        "year-0001",
        "2,0001-01-01,6",
        "ts",
        "0001-01-01",
        "implausible date '0001-01-01': before 1900-01-01",
    ),
    (
        "year-1850",
        "2,1850-01-01,6",
        "ts",
        "1850-01-01",
        "implausible date '1850-01-01': before 1900-01-01",
    ),
    ("amount-abc", "2,2020-01-02,abc", "amount", "abc", "expected a number, got 'abc'"),
    (
        "decimal-comma",
        '2,2020-01-02,"12,50"',
        "amount",
        "12,50",
        "expected a number, got '12,50'",
    ),
    ("currency-sign", "2,2020-01-02,£5", "amount", "£5", "expected a number, got '£5'"),
    (
        "accounting-negative",
        "2,2020-01-02,(5)",
        "amount",
        "(5)",
        "expected a number, got '(5)'",
    ),
    ("inf", "2,2020-01-02,inf", "amount", "inf", "expected a finite number, got 'inf'"),
    ("nan", "2,2020-01-02,NaN", "amount", "NaN", "expected a finite number, got 'NaN'"),
    ("minus-inf", "2,2020-01-02,-inf", "amount", "-inf", "expected a finite number, got '-inf'"),
    (
        "overflow",
        "2,2020-01-02,1e400",
        "amount",
        "1e400",
        "expected a finite number, got '1e400'",
    ),
]


@pytest.mark.parametrize(
    ("line3", "col", "raw", "reason"),
    [case[1:] for case in BAD_VALUES],
    ids=[case[0] for case in BAD_VALUES],
)
def test_bad_value_is_quarantined_with_line_column_and_reason(
    store: Store, tmp_path: Path, line3: str, col: str, raw: str | None, reason: str
) -> None:
    path = write(tmp_path, "tx.csv", HEADER + GOOD + line3 + "\n" + "3,2020-01-03,7\n")
    report = ingest_transactions(store, path)
    check_counts(report, read=3, loaded=2, quarantined=1)
    assert quarantined(store) == [(3, col, raw, reason)]
    assert loaded_lines(store) == [2, 4]
    record = json.loads(store.con.execute("SELECT record FROM quarantine").fetchone()[0])
    assert record["__line"] == 3


def test_date_far_in_the_future_is_quarantined(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", HEADER + GOOD + "2,2999-01-01,6\n")
    report = ingest_transactions(store, path)
    check_counts(report, read=2, loaded=1, quarantined=1)
    [(line, col, raw, reason)] = quarantined(store)
    assert (line, col, raw) == (3, "ts", "2999-01-01")
    assert re.fullmatch(
        r"implausible date '2999-01-01': after \d{4}-\d\d-\d\d, in the future", reason
    )


def test_impossible_calendar_day_says_so(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", HEADER + GOOD + "2,2011-02-30,6\n")
    report = ingest_transactions(store, path)
    check_counts(report, read=2, loaded=1, quarantined=1)
    [(line, col, raw, reason)] = quarantined(store)
    assert (line, col, raw) == (3, "ts", "2011-02-30")
    assert "2011-02-30" in reason
    assert "YYYY-MM-DD" not in reason


def test_missing_value_names_the_source_column(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", "CustomerID,InvoiceDate,Revenue\n1,2020-01-01,5\n2,,6\n")
    report = ingest_transactions(store, path)
    check_counts(report, read=2, loaded=1, quarantined=1)
    assert quarantined(store) == [(3, "InvoiceDate", None, "missing ts (column 'InvoiceDate')")]


# -- values that look odd but are valid ---------------------------------------------------
ODD_BUT_VALID = [
    ("return", "2,2020-01-02,-5", "amount", -5.0),
    ("zero-price", "2,2020-01-02,0", "amount", 0.0),
    ("exponent", "2,2020-01-02,1e3", "amount", 1000.0),
    ("plus-sign", "2,2020-01-02,+5", "amount", 5.0),
    ("padded-amount", "2,2020-01-02,  7.5 ", "amount", 7.5),
    ("float-customer-id", "17850.0,2020-01-02,6", "customer_id", "17850"),
    ("padded-customer-id", "  42 ,2020-01-02,6", "customer_id", "42"),
    ("leading-zero-id", "00042,2020-01-02,6", "customer_id", "00042"),
    ("non-integer-id-kept", "1.5,2020-01-02,6", "customer_id", "1.5"),
]


@pytest.mark.parametrize(
    ("line3", "col", "expected"),
    [case[1:] for case in ODD_BUT_VALID],
    ids=[case[0] for case in ODD_BUT_VALID],
)
def test_odd_but_valid_values_are_loaded(
    store: Store, tmp_path: Path, line3: str, col: str, expected: Any
) -> None:
    path = write(tmp_path, "tx.csv", HEADER + GOOD + line3 + "\n")
    report = ingest_transactions(store, path)
    check_counts(report, read=2, loaded=2)
    assert quarantined(store) == []
    assert column(store, col)[1] == expected


# -- derived amounts ---------------------------------------------------------------------
def test_auto_derived_amount_quantity_times_unit_price(store: Store, tmp_path: Path) -> None:
    content = (
        "customer_id,ts,quantity,unit_price\n"
        "1,2020-01-01,2,3\n"
        "2,2020-01-02,-2,3\n"  # cancellation: loaded as a negative amount
        "3,2020-01-03,two,3\n"
        "4,2020-01-04,,3\n"
        "5,2020-01-05,1,0\n"  # free item: loaded with amount 0
    )
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_counts(report, read=5, loaded=3, quarantined=2)
    assert report.columns["amount"] == "quantity * unit_price"
    assert quarantined(store) == [
        (4, "quantity", "two", "expected a number, got 'two'"),
        (5, "quantity", None, "missing value, needed for amount = quantity * unit_price"),
    ]
    assert column(store, "amount") == [6.0, -6.0, 0.0]
    assert column(store, "quantity") == [2.0, -2.0, 1.0]


def test_explicit_derivation_names_the_bad_input_column(store: Store, tmp_path: Path) -> None:
    content = "customer_id,ts,qty,price\n1,2020-01-01,2,3\n2,2020-01-02,2,3.5x\n"
    report = ingest_transactions(
        store, write(tmp_path, "tx.csv", content), derive={"amount": "qty * price"}
    )
    check_counts(report, read=2, loaded=1, quarantined=1)
    assert quarantined(store) == [(3, "price", "3.5x", "expected a number, got '3.5x'")]


def test_derived_amount_that_overflows_is_quarantined(store: Store, tmp_path: Path) -> None:
    content = "customer_id,ts,qty,price\n1,2020-01-01,2,3\n2,2020-01-02,1e200,1e200\n"
    report = ingest_transactions(
        store, write(tmp_path, "tx.csv", content), derive={"amount": "qty * price"}
    )
    check_counts(report, read=2, loaded=1, quarantined=1)
    assert quarantined(store) == [
        (3, "amount", "inf", "amount = qty * price is not a finite number: 'inf'")
    ]


def test_derived_division_by_zero_is_quarantined(store: Store, tmp_path: Path) -> None:
    content = "customer_id,ts,total,n\n1,2020-01-01,10,2\n2,2020-01-02,10,0\n3,2020-01-03,9,3\n"
    report = ingest_transactions(
        store, write(tmp_path, "tx.csv", content), derive={"amount": "total / n"}
    )
    check_counts(report, read=3, loaded=2, quarantined=1)
    [(line, col, _raw, reason)] = quarantined(store)
    assert (line, col) == (3, "amount")
    assert reason.startswith("amount = total / n ")


def test_derivation_over_a_missing_column_is_a_schema_error(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", "customer_id,ts,qty\n1,2020-01-01,2\n")
    with pytest.raises(
        SchemaError,
        match=r"tx\.csv, column 'price', key 'ingest\.transactions\.derive\.amount': "
        r"mapped column 'price' is not in the source",
    ):
        ingest_transactions(store, path, derive={"amount": "qty * price"})
    check_nothing_written(store)


# -- duplicates and re-loads ------------------------------------------------------------
def test_exact_duplicate_lines_are_kept_by_default(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", HEADER + GOOD + GOOD + "2,2020-01-01,5\n")
    report = ingest_transactions(store, path)
    check_counts(report, read=3, loaded=3)
    assert loaded_lines(store) == [2, 3, 4]


def test_exact_duplicate_lines_are_counted_with_skip(store: Store, tmp_path: Path) -> None:
    settings = settings_from_dict({"ingest": {"exact_duplicates": "skip"}})
    path = write(tmp_path, "tx.csv", HEADER + GOOD + GOOD + "2,2020-01-01,5\n" + GOOD)
    report = ingest_transactions(store, path, settings=settings)
    check_counts(report, read=4, loaded=2, duplicates=2)
    assert loaded_lines(store) == [2, 4]


def test_same_file_twice_writes_nothing_the_second_time(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", HEADER + GOOD + "2,2020-01-02,x\n" + "3,2020-01-03,7\n")
    first = ingest_transactions(store, path)
    check_counts(first, read=3, loaded=2, quarantined=1)
    before = {t: store.count(t) for t in ("transactions", "quarantine", "ingest_log")}
    again = ingest_transactions(store, path)
    assert again.already_ingested
    check_counts(again, read=3, loaded=0, duplicates=3)
    assert again.batch_id == first.batch_id
    assert any(first.batch_id in note for note in again.notes)
    assert {t: store.count(t) for t in before} == before


def test_same_dataframe_twice_writes_nothing_the_second_time(store: Store) -> None:
    frame = pd.DataFrame(
        {"customer_id": ["1", "2"], "ts": ["2020-01-01", "2020-01-02"], "amount": [1.0, 2.0]}
    )
    check_counts(ingest_transactions(store, frame), read=2, loaded=2)
    again = ingest_transactions(store, frame.copy())
    assert again.already_ingested
    check_counts(again, read=2, loaded=0, duplicates=2)
    assert store.count("transactions") == 2


def test_overlapping_second_file_loads_only_new_rows(store: Store, tmp_path: Path) -> None:
    first = write(tmp_path, "jan.csv", HEADER + GOOD + "2,2020-01-02,6\n" + "2,2020-01-02,6\n")
    check_counts(ingest_transactions(store, first), read=3, loaded=3)
    # Rows 2-3 repeat January's (including its genuine repeat purchase); the third
    # copy of customer 2's purchase and customer 4's are new.
    second = write(
        tmp_path,
        "jan_feb.csv",
        HEADER + "2,2020-01-02,6\n2,2020-01-02,6\n4,2020-02-01,9\n2,2020-01-02,6\n",
    )
    report = ingest_transactions(store, second)
    check_counts(report, read=4, loaded=2, duplicates=2)
    assert store.count("transactions") == 5
    batch = store.con.execute(
        "SELECT line FROM transactions WHERE batch_id = ? ORDER BY line", [report.batch_id]
    ).fetchall()
    assert [r[0] for r in batch] == [4, 5]


# -- encodings ---------------------------------------------------------------------------
def test_utf8_bom_does_not_hide_the_first_column(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path, "tx.csv", b"\xef\xbb\xbf" + (HEADER + GOOD + "2,2020-01-02,x\n").encode()
    )
    report = ingest_transactions(store, path)
    check_counts(report, read=2, loaded=1, quarantined=1)
    assert report.columns["customer_id"] == "customer_id"
    assert "encoding utf-8 with BOM (detected)" in report.notes
    assert quarantined(store) == [(3, "amount", "x", "expected a number, got 'x'")]


def test_windows_1252_file_with_e_acute(store: Store, tmp_path: Path) -> None:
    content = "customer_id,ts,amount,channel\nJosé,2020-01-01,5,café\n2,2020-01-02,6,web\n"
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content.encode("cp1252")))
    check_counts(report, read=2, loaded=2)
    assert column(store, "customer_id") == ["José", "2"]
    assert column(store, "channel") == ["café", "web"]
    assert any("Windows-1252" in n for n in report.notes)


def test_windows_1252_file_with_western_european_names(store: Store, tmp_path: Path) -> None:
    names = ["Renée", "Muñoz", "Crème brûlée", "Ærøskøbing", "Noël £5 offer"]
    content = "customer_id,ts,amount\n" + "".join(
        f"{name},2020-01-0{i + 1},5\n" for i, name in enumerate(names)
    )
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content.encode("cp1252")))
    check_counts(report, read=5, loaded=5)
    assert column(store, "customer_id") == names


def test_mostly_utf8_with_one_cp1252_byte_late_in_the_file(store: Store, tmp_path: Path) -> None:
    # The stray byte lies beyond the 256 KiB sample used for detection.
    body = "".join(f"{i},2020-01-01,5,café\n" for i in range(15_000))
    content = (
        "customer_id,ts,amount,channel\n" + body
    ).encode() + "99,2020-01-02,5,caf\xe9\n".encode("cp1252")
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_counts(report, read=15_001, loaded=15_001)
    assert "1 bytes were not valid UTF-8 and were read as Windows-1252" in report.notes
    assert set(column(store, "channel")) == {"café"}


def test_mostly_utf8_with_one_cp1252_byte_early_in_the_file(store: Store, tmp_path: Path) -> None:
    body = "".join(f"{i},2020-01-01,5,café\n" for i in range(3))
    content = (
        "customer_id,ts,amount,channel\n" + body
    ).encode() + "99,2020-01-02,5,caf\xe9\n".encode("cp1252")
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_counts(report, read=4, loaded=4)
    assert set(column(store, "channel")) == {"café"}
    assert any("Windows-1252" in note for note in report.notes)


def test_utf16_with_bom(store: Store, tmp_path: Path) -> None:
    content = (HEADER + "Zoë,2020-01-01,5\n2,2020-01-02,x\n").encode("utf-16")
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_counts(report, read=2, loaded=1, quarantined=1)
    assert "encoding utf-16 (detected)" in report.notes
    assert column(store, "customer_id") == ["Zoë"]
    assert quarantined(store) == [(3, "amount", "x", "expected a number, got 'x'")]


def test_wrong_explicit_encoding_names_the_line_of_the_bad_byte(
    store: Store, tmp_path: Path
) -> None:
    content = (HEADER + GOOD + "José,2020-01-02,6\n").encode("cp1252")
    settings = settings_from_dict({"ingest": {"encoding": "utf-8"}})
    with pytest.raises(DataError, match=r"tx\.csv, line 3: cannot decode the file as utf-8"):
        ingest_transactions(store, write(tmp_path, "tx.csv", content), settings=settings)
    check_nothing_written(store)


def test_nul_bytes_are_removed_and_reported(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", HEADER + "1,2020-01-01,5\x00\n2,2020-01-02,\x006\n")
    report = ingest_transactions(store, path)
    check_counts(report, read=2, loaded=2)
    assert "2 NUL characters were removed" in report.notes
    assert column(store, "amount") == [5.0, 6.0]


# -- CSV structure -----------------------------------------------------------------------
@pytest.mark.parametrize(("delimiter", "shown"), [(";", "';'"), ("\t", "'\\t'"), ("|", "'|'")])
def test_other_delimiters_are_detected(
    store: Store, tmp_path: Path, delimiter: str, shown: str
) -> None:
    lines = ["customer_id,ts,amount", "1,2020-01-01,5.5", "2,2020-01-02,x", "3,2020-01-03,7"]
    content = "".join(line.replace(",", delimiter) + "\n" for line in lines)
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_counts(report, read=3, loaded=2, quarantined=1)
    assert f"delimiter {shown} (detected)" in report.notes
    assert quarantined(store) == [(3, "amount", "x", "expected a number, got 'x'")]
    assert column(store, "amount") == [5.5, 7.0]


def test_quoted_delimiters_and_newlines_keep_line_numbers(store: Store, tmp_path: Path) -> None:
    content = (
        "customer_id,ts,amount,channel\n"  # 1
        '1,2020-01-01,5,"shop, high street"\n'  # 2
        '2,2020-01-02,6,"first line\n'  # 3
        "second line\n"  # 4
        'third line"\n'  # 5
        '3,2020-13-01,7,"a\nb"\n'  # 6-7: bad date in a two-line record
        "4,2020-01-04,x,web\n"  # 8
        "5,2020-01-05,9,web\n"  # 9
    )
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_counts(report, read=5, loaded=3, quarantined=2)
    assert quarantined(store) == [
        (
            6,
            "ts",
            "2020-13-01",
            "no such date '2020-13-01': the month has no such day (or no such month)",
        ),
        (8, "amount", "x", "expected a number, got 'x'"),
    ]
    assert loaded_lines(store) == [2, 3, 9]
    assert column(store, "channel")[:2] == [
        "shop, high street",
        "first line\nsecond line\nthird line",
    ]


def test_blank_lines_are_skipped_but_counted_as_lines(store: Store, tmp_path: Path) -> None:
    content = HEADER + GOOD + "\n\n" + "2,2020-01-02,x\n" + "\n" + "3,2020-01-03,7\n\n"
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_counts(report, read=3, loaded=2, quarantined=1)
    assert quarantined(store) == [(5, "amount", "x", "expected a number, got 'x'")]
    assert loaded_lines(store) == [2, 7]


def test_crlf_line_endings(store: Store, tmp_path: Path) -> None:
    content = (HEADER + GOOD + "2,2020-01-02,x\n" + "3,2020-01-03,7\n").replace("\n", "\r\n")
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_counts(report, read=3, loaded=2, quarantined=1)
    assert quarantined(store) == [(3, "amount", "x", "expected a number, got 'x'")]
    assert column(store, "amount") == [5.0, 7.0]


def test_too_many_and_too_few_fields(store: Store, tmp_path: Path) -> None:
    content = HEADER + GOOD + "2,2020-01-02\n" + "3,2020-01-03,7,8\n" + "4,2020-01-04,9\n"
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_counts(report, read=4, loaded=2, quarantined=2)
    assert quarantined(store) == [
        (3, None, None, "the record has 2 fields, the header has 3"),
        (4, None, None, "the record has 4 fields, the header has 3"),
    ]
    records = store.con.execute("SELECT record FROM quarantine ORDER BY line").fetchall()
    assert [r[0] for r in records] == ["2,2020-01-02", "3,2020-01-03,7,8"]
    assert report.reasons == {
        "record: the record has 2 fields, the header has 3": 1,
        "record: the record has 4 fields, the header has 3": 1,
    }


def test_trailing_empty_fields_are_tolerated(store: Store, tmp_path: Path) -> None:
    content = "customer_id,ts,amount,\n1,2020-01-01,5,\n2,2020-01-02,6,,,\n"
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_counts(report, read=2, loaded=2)
    assert column(store, "amount") == [5.0, 6.0]


def test_unclosed_quote_is_reported_at_its_line(store: Store, tmp_path: Path) -> None:
    content = HEADER + GOOD + '"2,2020-01-02,6\n' + "3,2020-01-03,7\n" + "4,2020-01-04,8\n"
    with pytest.raises(DataError, match=r"tx\.csv, line 3\b.*quote"):
        ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_nothing_written(store)


@pytest.mark.slow
def test_line_numbers_stay_exact_across_reading_batches(store: Store, tmp_path: Path) -> None:
    rows = 100_010  # more than one 100,000-row staging batch
    bad = {5, 100_003}  # data row indexes (0-based), i.e. lines 7 and 100,005
    body = "".join(f"{i},2020-01-01,{'x' if i in bad else 1}\n" for i in range(rows))
    report = ingest_transactions(store, write(tmp_path, "tx.csv", HEADER + body))
    check_counts(report, read=rows, loaded=rows - 2, quarantined=2)
    assert [q[0] for q in quarantined(store)] == [7, 100_005]


# -- empty files and header problems -------------------------------------------------
def test_empty_file(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "empty.csv", b"")
    with pytest.raises(SchemaError, match=r"empty\.csv: the file is empty \(no header line\)"):
        ingest_transactions(store, path)
    check_nothing_written(store)


def test_file_of_blank_lines(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "blank.csv", "\n\r\n\n")
    with pytest.raises(SchemaError, match=r"blank\.csv: the file has no header line"):
        ingest_transactions(store, path)
    check_nothing_written(store)


def test_header_only(store: Store, tmp_path: Path) -> None:
    report = ingest_transactions(store, write(tmp_path, "tx.csv", HEADER))
    check_counts(report, read=0, loaded=0)
    assert store.count("transactions") == 0
    assert store.count("quarantine") == 0


def test_missing_required_column(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", "customer_id,ts\n1,2020-01-01\n")
    with pytest.raises(
        SchemaError,
        match=r"tx\.csv, column 'amount': required column 'amount' of transactions is missing; "
        r"map one of the source's columns with --map amount=COLUMN",
    ):
        ingest_transactions(store, path)
    check_nothing_written(store)


def test_missing_required_column_lists_the_source_columns(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", "customer_id,ts\n1,2020-01-01\n")
    with pytest.raises(SchemaError) as caught:
        ingest_transactions(store, path)
    assert "customer_id, ts" in str(caught.value)
    assert "columns: none" not in str(caught.value)


def test_ambiguous_headers_are_a_schema_error(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path, "tx.csv", "customer_id,Order Date,OrderDate,amount\n1,2020-01-01,2020-01-02,5\n"
    )
    with pytest.raises(
        SchemaError,
        match=re.escape(
            "tx.csv: columns ['Order Date', 'OrderDate'] all look like 'ts'; "
            "map one explicitly (--map ts=COLUMN)"
        ),
    ):
        ingest_transactions(store, path)
    check_nothing_written(store)


def test_ambiguous_headers_in_a_dataframe(store: Store) -> None:
    frame = pd.DataFrame(
        {"customer_id": ["1"], "Date": ["2020-01-01"], "date": ["2020-01-02"], "amount": [5.0]}
    )
    with pytest.raises(
        SchemaError,
        match=r"duplicate column name \(columns 2 and 3\) "
        r"\('Date' and 'date' differ only in case\)",
    ):
        ingest_transactions(store, frame)
    check_nothing_written(store)


def test_ambiguous_headers_differing_only_in_case(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", "customer_id,Date,date,amount\n1,2020-01-01,2020-01-02,5\n")
    with pytest.raises(SchemaError, match=r"tx\.csv.*(all look like 'ts'|duplicate column name)"):
        ingest_transactions(store, path)
    check_nothing_written(store)


def test_ambiguous_headers_differing_only_in_case_in_parquet(store: Store, tmp_path: Path) -> None:
    table = pa.table(
        {"customer_id": ["1"], "Date": ["2020-01-01"], "date": ["2020-01-02"], "amount": [5.0]}
    )
    pq.write_table(table, tmp_path / "tx.parquet")
    with pytest.raises(
        SchemaError,
        match=r"tx\.parquet.*duplicate column name.*'Date' and 'date' differ only in case",
    ):
        ingest_transactions(store, tmp_path / "tx.parquet")
    check_nothing_written(store)


def test_two_different_date_synonyms_use_the_documented_priority(
    store: Store, tmp_path: Path
) -> None:
    # Not ambiguous by design: synonyms are tried in the order listed in mapping.py.
    content = "customer_id,order_date,invoice_date,amount\n1,2020-02-01,2020-01-01,5\n"
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_counts(report, read=1, loaded=1)
    assert report.columns["ts"] == "invoice_date"
    assert report.ignored_columns == ["order_date"]


def test_duplicate_column_name(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", "customer_id,ts,amount,amount\n1,2020-01-01,5,5\n")
    with pytest.raises(
        SchemaError,
        match=r"tx\.csv, line 1, column 'amount': duplicate column name \(columns 3 and 4\)",
    ):
        ingest_transactions(store, path)
    check_nothing_written(store)


def test_map_to_a_column_that_does_not_exist(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", HEADER + GOOD)
    with pytest.raises(
        SchemaError,
        match=r"tx\.csv, column 'Price', key 'ingest\.transactions\.columns\.amount': "
        r"mapped column 'Price' is not in the source \(columns: customer_id, ts, amount\)",
    ):
        ingest_transactions(store, path, mapping={"amount": "Price"})
    check_nothing_written(store)


def test_map_to_an_unknown_canonical_column(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", HEADER + GOOD)
    with pytest.raises(ConfigError, match=r"'revenue' is not a column of transactions"):
        ingest_transactions(store, path, mapping={"revenue": "amount"})
    check_nothing_written(store)


def test_file_not_found(store: Store, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        ingest_transactions(store, tmp_path / "nope.csv")
    check_nothing_written(store)


# -- dates in local formats --------------------------------------------------------------
@pytest.mark.parametrize(
    ("dates", "fmt", "expected"),
    [
        (
            ["13/01/2020", "25/12/2020", "01/02/2020"],
            "%d/%m/%Y",
            ["2020-01-13", "2020-12-25", "2020-02-01"],
        ),
        (
            ["01/13/2020", "12/25/2020", "01/02/2020"],
            "%m/%d/%Y",
            ["2020-01-13", "2020-12-25", "2020-01-02"],
        ),
        (
            ["13.01.2020", "01.02.2020", "31.12.2019"],
            "%d.%m.%Y",
            ["2020-01-13", "2020-02-01", "2019-12-31"],
        ),
    ],
    ids=["dd/mm/yyyy", "mm/dd/yyyy", "dd.mm.yyyy"],
)
def test_local_date_formats_are_detected(
    store: Store, tmp_path: Path, dates: list[str], fmt: str, expected: list[str]
) -> None:
    content = HEADER + "".join(f"{i},{d},5\n" for i, d in enumerate(dates))
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_counts(report, read=3, loaded=3)
    assert f"ts: date format '{fmt}' (detected)" in report.notes
    assert [str(ts.date()) for ts in column(store, "ts")] == expected


def test_undecidable_day_month_order_is_noted(store: Store, tmp_path: Path) -> None:
    content = HEADER + "1,01/02/2020,5\n2,03/04/2020,6\n"
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_counts(report, read=2, loaded=2)
    assert (
        "ts: dates fit both '%d/%m/%Y' and '%m/%d/%Y'; assumed '%d/%m/%Y' "
        "(set ingest.date_format to choose)"
    ) in report.notes


def test_detected_format_still_quarantines_a_bad_date(store: Store, tmp_path: Path) -> None:
    content = HEADER + "1,13/01/2020,5\n2,25/12/2020,6\n3,32/01/2020,7\n"
    report = ingest_transactions(store, write(tmp_path, "tx.csv", content))
    check_counts(report, read=3, loaded=2, quarantined=1)
    assert quarantined(store) == [
        (4, "ts", "32/01/2020", "expected a date like %d/%m/%Y, got '32/01/2020'")
    ]


# -- Parquet and DataFrames ----------------------------------------------------------
def test_parquet_with_null_customer_ids(store: Store, tmp_path: Path) -> None:
    table = pa.table(
        {
            "customer_id": pa.array(["1", None, "3", "4"]),
            "ts": pa.array([pd.Timestamp("2020-01-01")] * 4),
            "amount": pa.array([1.0, 2.0, math.nan, 4.0]),
        }
    )
    pq.write_table(table, tmp_path / "tx.parquet")
    report = ingest_transactions(store, tmp_path / "tx.parquet")
    check_counts(report, read=4, loaded=2, quarantined=2)
    # Parquet "lines" are 1-based row numbers.
    assert quarantined(store) == [
        (2, "customer_id", None, "missing customer_id"),
        (3, "amount", "nan", "expected a finite number, got 'nan'"),
    ]


def test_parquet_float_customer_ids_and_text_dates(store: Store, tmp_path: Path) -> None:
    table = pa.table(
        {
            "CustomerID": pa.array([17850.0, 13047.0, None]),
            "InvoiceDate": pa.array(["2020-01-01", "2020-13-01", "2020-01-03"]),
            "Revenue": pa.array([1, 2, 3], pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "tx.parquet")
    report = ingest_transactions(store, tmp_path / "tx.parquet")
    check_counts(report, read=3, loaded=1, quarantined=2)
    assert column(store, "customer_id") == ["17850"]
    assert quarantined(store) == [
        (
            2,
            "InvoiceDate",
            "2020-13-01",
            "no such date '2020-13-01': the month has no such day (or no such month)",
        ),
        (3, "CustomerID", None, "missing customer_id (column 'CustomerID')"),
    ]


def test_not_a_parquet_file(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "tx.parquet", "customer_id,ts,amount\n")
    with pytest.raises(DataError, match=r"tx\.parquet: not a readable Parquet file"):
        ingest_transactions(store, path)
    check_nothing_written(store)


def test_pandas_nan_amounts_and_nat_dates(store: Store) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["1", "2", "3", "4"],
            "ts": pd.to_datetime(["2020-01-01", "2020-01-02", None, "2020-01-04"]),
            "amount": [1.0, math.nan, 3.0, -4.0],
        },
        index=[10, 20, 30, 40],  # a filtered frame: lines are positions, not labels
    )
    report = ingest_transactions(store, frame)
    check_counts(report, read=4, loaded=2, quarantined=2)
    assert report.source == "<pandas.DataFrame>"
    assert quarantined(store) == [
        (2, "amount", None, "missing amount"),
        (3, "ts", None, "missing ts"),
    ]
    assert column(store, "amount") == [1.0, -4.0]


def test_pandas_object_column_with_mixed_types(store: Store) -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["1", "2", "3"],
            "ts": ["2020-01-01", "2020-01-02", "2020-01-03"],
            "amount": pd.Series(["5", 6.5, "n/a"], dtype=object),
        }
    )
    report = ingest_transactions(store, frame)
    check_counts(report, read=3, loaded=2, quarantined=1)
    assert quarantined(store) == [(3, "amount", "n/a", "expected a number, got 'n/a'")]
    assert column(store, "amount") == [5.0, 6.5]


def test_polars_dataframe(store: Store) -> None:
    frame = pl.DataFrame(
        {
            "customer_id": ["1", None, "3", "4"],
            "ts": ["2020-01-01", "2020-01-02", "2020-01-03", "x"],
            "amount": [1.0, 2.0, float("nan"), 4.0],
        }
    )
    report = ingest_transactions(store, frame)
    check_counts(report, read=4, loaded=1, quarantined=3)
    assert report.source == "<polars.DataFrame>"
    assert quarantined(store) == [
        (2, "customer_id", None, "missing customer_id"),
        (3, "amount", "nan", "expected a finite number, got 'nan'"),
        (4, "ts", "x", "expected a date (YYYY-MM-DD), got 'x'"),
    ]


def test_polars_lazyframe(store: Store) -> None:
    frame = pl.DataFrame(
        {"customer_id": ["1", "2"], "ts": ["2020-01-01", "2020-01-02"], "amount": [1.0, 2.0]}
    ).lazy()
    try:
        report = ingest_transactions(store, frame)
    except DataError as exc:
        assert "LazyFrame" in str(exc)
        check_nothing_written(store)
    else:
        check_counts(report, read=2, loaded=2)


def test_unsupported_source_object(store: Store) -> None:
    with pytest.raises(DataError, match="cannot ingest a dict"):
        ingest_transactions(store, {"customer_id": ["1"]})
    check_nothing_written(store)


# -- customers -------------------------------------------------------------------------
CUSTOMERS = "customer_id,email,signup_date,tier\n"


def test_customer_appearing_again_with_different_values(store: Store, tmp_path: Path) -> None:
    content = (
        CUSTOMERS
        + "1,a@x.com,2020-01-01,gold\n"
        + "2,b@x.com,2020-01-02,\n"
        + "1,other@x.com,2020-01-01,gold\n"  # conflicting: quarantined
        + "2,b@x.com,2020-01-02,\n"  # identical: a duplicate
    )
    report = ingest_customers(store, write(tmp_path, "customers.csv", content))
    check_counts(report, read=4, loaded=2, quarantined=1, duplicates=1)
    assert quarantined(store) == [
        (
            4,
            "customer_id",
            "1",
            "customer_id '1' appears again with different values (first on line 2)",
        )
    ]
    assert column(store, "email", "customers") == ["a@x.com", "b@x.com"]


def test_customer_file_reloaded_with_a_changed_email(store: Store, tmp_path: Path) -> None:
    first = write(
        tmp_path, "c1.csv", CUSTOMERS + "1,a@x.com,2020-01-01,gold\n2,b@x.com,2020-01-02,\n"
    )
    check_counts(ingest_customers(store, first), read=2, loaded=2)
    second = write(
        tmp_path,
        "c2.csv",
        CUSTOMERS + "1,new@x.com,2020-01-01,gold\n2,b@x.com,2020-01-02,\n3,c@x.com,2020-01-03,\n",
    )
    report = ingest_customers(store, second)
    check_counts(report, read=3, loaded=2, duplicates=1)
    assert report.updated == 1
    emails = store.con.execute("SELECT customer_id, email FROM customers ORDER BY 1").fetchall()
    assert emails == [("1", "new@x.com"), ("2", "b@x.com"), ("3", "c@x.com")]


def test_customer_extra_columns_kept_as_attributes(store: Store, tmp_path: Path) -> None:
    content = "customer_id,email,tier,Home Store\n1,a@x.com,gold,Leeds\n2,b@x.com,,\n"
    report = ingest_customers(store, write(tmp_path, "customers.csv", content))
    check_counts(report, read=2, loaded=2)
    assert report.ignored_columns == ["tier", "Home Store"]
    attributes = [json.loads(a) for a in column(store, "attributes", "customers")]
    assert attributes == [
        {"tier": "gold", "Home Store": "Leeds"},
        {"tier": None, "Home Store": None},
    ]


def test_customer_ids_missing_or_written_as_floats(store: Store, tmp_path: Path) -> None:
    content = "customer_id,email\n,a@x.com\n7.0,b@x.com\n   ,c@x.com\n"
    report = ingest_customers(store, write(tmp_path, "customers.csv", content))
    check_counts(report, read=3, loaded=1, quarantined=2)
    assert quarantined(store) == [
        (2, "customer_id", None, "missing customer_id"),
        (4, "customer_id", None, "missing customer_id"),
    ]
    assert column(store, "customer_id", "customers") == ["7"]


def test_customer_file_without_customer_id(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "customers.csv", "email,phone\na@x.com,123\n")
    with pytest.raises(
        SchemaError,
        match=r"customers\.csv, column 'customer_id': required column 'customer_id' of "
        r"customers is missing",
    ):
        ingest_customers(store, path)
    check_nothing_written(store)
