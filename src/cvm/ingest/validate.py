"""Turn a staged source into typed canonical columns plus, per row, the first problem.

Everything happens in one SQL pass inside the store's engine: each canonical column is
cast from its source (text or native type), and a chain of checks gives each row a
``__reason``, the offending ``__column`` and its ``__raw`` value, or NULLs when the row
is valid. The checks, in order of the canonical columns: missing required values,
values that are not numbers, dates, booleans or one of a column's choices, non-finite
numbers, numbers out of their column's range, implausible dates; then, for tables that
need one of several columns (the customer keys of identities), a row with none.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from cvm.ingest.mapping import ColumnSpec, Field, render_sql

__all__ = [
    "DATE_FORMATS",
    "FALSE_WORDS",
    "TRUE_WORDS",
    "build_typed_select",
    "detect_date_format",
    "literal",
    "quote",
    "raw_text",
]

#: Candidate text date formats, tried on a sample when ``date_format = "auto"``.
DATE_FORMATS: tuple[str, ...] = (
    "%Y%m%d",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
    "%d %b %Y",
    "%d-%b-%Y",
    "%b %d, %Y",
)

_NUMERIC = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_TEMPORAL = {
    "DATE",
    "TIMESTAMP",
    "TIMESTAMP_NS",
    "TIMESTAMP_MS",
    "TIMESTAMP_S",
    "TIMESTAMP WITH TIME ZONE",
}


def quote(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """Quote an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def raw_text(column: str, alias: str = "s") -> str:
    """Return SQL for a source value as trimmed text, NULL when empty.

    ``alias`` qualifies the column (the staging table is ``s`` in every query built
    here); pass ``""`` for an unqualified name.
    """
    name = f"{alias}.{quote(column)}" if alias else quote(column)
    return f"nullif(trim(CAST({name} AS VARCHAR)), '')"


def detect_date_format(
    con: duckdb.DuckDBPyConnection, table: str, column: str
) -> tuple[str | None, str | None]:
    """Choose the text date format of a staged column from a sample of its values.

    Returns
    -------
    (format, note)
        ``format`` is ``None`` when ISO 8601 covers the sample at least as well as any
        candidate; ``note`` explains an ambiguous choice (day/month order undecidable).
    """
    text = raw_text(column, alias="")
    sample = f"(SELECT {text} AS v FROM {quote(table)} WHERE {text} IS NOT NULL LIMIT 20000)"
    counts = ["count(TRY_CAST(v AS TIMESTAMP))"]
    counts += [f"count(TRY_STRPTIME(v, {literal(f)}))" for f in DATE_FORMATS]
    row = con.execute(f"SELECT count(*), {', '.join(counts)} FROM {sample}").fetchone()
    if row is None or row[0] == 0:
        return None, None
    _, iso, *hits = row
    best = max(range(len(hits)), key=lambda i: hits[i])
    if iso >= hits[best]:
        return None, None
    chosen = DATE_FORMATS[best]
    ties = [DATE_FORMATS[i] for i, h in enumerate(hits) if h == hits[best] and i != best]
    note = f"date format {chosen!r} (detected)"
    if ties:
        note = (
            f"dates fit both {chosen!r} and {ties[0]!r}; assumed {chosen!r} "
            "(set ingest.date_format to choose)"
        )
    return chosen, note


#: Accepted boolean spellings (compared in lower case).
TRUE_WORDS: tuple[str, ...] = ("true", "yes", "y", "1")
FALSE_WORDS: tuple[str, ...] = ("false", "no", "n", "0")
_BOOLEAN_EXPECTED = "expected true/false, yes/no, y/n or 1/0, got {raw}"


def _in_list(values: tuple[str, ...]) -> str:
    return ", ".join(literal(v) for v in values)


def _out_of_range(field: Field, value: str) -> str | None:
    """Return the SQL condition for a number ``value`` outside the field's rules."""
    parts = []
    if field.minimum is not None:
        parts.append(f"{value} < {field.minimum!r}")
    if field.maximum is not None:
        parts.append(f"{value} > {field.maximum!r}")
    if field.integer:
        parts.append(f"{value} <> trunc({value})")
    return " OR ".join(parts) or None


@dataclass(frozen=True)
class _Check:
    condition: str
    column: str | None
    raw: str
    reason: str  # may contain "{raw}", replaced by the quoted raw value


def _reason_sql(check: _Check) -> str:
    if "{raw}" not in check.reason:
        return literal(check.reason)
    before, after = check.reason.split("{raw}", 1)
    quoted = f"coalesce('''' || left({check.raw}, 200) || '''', 'nothing')"
    return f"{literal(before)} || {quoted} || {literal(after)}"


