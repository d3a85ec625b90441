"""Identity resolution: one customer across channels, and tables read with unified ids."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from cvm import Store
from cvm.config import IdentitySettings, settings_from_dict
from cvm.errors import ConfigError, NotFoundError, StorageError, ValidationError
from cvm.store import IdentityReport, resolve_identities, unified
from cvm.store.identity import normalize_identifiers
from cvm.store.schema import INPUT_COLUMNS

UK = IdentitySettings(default_country_code="44")
_batches = itertools.count()


def put(store: Store, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert canonical rows as a committed load would (with their ingest_log row)."""
    batch = f"test-{table}-{next(_batches)}"
    if table == "customers":
        columns = ["customer_id", "acquired_at", "email", "phone", "loyalty_card"]
        extra = ["row_key", "batch_id", "line"]
    else:
        columns = list(INPUT_COLUMNS[table]) if table in INPUT_COLUMNS else []
        if table == "transactions":
            columns = ["customer_id", "ts", "amount"]
        extra = ["row_key", "occurrence", "batch_id", "line"]
    names = ", ".join(f'"{c}"' for c in columns + extra)
    marks = ", ".join("?" for _ in columns + extra)
    with store.transaction():
        for line, row in enumerate(rows, start=1):
            values = [row.get(c) for c in columns]
            tail = [line, batch, line] if table == "customers" else [line, 1, batch, line]
            store.con.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", values + tail)
        now = dt.datetime.now()
        store.con.execute(
            "INSERT INTO ingest_log VALUES (?, ?, 'test', 'hash', ?, ?, 0, 0, 0, ?, ?, 'test')",
            [batch, table, len(rows), len(rows), now, now],
        )


def mapping(store: Store) -> dict[str, tuple[str, str]]:
    rows = store.con.execute("SELECT customer_id, unified_id, rule FROM customer_map").fetchall()
    return {customer: (unified_id, rule) for customer, unified_id, rule in rows}


def conflicts(store: Store) -> list[tuple[str, str, list[str], str]]:
    rows = store.con.execute(
        "SELECT identifier_kind, identifier, customer_ids, reason FROM identity_conflicts "
        "ORDER BY identifier_kind, identifier"
    ).fetchall()
    return [(k, i, list(c), r) for k, i, c, r in rows]


def event(customer: str, day: int = 1) -> dict[str, Any]:
    return {"customer_id": customer, "ts": dt.datetime(2024, 1, day), "kind": "call"}


# -- normalisation -------------------------------------------------------------------
def test_phone_formats_normalise_to_one_e164_number() -> None:
    formats = ["020 7946 0018", "+44 20 7946 0018", "0044-20-7946-0018", "+44 (0)20 7946 0018"]
    assert set(normalize_identifiers("phone", formats, UK)) == {"+442079460018"}
    assert normalize_identifiers("phone", ["(020) 7946.0018", "20/7946 0018"], UK) == [
        "+442079460018",
        "+442079460018",
    ]


def test_unusable_phones_are_none() -> None:
    values = ["000000", "12", "call me", "+44 20 7946 0018 ext 5", "+0123456789", "", None]
    assert normalize_identifiers("phone", values, UK) == [None] * len(values)
    # without a country code a national number cannot be placed; an international can
    assert normalize_identifiers("phone", ["020 7946 0018", "+44 20 7946 0018"]) == [
        None,
        "+442079460018",
    ]


def test_emails_cards_and_missing_markers() -> None:
    assert normalize_identifiers("email", [" Ann.Lee@Example.COM", "ann+shop@example.com"]) == [
        "ann.lee@example.com",
        "ann+shop@example.com",
    ]
    tags = IdentitySettings(strip_email_tags=True)
    assert normalize_identifiers("email", ["Ann+Shop@example.com"], tags) == ["ann@example.com"]
    assert normalize_identifiers("email", ["no email", "a@b", "N/A", "unknown"]) == [None] * 4
    assert normalize_identifiers("loyalty_card", ["lc 1234-5678", "--"]) == ["LC12345678", None]
    assert normalize_identifiers("external_id", ["  X-1 ", "x-1"]) == ["X-1", "x-1"]
    with pytest.raises(ValidationError, match="unknown identifier kind"):
        normalize_identifiers("fax", ["1"])


