"""Rows naming customers the store does not know are loaded, counted and reported.

A customer id is known when it is in customers.customer_id, transactions.customer_id,
identities.customer_id or identities.source_id.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cvm import Store
from cvm.ingest import REFERENCING_TABLES, IngestReport, ingest


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def known_customers(store: Store, tmp_path: Path) -> None:
    """K1 bought, K2 is a customer record, K3 and source id W4 are in identities."""
    ingest(
        store,
        write(tmp_path, "t.csv", "customer_id,ts,amount\nK1,2021-01-01,5\n"),
        table="transactions",
    )
    ingest(store, write(tmp_path, "c.csv", "customer_id,email\nK2,k2@x.com\n"), table="customers")
    ingest(
        store,
        write(
            tmp_path, "i.csv", "source,source_id,customer_id,email\nweb,W4,,w4@x.com\ncrm,X,K3,\n"
        ),
        table="identities",
    )


def unknown_note(report: IngestReport) -> str:
    [note] = [n for n in report.notes if "not in the store" in n]
    return note


def test_the_tables_with_referential_checks() -> None:
    assert REFERENCING_TABLES == ("interactions", "surveys", "referrals", "actions")


def test_interactions_for_unknown_customers_are_loaded_and_counted(
    store: Store, tmp_path: Path
) -> None:
    known_customers(store, tmp_path)
    content = (
        "customer_id,ts,kind\n"
        "K1,2021-01-01,call\n"
        "K2,2021-01-01,call\n"
        "K3,2021-01-01,call\n"
        "W4,2021-01-01,call\n"
        "X1,2021-01-01,call\n"
        "X2,2021-01-01,call\n"
        "X1,2021-01-02,email\n"
    )
    report = ingest(store, write(tmp_path, "int.csv", content), table="interactions")
    assert (report.read, report.loaded, report.unknown_customers) == (7, 7, 3)
    assert report.reconciles
    assert unknown_note(report) == (
        "3 rows name 2 customer ids not in the store (customers, transactions or identities), "
        "e.g. 'X1', 'X2'; the rows are loaded and count once those customers are loaded"
    )
    assert store.count("interactions") == 7
    assert report.to_dict()["unknown_customers"] == 3


def test_at_most_five_example_ids_in_source_order(store: Store, tmp_path: Path) -> None:
    rows = "".join(f"U{n},2021-01-01,9\n" for n in (7, 6, 5, 4, 3, 2, 1))
    report = ingest(store, write(tmp_path, "s.csv", "customer_id,ts,nps\n" + rows), table="surveys")
    assert report.unknown_customers == 7
    note = unknown_note(report)
    assert "7 rows name 7 customer ids" in note
    assert "e.g. 'U7', 'U6', 'U5', 'U4', 'U3';" in note
    assert "'U2'" not in note


def test_all_known_means_no_count_and_no_note(store: Store, tmp_path: Path) -> None:
    known_customers(store, tmp_path)
    content = "customer_id,action,ts,group\nK1,mail,2021-01-01,control\nW4,mail,2021-01-01,test\n"
    report = ingest(store, write(tmp_path, "a.csv", content), table="actions")
    assert (report.loaded, report.unknown_customers) == (2, 0)
    assert not [n for n in report.notes if "not in the store" in n]


def test_customers_loaded_later_are_known_to_later_loads(store: Store, tmp_path: Path) -> None:
    content = "customer_id,ts,kind\nN1,2021-01-01,call\n"
    first = ingest(store, write(tmp_path, "a.csv", content), table="interactions")
    assert first.unknown_customers == 1
    ingest(store, write(tmp_path, "c.csv", "customer_id\nN1\n"), table="customers")
    more = write(tmp_path, "b.csv", content + "N1,2021-01-02,call\nN2,2021-01-02,call\n")
    report = ingest(store, more, table="interactions")
    # Only the batch's own rows count: the duplicate is not re-examined, N1 is now known.
    assert (report.loaded, report.duplicates, report.unknown_customers) == (2, 1, 1)
    assert "e.g. 'N2'" in unknown_note(report)


def test_referrals_check_both_sides_and_note_self_referrals(store: Store, tmp_path: Path) -> None:
    known_customers(store, tmp_path)
    content = (
        "referrer_id,referred_id,ts\n"
        "K1,K2,2021-01-01\n"  # both known
        "K1,N1,2021-01-02\n"  # the referred customer is unknown
        "N2,K3,2021-01-03\n"  # the referrer is unknown
        "N3,N3,2021-01-04\n"  # unknown and a self-referral: one row
        "K2,K2,\n"  # a self-referral of a known customer
    )
    report = ingest(store, write(tmp_path, "r.csv", content), table="referrals")
    assert (report.read, report.loaded, report.unknown_customers) == (5, 5, 3)
    assert "3 rows name 3 customer ids" in unknown_note(report)
    assert "e.g. 'N1', 'N2', 'N3'" in unknown_note(report)
    assert (
        "2 self-referrals (referrer_id = referred_id; line 5, 6) loaded; influence value "
        "ignores them"
    ) in report.notes
    assert store.count("referrals") == 5


def test_no_self_referral_note_without_self_referrals(store: Store, tmp_path: Path) -> None:
    report = ingest(store, write(tmp_path, "r.csv", "referrer,referred\nA,B\n"), table="referrals")
    assert not [n for n in report.notes if "self-referral" in n]
    assert report.unknown_customers == 1


@pytest.mark.parametrize("table", ["transactions", "customers", "identities"])
def test_tables_that_define_customers_are_not_checked(
    store: Store, tmp_path: Path, table: str
) -> None:
    content = {
        "transactions": "customer_id,ts,amount\nZ1,2021-01-01,5\n",
        "customers": "customer_id\nZ1\n",
        "identities": "source,source_id,external_id\nweb,w1,Z9\n",
    }[table]
    report = ingest(store, write(tmp_path, "x.csv", content), table=table)
    assert report.loaded == 1 and report.unknown_customers == 0
    assert not [n for n in report.notes if "not in the store" in n]


def test_already_ingested_reports_no_unknown_customers(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "customer_id,ts\nQ1,2021-01-01\n")
    assert ingest(store, path, table="surveys").unknown_customers == 1
    again = ingest(store, path, table="surveys")
    assert again.already_ingested and again.unknown_customers == 0
