"""Pareto/NBD: the Pareto / negative binomial distribution model.

Schmittlein, D. C., Morrison, D. G. & Colombo, R. (1987), "Counting Your Customers:
Who Are They and What Will They Do Next?", *Management Science* 33(1), 1–24; the
likelihood and the expressions below as derived in Fader, P. S. & Hardie, B. G. S.
(2005), "A Note on Deriving the Pareto/NBD Model and Related Expressions",
http://www.brucehardie.com/notes/009/.

Assumptions: while active, a customer buys as a Poisson process with rate λ; the
customer's unobserved lifetime is exponential with rate μ; λ varies across customers as
Gamma(r, α) and μ as Gamma(s, β), independently of each other. The likelihood of a
customer's (x, t_x, T) — repeat purchases, time of the last one, age — is (FH 2005)

    L = Γ(r+x) α^r β^s / Γ(r) · [ 1 / ((α+T)^{r+x} (β+T)^s) + s · I ],
    I = ∫_{t_x}^{T} (α+τ)^{−(r+x)} (β+τ)^{−(s+1)} dτ,

the second term being a death at τ in (t_x, T]. Fader & Hardie write I in closed form
with Gauss's ₂F₁, branching on α ≥ β (argument (α−β)/(α+·)) or α < β (argument
(β−α)/(β+·)); that difference of two hypergeometric terms overflows or cancels for heavy
buyers (lifetimes' ParetoNBDFitter for x > 300, CLVTools' P(alive) NaN). Here I is
evaluated with the same branch, in log space and without any hypergeometric function:
with c = min(α, β) and u = log((c+τ)/(c+t_x)), the integrand becomes
exp(−k₁u − k₂ log1p(ρ(e^u − 1))), ρ = (c+t_x)/(max(α, β)+t_x) ≤ 1, a log-concave
function that is analytic in the strip |Im u| < π. It is integrated by Gauss–Legendre
quadrature over the window where it is within e^{−40} of its maximum (found by Newton's
method, which is monotone on a concave exponent), so that x up to 10^5 and ages from
10^{−3} to 10^5 give finite, accurate values. The gradient is analytic: the derivatives
of log I are averages of −log(α+τ), −(r+x)/(α+τ), −log(β+τ) and −(s+1)/(β+τ) under the
same quadrature, and the two terms of L are combined with ``logaddexp``.

P(alive) is the share of the first term in L; the conditional expectation is
(FH 2005)

    E[Y(t) | x, t_x, T] = (r+x)(β+T) / ((α+T)(s−1)) · [1 − ((β+T)/(β+T+t))^{s−1}] · P(alive),

written with ``expm1`` so that s = 1 (its limit, a logarithm) needs no special case.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import digamma, gammaln

from cvm.models.base import Array, Objective, unique_rows
from cvm.models.data import RFM
from cvm.models.repeat import RepeatPurchaseModel

__all__ = ["ParetoNBDModel"]

#: Gauss–Legendre nodes and weights on [−1, 1]. On the window below, 24 nodes agree
#: with 96 to about 1e-13 in log I (tests/models/test_pareto_nbd.py checks it on extreme rows).
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(24)
#: The quadrature window keeps the integrand within exp(−_DROP) of its maximum.
_DROP = 40.0
#: Rows evaluated at once (bounds the node matrix to a few megabytes).
_CHUNK = 8192


def _exponent(u: Array, k1: Array, k2: Array, rho: Array) -> Array:
    """Log of the integrand of I in u: −k₁u − k₂ log1p(ρ(e^u − 1)), concave in u."""
    result: Array = -k1 * u - k2 * np.log1p(rho * np.expm1(u))
    return result


def _slope(u: Array, k1: Array, k2: Array, rho: Array) -> Array:
    """Differentiate :func:`_exponent` in u."""
    e = np.exp(u)
    result: Array = -k1 - k2 * (rho * e / (1.0 + rho * (e - 1.0)))
    return result


def _newton_edge(
    start: Array, target: Array, mode: Array, k1: Array, k2: Array, rho: Array, right: bool
) -> Array:
    """Move ``start`` towards the point where the concave exponent equals ``target``.

    ``start`` lies where the exponent is below ``target``, on one side of the ``mode``.
    Newton's steps on a concave function then approach the crossing monotonically
    without passing it (the tangent lies above the function), so every iterate stays
    between ``start`` and the crossing; iterates are also kept on their side of the mode.
    Stops once the exponent is within 1 of ``target`` (the window need not be exact).
    """
    edge = start.copy()
    todo = np.ones(len(edge), dtype=bool)
    for _ in range(200):
        idx = np.flatnonzero(todo)
        if len(idx) == 0:
            break
        here = edge[idx]
        gap = _exponent(here, k1[idx], k2[idx], rho[idx]) - target[idx]
        grad = _slope(here, k1[idx], k2[idx], rho[idx])
        with np.errstate(divide="ignore", invalid="ignore"):
            step = -gap / grad
        ok = np.isfinite(step)
        moved = np.where(ok, here + np.where(ok, step, 0.0), here)
        moved = np.maximum(moved, mode[idx]) if right else np.minimum(moved, mode[idx])
        edge[idx] = moved
        todo[idx[(gap > -1.0) | ~ok | (moved == here)]] = False
    return edge


def _log_death_integral(
    params: Array, x: Array, lo: Array, hi: Array, with_grad: bool
) -> tuple[Array, Array]:
    """Log I = log ∫_lo^hi (α+τ)^{−(r+x)} (β+τ)^{−(s+1)} dτ and its gradient.

    Returns ``(log_i, grad)``; ``grad`` has shape (4, n): d log I / d(r, α, s, β).
    Rows with ``hi <= lo`` (to double precision) have I = 0: log I = −inf, gradient 0.
    """
    r, alpha, s, beta = (float(v) for v in params)
    n = len(x)
    log_i = np.full(n, -np.inf)
    grad = np.zeros((4, n))
    death_first = beta <= alpha  # integrate in u = log((β+τ)/(β+lo)), else in α
    c, d = (beta, alpha) if death_first else (alpha, beta)
    span = np.log1p(np.maximum(hi - lo, 0.0) / (c + lo))
    live = span > 0
    if not np.any(live):
        return log_i, grad
    xs, lo_, upper = x[live], lo[live], span[live]
    p = r + xs  # exponent of (α+τ)
    q = s + 1.0  # exponent of (β+τ)
    k1 = (q if death_first else p) - 1.0  # coefficient of −u (e^u from dτ taken in)
    k2 = p if death_first else np.full_like(p, q)  # power of the other factor
    k1 = np.broadcast_to(k1, p.shape).astype(np.float64)
    rho = (c + lo_) / (d + lo_)

    # Mode of the concave exponent: 0 unless its slope at 0 is positive (k1 < −k2 ρ).
    with np.errstate(divide="ignore", invalid="ignore"):
        m = -k1 / k2
        mode = np.where((k1 + k2 * rho) < 0, np.log(m * (1 - rho) / (rho * (1 - m))), 0.0)
    mode = np.clip(np.where(np.isfinite(mode), mode, 0.0), 0.0, upper)
    top = _exponent(mode, k1, k2, rho)
    target = top - _DROP

    right = upper.copy()
    need = _exponent(upper, k1, k2, rho) < target
    if np.any(need):
        right[need] = _newton_edge(
            upper[need], target[need], mode[need], k1[need], k2[need], rho[need], right=True
        )
    left = np.zeros_like(upper)
    need = (mode > 0) & (_exponent(left, k1, k2, rho) < target)
    if np.any(need):
        left[need] = _newton_edge(
            left[need], target[need], mode[need], k1[need], k2[need], rho[need], right=False
        )

    half = (right - left) / 2
    u = (left + right)[:, None] / 2 + half[:, None] * _NODES[None, :]
    expo = _exponent(u, k1[:, None], k2[:, None], rho[:, None])
    weights = half[:, None] * _WEIGHTS[None, :] * np.exp(expo - top[:, None])
    total = weights.sum(axis=1)
    log_g_lo = -p * np.log(alpha + lo_) - q * np.log(beta + lo_)
    log_i[live] = log_g_lo + np.log(c + lo_) + top + np.log(total)
    if with_grad:
        share = weights / total[:, None]
        other = np.log1p(rho[:, None] * np.expm1(u))  # log((d+τ)/(d+lo))
        ell_alpha, ell_beta = (other, u) if death_first else (u, other)
        grad[0, live] = -np.log(alpha + lo_) - (share * ell_alpha).sum(axis=1)
        grad[1, live] = -p / (alpha + lo_) * (share * np.exp(-ell_alpha)).sum(axis=1)
        grad[2, live] = -np.log(beta + lo_) - (share * ell_beta).sum(axis=1)
        grad[3, live] = -q / (beta + lo_) * (share * np.exp(-ell_beta)).sum(axis=1)
    return log_i, grad


def _log_likelihood_parts(
    params: Array, x: Array, t_x: Array, t: Array, with_grad: bool
) -> tuple[Array, Array, Array]:
    """Per-customer log L, the log of its "alive at T" term, and the gradient of log L.

    The gradient (zeros unless ``with_grad``) has shape (4, n), in (r, α, s, β).
    """
    r, alpha, s, beta = (float(v) for v in params)
    p = r + x
    log_c = gammaln(p) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    alive = -p * np.log(alpha + t) - s * np.log(beta + t)
    chunks = [
        _log_death_integral(
            params, x[i : i + _CHUNK], t_x[i : i + _CHUNK], t[i : i + _CHUNK], with_grad
        )
        for i in range(0, max(len(x), 1), _CHUNK)
    ]
    log_i = np.concatenate([c[0] for c in chunks])
    dead = np.log(s) + log_i
    mix = np.logaddexp(alive, dead)
    grad = np.zeros((4, len(x)))
    if with_grad:
        w_alive, w_dead = np.exp(alive - mix), np.exp(dead - mix)
        grad_dead = np.concatenate([c[1] for c in chunks], axis=1)
        grad_dead[2] += 1.0 / s
        grad[0] = digamma(p) - digamma(r) + np.log(alpha) - w_alive * np.log(alpha + t)
        grad[1] = r / alpha - w_alive * p / (alpha + t)
        grad[2] = np.log(beta) - w_alive * np.log(beta + t)
        grad[3] = s / beta - w_alive * s / (beta + t)
        grad += w_dead * grad_dead
    return log_c + mix, log_c + alive, grad


def _growth(shape: Array | float, log_ratio: Array) -> Array:
    """(1 − exp(−a·u)) / a, with its limit u at a = 0 (a = s − 1, u = log of a ratio ≥ 1)."""
    a = np.asarray(shape, dtype=np.float64)
    small = np.abs(a) < 1e-10
    safe = np.where(small, 1.0, a)
    result: Array = np.where(
        small, log_ratio * (1 - a * log_ratio / 2), -np.expm1(-safe * log_ratio) / safe
    )
    return result


class ParetoNBDModel(RepeatPurchaseModel):
    """The Pareto/NBD model of repeat purchasing (Schmittlein, Morrison & Colombo 1987).

    Parameters
    ----------
    penalizer, n_starts, max_iter, seed
        See :class:`~cvm.models.base.BaseModel`.

    Attributes
    ----------
    params_ : dict
        ``r``, ``alpha`` (purchase rate ~ Gamma(r, alpha)) and ``s``, ``beta`` (dropout
        rate ~ Gamma(s, beta)).
    log_likelihood_ : float
        Maximised log-likelihood.
    n_customers_ : int
        Customers fitted on.

    Examples
    --------
    >>> model = ParetoNBDModel().fit(summary)          # doctest: +SKIP
    >>> model.expected_purchases(summary, t=39)        # doctest: +SKIP
    """

    param_names = ("r", "alpha", "s", "beta")

    def _start(self) -> Array:
        return np.array([0.5, self._scale, 0.5, self._scale])

    def fit(self, data: Any) -> ParetoNBDModel:
        """Fit by maximum likelihood.

        Parameters
        ----------
        data
            A DataFrame or mapping with ``frequency``, ``recency`` and ``t`` (or ``T``)
            per customer, e.g. :func:`cvm.features.btyd_summary`'s output.

        Returns
        -------
        ParetoNBDModel
            ``self``, fitted.
        """
        x, t_x, t, weights = self._prepare(data)
        self._fit_rows(self._objective, x, t_x, t, weights)
        return self

    @staticmethod
    def _objective(x: Array, t_x: Array, t: Array, weights: Array) -> Objective:
        """Build the negative log-likelihood over log-parameters, with its gradient."""

        def objective(log_theta: Array) -> tuple[float, Array]:
            theta = np.exp(log_theta)
            with np.errstate(over="ignore", under="ignore"):
                ll, _, grad = _log_likelihood_parts(theta, x, t_x, t, with_grad=True)
            value = -float(weights @ ll)
            return value, -(grad @ weights) * theta

        return objective

    # -- predictions -------------------------------------------------------------------
    def _alive(self, rfm: RFM) -> Array:
        """P(alive): the share of the "alive at T" term in L (identical rows computed once)."""
        (x, t_x, t), _, inverse = unique_rows(rfm.frequency, rfm.recency, rfm.age)
        with np.errstate(over="ignore", under="ignore"):
            ll, alive, _ = _log_likelihood_parts(self._theta(), x, t_x, t, with_grad=False)
        result: Array = np.clip(np.exp(alive - ll), 0.0, 1.0)[inverse]
        return result

    def _while_alive(self, x: Array, age: Array, horizon: npt.ArrayLike) -> Array:
        """Return expected purchases in the next ``horizon`` of a customer alive now (FH 2005)."""
        r, alpha, s, beta = self._theta()
        t = np.asarray(horizon, dtype=np.float64)
        rate = (r + x) / (alpha + age)
        result: Array = rate * (beta + age) * _growth(s - 1.0, np.log1p(t / (beta + age)))
        return result

    def expected_purchases_new(self, t: float | npt.ArrayLike) -> Array:
        """E[X(t)] for a customer just acquired (Fader & Hardie 2005)."""
        self._check_fitted()
        r, alpha, s, beta = self._theta()
        horizon = np.asarray(t, dtype=np.float64)
        result: Array = np.asarray(
            r / alpha * beta * _growth(s - 1.0, np.log1p(horizon / beta)), dtype=np.float64
        )
        return result
