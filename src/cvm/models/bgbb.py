"""BG/BB: the beta-geometric / beta-Bernoulli model for discrete purchase opportunities.

Fader, P. S., Hardie, B. G. S. & Shang, J. (2010), "Customer-Base Analysis in a
Discrete-Time Noncontractual Setting", *Marketing Science* 29(6), 1086–1108.

Assumptions: transactions can only happen at discrete, equally spaced opportunities
(a yearly appeal, an annual event, a weekly visit day), at most one per opportunity.
While active, a customer transacts at each opportunity with probability p; p varies
across customers as Beta(α, β). A customer active at one opportunity becomes inactive
before the next with probability θ (and never comes back); θ varies across customers
as Beta(γ, δ); p and θ are independent. The first (acquisition) transaction is not
counted. A customer's data are x repeat transactions in n opportunities, the last at
opportunity t_x (0 if x = 0), and the likelihood is (FHS 2010)

    L = B(α+x, β+n−x)/B(α, β) · B(γ, δ+n)/B(γ, δ)
        + Σ_{i=0}^{n−t_x−1} B(α+x, β+t_x−x+i)/B(α, β) · B(γ+1, δ+t_x+i)/B(γ, δ),

evaluated here in log space (``logsumexp`` over the n − t_x + 1 terms) with its
analytic gradient. The published data come as recency/frequency patterns with a count
of customers each (``weights``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import digamma, gammaln, logsumexp

from cvm.errors import DataError, SchemaError
from cvm.models.base import Array, BaseModel, as_array
from cvm.models.data import column
from cvm.models.special import log_pochhammer, scaled_change

__all__ = ["BetaGeoBetaBinomModel"]

#: Largest matrix (rows × terms of the sum) evaluated at once, to bound memory.
_CHUNK_CELLS = 500_000


@dataclass(frozen=True)
class _Patterns:
    """Frequency x, recency t_x, opportunities n and customers per row."""

    frequency: Array
    recency: Array
    n_periods: Array
    weights: Array

    def compressed(self) -> tuple[Array, Array, Array, Array]:
        """Return the unique (x, t_x, n) rows and the summed weights each stands for."""
        stacked = np.column_stack([self.frequency, self.recency, self.n_periods])
        unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
        summed: Array = np.bincount(
            inverse.ravel(), weights=self.weights, minlength=len(unique)
        ).astype(np.float64)
        keep = summed > 0
        return unique[keep, 0], unique[keep, 1], unique[keep, 2], summed[keep]


def _patterns(data: Any) -> _Patterns:
    """Read and check ``frequency``, ``recency``, ``n_periods`` and optional ``weights``.

    ``n_periods`` may also be called ``periods``, ``n`` or ``T``; ``weights`` may be
    called ``count``.

    Raises
    ------
    SchemaError
        If a required column is missing.
    DataError
        If a value is impossible: a negative or fractional count, fewer than one
        opportunity, a recency beyond the number of opportunities, more transactions
        than opportunities up to the last one, a positive recency without
        transactions, or a negative weight. The message names the column and the first
        bad row.
    """
    x = as_array("frequency", column(data, "frequency", "x"))
    t_x = as_array("recency", column(data, "recency", "t_x"))
    n = as_array("n_periods", column(data, "n_periods", "periods", "n", "T"))
    try:
        raw_weights: Any = column(data, "weights", "count")
    except SchemaError:
        raw_weights = np.ones(len(x))
    w = as_array("weights", raw_weights)
    if not len(x) == len(t_x) == len(n) == len(w):
        raise DataError("frequency, recency, n_periods and weights must have the same length")

    def fail(mask: Any, column: str, what: str) -> None:
        if np.any(mask):
            row = int(np.flatnonzero(mask)[0])
            raise DataError(f"{what} (row {row})", column=column)

    def whole(v: Array) -> Any:
        return v != np.round(v)

    fail((x < 0) | whole(x), "frequency", "must be a whole number ≥ 0")
    fail((t_x < 0) | whole(t_x), "recency", "must be a whole number ≥ 0")
    fail((n < 1) | whole(n), "n_periods", "must be a whole number ≥ 1")
    fail(t_x > n, "recency", "cannot exceed n_periods")
    fail(x > t_x, "frequency", "cannot exceed recency (at most one transaction per period)")
    fail((x == 0) & (t_x > 0), "recency", "must be 0 when frequency is 0")
    fail(w < 0, "weights", "must be ≥ 0 (customers with this pattern)")
    return _Patterns(frequency=x, recency=t_x, n_periods=n, weights=w)


def _whole(name: str, values: npt.ArrayLike, minimum: int) -> Array:
    """Check that values are whole numbers ≥ ``minimum`` (as floats, any shape)."""
    array = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(array) | (array < minimum) | (array != np.round(array))
    if np.any(bad):
        first = array.ravel()[int(np.flatnonzero(bad.ravel())[0])]
        raise DataError(f"must be a whole number ≥ {minimum}, got {first:g}", column=name)
    return array


def _log_purchase_part(alpha: float, beta: float, x: npt.ArrayLike, m: npt.ArrayLike) -> Array:
    """Return ln B(α+x, β+m−x)/B(α, β): x transactions in m opportunities, one order."""
    x_arr, m_arr = np.asarray(x, np.float64), np.asarray(m, np.float64)
    result: Array = (
        log_pochhammer(alpha, x_arr)
        + log_pochhammer(beta, m_arr - x_arr)
        - log_pochhammer(alpha + beta, m_arr)
    )
    return result


def _log_alive_part(gamma: float, delta: float, m: npt.ArrayLike) -> Array:
    """Return ln B(γ, δ+m)/B(γ, δ): still active at opportunity m + 1 (m survivals)."""
    result: Array = log_pochhammer(delta, m) - log_pochhammer(gamma + delta, m)
    return result


def _log_dropped_part(gamma: float, delta: float, m: npt.ArrayLike) -> Array:
    """Return ln B(γ+1, δ+m)/B(γ, δ): active through opportunity m, then dropped out."""
    m_arr = np.asarray(m, np.float64)
    result: Array = (
        np.log(gamma) + log_pochhammer(delta, m_arr) - log_pochhammer(gamma + delta, m_arr + 1)
    )
    return result


def _log_expm1_ratio(w: Array) -> Array:
    """Return ln((e^w − 1)/w), with the limit 0 at w = 0, for any real w."""
    small = np.abs(w) < 1e-8
    pos = np.where(w > 0, w, 1.0)
    neg = np.where(w < 0, w, -1.0)
    result: Array = np.where(
        small,
        w / 2,
        np.where(
            w > 0,
            pos + np.log(-np.expm1(-pos)) - np.log(pos),
            np.log(-np.expm1(neg)) - np.log(-neg),
        ),
    )
    return result


def _log_survival_sum(gamma: float, delta: float, start: Array, horizon: Array) -> Array:
    """Return ln Σ_{k=1}^{m} B(γ, δ+s+k)/B(γ, δ), s = ``start``, m = ``horizon``.

    The sum is the expected number of the opportunities s+1 … s+m at which a customer
    alive at opportunity s is still alive. Closed form (FHS 2010; cf. eq. 13), by
    telescoping: δ/(γ−1) · Γ(γ+δ)/Γ(1+δ) · [Γ(1+δ+s)/Γ(γ+δ+s) − Γ(1+δ+s+m)/Γ(γ+δ+s+m)]
    = δ · e^{(1−γ) K(δ, s)} · K(δ+s, m) · (e^w − 1)/w, w = (1−γ) K(δ+s, m), with K from
    :func:`scaled_change`: no division by γ − 1, so γ = 1 needs no special case.
    Returned as a logarithm (−inf for m = 0) so that callers can combine it with other
    extreme factors without overflow.
    """
    s, m = np.broadcast_arrays(np.asarray(start, np.float64), np.asarray(horizon, np.float64))
    lead = scaled_change(gamma, np.full(s.shape, delta), s)
    change = scaled_change(gamma, delta + s, m)
    with np.errstate(divide="ignore"):
        log_change = np.log(change)
    result: Array = (
        np.log(delta) + (1 - gamma) * lead + log_change + _log_expm1_ratio((1 - gamma) * change)
    )
    return result


class BetaGeoBetaBinomModel(BaseModel):
    """The BG/BB model of discrete-time repeat transactions (Fader, Hardie & Shang 2010).

    Parameters
    ----------
    penalizer, n_starts, max_iter, seed
        See :class:`~cvm.models.base.BaseModel`.

    Attributes
    ----------
    params_ : dict
        ``alpha``, ``beta`` (transaction probability ~ Beta(alpha, beta)) and
        ``gamma``, ``delta`` (dropout probability ~ Beta(gamma, delta)).
    log_likelihood_ : float
        Maximised log-likelihood.
    n_customers_ : int
        Customers fitted on (the sum of the weights).

    Examples
    --------
    >>> model = BetaGeoBetaBinomModel().fit(patterns)           # doctest: +SKIP
    >>> model.expected_purchases(patterns, n=5)                 # doctest: +SKIP
    """

    param_names = ("alpha", "beta", "gamma", "delta")

    def _start(self) -> Array:
        return np.array([1.0, 1.0, 1.0, 2.0])

    def fit(self, data: Any) -> BetaGeoBetaBinomModel:
        """Fit by maximum likelihood.

        Parameters
        ----------
        data
            A DataFrame or mapping with ``frequency`` (repeat transactions x),
            ``recency`` (opportunity of the last one, t_x; 0 if none) and ``n_periods``
            (opportunities observed, n; also read as ``periods``, ``n`` or ``T``), one
            row per customer or per pattern, with an optional ``weights`` column giving
            the customers each row stands for.

        Returns
        -------
        BetaGeoBetaBinomModel
            ``self``, fitted.
        """
        x, t_x, n, weights = _patterns(data).compressed()
        if not len(weights):
            raise DataError("no customers to fit (no rows, or all weights are 0)")

        def objective(log_theta: Array) -> tuple[float, Array]:
            theta = np.exp(log_theta)
            ll, grad = self._log_likelihood(theta, x, t_x, n, gradient=True)
            return -float(weights @ ll), -(weights @ grad) * theta

        self._optimize(objective, n_customers=round(weights.sum()), n_rows=len(weights))
        return self

    # -- likelihood --------------------------------------------------------------------
    @staticmethod
    def _log_likelihood(
        theta: Array, x: Array, t_x: Array, n: Array, *, gradient: bool
    ) -> tuple[Array, Array]:
        """Per-row log-likelihood and (if asked) its gradient, shape (rows, 4)."""
        ll = np.empty(len(x))
        grad = np.zeros((len(x), 4))
        width = int(np.max(n - t_x)) if len(x) else 0
        step = max(1, _CHUNK_CELLS // (width + 1))
        for lo in range(0, len(x), step):
            part = slice(lo, lo + step)
            ll[part], grad[part] = BetaGeoBetaBinomModel._log_likelihood_chunk(
                theta, x[part], t_x[part], n[part], width, gradient=gradient
            )
        return ll, grad

    @staticmethod
    def _log_likelihood_chunk(
        theta: Array, x: Array, t_x: Array, n: Array, width: int, *, gradient: bool
    ) -> tuple[Array, Array]:
        alpha, beta, gamma, delta = theta
        # Column 0: alive through all n opportunities. Column 1 + i: alive through
        # opportunity t_x + i and gone before the next, i = 0 … n − t_x − 1; the cells
        # beyond that are padding (set to t_x, a harmless value) and masked out.
        i = np.arange(width, dtype=np.float64)
        valid = np.ones((len(x), width + 1), bool)
        valid[:, 1:] = i[None, :] < (n - t_x)[:, None]
        m = np.empty((len(x), width + 1))
        m[:, 0] = n
        m[:, 1:] = np.where(valid[:, 1:], t_x[:, None] + i[None, :], t_x[:, None])
        dropped = np.ones(m.shape)
        dropped[:, 0] = 0.0
        xc = x[:, None]
        terms = _log_purchase_part(alpha, beta, xc, m)
        terms[:, 0] += _log_alive_part(gamma, delta, n)
        terms[:, 1:] += _log_dropped_part(gamma, delta, m[:, 1:])
        terms = np.where(valid, terms, -np.inf)
        ll: Array = logsumexp(terms, axis=1)
        if not gradient:
            return ll, np.zeros((len(x), 4))
        share = np.where(valid, np.exp(terms - ll[:, None]), 0.0)
        d_ab, d_gd = digamma(alpha + beta), digamma(gamma + delta)
        d_abm = digamma(alpha + beta + m)
        d_alpha = digamma(alpha + xc) - d_abm - digamma(alpha) + d_ab
        d_beta = digamma(beta + (m - xc)) - d_abm - digamma(beta) + d_ab
        g = gamma + dropped
        d_gdm = digamma(g + delta + m)
        d_gamma = digamma(g) - d_gdm - digamma(gamma) + d_gd
        d_delta = digamma(delta + m) - d_gdm - digamma(delta) + d_gd
        grad = np.column_stack(
            [(share * d).sum(axis=1) for d in (d_alpha, d_beta, d_gamma, d_delta)]
        )
        return ll, grad

    # -- predictions -------------------------------------------------------------------
    def _rows(self, data: Any) -> tuple[Array, Array, Array]:
        self._check_fitted()
        rows = _patterns(data)
        return rows.frequency, rows.recency, rows.n_periods

    def probability_alive(self, data: Any) -> Array:
        """P(alive at opportunity n + 1 | x, t_x, n) per row (FHS 2010).

        P(alive) = B(α+x, β+n−x)/B(α, β) · B(γ, δ+n+1)/B(γ, δ) / L(α, β, γ, δ | x, t_x, n):
        the share of the likelihood from histories in which the customer survived all n
        opportunities and the next dropout draw.

        Parameters
        ----------
        data
            Customers (or patterns) with ``frequency``, ``recency`` and ``n_periods``.

        Returns
        -------
        numpy.ndarray
            The probability that each customer is still active at the next
            opportunity, between 0 and 1.
        """
        x, t_x, n = self._rows(data)
        theta = self._theta()
        alpha, beta, gamma, delta = theta
        ll, _ = self._log_likelihood(theta, x, t_x, n, gradient=False)
        log_alive = _log_purchase_part(alpha, beta, x, n) + _log_alive_part(gamma, delta, n + 1)
        log_alive = log_alive - ll
        result: Array = np.exp(np.minimum(log_alive, 0.0))
        return result

    def expected_purchases(self, data: Any, n: float | npt.ArrayLike) -> Array:
        """Return expected transactions in the next ``n`` opportunities (FHS 2010, eq. 13).

        E[X(n_cal, n_cal + n*) | x, t_x, n_cal] = 1/L · B(α+x+1, β+n_cal−x)/B(α, β)
        · Σ_{k=1}^{n*} B(γ, δ+n_cal+k)/B(γ, δ).

        Parameters
        ----------
        data
            Customers (or patterns) with ``frequency``, ``recency`` and ``n_periods``.
        n
            Future opportunities n* (a whole number ≥ 0, or an array broadcasting
            against the rows).

        Returns
        -------
        numpy.ndarray
            Expected transactions per row.
        """
        x, t_x, n_cal = self._rows(data)
        horizon = _whole("n", n, 0)
        theta = self._theta()
        alpha, beta, gamma, delta = theta
        ll, _ = self._log_likelihood(theta, x, t_x, n_cal, gradient=False)
        # ln B(α+x+1, β+n−x)/B(α, β): the purchase part with one more transaction.
        log_p = _log_purchase_part(alpha, beta, x + 1, n_cal + 1) - ll
        result: Array = np.exp(log_p + _log_survival_sum(gamma, delta, n_cal, horizon))
        return result

    def expected_purchases_new(self, n: float | npt.ArrayLike) -> Array:
        """E[X(n)]: expected transactions in the first ``n`` opportunities (FHS 2010).

        E[X(n)] = α/(α+β) · δ/(γ−1) · [1 − Γ(γ+δ)/Γ(1+δ) · Γ(1+δ+n)/Γ(γ+δ+n)], for a
        customer just acquired (repeat transactions only).

        Parameters
        ----------
        n
            Opportunities (a whole number ≥ 0, or an array of them).

        Returns
        -------
        numpy.ndarray
            Expected transactions, one per value of ``n``.
        """
        self._check_fitted()
        horizon = np.atleast_1d(_whole("n", n, 0))
        alpha, beta, gamma, delta = self._theta()
        result: Array = (
            alpha
            / (alpha + beta)
            * np.exp(_log_survival_sum(gamma, delta, np.zeros_like(horizon), horizon))
        )
        return result

    def probability_of_purchases(self, n: int, x: int | npt.ArrayLike) -> Array:
        """P(X(n) = x): the chance of x transactions in n opportunities (FHS 2010, eq. 7).

        P(X(n) = x) = C(n, x) B(α+x, β+n−x)/B(α, β) · B(γ, δ+n)/B(γ, δ)
                      + Σ_{i=x}^{n−1} C(i, x) B(α+x, β+i−x)/B(α, β) · B(γ+1, δ+i)/B(γ, δ),

        for a customer just acquired; evaluated in log space.

        Parameters
        ----------
        n
            Opportunities (a whole number ≥ 0).
        x
            Transaction counts (whole numbers ≥ 0); counts above ``n`` have probability 0.

        Returns
        -------
        numpy.ndarray
            One probability per count.
        """
        self._check_fitted()
        if np.ndim(n) != 0:
            raise DataError("must be a single whole number", column="n")
        periods = int(_whole("n", n, 0))
        counts = np.atleast_1d(_whole("x", x, 0)).reshape(-1)
        alpha, beta, gamma, delta = self._theta()

        def log_choose(top: Array | float, k: float) -> Array:
            out: Array = gammaln(top + 1) - gammaln(k + 1) - gammaln(top - k + 1)
            return out

        out = np.zeros(len(counts))
        for j, k in enumerate(counts):
            if k > periods:
                continue
            alive = (
                log_choose(float(periods), float(k))
                + _log_purchase_part(alpha, beta, k, periods)
                + _log_alive_part(gamma, delta, periods)
            )
            i = np.arange(k, periods, dtype=np.float64)
            dropped = (
                log_choose(i, float(k))
                + _log_purchase_part(alpha, beta, k, i)
                + _log_dropped_part(gamma, delta, i)
            )
            out[j] = np.exp(logsumexp(np.append(dropped, alive)))
        return out
