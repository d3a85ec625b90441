"""Readers that stage a source (CSV, Parquet, DataFrame) into the store's engine.

A staged source is a DuckDB table with the source's own columns plus ``__line``, the
1-based line of the record in the file (CSV: the physical line where the record
starts, header included; Parquet and DataFrames: the row number). CSV is parsed by
the standard library's reader in bounded batches so that line numbers are exact even
with quoted newlines and blank lines; records whose field count does not match the
header are returned as structural rejects instead of being staged.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from cvm.errors import DataError, SchemaError

__all__ = ["Progress", "Reject", "StagedSource", "hash_file", "stage_source"]

#: Called with (units done, units total); units are bytes for files, rows otherwise.
Progress = Callable[[int, int], None]

_BATCH_ROWS = 100_000
_SAMPLE_BYTES = 256 * 1024
_DELIMITERS = ",;\t|"
_FIELD_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class Reject:
    """A record rejected before staging (wrong number of fields)."""

    line: int
    reason: str
    record: str


@dataclass
class StagedSource:
    """A source staged as a temporary table.

    Attributes
    ----------
    name
        Display name (file path, or ``"<pandas.DataFrame>"`` …).
    table
        Name of the temporary staging table (source columns + ``__line``).
    columns
        The source's column names, in order.
    content_hash
        SHA-256 of the source's bytes (files) or of its Arrow IPC stream (frames).
    rows_read
        Records read, structural rejects included.
    rejects
        Structural rejects (never staged).
    notes
        Facts worth reporting (detected encoding, delimiter, replaced bytes …).
    """

    name: str
    table: str
    columns: list[str]
    content_hash: str
    rows_read: int
    rejects: list[Reject] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- encoding ---------------------------------------------------------------------------
class _FallbackCounter:
    count = 0


_FALLBACK = _FallbackCounter()


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Decode bytes that are not valid UTF-8 as Windows-1252 (mixed-encoding files)."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    _FALLBACK.count += len(bad)
    return bad.decode("cp1252", errors="replace"), exc.end


codecs.register_error("cvm-cp1252", _cp1252_fallback)


def _detect_encoding(sample: bytes) -> tuple[str, str, str]:
    """Return (codec, errors handler, note) for a file starting with ``sample``.

    UTF-8 (with or without BOM) and UTF-16 with BOM are recognised exactly. A sample
    holding valid multi-byte UTF-8 is UTF-8, and its stray invalid bytes are read as
    Windows-1252 (mixed-encoding exports). A sample with NUL-interleaved text is given to
    ``charset-normalizer`` (BOM-less UTF-16/32). Anything else is a single-byte legacy
    file, read as Windows-1252: a detector's guess on short Western text is often
    wrong (cp1250, Big5) and would silently corrupt names and ids.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "cvm-cp1252", "encoding utf-8 with BOM (detected)"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "strict", "encoding utf-16 (detected)"
    decoded = sample.decode("utf-8", errors="surrogateescape")
    invalid = sum(1 for ch in decoded if "\udc80" <= ch <= "\udcff")
    # A multi-byte character cut at the end of the sample is not an invalid byte.
    tail = decoded[-3:]
    invalid -= sum(1 for ch in tail if "\udc80" <= ch <= "\udcff")
    if invalid <= 0:
        return "utf-8", "cvm-cp1252", "encoding utf-8 (detected)"
    multibyte = sum(1 for ch in decoded if ord(ch) > 127 and not "\udc80" <= ch <= "\udcff")
    if multibyte > 0:
        return "utf-8", "cvm-cp1252", "encoding utf-8 (detected)"
    if sample.count(b"\x00") > len(sample) // 10:
        from charset_normalizer import from_bytes

        best = from_bytes(sample).best()
        if best is not None and best.encoding.startswith(("utf_16", "utf_32")):
            return best.encoding, "strict", f"encoding {best.encoding} (detected)"
    return (
        "cp1252",
        "replace",
        "not UTF-8: read as Windows-1252 (pass --encoding if that is wrong)",
    )


