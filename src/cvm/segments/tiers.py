"""Value tiers (the customer pyramid) and measures of value concentration.

Tiers
-----
Customers are ranked by value score, highest first, ties broken by ``customer_id``
(ascending) so that every run cuts the same way. :func:`value_tiers` then cuts the
ranking by one of three methods (``[segments.tiers] method``):

``cumulative`` (default: the 80/20 view)
    A customer belongs to the first tier whose cutoff the cumulative share of
    positive value of the customers ranked *before* them has not yet reached. With
    the default cutoffs 0.5, 0.8, 0.95, tier 1 is the fewest top customers who
    together bring 50 % of the positive value (the customer who crosses 50 % is in
    it), tier 2 those who bring it up to 80 %, tier 3 up to 95 %, tier 4 the rest.
    Only positive scores count towards the shares, so customers with a score of 0 or
    below always fall in the last tier; when no customer has a positive score, all
    do.
``percentile``
    By share of customers: with percentiles 0.01, 0.05, 0.2 tier 1 is the top 1 %
    of customers (⌈0.01·n⌉ of them), tier 2 the next 4 %, tier 3 the next 15 %,
    tier 4 the rest.
``thresholds``
    By score: tier 1 is every customer whose score is at least the first threshold,
    tier 2 at least the second, …; the last tier holds the rest.

The default names follow the customer pyramid of Zeithaml, Rust & Lemon (2001):
platinum, gold, iron and lead. A NULL score counts as 0.

Concentration
-------------
:func:`lorenz_curve`, :func:`gini` and :func:`top_share` work on an array of customer
values (e.g. ``total_value`` fetched from a tiered table). Customers whose value is
negative — they cost more than they bring — are kept, not clipped or dropped:
dropping them would hide real losses (De Battisti, Porro & Vernizzi 2019). Their
consequences, stated once:

- the Lorenz curve (customers sorted from lowest to highest value) first falls
  *below zero* and then climbs to 1;
- the Gini coefficient is Gini's mean difference over twice the mean,
  ``G = Σ_i Σ_j |x_i − x_j| / (2 n² μ)``, computed as
  ``Σ_i (2i − n − 1) x_(i) / (n Σ x)`` over the ascending values; it is 0 when all
  values are equal and ``(n − 1)/n`` when one customer has everything; with negative
  values it can exceed 1 (Raffinetti, Siletti & Vernizzi 2015), and should then be
  read as a relative spread of value rather than a share;
- the top customers' share can exceed 1 (100 %): the "whale curve" of customer
  profitability, where the most profitable customers earn more than the total
  profit and the least profitable destroy part of it (Kaplan & Narayanan 2001).

When the total value is 0 or negative the shares are undefined and these functions
return NaN.

References
----------
Zeithaml, V. A., Rust, R. T. & Lemon, K. N. (2001). The customer pyramid: creating and
serving profitable customers. *California Management Review* 43(4), 118–142.

Kaplan, R. S. & Narayanan, V. G. (2001). Measuring and managing customer
profitability. *Journal of Cost Management* 15(5), 5–15.

Raffinetti, E., Siletti, E. & Vernizzi, A. (2015). On the Gini coefficient
normalization when attributes with negative values are considered. *Statistical
Methods & Applications* 24(3), 507–521.

De Battisti, F., Porro, F. & Vernizzi, A. (2019). The Gini coefficient and the case of
negative values. *Electronic Journal of Applied Statistical Analysis* 12(1), 85–107.
"""

from __future__ import annotations

import math
from typing import Any

import ibis
import numpy as np
import numpy.typing as npt

from cvm.config import TierSettings
from cvm.errors import DataError, SchemaError
from cvm.segments._cuts import fetch, ranked_through

__all__ = ["gini", "lorenz_curve", "tier_summary", "top_share", "value_tiers"]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)
FloatArray = npt.NDArray[np.float64]