@dataclass(frozen=True)
class TypedSelect:
    """The typed, checked view of a staged source.

    Attributes
    ----------
    sql
        ``SELECT __line, <canonical columns>, <extra columns>, __check FROM <stage> AS s``;
        ``__check`` is NULL for a valid row, else the index of the first failed check.
    column, raw, reason
        SQL expressions over ``t.__check`` and the staged row ``s``, giving a failed
        row's offending column, its raw value and the reason in words; they are
        evaluated only for quarantined rows.
    """

    sql: str
    column: str
    raw: str
    reason: str


def build_typed_select(
    table: str,
    specs: dict[str, ColumnSpec],
    source_types: dict[str, str],
    *,
    date_formats: dict[str, str | None],
    min_date: dt.date,
    max_date: dt.datetime,
    extra: dict[str, str] | None = None,
    one_of: tuple[str, ...] = (),
) -> TypedSelect:
    """Build the SQL that types and checks every row of a staged source.

    Parameters
    ----------
    table
        The staging table (source columns and ``__line``).
    specs
        Where each canonical column comes from (:func:`~cvm.ingest.mapping.resolve_columns`).
    source_types
        DuckDB type name of each source column.
    date_formats
        Text format per canonical timestamp column (``None``: ISO 8601).
    min_date, max_date
        Plausible date range; values outside it are rejected.
    extra
        Further output columns: name → SQL expression over the staged row ``s``.
    one_of
        Canonical columns of which each row needs at least one value; a row with none
        is rejected as having no customer key (without a column).

    Returns
    -------
    TypedSelect
        The typed view's SQL and the expressions that describe a failed row.

    Notes
    -----
    A column of a native type (a Parquet or DataFrame number, date or timestamp) is
    checked for NULL and non-finite values only; the text casts that detect bad text
    are applied to text columns alone, which keeps the pass over the data cheap.
    """

    def base(column: str) -> str:
        return source_types.get(column, "VARCHAR").split("(")[0]

    def source(column: str) -> str:
        return f"s.{quote(column)}"

    def missing(column: str) -> str:
        if base(column) == "VARCHAR":
            return f"{raw_text(column)} IS NULL"
        return f"{source(column)} IS NULL"

    def number(column: str) -> str:
        if base(column) in _NUMERIC:
            return f"CAST({source(column)} AS DOUBLE)"
        return f"TRY_CAST({raw_text(column)} AS DOUBLE)"

    def not_a_number(column: str) -> str | None:
        if base(column) in _NUMERIC:
            return None
        return f"{raw_text(column)} IS NOT NULL AND {number(column)} IS NULL"

    def not_finite(column: str) -> str | None:
        if base(column) in {"DOUBLE", "FLOAT"} or base(column) not in _NUMERIC:
            return f"NOT isfinite({number(column)})"
        return None

    values: list[str] = []
    typed: dict[str, str] = {}
    checks: list[_Check] = []

    def check(condition: str | None, column: str | None, raw: str, reason: str) -> None:
        if condition is not None:
            checks.append(_Check(condition, column, raw, reason))

    for name, spec in specs.items():
        kind, required = spec.field.kind, spec.field.required
        if spec.expression is not None:
            for column in dict.fromkeys(spec.inputs()):
                needed = f"needed for {name} = {spec.text}"
                check(missing(column), column, "NULL", f"missing value, {needed}")
                check(
                    not_a_number(column), column, raw_text(column), "expected a number, got {raw}"
                )
            value = render_sql(spec.expression, number)
            values.append(f"{value} AS {quote(name)}")
            # With every input present, only a division by zero leaves no value.
            check(f"{value} IS NULL", name, "NULL", f"{name} = {spec.text} divides by zero")
            check(
                f"NOT isfinite({value})",
                name,
                f"CAST({value} AS VARCHAR)",
                f"{name} = {spec.text} is not a finite number: {{raw}}",
            )
            check(
                _out_of_range(spec.field, value),
                name,
                f"CAST({value} AS VARCHAR)",
                f"{name} = {spec.text}: expected {spec.field.expected()}, got {{raw}}",
            )
            continue
        if spec.source is None:
            sql_type = {"number": "DOUBLE", "timestamp": "TIMESTAMP", "boolean": "BOOLEAN"}.get(
                kind, "VARCHAR"
            )
            values.append(f"CAST(NULL AS {sql_type}) AS {quote(name)}")
            continue
        column = spec.source
        raw = raw_text(column)
        if required:
            label = f"missing {name}" + ("" if column == name else f" (column '{column}')")
            check(missing(column), column, "NULL", label)
        if kind == "id":
            if base(column) in _NUMERIC - {"DOUBLE", "FLOAT", "DECIMAL"}:
                value = f"CAST({source(column)} AS VARCHAR)"
            else:
                # Ids written as floats ('17850.0') are read as '17850'.
                value = (
                    f"CASE WHEN contains({raw}, '.') "
                    f"THEN regexp_replace({raw}, '^([0-9]+)\\.0+$', '\\1') ELSE {raw} END"
                )
        elif kind == "text":
            value = raw
        elif kind == "number":
            value = number(column)
            check(not_a_number(column), column, raw, "expected a number, got {raw}")
            check(not_finite(column), column, raw, "expected a finite number, got {raw}")
            check(
                _out_of_range(spec.field, value),
                column,
                raw,
                f"expected {spec.field.expected()}, got {{raw}}",
            )
        elif kind == "boolean":
            if base(column) == "BOOLEAN":
                value = f"CAST({source(column)} AS BOOLEAN)"
            elif base(column) in _NUMERIC:
                value = (
                    f"CASE WHEN {source(column)} = 1 THEN true "
                    f"WHEN {source(column)} = 0 THEN false END"
                )
                check(
                    f"{source(column)} IS NOT NULL AND {value} IS NULL",
                    column,
                    raw,
                    _BOOLEAN_EXPECTED,
                )
            else:
                word = f"lower({raw})"
                value = (
                    f"CASE WHEN {word} IN ({_in_list(TRUE_WORDS)}) THEN true "
                    f"WHEN {word} IN ({_in_list(FALSE_WORDS)}) THEN false END"
                )
                check(f"{raw} IS NOT NULL AND {value} IS NULL", column, raw, _BOOLEAN_EXPECTED)
        elif kind == "choice":
            word = f"trim(regexp_replace(lower({raw}), '[\\s_-]+', ' ', 'g'))"
            cases = " ".join(
                f"WHEN {literal(given)} THEN {literal(stored)}"
                for given, stored in spec.field.choices
            )
            value = f"CASE {word} {cases} END"
            check(
                f"{raw} IS NOT NULL AND {value} IS NULL",
                column,
                raw,
                f"expected {spec.field.expected()}, got {{raw}}",
            )
        elif kind == "timestamp":
            if base(column) in _TEMPORAL:
                value = f"CAST({source(column)} AS TIMESTAMP)"
            else:
                fmt = date_formats.get(name)
                iso = f"TRY_CAST({raw} AS TIMESTAMP)"
                value = f"coalesce(TRY_STRPTIME({raw}, {literal(fmt)}), {iso})" if fmt else iso
                expected = f"a date like {fmt}" if fmt else "a date (YYYY-MM-DD)"
                if not fmt:
                    shaped = f"regexp_matches({raw}, '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')"
                    check(
                        f"{raw} IS NOT NULL AND {value} IS NULL AND {shaped}",
                        column,
                        raw,
                        "no such date {raw}: the month has no such day (or no such month)",
                    )
                check(
                    f"{raw} IS NOT NULL AND {value} IS NULL",
                    column,
                    raw,
                    f"expected {expected}, got {{raw}}",
                )
            check(
                f"{value} < TIMESTAMP {literal(min_date.isoformat())}",
                column,
                raw,
                f"implausible date {{raw}}: before {min_date.isoformat()}",
            )
            check(
                f"{value} > TIMESTAMP {literal(max_date.isoformat(sep=' '))}",
                column,
                raw,
                f"implausible date {{raw}}: after {max_date.date().isoformat()}, in the future",
            )
        else:  # pragma: no cover - kinds are fixed in mapping.py
            raise AssertionError(kind)
        values.append(f"{value} AS {quote(name)}")
        typed[name] = value

    keys = [(name, specs[name].source) for name in one_of if name in typed]
    if keys:
        labels = [str(column) for _, column in keys]
        check(
            " AND ".join(f"({typed[name]}) IS NULL" for name, _ in keys),
            None,
            "NULL",
            f"no customer key: {', '.join(labels)} {'is' if len(labels) == 1 else 'are'} empty",
        )

    values += [f"{sql} AS {quote(name)}" for name, sql in (extra or {}).items()]
    first_failure = (
        "CASE " + " ".join(f"WHEN {c.condition} THEN {i}" for i, c in enumerate(checks)) + " END"
        if checks
        else "CAST(NULL AS INTEGER)"
    )

    def describe(part: list[str]) -> str:
        if not part:
            return "CAST(NULL AS VARCHAR)"
        return "CASE t.__check " + " ".join(part) + " END"

    return TypedSelect(
        sql=(
            f"SELECT s.__line AS __line, {', '.join(values)}, {first_failure} AS __check "
            f"FROM {quote(table)} AS s"
        ),
        column=describe(
            [
                f"WHEN {i} THEN {literal(c.column) if c.column is not None else 'NULL'}"
                for i, c in enumerate(checks)
            ]
        ),
        raw=describe([f"WHEN {i} THEN CAST({c.raw} AS VARCHAR)" for i, c in enumerate(checks)]),
        reason=describe([f"WHEN {i} THEN {_reason_sql(c)}" for i, c in enumerate(checks)]),
    )