def test_identity_settings_are_validated() -> None:
    settings = settings_from_dict({"identity": {"default_country_code": "44"}})
    assert settings.identity.default_country_code == "44"
    with pytest.raises(ConfigError, match=r"identity\.default_country_code"):
        settings_from_dict({"identity": {"default_country_code": "+44"}})
    with pytest.raises(ConfigError, match=r"identity\.strong_identifiers"):
        settings_from_dict({"identity": {"strong_identifiers": ["shoe_size"]}})


# -- resolution ----------------------------------------------------------------------
def test_transitive_merge_across_three_sources(store: Store) -> None:
    put(store, "customers", [{"customer_id": "C1", "email": "Ann@Example.com"}])
    put(
        store,
        "identities",
        [
            # the web shop knows Ann by her email (any case) and her mobile
            {"source": "web", "source_id": "W-77", "email": " ann@example.COM ",
             "phone": "07700 900123"},
            # the call centre only by the mobile, written another way
            {"source": "callcentre", "source_id": "CC-000123", "phone": "+44 7700 900123"},
            # the loyalty scheme names the web account explicitly
            {"source": "loyalty", "source_id": "L-5", "customer_id": "W-77",
             "loyalty_card": "9999 0001"},
        ],
    )  # fmt: skip
    put(store, "interactions", [event("CC-000123"), event("C1", 2)])
    put(store, "transactions", [{"customer_id": "L-5", "ts": dt.date(2024, 1, 3), "amount": 9.0}])
    report = resolve_identities(store, UK)
    assert mapping(store) == {
        "C1": ("C1", "self"),
        "W-77": ("C1", "email"),
        "CC-000123": ("C1", "phone"),
        "L-5": ("C1", "identity record"),
    }
    assert (report.ids, report.customers, report.merged) == (4, 1, 3)
    assert report.links == {"self": 1, "identity record": 1, "email": 1, "phone": 1}
    assert report.conflicts == 0 and conflicts(store) == []


def test_without_the_country_code_the_national_number_is_reported(store: Store) -> None:
    put(store, "customers", [{"customer_id": "C1", "phone": "+44 20 7946 0018"}])
    put(store, "identities", [{"source": "pos", "source_id": "P1", "phone": "020 7946 0018"}])
    report = resolve_identities(store)  # no default_country_code
    assert mapping(store)["P1"] == ("P1", "self")
    assert report.unusable == {"phone": 1}
    assert conflicts(store) == [
        ("phone", "020 7946 0018", ["P1"],
         "cannot be normalised to an E.164 phone number: not used"),
    ]  # fmt: skip
    resolve_identities(store, UK)
    assert mapping(store)["P1"] == ("C1", "phone")
    assert conflicts(store) == []


def test_every_phone_format_joins_one_customer(store: Store) -> None:
    put(store, "customers", [{"customer_id": "C9", "phone": "020 7946 0018"}])
    put(
        store,
        "identities",
        [
            {"source": "app", "source_id": "A1", "phone": "+44 20 7946 0018"},
            {"source": "shop", "source_id": "S1", "phone": "0044-20-7946-0018"},
        ],
    )
    resolve_identities(store, UK)
    assert {u for u, _ in mapping(store).values()} == {"C9"}


def test_identifier_claimed_by_too_many_customers_is_not_used(store: Store) -> None:
    switchboard = "+44 20 7946 0000"
    put(
        store,
        "customers",
        [{"customer_id": f"K{i}", "phone": switchboard} for i in range(4)]
        + [{"customer_id": "M1", "phone": "+44 20 7946 0001"},
           {"customer_id": "M2", "phone": "020 7946 0001"}],
    )  # fmt: skip
    report = resolve_identities(store, UK)
    assert {c: u for c, (u, _) in mapping(store).items() if c.startswith("K")} == {
        f"K{i}": f"K{i}" for i in range(4)
    }
    assert mapping(store)["M2"] == ("M1", "phone")
    assert report.shared_identifiers == 1
    assert conflicts(store) == [
        ("phone", "+442079460000", ["K0", "K1", "K2", "K3"],
         "claimed by 4 customers in source customers (more than 3): not used to merge"),
    ]  # fmt: skip
    # with a higher limit the four are one customer
    resolve_identities(store, IdentitySettings(default_country_code="44",
                                               max_customers_per_identifier=4))  # fmt: skip
    assert {u for c, (u, _) in mapping(store).items() if c.startswith("K")} == {"K0"}
    assert conflicts(store) == []


