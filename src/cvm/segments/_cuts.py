"""Cut points of a ranking, found once and compared per customer.

Ranking a million customers with a window function costs several times a plain
scan of the table (the engine sorts and carries every column). Tiers and RFM scores
need only a few cut points of each ranking, so these helpers fetch the ranking key
(one numeric column), find the cut points with numpy, and return Ibis conditions
that compare each customer's key — and, when a group of equal keys straddles a cut,
their ``customer_id`` — with the cut point. The final expression has no window
function and costs about as much as reading the table.

Positions are 0-based in the order "key (ascending or descending), then
``customer_id`` ascending". The engine orders the ids of a tied group itself, so
that the comparison uses the engine's own collation.
"""

from __future__ import annotations

from typing import Any

import ibis
import numpy as np
import numpy.typing as npt

__all__ = ["fetch", "ranked_through"]

Table = Any  # ibis.expr.types.Table
FloatArray = npt.NDArray[np.float64]


def fetch(table: Table, *columns: str) -> dict[str, FloatArray]:
    """Execute ``table`` for ``columns`` (numeric, no NULLs) and return them as arrays."""
    fetched = table.select(*columns).to_pyarrow()
    return {
        name: np.asarray(fetched.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)
        for name in columns
    }


def _tied_id(table: Table, key: str, value: float, offset: int) -> str:
    """Return the ``offset``-th smallest ``customer_id`` among rows whose key equals value."""
    ties = table.filter(table[key] == value).select("customer_id")
    # A window over the tied rows only (LIMIT … OFFSET is not portable to Spark).
    ranked = ties.mutate(_cvm_rank=ibis.row_number().over(order_by=ties.customer_id))
    found = ranked.filter(ranked._cvm_rank == offset).select("customer_id").to_pyarrow()
    return str(found.column(0)[0].as_py())


def ranked_through(
    table: Table, key: str, values: FloatArray, positions: list[int], *, descending: bool
) -> list[Any]:
    """Return, per position, a condition true for rows ranked at or before it.

    Parameters
    ----------
    table
        The table, with ``customer_id`` and the ``key`` column.
    key
        The ranking key's column (numeric, no NULLs).
    values
        The key column's values, fetched (any order).
    positions
        0-based positions in the ranking, each in ``[0, len(values))``.
    descending
        Rank by key descending (else ascending); ties by ``customer_id`` ascending.
    """
    ordered = -values if descending else values
    if not positions:
        return []
    kth = np.partition(ordered, positions)
    conditions = []
    for position in positions:
        value = float(kth[position])
        before = int(np.count_nonzero(ordered < value))
        tied = int(np.count_nonzero(ordered == value))
        literal = -value if descending else value
        if position == before + tied - 1:  # the cut falls after the whole tied group
            conditions.append(table[key] >= literal if descending else table[key] <= literal)
            continue
        customer = _tied_id(table, key, literal, position - before)
        strict = table[key] > literal if descending else table[key] < literal
        conditions.append(strict | ((table[key] == literal) & (table.customer_id <= customer)))
    return conditions
