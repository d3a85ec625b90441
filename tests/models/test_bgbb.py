"""BG/BB, pinned to Fader, Hardie & Shang (2010) on the donations data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import check_grad

from cvm.errors import DataError, SchemaError
from cvm.models.bgbb import BetaGeoBetaBinomModel

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def donations() -> pd.DataFrame:
    path = SHARED_DATA / "donations_bgbb_summary.parquet"
    if not path.exists():
        pytest.skip("shared dataset donations_bgbb_summary.parquet not available")
    return pd.read_parquet(path)


@pytest.fixture(scope="module")
def fitted(donations: pd.DataFrame) -> BetaGeoBetaBinomModel:
    return BetaGeoBetaBinomModel().fit(donations)


def with_params(**params: float) -> BetaGeoBetaBinomModel:
    """A BG/BB model with the given parameters, built through the public from_dict."""
    return BetaGeoBetaBinomModel.from_dict(
        {
            "model": "BetaGeoBetaBinomModel",
            "params": params,
            "log_likelihood": 0.0,
            "n_customers": 1,
            "covariance": np.zeros((4, 4)).tolist(),
        }
    )


def one(x: int, t_x: int, n: int) -> dict[str, list[int]]:
    return {"frequency": [x], "recency": [t_x], "n_periods": [n]}


# -- golden tests ---------------------------------------------------------------------
def test_params_match_fader_hardie_shang_2010(fitted: BetaGeoBetaBinomModel) -> None:
    """FHS (2010), section 4: alpha = 1.204, beta = 0.750, gamma = 0.657, delta = 2.783,
    LL = -33,225.6, on 11,104 donors with 6 opportunities (1996-2001)."""
    p = fitted.params_
    rounded = tuple(round(p[k], 3) for k in ("alpha", "beta", "gamma", "delta"))
    assert rounded == (1.204, 0.750, 0.657, 2.783)
    assert fitted.log_likelihood_ == pytest.approx(-33225.6, abs=0.05)
    assert fitted.n_customers_ == 11104
    assert fitted.n_rows_ == 22
    assert fitted.converged_


def test_params_match_hardie_spreadsheet(fitted: BetaGeoBetaBinomModel) -> None:
    """Hardie's BG/BB spreadsheet (brucehardie.com/notes/010), the values pymc-marketing's
    tests take as truth: 1.2035, 0.7497, 0.6567, 2.7834."""
    expected = {"alpha": 1.2035, "beta": 0.7497, "gamma": 0.6567, "delta": 2.7834}
    for name, value in expected.items():
        assert fitted.params_[name] == pytest.approx(value, abs=5e-5), name


def test_probability_alive_matches_fhs_2010_table_6(
    fitted: BetaGeoBetaBinomModel,
) -> None:
    """FHS (2010) Table 6, P(alive in 2002), as lifetimes' tests pin it: no repeat
    donation 0.11; 2 donations, last in 1999 (t_x = 4) 0.59; every year 0.93."""
    patterns = {"frequency": [0, 2, 6], "recency": [0, 4, 6], "n_periods": [6, 6, 6]}
    np.testing.assert_allclose(fitted.probability_alive(patterns), [0.11, 0.59, 0.93], atol=5e-3)


def test_conditional_expectations_match_hardie_spreadsheet(
    donations: pd.DataFrame, fitted: BetaGeoBetaBinomModel
) -> None:
    """Hardie's spreadsheet, 'Conditional Expectations (II)', total of column F (as in
    lifetimes' tests): 12,884.2 donations expected from the cohort in 2002-2006."""
    expected = fitted.expected_purchases(donations, 5) * donations["weights"]
    assert expected.sum() == pytest.approx(12884.2, abs=0.1)


def test_in_sample_fit_matches_hardie_spreadsheet(fitted: BetaGeoBetaBinomModel) -> None:
    """Hardie's spreadsheet, 'In-Sample Fit' cells C18 and C24 (as in lifetimes' tests):
    3,454.9 donors expected with no repeat donation in 6 years and 1,253.1 with 6."""
    counts = fitted.probability_of_purchases(6, [0, 6]) * 11104
    np.testing.assert_allclose(counts, [3454.9, 1253.1], atol=0.05)


def test_new_donor_expectations_match_hardie_tracking_plot(
    fitted: BetaGeoBetaBinomModel,
) -> None:
    """Hardie's spreadsheet, 'Tracking Plot' B7:B17 (as in pymc-marketing's tests):
    E[X(n)] for n = 1 … 11."""
    published = [
        0.4985,
        0.9233,
        1.2969,
        1.6323,
        1.9381,
        2.2202,
        2.4826,
        2.7285,
        2.9603,
        3.1798,
        3.3887,
    ]
    np.testing.assert_allclose(
        fitted.expected_purchases_new(np.arange(1, 12)), published, atol=6e-5
    )