def test_one_persons_records_count_once_against_the_limit(store: Store) -> None:
    # four records of one person in one source, tied together by customer_id, and the
    # same email in four other sources: not a shared identifier
    put(
        store,
        "identities",
        [{"source": "web", "source_id": f"W{i}", "customer_id": "C1", "email": "a@x.org"}
         for i in range(4)]
        + [{"source": s, "source_id": f"{s}-1", "email": "A@x.org"}
           for s in ("pos", "app", "cc", "mail")],
    )  # fmt: skip
    put(store, "customers", [{"customer_id": "C1"}])
    report = resolve_identities(store)
    assert {u for u, _ in mapping(store).values()} == {"C1"}
    assert report.shared_identifiers == 0


def test_different_loyalty_cards_merge_and_are_reported(store: Store) -> None:
    put(
        store,
        "customers",
        [{"customer_id": "C1", "email": "bo@x.org", "loyalty_card": "111"},
         {"customer_id": "C2", "email": "BO@x.org", "loyalty_card": "222"}],
    )  # fmt: skip
    report = resolve_identities(store)
    assert mapping(store)["C2"] == ("C1", "email")
    assert report.strong_conflicts == 1
    assert conflicts(store) == [
        ("loyalty_card", "111 | 222", ["C1", "C2"],
         "one customer (C1) holds 2 different values: merged by other links"),
    ]  # fmt: skip
    resolve_identities(store, IdentitySettings(strong_identifiers=[]))
    assert conflicts(store) == []


def test_unified_id_prefers_the_customers_table_then_the_smallest_id(store: Store) -> None:
    put(
        store,
        "identities",
        [{"source": "web", "source_id": "A-web", "email": "c@x.org"},
         {"source": "pos", "source_id": "Z-pos", "email": "c@x.org"},
         {"source": "app", "source_id": "B-app", "email": "d@x.org"},
         {"source": "pos", "source_id": "A-pos", "email": "d@x.org"}],
    )  # fmt: skip
    put(store, "customers", [{"customer_id": "M-crm", "email": "c@x.org"}])
    resolve_identities(store)
    first = mapping(store)
    assert {c: u for c, (u, _) in first.items()} == {
        "A-web": "M-crm",
        "Z-pos": "M-crm",
        "M-crm": "M-crm",
        "B-app": "A-pos",
        "A-pos": "A-pos",
    }
    # the same data loaded in another order resolves identically
    with Store(":memory:") as other:
        put(other, "customers", [{"customer_id": "M-crm", "email": "c@x.org"}])
        rows = store.con.execute(
            "SELECT source, source_id, email FROM identities ORDER BY source_id DESC"
        ).fetchall()
        put(other, "identities", [dict(zip(("source", "source_id", "email"), r, strict=True))
                                  for r in rows])  # fmt: skip
        resolve_identities(other)
        assert mapping(other) == first


def test_re_resolution_replaces_the_map(store: Store) -> None:
    put(store, "customers", [{"customer_id": "C1", "email": "e@x.org"}])
    put(store, "identities", [{"source": "web", "source_id": "W1", "email": "e@x.org"}])
    resolve_identities(store)
    first_time = store.con.execute("SELECT max(resolved_at) FROM customer_map").fetchone()
    assert mapping(store)["W1"] == ("C1", "email")
    # the customer changes their email; a new id appears
    store.con.execute("UPDATE customers SET email = 'new@x.org'")
    put(store, "interactions", [event("X9")])
    report = resolve_identities(store)
    assert mapping(store) == {"C1": ("C1", "self"), "W1": ("W1", "self"), "X9": ("X9", "self")}
    assert store.count("customer_map") == report.ids == 3
    second_time = store.con.execute("SELECT min(resolved_at) FROM customer_map").fetchone()
    assert first_time is not None and second_time is not None
    assert second_time[0] >= first_time[0]


def test_every_known_id_is_mapped(store: Store) -> None:
    put(store, "transactions", [{"customer_id": "T1", "ts": dt.date(2024, 1, 1), "amount": 1}])
    put(store, "surveys", [{"customer_id": "S1", "ts": dt.datetime(2024, 1, 1), "nps": 9}])
    put(store, "actions", [{"customer_id": "A1", "action": "call", "ts": dt.datetime(2024, 1, 1),
                            "group": "treatment"}])  # fmt: skip
    put(store, "referrals", [{"referrer_id": "R1", "referred_id": "R2"}])
    put(store, "interactions", [event("I1")])
    put(store, "identities", [{"source": "web", "source_id": "W1", "customer_id": "K1"}])
    report = resolve_identities(store)
    assert set(mapping(store)) == {"T1", "S1", "A1", "R1", "R2", "I1", "W1", "K1"}
    assert mapping(store)["W1"] == ("K1", "identity record")
    assert report.links == {"self": 7, "identity record": 1}


