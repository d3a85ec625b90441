"""Load a source into the store without losing a row.

Every record read ends in exactly one of three places: loaded into its table,
quarantined with its line and reason, or counted as a duplicate of something the store
already holds. ``read == loaded + quarantined + duplicates`` always, and all writes of
one load (rows, quarantine, ingest log) happen in one transaction: a load that fails or
is killed leaves the store as it was.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from cvm import __version__
from cvm.config import Settings
from cvm.errors import ConfigError, StorageError
from cvm.ingest.mapping import ColumnSpec, resolve_columns
from cvm.ingest.sources import Progress, StagedSource, hash_file, stage_source
from cvm.ingest.tables import TABLES, load_customers, load_events, reference_check
from cvm.ingest.validate import (
    TypedSelect,
    build_typed_select,
    detect_date_format,
    literal,
    quote,
    raw_text,
)
from cvm.store import Store

__all__ = [
    "INPUT_TABLES",
    "REFERENCING_TABLES",
    "IngestReport",
    "ingest",
    "ingest_actions",
    "ingest_customers",
    "ingest_identities",
    "ingest_interactions",
    "ingest_referrals",
    "ingest_surveys",
    "ingest_transactions",
]

#: The tables :func:`ingest` loads, in the order of DESIGN.md.
INPUT_TABLES: tuple[str, ...] = tuple(TABLES)

#: Tables whose rows name customers that are checked against the store.
REFERENCING_TABLES: tuple[str, ...] = tuple(n for n, t in TABLES.items() if t.customer_columns)


@dataclass(frozen=True)
class IngestReport:
    """What one load did.

    Attributes
    ----------
    table, source, batch_id
        Target table, source name and the batch id of this load.
    read
        Records read from the source.
    loaded
        Rows written (for customers: new and updated records).
    updated
        Of ``loaded``, existing customer records replaced by newer values.
    quarantined
        Rows rejected, each stored in ``quarantine`` with line, column and reason.
    duplicates
        Rows the store already held (an earlier load of the same rows or file), and,
        with ``exact_duplicates = "skip"`` (always, for referrals and identities),
        repeated identical rows within the source.
    unknown_customers
        Rows loaded by this batch that name a customer id the store does not know
        (interactions, surveys, referrals, actions; see ``notes`` for examples). They
        are loaded all the same.
    already_ingested
        True when the exact same content was loaded before; nothing was written.
    columns
        Canonical column → its source column or derivation.
    ignored_columns
        Source columns not used.
    reasons
        Quarantine reasons summarised: ``"column: reason"`` → count.
    notes
        Facts about reading (detected encoding, delimiter, date format …).
    """

    table: str
    source: str
    batch_id: str
    read: int
    loaded: int
    updated: int
    quarantined: int
    duplicates: int
    unknown_customers: int = 0
    already_ingested: bool = False
    columns: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def reconciles(self) -> bool:
        """Whether read = loaded + quarantined + duplicates."""
        return self.read == self.loaded + self.quarantined + self.duplicates

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain data (for JSON output)."""
        data = asdict(self)
        data["reconciles"] = self.reconciles
        return data


def _prior_load(
    con: duckdb.DuckDBPyConnection, table: str, content_hash: str
) -> tuple[str, int] | None:
    """Return (batch id, rows read) of an earlier load of the same content, if any."""
    row = con.execute(
        "SELECT batch_id, rows_read FROM ingest_log WHERE table_name = ? AND content_hash = ?"
        " ORDER BY finished_at LIMIT 1",
        [table, content_hash],
    ).fetchone()
    return (str(row[0]), int(row[1])) if row else None


def _already_ingested(table: str, source: str, prior: tuple[str, int]) -> IngestReport:
    """Report a load that writes nothing: every row is already in the store."""
    batch_id, rows = prior
    return IngestReport(
        table=table,
        source=source,
        batch_id=batch_id,
        read=rows,
        loaded=0,
        updated=0,
        quarantined=0,
        duplicates=rows,
        already_ingested=True,
        notes=[f"this content was already loaded as batch {batch_id}"],
    )


def _describe(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {quote(table)}").fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _date_formats(
    con: duckdb.DuckDBPyConnection,
    staged: StagedSource,
    specs: dict[str, ColumnSpec],
    types: dict[str, str],
    setting: str,
) -> dict[str, str | None]:
    formats: dict[str, str | None] = {}
    for name, spec in specs.items():
        if spec.field.kind != "timestamp" or spec.source is None:
            continue
        if types.get(spec.source, "VARCHAR") != "VARCHAR":
            continue
        if setting != "auto":
            formats[name] = setting
            continue
        chosen, note = detect_date_format(con, staged.table, spec.source)
        formats[name] = chosen
        if note:
            staged.notes.append(f"{spec.source}: {note}")
    return formats


