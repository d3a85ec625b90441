"""The integrated customer store (DuckDB by default, portable through Ibis)."""

from cvm.store.identity import IdentityReport, resolve_identities, unified
from cvm.store.schema import SCHEMA_VERSION, TRANSACTION_COLUMNS
from cvm.store.store import Store

__all__ = [
    "SCHEMA_VERSION",
    "TRANSACTION_COLUMNS",
    "IdentityReport",
    "Store",
    "resolve_identities",
    "unified",
]