def test_source_id_used_by_two_sources_is_reported(store: Store) -> None:
    put(
        store,
        "identities",
        [{"source": "web", "source_id": "123", "customer_id": "C1"},
         {"source": "pos", "source_id": "123", "customer_id": "C2"}],
    )  # fmt: skip
    report = resolve_identities(store)
    assert report.source_id_clashes == 1
    assert conflicts(store) == [
        ("source_id", "123", ["123", "C1", "C2"],
         "used by the sources pos, web: their records are one id"),
    ]  # fmt: skip
    assert {u for u, _ in mapping(store).values()} == {"123"}


def test_empty_store_resolves_to_nothing(store: Store) -> None:
    report = resolve_identities(store)
    assert report == IdentityReport(ids=0, customers=0, merged=0, resolved_at=report.resolved_at)
    assert store.count("customer_map") == 0


def test_a_failed_resolution_keeps_the_previous_one(store: Store) -> None:
    put(store, "customers", [{"customer_id": "C1", "email": "e@x.org"}])
    resolve_identities(store)
    store.close()
    with Store(store.path, read_only=True) as reader:
        with pytest.raises(StorageError, match="identity resolution failed"):
            resolve_identities(reader)
    with Store(store.path) as again:
        assert mapping(again) == {"C1": ("C1", "self")}


# -- unified tables ------------------------------------------------------------------
def test_unified_interactions_use_the_unified_ids(store: Store) -> None:
    put(store, "customers", [{"customer_id": "C1", "phone": "+44 7700 900123"}])
    put(store, "identities", [{"source": "cc", "source_id": "CC-000123",
                               "phone": "07700 900123"}])  # fmt: skip
    put(store, "interactions", [event("CC-000123", 1), event("C1", 2), event("NEW", 3)])
    resolve_identities(store, UK)
    put(store, "interactions", [event("LATE", 4)])  # loaded after the resolution
    table = unified(store, "interactions")
    assert list(table.columns) == list(store.table("interactions").columns)
    frame = store.to_arrow(table.order_by("ts")).to_pandas()
    assert frame["customer_id"].tolist() == ["C1", "C1", "NEW", "LATE"]
    assert frame["kind"].tolist() == ["call"] * 4


def test_unified_referrals_and_identities(store: Store) -> None:
    put(store, "customers", [{"customer_id": "C1", "email": "e@x.org"}])
    put(
        store,
        "identities",
        [{"source": "web", "source_id": "W1", "email": "E@x.org"},
         {"source": "app", "source_id": "P1", "customer_id": "W1"}],
    )  # fmt: skip
    put(store, "referrals", [{"referrer_id": "P1", "referred_id": "Q"}])
    resolve_identities(store)
    refs = store.to_arrow(unified(store, "referrals")).to_pylist()
    assert [(r["referrer_id"], r["referred_id"]) for r in refs] == [("C1", "Q")]
    ids = store.to_arrow(unified(store, "identities").order_by("source_id")).to_pylist()
    assert [(r["source_id"], r["customer_id"]) for r in ids] == [("P1", "C1"), ("W1", "C1")]


def test_unified_customers_keep_one_row_per_customer(store: Store) -> None:
    put(
        store,
        "customers",
        [{"customer_id": "B", "email": "x@y.org", "acquired_at": dt.datetime(2020, 5, 1)},
         {"customer_id": "A", "email": "X@y.org", "acquired_at": dt.datetime(2021, 1, 1),
          "loyalty_card": "L1"},
         {"customer_id": "Z", "acquired_at": dt.datetime(2019, 1, 1)}],
    )  # fmt: skip
    resolve_identities(store)
    rows = store.to_arrow(unified(store, "customers").order_by("customer_id")).to_pylist()
    assert [(r["customer_id"], r["acquired_at"], r["loyalty_card"]) for r in rows] == [
        ("A", dt.datetime(2020, 5, 1), "L1"),  # A's own row, B's earlier acquisition
        ("Z", dt.datetime(2019, 1, 1), None),
    ]