def _quarantine(
    con: duckdb.DuckDBPyConnection,
    staged: StagedSource,
    typed: str,
    select: TypedSelect,
    *,
    batch_id: str,
    table: str,
) -> int:
    head = f"{literal(batch_id)}, {literal(table)}, {literal(staged.name)}"
    row = con.execute(
        f"INSERT INTO quarantine SELECT {head}, t.__line, {select.column}, {select.raw}, "
        f"{select.reason}, to_json(s)::VARCHAR FROM {quote(typed)} t "
        f"JOIN {quote(staged.table)} s ON s.__line = t.__line WHERE t.__check IS NOT NULL"
    ).fetchone()
    count = int(row[0]) if row else 0
    if staged.rejects:
        con.executemany(
            "INSERT INTO quarantine VALUES (?, ?, ?, ?, NULL, NULL, ?, ?)",
            [[batch_id, table, staged.name, r.line, r.reason, r.record] for r in staged.rejects],
        )
    return count + len(staged.rejects)


def _load_transactions(
    con: duckdb.DuckDBPyConnection, typed: str, *, batch_id: str, keep_exact: bool
) -> int:
    """Append transactions (a seam of its own: tests make a load fail here)."""
    spec = TABLES["transactions"]
    return load_events(con, spec, typed, batch_id=batch_id, keep_exact=keep_exact)


