"""The estimation machinery shared by the models: compression, warm starts, scoring paths."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad

import cvm.models.base as base
import cvm.models.pareto_nbd as pareto
from cvm.models import BetaGeoModel, GammaGammaModel, ModifiedBetaGeoModel, ParetoNBDModel
from cvm.models.base import compress, distinct, unique_rows
from cvm.models.clv import customer_lifetime_value


def simulated(n: int, seed: int = 3) -> pd.DataFrame:
    """Customers from the BG/NBD and Gamma-Gamma processes on a daily grid.

    r = 0.3, α = 20, a = 0.8, b = 2.5 (FHL 2005's CDNOW estimates, in days); ages spread
    over 400 days, so that most (x, t_x, T) rows are distinct; spend p = 6, q = 4, γ = 15.
    """
    rng = np.random.default_rng(seed)
    age = rng.integers(1, 400, n).astype(float)
    rate = rng.gamma(0.3, 1 / 20.0, n)
    drop = rng.beta(0.8, 2.5, n)
    x, last, clock = np.zeros(n), np.zeros(n), np.zeros(n)
    alive = np.ones(n, dtype=bool)
    for _ in range(300):
        clock = clock + rng.exponential(1.0, n) / np.maximum(rate, 1e-12)
        buy = alive & (clock <= age)
        x += buy
        last = np.where(buy, clock, last)
        alive = buy & (rng.random(n) >= drop)
        if not alive.any():
            break
    nu = rng.gamma(4.0, 1 / 15.0, n)
    spend = np.where(x > 0, rng.gamma(6.0 * np.maximum(x, 1), 1 / (nu * np.maximum(x, 1))), 0.0)
    return pd.DataFrame(
        {"frequency": x, "recency": np.floor(last), "t": age, "monetary_value": spend}
    )


def test_unique_rows_restores_every_row() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 1000).astype(float)
    b = rng.choice([0.5, 1.25, 3.0], 1000)  # not whole numbers: hashed
    c = rng.integers(0, 2**30, 1000).astype(float) * 1e3  # a range too wide for offsets
    (ua, ub, uc), counts, inverse = unique_rows(a, b, c)
    np.testing.assert_array_equal(ua[inverse], a)
    np.testing.assert_array_equal(ub[inverse], b)
    np.testing.assert_array_equal(uc[inverse], c)
    assert counts.sum() == 1000
    assert len(set(zip(ua, ub, uc, strict=True))) == len(ua)  # rows are unique
    (sa, sb), weights = compress([1.0, 2.0, 1.0], [3.0, 3.0, 3.0])
    assert list(zip(sa, sb, weights, strict=True)) == [(1.0, 3.0, 2.0), (2.0, 3.0, 1.0)]


def test_bgnbd_gradient_is_the_derivative_of_its_likelihood() -> None:
    data = simulated(3000)
    (x, t_x, t), weights = compress(data.frequency, data.recency, data.t)
    weights = weights * np.linspace(0.5, 2.0, len(weights))  # weights other than 1
    objective = BetaGeoModel._objective(x, t_x, t, weights)
    for theta in ([0.3, 20.0, 0.8, 2.5], [2.0, 1.0, 5.0, 0.5], [0.05, 300.0, 0.2, 40.0]):
        start = np.log(theta)
        error = check_grad(lambda v: objective(v)[0], lambda v: objective(v)[1], start)
        assert error < 1e-5 * max(1.0, float(np.abs(objective(start)[1]).max()))


def test_bgnbd_likelihood_handles_rows_far_past_the_softplus_cap() -> None:
    # a heavy buyer whose last purchase was long ago: z = k + (r+x) D is huge
    x, t_x, t = np.array([5000.0, 1.0]), np.array([1.0, 1.0]), np.array([1000.0, 2.0])
    value, grad = BetaGeoModel._objective(x, t_x, t, np.ones(2))(np.log([0.5, 1.0, 1.0, 2.0]))
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_gamma_gamma_gradient_is_the_derivative_of_its_likelihood() -> None:
    data = simulated(3000)
    repeat = data[data.frequency > 0]
    x, m = repeat.frequency.to_numpy(float), repeat.monetary_value.to_numpy(float) / 40
    objective = GammaGammaModel._objective(x, m, np.ones(len(x)))
    for theta in ([6.0, 4.0, 15.0], [0.5, 1.5, 0.2], [40.0, 20.0, 300.0]):
        start = np.log(theta)
        error = check_grad(lambda v: objective(v)[0], lambda v: objective(v)[1], start)
        assert error < 1e-5 * max(1.0, float(np.abs(objective(start)[1]).max()))


@pytest.mark.parametrize("model", [BetaGeoModel, ParetoNBDModel, GammaGammaModel])
def test_warm_started_fit_reaches_the_same_maximum(
    model: type[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The subsample only chooses where the full optimisation starts."""
    data = simulated(12_000)
    monkeypatch.setattr(base, "WARM_START_ROWS", 1_000)
    monkeypatch.setattr(base, "WARM_SAMPLE_ROWS", 500)
    warm = model().fit(data)
    monkeypatch.setattr(base, "WARM_START_ROWS", 10**12)
    cold = model().fit(data)
    # both stop when a Newton step could gain less than 1e-6 (see cvm.models.base)
    assert warm.log_likelihood_ == pytest.approx(cold.log_likelihood_, abs=2e-6)
    for name, value in cold.params_.items():
        assert warm.params_[name] == pytest.approx(value, rel=1e-4), name
    assert warm.converged_


def test_standard_errors_are_computed_on_first_use_and_kept() -> None:
    model = BetaGeoModel().fit(simulated(2000))
    first = model.standard_errors_
    assert model._information is None  # the fitted rows are released
    assert model.standard_errors_ == first
    assert all(np.isfinite(v) and v > 0 for v in first.values())


@pytest.mark.parametrize("model", [BetaGeoModel, ModifiedBetaGeoModel, ParetoNBDModel])
def test_expected_purchases_path_equals_one_horizon_at_a_time(model: type[Any]) -> None:
    data = simulated(2000)
    fitted = model().fit(data)
    horizons = [0.0, 7.0, 30.0, 365.0]
    path = fitted.expected_purchases_path(data, horizons)
    assert path.shape == (4, len(data))
    for k, horizon in enumerate(horizons):
        single = fitted.expected_purchases(data, horizon)
        np.testing.assert_allclose(path[k], single, rtol=1e-12, atol=0)
        per_row = fitted.expected_purchases(data, np.full(len(data), horizon))
        np.testing.assert_allclose(path[k], per_row, rtol=1e-12, atol=1e-300)


def test_clv_from_the_path_equals_clv_from_single_horizons() -> None:
    data = simulated(2000)
    fitted = BetaGeoModel().fit(data)

    class OneAtATime:
        def expected_purchases(self, frame: Any, t: Any) -> Any:
            return fitted.expected_purchases(frame, t)

    options: dict[str, Any] = {
        "horizon": 400.0,
        "discount_rate": 0.1,
        "units_per_year": 365.2425,
        "spend": 25.0,
    }
    fast = customer_lifetime_value(fitted, data, **options)
    slow = customer_lifetime_value(OneAtATime(), data, **options)
    np.testing.assert_allclose(fast, slow, rtol=1e-12)


def test_pareto_quadrature_agrees_with_four_times_the_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """24 Gauss–Legendre nodes on the windowed integrand are as good as 96."""
    x = np.array([0, 1, 5, 50, 300, 1000, 10_000, 100_000, 2, 40], dtype=float)
    t = np.array([1e-3, 0.5, 10, 52, 78, 200, 1e4, 1e5, 1e3, 39.0])
    t_x = np.where(x > 0, t * np.array([0, 0.1, 0.9, 0.99, 0.5, 1.0, 0.3, 0.999, 0.01, 0.7]), 0)
    thetas = [
        [0.55, 10.58, 0.61, 11.67],
        [0.5143, 2.8845, 0.2856, 14.1087],
        [2.0, 5.0, 0.1, 1000.0],
        [0.05, 0.01, 3.0, 0.5],
    ]
    for theta in np.asarray(thetas):
        ll, _, grad = pareto._log_likelihood_parts(theta, x, t_x, t, True)
        monkeypatch.setattr(pareto, "_NODES", np.polynomial.legendre.leggauss(96)[0])
        monkeypatch.setattr(pareto, "_WEIGHTS", np.polynomial.legendre.leggauss(96)[1])
        ll_96, _, grad_96 = pareto._log_likelihood_parts(theta, x, t_x, t, True)
        monkeypatch.undo()
        np.testing.assert_allclose(ll, ll_96, rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(grad, grad_96, rtol=1e-9, atol=1e-11)


def test_distinct_bins_whole_numbers_and_hashes_the_rest() -> None:
    values = np.array([5.0, 3.0, 5.0, 100_000.0, 3.0])
    uniques, inverse = distinct(values)
    assert list(uniques) == [3.0, 5.0, 100_000.0]  # only the values present
    np.testing.assert_array_equal(uniques[inverse], values)
    fractional = np.array([0.5, 2.25, 0.5])
    uniques, inverse = distinct(fractional)
    np.testing.assert_array_equal(uniques[inverse], fractional)
    assert len(uniques) == 2
