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

from cvm.models.base import Array, Objective, distinct
from cvm.models.data import RFM
from cvm.models.repeat import RepeatPurchaseModel

__all__ = ["BetaGeoModel"]

#: Above this z, log(1 + e^z) equals z in double precision.
_SOFTPLUS_CAP = 35.0


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
        self._fit_rows(self._objective, x, t_x, t, weights)
        return self

    @staticmethod
    def _objective(x: Array, t_x: Array, t: Array, weights: Array) -> Objective:
        """Build the negative log-likelihood over log-parameters, with its gradient.

        With D = log(α+T) − log(α+t_x) ≥ 0 and k(x) = log(a/(b+x−1)), a customer's
        log-likelihood is

            log Γ(r+x)/Γ(r) + r log α + log B(a, b+x)/B(a, b) − (r+x) log(α+T)
            + 1{x>0} softplus(k(x) + (r+x) D),

        so every term but the last is a sum over distinct x or distinct T, computed
        from weights aggregated once here; only the softplus term and its derivative
        are evaluated per (x > 0) row. Customers without repeat purchases contribute
        r log(α/(α+T)) and are aggregated by T.
        """
        zero = x == 0
        u_t0, i_t0 = distinct(t[zero])
        w_t0 = np.bincount(i_t0, weights[zero], minlength=len(u_t0))
        n0 = float(w_t0.sum())
        rep = ~zero
        xr, w = x[rep], weights[rep]
        ux, ix = distinct(xr)
        u_t, i_t = distinct(t[rep])
        u_tx, i_tx = distinct(t_x[rep])
        w_x = np.bincount(ix, w, minlength=len(ux))
        w_t = np.bincount(i_t, w, minlength=len(u_t))
        wx_t = np.bincount(i_t, w * xr, minlength=len(u_t))
        n1 = float(w_x.sum())
        unit = bool(np.all(w == 1.0))

        def objective(log_theta: Array) -> tuple[float, Array]:
            r, alpha, a, b = np.exp(log_theta)
            log_alpha = np.log(alpha)
            # customers without repeat purchases
            log_t0 = np.log(alpha + u_t0)
            ll = r * (n0 * log_alpha - w_t0 @ log_t0)
            d_r = n0 * log_alpha - w_t0 @ log_t0
            d_alpha = r * (n0 / alpha - w_t0 @ (1.0 / (alpha + u_t0)))
            d_a = d_b = 0.0
            if n1:
                # terms in x alone, and in T alone
                psi_ab, psi_abx = digamma(a + b), digamma(a + b + ux)
                ll += w_x @ (gammaln(r + ux) - gammaln(r) + betaln(a, b + ux) - betaln(a, b))
                ll += n1 * r * log_alpha
                log_t, inv_t = np.log(alpha + u_t), 1.0 / (alpha + u_t)
                ll -= (r * w_t + wx_t) @ log_t
                d_r += w_x @ (digamma(r + ux) - digamma(r)) + n1 * log_alpha - w_t @ log_t
                d_alpha += n1 * r / alpha - (r * w_t + wx_t) @ inv_t
                d_a += w_x @ (psi_ab - psi_abx)
                d_b += w_x @ (digamma(b + ux) - digamma(b) + psi_ab - psi_abx)
                # the per-row term: softplus(z) = log(1 + e^z) and its derivative e^z/(1 + e^z)
                # (e^z capped at e^35, beyond which softplus(z) = z to double precision)
                log_tx, inv_tx = np.log(alpha + u_tx), 1.0 / (alpha + u_tx)
                big_d = log_t[i_t] - log_tx[i_tx]
                c = r + xr
                inv_b = 1.0 / (b + ux - 1.0)
                z = (np.log(a) + np.log(inv_b))[ix] + c * big_d
                e = np.exp(np.minimum(z, _SOFTPLUS_CAP))
                one = 1.0 + e
                soft = np.log(one)
                ws = e / one
                if unit:
                    ll += soft.sum()
                else:
                    ll += w @ soft
                    ws *= w
                if z.max() > _SOFTPLUS_CAP:
                    ll += (w * np.maximum(z - _SOFTPLUS_CAP, 0.0)).sum()
                d_r += ws @ big_d
                d_alpha += (ws * c) @ (inv_t[i_t] - inv_tx[i_tx])
                d_a += ws.sum() / a
                d_b -= ws @ inv_b[ix]
            grads = np.array([d_r * r, d_alpha * alpha, d_a * a, d_b * b])
            return -float(ll), -grads

        return objective

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

    def _alive(self, rfm: RFM) -> Array:
        """P(alive | x, t_x, T) (FHL 2005, eq. 11)."""
        log_odds = self._log_alive_odds(rfm.frequency, rfm.recency, rfm.age)
        result: Array = np.exp(-np.logaddexp(0.0, log_odds))
        return result

    def _while_alive(self, x: Array, age: Array, horizon: npt.ArrayLike) -> Array:
        """Return the expected purchases in the next ``horizon`` of a customer alive now.

        FHL 2005 eq. 10 without its P(alive) factor, with the Gaussian hypergeometric
        term rewritten by Euler's transformation, (1−z)^{r+x} ₂F₁(r+x, b+x; a+b+x−1; z)
        = (1−z)^{a−1} ₂F₁(a+b−1−r, a−1; a+b+x−1; z), z = t/(α+T+t), whose series
        converges fast for any frequency (no overflow for heavy buyers).
        """
        r, alpha, a, b = self._theta()
        t = np.asarray(horizon, dtype=np.float64)
        z = t / (alpha + age + t)
        a = a if abs(a - 1.0) > 1e-8 else 1.0 + 1e-8
        term = (1 - z) ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
        result: Array = (a + b + x - 1) / (a - 1) * (1 - term)
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
