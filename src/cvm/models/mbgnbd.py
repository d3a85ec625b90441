"""MBG/NBD: the modified beta-geometric / negative binomial distribution model.

Batislam, E. P., Denizel, M. & Filiztekin, A. (2007), "Empirical validation and
comparison of models for customer base analysis", *International Journal of Research
in Marketing* 24(3), 201–209 (also Hoppe & Wagner 2007, "Customer base analysis: the
case for a central variant of the Betageometric/NBD model").

Assumptions: as the BG/NBD (Fader, Hardie & Lee 2005) — while active, a customer buys
as a Poisson process with rate λ, λ ~ Gamma(r, α) across customers; the customer drops
out with probability p at each opportunity, p ~ Beta(a, b) across customers — except
that the first opportunity to drop out comes right after the first purchase (time 0),
not after the first repeat purchase. A customer with no repeat purchase can therefore
already be inactive, and P(alive) < 1 for every customer. The likelihood of a
customer's (x, t_x, T) — repeat purchases, time of the last one, age — is

    L = B(a, b+x+1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^{r+x})
        + B(a+1, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^{r+x})     (every x ≥ 0),

evaluated here in log space (``logaddexp``) with its analytic gradient. Then

    P(alive | x, t_x, T) = 1 / (1 + a/(b+x) · ((α+T)/(α+t_x))^{r+x}),
    E[Y(t) | x, t_x, T] = (a+b+x)/(a−1) · [1 − ((α+T)/(α+T+t))^{r+x}
                          ₂F₁(r+x, b+x+1; a+b+x; t/(α+T+t))] · P(alive).

The ₂F₁ form overflows for heavy buyers unless rewritten by Euler's transformation,
(1−z)^{r+x} ₂F₁(r+x, b+x+1; a+b+x; z) = (1−z)^{a−1} ₂F₁(a+b−r, a−1; a+b+x; z); but even
then scipy's ``hyp2f1`` returns NaN or inaccurate values when t ≫ α+T, for large a,
and (by cancellation in 1 − term) for small t. So the same expectation is computed
from its definition, P(alive) · E[(1 − (1 + p t/(α+T))^{−(r+x)}) / p] with
p ~ Beta(a, b+x+1), by quadrature of a log-concave integrand (``_expected_while_alive``):
it agrees with the ₂F₁ form to ~1e-13 where scipy evaluates that reliably and stays
finite and accurate for every frequency, age, horizon and parameter value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, digamma, gammaln

from cvm.models.base import Array, unique_rows
from cvm.models.data import RFM
from cvm.models.repeat import RepeatPurchaseModel

__all__ = ["ModifiedBetaGeoModel"]


#: Composite Gauss–Legendre rule on [0, 1]: _PANELS panels of _ORDER nodes each.
_PANELS, _ORDER = 16, 20
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_ORDER)
_NODES = ((np.arange(_PANELS)[:, None] + (_GL_X[None, :] + 1) / 2) / _PANELS).ravel()
_WEIGHTS = np.tile(_GL_W / (2 * _PANELS), _PANELS)
#: The quadrature window keeps the integrand within exp(−_DROP) of its maximum.
_DROP = 38.0


def _log_sigmoid(y: Array) -> Array:
    """log(1 / (1 + e^{−y})), stable for any y."""
    result: Array = -np.logaddexp(0.0, -y)
    return result


def _log_integrand(y: Array, n: Array, w: Array, a: float, b_post: Array) -> Array:
    """Log of σ(y)^a σ(−y)^{b'} g(σ(y)), g(p) = (1 − (1 + p w)^{−n}) / p (y = logit p).

    g(p) is what a customer with dropout probability p, alive now, is expected to buy
    in the next t: E_λ[(1 − e^{−λpt})/p] with λ ~ Gamma(n, α+T) and w = t/(α+T).
    """
    log_p = _log_sigmoid(y)
    pw = np.exp(log_p) * w
    s = n * np.log1p(pw)
    tiny = s < 1e-300  # p w underflowed: g = n w to double precision
    log_g = np.where(tiny, np.log(n * w), np.log(-np.expm1(-np.where(tiny, 1.0, s))) - log_p)
    result: Array = a * log_p + b_post * _log_sigmoid(-y) + log_g
    return result


def _slope(y: Array, n: Array, w: Array, a: float, b_post: Array) -> Array:
    """Differentiate :func:`_log_integrand` in y: a(1−p) − b'p + (pG'/G − 1)(1−p)."""
    p = np.exp(_log_sigmoid(y))
    q = np.exp(_log_sigmoid(-y))
    pw = p * w
    s = n * np.log1p(pw)
    tiny = s < 1e-300
    s_safe = np.where(tiny, 1.0, s)
    # p G'(p)/G(p) with G = 1 − e^{−s}: (n p w / (1 + p w)) · e^{−s} / (1 − e^{−s}) ∈ (0, 1].
    ratio = np.where(tiny, 1.0, n * pw / (1 + pw) * np.exp(-s_safe) / -np.expm1(-s_safe))
    result: Array = a * q - b_post * p + (ratio - 1.0) * q
    return result


def _expected_while_alive(n: Array, w: Array, a: float, b_post: Array) -> Array:
    """E[g(p)] for p ~ Beta(a, b'): expected purchases of a customer known to be alive.

    In y = logit(p) the integrand σ(y)^a σ(−y)^{b'} g(σ(y)) / B(a, b') is strictly
    log-concave (the second derivative of its log is ≤ −(a+b'−1) σ(1−σ) < 0, because
    log g(e^u) is concave in u), with tails e^{a y} and e^{−b' y}, and analytic in the
    strip |Im y| < π/2 where it stays bounded. So: bisect for the mode and for the two
    points where the integrand has fallen by e^{−38}, integrate that window with a
    composite Gauss–Legendre rule, and add the far-left tail in closed form (there
    g = n w and σ(−y)^{b'} = 1 to double precision, so it is n w e^{a y_c} / a).
    """

    def log_f(y: Array) -> Array:
        return _log_integrand(y, n, w, a, b_post)

    # The slope falls from a (y → −∞) to −b' (y → ∞); it is < 0 at log(a/b') + 1 and,
    # checked below, > 0 at log(a/(a + b' + (n+1)w)) − 1 (else the bracket is widened).
    hi = np.log(a / b_post) + 1.0
    lo = np.log(a / (a + b_post + (n + 1) * w)) - 1.0
    lo = np.where(_slope(lo, n, w, a, b_post) > 0, lo, -700.0)
    for _ in range(40):
        mid = (lo + hi) / 2
        up = _slope(mid, n, w, a, b_post) > 0
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    mode = (lo + hi) / 2
    target = log_f(mode) - _DROP
    # Below ``cut`` the integrand is n w e^{a y} to within e^{−40} (relative).
    cut = np.minimum(-np.log1p(a + b_post + (n + 1) * w) - 40.0, mode)

    def edge(step: float) -> Array:
        outer = mode + step
        for _ in range(64):  # widen until below target (or at the cut)
            stop = (log_f(outer) < target) | (outer <= cut)
            if np.all(stop):
                break
            outer = np.where(stop, outer, mode + 2 * (outer - mode))
        inner, outer = mode.copy(), np.maximum(outer, cut)
        for _ in range(30):
            mid = (inner + outer) / 2
            above = log_f(mid) >= target
            inner, outer = np.where(above, mid, inner), np.where(above, outer, mid)
        return outer

    left, right = edge(-1.0), edge(1.0)
    span = right - left
    y = left[:, None] + span[:, None] * _NODES[None, :]
    log_vals = _log_integrand(y, n[:, None], w[:, None], a, b_post[:, None])
    top = np.max(log_vals, axis=1)
    body = (span[:, None] * _WEIGHTS[None, :] * np.exp(log_vals - top[:, None])).sum(axis=1)
    log_body = top + np.log(body)
    with np.errstate(divide="ignore"):
        log_tail = np.where(left <= cut, np.log(n * w) + a * left - np.log(a), -np.inf)
    result: Array = np.exp(np.logaddexp(log_body, log_tail) - betaln(a, b_post))
    return result


class ModifiedBetaGeoModel(RepeatPurchaseModel):
    """The MBG/NBD model of repeat purchasing (Batislam, Denizel & Filiztekin 2007).

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
    >>> model = ModifiedBetaGeoModel().fit(summary)    # doctest: +SKIP
    >>> model.probability_alive(summary)               # doctest: +SKIP
    """

    param_names = ("r", "alpha", "a", "b")

    def _start(self) -> Array:
        return np.array([0.5, self._scale, 1.0, 2.0])

    def fit(self, data: Any) -> ModifiedBetaGeoModel:
        """Fit by maximum likelihood.

        Parameters
        ----------
        data
            A DataFrame or mapping with ``frequency``, ``recency`` and ``t`` (or ``T``)
            per customer, e.g. :func:`cvm.features.btyd_summary`'s output.

        Returns
        -------
        ModifiedBetaGeoModel
            ``self``, fitted.
        """
        x, t_x, t, weights = self._prepare(data)

        def objective(log_theta: Array) -> tuple[float, Array]:
            r, alpha, a, b = np.exp(log_theta)
            c = r + x
            base = gammaln(c) - gammaln(r) + r * np.log(alpha)
            # Alive at T (survived x+1 chances to drop) or dropped right after t_x.
            a2 = betaln(a, b + x + 1) - betaln(a, b) - c * np.log(alpha + t)
            a3 = betaln(a + 1, b + x) - betaln(a, b) - c * np.log(alpha + t_x)
            mix = np.logaddexp(a2, a3)
            ll = base + mix
            w3 = np.exp(a3 - mix)
            w2 = np.exp(a2 - mix)
            ab = digamma(a + b)
            abx = digamma(a + b + x + 1)
            d_r = (
                digamma(c)
                - digamma(r)
                + np.log(alpha)
                - w2 * np.log(alpha + t)
                - w3 * np.log(alpha + t_x)
            )
            d_alpha = r / alpha - w2 * c / (alpha + t) - w3 * c / (alpha + t_x)
            d_a = ab - abx + w3 / a
            d_b = (
                w2 * (digamma(b + x + 1) - digamma(b))
                + w3 * (digamma(b + x) - digamma(b))
                + ab
                - abx
            )
            grads = np.array([d_r * r, d_alpha * alpha, d_a * a, d_b * b])
            value = -float(weights @ ll)
            return value, -(grads @ weights)

        self._optimize(objective, n_customers=int(weights.sum()), n_rows=len(weights))
        return self

    # -- predictions -------------------------------------------------------------------
    def _alive(self, rfm: RFM) -> Array:
        """P(alive) = 1 / (1 + a/(b+x) · ((α+T)/(α+t_x))^{r+x}), via its log odds."""
        r, alpha, a, b = self._theta()
        x, t_x, t = rfm.frequency, rfm.recency, rfm.age
        log_odds = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + t) - np.log(alpha + t_x))
        result: Array = np.exp(-np.logaddexp(0.0, log_odds))
        return result

    def _while_alive(self, x: Array, age: Array, horizon: npt.ArrayLike) -> Array:
        """E[purchases in the next ``horizon`` | alive now, x, T], broadcast over rows.

        Identical (x, T, t) rows are computed once (customers share few distinct ones).
        """
        r, alpha, a, b = self._theta()
        x_, age_, t_ = np.broadcast_arrays(x, age, np.asarray(horizon, dtype=np.float64))
        (ux, uage, ut), _, inverse = unique_rows(x_.ravel(), age_.ravel(), t_.ravel())
        n = r + ux
        w = ut / (alpha + uage)
        out = np.zeros(len(ux))
        live = w > 0
        if np.any(live):
            with np.errstate(over="ignore", under="ignore"):
                out[live] = _expected_while_alive(n[live], w[live], float(a), b + ux[live] + 1)
        result: Array = out[inverse].reshape(x_.shape)
        return result

    def expected_purchases_new(self, t: float | npt.ArrayLike) -> Array:
        """E[X(t)] for a customer just acquired (Batislam et al. 2007).

        b/(a−1) · [1 − (α/(α+t))^r ₂F₁(r, b+1; a+b; t/(α+t))], computed as the
        conditional expectation of a customer with x = 0 and T = 0, who is alive with
        probability b/(a+b).
        """
        self._check_fitted()
        _, _, a, b = self._theta()
        horizon = np.asarray(t, dtype=np.float64)
        result: Array = np.asarray(
            b / (a + b) * self._while_alive(np.zeros(1), np.zeros(1), horizon.ravel()),
            dtype=np.float64,
        ).reshape(horizon.shape)
        return result

    def probability_of_purchases(self, t: float, n: int | npt.ArrayLike) -> Array:
        """P(X(t) = n) for a customer just acquired.

        The customer drops out right after purchase j (j = 0 being the first purchase)
        with probability p(1−p)^j; so X(t) = n either because the Poisson count reached
        n and the customer dropped right after the n-th repeat purchase, or because the
        customer was still active and the count is exactly n:

            P(X(t) = n) = B(a, b+n+1)/B(a, b) · NB(n) + B(a+1, b+n)/B(a, b) · (1 − Σ_{j<n} NB(j)),

        NB(j) = Γ(r+j)/(Γ(r) j!) (α/(α+t))^r (t/(α+t))^j.
        """
        self._check_fitted()
        r, alpha, a, b = self._theta()
        counts = np.atleast_1d(np.asarray(n, dtype=np.int64))
        if np.any(counts < 0):
            raise ValueError("n must be non-negative")
        q = t / (alpha + t)

        def log_nb(j: npt.NDArray[np.int64]) -> Array:
            if q <= 0:
                result: Array = np.where(j == 0, 0.0, -np.inf)
                return result
            out: Array = (
                gammaln(r + j) - gammaln(r) - gammaln(j + 1) + r * np.log1p(-q) + j * np.log(q)
            )
            return out

        stay = np.exp(betaln(a, b + counts + 1) - betaln(a, b) + log_nb(counts))
        result = np.empty(len(counts))
        for i, k in enumerate(counts):
            below = float(np.exp(log_nb(np.arange(k))).sum()) if k > 0 else 0.0
            drop = np.exp(betaln(a + 1, b + k) - betaln(a, b))
            result[i] = stay[i] + drop * max(1.0 - below, 0.0)
        return result
