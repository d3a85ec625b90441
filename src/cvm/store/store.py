"""The integrated customer store: an embedded DuckDB file reached through Ibis.

DuckDB does the bulk loading and its transactions make every load atomic; all
relational work downstream of ingestion (features, value, segments) is written once
against the Ibis table API and so runs unchanged on any Ibis backend (PySpark,
PostgreSQL, …) given the same tables.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import ibis
import ibis.expr.operations as ops
import pyarrow as pa

from cvm.errors import NotFoundError, StorageError
from cvm.store.schema import INPUT_COLUMNS, MIGRATIONS, SCHEMA_VERSION

__all__ = ["Store"]


class Store:
    """An open cvm store.

    Parameters
    ----------
    path
        DuckDB database file (created if missing), or ``":memory:"``.
    read_only
        Open without write access (several readers may share a file).

    Attributes
    ----------
    path : str
        The database path as given.
    con : duckdb.DuckDBPyConnection
        The DuckDB connection (loading, transactions).
    backend : ibis.BaseBackend
        An Ibis backend over the same connection (portable relational work).

    Raises
    ------
    StorageError
        If the file cannot be opened (locked by another process, not a DuckDB file),
        or was written by a newer version of cvm.
    """

    def __init__(self, path: str | Path = "cvm.duckdb", *, read_only: bool = False) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            parent = Path(self.path).parent
            if not parent.exists():
                raise StorageError("the store's folder does not exist", path=parent)
            if read_only and not Path(self.path).exists():
                raise NotFoundError(
                    "no store here; run 'cvm ingest' or 'cvm demo' first", path=self.path
                )
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.IOException as exc:
            raise StorageError(f"cannot open the store: {exc}", path=self.path) from exc
        except duckdb.Error as exc:
            raise StorageError(f"not a usable DuckDB store: {exc}", path=self.path) from exc
        if not read_only:
            self.migrate()
            self.recover()
        else:
            self._check_version()

    # -- lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- schema --------------------------------------------------------------------
    def schema_version(self) -> int:
        """Return the schema version of the store (0 for an empty database)."""
        exists = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'cvm_schema'"
        ).fetchone()
        if not exists or exists[0] == 0:
            return 0
        row = self.con.execute("SELECT coalesce(max(version), 0) FROM cvm_schema").fetchone()
        return int(row[0]) if row else 0

    def _check_version(self) -> int:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"the store has schema version {version}, newer than this cvm supports "
                f"({SCHEMA_VERSION}); upgrade cvm",
                path=self.path,
            )
        return version

    def migrate(self) -> int:
        """Apply pending migrations, each atomically; return the resulting version."""
        version = self._check_version()
        for target in sorted(v for v in MIGRATIONS if v > version):
            description, statements = MIGRATIONS[target]
            with self.transaction():
                for statement in statements:
                    self.con.execute(statement)
                self.con.execute(
                    "INSERT INTO cvm_schema VALUES (?, ?, ?)",
                    [target, description, dt.datetime.now()],
                )
        return max(version, SCHEMA_VERSION)

    def recover(self) -> dict[str, int]:
        """Remove rows of loads and runs that never committed; return rows removed per table.

        Every load writes an ``ingest_log`` row and every analysis a ``runs`` row in the
        same transaction as its data, so those rows are the commit records. DuckDB
        writes large appends to the database file before the commit ("optimistic
        writes"); a process killed during the commit can leave such rows readable
        without their commit record (duckdb/duckdb PR #25931). They are removed here,
        which restores the store as it was before the interrupted load. A cheap count
        comparison skips the work when the store is consistent.
        """
        # table → (key, commit table, expected row count from the commit table or None)
        checks = {
            "transactions": (
                "batch_id",
                "ingest_log",
                "SELECT sum(rows_loaded) FROM ingest_log WHERE table_name = 'transactions'",
            ),
            "quarantine": (
                "batch_id",
                "ingest_log",
                "SELECT sum(rows_quarantined) FROM ingest_log",
            ),
            "customers": ("batch_id", "ingest_log", None),
            **{
                name: (
                    "batch_id",
                    "ingest_log",
                    f"SELECT sum(rows_loaded) FROM ingest_log WHERE table_name = '{name}'",
                )
                for name in INPUT_COLUMNS
            },
            "customer_snapshots": ("run_id", "runs", "SELECT sum(n_customers) FROM runs"),
            "period_snapshots": ("run_id", "runs", "SELECT sum(n_periods) FROM runs"),
            "model_fits": ("run_id", "runs", None),
        }
        removed: dict[str, int] = {}
        for table, (key, log, expected) in checks.items():
            orphans = f"FROM {table} WHERE {key} NOT IN (SELECT {key} FROM {log})"
            if expected is not None:
                row = self.con.execute(
                    f"SELECT (SELECT count(*) FROM {table}), coalesce(({expected}), 0)"
                ).fetchone()
            else:
                row = self.con.execute(f"SELECT count(*), 0 {orphans}").fetchone()
            if row is None or row[0] == row[1]:
                continue
            with self.transaction():
                deleted = self.con.execute(f"DELETE {orphans}").fetchone()
            if deleted and deleted[0]:
                removed[table] = int(deleted[0])
        if removed:
            warnings.warn(
                f"{self.path}: removed the rows of an interrupted load or analysis "
                f"({', '.join(f'{t}: {n}' for t, n in removed.items())})",
                stacklevel=2,
            )
        return removed

    # -- access --------------------------------------------------------------------
    @cached_property
    def backend(self) -> Any:
        """The Ibis backend over the store's connection, created on first use.

        Creating it sets the session time zone to UTC, which loads DuckDB's ICU
        extension (about 0.15 s); loading data never needs it.
        """
        return ibis.duckdb.from_connection(self.con)

    def to_arrow(self, expr: Any) -> pa.Table:
        """Execute an Ibis expression over this store and return an Arrow table.

        Runs the compiled SQL on the store's DuckDB connection, which skips the
        per-column result conversion of Ibis's ``to_pyarrow`` (a quarter of a second
        for 200,000 rows); an expression bound to another backend, or holding in-memory
        tables (``ibis.memtable``, which Ibis registers only when it executes), falls
        back to it.
        """
        if ibis.get_backend(expr) is not self.backend or expr.op().find(ops.InMemoryTable):
            table: pa.Table = expr.to_pyarrow()
            return table
        result: pa.Table = self.con.execute(self.backend.compile(expr)).to_arrow_table()
        return result

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run a block atomically: commit on success, roll back on any exception."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            try:
                self.con.execute("COMMIT")
            except duckdb.Error as exc:
                raise StorageError(f"commit failed: {exc}", path=self.path) from exc

    def table(self, name: str) -> Any:
        """Return a store table as an Ibis table expression.

        Raises
        ------
        NotFoundError
            If the table does not exist.
        """
        if name not in self.backend.list_tables():
            raise NotFoundError(f"no table '{name}' in the store", path=self.path)
        return self.backend.table(name)

    def count(self, name: str) -> int:
        """Return the number of rows of a store table."""
        row = self.con.execute(f'SELECT count(*) FROM "{name}"').fetchone()
        return int(row[0]) if row else 0
