"""Potential value: the expected, discounted profit of a customer's future purchases.

A purchase model (BG/NBD, MBG/NBD or Pareto/NBD — chosen by a calibration/holdout
backtest unless configured) gives each customer's P(alive) and expected purchases; a
spend model (Gamma-Gamma, or the mean repeat spend) gives the expected spend per
purchase; :func:`cvm.models.clv.customer_lifetime_value` discounts the profit over the
configured horizon. A model that cannot be fitted is reported, not fatal: the
customers then get no potential value and the reason is kept with the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from cvm.config import ModelSettings
from cvm.errors import CVMError
from cvm.models import BaseModel
from cvm.models.clv import customer_lifetime_value
from cvm.models.repeat import RepeatPurchaseModel
from cvm.models.validation import Backtest, backtest, choose_model

__all__ = ["ModelFit", "PotentialValue", "potential_value", "purchase_model_classes"]

_BATCH = 200_000


def purchase_model_classes() -> dict[str, type[RepeatPurchaseModel]]:
    """Return the configurable purchase models by their setting name."""
    from cvm.models.bgnbd import BetaGeoModel
    from cvm.models.mbgnbd import ModifiedBetaGeoModel
    from cvm.models.pareto_nbd import ParetoNBDModel

    return {"bgnbd": BetaGeoModel, "mbgnbd": ModifiedBetaGeoModel, "pareto_nbd": ParetoNBDModel}


@dataclass
class ModelFit:
    """One model fitted for a run: its role, whether it was used, and why."""

    role: str
    name: str
    model: BaseModel | None
    chosen: bool
    backtest: Backtest | None = None
    reason: str | None = None
    error: str | None = None


@dataclass
class PotentialValue:
    """Per-customer predictions and the fits behind them."""

    predictions: pd.DataFrame
    fits: list[ModelFit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fit_purchase(
    summary: pd.DataFrame, split: pd.DataFrame | None, settings: ModelSettings
) -> tuple[RepeatPurchaseModel | None, list[ModelFit]]:
    classes = purchase_model_classes()
    fits: list[ModelFit] = []
    name: str = settings.purchase
    reason: str | None = None
    if name == "auto":
        if split is None or len(split) == 0:
            name, reason = "bgnbd", "bgnbd: default (too little history for a holdout backtest)"
        else:
            tested: list[tuple[str, Backtest]] = []
            for candidate, cls in classes.items():
                try:
                    fitted = cls(penalizer=settings.penalizer).fit(split)
                    result = replace(backtest(fitted, split), model=candidate)
                except CVMError as exc:
                    fits.append(
                        ModelFit("purchase-backtest", candidate, None, False, error=str(exc))
                    )
                    continue
                tested.append((candidate, result))
                fits.append(ModelFit("purchase-backtest", candidate, fitted, False, result))
            if not tested:
                name, reason = "bgnbd", "bgnbd: default (no candidate could be backtested)"
            else:
                best, reason = choose_model([r for _, r in tested])
                name = next(c for c, r in tested if r is best)
    try:
        model = classes[name](penalizer=settings.penalizer).fit(summary)
    except CVMError as exc:
        fits.append(ModelFit("purchase", name, None, False, error=str(exc)))
        return None, fits
    chosen_test = next((f.backtest for f in fits if f.name == name and f.backtest), None)
    fits.append(
        ModelFit("purchase", name, model, True, chosen_test, reason or f"{name}: configured")
    )
    return model, fits


def _spend_input(summary: pd.DataFrame) -> pd.DataFrame:
    """Repeat spend usable by a spend model: non-positive means count as no information."""
    monetary = summary["monetary_value"].to_numpy(dtype=np.float64)
    usable = (summary["frequency"].to_numpy() > 0) & (monetary > 0)
    return pd.DataFrame(
        {
            "frequency": np.where(usable, summary["frequency"], 0),
            "monetary_value": np.where(usable, monetary, 0.0),
        }
    )


def _fit_spend(
    spend_data: pd.DataFrame, settings: ModelSettings, notes: list[str]
) -> tuple[Any, list[ModelFit]]:
    repeaters = spend_data[spend_data["frequency"] > 0]
    mean = (
        float(np.average(repeaters["monetary_value"], weights=repeaters["frequency"]))
        if len(repeaters)
        else 0.0
    )
    if settings.spend == "gamma_gamma":
        from cvm.models.gamma_gamma import GammaGammaModel

        try:
            import warnings

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = GammaGammaModel(penalizer=settings.penalizer).fit(spend_data)
            notes.extend(str(w.message) for w in caught)
            return model, [ModelFit("spend", "gamma_gamma", model, True, reason="configured")]
        except CVMError as exc:
            notes.append(f"Gamma-Gamma could not be fitted ({exc}); used the mean repeat spend")
            return np.full(len(spend_data), mean), [
                ModelFit("spend", "gamma_gamma", None, False, error=str(exc)),
                ModelFit("spend", "mean", None, True, reason="fallback: Gamma-Gamma failed"),
            ]
    return np.full(len(spend_data), mean), [
        ModelFit("spend", "mean", None, True, reason="configured")
    ]


def potential_value(
    summary: pd.DataFrame,
    *,
    split: pd.DataFrame | None,
    settings: ModelSettings,
    units_per_year: float,
    margin: float,
) -> PotentialValue:
    """Fit the models and predict every customer's P(alive), purchases and CLV.

    Parameters
    ----------
    summary
        ``customer_id``, ``frequency``, ``recency``, ``t``, ``monetary_value`` at ``as_of``.
    split
        A calibration/holdout split for choosing the purchase model (or ``None``).
    settings
        The ``[models]`` settings.
    units_per_year
        Time units of ``recency``/``t`` in a year.
    margin
        Share of spend that is profit.

    Returns
    -------
    PotentialValue
        ``predictions`` with ``customer_id``, ``p_alive``, ``expected_purchases_90d``,
        ``expected_spend`` and ``potential_value`` (NaN when no purchase model could be
        fitted), the fits and notes.
    """
    notes: list[str] = []
    purchase, fits = _fit_purchase(summary, split, settings)
    spend_data = _spend_input(summary)
    spend, spend_fits = _fit_spend(spend_data, settings, notes)
    fits += spend_fits
    n = len(summary)
    out = {
        k: np.full(n, np.nan)
        for k in ("p_alive", "expected_purchases_90d", "expected_spend", "potential_value")
    }
    days_per_unit = 365.2425 / units_per_year
    for start in range(0, n, _BATCH):
        rows = slice(start, min(n, start + _BATCH))
        part = summary.iloc[rows]
        spend_part = (
            spend.expected_spend(spend_data.iloc[rows])
            if hasattr(spend, "expected_spend")
            else spend[rows]
        )
        out["expected_spend"][rows] = spend_part
        if purchase is None:
            continue
        out["p_alive"][rows] = purchase.probability_alive(part)
        out["expected_purchases_90d"][rows] = purchase.expected_purchases(
            part, 90.0 / days_per_unit
        )
        out["potential_value"][rows] = customer_lifetime_value(
            purchase,
            part,
            horizon=settings.horizon_years * units_per_year,
            discount_rate=settings.discount_rate,
            units_per_year=units_per_year,
            spend=spend_part,
            margin=margin,
        )
    if purchase is None:
        notes.append("no purchase model could be fitted: potential value is missing")
    predictions = pd.DataFrame({"customer_id": summary["customer_id"].to_numpy(), **out})
    return PotentialValue(predictions=predictions, fits=fits, notes=notes)
