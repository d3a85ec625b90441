"""Validated per-customer inputs of the repeat-purchase models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvm.errors import DataError, SchemaError
from cvm.models.base import Array, as_array, compress, distinct

__all__ = ["RFM", "column", "rfm_data"]


@dataclass(frozen=True)
class RFM:
    """Frequency (repeat purchases), recency (t_x) and age (T) per customer."""

    frequency: Array
    recency: Array
    age: Array

    def require_repeat_purchases(self, model: str) -> None:
        """Refuse data in which no customer bought twice: the model is not identified.

        Raises
        ------
        DataError
            Naming the model and the number of customers.
        """
        if not np.any(self.frequency > 0):
            raise DataError(
                f"none of the {len(self.frequency)} customers made a repeat purchase, so "
                f"{model} cannot learn purchase rates or drop-out; more history is needed",
                column="frequency",
            )

    def compressed(self) -> tuple[list[Array], Array]:
        """Return the unique (x, t_x, T) rows and how many customers share each.

        Customers without repeat purchases are (0, 0, T): they are grouped by T alone
        (a linear-time binning); the others go through :func:`compress`.
        """
        zero = self.frequency == 0
        ages, index = distinct(self.age[zero])
        zero_weights = np.bincount(index, minlength=len(ages)).astype(np.float64)
        repeat = ~zero
        (x, t_x, t), weights = compress(
            self.frequency[repeat], self.recency[repeat], self.age[repeat]
        )
        none = np.zeros(len(ages))
        return (
            [np.concatenate([none, x]), np.concatenate([none, t_x]), np.concatenate([ages, t])],
            np.concatenate([zero_weights, weights]),
        )


def column(data: Any, *names: str) -> Any:
    """Return the first of ``names`` present as a column of a DataFrame or mapping.

    Raises
    ------
    SchemaError
        Naming the first name, when none is present.
    """
    for name in names:
        if isinstance(data, Mapping) and name in data:
            return data[name]
        if hasattr(data, "columns") and name in data.columns:
            return data[name]
    raise SchemaError(f"missing column '{names[0]}'", column=names[0])


def rfm_data(data: Any) -> RFM:
    """Read and check ``frequency``, ``recency`` and ``t`` (or ``T``) from a frame or mapping.

    Raises
    ------
    SchemaError
        If a column is missing.
    DataError
        If a value is impossible: negative or fractional frequency, negative recency,
        recency beyond the customer's age, a positive recency without repeat purchases,
        or a negative age. The message names the column and the first bad row.
    """
    x = as_array("frequency", column(data, "frequency", "x"))
    t_x = as_array("recency", column(data, "recency", "t_x"))
    t = as_array("t", column(data, "t", "T"))
    if not len(x) == len(t_x) == len(t):
        raise DataError("frequency, recency and t must have the same length")

    def fail(mask: Any, column: str, what: str) -> None:
        if np.any(mask):
            row = int(np.flatnonzero(mask)[0])
            raise DataError(f"{what} (row {row})", column=column)

    fail((x < 0) | (x != np.round(x)), "frequency", "must be a whole number ≥ 0")
    fail(t_x < 0, "recency", "must be ≥ 0")
    # T = 0 (first purchase on the last observed day) is legitimate: such a customer
    # adds exactly 0 to the log-likelihood and is predicted as a new customer.
    fail(t < 0, "t", "must be ≥ 0 (time from first purchase to the end)")
    fail(t_x > t + 1e-9, "recency", "cannot exceed t")
    fail((x == 0) & (t_x > 0), "recency", "must be 0 when frequency is 0")
    return RFM(frequency=x, recency=t_x, age=t)
