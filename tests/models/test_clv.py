"""Customer lifetime value: discounting checked against closed forms."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import shared

from cvm.models import BetaGeoModel
from cvm.models.clv import customer_lifetime_value

WEEKS = 52.1775


class SteadyBuyer:
    """E[X(t)] = rate · t: a Poisson buyer who never leaves."""

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def expected_purchases(self, data: Any, t: float | npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.full(len(data["frequency"]), self.rate * float(np.asarray(t)))


def test_discounting_matches_the_geometric_series() -> None:
    """Monthly flows of rate·Δ·spend discounted at each month's end: a geometric sum."""
    rate, spend, d, years = 2.0, 10.0, 0.12, 3
    step = WEEKS / 12
    clv = customer_lifetime_value(
        SteadyBuyer(rate),
        {"frequency": [1]},
        horizon=years * WEEKS,
        discount_rate=d,
        units_per_year=WEEKS,
        spend=spend,
    )[0]
    factor = (1 + d) ** (-1 / 12)
    expected = rate * step * spend * factor * (1 - factor ** (12 * years)) / (1 - factor)
    assert clv == pytest.approx(expected, rel=1e-12)


def test_without_discounting_clv_is_expected_purchases_times_spend() -> None:
    data = pd.read_parquet(shared("cdnow_sample_summary.parquet"))
    model = BetaGeoModel().fit(data)
    clv = customer_lifetime_value(
        model,
        data,
        horizon=52.0,
        discount_rate=0.0,
        units_per_year=WEEKS,
        spend=20.0,
        margin=0.3,
    )
    np.testing.assert_allclose(clv, model.expected_purchases(data, 52.0) * 20.0 * 0.3, rtol=1e-9)


def test_spend_per_customer_and_bad_arguments() -> None:
    data = {"frequency": [1, 1]}
    clv = customer_lifetime_value(
        SteadyBuyer(1.0),
        data,
        horizon=WEEKS,
        discount_rate=0.0,
        units_per_year=WEEKS,
        spend=[1.0, 2.0],
    )
    assert clv[1] == pytest.approx(2 * clv[0])
    for bad in ({"horizon": -1.0}, {"discount_rate": -0.1}, {"units_per_year": 0.0}, {"step": 0.0}):
        arguments: dict[str, Any] = {
            "horizon": 10.0,
            "discount_rate": 0.1,
            "units_per_year": WEEKS,
            "spend": 1.0,
        } | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            customer_lifetime_value(SteadyBuyer(1.0), data, **arguments)


@settings(max_examples=40, deadline=None)
@given(
    h1=st.floats(0, 300),
    dh=st.floats(0, 300),
    d1=st.floats(0, 1),
    dd=st.floats(0, 1),
    x=st.integers(0, 50),
    share=st.floats(0, 1),
)
def test_clv_grows_with_the_horizon_and_falls_with_the_rate(
    h1: float, dh: float, d1: float, dd: float, x: int, share: float
) -> None:
    model = BetaGeoModel.from_dict(
        {
            "model": "BetaGeoModel",
            "settings": {},
            "params": {"r": 0.242593, "alpha": 4.413532, "a": 0.792886, "b": 2.425753},
            "log_likelihood": -9582.43,
            "n_customers": 2357,
            "covariance": np.eye(4).tolist(),
        }
    )
    data = {"frequency": [x], "recency": [38.0 * share if x else 0.0], "t": [38.0]}

    def clv(horizon: float, rate: float) -> float:
        return float(
            customer_lifetime_value(
                model,
                data,
                horizon=horizon,
                discount_rate=rate,
                units_per_year=WEEKS,
                spend=1.0,
            )[0]
        )

    assert clv(h1, d1) <= clv(h1 + dh, d1) + 1e-9
    assert clv(h1, d1 + dd) <= clv(h1, d1) + 1e-9
