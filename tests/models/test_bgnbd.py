"""BG/NBD, pinned to Fader, Hardie & Lee (2005) on the CDNOW sample."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import shared

from cvm import Store
from cvm.errors import DataError, SchemaError
from cvm.features import btyd_summary
from cvm.ingest import ingest_transactions
from cvm.models import BetaGeoModel


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return pd.read_parquet(shared("cdnow_sample_summary.parquet"))


@pytest.fixture(scope="module")
def fitted(cdnow: pd.DataFrame) -> BetaGeoModel:
    return BetaGeoModel().fit(cdnow)


def test_params_match_fader_hardie_lee_2005(fitted: BetaGeoModel) -> None:
    """FHL (2005), section 4: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426, LL = -9582.4."""
    p = fitted.params_
    assert (round(p["r"], 3), round(p["alpha"], 3), round(p["a"], 3), round(p["b"], 3)) == (
        0.243,
        4.414,
        0.793,
        2.426,
    )
    assert fitted.log_likelihood_ == pytest.approx(-9582.4, abs=0.05)
    assert fitted.n_customers_ == 2357
    assert fitted.converged_


def test_matches_clvtools_on_the_unrounded_cdnow_summary(store: Store) -> None:
    """CLVTools tests/testthat (BG/NBD correctness, CDNOW, split 1997-09-30, weeks):
    r = 0.2425945, alpha = 4.4136019, a = 0.7929199, b = 2.4258881, LL = -9582.429.

    The summary is computed by cvm from the raw transactions (not rounded), as CLVTools
    does; this ties the feature step and the model together.
    """
    ingest_transactions(store, shared("cdnow_sample.parquet"))
    summary = store.to_arrow(
        btyd_summary(store.table("transactions"), observation_end=dt.date(1997, 9, 30))
    ).to_pandas()
    model = BetaGeoModel().fit(summary)
    expected = {"r": 0.2425945, "alpha": 4.4136019, "a": 0.7929199, "b": 2.4258881}
    for name, value in expected.items():
        assert model.params_[name] == pytest.approx(value, rel=2e-5), name
    assert model.log_likelihood_ == pytest.approx(-9582.429, abs=1e-3)


def test_standard_errors_and_intervals(fitted: BetaGeoModel) -> None:
    se = fitted.standard_errors_
    intervals = fitted.confidence_intervals(0.95)
    for name, value in fitted.params_.items():
        assert 0 < se[name] < value
        low, high = intervals[name]
        assert 0 < low < value < high
    narrow = fitted.confidence_intervals(0.5)["r"]
    assert intervals["r"][0] < narrow[0] < narrow[1] < intervals["r"][1]


def test_conditional_expectation_of_the_papers_example(fitted: BetaGeoModel) -> None:
    """FHL (2005) p. 280: x = 2, t_x = 30.43, T = 38.86 → 1.226 purchases in the next 39 weeks."""
    one = {"frequency": [2], "recency": [30.43], "t": [38.86]}
    assert fitted.expected_purchases(one, 39)[0] == pytest.approx(1.226, abs=1e-3)


def test_unconditional_quantities_are_consistent(fitted: BetaGeoModel) -> None:
    n = np.arange(0, 400)
    probabilities = fitted.probability_of_purchases(39.0, n)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-9)
    assert (probabilities * n).sum() == pytest.approx(fitted.expected_purchases_new(39.0), rel=1e-6)
    # A customer seen for 0 time units with no purchase is a new customer.
    fresh = {"frequency": [0], "recency": [0.0], "t": [1e-12]}
    assert fitted.expected_purchases(fresh, 39)[0] == pytest.approx(
        float(fitted.expected_purchases_new(39.0)), rel=1e-6
    )


def test_probability_alive(fitted: BetaGeoModel, cdnow: pd.DataFrame) -> None:
    alive = fitted.probability_alive(cdnow)
    assert np.all((alive >= 0) & (alive <= 1))
    assert np.all(alive[cdnow["frequency"].to_numpy() == 0] == 1.0)  # BG/NBD: no purchase, no drop
    recent = {"frequency": [5, 5], "recency": [38.0, 5.0], "t": [38.86, 38.86]}
    p = fitted.probability_alive(recent)
    assert p[0] > p[1]


@pytest.mark.parametrize("x", [1_000, 100_000])
def test_heavy_buyers_stay_finite(fitted: BetaGeoModel, x: int) -> None:
    """lifetimes' BG/NBD overflows in the hypergeometric term for large x; cvm must not."""
    gap = 38.86 / x  # one inter-purchase time since the last purchase
    data = {
        "frequency": [x, x, x],
        "recency": [38.86 - gap, 38.86 - 10 * gap, 1.0],
        "t": [38.86] * 3,
    }
    expected = fitted.expected_purchases(data, 39)
    alive = fitted.probability_alive(data)
    assert np.all(np.isfinite(expected)) and np.all(np.isfinite(alive))
    assert expected[0] > expected[1] > expected[2] >= 0
    assert alive[0] > 0.99  # still buying at its usual pace
    assert alive[2] < 1e-6  # silent for 37 weeks after buying x times in one: gone
    # While alive it buys at about x / T per week, less the chance of dropping out.
    assert 0.5 * x < expected[0] < x * 39 / 38.86