def ingest(
    store: Store,
    source: Any,
    *,
    table: str,
    settings: Settings | None = None,
    mapping: Mapping[str, str] | None = None,
    derive: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Load a file or DataFrame into a canonical table of the store.

    Parameters
    ----------
    store
        The open store.
    source
        Path to a CSV or Parquet file, or a pandas/polars DataFrame or pyarrow Table.
    table
        One of :data:`INPUT_TABLES`: ``"transactions"``, ``"customers"``,
        ``"interactions"``, ``"surveys"``, ``"referrals"``, ``"identities"`` or
        ``"actions"``.
    settings
        Settings (mappings, encoding, date checks); defaults when ``None``.
    mapping
        Extra ``canonical → source column`` mappings (override the settings').
    derive
        Extra ``canonical → expression`` derivations, e.g. ``{"amount": "qty * price"}``.
    progress
        Optional ``(done, total)`` callback while reading.

    Returns
    -------
    IngestReport
        Counts that reconcile (``read == loaded + quarantined + duplicates``), and the
        rows naming customers the store does not know.

    Raises
    ------
    ConfigError
        If ``table`` is not an input table, or a mapping or derivation is invalid.
    SchemaError
        If a required column is missing or ambiguous (nothing is written).
    DataError
        If the source cannot be read.
    """
    spec = TABLES.get(table)
    if spec is None:
        raise ConfigError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    settings = settings or Settings()
    options = settings.ingest
    table_settings = getattr(options, table)
    # An explicit argument wins over the settings for the same canonical column.
    given_map, given_derive = dict(mapping or {}), dict(derive or {})
    mapping = {k: v for k, v in table_settings.columns.items() if k not in given_derive} | given_map
    derive = {k: v for k, v in table_settings.derive.items() if k not in given_map} | given_derive
    batch_id = f"{dt.datetime.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    con = store.con
    stage = f"__cvm_stage_{uuid.uuid4().hex}"
    typed = f"{stage}_typed"
    # A file loaded before is recognised by its bytes, before it is parsed again.
    path = Path(source) if isinstance(source, str | Path) else None
    content_hash = hash_file(path) if path is not None and path.is_file() else None
    if content_hash is not None and (prior := _prior_load(con, table, content_hash)):
        return _already_ingested(table, str(path), prior)
    staged = stage_source(
        con,
        source,
        stage,
        encoding=options.encoding,
        delimiter=options.delimiter,
        progress=progress,
        content_hash=content_hash,
    )
    try:
        specs = resolve_columns(
            spec.fields,
            staged.columns,
            path=staged.name,
            mapping=mapping,
            derive=derive,
            table=table,
            one_of=spec.one_of,
        )
        used = {c for column in specs.values() for c in column.inputs()}
        ignored = [c for c in staged.columns if c not in used]
        described = {
            name: (column.source or column.text or "")
            for name, column in specs.items()
            if column.source or column.text
        }
        if prior := _prior_load(con, table, staged.content_hash):
            return _already_ingested(table, staged.name, prior)
        types = _describe(con, stage)
        now = dt.datetime.now()
        extra: dict[str, str] = {}
        if table == "customers":
            pairs = ", ".join(f"{quote(c)} := {raw_text(c)}" for c in ignored)
            extra["attributes"] = (
                f"to_json(struct_pack({pairs}))" if ignored else "CAST(NULL AS JSON)"
            )
        select = build_typed_select(
            stage,
            specs,
            types,
            date_formats=_date_formats(con, staged, specs, types, options.date_format),
            min_date=options.min_date,
            max_date=now + dt.timedelta(days=options.max_future_days),
            extra=extra,
            one_of=spec.one_of,
        )
        con.execute(f"CREATE TEMP VIEW {quote(typed)} AS {select.sql}")
        updated = 0
        with store.transaction():
            quarantined = _quarantine(con, staged, typed, select, batch_id=batch_id, table=table)
            if spec.upsert:
                loaded, updated, conflicts = load_customers(con, typed, staged, batch_id=batch_id)
                quarantined += conflicts
            elif table == "transactions":
                loaded = _load_transactions(
                    con, typed, batch_id=batch_id, keep_exact=options.exact_duplicates == "keep"
                )
            else:
                loaded = load_events(
                    con,
                    spec,
                    typed,
                    batch_id=batch_id,
                    keep_exact=options.exact_duplicates == "keep",
                )
            unknown, reference_notes = reference_check(con, spec, batch_id)
            duplicates = staged.rows_read - loaded - quarantined
            if duplicates < 0:  # pragma: no cover - an invariant; rolls the load back
                raise StorageError(f"ingest counts do not reconcile in batch {batch_id}")
            reasons = {
                f"{column or 'record'}: {reason}": int(count)
                for column, reason, count in con.execute(
                    "SELECT column_name, regexp_replace(reason, '''.*''', '…'), count(*) "
                    "FROM quarantine WHERE batch_id = ? GROUP BY ALL ORDER BY 3 DESC",
                    [batch_id],
                ).fetchall()
            }
            con.execute(
                "INSERT INTO ingest_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    batch_id,
                    table,
                    staged.name,
                    staged.content_hash,
                    staged.rows_read,
                    loaded,
                    updated,
                    quarantined,
                    duplicates,
                    now,
                    dt.datetime.now(),
                    __version__,
                ],
            )
        return IngestReport(
            table=table,
            source=staged.name,
            batch_id=batch_id,
            read=staged.rows_read,
            loaded=loaded,
            updated=updated,
            quarantined=quarantined,
            duplicates=duplicates,
            unknown_customers=unknown,
            columns=described,
            ignored_columns=ignored,
            reasons=reasons,
            notes=[*staged.notes, *reference_notes],
        )
    finally:
        _drop_staging(con, stage, typed)


def _drop_staging(con: duckdb.DuckDBPyConnection, stage: str, typed: str) -> None:
    con.execute(f"DROP VIEW IF EXISTS {quote(typed)}")
    kinds = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_name = ?", [stage]
    ).fetchall()
    for (kind,) in kinds:
        con.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} IF EXISTS {quote(stage)}")
    try:
        con.unregister(f"{stage}__arrow")
    except duckdb.Error:
        pass


def ingest_transactions(store: Store, source: Any, **options: Any) -> IngestReport:
    """Load transactions; see :func:`ingest` for the options."""
    return ingest(store, source, table="transactions", **options)


def ingest_customers(store: Store, source: Any, **options: Any) -> IngestReport:
    """Load customers (upserted by ``customer_id``); see :func:`ingest` for the options."""
    return ingest(store, source, table="customers", **options)


def ingest_interactions(store: Store, source: Any, **options: Any) -> IngestReport:
    """Load interactions (calls, emails, visits, tickets …); see :func:`ingest`."""
    return ingest(store, source, table="interactions", **options)


def ingest_surveys(store: Store, source: Any, **options: Any) -> IngestReport:
    """Load survey responses (NPS, CSAT, comments); see :func:`ingest`."""
    return ingest(store, source, table="surveys", **options)


def ingest_referrals(store: Store, source: Any, **options: Any) -> IngestReport:
    """Load referrals (referrer → referred customer); see :func:`ingest`."""
    return ingest(store, source, table="referrals", **options)


def ingest_identities(store: Store, source: Any, **options: Any) -> IngestReport:
    """Load identity links (a source's record → customer keys); see :func:`ingest`."""
    return ingest(store, source, table="identities", **options)


def ingest_actions(store: Store, source: Any, **options: Any) -> IngestReport:
    """Load CRM actions with their treatment or control group; see :func:`ingest`."""
    return ingest(store, source, table="actions", **options)
