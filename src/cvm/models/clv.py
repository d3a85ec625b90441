"""Customer lifetime value from a purchase model and a spend model, discounted.

CLV over a horizon H is the discounted sum of the expected profit of each step:

    CLV = Σ_k  m · s · (E[X(min(t_k, H))] − E[X(t_{k−1})]) / (1 + d)^(t_k / u),   t_k = k·Δ,

where E[X(t)] is the purchase model's conditional expected number of purchases in the
next t time units, s the spend model's expected spend per purchase, m the margin
rate, d the annual discount rate, u the model's time units per year and Δ a fixed step
(a month by default). Cash flows are discounted at the end of the fixed step in which
they fall (the end-of-period convention of lifetimes and of Fader, Hardie & Lee 2005b,
"RFM and CLV: using iso-value curves", JMR 42(4)); with monthly steps this differs from
continuous discounting by less than a month's interest. Because the grid does not
depend on H, CLV never decreases as the horizon grows.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from cvm.models.base import Array

__all__ = ["PurchaseModel", "SpendModel", "customer_lifetime_value"]


class PurchaseModel(Protocol):
    """Anything with a conditional expected-purchases prediction."""

    def expected_purchases(self, data: Any, t: float | npt.ArrayLike) -> Array:
        """Return expected purchases in the next ``t`` time units, per customer."""


class SpendModel(Protocol):
    """Anything with a conditional expected spend per purchase."""

    def expected_spend(self, data: Any) -> Array:
        """Return expected spend per purchase, per customer."""


def customer_lifetime_value(
    purchases: PurchaseModel,
    data: Any,
    *,
    horizon: float,
    discount_rate: float,
    units_per_year: float,
    spend: SpendModel | float | npt.ArrayLike,
    margin: float = 1.0,
    step: float | None = None,
) -> Array:
    """Return each customer's discounted expected profit over ``horizon``.

    Parameters
    ----------
    purchases
        A fitted purchase model (BG/NBD, Pareto/NBD, …).
    data
        Per-customer summaries the models understand.
    horizon
        Length of the future considered, in the purchase model's time units.
    discount_rate
        Annual discount rate, e.g. 0.1 for 10 %.
    units_per_year
        The model's time units in a year (52.1775 for weeks, 365.2425 for days).
    spend
        A fitted spend model, or the spend per purchase (one number or one per customer).
    margin
        Share of spend that is profit.
    step
        Length of a discounting step in model time units; by default a month.

    Returns
    -------
    numpy.ndarray
        CLV per customer; never decreases with the horizon and never increases with
        the discount rate.
    """
    if horizon < 0:
        raise ValueError(f"horizon must be ≥ 0, got {horizon}")
    if discount_rate < 0:
        raise ValueError(f"discount_rate must be ≥ 0, got {discount_rate}")
    if units_per_year <= 0:
        raise ValueError(f"units_per_year must be > 0, got {units_per_year}")
    if hasattr(spend, "expected_spend"):
        per_purchase = np.asarray(spend.expected_spend(data), dtype=np.float64)
    else:
        per_purchase = np.asarray(spend, dtype=np.float64)
    step = units_per_year / 12 if step is None else step
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    ends = step * np.arange(1, max(1, math.ceil(horizon / step - 1e-12)) + 1)
    cut = [min(float(t), horizon) for t in ends]
    path = getattr(purchases, "expected_purchases_path", None)
    cumulative = [np.zeros(1)]
    if path is not None:  # the BG/NBD family: P(alive) once, the rest per distinct (x, T)
        cumulative += list(np.asarray(path(data, cut), dtype=np.float64))
    else:
        cumulative += [np.asarray(purchases.expected_purchases(data, t)) for t in cut]
    discount = (1.0 + discount_rate) ** (-ends / units_per_year)
    value = sum(
        f * np.maximum(later - earlier, 0.0)
        for f, earlier, later in zip(discount, cumulative[:-1], cumulative[1:], strict=True)
    )
    result: Array = np.asarray(value, dtype=np.float64) * per_purchase * margin
    return result
