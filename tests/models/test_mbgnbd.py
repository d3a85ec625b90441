"""MBG/NBD, pinned to BTYDplus (as tested by lifetimes) on the CDNOW sample."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.special import betaln, gammaln, hyp2f1
from tests.conftest import shared

from cvm import Store
from cvm.errors import DataError
from cvm.features import btyd_summary
from cvm.ingest import ingest_transactions
from cvm.models.mbgnbd import ModifiedBetaGeoModel

NAMES = ("r", "alpha", "a", "b")


def with_params(*values: float) -> ModifiedBetaGeoModel:
    return ModifiedBetaGeoModel.from_dict(
        {
            "model": "ModifiedBetaGeoModel",
            "params": dict(zip(NAMES, values, strict=True)),
            "log_likelihood": 0.0,
            "n_customers": 1,
            "covariance": np.eye(4).tolist(),
        }
    )


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return pd.read_parquet(shared("cdnow_sample_summary.parquet"))


@pytest.fixture(scope="module")
def fitted(cdnow: pd.DataFrame) -> ModifiedBetaGeoModel:
    return ModifiedBetaGeoModel().fit(cdnow)


def btydplus_log_likelihood(params: dict[str, float], data: pd.DataFrame) -> float:
    """BTYDplus ``mbgcnbd.LL`` with k = 1 (R/mbg-cnbd-k.R), written out independently:
    lbeta(a, b+x+1) − lbeta(a, b) + lgamma(r+x) − lgamma(r) + r log α − (r+x) log(α+T)
    + log(1 + a/(b+x) ((α+T)/(α+t_x))^{r+x})."""
    r, alpha, a, b = (params[n] for n in NAMES)
    x, t_x, age = (data[c].to_numpy(float) for c in ("frequency", "recency", "t"))
    log_s1 = np.log(a / (b + x)) + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
    ll = (
        betaln(a, b + x + 1)
        - betaln(a, b)
        + gammaln(r + x)
        - gammaln(r)
        + r * np.log(alpha)
        - (r + x) * np.log(alpha + age)
        + np.logaddexp(0.0, log_s1)
    )
    return float(ll.sum())


def closed_form_expectation(
    params: tuple[float, float, float, float], x: np.ndarray, age: np.ndarray, t: float
) -> np.ndarray:
    """Batislam et al. (2007) E[Y(t) | alive] = (a+b+x)/(a−1) [1 − (1−z)^{r+x}
    ₂F₁(r+x, b+x+1; a+b+x; z)], Euler-transformed, with scipy's hyp2f1."""
    r, alpha, a, b = params
    z = t / (alpha + age + t)
    term = (1 - z) ** (a - 1) * hyp2f1(a + b - r, a - 1, a + b + x, z)
    result: np.ndarray = (a + b + x) / (a - 1) * (1 - term)
    return result


# -- golden values ------------------------------------------------------------------------
def test_params_match_btydplus(fitted: ModifiedBetaGeoModel, cdnow: pd.DataFrame) -> None:
    """BTYDplus ``mbgnbd.EstimateParameters`` on CDNOW: r = 0.525, alpha = 6.183,
    a = 0.891, b = 1.614, as pinned by lifetimes' test_params_out_is_close_to_BTYDplus
    (3 decimals).

    No published MBG/NBD log-likelihood for CDNOW was found; cvm's maximum, -9582.1327,
    equals BTYDplus's likelihood formula evaluated independently at cvm's estimates.
    """
    p = fitted.params_
    assert tuple(round(p[n], 3) for n in NAMES) == (0.525, 6.183, 0.891, 1.614)
    assert fitted.log_likelihood_ == pytest.approx(-9582.1327, abs=1e-4)
    assert fitted.log_likelihood_ == pytest.approx(btydplus_log_likelihood(p, cdnow), abs=1e-8)
    assert fitted.n_customers_ == 2357
    assert fitted.converged_


