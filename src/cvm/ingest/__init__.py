"""Ingestion: read files and DataFrames, map columns, validate, quarantine, load."""

from cvm.ingest.loader import (
    INPUT_TABLES,
    REFERENCING_TABLES,
    IngestReport,
    ingest,
    ingest_actions,
    ingest_customers,
    ingest_identities,
    ingest_interactions,
    ingest_referrals,
    ingest_surveys,
    ingest_transactions,
)

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
