"""The estimator contract (STYLE.md), checked for every model in one place.

In the manner of scikit-learn's ``parametrize_with_checks``: ``__init__`` stores
settings only; ``fit`` returns ``self`` and sets the ``_`` attributes; predicting before
fitting raises ``NotFittedError``; predictions have the right shape and range; a JSON
save/load round trip reproduces the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.conftest import shared

from cvm.errors import NotFittedError
from cvm.models import (
    BaseModel,
    BetaGeoBetaBinomModel,
    BetaGeoModel,
    GammaGammaModel,
    ModifiedBetaGeoModel,
    ParetoNBDModel,
    ShiftedBetaGeoModel,
    load_model,
)


def cdnow() -> pd.DataFrame:
    return pd.read_parquet(shared("cdnow_sample_summary.parquet"))


def donations() -> pd.DataFrame:
    frame = pd.read_parquet(shared("donations_bgbb_summary.parquet"))
    return frame.rename(columns={"periods": "n_periods"})


HIGH_END = np.array([1000, 869, 743, 653, 593, 551, 517, 491])  # Fader & Hardie 2007


Calls = Callable[[Any, Any], dict[str, Callable[[], Any]]]


@dataclass(frozen=True)
class Case:
    cls: type[BaseModel]
    data: Callable[[], Any]
    predict: Callable[[Any, Any], Any]  # (model, data) -> the predictions range-checked
    low: float
    high: float
    calls: Calls  # every public prediction method, as zero-argument calls


def repeat_calls(model: Any, data: Any) -> dict[str, Callable[[], Any]]:
    return {
        "probability_alive": lambda: model.probability_alive(data),
        "expected_purchases": lambda: model.expected_purchases(data, 39),
        "expected_purchases_new": lambda: model.expected_purchases_new([1.0, 39.0]),
    }


def bgbb_calls(model: Any, data: Any) -> dict[str, Callable[[], Any]]:
    return {
        "probability_alive": lambda: model.probability_alive(data),
        "expected_purchases": lambda: model.expected_purchases(data, 5),
        "expected_purchases_new": lambda: model.expected_purchases_new(8),
        "probability_of_purchases": lambda: model.probability_of_purchases(6, [0, 1, 2]),
    }


def spend_calls(model: Any, data: Any) -> dict[str, Callable[[], Any]]:
    return {
        "expected_spend": lambda: model.expected_spend(data),
        "expected_spend_new": lambda: model.expected_spend_new(),
    }


def sbg_calls(model: Any, data: Any) -> dict[str, Callable[[], Any]]:
    t = np.arange(1, 20)
    return {
        "survival": lambda: model.survival(t),
        "retention_rate": lambda: model.retention_rate(t),
        "churn_probability": lambda: model.churn_probability(t),
        "expected_lifetime": lambda: model.expected_lifetime(),
        "dert": lambda: model.discounted_expected_residual_transactions(0.1, [0, 5]),
    }


def alive(model: Any, data: Any) -> Any:
    return model.probability_alive(data)


CASES = [
    Case(BetaGeoModel, cdnow, alive, 0.0, 1.0, repeat_calls),
    Case(ModifiedBetaGeoModel, cdnow, alive, 0.0, 1.0, repeat_calls),
    Case(ParetoNBDModel, cdnow, alive, 0.0, 1.0, repeat_calls),
    Case(GammaGammaModel, cdnow, lambda m, d: m.expected_spend(d), 0.0, np.inf, spend_calls),
    Case(BetaGeoBetaBinomModel, donations, alive, 0.0, 1.0, bgbb_calls),
    Case(
        ShiftedBetaGeoModel,
        lambda: HIGH_END,
        lambda m, d: m.survival(np.arange(1, 13)),
        0.0,
        1.0,
        sbg_calls,
    ),
]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.cls.__name__)
def case(request: pytest.FixtureRequest) -> Case:
    result: Case = request.param
    return result


def test_init_stores_settings_only(case: Case) -> None:
    model = case.cls(penalizer=0.0, n_starts=2, seed=3)
    assert model.get_params()["n_starts"] == 2 and model.get_params()["seed"] == 3
    assert not model.is_fitted
    assert not [name for name in vars(model) if name.endswith("_")]
    assert repr(model).endswith("(unfitted)")


def test_unfitted_model_refuses_to_predict(case: Case) -> None:
    calls = case.calls(case.cls(), case.data())
    assert calls
    for call in calls.values():
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call()
    with pytest.raises(NotFittedError):
        case.cls().to_dict()


def test_fit_returns_self_and_learns(case: Case, tmp_path: Path) -> None:
    model = case.cls()
    data = case.data()
    assert model.fit(data) is model
    assert repr(model).startswith(f"{case.cls.__name__}(") and "unfitted" not in repr(model)
    assert list(model.params_) == list(case.cls.param_names)
    assert all(v > 0 and np.isfinite(v) for v in model.params_.values())
    assert np.isfinite(model.log_likelihood_) and model.log_likelihood_ < 0
    assert model.n_customers_ > 0 and 0 < model.n_rows_ <= model.n_customers_
    assert np.isfinite(model.aic_) and np.isfinite(model.bic_)
    assert set(model.summary()) == set(case.cls.param_names)
    predictions = np.asarray(case.predict(model, data))
    assert predictions.ndim == 1 and len(predictions) > 0
    assert np.all(np.isfinite(predictions))
    assert np.all((predictions >= case.low) & (predictions <= case.high))
    path = tmp_path / "model.json"
    model.save(path)
    loaded = load_model(path)
    assert type(loaded) is case.cls
    assert loaded.to_dict() == model.to_dict()  # settings, parameters, fit, covariance …
    assert loaded.get_params() == model.get_params()
    assert loaded.summary() == model.summary()
    fitted_calls, loaded_calls = case.calls(model, data), case.calls(loaded, data)
    for name, call in fitted_calls.items():
        np.testing.assert_array_equal(np.asarray(loaded_calls[name]()), np.asarray(call()))
