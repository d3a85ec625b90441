"""BG/NBD: the beta-geometric / negative binomial distribution model.

Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005), "'Counting Your Customers' the
Easy Way: An Alternative to the Pareto/NBD Model", *Marketing Science* 24(2), 275–284.

Assumptions: while active, a customer buys as a Poisson process with rate λ; λ varies
across customers as Gamma(r, α); after each purchase the customer becomes inactive
with probability p, and p varies across customers as Beta(a, b). The likelihood of a
customer's (x, t_x, T) — repeat purchases, time of the last one, age — is (FHL eq. 6)

    L = B(a, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^{r+x})
        + 1{x>0} B(a+1, b+x−1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^{r+x}),

evaluated here in log space (``logaddexp``) with its analytic gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, digamma, gammaln, hyp2f1

from cvm.models.base import Array
from cvm.models.repeat import RepeatPurchaseModel

__all__ = ["BetaGeoModel"]


class BetaGeoModel(RepeatPurchaseModel):
    """The BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005).

    Parameters
    ----------
    penalizer, n_starts, max_iter, seed
        See :class:`~cvm.models.base.BaseModel`.

    Attributes
    ----------
    params_ : dict
        ``r``, ``alpha`` (purchase rate ~ Gamma(r, alpha)) and ``a``, ``b`` (dropout
        probability ~ Beta(a, b)).
    log_likelihood_ : float
        Maximised log-likelihood.
    n_customers_ : int
        Customers fitted on.

    Examples
    --------
    >>> model = BetaGeoModel().fit(summary)            # doctest: +SKIP
    >>> model.expected_purchases(summary, t=39)        # doctest: +SKIP
    """

    param_names = ("r", "alpha", "a", "b")

    def _start(self) -> Array:
        return np.array([0.5, self._scale, 1.0, 2.0])

    def fit(self, data: Any) -> BetaGeoModel:
        """Fit by maximum likelihood.

        Parameters
        ----------
        data
            A DataFrame or mapping with ``frequency``, ``recency`` and ``t`` (or ``T``)
            per customer, e.g. :func:`cvm.features.btyd_summary`'s output.

        Returns
        -------
        BetaGeoModel
            ``self``, fitted.
        """
        x, t_x, t, weights = self._prepare(data)
        has_repeat = x > 0
        # Every gamma/beta/digamma term depends on x alone, which takes few distinct
        # values: evaluate those once per distinct x and gather; per row only the logs
        # of α + T and α + t_x remain.
        ux, ix = np.unique(x, return_inverse=True)
        u_repeat = ux > 0

        def objective(log_theta: Array) -> tuple[float, Array]:
            r, alpha, a, b = np.exp(log_theta)
            c = r + x
            bm1 = np.maximum(b + ux - 1, 1e-300)
            ab, abx = digamma(a + b), digamma(a + b + ux)
            lbeta_ab = betaln(a, b)
            base_u = gammaln(r + ux) - gammaln(r) + r * np.log(alpha)
            beta2_u = betaln(a, b + ux) - lbeta_ab
            beta3_u = np.where(u_repeat, betaln(a + 1, bm1) - lbeta_ab, -np.inf)
            log_at, log_atx = np.log(alpha + t), np.log(alpha + t_x)
            a2 = beta2_u[ix] - c * log_at
            a3 = np.where(has_repeat, beta3_u[ix] - c * log_atx, -np.inf)
            mix = np.logaddexp(a2, a3)
            ll = base_u[ix] + mix
            w3 = np.exp(a3 - mix)
            w2 = 1.0 - w3
            d_r = (digamma(r + ux) - digamma(r))[ix] + np.log(alpha) - w2 * log_at - w3 * log_atx
            d_alpha = r / alpha - c * (w2 / (alpha + t) + w3 / (alpha + t_x))
            da2_u = ab - abx
            da3 = digamma(a + 1) - digamma(a)
            db2_u = digamma(b + ux) - digamma(b) + ab - abx
            db3_u = np.where(u_repeat, digamma(bm1) - digamma(b) + ab - abx, 0.0)
            d_a = w2 * da2_u[ix] + w3 * (da3 + da2_u[ix])
            d_b = w2 * db2_u[ix] + w3 * db3_u[ix]
            grads = np.array([d_r * r, d_alpha * alpha, d_a * a, d_b * b])
            return -float(weights @ ll), -(grads @ weights)

        self._optimize(objective, n_customers=int(weights.sum()), n_rows=len(weights))
        return self

    # -- predictions -------------------------------------------------------------------
    def _log_alive_odds(self, x: Array, t_x: Array, t: Array) -> Array:
        """Log of (1/P(alive) − 1) = log(a/(b+x−1)) + (r+x) log((α+T)/(α+t_x)), x > 0."""
        r, alpha, a, b = self._theta()
        with np.errstate(divide="ignore", invalid="ignore"):
            odds = (
                np.log(a)
                - np.log(np.maximum(b + x - 1, 1e-300))
                + (r + x) * (np.log(alpha + t) - np.log(alpha + t_x))
            )
        return np.where(x > 0, odds, -np.inf)

    def probability_alive(self, data: Any) -> Array:
        """P(alive | x, t_x, T) for each customer (FHL 2005, eq. 11)."""
        rfm = self._rfm(data)
        log_odds = self._log_alive_odds(rfm.frequency, rfm.recency, rfm.age)
        result: Array = np.exp(-np.logaddexp(0.0, log_odds))
        return result

    def expected_purchases(self, data: Any, t: float | npt.ArrayLike) -> Array:
        """Return the expected repeat purchases in the next ``t`` time units, per customer.

        FHL 2005 eq. 10, with the Gaussian hypergeometric term rewritten by Euler's
        transformation, (1−z)^{r+x} ₂F₁(r+x, b+x; a+b+x−1; z) =
        (1−z)^{a−1} ₂F₁(a+b−1−r, a−1; a+b+x−1; z), z = t/(α+T+t), whose series
        converges fast for any frequency (no overflow for heavy buyers).
        """
        rfm = self._rfm(data)
        r, alpha, a, b = self._theta()
        horizon = np.asarray(t, dtype=np.float64)
        x, t_cal = rfm.frequency, rfm.age
        z = horizon / (alpha + t_cal + horizon)
        a = a if abs(a - 1.0) > 1e-8 else 1.0 + 1e-8
        term = (1 - z) ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
        expected = (a + b + x - 1) / (a - 1) * (1 - term)
        result: Array = expected * self.probability_alive(data)
        return result

    def expected_purchases_new(self, t: float | npt.ArrayLike) -> Array:
        """E[X(t)] for a customer just acquired (FHL 2005, eq. 9)."""
        self._check_fitted()
        r, alpha, a, b = self._theta()
        horizon = np.asarray(t, dtype=np.float64)
        z = horizon / (alpha + horizon)
        a = a if abs(a - 1.0) > 1e-8 else 1.0 + 1e-8
        term = (1 - z) ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1, a + b - 1, z)
        result: Array = np.asarray((a + b - 1) / (a - 1) * (1 - term), dtype=np.float64)
        return result

    def probability_of_purchases(self, t: float, n: int | npt.ArrayLike) -> Array:
        """P(X(t) = n) for a customer just acquired (FHL 2005, eq. 8)."""
        self._check_fitted()
        r, alpha, a, b = self._theta()
        counts = np.atleast_1d(np.asarray(n, dtype=np.int64))
        if np.any(counts < 0):
            raise ValueError("n must be non-negative")
        q = t / (alpha + t)
        log_nb = (
            gammaln(r + counts)
            - gammaln(r)
            - gammaln(counts + 1)
            + r * np.log1p(-q)
            + counts * np.log(q)
            if q > 0
            else np.where(counts == 0, 0.0, -np.inf)
        )
        first = np.exp(betaln(a, b + counts) - betaln(a, b) + log_nb)
        out = np.empty(len(counts))
        for i, k in enumerate(counts):
            if k == 0:
                out[i] = first[i]
                continue
            j = np.arange(k)
            partial = np.exp(
                gammaln(r + j)
                - gammaln(r)
                - gammaln(j + 1)
                + r * np.log1p(-q)
                + (j * np.log(q) if q > 0 else 0.0)
            ).sum()
            out[i] = first[i] + np.exp(betaln(a + 1, b + k - 1) - betaln(a, b)) * (1 - partial)
        return out
