"""Calibration/holdout validation of purchase models, and choosing one.

The input is a calibration/holdout split as produced by
:func:`cvm.features.calibration_holdout`: per customer the calibration summary
(``frequency``, ``recency``, ``t``) and what happened next (``frequency_holdout`` over
``duration_holdout`` time units). The checks follow Fader, Hardie & Lee (2005),
section 4: conditional expectations against holdout purchases, overall and by
calibration frequency; plus customer-level errors and how well P(alive) ranks the
customers who buy again (the area under the ROC curve).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import rankdata

from cvm.models.base import Array

__all__ = [
    "Backtest",
    "PurchaseModel",
    "auc",
    "backtest",
    "by_calibration_frequency",
    "choose_model",
    "frequency_recency_matrix",
    "tracking",
]


class PurchaseModel(Protocol):
    """A fitted repeat-purchase model (BG/NBD, MBG/NBD, Pareto/NBD, …)."""

    log_likelihood_: float

    @property
    def aic_(self) -> float:
        """Akaike information criterion."""

    @property
    def bic_(self) -> float:
        """Bayesian information criterion."""

    def expected_purchases(self, data: Any, t: float | npt.ArrayLike) -> Array:
        """Return expected purchases in the next ``t`` time units."""

    def probability_alive(self, data: Any) -> Array:
        """Return P(alive) per customer."""


@dataclass(frozen=True)
class Backtest:
    """How one fitted model did on the holdout period.

    ``auc`` measures how well P(alive) ranks the customers who buy again in the holdout;
    ``auc_expected`` does the same for the expected holdout purchases. For the BG/NBD,
    P(alive) is 1 for every customer without a repeat purchase (the model lets a
    customer drop out only after a purchase), so its ``auc`` is poor on cohorts where
    most customers never came back; the MBG/NBD and Pareto/NBD do not share this.
    """

    model: str
    log_likelihood: float
    aic: float
    bic: float
    customers: int
    actual: float
    predicted: float
    mae: float
    rmse: float
    auc: float
    auc_expected: float

    @property
    def total_error(self) -> float:
        """Relative error of the total holdout purchases predicted."""
        return (self.predicted - self.actual) / self.actual if self.actual else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """Return plain data."""
        return asdict(self) | {"total_error": self.total_error}


def auc(score: npt.ArrayLike, positive: npt.ArrayLike) -> float:
    """Return the area under the ROC curve of ``score`` for boolean ``positive``.

    Ties in the score count one half (the Mann-Whitney statistic).
    """
    is_positive = np.asarray(positive, dtype=bool)
    n_pos = int(is_positive.sum())
    n_neg = len(is_positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64))
    return float((ranks[is_positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _holdout_length(split: Any) -> float:
    lengths = np.unique(np.asarray(split["duration_holdout"], dtype=np.float64))
    if len(lengths) != 1:
        raise ValueError("every customer must share one holdout length")
    return float(lengths[0])


def backtest(model: PurchaseModel, split: Any) -> Backtest:
    """Score a fitted model on a calibration/holdout split.

    Parameters
    ----------
    model
        A purchase model fitted on the split's calibration columns.
    split
        Output of :func:`cvm.features.calibration_holdout` (a DataFrame).

    Returns
    -------
    Backtest
        Holdout purchases actual vs predicted (total, MAE, RMSE) and the AUC of
        P(alive) for "bought again in the holdout".
    """
    horizon = _holdout_length(split)
    actual = np.asarray(split["frequency_holdout"], dtype=np.float64)
    predicted = model.expected_purchases(split, horizon)
    alive = model.probability_alive(split)
    error = predicted - actual
    return Backtest(
        model=type(model).__name__,
        log_likelihood=model.log_likelihood_,
        aic=model.aic_,
        bic=model.bic_,
        customers=len(actual),
        actual=float(actual.sum()),
        predicted=float(predicted.sum()),
        mae=float(np.mean(np.abs(error))),
        rmse=float(np.sqrt(np.mean(error**2))),
        auc=auc(alive, actual > 0),
        auc_expected=auc(predicted, actual > 0),
    )


def by_calibration_frequency(model: PurchaseModel, split: Any, *, cap: int = 7) -> pd.DataFrame:
    """Mean holdout purchases, actual and expected, by calibration frequency (FHL Fig. 4).

    Frequencies at or above ``cap`` are pooled into one row labelled ``cap``.
    """
    horizon = _holdout_length(split)
    frame = pd.DataFrame(
        {
            "frequency": np.minimum(np.asarray(split["frequency"], dtype=np.int64), cap),
            "actual": np.asarray(split["frequency_holdout"], dtype=np.float64),
            "expected": model.expected_purchases(split, horizon),
        }
    )
    grouped = frame.groupby("frequency").agg(
        customers=("actual", "size"), actual=("actual", "mean"), expected=("expected", "mean")
    )
    return grouped.reset_index()


def frequency_recency_matrix(
    model: PurchaseModel,
    *,
    age: float,
    max_frequency: int,
    recency_steps: int = 20,
    horizon: float | None = None,
) -> pd.DataFrame:
    """P(alive), or expected purchases over ``horizon``, on a frequency × recency grid.

    Rows are frequencies 0…max_frequency, columns recencies from 0 to ``age``; the
    customers all have the same ``age`` (T). Cells with x = 0 and recency > 0 are
    impossible and left empty (NaN).
    """
    recencies = np.linspace(0.0, age, recency_steps + 1)
    x, t_x = np.meshgrid(np.arange(max_frequency + 1), recencies, indexing="ij")
    possible = ~((x == 0) & (t_x > 0))
    data = {
        "frequency": x[possible].astype(np.float64),
        "recency": t_x[possible],
        "t": np.full(int(possible.sum()), age),
    }
    if horizon is None:
        values = model.probability_alive(data)
    else:
        values = model.expected_purchases(data, horizon)
    grid = np.full(x.shape, np.nan)
    grid[possible] = values
    return pd.DataFrame(
        grid,
        index=pd.Index(np.arange(max_frequency + 1), name="frequency"),
        columns=pd.Index(np.round(recencies, 6), name="recency"),
    )


def tracking(
    model: Any,
    births: npt.ArrayLike,
    *,
    periods: int,
    actual: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """Return the expected repeat purchases of a cohort per period (incremental, cumulative).

    The aggregate tracking of Fader, Hardie & Lee (2005), Fig. 2–3: a customer whose
    first purchase is at time b (in model time units since the start of period 0) is
    expected to have made E[X(τ − b)] repeat purchases by time τ, E[X(t)] being the
    model's ``expected_purchases_new``; the cohort's expectation is the sum.

    Parameters
    ----------
    model
        A fitted purchase model with ``expected_purchases_new``.
    births
        Each customer's first purchase time, in model time units since the start.
    periods
        Number of unit-length periods to track.
    actual
        Optional observed repeat purchases per period (same length), e.g. from
        :func:`cvm.features.repeat_purchases_by_period`.

    Returns
    -------
    pandas.DataFrame
        ``period``, ``expected``, ``expected_cumulative`` (and ``actual``,
        ``actual_cumulative`` when given).
    """
    unique, counts = np.unique(np.asarray(births, dtype=np.float64), return_counts=True)
    ends = np.arange(1, periods + 1, dtype=np.float64)
    elapsed = np.maximum(ends[:, None] - unique[None, :], 0.0)
    per_birth = np.asarray(model.expected_purchases_new(elapsed.ravel()), dtype=np.float64)
    cumulative = per_birth.reshape(elapsed.shape) @ counts
    frame = pd.DataFrame(
        {
            "period": np.arange(periods),
            "expected": np.diff(cumulative, prepend=0.0),
            "expected_cumulative": cumulative,
        }
    )
    if actual is not None:
        observed = np.asarray(actual, dtype=np.float64)
        if len(observed) != periods:
            raise ValueError(f"actual has {len(observed)} periods, expected {periods}")
        frame["actual"] = observed
        frame["actual_cumulative"] = np.cumsum(observed)
    return frame


def choose_model(results: list[Backtest]) -> tuple[Backtest, str]:
    """Pick the model with the lowest holdout MAE; say why in words.

    Ties within 0.5 % of the best MAE are broken by the lower BIC (the simpler fit).
    """
    if not results:
        raise ValueError("no backtest results to choose from")
    measured = [r for r in results if np.isfinite(r.mae)]
    if not measured:  # e.g. no customer in the holdout: fall back on the fit
        chosen = min(results, key=lambda r: (not np.isfinite(r.bic), r.bic))
        return chosen, (
            f"{chosen.model}: lowest BIC ({chosen.bic:.1f}); the holdout gave no measurable "
            "error (too little data after the calibration period)"
        )
    best_mae = min(r.mae for r in measured)
    close = [r for r in measured if r.mae <= best_mae * 1.005]
    chosen = min(close, key=lambda r: r.bic)
    others = ", ".join(
        f"{r.model} {r.mae:.4f}" for r in sorted(results, key=lambda r: r.mae) if r is not chosen
    )
    reason = (
        f"{chosen.model}: lowest holdout mean absolute error per customer ({chosen.mae:.4f}"
        + (f"; others: {others}" if others else "")
        + ")"
    )
    if len(close) > 1:
        reason += f"; within 0.5 % of the best, so the lowest BIC ({chosen.bic:.1f}) decided"
    reason += (
        f"; holdout purchases predicted {chosen.predicted:,.0f} vs actual {chosen.actual:,.0f}"
        f", AUC of P(alive) {chosen.auc:.3f} and of expected purchases {chosen.auc_expected:.3f}"
    )
    return chosen, reason
