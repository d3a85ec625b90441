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


@dataclass(frozen=True)
class Case:
    cls: type[BaseModel]
    data: Callable[[], Any]
    predict: Callable[[Any, Any], Any]  # (model, data) -> predictions
    low: float
    high: float


CASES = [
    Case(BetaGeoModel, cdnow, lambda m, d: m.probability_alive(d), 0.0, 1.0),
    Case(ModifiedBetaGeoModel, cdnow, lambda m, d: m.probability_alive(d), 0.0, 1.0),
    Case(ParetoNBDModel, cdnow, lambda m, d: m.probability_alive(d), 0.0, 1.0),
    Case(GammaGammaModel, cdnow, lambda m, d: m.expected_spend(d), 0.0, np.inf),
    Case(BetaGeoBetaBinomModel, donations, lambda m, d: m.probability_alive(d), 0.0, 1.0),
    Case(
        ShiftedBetaGeoModel, lambda: HIGH_END, lambda m, d: m.survival(np.arange(1, 13)), 0.0, 1.0
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
    with pytest.raises(NotFittedError, match="not fitted yet"):
        case.predict(case.cls(), case.data())
    with pytest.raises(NotFittedError):
        case.cls().to_dict()


def test_fit_returns_self_and_learns(case: Case, tmp_path: Path) -> None:
    model = case.cls()
    data = case.data()
    assert model.fit(data) is model
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
    assert loaded.params_ == model.params_
    assert loaded.log_likelihood_ == model.log_likelihood_
    np.testing.assert_array_equal(np.asarray(case.predict(loaded, data)), predictions)