def test_unified_of_a_table_without_customer_ids(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no table with customer ids named 'runs'"):
        unified(store, "runs")


def test_two_links_between_two_ids_keep_the_preferred_rule(store: Store) -> None:
    put(store, "customers", [{"customer_id": "C1", "email": "f@x.org", "phone": "+1 415 555 0100"}])
    put(store, "identities", [{"source": "app", "source_id": "P1", "email": "f@x.org",
                               "phone": "+14155550100"}])  # fmt: skip
    report = resolve_identities(store)
    assert mapping(store)["P1"] == ("C1", "email")
    assert report.links == {"self": 1, "email": 1}


def test_unified_before_any_resolution_keeps_the_ids(store: Store) -> None:
    put(store, "referrals", [{"referrer_id": "A", "referred_id": "B"}])
    rows = store.to_arrow(unified(store, "referrals")).to_pylist()
    assert [(r["referrer_id"], r["referred_id"]) for r in rows] == [("A", "B")]


def reference_resolution(
    customers: list[dict[str, Any]], identities: list[dict[str, Any]], limit: int
) -> dict[str, str]:
    """Union-find over the same rules, record by record, as a check of the set-based code."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    def union(x: str, y: str) -> None:
        parent[find(x)] = find(y)

    records = [("customers", c["customer_id"], c) for c in customers] + [
        (i["source"], i["source_id"], i) for i in identities
    ]
    for _, node, _ in records:
        find(node)
    for identity in identities:
        if identity.get("customer_id"):
            union(identity["source_id"], identity["customer_id"])
    first = {node: find(node) for node in parent}  # groups after the identity links
    kinds = ("email", "phone", "loyalty_card")
    normal = {
        kind: normalize_identifiers(kind, [row.get(kind) for _, _, row in records], UK)
        for kind in kinds
    }
    claims: dict[tuple[str, str], dict[str, set[str]]] = {}
    nodes: dict[tuple[str, str], set[str]] = {}
    for position, (source, node, _) in enumerate(records):
        for kind in kinds:
            value = normal[kind][position]
            if value is not None:
                claims.setdefault((kind, value), {}).setdefault(source, set()).add(first[node])
                nodes.setdefault((kind, value), set()).add(node)
    for key, per_source in claims.items():
        if max(len(groups) for groups in per_source.values()) <= limit:
            members = sorted(nodes[key])
            for other in members[1:]:
                union(members[0], other)
    components: dict[str, list[str]] = {}
    for node in parent:
        components.setdefault(find(node), []).append(node)
    listed = {c["customer_id"] for c in customers}
    result = {}
    for members in components.values():
        in_customers = sorted(m for m in members if m in listed)
        chosen = in_customers[0] if in_customers else min(members)
        result.update(dict.fromkeys(members, chosen))
    return result


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_records_match_a_record_by_record_union_find(store: Store, seed: int) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    emails = [f"p{i}@x.org" for i in range(40)] + ["n/a"]
    # a switchboard number many records share, and a placeholder
    phones = [f"020 7946 {i:04d}" for i in range(30)] + ["000000"] + ["+44 20 7946 0000"] * 10
    cards = [f"LC-{i}" for i in range(20)]

    def pick(pool: list[str], p: float) -> str | None:
        return pool[int(rng.integers(len(pool)))] if rng.random() < p else None

    customers = [
        {"customer_id": f"C{i:03d}", "email": pick(emails, 0.7), "phone": pick(phones, 0.5),
         "loyalty_card": pick(cards, 0.3)}
        for i in range(60)
    ]  # fmt: skip
    identities = [
        {"source": ["web", "pos", "cc"][int(rng.integers(3))], "source_id": f"S{i:03d}",
         "customer_id": f"C{int(rng.integers(60)):03d}" if rng.random() < 0.2 else None,
         "email": pick(emails, 0.5), "phone": pick(phones, 0.5),
         "loyalty_card": pick(cards, 0.2)}
        for i in range(120)
    ]  # fmt: skip
    put(store, "customers", customers)
    put(store, "identities", identities)
    report = resolve_identities(store, UK)
    expected = reference_resolution(customers, identities, limit=3)
    assert {c: u for c, (u, _) in mapping(store).items()} == expected
    assert report.customers == len(set(expected.values()))
    assert report.shared_identifiers > 0  # the pools are small enough to trip the limit
