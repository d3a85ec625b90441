"""Ingestion: read files and DataFrames, map columns, validate, quarantine, load."""

from cvm.ingest.loader import IngestReport, ingest, ingest_customers, ingest_transactions

__all__ = ["IngestReport", "ingest", "ingest_customers", "ingest_transactions"]