def _detect_delimiter(text: str, path: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()][:50]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        pass
    counts = {d: lines[0].count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _line_of_decode_error(path: Path, codec: str) -> int | None:
    """Find the 1-based line holding the first byte that ``codec`` cannot decode."""
    decoder = codecs.getincrementaldecoder(codec)()
    line = 1
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            try:
                line += decoder.decode(chunk).count("\n")
            except UnicodeDecodeError as exc:
                good = exc.object[: exc.start]
                return line + good.decode(codec, errors="ignore").count("\n")
    return None


def hash_file(path: Path) -> str:
    """Return the SHA-256 of a file's bytes (read in 4 MiB chunks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(4 * 1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unique_columns(names: list[str], path: str) -> list[str]:
    seen: dict[str, tuple[int, str]] = {}
    result: list[str] = []
    for index, raw in enumerate(names, start=1):
        name = raw.strip().lstrip("\ufeff").strip() or f"column_{index}"
        key = name.casefold()  # the store's identifiers are case-insensitive
        if key in seen:
            first, first_name = seen[key]
            same = (
                "" if first_name == name else f" ('{first_name}' and '{name}' differ only in case)"
            )
            raise SchemaError(
                f"duplicate column name (columns {first} and {index}){same}",
                path=path,
                line=1,
                column=name,
            )
        seen[key] = (index, name)
        result.append(name)
    return result


# -- CSV --------------------------------------------------------------------------------
class _CountingReader(io.RawIOBase):
    """A binary reader that reports bytes read to a progress callback."""

    def __init__(self, handle: io.BufferedReader, total: int, progress: Progress | None):
        self._handle = handle
        self._total = total
        self._done = 0
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._handle.readinto(buffer)
        self._done += n
        if self._progress is not None:
            self._progress(self._done, self._total)
        return n


def _strip_nul(lines: Iterator[str], counter: list[int]) -> Iterator[str]:
    for line in lines:
        if "\x00" in line:
            counter[0] += line.count("\x00")
            line = line.replace("\x00", "")
        yield line


def _stage_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    table: str,
    *,
    encoding: str,
    delimiter: str,
    progress: Progress | None,
    content_hash: str | None,
) -> StagedSource:
    name = str(path)
    size = path.stat().st_size
    if size == 0:
        raise SchemaError("the file is empty (no header line)", path=name)
    with path.open("rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    notes: list[str] = []
    if encoding == "auto":
        codec, errors, note = _detect_encoding(sample)
        notes.append(note)
    else:
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise DataError(f"unknown encoding {encoding!r}", path=name) from exc
        codec, errors = encoding, "strict"
    sample_text = sample.decode(codec, errors="replace")
    if delimiter == "auto":
        delimiter = _detect_delimiter(sample_text, name)
        notes.append(f"delimiter {delimiter!r} (detected)")
    elif len(delimiter) != 1:
        raise DataError(f"the delimiter must be one character, got {delimiter!r}", path=name)

    csv.field_size_limit(_FIELD_LIMIT)
    _FALLBACK.count = 0
    nul_count = [0]
    rejects: list[Reject] = []
    rows_read = 0
    staged = False
    with path.open("rb") as raw_handle:
        counting = _CountingReader(raw_handle, size, progress)
        text = io.TextIOWrapper(
            io.BufferedReader(counting, buffer_size=1 << 20),
            encoding=codec,
            errors=errors,
            newline="",
        )
        reader = csv.reader(_strip_nul(text, nul_count), delimiter=delimiter)
        try:
            header = next(reader, None)
            while header is not None and not header:  # leading blank lines
                header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise SchemaError("the file has no header line", path=name)
            columns = _unique_columns(header, name)
            width = len(columns)
            con.execute(
                f'CREATE TEMP TABLE "{table}" ('
                + ", ".join(f'"{_sql_ident(c)}" VARCHAR' for c in columns)
                + ", __line BIGINT)"
            )
            staged = True
            buffers: list[list[str | None]] = [[] for _ in range(width)]
            lines: list[int] = []
            previous_end = reader.line_num
            unclosed: int | None = None
            for row in reader:
                start = previous_end + 1
                previous_end = reader.line_num
                unclosed = None
                if not row:
                    continue  # blank line: not a record
                rows_read += 1
                if len(row) < width and "\n" in row[-1]:
                    unclosed = start  # a quoted field ran on; at end of file it never closed
                if len(row) != width:
                    if len(row) > width and not any(v.strip() for v in row[width:]):
                        row = row[:width]  # trailing empty fields (spreadsheet export)
                    else:
                        record = delimiter.join(row)
                        rejects.append(
                            Reject(
                                start,
                                f"the record has {len(row)} fields, the header has {width}",
                                record[:2000],
                            )
                        )
                        continue
                for index, value in enumerate(row):
                    buffers[index].append(value)
                lines.append(start)
                if len(lines) >= _BATCH_ROWS:
                    _flush(con, table, columns, buffers, lines)
                    buffers = [[] for _ in range(width)]
                    lines = []
            if unclosed is not None:
                raise DataError(
                    "a quote opened on this line is never closed: the rest of the file "
                    "would be one field; fix the quoting",
                    path=name,
                    line=unclosed,
                )
            if lines:
                _flush(con, table, columns, buffers, lines)
        except DataError:
            if staged:
                con.execute(f'DROP TABLE IF EXISTS "{table}"')
            raise
        except csv.Error as exc:
            if staged:
                con.execute(f'DROP TABLE IF EXISTS "{table}"')
            raise DataError(f"cannot parse CSV: {exc}", path=name, line=reader.line_num) from exc
        except UnicodeDecodeError as exc:
            if staged:
                con.execute(f'DROP TABLE IF EXISTS "{table}"')
            raise DataError(
                f"cannot decode the file as {codec}: {exc.reason}; pass --encoding",
                path=name,
                line=_line_of_decode_error(path, codec),
            ) from exc
    if _FALLBACK.count:
        notes.append(f"{_FALLBACK.count} bytes were not valid UTF-8 and were read as Windows-1252")
    if nul_count[0]:
        notes.append(f"{nul_count[0]} NUL characters were removed")
    return StagedSource(
        name=name,
        table=table,
        columns=columns,
        content_hash=content_hash or hash_file(path),
        rows_read=rows_read,
        rejects=rejects,
        notes=notes,
    )


def _flush(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: list[str],
    buffers: list[list[str | None]],
    lines: list[int],
) -> None:
    arrays: list[pa.Array] = [pa.array(values, type=pa.string()) for values in buffers]
    arrays.append(pa.array(lines, type=pa.int64()))
    batch = pa.Table.from_arrays(arrays, names=[*columns, "__line"])
    con.register("__cvm_batch", batch)
    try:
        con.execute(f'INSERT INTO "{table}" SELECT * FROM __cvm_batch')
    finally:
        con.unregister("__cvm_batch")


def _sql_ident(name: str) -> str:
    return name.replace('"', '""')


# -- Parquet ----------------------------------------------------------------------------
def _stage_parquet(
    con: duckdb.DuckDBPyConnection, path: Path, table: str, content_hash: str | None
) -> StagedSource:
    name = str(path)
    literal = str(path).replace("'", "''")
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        con.execute(f"DESCRIBE SELECT * FROM read_parquet('{literal}')").fetchall()
    except (duckdb.Error, pa.ArrowException, OSError) as exc:
        raise DataError(f"not a readable Parquet file: {exc}", path=name) from exc
    columns = _unique_columns([str(n) for n in names], name)
    con.execute(
        f'CREATE TEMP VIEW "{table}" AS SELECT * EXCLUDE (file_row_number), '
        "file_row_number + 1 AS __line "
        f"FROM read_parquet('{literal}', file_row_number = true)"
    )
    row = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    return StagedSource(
        name=name,
        table=table,
        columns=columns,
        content_hash=content_hash or hash_file(path),
        rows_read=int(row[0]) if row else 0,
    )


# -- DataFrames -------------------------------------------------------------------------
def _to_arrow(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        import pandas as pd

        if not isinstance(data, pd.DataFrame):
            raise DataError(f"cannot ingest a pandas {type(data).__name__}; pass a DataFrame")
        frame = data.reset_index(drop=True)
        try:
            return pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            # Object columns mixing types (e.g. after read_excel): keep every value as
            # text, so that each row is validated and quarantined on its own.
            frame = frame.copy()
            for column in frame.columns:
                if frame[column].dtype == object:
                    try:
                        pa.array(frame[column], from_pandas=True)
                    except (pa.ArrowTypeError, pa.ArrowInvalid):
                        frame[column] = frame[column].map(
                            lambda v: None if v is None or v != v else str(v)
                        )
            return pa.Table.from_pandas(frame, preserve_index=False)
    if module == "polars":
        if hasattr(data, "collect") and not hasattr(data, "to_arrow"):
            data = data.collect()  # a LazyFrame
        return data.to_arrow()
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    raise DataError(
        f"cannot ingest a {type(data).__name__}: pass a file path, a pandas or polars "
        "DataFrame, or a pyarrow Table"
    )


def _hash_arrow(tbl: pa.Table) -> str:
    digest = hashlib.sha256()

    class _Sink(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            digest.update(b)
            return len(b)

    with pa.ipc.new_stream(_Sink(), tbl.schema) as writer:
        writer.write_table(tbl)
    return digest.hexdigest()


def _stage_frame(con: duckdb.DuckDBPyConnection, data: Any, table: str) -> StagedSource:
    tbl = _to_arrow(data)
    name = f"<{type(data).__module__.split('.')[0]}.{type(data).__name__}>"
    columns = _unique_columns([str(c) for c in tbl.column_names], name)
    tbl = tbl.rename_columns(columns)
    lines = pa.array(range(1, tbl.num_rows + 1), type=pa.int64())
    tbl = tbl.append_column("__line", lines)
    con.register(f"{table}__arrow", tbl)
    con.execute(f'CREATE TEMP VIEW "{table}" AS SELECT * FROM "{table}__arrow"')
    return StagedSource(
        name=name,
        table=table,
        columns=columns,
        content_hash=_hash_arrow(tbl),
        rows_read=tbl.num_rows,
        notes=[],
    )


def stage_source(
    con: duckdb.DuckDBPyConnection,
    source: Any,
    table: str,
    *,
    encoding: str = "auto",
    delimiter: str = "auto",
    progress: Progress | None = None,
    content_hash: str | None = None,
) -> StagedSource:
    """Stage a file or DataFrame as a temporary table of the connection.

    Parameters
    ----------
    con
        The store's DuckDB connection.
    source
        A path to a ``.csv`` (``.txt``, ``.tsv``, optionally any text) or ``.parquet``
        file, or a pandas/polars DataFrame or pyarrow Table.
    table
        Name for the staging table.
    encoding, delimiter
        CSV reading options (``"auto"`` detects).
    progress
        Optional callback ``(done, total)``.
    content_hash
        The file's SHA-256 when the caller has it already (not computed again).

    Returns
    -------
    StagedSource

    Raises
    ------
    DataError
        If the source cannot be found or read.
    SchemaError
        If it has no header or duplicate column names.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise DataError("file not found", path=str(path))
        if path.is_dir():
            raise DataError("is a folder, not a file", path=str(path))
        with path.open("rb") as handle:
            magic = handle.read(4)
        if path.suffix.lower() in {".parquet", ".pq"} or magic == b"PAR1":
            return _stage_parquet(con, path, table, content_hash)
        return _stage_csv(
            con,
            path,
            table,
            encoding=encoding,
            delimiter=delimiter,
            progress=progress,
            content_hash=content_hash,
        )
    return _stage_frame(con, source, table)
