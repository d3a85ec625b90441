"""sBG: the shifted-beta-geometric model of contract renewals.

Fader, P. S. & Hardie, B. G. S. (2007), "How to Project Customer Retention", *Journal
of Interactive Marketing* 21(1), 76–90; residual value from Fader, P. S. & Hardie,
B. G. S. (2010), "Customer-Base Valuation in a Contractual Setting: The Perils of
Ignoring Heterogeneity", *Marketing Science* 29(1), 85–93.

Assumptions: customers of one cohort sign up at the same time and renew (or not) at
the end of each period; churn is observed (a contractual setting). At each renewal a
customer still active cancels with probability θ, the same every period, so the
lifetime T (periods paid for, T ≥ 1) is shifted-geometric; θ varies across customers
as Beta(α, β). Then (FH 2007, eq. 7–8)

    P(T = t) = B(α+1, β+t−1)/B(α, β),    S(t) = P(T > t) = B(α, β+t)/B(α, β),
    r(t) = S(t)/S(t−1) = (β+t−1)/(α+β+t−1),

so the cohort's retention rate rises over time as the customers most likely to leave
go first. With n_t customers lost in period t = 1 … τ and the survivors after period τ
censored, the likelihood is (FH 2007, eq. B3)

    LL = Σ_{t=1}^{τ} n_t ln P(T = t) + (n_0 − Σ n_t) ln S(τ),

maximised here with its analytic gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy.special import digamma, polygamma

from cvm.errors import DataError
from cvm.models.base import Array, BaseModel, as_array
from cvm.models.special import log_pochhammer, scaled_change

__all__ = ["ShiftedBetaGeoModel"]


def _survivors(values: npt.ArrayLike) -> Array:
    """Check one cohort's counts still active at the start of each period.

    Raises
    ------
    DataError
        If there are fewer than three counts (two periods), a count is negative or not
        finite, the first is not positive, a count exceeds the one before it, or the data
        cannot identify the model: nobody lost, or everybody lost in the first period.
    """
    counts = as_array("survivors", values)
    if len(counts) < 3:
        raise DataError(
            "need the cohort size and at least two later counts (two renewal periods) to "
            f"tell alpha from beta, got {len(counts)} value(s)",
            column="survivors",
        )
    if counts[0] <= 0:
        raise DataError(
            f"the first count (the cohort size) must be > 0, got {counts[0]:g}",
            column="survivors",
        )
    if np.any(counts < 0):
        bad = int(np.flatnonzero(counts < 0)[0])
        raise DataError(f"must be ≥ 0, got {counts[bad]:g} (period {bad})", column="survivors")
    rising = np.flatnonzero(np.diff(counts) > 0)
    if len(rising):
        t = int(rising[0]) + 1
        raise DataError(
            f"cannot increase: {counts[t]:g} at period {t} after {counts[t - 1]:g} at "
            f"period {t - 1} (give one cohort's survivors, not new sign-ups)",
            column="survivors",
        )
    if counts[-1] == counts[0]:
        raise DataError(
            "no customer was lost over the observed periods, so churn cannot be estimated",
            column="survivors",
        )
    if counts[1] == 0:
        raise DataError(
            "every customer was lost in the first period, so churn heterogeneity cannot be "
            "estimated",
            column="survivors",
        )
    return counts


def _log_survival(alpha: float, beta: float, t: Array) -> Array:
    """Return ln S(t) = ln B(α, β+t)/B(α, β) = ln (β)_t − ln (α+β)_t.

    When α ≪ β the two log rising factorials nearly cancel; then ln S(t) is taken as
    −α K, K the scaled change of :func:`cvm.models.special.scaled_change` with γ = 1 + α
    from β − 1 (exact as α → 0), so that S stays ≤ 1 and non-increasing to rounding.
    """
    if alpha < 0.5 and beta >= 1:
        precise: Array = -alpha * scaled_change(1.0 + alpha, np.asarray(beta - 1.0), t)
        return precise
    result: Array = log_pochhammer(beta, t) - log_pochhammer(alpha + beta, t)
    return result


def _log_churn(alpha: float, beta: float, t: Array) -> Array:
    """Return ln P(T = t) = ln B(α+1, β+t−1)/B(α, β) = ln α − ln(α+β+t−1) + ln S(t−1)."""
    result: Array = (
        np.log(alpha) - np.log(alpha + beta + (t - 1)) + _log_survival(alpha, beta, t - 1)
    )
    return result


#: Gauss–Legendre rule used on every panel of :func:`_beta_expectation`.
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(32)


def _beta_expectation(a: float, b: float, log_h: Callable[[Array], Array], kink: float) -> float:
    """Return E[h(θ)] for θ ~ Beta(a, b), integrating over u = logit θ.

    The density of u, ∝ exp(−a softplus(−u) − b softplus(u)), is log-concave with its
    mode at ln(a/b), a width there of about √(ψ₁(a) + ψ₁(b)) (ψ₁: trigamma), and
    exponential tails of rates a and b. The integral is cut where the density has
    fallen by e^{−60} and split into panels that double in length away from the mode
    and from ``kink`` (where h turns), each integrated by 32-point Gauss–Legendre; the
    numerator and the normaliser use the same panels. This stays accurate from
    a, b ≈ 1e-9 to 1e9, where the series of the equivalent ₂F₁ converges too slowly and
    scipy's ``hyp2f1`` returns NaN.
    """
    mode = math.log(a) - math.log(b)

    def log_density(u: Array) -> Array:
        out: Array = -a * np.logaddexp(0.0, -u) - b * np.logaddexp(0.0, u)
        return out

    def cut(side: Array) -> float:
        fallen = log_density(side) - top < -60
        return float(side[int(np.argmax(fallen))] if fallen.any() else side[-1])

    top = float(log_density(np.array(mode)))
    width = min(1.0, math.sqrt(float(polygamma(1, a) + polygamma(1, b))))
    doubling: Array = 2.0 ** np.arange(-3, 90, dtype=np.float64)
    steps = width * doubling
    low, high = cut(mode - steps), cut(mode + steps)
    points = np.concatenate(
        [[low, high, mode, kink], mode - steps, mode + steps, kink - doubling, kink + doubling]
    )
    points = np.unique(points[(points >= low) & (points <= high)])
    half = np.diff(points)[:, None] / 2
    u = (points[:-1, None] + half) + half * _NODES[None, :]
    weight = half * _WEIGHTS[None, :]
    density = np.exp(log_density(u) - top)
    return float(np.sum(weight * density * np.exp(log_h(u))) / np.sum(weight * density))


def _periods(name: str, values: npt.ArrayLike, minimum: int) -> Array:
    """Check that periods are whole numbers ≥ ``minimum`` (as floats, any shape)."""
    array = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(array) | (array < minimum) | (array != np.round(array))
    if np.any(bad):
        first = array.ravel()[int(np.flatnonzero(bad.ravel())[0])]
        raise DataError(f"must be a whole number ≥ {minimum}, got {first:g}", column=name)
    return array


class ShiftedBetaGeoModel(BaseModel):
    """The shifted-beta-geometric (sBG) model of retention (Fader & Hardie 2007).

    Parameters
    ----------
    penalizer, n_starts, max_iter, seed
        See :class:`~cvm.models.base.BaseModel`.

    Attributes
    ----------
    params_ : dict
        ``alpha``, ``beta``: the churn probability θ ~ Beta(alpha, beta); the mean
        first-period churn is alpha/(alpha + beta).
    log_likelihood_ : float
        Maximised log-likelihood.
    n_customers_ : int
        The cohort size (the first count).

    Examples
    --------
    >>> model = ShiftedBetaGeoModel().fit([1000, 869, 743, 653, 593, 551, 517, 491])
    >>> round(model.params_["alpha"], 3), round(model.params_["beta"], 3)
    (0.668, 3.806)
    >>> round(float(model.survival(12)[0]), 3)  # projected share active after 12 years
    0.378
    """

    param_names = ("alpha", "beta")

    def _start(self) -> Array:
        first_churn = min(max(self._first_churn, 0.01), 0.99)
        return np.array([1.0, (1 - first_churn) / first_churn])

    def fit(self, survivors: npt.ArrayLike) -> ShiftedBetaGeoModel:
        """Fit by maximum likelihood to one cohort's survival counts.

        Parameters
        ----------
        survivors
            Customers still active at the start of each period, beginning with the
            cohort size: e.g. ``[1000, 869, 743, 653, 593, 551, 517, 491]`` is a cohort
            of 1000 observed for 7 renewal periods. Counts (or percentages) must not
            increase.

        Returns
        -------
        ShiftedBetaGeoModel
            ``self``, fitted.
        """
        counts = _survivors(survivors)
        lost = -np.diff(counts)
        t = np.arange(1, len(counts), dtype=np.float64)
        last, horizon = counts[-1], t[-1]
        self._first_churn = float(lost[0] / counts[0])

        def objective(log_theta: Array) -> tuple[float, Array]:
            alpha, beta = np.exp(log_theta)
            d_ab = digamma(alpha + beta)
            log_churn = _log_churn(alpha, beta, t)
            log_survive = _log_survival(alpha, beta, horizon)
            value = float(lost @ log_churn + last * log_survive)
            d_abt = digamma(alpha + beta + t)
            d_abh = digamma(alpha + beta + horizon)
            d_alpha = lost @ (digamma(alpha + 1) - digamma(alpha) - d_abt + d_ab) + last * (
                d_ab - d_abh
            )
            d_beta = lost @ (digamma(beta + t - 1) - digamma(beta) - d_abt + d_ab) + last * (
                digamma(beta + horizon) - digamma(beta) - d_abh + d_ab
            )
            return -value, -np.array([d_alpha * alpha, d_beta * beta])

        self._optimize(objective, n_customers=round(counts[0]), n_rows=len(counts))
        return self

    # -- predictions -------------------------------------------------------------------
    def survival(self, t: float | npt.ArrayLike) -> Array:
        """S(t) = B(α, β+t)/B(α, β): share of a cohort still active after t periods.

        Parameters
        ----------
        t
            Periods since acquisition (whole numbers ≥ 0); S(0) = 1.

        Returns
        -------
        numpy.ndarray
            Survival probabilities, one per ``t``.
        """
        self._check_fitted()
        periods = np.atleast_1d(_periods("t", t, 0))
        alpha, beta = self._theta()
        result: Array = np.exp(_log_survival(alpha, beta, periods))
        return result

    def retention_rate(self, t: float | npt.ArrayLike) -> Array:
        """r(t) = (β+t−1)/(α+β+t−1): share of those active in period t−1 who renew for t.

        Parameters
        ----------
        t
            Periods (whole numbers ≥ 1).

        Returns
        -------
        numpy.ndarray
            Retention rates, one per ``t``; they rise with t (FH 2007, eq. 8).
        """
        self._check_fitted()
        periods = np.atleast_1d(_periods("t", t, 1))
        alpha, beta = self._theta()
        result: Array = (beta + periods - 1) / (alpha + beta + periods - 1)
        return result

    def churn_probability(self, t: float | npt.ArrayLike) -> Array:
        """P(T = t) = B(α+1, β+t−1)/B(α, β): chance that a new customer's last period is t.

        Parameters
        ----------
        t
            Periods (whole numbers ≥ 1).

        Returns
        -------
        numpy.ndarray
            Probabilities, one per ``t`` (FH 2007, eq. 7).
        """
        self._check_fitted()
        periods = np.atleast_1d(_periods("t", t, 1))
        alpha, beta = self._theta()
        result: Array = np.exp(_log_churn(alpha, beta, periods))
        return result

    def expected_lifetime(self) -> float:
        """E[T]: the mean number of periods a new customer stays, counting the first.

        E[T] = E[1/θ] = (α+β−1)/(α−1) = 1 + β/(α−1) for α > 1.

        Returns
        -------
        float
            The mean lifetime in periods, or ``math.inf`` when α ≤ 1: the customers with
            θ near 0 then stay so long that the mean diverges (the median and any
            discounted value stay finite — see :meth:`survival` and
            :meth:`discounted_expected_residual_transactions`).
        """
        self._check_fitted()
        alpha, beta = self._theta()
        if alpha <= 1:
            return math.inf
        return float((alpha + beta - 1) / (alpha - 1))

    def discounted_expected_residual_transactions(
        self, discount_rate: float, renewals: float | npt.ArrayLike = 0
    ) -> Array:
        """DERT of a customer who has made ``renewals`` renewals (Fader & Hardie 2010, eq. 6).

        The expected number of future payments, discounted at ``discount_rate`` per
        period, standing just before the customer's next renewal decision (so the next
        payment, if made, is not discounted):

            DERT(d | α, β, n) = Σ_{t>n} S(t)/S(n) · (1+d)^{−(t−n−1)}
                              = B(α, β+n+1)/B(α, β+n) · ₂F₁(1, β+n+1; α+β+n+1; 1/(1+d)).

        Multiplied by the margin per period it gives the customer's expected residual
        lifetime value. It is evaluated as (1+d) E[(1−θ)/(d+θ)] over the customer's
        posterior θ ~ Beta(α, β+n) by quadrature (:func:`_beta_expectation`), agreeing
        with the series to about 1e-12; scipy's ``hyp2f1`` returns NaN for much of the
        parameter space (e.g. α ≥ 30 with d ≤ 0.1).

        Parameters
        ----------
        discount_rate
            d ≥ 0, per period. With d = 0 this is the expected number of further
            renewals, infinite when α ≤ 1.
        renewals
            n, renewals made so far (whole numbers ≥ 0; 0 for a customer just acquired).

        Returns
        -------
        numpy.ndarray
            DERT, one per value of ``renewals``.
        """
        self._check_fitted()
        if not (math.isfinite(discount_rate) and discount_rate >= 0):
            raise DataError(
                f"must be a finite number ≥ 0, got {discount_rate!r}", column="discount_rate"
            )
        n = np.atleast_1d(_periods("renewals", renewals, 0))
        alpha, beta = self._theta()
        d = float(discount_rate)
        if d == 0:
            # E[(1−θ)/θ] under Beta(α, β+n): the expected number of further renewals.
            value = (beta + n) / (alpha - 1) if alpha > 1 else np.full(n.shape, np.inf)
            return np.asarray(value, dtype=np.float64)
        log_d, log_1d = math.log(d), math.log1p(d)

        def log_h(u: Array) -> Array:
            # ln[(1−θ)/(d+θ)] with θ = expit(u): −ln(d + (1+d) e^u), overflow-free.
            out: Array = -np.logaddexp(log_d, log_1d + u)
            return out

        kink = log_d - log_1d
        unique, inverse = np.unique(n, return_inverse=True)
        values = np.array(
            [(1 + d) * _beta_expectation(alpha, beta + k, log_h, kink) for k in unique]
        )
        result: Array = values[inverse.reshape(n.shape)]
        return result
