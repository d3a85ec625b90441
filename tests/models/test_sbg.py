"""sBG, pinned to Fader & Hardie (2007) and Fader & Hardie (2010)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import hyp2f1

from cvm.errors import ConvergenceError, DataError
from cvm.models.sbg import ShiftedBetaGeoModel

# Fader & Hardie (2007), the two segments of the worked example: customers still active
# at the start of years 0 … 12 out of 1,000 acquired. The model is fitted on years 0 … 7
# (seven renewal opportunities); years 8 … 12 are the holdout the paper projects.
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491, 468, 445, 427, 409, 394]
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241, 223, 207, 194, 183, 173]


@pytest.fixture(scope="module")
def high_end() -> ShiftedBetaGeoModel:
    return ShiftedBetaGeoModel().fit(HIGH_END[:8])


@pytest.fixture(scope="module")
def regular() -> ShiftedBetaGeoModel:
    return ShiftedBetaGeoModel().fit(REGULAR[:8])


def with_params(alpha: float, beta: float) -> ShiftedBetaGeoModel:
    """An sBG model with the given parameters, built through the public from_dict."""
    return ShiftedBetaGeoModel.from_dict(
        {
            "model": "ShiftedBetaGeoModel",
            "params": {"alpha": alpha, "beta": beta},
            "log_likelihood": 0.0,
            "n_customers": 1,
            "covariance": [[0.0, 0.0], [0.0, 0.0]],
        }
    )


def direct_dert(model: ShiftedBetaGeoModel, d: float, n: int, horizon: int = 200_000) -> float:
    """Σ_{t>n} S(t)/S(n) (1+d)^{−(t−n−1)}, summed term by term (FH 2010's definition)."""
    t = np.arange(n + 1, n + horizon, dtype=np.float64)
    terms = model.survival(t) / model.survival(n)[0] * (1 + d) ** -(t - n - 1)
    return float(terms.sum())


# -- golden tests ---------------------------------------------------------------------
def test_high_end_params_match_fader_hardie_2007(high_end: ShiftedBetaGeoModel) -> None:
    """FH (2007), 'High End' segment, years 0-7: alpha = 0.668, beta = 3.806.

    LL = -1611.2, the value public replications of the paper's spreadsheet report
    (e.g. an R `optim` replication, 1611.158).
    """
    assert round(high_end.params_["alpha"], 3) == 0.668
    assert round(high_end.params_["beta"], 3) == 3.806
    assert high_end.log_likelihood_ == pytest.approx(-1611.158, abs=5e-4)
    assert high_end.n_customers_ == 1000
    assert high_end.converged_


def test_regular_params_match_fader_hardie_2007(regular: ShiftedBetaGeoModel) -> None:
    """FH (2007), 'Regular' segment, years 0-7: alpha = 0.704, beta = 1.182."""
    assert round(regular.params_["alpha"], 3) == 0.704
    assert round(regular.params_["beta"], 3) == 1.182
    assert regular.converged_


@pytest.mark.parametrize(("segment", "observed"), [("high_end", HIGH_END), ("regular", REGULAR)])
def test_projection_to_year_12_tracks_the_holdout(
    segment: str, observed: list[int], request: pytest.FixtureRequest
) -> None:
    """FH (2007): fitted on years 0-7, the sBG projection tracks the five holdout years;
    year 12 survival is 39.4 % (High End) and 17.3 % (Regular) in the paper's data."""
    model: ShiftedBetaGeoModel = request.getfixturevalue(segment)
    projected = model.survival(np.arange(13))
    actual = np.array(observed) / 1000
    assert abs(projected[12] - actual[12]) < 0.02
    assert np.max(np.abs(projected[8:] - actual[8:])) < 0.02


def test_percentages_give_the_same_fit(high_end: ShiftedBetaGeoModel) -> None:
    percent = ShiftedBetaGeoModel().fit([c / 10 for c in HIGH_END[:8]])
    for name in ("alpha", "beta"):
        assert percent.params_[name] == pytest.approx(high_end.params_[name], rel=1e-6)
    assert percent.n_customers_ == 100


# -- predictions ------------------------------------------------------------------------
def test_survival_retention_and_churn_agree(high_end: ShiftedBetaGeoModel) -> None:
    """FH (2007) eq. 7-8: P(T=t) = S(t−1) − S(t), r(t) = S(t)/S(t−1) = (β+t−1)/(α+β+t−1)."""
    a, b = high_end.params_["alpha"], high_end.params_["beta"]
    t = np.arange(1, 40)
    survival = high_end.survival(np.arange(40))
    assert survival[0] == 1.0
    np.testing.assert_allclose(high_end.churn_probability(t), -np.diff(survival), rtol=1e-9)
    np.testing.assert_allclose(high_end.retention_rate(t), survival[1:] / survival[:-1], rtol=1e-12)
    np.testing.assert_allclose(high_end.retention_rate(t), (b + t - 1) / (a + b + t - 1))
    assert high_end.churn_probability(1)[0] == pytest.approx(a / (a + b))
    assert np.all(np.diff(high_end.retention_rate(t)) > 0)


def test_expected_lifetime() -> None:
    """E[T] = (α+β−1)/(α−1) for α > 1 (the mean of 1/θ); infinite for α ≤ 1."""
    model = with_params(3.0, 5.0)
    assert model.expected_lifetime() == pytest.approx(3.5)
    t = np.arange(0, 2_000_000, dtype=np.float64)
    assert float(model.survival(t).sum()) == pytest.approx(3.5, rel=1e-10)
    assert with_params(0.668, 3.806).expected_lifetime() == math.inf
    assert with_params(1.0, 3.0).expected_lifetime() == math.inf


@pytest.mark.parametrize("segment", ["high_end", "regular"])
@pytest.mark.parametrize("d", [0.1, 0.01])
def test_dert_equals_the_discounted_sum(
    segment: str, d: float, request: pytest.FixtureRequest
) -> None:
    """FH (2010) eq. 6 defines DERT as Σ_{t>n} S(t)/S(n) (1+d)^{−(t−n−1)}."""
    model: ShiftedBetaGeoModel = request.getfixturevalue(segment)
    renewals = [0, 1, 4, 30]
    got = model.discounted_expected_residual_transactions(d, renewals)
    for n, value in zip(renewals, got, strict=True):
        assert value == pytest.approx(direct_dert(model, d, n), rel=1e-8)


def test_dert_equals_the_hypergeometric_form(high_end: ShiftedBetaGeoModel) -> None:
    """FH (2010) eq. 6: DERT = (β+n)/(α+β+n) ₂F₁(1, β+n+1; α+β+n+1; 1/(1+d)), where
    scipy's hyp2f1 is finite."""
    a, b = high_end.params_["alpha"], high_end.params_["beta"]
    for n in (0, 3, 10):
        closed = (b + n) / (a + b + n) * hyp2f1(1, b + n + 1, a + b + n + 1, 1 / 1.1)
        got = high_end.discounted_expected_residual_transactions(0.1, n)[0]
        assert got == pytest.approx(closed, rel=1e-10)


@pytest.mark.parametrize(("alpha", "beta"), [(1000.0, 0.5), (3.0, 1e4), (1.0, 1e6)])
def test_dert_where_scipy_hyp2f1_fails(alpha: float, beta: float) -> None:
    """Parameters where scipy's hyp2f1 returns NaN: still the discounted sum."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(hyp2f1(1, beta + 1, alpha + beta + 1, 1 / 1.01))
    model = with_params(alpha, beta)
    got = model.discounted_expected_residual_transactions(0.01, 0)[0]
    assert got == pytest.approx(direct_dert(model, 0.01, 0, horizon=400_000), rel=1e-8)


def test_dert_without_discounting() -> None:
    """d = 0: the expected number of further renewals, (β+n)/(α−1) for α > 1."""
    model = with_params(3.0, 5.0)
    np.testing.assert_allclose(
        model.discounted_expected_residual_transactions(0.0, [0, 2]), [2.5, 3.5]
    )
    assert model.discounted_expected_residual_transactions(0.0, 0)[0] == pytest.approx(
        model.expected_lifetime() - 1
    )
    assert np.all(np.isinf(with_params(0.7, 3.8).discounted_expected_residual_transactions(0, 3)))


@pytest.mark.parametrize("extreme", [np.exp(-20), np.exp(20)])
def test_extreme_parameters_stay_finite(extreme: float) -> None:
    for alpha, beta in ((extreme, 1.0), (1.0, extreme), (extreme, extreme)):
        model = with_params(alpha, beta)
        survival = model.survival([0, 1, 10, 10**6])
        assert np.all(np.isfinite(survival)) and np.all(np.diff(survival) <= 0)
        assert np.all(np.isfinite(model.churn_probability([1, 2, 10**6])))
        dert = model.discounted_expected_residual_transactions(0.05, [0, 1, 10**6])
        assert np.all(np.isfinite(dert)) and np.all(dert >= 0)


@settings(max_examples=60, deadline=None)
@given(log_alpha=st.floats(-12, 12), log_beta=st.floats(-12, 12), d=st.floats(1e-3, 10))
def test_survival_falls_retention_rises_dert_behaves(
    log_alpha: float, log_beta: float, d: float
) -> None:
    model = with_params(math.exp(log_alpha), math.exp(log_beta))
    t = np.array([0, 1, 2, 3, 7, 20, 100, 10_000])
    survival = model.survival(t)
    assert np.all((survival >= 0) & (survival <= 1)) and survival[0] == 1
    assert np.all(np.diff(survival) <= 0)
    retention = model.retention_rate(t[1:])
    assert np.all((retention >= 0) & (retention <= 1)) and np.all(np.diff(retention) >= 0)
    renewals = np.array([0, 1, 5, 50])
    dert = model.discounted_expected_residual_transactions(d, renewals)
    assert np.all(np.isfinite(dert)) and np.all(dert >= 0)
    assert np.all(dert <= (1 + d) / d * (1 + 1e-9))  # never more than a sure renewal stream
    assert np.all(np.diff(dert) >= -1e-9 * dert[1:])  # the longer they stay, the more
    cheaper = model.discounted_expected_residual_transactions(2 * d, renewals)
    assert np.all(cheaper <= dert * (1 + 1e-9))


# -- contract ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("survivors", "match"),
    [
        ([1000, 900], "column 'survivors': need the cohort size and at least two later"),
        ([0, 0, 0], "column 'survivors': the first count .* must be > 0"),
        ([500, 500, 500], "column 'survivors': no customer was lost"),
        ([500, 0, 0], "column 'survivors': every customer was lost in the first period"),
        ([1000, 900, 910, 800], "column 'survivors': cannot increase: 910 at period 2 after 900"),
        ([1000, -5, -5], "column 'survivors': must be ≥ 0, got -5 \\(period 1\\)"),
        ([1000, float("nan"), 800], "column 'survivors': value at position 1 is not finite"),
        ([[1000, 900, 800], [1000, 800, 700]], "column 'survivors': expected a 1-d array"),
    ],
)
def test_bad_survivors_are_named(survivors: list[float], match: str) -> None:
    with pytest.raises(DataError, match=match):
        ShiftedBetaGeoModel().fit(survivors)


def test_homogeneous_churn_is_the_geometric_limit() -> None:
    """Exactly geometric decay (θ = 0.5 for everyone) has its likelihood maximum at
    α, β → ∞ with α/(α+β) = 1/2: the fit either gets close or says it ran to the edge."""
    try:
        model = ShiftedBetaGeoModel().fit([1000, 500, 250, 125, 62.5])
    except ConvergenceError as exc:
        assert "edge of its range" in str(exc)
    else:
        assert model.params_["alpha"] > 1e3
        np.testing.assert_allclose(model.retention_rate([1, 5, 50]), 0.5, atol=1e-3)


def test_bad_prediction_arguments(high_end: ShiftedBetaGeoModel) -> None:
    with pytest.raises(DataError, match="column 't': must be a whole number ≥ 1, got 0"):
        high_end.retention_rate(0)
    with pytest.raises(DataError, match="column 't': must be a whole number ≥ 0"):
        high_end.survival(1.5)
    with pytest.raises(DataError, match="column 'renewals'"):
        high_end.discounted_expected_residual_transactions(0.1, -1)
    with pytest.raises(DataError, match="column 'discount_rate': must be a finite number ≥ 0"):
        high_end.discounted_expected_residual_transactions(-0.1, 0)
