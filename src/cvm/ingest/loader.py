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
from cvm.errors import StorageError
from cvm.ingest.mapping import (
    CUSTOMER_FIELDS,
    TRANSACTION_FIELDS,
    ColumnSpec,
    Field,
    resolve_columns,
)
from cvm.ingest.sources import Progress, StagedSource, hash_file, stage_source
from cvm.ingest.validate import (
    TypedSelect,
    build_typed_select,
    detect_date_format,
    literal,
    quote,
    raw_text,
)
from cvm.store import Store

__all__ = ["IngestReport", "ingest", "ingest_customers", "ingest_transactions"]


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
        with ``exact_duplicates = "skip"``, repeated identical rows within the source.
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
    columns = [f.name for f in TRANSACTION_FIELDS]
    cols = ", ".join(quote(c) for c in columns)
    same = " AND ".join(f"t.{quote(c)} IS NOT DISTINCT FROM v.{quote(c)}" for c in columns)
    keep = "" if keep_exact else "AND occurrence = 1"
    row = con.execute(
        f"INSERT INTO transactions ({cols}, row_key, occurrence, batch_id, line) "
        f"SELECT {cols}, row_key, occurrence, {literal(batch_id)}, __line FROM ("
        f"  SELECT *, row_number() OVER (PARTITION BY row_key ORDER BY __line) AS occurrence"
        f"  FROM (SELECT *, hash({cols}) AS row_key FROM {quote(typed)}"
        f"        WHERE __check IS NULL)"
        f") v WHERE NOT EXISTS (SELECT 1 FROM transactions t WHERE t.row_key = v.row_key"
        f"  AND t.occurrence = v.occurrence AND {same}) {keep}"
    ).fetchone()
    return int(row[0]) if row else 0


def _load_customers(
    con: duckdb.DuckDBPyConnection,
    typed: str,
    staged: StagedSource,
    *,
    batch_id: str,
) -> tuple[int, int, int]:
    """Upsert customers; return (loaded, updated, quarantined as conflicting)."""
    columns = [f.name for f in CUSTOMER_FIELDS]
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
        ``"transactions"`` or ``"customers"``.
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
        Counts that reconcile (``read == loaded + quarantined + duplicates``).

    Raises
    ------
    SchemaError
        If a required column is missing or ambiguous (nothing is written).
    DataError
        If the source cannot be read.
    """
    fields: tuple[Field, ...]
    if table == "transactions":
        fields = TRANSACTION_FIELDS
    elif table == "customers":
        fields = CUSTOMER_FIELDS
    else:
        raise ValueError(f"unknown table {table!r}")
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
            fields, staged.columns, path=staged.name, mapping=mapping, derive=derive, table=table
        )
        used = {c for spec in specs.values() for c in spec.inputs()}
        ignored = [c for c in staged.columns if c not in used]
        described = {
            name: (spec.source or spec.text or "")
            for name, spec in specs.items()
            if spec.source or spec.text
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
        )
        con.execute(f"CREATE TEMP VIEW {quote(typed)} AS {select.sql}")
        updated = 0
        with store.transaction():
            quarantined = _quarantine(con, staged, typed, select, batch_id=batch_id, table=table)
            if table == "transactions":
                loaded = _load_transactions(
                    con, typed, batch_id=batch_id, keep_exact=options.exact_duplicates == "keep"
                )
            else:
                loaded, updated, conflicts = _load_customers(con, typed, staged, batch_id=batch_id)
                quarantined += conflicts
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
            columns=described,
            ignored_columns=ignored,
            reasons=reasons,
            notes=staged.notes,
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
