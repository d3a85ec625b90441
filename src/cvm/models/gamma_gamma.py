"""Gamma-Gamma: the model of the average spend per transaction.

Colombo, R. & Jiang, W. (1999), "A stochastic RFM model", *Journal of Interactive
Marketing* 13(3), 2–12; Fader, P. S. & Hardie, B. G. S. (2013), "The Gamma-Gamma Model
of Monetary Value", http://www.brucehardie.com/notes/025/.

Assumptions: the value of each of a customer's transactions is Gamma(p, ν) (shape p,
rate ν), independently of the others; ν varies across customers as Gamma(q, γ) (shape
q, rate γ); and spend is independent of how often the customer buys. The customer's
mean spend per transaction is then p/ν, whose population mean is pγ/(q − 1) when q > 1.
The mean m̄ of x transactions is Gamma(px, νx), and integrating ν out gives the
likelihood of a customer's (x, m̄) (Fader & Hardie 2013)

    L = Γ(px+q) / (Γ(px) Γ(q)) · γ^q m̄^{px−1} x^{px} / (γ + m̄x)^{px+q},

evaluated here as ``gammaln`` terms and log(1 + ratio) terms (stable for any x, m̄) with
its analytic gradient. The posterior mean of p/ν is a weighted average of the
population mean and the customer's own mean, the weight on m̄ growing with x:

    E[M | x, m̄] = p(γ + x m̄) / (px + q − 1)
                 = w · pγ/(q − 1) + (1 − w) · m̄,   w = (q − 1) / (px + q − 1).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import digamma, gammaln

from cvm.errors import DataError, ModelError
from cvm.models.base import Array, BaseModel, Objective, as_array, compress, distinct
from cvm.models.data import column

__all__ = ["GammaGammaModel", "SpendFrequencyCorrelationWarning"]


class SpendFrequencyCorrelationWarning(UserWarning):
    """Spend per transaction and purchase frequency are correlated in the fitted data.

    The Gamma-Gamma model assumes they are independent; when they are not, its expected
    spend (and any customer lifetime value built on it) is biased.
    """


def _spend_data(data: Any) -> tuple[Array, Array]:
    """Read and check ``frequency`` and ``monetary_value`` from a frame or mapping.

    Raises
    ------
    SchemaError
        If a column is missing.
    DataError
        If a value is impossible: non-finite, a negative or fractional frequency, a
        negative monetary value, or a monetary value of zero for a customer with repeat
        purchases. The message names the column and the first bad row.
    """
    x = as_array("frequency", column(data, "frequency", "x"))
    m = as_array("monetary_value", column(data, "monetary_value"))
    if len(x) != len(m):
        raise DataError(
            f"frequency and monetary_value must have the same length ({len(x)} ≠ {len(m)})"
        )

    def fail(mask: npt.NDArray[np.bool_], column: str, values: Array, what: str) -> None:
        if np.any(mask):
            row = int(np.flatnonzero(mask)[0])
            raise DataError(f"{what} (row {row})", column=column, value=float(values[row]))

    fail((x < 0) | (x != np.round(x)), "frequency", x, "must be a whole number ≥ 0")
    fail(m < 0, "monetary_value", m, "must be ≥ 0 (mean spend of the repeat purchases)")
    fail(
        (x > 0) & (m == 0),
        "monetary_value",
        m,
        "must be > 0 for a customer with repeat purchases (frequency > 0); drop "
        "zero-value transactions or customers before fitting the Gamma-Gamma model",
    )
    return x, m


def _pearson(x: Array, m: Array) -> float:
    """Pearson correlation of x and m; NaN when either is constant or n < 2."""
    if len(x) < 2:
        return math.nan
    dx, dm = x - x.mean(), m - m.mean()
    sx, sm = float(np.sqrt(dx @ dx)), float(np.sqrt(dm @ dm))
    if sx == 0.0 or sm == 0.0:
        return math.nan
    return float(np.clip((dx / sx) @ (dm / sm), -1.0, 1.0))


class GammaGammaModel(BaseModel):
    """The Gamma-Gamma model of spend per transaction (Fader & Hardie 2013).

    Spend per transaction ~ Gamma(p, ν) for each customer; ν ~ Gamma(q, γ) across
    customers (Colombo & Jiang 1999); spend is assumed independent of purchase
    frequency. Fitted on customers with repeat purchases only (frequency > 0), from
    their number of repeat purchases and the mean value of those purchases.

    Parameters
    ----------
    correlation_threshold
        ``fit`` warns (:class:`SpendFrequencyCorrelationWarning`) when the absolute
        Pearson correlation between frequency and monetary value among the fitted
        customers exceeds this, as the model assumes the two are independent.
    penalizer, n_starts, max_iter, seed
        See :class:`~cvm.models.base.BaseModel`. Monetary values are divided by their
        mean before fitting, so the penalty on log γ is scale-free.

    Attributes
    ----------
    params_ : dict
        ``p`` (shape of the spend per transaction), ``q`` and ``v`` (= γ; shape and
        rate of the customers' ν; ``v`` is in the currency's units).
    log_likelihood_ : float
        Maximised log-likelihood (of the monetary values, in the currency given).
    n_customers_ : int
        Customers fitted on (those with frequency > 0).
    frequency_spend_correlation_ : float
        Pearson correlation of frequency and monetary value among the fitted customers
        (NaN if either is constant).

    Examples
    --------
    >>> model = GammaGammaModel().fit(summary)        # doctest: +SKIP
    >>> model.expected_spend(summary)                 # doctest: +SKIP
    """

    param_names = ("p", "q", "v")

    frequency_spend_correlation_: float

    def __init__(
        self,
        *,
        correlation_threshold: float = 0.3,
        penalizer: float = 0.0,
        n_starts: int = 3,
        max_iter: int = 2000,
        seed: int = 0,
    ) -> None:
        super().__init__(penalizer=penalizer, n_starts=n_starts, max_iter=max_iter, seed=seed)
        self.correlation_threshold = correlation_threshold

    def get_params(self) -> dict[str, Any]:
        """Return the settings given to ``__init__``."""
        return {"correlation_threshold": self.correlation_threshold, **super().get_params()}

    def _start(self) -> Array:
        # Moments of the scaled spend (mean 1): p = 1, q = 3, γ = (q − 1)/p · mean.
        return np.array([1.0, 3.0, 2.0])

    def fit(self, data: Any) -> GammaGammaModel:
        """Fit by maximum likelihood on the customers with frequency > 0.

        Parameters
        ----------
        data
            A DataFrame or mapping with ``frequency`` (repeat purchases) and
            ``monetary_value`` (mean value of those repeat purchases) per customer, e.g.
            :func:`cvm.features.btyd_summary`'s output. Customers with frequency 0 are
            ignored.

        Returns
        -------
        GammaGammaModel
            ``self``, fitted.

        Raises
        ------
        DataError
            If a value is impossible (see the message for column and row) or no
            customer has a repeat purchase.

        Warns
        -----
        SpendFrequencyCorrelationWarning
            If |corr(frequency, monetary_value)| among the fitted customers exceeds
            ``correlation_threshold``.
        """
        x_all, m_all = _spend_data(data)
        repeat = x_all > 0
        if not np.any(repeat):
            raise DataError(
                f"no customer with frequency > 0 among {len(x_all)}: the Gamma-Gamma model "
                "learns from the spend of repeat purchases, and there are none",
                column="frequency",
            )
        x_fit, m_fit = x_all[repeat], m_all[repeat]
        self.frequency_spend_correlation_ = _pearson(x_fit, m_fit)
        message = self._dependence_message(len(x_fit))
        if message:
            warnings.warn(message, SpendFrequencyCorrelationWarning, stacklevel=2)

        # Fit in units of the mean spend: γ scales with the currency, p and q do not.
        scale = float(m_fit.mean())
        (x, m), weights = compress(x_fit, m_fit / scale)
        n = int(weights.sum())
        self._fit_rows(self._objective, x, m, weights)
        self.params_["v"] *= scale
        self.log_likelihood_ -= n * math.log(scale)
        return self

    @staticmethod
    def _objective(x: Array, m: Array, weights: Array) -> Objective:
        """Build the negative log-likelihood of (x, m̄) rows over log-parameters.

        The log-gamma terms depend on x alone, which takes few distinct values: they
        are evaluated once per distinct x. Per row one logarithm remains: with
        v = x m̄ / γ, log(1 + v) and 1/(1 + v) give both log(γ + x m̄) terms and the
        gradient (log(1 + γ/(x m̄)) = log(1 + v) − log v).
        """
        log_m = np.log(m)
        xm = x * m
        log_xm = np.log(xm)
        constant = -float(weights @ log_m)  # the Jacobian term −Σ log m̄
        unique_x, index = distinct(x)
        w_unique = np.bincount(index, weights=weights)
        wx = weights * x
        total = float(weights.sum())
        total_x = float(wx.sum())
        wx_log_xm = float(wx @ log_xm)

        def objective(log_theta: Array) -> tuple[float, Array]:
            p, q, g = np.exp(log_theta)
            pu = p * unique_x
            psi = digamma(pu + q)
            ll_x = float(w_unique @ (gammaln(pu + q) - gammaln(pu))) - total * float(gammaln(q))
            one_v = 1.0 + xm / g
            log1p_xm_g = np.log(one_v)  # log(1 + x m̄/γ)
            share_g = 1.0 / one_v  # γ/(γ + x m̄)
            w_l2 = float(weights @ log1p_xm_g)
            # Σ wx log(1 + γ/(x m̄)) = Σ wx log(1 + x m̄/γ) + log γ Σ wx − Σ wx log(x m̄)
            wx_l1 = float(wx @ log1p_xm_g) + math.log(g) * total_x - wx_log_xm
            ll = ll_x - p * wx_l1 - q * w_l2
            d_log_p = p * float(w_unique @ (unique_x * (psi - digamma(pu)))) - p * wx_l1
            d_log_q = q * (float(w_unique @ psi) - total * float(digamma(q))) - q * w_l2
            # γ · (q/γ − (px+q)/(γ+xm̄)) = q · xm̄/(γ+xm̄) − px · γ/(γ+xm̄)
            d_log_g = q * (total - float(weights @ share_g)) - p * float(wx @ share_g)
            return -ll - constant, -np.array([d_log_p, d_log_q, d_log_g])

        return objective

    def _dependence_message(self, n: int) -> str:
        corr = self.frequency_spend_correlation_
        if not (math.isfinite(corr) and abs(corr) > self.correlation_threshold):
            return ""
        return (
            f"frequency and monetary_value are correlated among the {n} customers with "
            f"repeat purchases (Pearson r = {corr:.2f}, |r| > {self.correlation_threshold}). "
            "The Gamma-Gamma model assumes spend per transaction is independent of purchase "
            "frequency, so its expected spend (and any lifetime value built on it) may be "
            "biased. Check the relationship (e.g. by segment or channel), fit separate models "
            "to more homogeneous groups, or use the customers' observed mean spend instead."
        )

    # -- persistence -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return the fitted model as plain data (JSON-ready)."""
        data = super().to_dict()
        data["frequency_spend_correlation"] = getattr(
            self, "frequency_spend_correlation_", math.nan
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GammaGammaModel:
        """Rebuild a fitted model from :meth:`to_dict` output."""
        model = super().from_dict(data)
        model.frequency_spend_correlation_ = float(
            data.get("frequency_spend_correlation", math.nan)
        )
        return model

    # -- predictions -------------------------------------------------------------------
    def _population_mean(self) -> float:
        p, q, v = self._theta()
        if q <= 1.0:
            raise ModelError(
                f"the fitted q = {q:.4g} is ≤ 1: the spread of spend across customers is so "
                "heavy-tailed that the population mean spend per transaction is infinite, "
                "and expected spend is undefined. Check monetary_value for outliers (e.g. "
                "refunds, bulk or test orders), fit on more customers, or try penalizer=0.01"
            )
        return float(p * v / (q - 1.0))

    def expected_spend(self, data: Any) -> Array:
        """Return the expected spend per transaction of each customer, E[M | x, m̄].

        Fader & Hardie (2013): p(γ + x m̄)/(px + q − 1), a weighted average of
        the population mean pγ/(q − 1) and the customer's observed mean m̄. Customers
        with frequency 0 get the population mean (their monetary_value is ignored).

        Parameters
        ----------
        data
            A DataFrame or mapping with ``frequency`` and ``monetary_value``.

        Returns
        -------
        numpy.ndarray
            One expected spend per customer, in the currency of ``monetary_value``.

        Raises
        ------
        ModelError
            If the fitted q ≤ 1 (the population mean spend is infinite).
        """
        self._check_fitted()
        x, m = _spend_data(data)
        population = self._population_mean()
        p, q, _ = self._theta()
        weight = (q - 1.0) / (p * x + q - 1.0)
        result: Array = weight * population + (1.0 - weight) * m
        return result

    def expected_spend_new(self) -> float:
        """Return the expected spend per transaction of a new customer, pγ/(q − 1).

        Raises
        ------
        ModelError
            If the fitted q ≤ 1 (the population mean spend is infinite).
        """
        self._check_fitted()
        return self._population_mean()
