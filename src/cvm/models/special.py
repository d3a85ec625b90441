"""Numerically careful special functions shared by the discrete-time models.

Log rising factorials (Pochhammer symbols) and the scaled change of a beta-function
ratio, accurate where differences of ``gammaln``/``betaln`` lose precision (large
arguments, γ near 1). Used by the BG/BB and the sBG.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.special import bernoulli, comb, gammaln

from cvm.models.base import Array

__all__ = ["log_pochhammer", "scaled_change"]

#: Stirling-series coefficients B_2k / (2k (2k−1)), k = 1 … 8.
_STIRLING = (
    1 / 12,
    -1 / 360,
    1 / 1260,
    -1 / 1680,
    1 / 1188,
    -691 / 360360,
    1 / 156,
    -3617 / 122400,
)

#: Where the asymptotic expansion of lnΓ(u+1) − lnΓ(u+γ) takes over, in units of 1 + γ.
_ASYMPTOTIC_FROM = 40.0
_N_TERMS = 10


def log_pochhammer(z: npt.ArrayLike, m: npt.ArrayLike) -> Array:
    """Return ln Γ(z+m)/Γ(z) (the log rising factorial) for z > 0, m ≥ 0.

    ``gammaln(z+m) − gammaln(z)`` (and scipy's ``betaln``) lose absolute accuracy for
    large z — about 1e-6 in the log at z ≈ 1e8, more than the whole quantity when m is
    small. For z ≥ 10 the Stirling series is differenced term by term instead,
    (z−½) log1p(m/z) + m ln(z+m) − m + Σ_k c_k ((z+m)^{1−2k} − z^{1−2k}), accurate to
    rounding at any size.
    """
    z_arr, m_arr = np.broadcast_arrays(np.asarray(z, np.float64), np.asarray(m, np.float64))
    big = z_arr >= 10
    zs = np.where(big, z_arr, 10.0)
    end = zs + m_arr
    stirling = (zs - 0.5) * np.log1p(m_arr / zs) + m_arr * np.log(end) - m_arr
    power_end, power_z = 1.0 / end, 1.0 / zs
    square_end, square_z = power_end * power_end, power_z * power_z
    for c in _STIRLING:
        stirling = stirling + c * (power_end - power_z)
        power_end, power_z = power_end * square_end, power_z * square_z
    zd = np.where(big, 1.0, z_arr)
    direct = gammaln(zd + m_arr) - gammaln(zd)
    result: Array = np.where(big, stirling, direct)
    return result


def _expansion_coefficients(gamma: float) -> list[float]:
    """Return q_k = c_k / (1−γ), k = 1 … 10, of lnΓ(u+1) − lnΓ(u+γ) ~ (1−γ) ln u + Σ c_k u^{−k}.

    c_k = (−1)^{k+1} (B_{k+1}(1) − B_{k+1}(γ)) / (k (k+1)) with B the Bernoulli
    polynomials; writing B_{k+1}(1) − B_{k+1}(γ) = Σ_j b_j (1 − γ^j) and dividing each
    1 − γ^j by 1 − γ exactly (1 + γ + … + γ^{j−1}) keeps q_k accurate as γ → 1.
    """
    out = []
    for k in range(1, _N_TERMS + 1):
        degree = k + 1
        numbers = bernoulli(degree)
        total = 0.0
        for j in range(1, degree + 1):
            b_j = comb(degree, j) * numbers[degree - j]
            total += b_j * sum(gamma**i for i in range(j))
        out.append((-1) ** (k + 1) * total / (k * (k + 1)))
    return out


def scaled_change(gamma: float, z: Array, m: Array) -> Array:
    """Return (D(z+m) − D(z)) / (1−γ), D(u) = lnΓ(u+1) − lnΓ(u+γ), for z ≥ 0, m ≥ 0.

    Beyond u = 40 (1+γ) the expansion D(u) = (1−γ) ln u + Σ c_k u^{−k} is differenced
    as log1p(gap/u) plus the series, exact to rounding even where the change is tiny next
    to lnΓ(u) (δ ≫ 1: a population that hardly ever drops out). Below it, for γ near 1
    the whole-number steps D(u+1) − D(u) = log1p((1−γ)/(u+γ)) are summed divided by
    1 − γ, which stays exact as γ → 1 (the limit is ψ(z+m+1) − ψ(z+1)); otherwise the
    change is a difference of log rising factorials (:func:`log_pochhammer`).
    """
    z, m = np.broadcast_arrays(np.asarray(z, np.float64), np.asarray(m, np.float64))
    one_minus = 1.0 - gamma
    threshold = _ASYMPTOTIC_FROM * (1.0 + gamma)
    if abs(one_minus) >= 0.5:
        mid = np.minimum(np.maximum(z, threshold), z + m)
        near = (log_pochhammer(z + 1, mid - z) - log_pochhammer(z + gamma, mid - z)) / one_minus
        gap = np.where(mid == z, m, (z + m) - mid)
    else:
        steps = np.minimum(m, np.maximum(0.0, np.ceil(threshold - z)))
        j = np.arange(int(steps.max()) if steps.size else 0, dtype=np.float64)
        u = z[..., None] + j
        y = one_minus / (u + gamma)
        safe = np.where(y == 0, 1.0, y)
        ratio = np.where(np.abs(y) < 1e-4, 1 - y / 2 + y * y / 3, np.log1p(y) / safe)
        near = np.sum(np.where(j < steps[..., None], ratio / (u + gamma), 0.0), axis=-1)
        mid, gap = z + steps, m - steps
    end = mid + gap
    base = np.where(gap > 0, mid, 1.0)
    tip = np.where(gap > 0, end, 1.0)
    far = np.log1p(gap / base)
    for k, q in enumerate(_expansion_coefficients(gamma), start=1):
        far = far + q * (tip ** (-k) - base ** (-k))
    result: Array = near + far
    return result