# -- the likelihood and the data ------------------------------------------------------
def test_weights_equal_repeated_rows(donations: pd.DataFrame) -> None:
    exploded = donations.loc[donations.index.repeat(donations["weights"])].drop(columns="weights")
    assert len(exploded) == 11104
    a = BetaGeoBetaBinomModel(n_starts=1).fit(donations)
    b = BetaGeoBetaBinomModel(n_starts=1).fit(exploded)
    assert b.n_customers_ == 11104
    assert b.log_likelihood_ == pytest.approx(a.log_likelihood_, rel=1e-12)
    for name in a.param_names:
        assert b.params_[name] == pytest.approx(a.params_[name], rel=1e-6)


def test_column_aliases_and_a_mapping() -> None:
    data = {"x": [0, 1, 2], "t_x": [0, 3, 4], "n": [5, 5, 5], "count": [10, 3, 2]}
    model = with_params(alpha=1.0, beta=2.0, gamma=0.5, delta=3.0)
    by_alias = model.probability_alive(data)
    named = model.probability_alive(
        {"frequency": [0, 1, 2], "recency": [0, 3, 4], "periods": [5, 5, 5]}
    )
    np.testing.assert_array_equal(by_alias, named)


@pytest.mark.parametrize(
    "theta", [[1.2, 0.75, 0.66, 2.8], [0.05, 8.0, 3.0, 0.2], [30.0, 0.02, 1.0, 40.0]]
)
def test_gradient_is_the_derivative_of_the_likelihood(theta: list[float]) -> None:
    x = np.array([0.0, 1, 3, 6, 2, 10])
    t_x = np.array([0.0, 1, 5, 6, 9, 12])
    n = np.array([6.0, 6, 6, 6, 12, 12])

    def value(log_theta: Any) -> float:
        ll, _ = BetaGeoBetaBinomModel._log_likelihood(np.exp(log_theta), x, t_x, n, gradient=False)
        return float(ll.sum())

    def gradient(log_theta: Any) -> Any:
        _, grad = BetaGeoBetaBinomModel._log_likelihood(np.exp(log_theta), x, t_x, n, gradient=True)
        return grad.sum(axis=0) * np.exp(log_theta)

    start = np.log(theta)
    assert check_grad(value, gradient, start, epsilon=1e-6) < 1e-4 * max(
        1.0, float(np.abs(gradient(start)).max())
    )


def test_likelihood_sums_to_one_over_all_histories() -> None:
    """Every (x, t_x) history of n opportunities, weighted by its number of orderings,
    has total probability 1 (the likelihood is of one particular sequence)."""
    n = 5
    theta = np.array([0.8, 1.7, 0.4, 2.5])
    total = 0.0
    for x in range(n + 1):
        for t_x in [0] if x == 0 else range(x, n + 1):
            ll, _ = BetaGeoBetaBinomModel._log_likelihood(
                theta,
                np.array([x], float),
                np.array([t_x], float),
                np.array([n], float),
                gradient=False,
            )
            orderings = 1 if x == 0 else math.comb(t_x - 1, x - 1)
            total += orderings * float(np.exp(ll[0]))
    assert total == pytest.approx(1.0, abs=1e-12)


# -- predictions ------------------------------------------------------------------------
def test_probability_of_purchases_is_a_distribution(fitted: BetaGeoBetaBinomModel) -> None:
    for n in (0, 1, 6, 40):
        probabilities = fitted.probability_of_purchases(n, np.arange(n + 3))
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-12)
        assert np.all(probabilities[n + 1 :] == 0)
        mean = float(np.arange(n + 3) @ probabilities)
        assert mean == pytest.approx(float(fitted.expected_purchases_new(n)[0]), rel=1e-10)


def test_expectations_at_zero_horizon_and_the_long_run(fitted: BetaGeoBetaBinomModel) -> None:
    patterns = {"frequency": [0, 3, 6], "recency": [0, 5, 6], "n_periods": [6, 6, 6]}
    assert np.all(fitted.expected_purchases(patterns, 0) == 0)
    assert fitted.expected_purchases_new(0)[0] == 0
    # gamma < 1: some donors essentially never leave, so the long run keeps growing.
    far = fitted.expected_purchases(patterns, [10, 1_000, 1_000_000])
    assert np.all(np.isfinite(far)) and np.all(np.diff(far) > 0)


def test_gamma_near_one_is_continuous() -> None:
    patterns = {"frequency": [0, 3, 6], "recency": [0, 5, 6], "n_periods": [6, 6, 6]}
    values = [
        with_params(alpha=1.2, beta=0.7, gamma=g, delta=2.8).expected_purchases(patterns, 25)
        for g in (1 - 1e-4, 1 - 1e-9, 1.0, 1 + 1e-9, 1 + 1e-4)
    ]
    for v in values[1:]:
        np.testing.assert_allclose(v, values[2], rtol=1e-3)
    for v in values[1:4]:
        np.testing.assert_allclose(v, values[2], rtol=1e-7)


