"""Identity resolution: the records of one person across sources become one customer.

Every customer id the store knows is a node: the ids of the customers table, of
transactions, interactions, surveys and actions, both ends of every referral, and every
identity record — a record ``(source, source_id)`` is known in the other tables by its
``source_id`` (interactions logged under the call-centre id ``CC-000123``). Nodes are
linked

* by an identity record to the ``customer_id`` it names (rule ``"identity record"``);
* by a shared normalised identifier between customers-table rows and identity
  records (rules ``"email"``, ``"phone"``, ``"loyalty_card"``, ``"external_id"``):
  emails lower-cased, phones in E.164, loyalty cards without spaces and dashes,
  external ids trimmed. The normalisation lives in :mod:`cvm.store.identifiers`
  (its public names, :data:`IDENTIFIER_KINDS` and :func:`normalize_identifiers`,
  are re-exported here).

The customers in one connected component of that graph
(:func:`scipy.sparse.csgraph.connected_components`) are one customer. Its unified id is
the smallest id of the component that is in the customers table, else the smallest id
(string order), so the result does not depend on load order.

Guards, each written to ``identity_conflicts``:

* an identifier claimed within one source by more than
  ``max_customers_per_identifier`` customers (a switchboard phone, a placeholder such as
  ``000000``) is not used to merge. "Customers" are counted after the identity-record
  links, so one person's records in one source count once; counting within a source
  lets one person appear in many sources without tripping the limit;
* identifiers that cannot be normalised are not used;
* a merged customer holding different values of a *strong* identifier (by default the
  loyalty card: a person normally has one) is reported but still merged — the shared
  email or phone that joined the records is evidence too, and a replaced card is common;
  an analyst who disagrees removes the wrong link at the source;
* the same ``source_id`` in several sources is reported: ids are compared as strings,
  so those records are one id (prefix source ids to keep sources apart).

:func:`resolve_identities` writes ``customer_map`` (every known id → its unified id and
the rule of the link through which it joined, breadth-first from the unified id;
``"self"`` for the unified id itself) and ``identity_conflicts``, replacing the previous
resolution in one transaction. :func:`unified` reads any input table with its customer
ids replaced by the unified ids.

References
----------
Christen, P. (2012). *Data Matching: Concepts and Techniques for Record Linkage, Entity
Resolution, and Duplicate Detection*. Springer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

import duckdb
import ibis
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from cvm.config import IdentitySettings
from cvm.errors import NotFoundError, StorageError
from cvm.store.identifiers import IDENTIFIER_KINDS, _normalise, _quote, normalize_identifiers
from cvm.store.store import Store

__all__ = [
    "IDENTIFIER_KINDS",
    "ID_COLUMNS",
    "RULES",
    "IdentityReport",
    "normalize_identifiers",
    "resolve_identities",
    "unified",
]

IntArray = npt.NDArray[np.int64]

#: Rules of ``customer_map``, by preference when two records are linked twice.
RULES: Final[tuple[str, ...]] = ("self", "identity record", *IDENTIFIER_KINDS)

#: The customer id columns of each store table.
ID_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "customers": ("customer_id",),
    "transactions": ("customer_id",),
    "interactions": ("customer_id",),
    "surveys": ("customer_id",),
    "actions": ("customer_id",),
    "referrals": ("referrer_id", "referred_id"),
    "identities": ("source_id", "customer_id"),
}

_CUSTOMERS_SOURCE: Final = "customers"
_LISTED_IDS: Final = 100  # ids listed per conflict (the reason gives the full count)
_TEMP: Final = "_cvm_identity_"  # prefix of the temporary tables and views of a run
_TABLES: Final = ("nodes", "records", "sources", "conflicts")
_VIEWS: Final = ("shared", "strong", "resolved")

_UNUSABLE: Final[dict[str, str]] = {
    "email": "not an email address: not used",
    "phone": "cannot be normalised to an E.164 phone number: not used",
    "loyalty_card": "empty after normalisation: not used",
    "external_id": "empty: not used",
}


@dataclass(frozen=True)
class IdentityReport:
    """What one identity resolution found.

    Attributes
    ----------
    ids : int
        Distinct customer ids known to the store (rows written to ``customer_map``).
    customers : int
        Customers after resolution (distinct unified ids).
    merged : int
        Ids mapped to another id (``ids - customers``).
    links : dict[str, int]
        Ids per rule of ``customer_map`` (``"self"``, ``"identity record"``,
        ``"email"``, …).
    shared_identifiers : int
        Identifiers claimed by too many customers, not used to merge.
    unusable : dict[str, int]
        Per identifier kind, distinct values that could not be normalised.
    strong_conflicts : int
        Merged customers holding different values of a strong identifier.
    source_id_clashes : int
        Source ids used by more than one source.
    resolved_at : datetime.datetime
        Time of the resolution (``resolved_at`` in both tables).
    """

    ids: int
    customers: int
    merged: int
    links: dict[str, int] = field(default_factory=dict)
    shared_identifiers: int = 0
    unusable: dict[str, int] = field(default_factory=dict)
    strong_conflicts: int = 0
    source_id_clashes: int = 0
    resolved_at: dt.datetime = field(default_factory=dt.datetime.now)

    @property
    def conflicts(self) -> int:
        """Rows written to ``identity_conflicts``."""
        return (
            self.shared_identifiers
            + sum(self.unusable.values())
            + self.strong_conflicts
            + self.source_id_clashes
        )


# -- resolution ------------------------------------------------------------------------
def _components(n: int, a: IntArray, b: IntArray) -> IntArray:
    """Return the connected component of every node, given edges ``a[i] — b[i]``."""
    # SciPy is imported here, not with the module: ``import cvm`` stays fast for the CLI
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    graph = csr_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    components: IntArray = labels.astype(np.int64)
    return components


def _rules(n: int, root: IntArray, a: IntArray, b: IntArray, rule: IntArray) -> IntArray:
    """Return the rule code of the link through which each node joined (breadth-first).

    Two nodes linked more than once keep the preferred rule (the smallest code); the
    roots get 0 (``"self"``).
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order

    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo * n + hi
    order = np.lexsort((rule, key))
    key, rule, lo, hi = key[order], rule[order], lo[order], hi[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key, rule, lo, hi = key[first], rule[first], lo[first], hi[first]
    # one breadth-first search from a virtual node n joined to every root reaches each
    # node by a shortest path from its own root
    roots = np.flatnonzero(root == np.arange(n))
    start = np.concatenate([lo, np.full(len(roots), n)])
    end = np.concatenate([hi, roots])
    graph = csr_matrix((np.ones(len(start), dtype=np.int8), (start, end)), shape=(n + 1, n + 1))
    _, predecessor = breadth_first_order(graph, n, directed=False, return_predecessors=True)
    predecessor = predecessor[:n].astype(np.int64)
    codes = np.zeros(n, dtype=np.int64)
    joined = np.flatnonzero(predecessor != n)
    via = predecessor[joined]
    wanted = np.minimum(via, joined) * n + np.maximum(via, joined)
    codes[joined] = rule[np.searchsorted(key, wanted)]
    return codes


def resolve_identities(store: Store, settings: IdentitySettings | None = None) -> IdentityReport:
    """Resolve the store's customer ids into unified customers.

    Parameters
    ----------
    store
        An open, writable store.
    settings
        The ``[identity]`` settings; the defaults when omitted.

    Returns
    -------
    IdentityReport
        Counts of ids, customers, links per rule and conflicts.

    Raises
    ------
    StorageError
        If the store cannot be read or written (e.g. it was opened read-only).

    Notes
    -----
    The id strings stay in DuckDB; only integer edge lists reach NumPy and SciPy
    (connected components, then one breadth-first search for the rules). The new
    ``customer_map`` and ``identity_conflicts`` replace the previous ones in one
    transaction, so a failure leaves the previous resolution in place.

    References
    ----------
    Christen, P. (2012). *Data Matching: Concepts and Techniques for Record Linkage,
    Entity Resolution, and Duplicate Detection*. Springer.
    """
    settings = settings if settings is not None else IdentitySettings()
    try:
        return _resolve(store, settings)
    except duckdb.Error as exc:
        raise StorageError(f"identity resolution failed: {exc}", path=store.path) from exc
    finally:
        # the connection may already be closed: cleanup must not hide the first error
        for name in _VIEWS:
            with contextlib.suppress(duckdb.Error):
                store.con.unregister(_TEMP + name)
        for name in _TABLES:
            with contextlib.suppress(duckdb.Error):
                store.con.execute(f"DROP TABLE IF EXISTS {_TEMP}{name}")


def _numpy(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    result: dict[str, Any] = con.execute(sql).fetchnumpy()
    return result


def _runs(*keys: IntArray) -> npt.NDArray[np.bool_]:
    """Mark the first row of each run of equal keys (rows sorted by those keys)."""
    first = np.zeros(len(keys[0]), dtype=bool)
    first[:1] = True
    for key in keys:
        first[1:] |= key[1:] != key[:-1]
    return first


def _claimants(
    vid: IntArray, sid: IntArray, group: IntArray, n_values: int
) -> tuple[IntArray, IntArray]:
    """Return the most customers claiming each identifier within one source, and the source."""
    order = np.lexsort((group, sid, vid))
    vid, sid, group = vid[order], sid[order], group[order]
    distinct = _runs(vid, sid, group)
    vid, sid = vid[distinct], sid[distinct]
    starts = np.flatnonzero(_runs(vid, sid))
    counts = np.diff(np.append(starts, len(vid)))
    pair_vid, pair_sid = vid[starts], sid[starts]
    order = np.lexsort((pair_sid, -counts, pair_vid))  # most claimants first
    top = order[_runs(pair_vid[order])]
    most = np.zeros(n_values, dtype=np.int64)
    source = np.zeros(n_values, dtype=np.int64)
    most[pair_vid[top]] = counts[top]
    source[pair_vid[top]] = pair_sid[top]
    return most, source


def _resolve(store: Store, settings: IdentitySettings) -> IdentityReport:
    con = store.con
    nodes, records, sources, found = (_TEMP + name for name in _TABLES)
    shared, strong, resolved = (_TEMP + name for name in _VIEWS)
    resolved_at = dt.datetime.now()
    limit = settings.max_customers_per_identifier

    # nodes: every customer id, numbered in string order
    ids = " UNION ".join(
        f"SELECT {column} AS id FROM {table}"
        for table, columns in ID_COLUMNS.items()
        for column in columns
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {nodes} AS "
        f"SELECT a.id, (row_number() OVER (ORDER BY a.id) - 1)::BIGINT AS idx, "
        f"c.customer_id IS NOT NULL AS listed "
        f"FROM ({ids}) a LEFT JOIN customers c ON c.customer_id = a.id WHERE a.id IS NOT NULL"
    )
    listed = _numpy(con, f"SELECT listed FROM {nodes} ORDER BY idx")["listed"].astype(bool)
    n = len(listed)
    everyone = np.arange(n, dtype=np.int64)

    # identifiers of customers-table rows and identity records, normalised; sources
    # numbered (sid); values compared through two independent 63-bit hashes, so only
    # numbers reach NumPy (a false match needs both to collide: about 2^-126)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {sources} AS SELECT source, "
        f"(row_number() OVER (ORDER BY source) - 1)::BIGINT AS sid FROM ("
        f"SELECT DISTINCT source FROM identities UNION SELECT '{_CUSTOMERS_SOURCE}')"
    )
    raw = " UNION ALL ".join(
        [
            f"SELECT '{_CUSTOMERS_SOURCE}' AS source, customer_id AS id, '{kind}' AS kind, "
            f"{kind} AS original FROM customers"
            for kind in ("email", "phone", "loyalty_card")
        ]
        + [
            f"SELECT source, source_id, '{kind}', {kind} FROM identities"
            for kind in IDENTIFIER_KINDS
        ]
    )
    code = " ".join(f"WHEN '{k}' THEN {RULES.index(k)}" for k in IDENTIFIER_KINDS)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {records} AS SELECT r.source, s.sid, n.idx, r.kind, "
        f"CASE r.kind {code} END AS code, r.raw, r.value, "
        f"(hash(r.value) >> 1)::BIGINT AS h1, (hash(r.value || chr(0)) >> 1)::BIGINT AS h2 "
        f"FROM ({_normalise(settings, raw)}) r JOIN {nodes} n ON n.id = r.id "
        f"JOIN {sources} s ON s.source = r.source"
    )
    usable = _numpy(con, f"SELECT code, h1, h2, sid, idx FROM {records} WHERE value IS NOT NULL")
    order = np.lexsort((usable["idx"], usable["h2"], usable["h1"], usable["code"]))
    kind_code = usable["code"][order].astype(np.int64)
    h1, h2 = usable["h1"][order], usable["h2"][order]
    sid = usable["sid"][order].astype(np.int64)
    idx = usable["idx"][order].astype(np.int64)
    vid = np.cumsum(_runs(kind_code, h1, h2)) - 1  # rows sorted by (vid, idx)
    n_values = int(vid[-1]) + 1 if len(vid) else 0

    # 1. an identity record is the customer it names
    named = _numpy(
        con,
        f"SELECT DISTINCT a.idx AS a, b.idx AS b FROM identities i "
        f"JOIN {nodes} a ON a.id = i.source_id JOIN {nodes} b ON b.id = i.customer_id "
        f"WHERE i.customer_id <> i.source_id ORDER BY a, b",
    )
    a1, b1 = named["a"].astype(np.int64), named["b"].astype(np.int64)
    group = _components(n, a1, b1)

    # 2. a shared identifier links its claimants (each to the smallest), unless one
    # source has too many of them; rows are sorted by (vid, idx)
    most, most_source = _claimants(vid, sid, group[idx], n_values)
    allowed = most[vid] <= limit
    first_row = np.flatnonzero(_runs(vid))  # of each value: its smallest claimant
    anchor = idx[first_row][vid]
    link = allowed & (anchor != idx)
    a = np.concatenate([a1, anchor[link]])
    b = np.concatenate([b1, idx[link]])
    rule = np.concatenate(
        [np.full(len(a1), RULES.index("identity record"), dtype=np.int64), kind_code[link]]
    )

    # 3. one customer per component; its id: listed in customers first, then smallest
    component = _components(n, a, b)
    n_customers = int(component.max()) + 1 if n else 0
    best = np.full(n_customers, 2 * n, dtype=np.int64)
    np.minimum.at(best, component, np.where(listed, 0, n) + everyone)
    root = best[component] % max(n, 1)
    con.register(
        resolved, pa.table({"idx": everyone, "root": root, "rule": _rules(n, root, a, b, rule)})
    )

    # 4. what to report: shared identifiers, unusable values, one customer with several
    # values of a strong identifier, one source id in several sources
    too_many = np.flatnonzero(most > limit)
    row = first_row[too_many]
    con.register(
        shared,
        pa.table(
            {
                "code": kind_code[row],
                "h1": h1[row],
                "h2": h2[row],
                "most": most[too_many],
                "sid": most_source[too_many],
            }
        ),
    )
    strong_codes = [RULES.index(k) for k in settings.strong_identifiers]
    pick = allowed & np.isin(kind_code, strong_codes)
    s_root, s_kind, s_vid = root[idx[pick]], kind_code[pick], vid[pick]
    order = np.lexsort((s_vid, s_kind, s_root))
    s_root, s_kind, s_vid = s_root[order], s_kind[order], s_vid[order]
    keep = _runs(s_root, s_kind, s_vid)
    s_root, s_kind = s_root[keep], s_kind[keep]
    starts = np.flatnonzero(_runs(s_root, s_kind))
    several = starts[np.diff(np.append(starts, len(s_root))) > 1]
    con.register(
        strong,
        pa.table(
            {
                "root": s_root[several],
                "kind": pa.array([RULES[c] for c in s_kind[several]], pa.string()),
            }
        ),
    )
    listed_ids = f"list(DISTINCT n.id ORDER BY n.id)[1:{_LISTED_IDS}]"
    unusable = " ".join(f"WHEN '{k}' THEN {_quote(v)}" for k, v in _UNUSABLE.items())
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {found} AS "
        f"SELECT 'shared' AS what, r.kind AS identifier_kind, r.value AS identifier, "
        f"{listed_ids} AS customer_ids, 'claimed by ' || any_value(c.most) "
        f"|| ' customers in source ' || any_value(s.source) "
        f"|| ' (more than {limit}): not used to merge' AS reason "
        f"FROM {records} r JOIN {shared} c USING (code, h1, h2) "
        f"JOIN {sources} s ON s.sid = c.sid "
        f"JOIN {nodes} n ON n.idx = r.idx GROUP BY r.kind, r.value "
        f"UNION ALL SELECT 'unusable', r.kind, r.raw, {listed_ids}, "
        f"CASE r.kind {unusable} END FROM {records} r JOIN {nodes} n USING (idx) "
        f"WHERE r.value IS NULL GROUP BY r.kind, r.raw "
        f"UNION ALL SELECT 'strong', r.kind, "
        f"string_agg(DISTINCT r.value, ' | ' ORDER BY r.value), {listed_ids}, "
        f"'one customer (' || any_value(u.id) || ') holds ' || count(DISTINCT r.value) "
        f"|| ' different values: merged by other links' "
        f"FROM {records} r JOIN {resolved} m ON m.idx = r.idx "
        f"JOIN {strong} x ON x.root = m.root AND x.kind = r.kind "
        f"JOIN {nodes} n ON n.idx = r.idx JOIN {nodes} u ON u.idx = m.root "
        f"WHERE r.value IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {shared} c "
        f"WHERE c.code = r.code AND c.h1 = r.h1 AND c.h2 = r.h2) "
        f"GROUP BY r.kind, m.root "
        f"UNION ALL SELECT 'source_id', 'source_id', source_id, "
        f"list_sort(list_distinct(list_prepend(source_id, list(customer_id)))), "
        f"'used by the sources ' || string_agg(DISTINCT source, ', ' ORDER BY source) "
        f"|| ': their records are one id' FROM identities GROUP BY source_id "
        f"HAVING count(DISTINCT source) > 1"
    )
    counts = con.execute(f"SELECT what, identifier_kind, count(*) FROM {found} GROUP BY ALL")
    found_counts = [(str(w), str(k), int(c)) for w, k, c in counts.fetchall()]
    rule_names = "[" + ", ".join(_quote(r) for r in RULES) + "]"
    links = con.execute(
        f"SELECT {rule_names}[rule + 1], count(*) FROM {resolved} GROUP BY rule ORDER BY rule"
    ).fetchall()

    with store.transaction():
        con.execute("DELETE FROM customer_map")
        con.execute(
            f"INSERT INTO customer_map SELECT n.id, u.id, {rule_names}[m.rule + 1], ? "
            f"FROM {resolved} m JOIN {nodes} n ON n.idx = m.idx "
            f"JOIN {nodes} u ON u.idx = m.root ORDER BY n.idx",
            [resolved_at],
        )
        con.execute("DELETE FROM identity_conflicts")
        con.execute(
            f"INSERT INTO identity_conflicts SELECT identifier_kind, identifier, "
            f"customer_ids, reason, ? FROM {found} ORDER BY what, identifier_kind, identifier",
            [resolved_at],
        )

    def total(what: str) -> int:
        return sum(c for w, _, c in found_counts if w == what)

    return IdentityReport(
        ids=n,
        customers=n_customers,
        merged=n - n_customers,
        links={str(name): int(count) for name, count in links},
        shared_identifiers=total("shared"),
        unusable={k: c for w, k, c in found_counts if w == "unusable"},
        strong_conflicts=total("strong"),
        source_id_clashes=total("source_id"),
        resolved_at=resolved_at,
    )


