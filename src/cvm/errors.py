"""The exceptions cvm raises.

Every error cvm raises derives from :class:`CVMError`; subclasses also inherit the
matching built-in exception so that ``except ValueError`` keeps working::

    CVMError
    ├── ConfigError(ValueError)            cvm.toml or a setting is wrong
    ├── DataError(ValueError)              input data cannot be used
    │   ├── SchemaError                    a required column is missing or ambiguous
    │   └── ValidationError                a value is wrong (file, line, column, value)
    ├── StorageError(RuntimeError)         the store cannot be opened, migrated or written
    ├── NotFoundError(LookupError)         a customer, run or table does not exist
    ├── ModelError(RuntimeError)
    │   ├── NotFittedError                 a model is used before ``fit``
    │   └── ConvergenceError               an optimiser did not converge
    └── AuthError(PermissionError)         a caller lacks the role for an operation

Errors carry their context as attributes (``path``, ``line``, ``column``, ``value``,
``expected``) and format it into the message, e.g.
``transactions.csv, line 17, column 'amount': expected a number, got 'abc'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "AuthError",
    "CVMError",
    "ConfigError",
    "ConvergenceError",
    "DataError",
    "ModelError",
    "NotFittedError",
    "NotFoundError",
    "SchemaError",
    "StorageError",
    "ValidationError",
]


def _location(
    path: str | Path | None, line: int | None, column: str | None, key: str | None
) -> str:
    parts: list[str] = []
    if path is not None:
        parts.append(str(path))
    if line is not None:
        parts.append(f"line {line}")
    if column is not None:
        parts.append(f"column '{column}'")
    if key is not None:
        parts.append(f"key '{key}'")
    return ", ".join(parts)


class CVMError(Exception):
    """Base class of every error raised by cvm.

    Parameters
    ----------
    message
        What went wrong, in words a user can act on.
    path
        The file (or source name) the error is about.
    line
        1-based line (or row) number in that source.
    column
        The column or field name.
    key
        A configuration key (dotted), for configuration errors.
    value
        The offending value.
    expected
        What was expected instead.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
        key: str | None = None,
        value: Any = None,
        expected: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.column = column
        self.key = key
        self.value = value
        self.expected = expected
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = _location(self.path, self.line, self.column, self.key)
        return f"{where}: {self.message}" if where else self.message


class ConfigError(CVMError, ValueError):
    """The configuration file or a setting is invalid."""


class DataError(CVMError, ValueError):
    """Input data cannot be used as given."""


class SchemaError(DataError):
    """A required column is missing, ambiguous or of an unusable type."""


class ValidationError(DataError):
    """A value in the input is invalid."""


class StorageError(CVMError, RuntimeError):
    """The store cannot be opened, migrated, read or written."""


class NotFoundError(CVMError, LookupError):
    """A requested object (customer, run, table) does not exist."""


class ModelError(CVMError, RuntimeError):
    """A model cannot be fitted or used."""


class NotFittedError(ModelError):
    """A model method was called before ``fit``."""


class ConvergenceError(ModelError):
    """An optimiser failed to converge."""


class AuthError(CVMError, PermissionError):
    """The caller lacks the role required for an operation."""