def test_params_on_the_unrounded_cdnow_summary(store: Store) -> None:
    """BTYDplus fits the summary of the raw event log (BTYD's cdnowElog, cal. end
    1997-09-30); cvm's summary of the same transactions gives the same 3 decimals."""
    ingest_transactions(store, shared("cdnow_sample.parquet"))
    summary = store.to_arrow(
        btyd_summary(store.table("transactions"), observation_end=dt.date(1997, 9, 30))
    ).to_pandas()
    model = ModifiedBetaGeoModel().fit(summary)
    assert tuple(round(model.params_[n], 3) for n in NAMES) == (0.525, 6.183, 0.891, 1.614)
    assert model.log_likelihood_ == pytest.approx(
        btydplus_log_likelihood(model.params_, summary), abs=1e-8
    )


def test_lifetimes_checks_against_the_hardie_bgnbd_sheet(fitted: ModifiedBetaGeoModel) -> None:
    """lifetimes' TestModifiedBetaGammaFitter compares the MBG/NBD with FHL's BG/NBD
    spreadsheet numbers, loosely: x = 2, t_x = 30.43, T = 38.86 → 1.226 in the next
    39 weeks (±0.05), and E[X(t)] at t = 0.1429 … 78 (rtol 0.05)."""
    one = {"frequency": [2], "recency": [30.43], "t": [38.86]}
    assert fitted.expected_purchases(one, 39)[0] == pytest.approx(1.226, abs=0.05)
    times = np.array([0.1429, 1.0, 3.00, 31.8571, 32.00, 78.00])
    expected = np.array([0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576])
    np.testing.assert_allclose(fitted.expected_purchases_new(times), expected, rtol=0.05)
    # MBG/NBD: a customer without repeat purchases may already have dropped out.
    assert fitted.probability_alive({"frequency": [0], "recency": [0.0], "t": [1.0]})[0] < 1.0


@pytest.mark.parametrize("horizon", [1.0, 39.0, 78.0, 520.0])
def test_expectation_equals_the_papers_closed_form(
    fitted: ModifiedBetaGeoModel, cdnow: pd.DataFrame, horizon: float
) -> None:
    """Batislam et al. (2007)'s ₂F₁ expression, where scipy evaluates it reliably."""
    p = fitted.params_
    params = (p["r"], p["alpha"], p["a"], p["b"])
    x, age = cdnow["frequency"].to_numpy(float), cdnow["t"].to_numpy(float)
    closed = closed_form_expectation(params, x, age, horizon)
    ours = fitted.expected_purchases(cdnow, horizon) / fitted.probability_alive(cdnow)
    np.testing.assert_allclose(ours, closed, rtol=1e-11)
    new = closed_form_expectation(params, np.zeros(1), np.zeros(1), horizon)
    a, b = fitted.params_["a"], fitted.params_["b"]
    assert fitted.expected_purchases_new(horizon) == pytest.approx(b / (a + b) * new[0], rel=1e-11)


@pytest.mark.parametrize(
    ("params", "x", "age", "t"),
    [
        ((1e-3, 1e4, 1e-3, 1e3), 100_000, 1e-3, 1e5),
        ((1e-3, 1e4, 1e4, 1e-3), 0, 1e-3, 1e5),  # (1−z)^{a−1} → 0 times ₂F₁ → inf
        ((1e-3, 1e4, 1e4, 1e-3), 100, 1.0, 1e3),
    ],
)
def test_expectation_where_the_closed_form_fails(
    params: tuple[float, float, float, float], x: int, age: float, t: float
) -> None:
    """scipy's hyp2f1 gives NaN here. The expectation E[(1 − (1 + p w)^{−(r+x)}) / p],
    p ~ Beta(a, b+x+1), w = t/(α+T), is checked against adaptive quadrature in log p
    (below p = e^{−200}, where g(p) = (r+x) w exactly, in closed form)."""
    r, alpha, a, b = params
    z = t / (alpha + age + t)
    with np.errstate(all="ignore"):
        closed = (
            (a + b + x)
            / (a - 1)
            * (1 - (1 - z) ** (a - 1) * hyp2f1(a + b - r, a - 1, a + b + x, z))
        )
    assert np.isnan(closed)
    n, w, b_post = r + x, t / (alpha + age), b + x + 1

    def in_log_p(u: float) -> float:
        gain = np.log(-np.expm1(-n * np.log1p(np.exp(u) * w))) - u
        return float(np.exp(a * u + (b_post - 1) * np.log1p(-np.exp(u)) - betaln(a, b_post) + gain))

    def in_p(p: float) -> float:
        gain = -np.expm1(-n * np.log1p(p * w)) / p
        return float(
            np.exp((a - 1) * np.log(p) + (b_post - 1) * np.log1p(-p) - betaln(a, b_post)) * gain
        )

    low = -200.0
    points = np.linspace(-60, -1, 60)
    left, _ = integrate.quad(
        in_log_p, low, np.log(0.5), points=points, epsabs=0, epsrel=1e-12, limit=2000
    )
    right, _ = integrate.quad(in_p, 0.5, 1, epsabs=0, epsrel=1e-12, limit=200)
    tail = np.exp(np.log(n * w) + a * low - np.log(a) - betaln(a, b_post))
    model = with_params(*params)
    data = {"frequency": [x], "recency": [age if x else 0.0], "t": [age]}
    alive = model.probability_alive(data)[0]
    assert model.expected_purchases(data, t)[0] == pytest.approx(
        alive * (left + right + tail), rel=1e-10
    )


