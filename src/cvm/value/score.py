"""Total value and the value score: the value dimensions combined by strategy.

Per customer, with each value dimension taken as 0 when its column is absent or NULL::

    total_value = R + P + I
    value_score = w_R·R + w_P·P + w_I·I + Σ_a w_a·x_a

where *R* is realized value, *P* potential value and *I* influence value (all in
currency), the weights *w* come from ``[value.score] weights`` (default 1 each, so the
default score *is* total value, in currency) and each strategic dimension *a* of
``[value.score] attributes`` adds its weight times the customer's attribute value
*x*. An attribute counts as a number: a JSON number, a numeric string (``"12.5"``),
``true``/``yes`` (1) or ``false``/``no`` (0); a missing or non-numeric attribute
counts as 0. A weight on an attribute is therefore "how much currency a unit of this
attribute is worth to our strategy", e.g. ``key_account = 5000.0`` lifts every key
account by 5,000.

This is the value score of customer value management: the customer's worth as
realized, potential and referral value (Kumar, Petersen & Leone 2007, "How valuable is
word of mouth?", Harvard Business Review 85(10)), to which a company adds the
dimensions its strategy cares about before ranking customers into tiers (Zeithaml,
Rust & Lemon 2001, "The customer pyramid", California Management Review 43(4)).
"""

from __future__ import annotations

from typing import Any

import ibis

from cvm.config import ScoreSettings
from cvm.errors import SchemaError

__all__ = ["VALUE_COLUMNS", "attribute_number", "value_score"]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)

#: The value column of each value dimension.
VALUE_COLUMNS: dict[str, str] = {
    "realized": "realized_value",
    "potential": "potential_value",
    "influence": "influence_value",
}

_TRUE = ("true", "yes", "y", "t")
_FALSE = ("false", "no", "n", "f", "")


def _sum(terms: list[tuple[float, Any]]) -> Any:
    """Return Σ weight·column as float64 (0 when there are no terms)."""
    total: Any = None
    for weight, column in terms:
        term = column if weight == 1 else weight * column
        total = term if total is None else total + term
    return ibis.literal(0.0, type="float64") if total is None else total


def attribute_number(attributes: Any, key: str) -> Any:
    """Read one key of a JSON attributes column as a number (0 when missing or not numeric).

    Parameters
    ----------
    attributes
        An Ibis JSON (or JSON text) column of customer attributes.
    key
        The attribute's name.

    Returns
    -------
    ibis.expr.types.FloatingColumn
        JSON numbers as they are; strings parsed as numbers; ``true``/``yes`` → 1 and
        ``false``/``no`` → 0 (case-insensitive); anything else, or a missing key, → 0.
    """
    if not attributes.type().is_json():
        attributes = attributes.cast("json")
    item = attributes[key]
    # A JSON string's content, else the JSON text of a number or boolean.
    text = ibis.coalesce(item.str, item.cast("string")).strip().lower()
    return (
        ibis.cases(
            (text.isin(_TRUE), 1.0),
            (text.isin(_FALSE), 0.0),
            else_=text.try_cast("float64"),
        )
        .cast("float64")
        .fill_null(0.0)
    )


def value_score(
    customers: Table, settings: ScoreSettings | None = None, *, attributes: Table | None = None
) -> Table:
    """Add ``total_value`` and ``value_score`` to a per-customer table.

    Parameters
    ----------
    customers
        One row per customer: ``customer_id`` and any of ``realized_value``,
        ``potential_value`` and ``influence_value`` (an absent column or a NULL counts
        as 0), e.g. a customer snapshot.
    settings
        The weights of the value dimensions and of strategic attributes; defaults to
        :class:`~cvm.config.ScoreSettings` (every value dimension weighs 1).
    attributes
        Customers' attributes when ``settings.attributes`` is not empty: a table of
        ``customer_id`` and ``attributes`` (JSON), one row per customer, e.g. the
        store's ``customers`` table. ``None`` reads ``customers.attributes`` if
        present. Customers without a row get 0 for every attribute.

    Returns
    -------
    Table
        ``customers`` with ``total_value`` (realized + potential + influence) and
        ``value_score`` (the weighted sum in the module docstring), both float64.

    Raises
    ------
    SchemaError
        If ``customers`` has no ``customer_id``, or attribute weights are set but
        there is no ``attributes`` column to read them from.
    """
    settings = settings or ScoreSettings()
    if "customer_id" not in customers.columns:
        raise SchemaError("the customers table has no 'customer_id' column", column="customer_id")
    base = customers
    numbers: dict[str, Any] = {}
    if settings.attributes:
        if attributes is None:
            if "attributes" not in customers.columns:
                raise SchemaError(
                    "value.score.attributes weighs "
                    f"{', '.join(map(repr, settings.attributes))} but the customers have no "
                    "attributes; pass the customers table with its 'attributes' column",
                    column="attributes",
                )
            numbers = {
                key: attribute_number(customers.attributes, key) for key in settings.attributes
            }
        else:
            missing = {"customer_id", "attributes"} - set(attributes.columns)
            if missing:
                raise SchemaError(
                    f"the attributes table lacks {', '.join(sorted(missing))}",
                    column=sorted(missing)[0],
                )
            read = attributes.select(
                _cvm_attr_customer=attributes.customer_id,
                **{
                    f"_cvm_attr_{i}": attribute_number(attributes.attributes, key)
                    for i, key in enumerate(settings.attributes)
                },
            )
            base = customers.left_join(read, customers.customer_id == read._cvm_attr_customer)
            numbers = {key: base[f"_cvm_attr_{i}"] for i, key in enumerate(settings.attributes)}
    present = {dim: base[c] for dim, c in VALUE_COLUMNS.items() if c in base.columns}
    values = {dim: v.cast("float64").fill_null(0.0) for dim, v in present.items()}
    terms = [
        (weight, values[dim])
        for dim, weight in settings.weights.items()
        if dim in values and weight != 0
    ]
    terms += [
        (weight, numbers[key].fill_null(0.0))
        for key, weight in settings.attributes.items()
        if weight != 0
    ]
    total = _sum([(1.0, v) for v in values.values()])
    score = _sum(terms)
    return base.select(
        *(base[c] for c in customers.columns),
        total_value=total.cast("float64"),
        value_score=score.cast("float64"),
    )
