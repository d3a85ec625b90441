"""Gamma-Gamma, pinned to Fader & Hardie (2013) on the CDNOW sample."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from scipy.special import betaln

from cvm.errors import DataError, ModelError, SchemaError
from cvm.models.gamma_gamma import GammaGammaModel, SpendFrequencyCorrelationWarning

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value", and lifetimes'
# test_params_out_is_close_to_Hardie_paper: p = 6.25, q = 3.74, gamma = 15.44.
PUBLISHED = {"p": 6.25, "q": 3.74, "v": 15.44}


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    path = SHARED_DATA / "cdnow_sample_summary.parquet"
    if not path.exists():
        pytest.skip("shared dataset cdnow_sample_summary.parquet not available")
    return pd.read_parquet(path)


@pytest.fixture(scope="module")
def fitted(cdnow: pd.DataFrame) -> GammaGammaModel:
    return GammaGammaModel().fit(cdnow)


def _model(p: float, q: float, v: float) -> GammaGammaModel:
    model = GammaGammaModel()
    model.params_ = {"p": p, "q": q, "v": v}
    model.log_likelihood_, model.n_customers_, model.n_rows_ = 0.0, 1, 1
    model.converged_, model.covariance_ = True, np.eye(3)
    model.frequency_spend_correlation_ = 0.0
    return model


def _reference_log_density(p: float, q: float, v: float, x: float, m: float) -> float:
    """Fader & Hardie's (2013) density of m̄, written as BTYD's spend.LL does."""
    return float(
        -betaln(p * x, q) + q * math.log(v) + (p * x - 1) * math.log(m)
        + p * x * math.log(x) - (p * x + q) * math.log(v + m * x)
    )  # fmt: skip


# -- golden values ----------------------------------------------------------------------
def test_params_match_fader_hardie_2013(fitted: GammaGammaModel) -> None:
    """Fader & Hardie (2013): p = 6.25, q = 3.74, γ = 15.44 on the 946 repeat buyers."""
    p = fitted.params_
    # To 2 decimals as lifetimes checks it (assert_array_almost_equal, decimal=2):
    # γ = 15.4477 is reported as 15.44 in the note.
    for name, value in PUBLISHED.items():
        assert p[name] == pytest.approx(value, abs=1e-2)
    assert (p["p"], p["q"], p["v"]) == pytest.approx((6.2488, 3.7446, 15.4477), abs=1e-4)
    assert fitted.n_customers_ == 946  # customers with frequency > 0 only
    assert fitted.n_rows_ < 946  # identical (x, m̄) rows compressed
    assert fitted.converged_


def test_log_likelihood(fitted: GammaGammaModel, cdnow: pd.DataFrame) -> None:
    """LL of the full density of m̄ (BTYD spend.LL / CLVTools gg_LL) at the optimum.

    CLVTools pins -4055.9177 (tests/testthat/test_correctness_gg.R) on its own CDNOW
    preparation (its transaction log split at week 37); the cent-rounded lifetimes
    summary used here gives -4055.9232, 0.006 away.
    """
    assert fitted.log_likelihood_ == pytest.approx(-4055.9232, abs=1e-3)
    assert fitted.log_likelihood_ == pytest.approx(-4055.9177, abs=1e-2)
    repeat = cdnow[cdnow["frequency"] > 0]
    p, q, v = (fitted.params_[k] for k in ("p", "q", "v"))
    reference = sum(
        _reference_log_density(p, q, v, x, m)
        for x, m in zip(repeat["frequency"], repeat["monetary_value"], strict=True)
    )
    assert fitted.log_likelihood_ == pytest.approx(reference, abs=1e-6)


@pytest.mark.parametrize(("x", "m"), [(1, 11.77), (2, 22.35), (7, 73.74), (29, 299.63)])
def test_density_is_the_gamma_mixture(x: int, m: float) -> None:
    """The density equals ∫ Gamma(m̄; px, rate νx) · Gamma(ν; q, rate γ) dν (numerically)."""
    p, q, v = 6.25, 3.74, 15.44
    mixture, _ = integrate.quad(
        lambda nu: (
            stats.gamma.pdf(m, p * x, scale=1 / (nu * x)) * stats.gamma.pdf(nu, q, scale=1 / v)
        ),
        0,
        np.inf,
        epsabs=0,
        epsrel=1e-10,
        limit=200,
    )
    assert math.log(mixture) == pytest.approx(_reference_log_density(p, q, v, x, m), abs=1e-7)


_HARDIE_SPREADSHEET = [24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17]


def test_expected_spend_matches_hardie_spreadsheet(
    fitted: GammaGammaModel, cdnow: pd.DataFrame
) -> None:
    """E[M | x, m̄] of the first ten CDNOW customers, from Hardie's gamma-gamma spreadsheet
    (http://brucehardie.com/notes/025/), as pinned by lifetimes'
    test_conditional_expected_average_profit. Customers 3-5, 8 and 10 have x = 0 and get
    the population mean pγ/(q − 1) = 35.17.
    """
    head = cdnow.head(10)
    np.testing.assert_allclose(fitted.expected_spend(head), _HARDIE_SPREADSHEET, atol=0.01)
    assert fitted.expected_spend_new() == pytest.approx(35.17, abs=0.005)
    # With the published, rounded parameters (lifetimes' tolerance).
    rounded = _model(**PUBLISHED)
    np.testing.assert_allclose(rounded.expected_spend(head), _HARDIE_SPREADSHEET, atol=0.1)
    assert rounded.expected_spend_new() == pytest.approx(6.25 * 15.44 / 2.74)


# -- the independence assumption ------------------------------------------------------------
def test_no_correlation_warning_on_cdnow(cdnow: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpendFrequencyCorrelationWarning)
        model = GammaGammaModel().fit(cdnow)
    assert model.frequency_spend_correlation_ == pytest.approx(0.1139, abs=1e-4)


def _correlated(n: int = 400, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 40, n).astype(float)
    return {"frequency": x, "monetary_value": 5.0 * x * rng.gamma(8.0, 1 / 8.0, n)}


def test_correlation_warning_on_dependent_data() -> None:
    data = _correlated()
    with pytest.warns(
        SpendFrequencyCorrelationWarning,
        match=r"correlated among the 400 customers .*Pearson r = 0\.\d\d.*assumes spend",
    ) as record:
        model = GammaGammaModel().fit(data)
    assert model.frequency_spend_correlation_ > 0.8
    assert record[0].filename == __file__  # stacklevel points at the caller of fit
    # The threshold is a setting, and it survives persistence.
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpendFrequencyCorrelationWarning)
        lenient = GammaGammaModel(correlation_threshold=0.95).fit(data)
    assert GammaGammaModel.from_dict(lenient.to_dict()).correlation_threshold == 0.95


def test_correlation_threshold_is_a_setting(cdnow: pd.DataFrame) -> None:
    with pytest.warns(SpendFrequencyCorrelationWarning, match=r"r = 0\.11, \|r\| > 0\.05"):
        GammaGammaModel(correlation_threshold=0.05).fit(cdnow)


def test_constant_frequency_has_no_correlation() -> None:
    rng = np.random.default_rng(3)
    spend = rng.gamma(6.0, 1 / (3 * rng.gamma(4.0, 1 / 15.0, 200)))  # x = 3 for everyone
    model = GammaGammaModel().fit({"frequency": [3] * 200, "monetary_value": spend})
    assert math.isnan(model.frequency_spend_correlation_)


# -- robustness ---------------------------------------------------------------------------
def test_extreme_inputs_give_finite_predictions(fitted: GammaGammaModel) -> None:
    data = {
        "frequency": [0, 1, 1, 100_000, 100_000, 100_000],
        "monetary_value": [0.0, 1e-6, 1e9, 1e-6, 1e9, 25.0],
    }
    out = fitted.expected_spend(data)
    assert np.all(np.isfinite(out)) and np.all(out > 0)
    assert out[4] == pytest.approx(1e9, rel=1e-4)  # 100,000 purchases: the data speaks
    assert out[3] == pytest.approx(1e-6, abs=1e-3)
    for params in ({"p": 1e-6, "q": 1.0 + 1e-9, "v": 1e9}, {"p": 1e6, "q": 1e6, "v": 1e-6}):
        assert np.all(np.isfinite(_model(**params).expected_spend(data)))


@pytest.mark.parametrize("scale", [1e-7, 1e7])
def test_fit_is_currency_scale_equivariant(cdnow: pd.DataFrame, scale: float) -> None:
    """Monetary values from ~1e-6 to ~1e9: p and q unchanged, γ scales, LL shifts."""
    scaled = cdnow.assign(monetary_value=cdnow["monetary_value"] * scale)
    model = GammaGammaModel().fit(scaled)
    assert model.params_["p"] == pytest.approx(6.2488, abs=1e-3)
    assert model.params_["q"] == pytest.approx(3.7446, abs=1e-3)
    assert model.params_["v"] == pytest.approx(15.4477 * scale, rel=1e-4)
    assert model.log_likelihood_ == pytest.approx(-4055.9232 - 946 * math.log(scale), abs=1e-2)


def test_recovers_parameters_with_heavy_buyers() -> None:
    """Simulated from the model, frequencies up to 100,000."""
    rng = np.random.default_rng(42)
    n, p, q, v = 3000, 2.0, 4.0, 30.0
    x = np.concatenate([rng.integers(1, 30, n - 50), rng.integers(1_000, 100_001, 50)])
    nu = rng.gamma(q, 1 / v, n)
    m = rng.gamma(p * x, 1 / (nu * x))
    model = GammaGammaModel().fit({"frequency": x, "monetary_value": m})
    assert model.converged_
    fitted = model.params_
    assert fitted["p"] == pytest.approx(p, rel=0.15)
    assert fitted["q"] == pytest.approx(q, rel=0.25)
    assert fitted["v"] == pytest.approx(v, rel=0.3)
    assert np.all(np.isfinite(model.expected_spend({"frequency": x, "monetary_value": m})))


@settings(max_examples=200, deadline=None)
@given(
    p=st.floats(1e-3, 1e3),
    q=st.floats(1.001, 1e3),
    v=st.floats(1e-3, 1e6),
    x=st.integers(0, 100_000),
    m=st.floats(1e-6, 1e9),
)
def test_expected_spend_is_between_population_and_observed_mean(
    p: float, q: float, v: float, x: int, m: float
) -> None:
    """E[M | x, m̄] is a weighted average of pγ/(q − 1) and m̄ (weight on m̄ grows with x)."""
    model = _model(p, q, v)
    population = model.expected_spend_new()
    data = {"frequency": [x, x + 1], "monetary_value": [m, m]}
    spend, more = model.expected_spend(data)
    low, high = min(population, m), max(population, m)
    assert np.isfinite(spend)
    assert low * (1 - 1e-12) <= spend <= high * (1 + 1e-12)
    slack = 1e-12 * high
    assert abs(more - m) <= abs(spend - m) + slack  # one more purchase: closer to m̄
    if x == 0:
        assert spend == pytest.approx(population, rel=1e-12)


def test_q_at_most_one_has_no_mean_spend() -> None:
    model = _model(2.0, 0.9, 10.0)
    with pytest.raises(ModelError, match=r"q = 0\.9 is ≤ 1.*population mean spend .*infinite"):
        model.expected_spend({"frequency": [2], "monetary_value": [10.0]})
    with pytest.raises(ModelError, match="≤ 1"):
        model.expected_spend_new()


# -- contract -----------------------------------------------------------------------------
def test_fit_returns_self_and_ignores_non_repeat_customers(cdnow: pd.DataFrame) -> None:
    model = GammaGammaModel()
    assert model.fit(cdnow) is model
    repeat = GammaGammaModel().fit(cdnow[cdnow["frequency"] > 0])
    assert repeat.params_ == model.params_
    # Customers without repeat purchases may carry any non-negative value: ignored.
    noisy = cdnow.assign(
        monetary_value=np.where(cdnow["frequency"] > 0, cdnow["monetary_value"], 7.0)
    )
    assert GammaGammaModel().fit(noisy).params_ == model.params_


def test_compressed_fit_equals_repeated_rows(cdnow: pd.DataFrame, fitted: GammaGammaModel) -> None:
    doubled = GammaGammaModel().fit(pd.concat([cdnow, cdnow]))
    assert doubled.n_customers_ == 2 * 946
    assert doubled.n_rows_ == fitted.n_rows_
    for name, value in fitted.params_.items():
        assert doubled.params_[name] == pytest.approx(value, rel=1e-5)
    assert doubled.log_likelihood_ == pytest.approx(2 * fitted.log_likelihood_, abs=1e-3)


def test_standard_errors_are_finite(fitted: GammaGammaModel) -> None:
    se = fitted.standard_errors_
    assert all(np.isfinite(value) and value > 0 for value in se.values())
    low, high = fitted.confidence_intervals()["q"]
    assert low < fitted.params_["q"] < high


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ({"frequency": [1]}, SchemaError, "missing column 'monetary_value'"),
        ({"monetary_value": [1.0]}, SchemaError, "missing column 'frequency'"),
        (
            {"frequency": [1, 2, 3], "monetary_value": [5.0, -2.0, 4.0]},
            DataError,
            r"column 'monetary_value': must be ≥ 0 .*\(row 1\)",
        ),
        (
            {"frequency": [0, 2, 3], "monetary_value": [0.0, 3.0, 0.0]},
            DataError,
            r"column 'monetary_value': must be > 0 for a customer with repeat .*\(row 2\)",
        ),
        (
            {"frequency": [1, 2], "monetary_value": [5.0, np.nan]},
            DataError,
            "column 'monetary_value': value at position 1 is not finite",
        ),
        (
            {"frequency": [1, np.inf], "monetary_value": [5.0, 3.0]},
            DataError,
            "column 'frequency': value at position 1 is not finite",
        ),
        (
            {"frequency": [1, 2.5], "monetary_value": [5.0, 3.0]},
            DataError,
            r"column 'frequency': must be a whole number ≥ 0 \(row 1\)",
        ),
        (
            {"frequency": [0, 0], "monetary_value": [0.0, 0.0]},
            DataError,
            "no customer with frequency > 0 among 2",
        ),
        ({"frequency": [1, 2], "monetary_value": [5.0]}, DataError, "same length"),
    ],
)
def test_bad_input_is_named(
    data: dict[str, list[float]], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        GammaGammaModel().fit(data)


def test_bad_input_is_named_in_predictions(fitted: GammaGammaModel) -> None:
    with pytest.raises(DataError, match=r"monetary_value.*\(row 0\)"):
        fitted.expected_spend({"frequency": [4], "monetary_value": [-1.0]})
