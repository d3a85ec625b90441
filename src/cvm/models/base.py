"""What every cvm model shares: the estimator contract, estimation and persistence.

The contract follows scikit-learn: ``__init__`` only stores keyword-only settings;
``fit`` validates, learns and returns ``self``; learned state ends in ``_``
(``params_``, ``log_likelihood_``, ``n_customers_`` …); every prediction first checks
that the model is fitted and raises :class:`~cvm.errors.NotFittedError` otherwise.

Estimation is maximum likelihood on compressed sufficient statistics (identical rows
weighted, not repeated), in log-parameter space (every parameter is positive), with
L-BFGS-B from several starting points, an optional L2 penalty on the log-parameters,
and standard errors from the observed information (the Hessian of the negative
log-likelihood, by central differences of the analytic gradient, computed on first use).

Large data are fitted in two stages. L-BFGS-B first maximises the likelihood of a random
subsample of the rows, weighted up to the full size (an unbiased estimate of the full
log-likelihood); its optimum and Hessian then start a quasi-Newton refinement on all the
rows, which needs only a few evaluations of the full likelihood because the subsample's
Hessian is already close to the full one. The refinement stops when the Newton
decrement shows that no step can raise the log-likelihood by more than 1e-6; if it
cannot get there, L-BFGS-B continues on the full data from the subsample's optimum.
The answer is the full-data maximum either way; the subsample only saves iterations.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize

from cvm.errors import ConvergenceError, DataError, ModelError, NotFittedError

__all__ = [
    "Array",
    "BaseModel",
    "compress",
    "distinct",
    "load_model",
    "model_from_dict",
    "unique_rows",
]

Array = npt.NDArray[np.float64]

#: Objective: log-parameters → (negative log-likelihood, its gradient).
Objective = Callable[[Array], tuple[float, Array]]

_REGISTRY: dict[str, type[BaseModel]] = {}

#: Above this many (compressed) rows, fits start from a subsample's optimum.
WARM_START_ROWS = 30_000
#: Rows in that subsample (in expectation).
WARM_SAMPLE_ROWS = 10_000
#: The refinement stops when a Newton step could gain at most this much log-likelihood.
_DECREMENT_TOL = 1e-6


def _codes(values: Array) -> tuple[npt.NDArray[np.int64], int]:
    """Integer codes of a column and how many codes there can be.

    Whole numbers in a modest range (day counts, purchase counts) are their own codes,
    offset by the minimum; anything else is hashed with ``pandas.factorize``.
    """
    low, high = float(values.min()), float(values.max())
    if high - low < 2**24 and np.array_equal(values, np.floor(values)):
        return (values - low).astype(np.int64), int(high - low) + 1
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return codes.astype(np.int64), len(uniques)


def distinct(values: Array) -> tuple[Array, npt.NDArray[np.intp]]:
    """Distinct values of a column and, per row, the position of its value among them.

    Whole numbers in a modest range are binned directly (linear time, values sorted);
    anything else is hashed with ``pandas.factorize`` (order of first appearance).
    """
    if len(values) == 0:
        return values.copy(), np.zeros(0, dtype=np.intp)
    low, high = float(values.min()), float(values.max())
    if high - low < 2**22 and np.array_equal(values, np.floor(values)):
        offsets = (values - low).astype(np.intp)
        present = np.bincount(offsets, minlength=int(high - low) + 1) > 0
        position = np.cumsum(present) - 1
        return low + np.flatnonzero(present).astype(np.float64), position[offsets]
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return np.asarray(uniques, dtype=np.float64), codes.astype(np.intp)


def compress(*columns: npt.ArrayLike) -> tuple[list[Array], Array]:
    """Collapse identical rows into unique rows and their counts (see :func:`unique_rows`).

    Returns
    -------
    (columns, weights)
        The unique rows, column by column, and how many customers each stands for.
    """
    unique, counts, _ = unique_rows(*columns)
    return unique, counts


def unique_rows(
    *columns: npt.ArrayLike,
) -> tuple[list[Array], Array, npt.NDArray[np.intp]]:
    """Collapse identical rows into unique rows, their counts and each row's unique row.

    Rows are keyed, not sorted: each column becomes integer codes (see :func:`_codes`),
    the codes are combined into one integer key per row (hashed again with
    ``pandas.factorize`` whenever the key could overflow), and the key is hashed once
    more — linear time. Unique rows keep the order of their first appearance.

    Returns
    -------
    (columns, counts, inverse)
        The unique rows column by column, how many rows each stands for, and for every
        input row the position of its unique row (``columns[0][inverse]`` restores
        the first input column).
    """
    arrays = [np.asarray(c, dtype=np.float64) for c in columns]
    if not arrays or len(arrays[0]) == 0:
        return arrays, np.zeros(0), np.zeros(0, dtype=np.intp)
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise DataError("cannot compress rows with missing or infinite values")
    key, span = _codes(arrays[0])
    for array in arrays[1:]:
        codes, size = _codes(array)
        if span * size >= 2**62:
            factorised, uniques = pd.factorize(key)
            key, span = factorised.astype(np.int64), len(uniques)
        key = key * size + codes
        span *= size
    factorised, uniques = pd.factorize(key)
    n_unique = len(uniques)
    counts = np.bincount(factorised, minlength=n_unique).astype(np.float64)
    first = np.empty(n_unique, dtype=np.int64)
    first[factorised[::-1]] = np.arange(len(factorised) - 1, -1, -1)
    return [a[first] for a in arrays], counts, factorised.astype(np.intp)


def as_array(name: str, values: npt.ArrayLike) -> Array:
    """Convert input to a 1-d float array; reject NaN and infinity with the field named."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise DataError(f"expected a 1-d array, got shape {array.shape}", column=name)
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise DataError(f"value at position {bad} is not finite", column=name)
    return array