# -- reading with unified ids ----------------------------------------------------------
def _lookup(expr: Any, mapping: Any, column: str) -> Any:
    """``expr`` plus ``__<column>_uid``: the unified id of ``column`` (NULL if unmapped)."""
    key, uid = f"__{column}_key", f"__{column}_uid"
    side = mapping.select(**{key: mapping.customer_id, uid: mapping.unified_id})
    joined = expr.left_join(side, expr[column] == side[key])
    return joined.select(*expr.columns, uid)


def unified(store: Store, table_name: str) -> Any:
    """Return a store table with its customer ids replaced by the unified ids.

    Parameters
    ----------
    store
        The store.
    table_name
        A table with customer ids: ``customers``, ``transactions``, ``interactions``,
        ``surveys``, ``actions``, ``referrals`` or ``identities``.

    Returns
    -------
    ibis.expr.types.Table
        The table's columns, in order, with every customer id column mapped through
        ``customer_map``; ids absent from the map (loaded after the last resolution)
        keep their own id. In ``identities``, ``customer_id`` becomes the unified id of
        the record itself (its ``source_id``), so records without a ``customer_id`` are
        placed too; ``source_id`` is kept. ``customers`` keeps one row per unified id:
        the row of the unified id itself (else of the smallest merged id), with the
        earliest ``acquired_at`` of the merged rows.

    Raises
    ------
    NotFoundError
        If the table has no customer ids.
    """
    if table_name not in ID_COLUMNS:
        raise NotFoundError(
            f"no table with customer ids named '{table_name}'",
            expected=", ".join(ID_COLUMNS),
        )
    table = store.table(table_name)
    mapping = store.table("customer_map")
    columns = list(table.columns)
    if table_name == "identities":
        expr = _lookup(_lookup(table, mapping, "source_id"), mapping, "customer_id")
        ids = {
            "customer_id": ibis.coalesce(
                expr["__source_id_uid"], expr["__customer_id_uid"], expr["customer_id"]
            )
        }
    else:
        expr = table
        for column in ID_COLUMNS[table_name]:
            expr = _lookup(expr, mapping, column)
        ids = {
            column: ibis.coalesce(expr[f"__{column}_uid"], expr[column])
            for column in ID_COLUMNS[table_name]
        }
    if table_name != "customers":
        return expr.select(*[ids[c].name(c) if c in ids else expr[c] for c in columns])
    # customers: one row per unified id
    uid = ids["customer_id"]
    ranked = expr.mutate(
        __uid=uid,
        __rank=ibis.row_number().over(
            group_by=uid, order_by=[(expr.customer_id != uid), expr.customer_id]
        ),
        __acquired=expr.acquired_at.min().over(group_by=uid),
    )
    chosen = ranked.filter(ranked["__rank"] == 0)
    renamed = {"customer_id": chosen["__uid"], "acquired_at": chosen["__acquired"]}
    return chosen.select(*[renamed[c].name(c) if c in renamed else chosen[c] for c in columns])