@pytest.mark.parametrize("extreme", [np.exp(-20), np.exp(20)])
def test_extreme_parameters_stay_finite(extreme: float) -> None:
    patterns = {
        "frequency": [0, 0, 1, 5000, 1, 2500],
        "recency": [0, 0, 1, 5000, 5000, 4000],
        "n_periods": [1, 5000, 1, 5000, 5000, 5000],
    }
    for name in ("alpha", "beta", "gamma", "delta"):
        params = {"alpha": 1.0, "beta": 2.0, "gamma": 0.5, "delta": 3.0, name: extreme}
        model = with_params(**params)
        alive = model.probability_alive(patterns)
        assert np.all((alive >= 0) & (alive <= 1)), params
        soon, later = (
            model.expected_purchases(patterns, 10),
            model.expected_purchases(patterns, 10_000),
        )
        assert np.all(np.isfinite(later)) and np.all((soon >= 0) & (soon <= later * (1 + 1e-9))), (
            params
        )
        assert model.probability_of_purchases(30, np.arange(31)).sum() == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(
    log_params=st.lists(st.floats(-12, 12), min_size=4, max_size=4),
    n=st.integers(1, 80),
    data=st.data(),
)
def test_alive_in_unit_interval_and_expectations_grow(
    log_params: list[float], n: int, data: st.DataObject
) -> None:
    x = data.draw(st.integers(0, n))
    t_x = 0 if x == 0 else data.draw(st.integers(x, n))
    alpha, beta, gamma, delta = np.exp(log_params)
    model = with_params(alpha=alpha, beta=beta, gamma=gamma, delta=delta)
    alive = model.probability_alive(one(x, t_x, n))[0]
    assert 0.0 <= alive <= 1.0
    horizons = np.array([0, 1, 2, 5, 13, 100, 1000])
    expected = model.expected_purchases(one(x, t_x, n), horizons)
    assert np.all(np.isfinite(expected)) and expected[0] == 0
    assert np.all(np.diff(expected) >= -1e-9 * expected[1:])
    assert np.all(expected <= horizons * alive * (1 + 1e-9) + 1e-300)
    new = model.expected_purchases_new(horizons)
    assert np.all(np.diff(new) >= -1e-9 * new[1:]) and np.all(new <= horizons)


# -- contract ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ({"frequency": [1], "recency": [1]}, SchemaError, "column 'n_periods'"),
        ({"recency": [1], "n_periods": [2]}, SchemaError, "column 'frequency'"),
        (
            {"frequency": [1, 3], "recency": [2, 2], "n_periods": [6, 6]},
            DataError,
            r"column 'frequency': cannot exceed recency.*\(row 1\)",
        ),
        (
            {"frequency": [1, 1], "recency": [2, 7], "n_periods": [6, 6]},
            DataError,
            r"column 'recency': cannot exceed n_periods \(row 1\)",
        ),
        (
            {"frequency": [0.5], "recency": [1], "n_periods": [6]},
            DataError,
            r"column 'frequency': must be a whole number ≥ 0 \(row 0\)",
        ),
        (
            {"frequency": [0, 0], "recency": [0, 3], "n_periods": [6, 6]},
            DataError,
            r"column 'recency': must be 0 when frequency is 0 \(row 1\)",
        ),
        (
            {"frequency": [1], "recency": [1], "n_periods": [0]},
            DataError,
            r"column 'n_periods': must be a whole number ≥ 1 \(row 0\)",
        ),
        (
            {"frequency": [1, 1], "recency": [1, 1], "n_periods": [6, 6], "weights": [3, -1]},
            DataError,
            r"column 'weights': must be ≥ 0.*\(row 1\)",
        ),
        (
            {"frequency": [1], "recency": [1], "n_periods": [6], "weights": [float("nan")]},
            DataError,
            "column 'weights': value at position 0 is not finite",
        ),
        (
            {"frequency": [1], "recency": [1], "n_periods": [6], "weights": [0]},
            DataError,
            "no customers to fit",
        ),
        (
            {"frequency": [1, 2], "recency": [1], "n_periods": [6, 6]},
            DataError,
            "same length",
        ),
    ],
)
def test_bad_input_is_named(data: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        BetaGeoBetaBinomModel().fit(data)


def test_bad_prediction_arguments(fitted: BetaGeoBetaBinomModel) -> None:
    with pytest.raises(DataError, match="column 'n': must be a whole number ≥ 0"):
        fitted.expected_purchases(one(1, 1, 2), -1)
    with pytest.raises(DataError, match="column 'n': must be a single whole number"):
        fitted.probability_of_purchases([3, 4], 1)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="column 'x'"):
        fitted.probability_of_purchases(3, 1.5)