def _require(table: Table, *columns: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SchemaError(
            f"the table has no {', '.join(map(repr, missing))} column", column=missing[0]
        )


def value_tiers(
    customers: Table, settings: TierSettings | None = None, *, score: str = "value_score"
) -> Table:
    """Assign every customer a value tier from their score.

    The cut points are found first — the score column is fetched once and ranked with
    numpy, and a tie at a cut is broken by ``customer_id`` with a small query per
    cut — and the result is a lazy expression that compares each customer's score
    (and id) with them: no window function, so it costs about as much as reading
    the table. Pass a materialised table (e.g. a stored snapshot), not a long
    expression, since it is read twice.

    Parameters
    ----------
    customers
        One row per customer with ``customer_id`` and the ``score`` column (e.g. the
        output of :func:`cvm.value.score.value_score`).
    settings
        Method, cutoffs and names (see the module docstring); defaults to
        :class:`~cvm.config.TierSettings` (cumulative 50/80/95 %, platinum … lead).
    score
        The column to rank by.

    Returns
    -------
    Table
        ``customers`` with ``tier`` (int64, 1 = best) and ``tier_name``.

    Raises
    ------
    SchemaError
        If ``customer_id`` or the score column is missing.
    """
    settings = settings or TierSettings()
    _require(customers, "customer_id", score)
    names = list(settings.names)
    bounds = settings.bounds()
    keyed = customers.mutate(_cvm_key=customers[score].cast("float64").fill_null(0.0))
    if settings.method == "thresholds":
        conditions = [keyed._cvm_key >= threshold for threshold in bounds]
    else:
        values = fetch(keyed, "_cvm_key")["_cvm_key"]
        if settings.method == "percentile":
            n = values.size
            # The top ⌈c·n⌉ customers end at share c; rounding keeps 0.05·100 at 5.
            counts = [math.ceil(round(share * n, 9)) for share in bounds]
            positions = [count - 1 for count in counts if count > 0]
        else:
            positive = -np.sort(-values[values > 0])  # descending
            total = float(positive.sum())
            positions = []
            if total > 0:
                before = np.concatenate(([0.0], np.cumsum(positive)[:-1])) / total
                # The last customer whose preceding share is still below the cutoff.
                positions = [int(np.searchsorted(before, c, side="left")) - 1 for c in bounds]
        conditions = ranked_through(keyed, "_cvm_key", values, positions, descending=True)
    tier = (
        ibis.cases(
            *((condition, i + 1) for i, condition in enumerate(conditions)), else_=len(names)
        ).cast("int64")
        if conditions
        else ibis.literal(len(names), type="int64")
    )
    tiered = keyed.select(*customers.columns, tier=tier)
    return tiered.mutate(
        tier_name=ibis.cases(
            *((tiered.tier == i + 1, name) for i, name in enumerate(names[:-1])),
            else_=names[-1],
        )
    )


def tier_summary(
    tiered: Table, settings: TierSettings | None = None, *, value: str = "total_value"
) -> Table:
    """Summarise value by tier: how many customers bring how much value.

    Parameters
    ----------
    tiered
        Output of :func:`value_tiers` (``tier``, ``tier_name`` and the ``value``
        column).
    settings
        When given, every tier of the settings appears, with 0 customers if empty;
        otherwise only the tiers present.
    value
        The value column summed: ``total_value`` (currency) by default; pass
        ``"value_score"`` to summarise the score instead.

    Returns
    -------
    Table
        One row per tier, ordered by ``tier``: ``tier``, ``tier_name``, ``customers``,
        ``share_of_customers``, ``value``, ``share_of_value`` and ``mean_value``.
        Shares are of all customers and of the total value; with negative values a
        tier's share of value can be negative or above 1 (NULL when the total is 0
        or negative). ``mean_value`` is NULL for an empty tier.
    """
    _require(tiered, "tier", "tier_name", value)
    v = tiered[value].cast("float64").fill_null(0.0)
    grouped = tiered.group_by("tier", "tier_name").aggregate(
        customers=tiered.count(), value=v.sum()
    )
    if settings is not None:
        names = ibis.memtable(
            {
                "tier": list(range(1, len(settings.names) + 1)),
                "tier_name": list(settings.names),
            },
            schema={"tier": "int64", "tier_name": "string"},
        )
        joined = names.left_join(grouped.drop("tier_name"), "tier")
        grouped = joined.select(
            tier=joined.tier,
            tier_name=joined.tier_name,
            customers=joined.customers.fill_null(0),
            value=joined.value.fill_null(0.0),
        )
    n = grouped.customers.sum().over().cast("float64")
    total = grouped.value.sum().over()
    return grouped.select(
        "tier",
        "tier_name",
        "customers",
        share_of_customers=(n > 0).ifelse(grouped.customers.cast("float64") / n, ibis.null()),
        value=grouped.value,
        share_of_value=(total > 0).ifelse(grouped.value / total, ibis.null()),
        mean_value=(grouped.customers > 0).ifelse(
            grouped.value / grouped.customers.cast("float64"), ibis.null()
        ),
    ).order_by("tier")


def _values(values: npt.ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise DataError("no customer values to measure")
    if not np.all(np.isfinite(array)):
        raise DataError("customer values must be finite numbers (no NaN or infinity)")
    return array


def lorenz_curve(values: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Return the Lorenz curve of customer values.

    Customers are sorted from the lowest to the highest value; point *k* (0 … n) is
    the share *k/n* of customers and the share of total value the *k* lowest bring.

    Parameters
    ----------
    values
        One value per customer (any sequence or array of finite numbers).

    Returns
    -------
    tuple of numpy.ndarray
        ``(customer_share, value_share)``, each of length n + 1, from ``(0, 0)`` to
        ``(1, 1)``. With negative values ``value_share`` dips below 0 before rising
        to 1; when the total value is 0 or negative, ``value_share`` is all NaN.

    Raises
    ------
    DataError
        If there are no values or a value is not finite.
    """
    x = np.sort(_values(values))
    n = x.size
    customer_share = np.arange(n + 1, dtype=np.float64) / n
    cumulative = np.concatenate(([0.0], np.cumsum(x)))
    total = cumulative[-1]
    if total <= 0:
        return customer_share, np.full(n + 1, np.nan)
    value_share = cumulative / total
    value_share[-1] = 1.0  # exact despite rounding in the running sum
    return customer_share, value_share


def gini(values: npt.ArrayLike) -> float:
    """Return the Gini coefficient of customer values.

    ``G = Σ_i Σ_j |x_i − x_j| / (2 n² μ)`` (Gini's mean difference over twice the
    mean), computed in O(n log n) as ``Σ_i (2i − n − 1) x_(i) / (n Σ x)`` over the
    values sorted ascending. It equals ``1 − 2 ×`` the area under the
    :func:`lorenz_curve` (trapezoids). Negative values are kept, so ``G`` can exceed
    1 (Raffinetti, Siletti & Vernizzi 2015; see the module docstring).

    Parameters
    ----------
    values
        One value per customer.

    Returns
    -------
    float
        0 for equal values, ``(n − 1)/n`` when one customer has all the value; NaN
        when the total value is 0 or negative.

    Raises
    ------
    DataError
        If there are no values or a value is not finite.
    """
    x = np.sort(_values(values))
    n = x.size
    total = float(x.sum())
    if total <= 0:
        return math.nan
    weights = 2.0 * np.arange(1, n + 1, dtype=np.float64) - n - 1.0
    return float(np.dot(weights, x) / (n * total))


def top_share(values: npt.ArrayLike, share: float = 0.2) -> float:
    """Return the share of total value brought by the top ``share`` of customers.

    "The top 20 % of customers bring y % of value": the ⌈share·n⌉ customers of
    highest value, their value over the total.

    Parameters
    ----------
    values
        One value per customer.
    share
        Share of customers counted as the top, in (0, 1].

    Returns
    -------
    float
        The top customers' share of total value; above 1 when the other customers'
        value is negative in sum (the whale curve); NaN when the total value is 0 or
        negative.

    Raises
    ------
    ValueError
        If ``share`` is not in (0, 1].
    DataError
        If there are no values or a value is not finite.
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}")
    x = _values(values)
    total = float(x.sum())
    if total <= 0:
        return math.nan
    k = max(1, math.ceil(round(share * x.size, 9)))
    top = np.partition(x, x.size - k)[x.size - k :]
    return float(top.sum() / total)