# -- peers' bug reports -------------------------------------------------------------------
@pytest.mark.parametrize("x", [1_000, 100_000])
def test_lifetimes_issue_374_heavy_buyers_get_finite_predictions(
    fitted: ModifiedBetaGeoModel, x: int
) -> None:
    """https://github.com/CamDavidsonPilon/lifetimes/issues/374: "I am using MBG/NBD and
    am running into cases where i am getting 'inf' as predictions" — lifetimes'
    MBG/NBD evaluates ₂F₁(r+x, b+x+1; a+b+x; z) without a transformation, which
    overflows (inf · 0 = NaN) for large x."""
    gap = 38.86 / x
    data = {"frequency": [x] * 3, "recency": [38.86 - gap, 38.86 - 10 * gap, 1.0], "t": [38.86] * 3}
    alive = fitted.probability_alive(data)
    expected = fitted.expected_purchases(data, 39)
    assert np.all(np.isfinite(expected)) and np.all(np.isfinite(alive))
    assert alive[0] > 0.99 and alive[2] < 1e-6
    assert expected[0] > expected[1] > expected[2] >= 0
    assert 0.5 * x < expected[0] < x * 39 / 38.86


@pytest.mark.parametrize(
    "params",
    [
        # https://github.com/CamDavidsonPilon/lifetimes/pull/206: fitted a ≈ 0.001,
        # b ≈ 0.039 made the hypergeometric term negative and its log NaN.
        (0.5458741247391189, 13.409316394557274, 0.0009994943799344323, 0.03899022143378801),
        # https://github.com/CamDavidsonPilon/lifetimes/issues/302 and /issues/442:
        # a + b < 1 gave None/NaN for x = 0, t_x = 0 (T = 1, t = 30).
        (0.11, 2.24, 0.31, 0.50),
    ],
)
def test_lifetimes_nan_reports_for_small_a_and_b(params: tuple[float, ...]) -> None:
    model = with_params(*params)
    data = {"frequency": [0, 0, 3], "recency": [0.0, 0.0, 5.0], "t": [1.0, 1287.0, 40.0]}
    for horizon in (1.0, 30.0, 365.0):
        out = model.expected_purchases(data, horizon)
        assert np.all(np.isfinite(out)) and np.all(out >= 0)
    alive = model.probability_alive(data)
    assert np.all((alive > 0) & (alive < 1))


# -- robustness ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        (0.525, 6.183, 0.891, 1.614),
        (1e-3, 1e4, 0.891, 1.614),
        (1e-3, 1e4, 1e-3, 1e3),
        (1e-3, 1e4, 1e4, 1e-3),  # (1−z)^{a−1} underflows while ₂F₁ overflows
        (1e3, 1e-3, 1e-3, 1e4),
        (2.0, 1.0, 1.0, 3.0),  # a = 1: the closed form's removable singularity
    ],
)
def test_edge_inputs_and_parameters_stay_finite(params: tuple[float, ...]) -> None:
    model = with_params(*params)
    data = {
        "frequency": [100_000, 100_000, 100_000, 0, 0, 5, 3, 0],
        "recency": [1e5 - 1e-3, 5e4, 1e-3, 0.0, 0.0, 1e-3, 1e-3, 0.0],
        "t": [1e5, 1e5, 1e-3, 1e-3, 1e5, 1e5, 1e-3, 0.0],
    }
    alive = model.probability_alive(data)
    assert np.all(np.isfinite(alive)) and np.all((alive >= 0) & (alive <= 1))
    for horizon in (0.0, 1e-3, 39.0, 1e5):
        out = model.expected_purchases(data, horizon)
        assert np.all(np.isfinite(out)) and np.all(out >= 0)
    new = model.expected_purchases_new(np.array([0.0, 1e-3, 39.0, 1e5]))
    assert np.all(np.isfinite(new)) and new[0] == 0 and np.all(np.diff(new) >= 0)