class BaseModel(ABC):
    """Base class of the cvm models.

    Parameters
    ----------
    penalizer
        L2 penalty on the log-parameters (0 = plain maximum likelihood).
    n_starts
        Most optimisations to run: after the first (from a moment-based start), jittered
        restarts are tried only while no run has converged inside the bounds; the best
        is kept.
    max_iter
        Iterations allowed to each optimisation.
    seed
        Seed of the jittered starting points.
    """

    #: Names of the parameters, in the order of the optimisation vector.
    param_names: ClassVar[tuple[str, ...]] = ()

    params_: dict[str, float]
    log_likelihood_: float
    n_customers_: int
    n_rows_: int
    converged_: bool
    _covariance: Array | None = None
    _information: Callable[[], Array] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.param_names:
            _REGISTRY[cls.__name__] = cls

    def __init__(
        self, *, penalizer: float = 0.0, n_starts: int = 3, max_iter: int = 2000, seed: int = 0
    ) -> None:
        self.penalizer = penalizer
        self.n_starts = n_starts
        self.max_iter = max_iter
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        """Return the settings given to ``__init__``."""
        return {
            "penalizer": self.penalizer,
            "n_starts": self.n_starts,
            "max_iter": self.max_iter,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        if self.is_fitted:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
            return f"{type(self).__name__}({shown})"
        return f"{type(self).__name__}(unfitted)"

    # -- fitted state ----------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` (or ``load``) has set the parameters."""
        return hasattr(self, "params_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() first")

    def _theta(self) -> Array:
        self._check_fitted()
        return np.array([self.params_[n] for n in self.param_names], dtype=np.float64)

    @property
    def aic_(self) -> float:
        """Akaike information criterion."""
        self._check_fitted()
        return 2 * len(self.param_names) - 2 * self.log_likelihood_

    @property
    def bic_(self) -> float:
        """Bayesian information criterion (n = customers)."""
        self._check_fitted()
        k = len(self.param_names)
        return k * math.log(max(self.n_customers_, 1)) - 2 * self.log_likelihood_

    @property
    def covariance_(self) -> Array:
        """Covariance of the log-parameters: the inverse observed information.

        Computed on first use (a central-difference Hessian of the analytic gradient,
        2 × (number of parameters) likelihood evaluations over the fitted rows).
        """
        self._check_fitted()
        if self._covariance is None:
            if self._information is None:
                raise ModelError(f"this {type(self).__name__} has no covariance")
            self._covariance = self._information()
            self._information = None  # releases the fitted rows
        return self._covariance

    @covariance_.setter
    def covariance_(self, value: npt.ArrayLike) -> None:
        self._covariance = np.asarray(value, dtype=np.float64)
        self._information = None

    @property
    def standard_errors_(self) -> dict[str, float]:
        """Standard errors of the parameters (delta method from the log scale)."""
        theta = self._theta()
        log_se = np.sqrt(np.clip(np.diag(self.covariance_), 0.0, None))
        return {n: float(v) for n, v in zip(self.param_names, theta * log_se, strict=True)}

    def confidence_intervals(self, level: float = 0.95) -> dict[str, tuple[float, float]]:
        """Return confidence intervals, symmetric on the log scale (always positive)."""
        from scipy.stats import norm

        theta = self._theta()
        z = float(norm.ppf(0.5 + level / 2))
        log_se = np.sqrt(np.clip(np.diag(self.covariance_), 0.0, None))
        low, high = theta * np.exp(-z * log_se), theta * np.exp(z * log_se)
        return {
            n: (float(lo), float(hi)) for n, lo, hi in zip(self.param_names, low, high, strict=True)
        }

    def summary(self) -> dict[str, dict[str, float]]:
        """Return parameter, standard error and 95 % interval for every parameter."""
        ses, cis = self.standard_errors_, self.confidence_intervals()
        return {
            n: {"estimate": v, "se": ses[n], "lower_95": cis[n][0], "upper_95": cis[n][1]}
            for n, v in self.params_.items()
        }

    # -- estimation -------------------------------------------------------------------
    @abstractmethod
    def _start(self) -> Array:
        """Return a good starting point (natural parameter scale)."""

    def _fit_rows(
        self,
        builder: Callable[..., Objective],
        *columns: Array,
    ) -> None:
        """Fit on compressed rows: ``columns`` end with the weights; see :meth:`_optimize`.

        ``builder(*columns)`` returns the objective over the given rows. Above
        :data:`WARM_START_ROWS` rows it is also built over a seeded random subsample,
        weighted up to the full size, whose optimum starts the full fit.
        """
        weights = columns[-1]
        warm: Objective | None = None
        if len(weights) > WARM_START_ROWS:
            # Poisson sampling with probability proportional to weight (capped at 1),
            # reweighted by 1/probability: heavy rows are always kept, and the
            # subsample's log-likelihood is an unbiased estimate of the full one.
            chance = np.minimum(1.0, weights * (WARM_SAMPLE_ROWS / weights.sum()))
            keep = np.random.default_rng(self.seed).random(len(weights)) < chance
            sample = [c[keep] for c in columns[:-1]]
            warm = builder(*sample, weights[keep] / chance[keep])
        self._optimize(
            builder(*columns), n_customers=int(weights.sum()), n_rows=len(weights), warm=warm
        )

    def _optimize(
        self,
        objective: Objective,
        n_customers: int,
        n_rows: int,
        warm: Objective | None = None,
    ) -> None:
        """Minimise ``objective`` over log-parameters and store the fitted state.

        ``warm``, an objective over a weighted subsample of the rows, gives the full fit
        its starting point and starting Hessian (see the module docstring).

        Raises
        ------
        ConvergenceError
            If no start reaches a finite optimum.
        """
        penalised = self._penalise(objective)
        best: optimize.OptimizeResult | None = None
        if warm is not None:
            warm_best = self._multistart(
                self._penalise(warm), np.log(self._start()), tolerance=(1e-10, 1e-6)
            )
            if warm_best is not None:
                best = self._refine(penalised, warm_best.x, self._hessian(warm, warm_best.x))
                if best is None:
                    best = self._multistart(penalised, warm_best.x)
        if best is None:
            best = self._multistart(penalised, np.log(self._start()))
        if best is None:
            raise ConvergenceError(
                f"{type(self).__name__} found no finite likelihood from {self.n_starts} "
                "starts; check the data (are there repeat purchases?) or try penalizer=0.01"
            )
        self.params_ = {n: float(v) for n, v in zip(self.param_names, np.exp(best.x), strict=True)}
        value, grad = objective(best.x)
        self.log_likelihood_ = -float(value)
        self.n_customers_ = n_customers
        self.n_rows_ = n_rows
        self.converged_ = self._converged(best)
        at = best.x.copy()
        at_grad = grad + 2 * self.penalizer * at
        self._covariance = None
        self._information = lambda: self._invert(self._hessian(penalised, at, at_grad))
        if np.any(np.abs(best.x) > 19.5):
            raise ConvergenceError(
                f"{type(self).__name__}: a parameter ran to the edge of its range "
                f"({self.params_}); the data may not identify the model — try "
                "penalizer=0.01 or more customers"
            )

    def _penalise(self, objective: Objective) -> Objective:
        """Add the L2 penalty; map non-finite values to a huge value and a zero gradient."""

        def penalised(log_theta: Array) -> tuple[float, Array]:
            value, grad = objective(log_theta)
            if self.penalizer:
                value += self.penalizer * float(log_theta @ log_theta)
                grad = grad + 2 * self.penalizer * log_theta
            if not np.isfinite(value) or not np.all(np.isfinite(grad)):
                return 1e300, np.zeros_like(log_theta)
            return value, grad

        return penalised

    def _multistart(
        self,
        objective: Objective,
        start: Array,
        tolerance: tuple[float, float] = (1e-14, 1e-9),
    ) -> optimize.OptimizeResult | None:
        """L-BFGS-B from ``start``, then jittered restarts while none has converged.

        ``tolerance`` is L-BFGS-B's (ftol, gtol); a warm start's stage needs less.
        """
        rng = np.random.default_rng(self.seed)
        best: optimize.OptimizeResult | None = None
        for attempt in range(max(1, self.n_starts)):
            x0 = start if attempt == 0 else start + rng.normal(0.0, 0.5, start.shape)
            result = optimize.minimize(
                objective,
                x0,
                jac=True,
                method="L-BFGS-B",
                bounds=[(-20.0, 20.0)] * len(start),
                options={"maxiter": self.max_iter, "ftol": tolerance[0], "gtol": tolerance[1]},
            )
            if (
                np.isfinite(result.fun)
                and result.fun < 1e299
                and (best is None or result.fun < best.fun)
            ):
                best = result
            if best is not None and self._converged(best) and np.all(np.abs(best.x) < 19.5):
                break  # converged inside the bounds: further starts are not needed
        return best

    @staticmethod
    def _refine(
        objective: Objective, x0: Array, hessian: Array, max_iter: int = 50
    ) -> optimize.OptimizeResult | None:
        """Quasi-Newton (BFGS-updated) steps from ``x0`` with a starting Hessian.

        Returns the optimum once the Newton decrement gᵀH⁻¹g / 2 (the log-likelihood a
        Newton step could still gain) is below :data:`_DECREMENT_TOL`, or ``None`` when
        the Hessian is not positive definite or a step fails (the caller falls back to
        L-BFGS-B).
        """
        x = x0.copy()
        h = (hessian + hessian.T) / 2
        value, grad = objective(x)
        for _ in range(max_iter):
            if not np.isfinite(value) or value >= 1e299:
                return None
            try:
                chol = np.linalg.cholesky(h)
            except np.linalg.LinAlgError:
                return None
            step = -np.linalg.solve(chol.T, np.linalg.solve(chol, grad))
            decrement = float(-grad @ step)
            if decrement / 2 < _DECREMENT_TOL:
                return optimize.OptimizeResult(x=x, fun=value, jac=grad, success=True, nit=0)
            length = 1.0
            while True:
                moved = x + length * step
                if np.all(np.abs(moved) <= 20.0):
                    new_value, new_grad = objective(moved)
                    if new_value <= value - 1e-4 * length * decrement:
                        break
                length /= 2
                if length < 1e-6:
                    return None
            s_k, y_k = moved - x, new_grad - grad
            if s_k @ y_k > 0:  # BFGS update keeps h positive definite
                hs = h @ s_k
                h = h - np.outer(hs, hs) / (s_k @ hs) + np.outer(y_k, y_k) / (y_k @ s_k)
            x, value, grad = moved, new_value, new_grad
        return None

    @staticmethod
    def _converged(result: optimize.OptimizeResult) -> bool:
        """Accept the optimiser's own verdict, or a gradient that is flat at its stop.

        At our tight tolerances L-BFGS-B often ends with an "abnormal line search" at the
        optimum, where rounding in a sum over millions of rows hides further gains. The
        gradient then is flat: below 1e-3, or — in units that do not grow with the data
        — its Newton decrement under L-BFGS-B's inverse-Hessian estimate is below 1e-6.
        """
        if bool(result.success) or float(np.max(np.abs(result.jac))) < 1e-3:
            return True
        inverse = getattr(result, "hess_inv", None)
        if inverse is None:
            return False
        grad = np.asarray(result.jac, dtype=np.float64)
        matvec = getattr(inverse, "matvec", None)
        step = np.asarray(matvec(grad) if matvec is not None else inverse @ grad)
        return bool(0.0 <= float(grad @ step) / 2 < _DECREMENT_TOL)

    @staticmethod
    def _hessian(objective: Objective, x: Array, grad: Array | None = None) -> Array:
        """Hessian of ``objective`` at ``x`` by finite differences of its gradient.

        Central differences (2k gradients); forward differences (k gradients) when the
        gradient at ``x`` is given — accurate to about 1e-5 relative with the steps used,
        ample for standard errors.
        """
        k = len(x)
        hessian = np.empty((k, k))
        for i in range(k):
            step = 1e-5 * max(1.0, abs(x[i]))
            up = x.copy()
            up[i] += step
            if grad is not None:
                hessian[i] = (objective(up)[1] - grad) / step
                continue
            down = x.copy()
            down[i] -= step
            hessian[i] = (objective(up)[1] - objective(down)[1]) / (2 * step)
        result: Array = (hessian + hessian.T) / 2
        return result

    @staticmethod
    def _invert(hessian: Array) -> Array:
        """Inverse of the observed information (NaN when it is singular)."""
        try:
            covariance: Array = np.asarray(np.linalg.inv(hessian), dtype=np.float64)
        except np.linalg.LinAlgError:
            covariance = np.full(hessian.shape, np.nan)
        return covariance

    # -- persistence ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return the fitted model as plain data (JSON-ready)."""
        self._check_fitted()
        return {
            "model": type(self).__name__,
            "settings": self.get_params(),
            "params": self.params_,
            "log_likelihood": self.log_likelihood_,
            "n_customers": self.n_customers_,
            "n_rows": self.n_rows_,
            "converged": self.converged_,
            "covariance": self.covariance_.tolist(),
            "versions": {p: version(p) for p in ("cvm", "numpy", "scipy")},
        }

    def save(self, path: str | Path) -> None:
        """Write the fitted model as JSON (never pickle)."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=True)
        Path(path).write_text(text, encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild a fitted model from :meth:`to_dict` output."""
        if data.get("model") != cls.__name__:
            raise ModelError(f"this is a {data.get('model')!r}, not a {cls.__name__}")
        model = cls(**data.get("settings", {}))
        names: Sequence[str] = cls.param_names
        if set(data["params"]) != set(names):
            raise ModelError(f"expected parameters {list(names)}, got {list(data['params'])}")
        model.params_ = {n: float(data["params"][n]) for n in names}
        model.log_likelihood_ = float(data["log_likelihood"])
        model.n_customers_ = int(data["n_customers"])
        model.n_rows_ = int(data.get("n_rows", data["n_customers"]))
        model.converged_ = bool(data.get("converged", True))
        model.covariance_ = np.asarray(data["covariance"], dtype=np.float64)
        return model


def load_model(path: str | Path) -> BaseModel:
    """Load any cvm model saved with :meth:`BaseModel.save`.

    Raises
    ------
    ModelError
        If the file is not a saved cvm model.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read a saved model: {exc}", path=path) from exc
    return model_from_dict(data, path=path)


def model_from_dict(data: dict[str, Any], *, path: str | Path | None = None) -> BaseModel:
    """Rebuild any cvm model from :meth:`BaseModel.to_dict` output.

    Raises
    ------
    ModelError
        If the data do not name a known model.
    """
    cls = _REGISTRY.get(str(data.get("model")))
    if cls is None:
        raise ModelError(f"unknown model {data.get('model')!r}", path=path)
    return cls.from_dict(data)
