"""The store's versioned schema and its migrations.

Each migration is a list of SQL statements applied in one transaction; the table
``cvm_schema`` records which versions a store has. A store written by a newer cvm
(a version above :data:`SCHEMA_VERSION`) is refused rather than misread.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "INPUT_COLUMNS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SEGMENT_COLUMNS",
    "TRANSACTION_COLUMNS",
]

#: Canonical transaction columns and their store types, in order.
TRANSACTION_COLUMNS: Final[dict[str, str]] = {
    "customer_id": "VARCHAR NOT NULL",
    "ts": "TIMESTAMP NOT NULL",
    "amount": "DOUBLE NOT NULL",
    "transaction_id": "VARCHAR",
    "margin": "DOUBLE",
    "cost": "DOUBLE",
    "quantity": "DOUBLE",
    "product_id": "VARCHAR",
    "channel": "VARCHAR",
    "currency": "VARCHAR",
}

_V1: Final[list[str]] = [
    """CREATE TABLE cvm_schema (
        version INTEGER NOT NULL PRIMARY KEY,
        description VARCHAR NOT NULL,
        applied_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE ingest_log (
        batch_id VARCHAR NOT NULL PRIMARY KEY,
        table_name VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        content_hash VARCHAR NOT NULL,
        rows_read BIGINT NOT NULL,
        rows_loaded BIGINT NOT NULL,
        rows_updated BIGINT NOT NULL,
        rows_quarantined BIGINT NOT NULL,
        rows_duplicate BIGINT NOT NULL,
        started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP NOT NULL,
        cvm_version VARCHAR NOT NULL
    )""",
    """CREATE TABLE quarantine (
        batch_id VARCHAR NOT NULL,
        table_name VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        line BIGINT,
        column_name VARCHAR,
        raw_value VARCHAR,
        reason VARCHAR NOT NULL,
        record VARCHAR
    )""",
    "CREATE TABLE transactions ("
    + ", ".join(f"{name} {kind}" for name, kind in TRANSACTION_COLUMNS.items())
    + ", row_key UBIGINT NOT NULL, occurrence INTEGER NOT NULL,"
    " batch_id VARCHAR NOT NULL, line BIGINT)",
    """CREATE TABLE customers (
        customer_id VARCHAR NOT NULL PRIMARY KEY,
        acquired_at TIMESTAMP,
        acquisition_channel VARCHAR,
        email VARCHAR,
        phone VARCHAR,
        loyalty_card VARCHAR,
        attributes JSON,
        row_key UBIGINT NOT NULL,
        batch_id VARCHAR NOT NULL,
        line BIGINT
    )""",
    """CREATE TABLE runs (
        run_id VARCHAR NOT NULL PRIMARY KEY,
        as_of DATE NOT NULL,
        created_at TIMESTAMP NOT NULL,
        time_unit VARCHAR NOT NULL,
        period VARCHAR NOT NULL,
        settings JSON NOT NULL,
        n_customers BIGINT NOT NULL,
        n_periods BIGINT NOT NULL,
        cvm_version VARCHAR NOT NULL
    )""",
    """CREATE TABLE customer_snapshots (
        run_id VARCHAR NOT NULL,
        customer_id VARCHAR NOT NULL,
        first_purchase DATE,
        last_purchase DATE,
        frequency BIGINT NOT NULL,
        recency DOUBLE NOT NULL,
        t DOUBLE NOT NULL,
        monetary_value DOUBLE NOT NULL,
        occasions BIGINT NOT NULL,
        transactions BIGINT NOT NULL,
        revenue DOUBLE NOT NULL,
        returns DOUBLE NOT NULL,
        margin DOUBLE NOT NULL,
        realized_value DOUBLE NOT NULL,
        PRIMARY KEY (run_id, customer_id)
    )""",
    """CREATE TABLE period_snapshots (
        run_id VARCHAR NOT NULL,
        customer_id VARCHAR NOT NULL,
        period_start DATE NOT NULL,
        occasions BIGINT NOT NULL,
        revenue DOUBLE NOT NULL,
        margin DOUBLE NOT NULL
    )""",
]

_V2: Final[list[str]] = [
    "ALTER TABLE customer_snapshots ADD COLUMN p_alive DOUBLE",
    "ALTER TABLE customer_snapshots ADD COLUMN expected_purchases_90d DOUBLE",
    "ALTER TABLE customer_snapshots ADD COLUMN expected_spend DOUBLE",
    "ALTER TABLE customer_snapshots ADD COLUMN potential_value DOUBLE",
    """CREATE TABLE model_fits (
        run_id VARCHAR NOT NULL,
        role VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        chosen BOOLEAN NOT NULL,
        log_likelihood DOUBLE,
        aic DOUBLE,
        bic DOUBLE,
        n_customers BIGINT,
        converged BOOLEAN,
        params JSON,
        backtest JSON,
        reason VARCHAR,
        error VARCHAR,
        fitted JSON
    )""",
]

#: Canonical columns of the other event-like input tables (DESIGN.md "Inputs"), in order.
#: Each table also stores ``row_key``, ``occurrence``, ``batch_id`` and ``line`` like
#: transactions, so loads are idempotent and every row traces back to its source line.
INPUT_COLUMNS: Final[dict[str, dict[str, str]]] = {
    "interactions": {
        "customer_id": "VARCHAR NOT NULL",
        "ts": "TIMESTAMP NOT NULL",
        "kind": "VARCHAR NOT NULL",
        "channel": "VARCHAR",
        "cost": "DOUBLE",
        "csat": "DOUBLE",
        "resolved": "BOOLEAN",
    },
    "surveys": {
        "customer_id": "VARCHAR NOT NULL",
        "ts": "TIMESTAMP NOT NULL",
        "nps": "DOUBLE",
        "csat": "DOUBLE",
        "comment": "VARCHAR",
    },
    "referrals": {
        "referrer_id": "VARCHAR NOT NULL",
        "referred_id": "VARCHAR NOT NULL",
        "ts": "TIMESTAMP",
    },
    "identities": {
        "source": "VARCHAR NOT NULL",
        "source_id": "VARCHAR NOT NULL",
        "customer_id": "VARCHAR",
        "email": "VARCHAR",
        "phone": "VARCHAR",
        "loyalty_card": "VARCHAR",
        "external_id": "VARCHAR",
    },
    "actions": {
        "customer_id": "VARCHAR NOT NULL",
        "action": "VARCHAR NOT NULL",
        "ts": "TIMESTAMP NOT NULL",
        "group": "VARCHAR NOT NULL",
        "campaign": "VARCHAR",
        "cost": "DOUBLE",
        "channel": "VARCHAR",
    },
}


def _input_table(name: str, columns: dict[str, str]) -> str:
    body = ", ".join(f'"{column}" {kind}' for column, kind in columns.items())
    return (
        f"CREATE TABLE {name} ({body}, row_key UBIGINT NOT NULL, occurrence INTEGER NOT NULL,"
        " batch_id VARCHAR NOT NULL, line BIGINT)"
    )


_V3: Final[list[str]] = [
    *(_input_table(name, columns) for name, columns in INPUT_COLUMNS.items()),
    # no primary key: the map is rebuilt whole and unique by construction, and the key's
    # index cost more than the rest of identity resolution on a million ids
    """CREATE TABLE customer_map (
        customer_id VARCHAR NOT NULL,
        unified_id VARCHAR NOT NULL,
        rule VARCHAR NOT NULL,
        resolved_at TIMESTAMP NOT NULL
    )""",
    """CREATE TABLE identity_conflicts (
        identifier_kind VARCHAR NOT NULL,
        identifier VARCHAR NOT NULL,
        customer_ids VARCHAR[] NOT NULL,
        reason VARCHAR NOT NULL,
        resolved_at TIMESTAMP NOT NULL
    )""",
]

#: Columns the value and segment stages add to every customer snapshot (schema v4).
SEGMENT_COLUMNS: Final[dict[str, str]] = {
    "cost_to_serve": "DOUBLE",
    "influence_value": "DOUBLE",
    "referred_customers": "BIGINT",
    "referred_total": "BIGINT",
    "total_value": "DOUBLE",
    "value_score": "DOUBLE",
    "tier": "INTEGER",
    "tier_name": "VARCHAR",
    "r_score": "INTEGER",
    "f_score": "INTEGER",
    "m_score": "INTEGER",
    "rfm_code": "VARCHAR",
    "rfm_segment": "VARCHAR",
    "trend": "DOUBLE",
    "lifecycle_stage": "VARCHAR",
    "lifecycle_reason": "VARCHAR",
    "nps": "DOUBLE",
    "nps_category": "VARCHAR",
    "csat": "DOUBLE",
}

_V4: Final[list[str]] = [
    *(f"ALTER TABLE customer_snapshots ADD COLUMN {c} {k}" for c, k in SEGMENT_COLUMNS.items()),
    "ALTER TABLE runs ADD COLUMN details JSON",
]

#: Ordered migrations: version → (description, statements).
MIGRATIONS: Final[dict[int, tuple[str, list[str]]]] = {
    1: ("initial schema: transactions, customers, quarantine, ingest log, snapshots", _V1),
    2: ("potential value in snapshots; model fits per run", _V2),
    3: ("interactions, surveys, referrals, identities, actions; identity resolution", _V3),
    4: ("values, tiers, RFM, lifecycle and satisfaction in snapshots; run details", _V4),
}

SCHEMA_VERSION: Final[int] = max(MIGRATIONS)