def test_unconditional_quantities_are_consistent(fitted: ModifiedBetaGeoModel) -> None:
    n = np.arange(0, 400)
    probabilities = fitted.probability_of_purchases(39.0, n)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-9)
    assert (probabilities * n).sum() == pytest.approx(
        float(fitted.expected_purchases_new(39.0)), rel=1e-10
    )
    with pytest.raises(ValueError, match="non-negative"):
        fitted.probability_of_purchases(39.0, -1)


def test_new_customers(fitted: ModifiedBetaGeoModel, cdnow: pd.DataFrame) -> None:
    """T = 0 adds 0 to the log-likelihood and predicts like a new customer, who is alive
    with probability b/(a+b) (the MBG/NBD drop-out right after the first purchase)."""
    new = {"frequency": [0], "recency": [0.0], "t": [0.0]}
    a, b = fitted.params_["a"], fitted.params_["b"]
    assert fitted.probability_alive(new)[0] == pytest.approx(b / (a + b), rel=1e-12)
    assert fitted.expected_purchases(new, 39)[0] == pytest.approx(
        float(fitted.expected_purchases_new(39.0)), rel=1e-12
    )
    refit = ModifiedBetaGeoModel(n_starts=1).fit(pd.concat([cdnow, pd.DataFrame(new)]))
    assert refit.log_likelihood_ == pytest.approx(fitted.log_likelihood_, abs=1e-6)


_CDNOW_FIT = {
    "model": "ModifiedBetaGeoModel",
    "params": {"r": 0.524838, "alpha": 6.182992, "a": 0.891356, "b": 1.613999},
    "log_likelihood": -9582.1327,
    "n_customers": 2357,
    "covariance": np.eye(4).tolist(),
}


@settings(max_examples=60, deadline=None)
@given(
    x=st.integers(0, 100_000),
    age=st.floats(1e-3, 1e5),
    share=st.floats(0, 1),
    t1=st.floats(0, 1e4),
    dt=st.floats(0, 1e4),
)
def test_properties(x: int, age: float, share: float, t1: float, dt: float) -> None:
    model = ModifiedBetaGeoModel.from_dict(_CDNOW_FIT)
    data = {"frequency": [x], "recency": [age * share if x > 0 else 0.0], "t": [age]}
    alive = model.probability_alive(data)[0]
    assert 0.0 <= alive <= 1.0
    e1, e2 = model.expected_purchases(data, t1)[0], model.expected_purchases(data, t1 + dt)[0]
    assert 0.0 <= e1 <= e2 * (1 + 1e-10) + 1e-12
    n1, n2 = model.expected_purchases_new(t1), model.expected_purchases_new(t1 + dt)
    assert 0.0 <= n1 <= n2 * (1 + 1e-10) + 1e-12


# -- the estimator contract ---------------------------------------------------------------
def test_standard_errors_and_compressed_fit(
    fitted: ModifiedBetaGeoModel, cdnow: pd.DataFrame
) -> None:
    for name, value in fitted.params_.items():
        low, high = fitted.confidence_intervals()[name]
        assert 0 < low < value < high and fitted.standard_errors_[name] > 0
    doubled = ModifiedBetaGeoModel(n_starts=1).fit(pd.concat([cdnow, cdnow]))
    assert doubled.n_customers_ == 2 * 2357 and doubled.n_rows_ < 2357
    assert doubled.params_["r"] == pytest.approx(fitted.params_["r"], rel=1e-4)


def test_bad_input_is_named() -> None:
    with pytest.raises(DataError, match="must be 0 when"):
        ModifiedBetaGeoModel().fit({"frequency": [0], "recency": [1.0], "t": [2.0]})
