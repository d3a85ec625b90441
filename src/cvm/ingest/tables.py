"""The input tables: how each one's valid rows are written, and what is checked after.

Two ways of loading:

* **events** (transactions, interactions, surveys, referrals, identities, actions) are
  appended. Each row gets a content key (``row_key``, a hash of its canonical columns)
  and its ``occurrence`` among identical rows of the source; a row whose key and
  occurrence the store already holds (with the same values) is a duplicate, which
  makes loading the same or overlapping rows again idempotent. Identical rows within a
  source are distinct events (two calls, two purchases) and are kept unless
  ``ingest.exact_duplicates = "skip"``; for referrals and identities, which state
  facts, a repeated identical row is always a duplicate.
* **customers** are upserted by ``customer_id``.

After a load of a table that names customers (interactions, surveys, referrals,
actions), the rows of the batch whose customer is not known to the store are counted
(see :func:`reference_check`); they stay loaded, since customers may be loaded later.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from cvm.ingest.mapping import IDENTITY_KEYS, TABLE_FIELDS, Field
from cvm.ingest.sources import StagedSource
from cvm.ingest.validate import literal, quote

__all__ = [
    "KNOWN_CUSTOMER_SOURCES",
    "TABLES",
    "TableSpec",
    "load_customers",
    "load_events",
    "reference_check",
]


@dataclass(frozen=True)
class TableSpec:
    """How one input table is loaded.

    Attributes
    ----------
    name
        The store table.
    fields
        Its canonical columns (:mod:`cvm.ingest.mapping`).
    one_of
        Columns of which every row needs at least one value.
    repeats
        Whether identical rows within one source are distinct events (kept unless
        ``ingest.exact_duplicates = "skip"``); when False they are always duplicates.
    customer_columns
        Columns holding customer ids that are checked against the known customers.
    upsert
        Customers: rows replace the stored record of the same ``customer_id``.
    """

    name: str
    fields: tuple[Field, ...]
    one_of: tuple[str, ...] = ()
    repeats: bool = True
    customer_columns: tuple[str, ...] = ()
    upsert: bool = False


#: Every input table cvm ingests, by name.
TABLES: dict[str, TableSpec] = {
    "transactions": TableSpec("transactions", TABLE_FIELDS["transactions"]),
    "customers": TableSpec("customers", TABLE_FIELDS["customers"], upsert=True),
    "interactions": TableSpec(
        "interactions", TABLE_FIELDS["interactions"], customer_columns=("customer_id",)
    ),
    "surveys": TableSpec("surveys", TABLE_FIELDS["surveys"], customer_columns=("customer_id",)),
    "referrals": TableSpec(
        "referrals",
        TABLE_FIELDS["referrals"],
        repeats=False,
        customer_columns=("referrer_id", "referred_id"),
    ),
    "identities": TableSpec(
        "identities", TABLE_FIELDS["identities"], one_of=IDENTITY_KEYS, repeats=False
    ),
    "actions": TableSpec("actions", TABLE_FIELDS["actions"], customer_columns=("customer_id",)),
}

#: Where a customer id is known from: (table, column).
KNOWN_CUSTOMER_SOURCES: tuple[tuple[str, str], ...] = (
    ("customers", "customer_id"),
    ("transactions", "customer_id"),
    ("identities", "customer_id"),
    ("identities", "source_id"),
)

_EXAMPLES = 5


def load_events(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    typed: str,
    *,
    batch_id: str,
    keep_exact: bool,
) -> int:
    """Append the valid rows of ``typed`` that the store does not hold yet.

    Parameters
    ----------
    con
        The store's connection, inside the load's transaction.
    spec
        The target table.
    typed
        The typed, checked view of the source (valid rows have ``__check IS NULL``).
    batch_id
        The load's batch id.
    keep_exact
        Whether identical rows within the source are kept (``exact_duplicates =
        "keep"``); ignored for tables whose rows are facts (``spec.repeats`` False).

    Returns
    -------
    int
        Rows written.
    """
    table = quote(spec.name)
    columns = [f.name for f in spec.fields]
    cols = ", ".join(quote(c) for c in columns)
    same = " AND ".join(f"t.{quote(c)} IS NOT DISTINCT FROM v.{quote(c)}" for c in columns)
    keep = "" if keep_exact and spec.repeats else "AND occurrence = 1"
    row = con.execute(
        f"INSERT INTO {table} ({cols}, row_key, occurrence, batch_id, line) "
        f"SELECT {cols}, row_key, occurrence, {literal(batch_id)}, __line FROM ("
        f"  SELECT *, row_number() OVER (PARTITION BY row_key ORDER BY __line) AS occurrence"
        f"  FROM (SELECT *, hash({cols}) AS row_key FROM {quote(typed)}"
        f"        WHERE __check IS NULL)"
        f") v WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.row_key = v.row_key"
        f"  AND t.occurrence = v.occurrence AND {same}) {keep}"
    ).fetchone()
    return int(row[0]) if row else 0


def load_customers(
    con: duckdb.DuckDBPyConnection,
    typed: str,
    staged: StagedSource,
    *,
    batch_id: str,
) -> tuple[int, int, int]:
    """Upsert customers; return (loaded, updated, quarantined as conflicting).

    A ``customer_id`` that appears again in the same source with other values is
    quarantined (the first record wins); a record that differs from the stored one
    replaces it and is counted as updated.
    """
    columns = [f.name for f in TABLES["customers"].fields]
    cols = ", ".join(quote(c) for c in columns)
    work = f"__cvm_customers_{batch_id.replace('-', '_')}"
    con.execute(
        f"CREATE TEMP TABLE {quote(work)} AS SELECT *, "
        f"row_number() OVER (PARTITION BY customer_id ORDER BY __line) AS rn, "
        f"first_value(row_key) OVER (PARTITION BY customer_id ORDER BY __line) AS first_key, "
        f"first_value(__line) OVER (PARTITION BY customer_id ORDER BY __line) AS first_line "
        f"FROM (SELECT *, hash({cols}, attributes) AS row_key FROM {quote(typed)} "
        f"WHERE __check IS NULL)"
    )
    try:
        head = f"{literal(batch_id)}, 'customers', {literal(staged.name)}"
        row = con.execute(
            f"INSERT INTO quarantine SELECT {head}, w.__line, 'customer_id', w.customer_id, "
            f"'customer_id ''' || w.customer_id || ''' appears again with different values "
            f"(first on line ' || w.first_line || ')', to_json(s)::VARCHAR "
            f"FROM {quote(work)} w JOIN {quote(staged.table)} s ON s.__line = w.__line "
            f"WHERE w.rn > 1 AND w.row_key <> w.first_key"
        ).fetchone()
        conflicts = int(row[0]) if row else 0
        row = con.execute(
            f"SELECT count(*) FROM {quote(work)} w JOIN customers c USING (customer_id) "
            f"WHERE w.rn = 1 AND c.row_key <> w.row_key"
        ).fetchone()
        updated = int(row[0]) if row else 0
        row = con.execute(
            f"INSERT OR REPLACE INTO customers ({cols}, attributes, row_key, batch_id, line) "
            f"SELECT {cols}, attributes, row_key, {literal(batch_id)}, __line FROM {quote(work)} w "
            f"WHERE w.rn = 1 AND NOT EXISTS (SELECT 1 FROM customers c "
            f"WHERE c.customer_id = w.customer_id AND c.row_key = w.row_key)"
        ).fetchone()
        loaded = int(row[0]) if row else 0
    finally:
        con.execute(f"DROP TABLE IF EXISTS {quote(work)}")
    return loaded, updated, conflicts


def _examples(values: list[object]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def reference_check(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, batch_id: str
) -> tuple[int, list[str]]:
    """Count the batch's rows that name a customer the store does not know.

    A customer id is known when it appears in ``customers.customer_id``,
    ``transactions.customer_id``, ``identities.customer_id`` or
    ``identities.source_id``. For referrals, a row counts when its referrer or the
    referred customer is unknown, and self-referrals (``referrer_id = referred_id``)
    are counted in a note too.

    Parameters
    ----------
    con
        The store's connection.
    spec
        The table just loaded.
    batch_id
        The load's batch id.

    Returns
    -------
    (rows, notes)
        Rows of the batch naming at least one unknown customer, and notes for the
        report (with up to five example ids, in the order of the source).
    """
    if not spec.customer_columns:
        return 0, []
    table = quote(spec.name)
    batch = f"(SELECT * FROM {table} WHERE batch_id = {literal(batch_id)})"
    named = " UNION ALL ".join(
        f"SELECT {quote(c)} AS id, line FROM {batch}" for c in spec.customer_columns
    )
    known = " UNION ALL ".join(
        f"SELECT {quote(column)} AS id FROM {quote(source)} "
        f"WHERE {quote(column)} IN (SELECT id FROM ids)"
        for source, column in KNOWN_CUSTOMER_SOURCES
    )
    flagged = " OR ".join(f"{quote(c)} IN (SELECT id FROM unknown)" for c in spec.customer_columns)
    row = con.execute(
        f"WITH ids AS (SELECT id, min(line) AS first FROM ({named}) WHERE id IS NOT NULL "
        f"GROUP BY id), "
        f"unknown AS (SELECT id, first FROM ids WHERE id NOT IN ({known})) "
        f"SELECT (SELECT count(*) FROM {batch} WHERE {flagged}), "
        f"(SELECT count(*) FROM unknown), "
        f"(SELECT list(id ORDER BY first, id)[1:{_EXAMPLES}] FROM unknown)"
    ).fetchone()
    rows, ids, examples = (int(row[0]), int(row[1]), list(row[2] or [])) if row else (0, 0, [])
    notes: list[str] = []
    if rows:
        notes.append(
            f"{rows} {'row names' if rows == 1 else 'rows name'} {ids} "
            f"customer {'id' if ids == 1 else 'ids'} not in the store (customers, "
            f"transactions or identities), e.g. {_examples(examples)}; the rows are loaded "
            "and count once those customers are loaded"
        )
    if spec.name == "referrals":
        found = con.execute(
            f"SELECT count(*), list(line ORDER BY line)[1:{_EXAMPLES}] FROM {batch} "
            "WHERE referrer_id = referred_id"
        ).fetchone()
        if found and found[0]:
            lines = ", ".join(str(line) for line in found[1])
            notes.append(
                f"{found[0]} self-{'referral' if found[0] == 1 else 'referrals'} "
                f"(referrer_id = referred_id; line {lines}) loaded; influence value ignores "
                "them"
            )
    return rows, notes
