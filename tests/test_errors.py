from __future__ import annotations

import pytest

from cvm.errors import (
    AuthError,
    ConfigError,
    ConvergenceError,
    CVMError,
    DataError,
    ModelError,
    NotFittedError,
    NotFoundError,
    SchemaError,
    StorageError,
    ValidationError,
)


def test_message_carries_its_context() -> None:
    error = ValidationError(
        "expected a number, got 'abc'", path="transactions.csv", line=17, column="amount"
    )
    assert str(error) == "transactions.csv, line 17, column 'amount': expected a number, got 'abc'"
    assert (error.path, error.line, error.column) == ("transactions.csv", 17, "amount")


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (ConfigError, ValueError),
        (DataError, ValueError),
        (SchemaError, ValueError),
        (ValidationError, ValueError),
        (StorageError, RuntimeError),
        (NotFoundError, LookupError),
        (ModelError, RuntimeError),
        (NotFittedError, RuntimeError),
        (ConvergenceError, RuntimeError),
        (AuthError, PermissionError),
    ],
)
def test_tree_and_builtins(cls: type[CVMError], builtin: type[Exception]) -> None:
    error = cls("x")
    assert isinstance(error, CVMError)
    assert isinstance(error, builtin)
    assert str(error) == "x"


def test_schema_and_validation_are_data_errors() -> None:
    assert issubclass(SchemaError, DataError)
    assert issubclass(ValidationError, DataError)
    assert issubclass(NotFittedError, ModelError)
