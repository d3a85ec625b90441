"""What every cvm model shares: the estimator contract, estimation and persistence.

The contract follows scikit-learn: ``__init__`` only stores keyword-only settings;
``fit`` validates, learns and returns ``self``; learned state ends in ``_``
(``params_``, ``log_likelihood_``, ``n_customers_`` …); every prediction first checks
that the model is fitted and raises :class:`~cvm.errors.NotFittedError` otherwise.

Estimation is maximum likelihood on compressed sufficient statistics (identical rows
weighted, not repeated), in log-parameter space (every parameter is positive), with
L-BFGS-B from several starting points, an optional L2 penalty on the log-parameters,
and standard errors from the observed information (the Hessian of the negative
log-likelihood, by central differences of the analytic gradient).
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
from scipy import optimize

from cvm.errors import ConvergenceError, DataError, ModelError, NotFittedError

__all__ = ["Array", "BaseModel", "compress", "load_model", "model_from_dict"]

Array = npt.NDArray[np.float64]

#: Objective: log-parameters → (negative log-likelihood, its gradient).
Objective = Callable[[Array], tuple[float, Array]]

_REGISTRY: dict[str, type[BaseModel]] = {}


def compress(*columns: npt.ArrayLike) -> tuple[list[Array], Array]:
    """Collapse identical rows into unique rows and their counts.

    Returns
    -------
    (columns, weights)
        The unique rows, column by column, and how many customers each stands for.
    """
    arrays = [np.asarray(c, dtype=np.float64) for c in columns]
    if not arrays or len(arrays[0]) == 0:
        return arrays, np.zeros(0)
    # Sort rows lexicographically (np.lexsort: last key is primary), mark where a row
    # differs from the one before; much faster than np.unique(axis=0) on millions of rows.
    order = np.lexsort(arrays[::-1])
    ordered = [a[order] for a in arrays]
    new = np.ones(len(order), dtype=bool)
    new[1:] = np.logical_or.reduce([np.diff(a) != 0 for a in ordered])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(order))).astype(np.float64)
    return [a[starts] for a in ordered], counts


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
    covariance_: Array
    converged_: bool

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

    def _optimize(self, objective: Objective, n_customers: int, n_rows: int) -> None:
        """Minimise ``objective`` over log-parameters and store the fitted state.

        Raises
        ------
        ConvergenceError
            If no start reaches a finite optimum.
        """

        def penalised(log_theta: Array) -> tuple[float, Array]:
            value, grad = objective(log_theta)
            if self.penalizer:
                value += self.penalizer * float(log_theta @ log_theta)
                grad = grad + 2 * self.penalizer * log_theta
            if not np.isfinite(value) or not np.all(np.isfinite(grad)):
                return 1e300, np.zeros_like(log_theta)
            return value, grad

        rng = np.random.default_rng(self.seed)
        start = np.log(self._start())
        best: optimize.OptimizeResult | None = None
        for attempt in range(max(1, self.n_starts)):
            x0 = start if attempt == 0 else start + rng.normal(0.0, 0.5, start.shape)
            result = optimize.minimize(
                penalised,
                x0,
                jac=True,
                method="L-BFGS-B",
                bounds=[(-20.0, 20.0)] * len(start),
                options={"maxiter": self.max_iter, "ftol": 1e-14, "gtol": 1e-9},
            )
            if (
                np.isfinite(result.fun)
                and result.fun < 1e299
                and (best is None or result.fun < best.fun)
            ):
                best = result
            if best is not None and self._converged(best) and np.all(np.abs(best.x) < 19.5):
                break  # converged inside the bounds: further starts are not needed
        if best is None:
            raise ConvergenceError(
                f"{type(self).__name__} found no finite likelihood from {self.n_starts} "
                "starts; check the data (are there repeat purchases?) or try penalizer=0.01"
            )
        self.params_ = {n: float(v) for n, v in zip(self.param_names, np.exp(best.x), strict=True)}
        value, _ = objective(best.x)
        self.log_likelihood_ = -float(value)
        self.n_customers_ = n_customers
        self.n_rows_ = n_rows
        self.converged_ = self._converged(best)
        self.covariance_ = self._covariance(penalised, best.x)
        if np.any(np.abs(best.x) > 19.5):
            raise ConvergenceError(
                f"{type(self).__name__}: a parameter ran to the edge of its range "
                f"({self.params_}); the data may not identify the model — try "
                "penalizer=0.01 or more customers"
            )

    @staticmethod
    def _converged(result: optimize.OptimizeResult) -> bool:
        """L-BFGS-B's own verdict, or a gradient that is flat to 1e-3 at its stop.

        At our tight tolerances L-BFGS-B often ends with an "abnormal line search" at the
        optimum; a vanishing gradient shows that it did converge.
        """
        return bool(result.success) or float(np.max(np.abs(result.jac))) < 1e-3

    @staticmethod
    def _covariance(objective: Objective, x: Array) -> Array:
        """Inverse observed information on the log scale (central differences)."""
        k = len(x)
        hessian = np.empty((k, k))
        for i in range(k):
            step = 1e-5 * max(1.0, abs(x[i]))
            up, down = x.copy(), x.copy()
            up[i] += step
            down[i] -= step
            hessian[i] = (objective(up)[1] - objective(down)[1]) / (2 * step)
        hessian = (hessian + hessian.T) / 2
        try:
            covariance: Array = np.asarray(np.linalg.inv(hessian), dtype=np.float64)
        except np.linalg.LinAlgError:
            covariance = np.full((k, k), np.nan)
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
