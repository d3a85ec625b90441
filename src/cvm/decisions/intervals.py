"""Confidence intervals for measured uplift: differences of proportions and of means.

Every function works on numpy arrays of sufficient statistics (counts, means and
variances per group), so a campaign of any size is measured from a handful of
numbers the store's engine aggregates.

Proportions
    :func:`proportion_interval` gives each group's interval — Wilson's score interval
    (Wilson 1927) or the Wald interval — and :func:`mover` combines the intervals of
    independent proportions into an interval for a linear combination of them, by the
    method of variance estimates recovery (MOVER; Zou & Donner 2008). For one
    difference ``p₁ − p₂`` of Wilson intervals this *is* Newcombe's hybrid score
    interval (Newcombe 1998, method 10), the interval his comparison of eleven methods
    recommends; for Wald intervals it is the Wald interval of the difference. For
    several strata (an action measured in several campaigns) it gives the stratified
    difference ``Σ wₖ (p₁ₖ − p₂ₖ)``.

Means
    :func:`welch_interval` is Welch's interval for a linear combination of means of
    groups with unequal variances, with the Welch–Satterthwaite degrees of freedom
    (Welch 1947; Satterthwaite 1946). For one difference of two means it is the usual
    Welch t interval.

References
----------
Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
inference. Journal of the American Statistical Association 22(158), 209–212.

Newcombe, R. G. (1998). Interval estimation for the difference between independent
proportions: comparison of eleven methods. Statistics in Medicine 17(8), 873–890.

Zou, G. Y. & Donner, A. (2008). Construction of confidence limits about effect
measures: a general approach. Statistics in Medicine 27(10), 1693–1702.

Welch, B. L. (1947). The generalization of 'Student's' problem when several different
population variances are involved. Biometrika 34(1–2), 28–35.

Satterthwaite, F. E. (1946). An approximate distribution of estimates of variance
components. Biometrics Bulletin 2(6), 110–114.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = ["mover", "normal_quantile", "proportion_interval", "welch_interval"]

FloatArray = npt.NDArray[np.float64]
ProportionMethod = Literal["newcombe", "wald"]


def normal_quantile(confidence: float) -> float:
    """Return z such that ±z holds ``confidence`` of a standard normal distribution.

    Raises
    ------
    ValueError
        If ``confidence`` is not strictly between 0 and 1.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def proportion_interval(
    successes: npt.ArrayLike, n: npt.ArrayLike, confidence: float, method: ProportionMethod
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return each proportion's estimate and interval.

    Parameters
    ----------
    successes, n
        Successes and trials per group (``n > 0``).
    confidence
        Confidence level, e.g. 0.95.
    method
        ``"newcombe"``: Wilson's score interval (the building block of Newcombe's
        hybrid score interval of a difference); ``"wald"``: p̂ ± z √(p̂(1 − p̂)/n).

    Returns
    -------
    (p, low, high)
        Arrays of the estimates and their limits.
    """
    x = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    z = normal_quantile(confidence)
    p = x / m
    if method == "wald":
        half = z * np.sqrt(p * (1.0 - p) / m)
        return p, p - half, p + half
    z2 = z * z
    centre = (p + z2 / (2.0 * m)) / (1.0 + z2 / m)
    half = z / (1.0 + z2 / m) * np.sqrt(p * (1.0 - p) / m + z2 / (4.0 * m * m))
    return p, centre - half, centre + half


def mover(
    estimates: npt.ArrayLike,
    lows: npt.ArrayLike,
    highs: npt.ArrayLike,
    coefficients: npt.ArrayLike,
) -> tuple[float, float, float]:
    """Combine intervals of independent parameters into one for ``Σ cᵢ θᵢ`` (MOVER).

    The limits are recovered from each parameter's own limits (Zou & Donner 2008)::

        L = θ̂ − √ Σ (cᵢθ̂ᵢ − min(cᵢlᵢ, cᵢuᵢ))²
        U = θ̂ + √ Σ (max(cᵢlᵢ, cᵢuᵢ) − cᵢθ̂ᵢ)²

    With Wilson intervals and coefficients (1, −1) this is Newcombe's (1998) method 10.

    Returns
    -------
    (estimate, low, high)
    """
    theta = np.asarray(estimates, dtype=np.float64)
    c = np.asarray(coefficients, dtype=np.float64)
    lo = c * np.asarray(lows, dtype=np.float64)
    hi = c * np.asarray(highs, dtype=np.float64)
    scaled = c * theta
    estimate = float(scaled.sum())
    below = float(np.sqrt(np.sum((scaled - np.minimum(lo, hi)) ** 2)))
    above = float(np.sqrt(np.sum((np.maximum(lo, hi) - scaled) ** 2)))
    return estimate, estimate - below, estimate + above


def welch_interval(
    means: npt.ArrayLike,
    variances: npt.ArrayLike,
    n: npt.ArrayLike,
    coefficients: npt.ArrayLike,
    confidence: float,
) -> tuple[float, float, float]:
    """Welch's interval for ``Σ cᵢ μᵢ`` from group means, sample variances and sizes.

    The estimate's variance is ``V = Σ cᵢ² sᵢ²/nᵢ`` and its degrees of freedom the
    Welch–Satterthwaite value ``V² / Σ (cᵢ² sᵢ²/nᵢ)² / (nᵢ − 1)``; the interval is
    ``estimate ± t(df) √V``. When every group's variance is 0 the interval is the
    estimate itself.

    Parameters
    ----------
    means, variances, n
        Per group: mean, sample variance (denominator ``n − 1``) and size (``n ≥ 2``).
    coefficients
        Weight of each group's mean (e.g. ``(1, −1)`` for a difference).
    confidence
        Confidence level.

    Returns
    -------
    (estimate, low, high)
    """
    c = np.asarray(coefficients, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    s2 = np.asarray(variances, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    estimate = float(np.sum(c * mu))
    parts = c * c * s2 / m
    variance = float(parts.sum())
    if variance <= 0.0:
        return estimate, estimate, estimate
    df = variance**2 / float(np.sum(parts**2 / (m - 1.0)))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df)) * math.sqrt(variance)
    return estimate, estimate - half, estimate + half