def test_edge_ages_and_parameters_stay_finite() -> None:
    model = BetaGeoModel()
    model.params_ = {"r": 1e-3, "alpha": 1e4, "a": 1e-3, "b": 1e3}
    model.log_likelihood_, model.n_customers_, model.n_rows_ = 0.0, 1, 1
    model.converged_, model.covariance_ = True, np.eye(4)
    data = {"frequency": [0, 3, 50], "recency": [0.0, 1e-3, 1e5 - 1], "t": [1e-3, 1e-3, 1e5]}
    for horizon in (1e-3, 1.0, 1e5):
        out = model.expected_purchases(data, horizon)
        assert np.all(np.isfinite(out)) and np.all(out >= 0)
    assert np.all(np.isfinite(model.probability_alive(data)))


@settings(max_examples=60, deadline=None)
@given(
    x=st.integers(0, 500),
    age=st.floats(0.01, 500),
    share=st.floats(0, 1),
    t1=st.floats(0, 200),
    dt=st.floats(0, 200),
)
def test_properties(x: int, age: float, share: float, t1: float, dt: float) -> None:
    model = BetaGeoModel.from_dict(_CDNOW_FIT)
    recency = age * share if x > 0 else 0.0
    data = {"frequency": [x], "recency": [recency], "t": [age]}
    alive = model.probability_alive(data)[0]
    assert 0.0 <= alive <= 1.0
    e1, e2 = model.expected_purchases(data, t1)[0], model.expected_purchases(data, t1 + dt)[0]
    assert 0.0 <= e1 <= e2 + 1e-9


def test_compressed_fit_equals_repeated_rows(cdnow: pd.DataFrame) -> None:
    doubled = pd.concat([cdnow, cdnow])
    model = BetaGeoModel().fit(doubled)
    assert model.n_customers_ == 2 * 2357
    assert model.n_rows_ < 2357
    assert model.params_["r"] == pytest.approx(0.2426, abs=1e-3)


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ({"frequency": [1], "recency": [1.0]}, SchemaError, "missing column 't'"),
        ({"frequency": [-1], "recency": [0.0], "t": [1.0]}, DataError, "frequency.*row 0"),
        ({"frequency": [1.5], "recency": [0.0], "t": [1.0]}, DataError, "whole number"),
        ({"frequency": [1], "recency": [3.0], "t": [2.0]}, DataError, "cannot exceed t"),
        ({"frequency": [0], "recency": [1.0], "t": [2.0]}, DataError, "must be 0 when"),
        ({"frequency": [0], "recency": [0.0], "t": [-1.0]}, DataError, "must be ≥ 0"),
        ({"frequency": [1], "recency": [np.nan], "t": [2.0]}, DataError, "not finite"),
    ],
)
def test_bad_input_is_named(
    data: dict[str, list[float]], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        BetaGeoModel().fit(data)


_CDNOW_FIT = {
    "model": "BetaGeoModel",
    "settings": {},
    "params": {"r": 0.242593, "alpha": 4.413532, "a": 0.792886, "b": 2.425753},
    "log_likelihood": -9582.4256,
    "n_customers": 2357,
    "covariance": np.eye(4).tolist(),
}


def test_customers_first_seen_on_the_last_day(fitted: BetaGeoModel, cdnow: pd.DataFrame) -> None:
    """T = 0 adds exactly 0 to the log-likelihood and predicts like a new customer."""
    with_new = pd.concat([cdnow, pd.DataFrame({"frequency": [0], "recency": [0.0], "t": [0.0]})])
    refit = BetaGeoModel().fit(with_new)
    assert refit.log_likelihood_ == pytest.approx(fitted.log_likelihood_, abs=1e-6)
    new = {"frequency": [0], "recency": [0.0], "t": [0.0]}
    assert fitted.probability_alive(new)[0] == 1.0
    assert fitted.expected_purchases(new, 39)[0] == pytest.approx(
        float(fitted.expected_purchases_new(39.0)), rel=1e-9
    )


def test_no_repeat_purchases_at_all_is_refused() -> None:
    with pytest.raises(DataError, match="none of the 3 customers made a repeat purchase"):
        BetaGeoModel().fit({"frequency": [0, 0, 0], "recency": [0.0] * 3, "t": [1.0, 2.0, 3.0]})
