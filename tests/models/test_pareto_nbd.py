"""Pareto/NBD, pinned to Fader, Hardie & Lee, BTYD and CLVTools on the CDNOW sample."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.special import gammaln, hyp2f1
from tests.conftest import shared

from cvm import Store
from cvm.errors import DataError
from cvm.features import btyd_summary
from cvm.ingest import ingest_transactions
from cvm.models.pareto_nbd import ParetoNBDModel, _log_likelihood_parts

NAMES = ("r", "alpha", "s", "beta")
#: BTYD vignette ("Buy 'Til You Die - A Walkthrough", 2.1) estimates on CDNOW.
BTYD_PARAMS = (0.5534, 10.5802, 0.6061, 11.6562)


def with_params(*values: float) -> ParetoNBDModel:
    return ParetoNBDModel.from_dict(
        {
            "model": "ParetoNBDModel",
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
def fitted(cdnow: pd.DataFrame) -> ParetoNBDModel:
    return ParetoNBDModel().fit(cdnow)


# -- golden values ------------------------------------------------------------------------
def test_params_match_fader_hardie_lee(fitted: ParetoNBDModel) -> None:
    """Fader, Hardie & Lee (2005, BG/NBD paper, Pareto/NBD benchmark) and the BTYD
    vignette: r = 0.553, alpha = 10.578, s = 0.606, beta = 11.669, LL = -9594.98.

    To 3 decimals in numpy's sense (|diff| < 1.5e-3). cvm's maximum is r = 0.5533,
    alpha = 10.5776, s = 0.6062, beta = 11.6679: the likelihood is nearly flat in beta
    (standard error 6.2), so published 4th decimals differ between implementations.
    """
    p = fitted.params_
    np.testing.assert_array_almost_equal(
        [p[n] for n in NAMES], [0.553, 10.578, 0.606, 11.669], decimal=3
    )
    assert fitted.log_likelihood_ == pytest.approx(-9594.98, abs=1e-2)
    assert fitted.n_customers_ == 2357
    assert fitted.converged_


def test_matches_clvtools_on_the_unrounded_cdnow_summary(store: Store) -> None:
    """CLVTools tests/testthat/test_correctness_pnbd.R (CDNOW, split 1997-09-30, weeks):
    r = 0.55315, alpha = 10.57633, s = 0.60625, beta = 11.67150 (tolerance 1e-3, as
    there), LL = -9594.976, standard errors r = 0.0476264, alpha = 0.8427222,
    s = 0.1872594, beta = 6.2105448 (tolerance 1e-3, as there).

    cvm computes the summary from the raw transactions (not rounded), as CLVTools does.
    """
    ingest_transactions(store, shared("cdnow_sample.parquet"))
    summary = store.to_arrow(
        btyd_summary(store.table("transactions"), observation_end=dt.date(1997, 9, 30))
    ).to_pandas()
    model = ParetoNBDModel().fit(summary)
    expected = {"r": 0.55315, "alpha": 10.57633, "s": 0.60625, "beta": 11.67150}
    for name, value in expected.items():
        assert model.params_[name] == pytest.approx(value, rel=1e-3), name
    assert model.log_likelihood_ == pytest.approx(-9594.976, abs=1e-3)
    ses = {"r": 0.0476264, "alpha": 0.8427222, "s": 0.1872594, "beta": 6.2105448}
    for name, value in ses.items():
        assert model.standard_errors_[name] == pytest.approx(value, rel=1e-3), name


def test_btyd_walkthrough_customer_1516(fitted: ParetoNBDModel) -> None:
    """BTYD vignette, 2.3: the customer with x = 26, t_x = 30.86, T = 31 has
    P(alive) = 0.9979 and 25.46 expected transactions in the next 52 weeks.

    At cvm's estimates both round to the published figures; at the vignette's printed
    (rounded) estimates the expectation is 25.4549, within lifetimes' tolerance of 0.01
    for this number (test_conditional_expectation_returns_same_value_as_R_BTYD).
    """
    customer = {"frequency": [26], "recency": [30.86], "t": [31.0]}
    assert round(float(fitted.probability_alive(customer)[0]), 4) == 0.9979
    assert round(float(fitted.expected_purchases(customer, 52)[0]), 2) == 25.46
    printed = with_params(*BTYD_PARAMS)
    assert printed.probability_alive(customer)[0] == pytest.approx(0.9979, abs=5e-5)
    assert printed.expected_purchases(customer, 52)[0] == pytest.approx(25.46, abs=0.01)


def test_btyd_pnbd_palive_examples() -> None:
    """BTYD ``pnbd.PAlive`` examples: x = 0, T = 39 gives 0.2941633 (with BTYD's own
    estimates, which differ from the vignette's in the 5th digit); x = 23 with
    t_x = T = 39 gives 1; P(alive) falls with frequency at fixed recency (the
    "increasing frequency paradox", x = 5..20, t_x = 30, T = 39)."""
    model = with_params(*BTYD_PARAMS)
    none = {"frequency": [0], "recency": [0.0], "t": [39.0]}
    assert model.probability_alive(none)[0] == pytest.approx(0.2941633, abs=1e-4)
    assert model.probability_alive({"frequency": [23], "recency": [39.0], "t": [39.0]})[0] == 1
    x = np.arange(5, 21)
    alive = model.probability_alive({"frequency": x, "recency": [30.0] * 16, "t": [39.0] * 16})
    assert np.all(np.diff(alive) < 0)


def test_the_papers_example_customer_against_the_posterior() -> None:
    """FHL (2005)'s example customer, x = 2, t_x = 30.43, T = 38.86, at FHL's Pareto/NBD
    estimates. No published Pareto/NBD figure for this customer was found, so P(alive)
    and E[Y(39)] are checked against direct integration of the Schmittlein et al.
    (1987) posterior over (λ, μ): 0.869167559153 and 1.455123193258."""
    r, alpha, s, beta = 0.553, 10.578, 0.606, 11.669
    x, t_x, age, horizon = 2, 30.43, 38.86, 39.0
    nodes, weights = np.polynomial.legendre.leggauss(600)
    low, high = -80.0, 6.0  # log λ and log μ
    u = low + (high - low) * (nodes + 1) / 2
    wu = weights * (high - low) / 2
    lam, mu = np.exp(u)[:, None], np.exp(u)[None, :]
    log_prior = (
        r * np.log(alpha * lam) - gammaln(r) - alpha * lam
        + s * np.log(beta * mu) - gammaln(s) - beta * mu
    )  # fmt: skip
    w = np.exp(log_prior + x * np.log(lam)) * wu[:, None] * wu[None, :]
    alive = np.exp(-(lam + mu) * age)
    dead = mu / (lam + mu) * (np.exp(-(lam + mu) * t_x) - alive)
    evidence = (w * (alive + dead)).sum()
    p_alive = (w * alive).sum() / evidence
    expected = (w * alive * lam / mu * -np.expm1(-mu * horizon)).sum() / evidence
    assert p_alive == pytest.approx(0.869167559153, abs=1e-11)
    assert expected == pytest.approx(1.455123193258, abs=1e-11)

    model = with_params(r, alpha, s, beta)
    customer = {"frequency": [x], "recency": [t_x], "t": [age]}
    assert model.probability_alive(customer)[0] == pytest.approx(p_alive, rel=1e-9)
    assert model.expected_purchases(customer, horizon)[0] == pytest.approx(expected, rel=1e-9)


# -- the likelihood -----------------------------------------------------------------------
def _closed_form_log_integral(
    r: float, alpha: float, s: float, beta: float, x: float, t_x: float, age: float
) -> float:
    """log of ∫_{t_x}^{T} (α+τ)^{-(r+x)} (β+τ)^{-(s+1)} dτ by Fader & Hardie's (2005) ₂F₁."""
    p, q = r + x, s + 1

    def log_tail(y: float) -> float:
        if alpha >= beta:
            z, base = (alpha - beta) / (alpha + y), alpha + y
        else:
            z, base = (beta - alpha) / (beta + y), beta + y
        h = hyp2f1(q, p + q - 1, p + q, z) if alpha >= beta else hyp2f1(p, p + q - 1, p + q, z)
        return float(np.log(h) - np.log(p + q - 1) - (p + q - 1) * np.log(base))

    first, second = log_tail(t_x), log_tail(age)
    return first + float(np.log1p(-np.exp(second - first)))


@pytest.mark.parametrize(
    ("params", "x", "t_x", "age"),
    [
        ((0.553, 10.578, 0.606, 11.669), 2, 30.43, 38.86),  # alpha < beta branch
        ((0.553, 10.578, 0.606, 11.669), 0, 0.0, 38.86),
        ((0.8, 20.0, 1.7, 3.0), 7, 12.5, 40.0),  # alpha >= beta branch
        ((2.5, 0.3, 0.05, 0.2), 40, 1.0, 9.0),
        ((0.02, 5.0, 3.0, 400.0), 250, 100.0, 101.0),
    ],
)
def test_death_integral_matches_the_hypergeometric_closed_form(
    params: tuple[float, float, float, float], x: int, t_x: float, age: float
) -> None:
    """Where scipy's hyp2f1 is reliable, the quadrature equals FH (2005)'s ₂F₁ terms."""
    r, alpha, s, beta = params
    ll, alive, _ = _log_likelihood_parts(
        np.array(params), np.array([x], float), np.array([t_x]), np.array([age]), False
    )
    log_c = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    dead = np.log(s) + _closed_form_log_integral(r, alpha, s, beta, x, t_x, age)
    assert ll[0] == pytest.approx(log_c + np.logaddexp(alive[0] - log_c, dead), abs=1e-10)


def test_death_integral_matches_adaptive_quadrature_for_heavy_buyers() -> None:
    """x in the hundreds and thousands, where the ₂F₁ form overflows (lifetimes #25)."""
    rng = np.random.default_rng(3)
    for _ in range(12):
        r, alpha, s, beta = np.exp(rng.uniform(-3, 3, 4))
        x = float(rng.integers(300, 5000))
        age = float(np.exp(rng.uniform(0, 5)))
        t_x = age * float(rng.uniform(0.5, 1.0))
        ll, alive, _ = _log_likelihood_parts(
            np.array([r, alpha, s, beta]), np.array([x]), np.array([t_x]), np.array([age]), False
        )
        log_c = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        at_tx = -(r + x) * np.log(alpha + t_x) - (s + 1) * np.log(beta + t_x)

        def integrand(tau: float) -> float:
            # Integration variables are closed over per iteration (B023 is fine here).
            log_g = -(r + x) * np.log(alpha + tau) - (s + 1) * np.log(beta + tau)  # noqa: B023
            return float(np.exp(log_g - at_tx))  # noqa: B023

        points = t_x + (age - t_x) * np.geomspace(1e-8, 1, 30)[:-1]
        value, _ = integrate.quad(integrand, t_x, age, points=points, epsabs=0, epsrel=1e-12)
        dead = np.log(s) + at_tx + np.log(value)
        assert np.isfinite(ll[0])
        assert ll[0] == pytest.approx(log_c + np.logaddexp(alive[0] - log_c, dead), abs=1e-9)


def test_gradient_is_the_derivative_of_the_likelihood(cdnow: pd.DataFrame) -> None:
    x, t_x, age = (cdnow[c].to_numpy(float) for c in ("frequency", "recency", "t"))
    rng = np.random.default_rng(0)
    for _ in range(4):
        theta = np.exp(rng.uniform(-2, 2, 4))
        _, _, grad = _log_likelihood_parts(theta, x, t_x, age, True)
        step = 1e-6
        for i in range(4):
            up, down = theta.copy(), theta.copy()
            up[i] *= 1 + step
            down[i] *= 1 - step
            numeric = (
                _log_likelihood_parts(up, x, t_x, age, False)[0].sum()
                - _log_likelihood_parts(down, x, t_x, age, False)[0].sum()
            ) / (2 * step * theta[i])
            assert grad[i].sum() == pytest.approx(numeric, rel=1e-6, abs=1e-4)


# -- peers' bug reports -------------------------------------------------------------------
def test_lifetimes_issue_25_heavy_buyers_do_not_overflow(cdnow: pd.DataFrame) -> None:
    """https://github.com/CamDavidsonPilon/lifetimes/issues/25: "When we have customers
    with frequency > 300 _A_0 function returns 0 ... return Inf" (and P(alive) NaN).
    Its test: params (10.465, 7.98565181e-03, 3.0516, 2.820), x = 400/500/500."""
    x = np.array([400.0, 500.0, 500.0])
    t_x, age = np.array([5.0, 1.0, 4.0]), np.array([6.0, 37.0, 37.0])
    ll, _, grad = _log_likelihood_parts(
        np.array([10.465, 7.98565181e-03, 3.0516, 2.820]), x, t_x, age, True
    )
    assert np.all(np.isfinite(ll)) and np.all(np.isfinite(grad))
    # And a fit that includes heavy buyers converges to finite parameters.
    heavy = pd.DataFrame({"frequency": [400, 1_000, 100_000], "recency": [37.0, 38.0, 38.8],
                          "t": [38.86] * 3})  # fmt: skip
    model = ParetoNBDModel(n_starts=1).fit(pd.concat([cdnow, heavy]))
    assert np.isfinite(model.log_likelihood_)
    assert all(np.isfinite(v) and v > 0 for v in model.params_.values())


def test_lifetimes_pr_117_probability_alive_overflow() -> None:
    """https://github.com/CamDavidsonPilon/lifetimes/pull/117 (port of the P(alive) fix):
    params (10.465, 7.98565181e-03, 3.0516, 2.820), x = 40/50/50 must give finite
    probabilities in [0, 1]."""
    model = with_params(10.465, 7.98565181e-03, 3.0516, 2.820)
    data = {"frequency": [40, 50, 50], "recency": [5.0, 1.0, 4.0], "t": [6.0, 37.0, 37.0]}
    alive = model.probability_alive(data)
    assert np.all(np.isfinite(alive)) and np.all((alive >= 0) & (alive <= 1))


def test_lifetimes_pr_90_conditional_expectation_overflow() -> None:
    """https://github.com/CamDavidsonPilon/lifetimes/pull/90: the conditional expectation
    overflowed; its test pins (t=10, x=132, t_x=T=200) → 6.2060517889632418 and
    (x=133) → 6.2528722475748113 at r=0.55, alpha=10.58, s=0.61, beta=11.67."""
    model = with_params(0.55, 10.58, 0.61, 11.67)
    data = {"frequency": [132, 133], "recency": [200.0, 200.0], "t": [200.0, 200.0]}
    expected = model.expected_purchases(data, 10)
    np.testing.assert_allclose(expected, [6.2060517889632418, 6.2528722475748113], rtol=1e-9)


def test_clvtools_issue_100_palive_nan_for_heavy_buyers() -> None:
    """https://github.com/bachmannpatrick/CLVTools/issues/100 (and its test in
    test_correctness_pnbd.R): PAlive was NaN for x = 221, 254, 161, 204 at
    r = 0.5143, alpha = 2.8845, s = 0.2856, beta = 14.1087."""
    model = with_params(0.5143, 2.8845, 0.2856, 14.1087)
    data = {
        "frequency": [221, 254, 161, 204],
        "recency": [103.42857, 97.14286, 94.71429, 98.57143],
        "t": [103.57143, 97.28571, 98.00000, 99.42857],
    }
    alive = model.probability_alive(data)
    assert np.all(np.isfinite(alive)) and np.all((alive > 0) & (alive <= 1))
    assert alive[0] > 0.999  # bought 2 days before the end, at ~2 a week: alive
    assert np.all(np.isfinite(model.expected_purchases(data, 52)))


# -- robustness ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        (0.553, 10.578, 0.606, 11.669),
        (1e-3, 1e4, 0.606, 11.669),
        (1e-3, 1e4, 1e-3, 1e-3),
        (1e-3, 1e4, 1e4, 1e-3),
        (1e3, 1e-3, 1e-3, 1e4),
        (5.0, 1e-3, 1.0, 1.0),  # s = 1 exactly: the expectation's limit case
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


@pytest.mark.parametrize("x", [1_000, 100_000])
def test_heavy_buyers_behave(fitted: ParetoNBDModel, x: int) -> None:
    gap = 38.86 / x
    data = {"frequency": [x] * 3, "recency": [38.86 - gap, 38.86 - 10 * gap, 1.0], "t": [38.86] * 3}
    alive = fitted.probability_alive(data)
    expected = fitted.expected_purchases(data, 39)
    assert alive[0] > 0.99 and alive[2] < 1e-6
    assert expected[0] > expected[1] > expected[2] >= 0
    assert 0.5 * x < expected[0] < x * 39 / 38.86


def test_new_customers_and_last_day_buyers(fitted: ParetoNBDModel, cdnow: pd.DataFrame) -> None:
    """T = 0 adds exactly 0 to the log-likelihood and predicts like a new customer;
    a customer whose last purchase was at T is alive."""
    new = {"frequency": [0], "recency": [0.0], "t": [0.0]}
    assert fitted.probability_alive(new)[0] == 1.0
    assert fitted.expected_purchases(new, 39)[0] == pytest.approx(
        float(fitted.expected_purchases_new(39.0)), rel=1e-12
    )
    ll, _, _ = _log_likelihood_parts(fitted._theta(), np.zeros(1), np.zeros(1), np.zeros(1), False)
    assert ll[0] == pytest.approx(0.0, abs=1e-12)
    assert fitted.probability_alive({"frequency": [4], "recency": [30.0], "t": [30.0]})[0] == 1.0
    refit = ParetoNBDModel(n_starts=1).fit(pd.concat([cdnow, pd.DataFrame(new)]))
    assert refit.log_likelihood_ == pytest.approx(fitted.log_likelihood_, abs=1e-6)


_CDNOW_FIT = {
    "model": "ParetoNBDModel",
    "params": {"r": 0.553276, "alpha": 10.577613, "s": 0.606213, "beta": 11.667907},
    "log_likelihood": -9594.9739,
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
    model = ParetoNBDModel.from_dict(_CDNOW_FIT)
    data = {"frequency": [x], "recency": [age * share if x > 0 else 0.0], "t": [age]}
    alive = model.probability_alive(data)[0]
    assert 0.0 <= alive <= 1.0
    e1, e2 = model.expected_purchases(data, t1)[0], model.expected_purchases(data, t1 + dt)[0]
    assert 0.0 <= e1 <= e2 * (1 + 1e-12) + 1e-12
    n1, n2 = model.expected_purchases_new(t1), model.expected_purchases_new(t1 + dt)
    assert 0.0 <= n1 <= n2 * (1 + 1e-12) + 1e-12


# -- the estimator contract ---------------------------------------------------------------
def test_standard_errors_and_compressed_fit(fitted: ParetoNBDModel, cdnow: pd.DataFrame) -> None:
    se = fitted.standard_errors_
    assert se["beta"] == pytest.approx(6.21, abs=0.01)  # the flat direction
    for name, value in fitted.params_.items():
        low, high = fitted.confidence_intervals()[name]
        assert 0 < low < value < high and se[name] > 0
    doubled = ParetoNBDModel(n_starts=1).fit(pd.concat([cdnow, cdnow]))
    assert doubled.n_customers_ == 2 * 2357 and doubled.n_rows_ < 2357
    assert doubled.params_["r"] == pytest.approx(fitted.params_["r"], rel=1e-4)


def test_bad_input_is_named() -> None:
    with pytest.raises(DataError, match="cannot exceed t"):
        ParetoNBDModel().fit({"frequency": [1], "recency": [3.0], "t": [2.0]})
