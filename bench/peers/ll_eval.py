"""Evaluate every library's fitted parameters with cvm's own log-likelihood.

cvm's models build their objective (log-parameters → negative log-likelihood and
gradient) inside ``fit`` and hand it to ``BaseModel._optimize``. A subclass that
overrides ``_optimize`` captures that exact objective instead of optimising, so
each library's estimates are scored by one and the same likelihood and the
maximum each library reached can be compared.

Fits that rescale the data before optimising (Gamma-Gamma divides spend by its
mean) undo it afterwards by multiplying parameters and shifting the
log-likelihood. Running ``fit`` with the captured optimiser returning all-ones
parameters and a zero log-likelihood reveals those factors, whatever they are:
the optimiser's vector for parameters θ is log(θ / unit) and the reported
log-likelihood is −objective + offset. The evaluation of cvm's own estimates is
checked against the log-likelihood cvm reported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from _common import load_summary
from run_cvm import model_class

__all__ = ["evaluate"]

#: Other libraries' names for the parameters cvm calls by the key.
ALIASES: dict[str, tuple[str, ...]] = {"v": ("gamma",), "gamma": ("v",)}


def _captured(model: str, df: Any) -> tuple[Any, tuple[str, ...], Any, float]:
    """Return (objective, parameter names, unit parameters, log-likelihood offset)."""
    base = model_class(model)

    class Capture(base):  # type: ignore[misc, valid-type]
        """The cvm model with the optimiser replaced by a recorder."""

        def _optimize(self, objective: Any, *args: Any, **kwargs: Any) -> None:
            self.objective = objective
            self.params_ = {name: 1.0 for name in self.param_names}
            self.log_likelihood_ = 0.0
            self.n_customers_ = self.n_rows_ = 0
            self.converged_ = True
            self.covariance_ = np.eye(len(self.param_names))

    Capture.__name__ = f"_Capture{base.__name__}"
    probe = Capture().fit(df)
    names = tuple(base.param_names)
    unit = np.array([probe.params_[n] for n in names], dtype=np.float64)
    return probe.objective, names, unit, float(probe.log_likelihood_)


def _theta(names: tuple[str, ...], params: dict[str, float]) -> np.ndarray:
    values = []
    for name in names:
        keys = (name, *ALIASES.get(name, ()))
        found = [params[k] for k in keys if k in params]
        if not found:
            raise KeyError(f"no value for parameter {name!r} in {sorted(params)}")
        values.append(float(found[0]))
    return np.array(values, dtype=np.float64)


def evaluate(model: str, data: str, candidates: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Log-likelihood of each library's parameters under cvm's objective.

    Parameters
    ----------
    model
        ``bgnbd``, ``pareto_nbd`` or ``gamma_gamma``.
    data
        The Parquet summary the models were fitted on.
    candidates
        Library name → fitted parameters (its own names; ``gamma``/``v`` aliased).

    Returns
    -------
    dict
        ``ll`` (library → log-likelihood or ``None``), ``errors`` (library → message),
        ``param_names`` (cvm's order).
    """
    df = load_summary(data)
    objective, names, unit, offset = _captured(model, df)
    lls: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    for library, params in candidates.items():
        try:
            theta = _theta(names, params)
            if not np.all(theta > 0):
                raise ValueError(f"non-positive parameter in {params}")
            value, _ = objective(np.log(theta / unit))
            ll = -float(value) + offset
            lls[library] = ll if math.isfinite(ll) else None
            if not math.isfinite(ll):
                errors[library] = f"log-likelihood is {ll}"
        except Exception as exc:  # one bad candidate must not hide the others
            lls[library] = None
            errors[library] = f"{type(exc).__name__}: {exc}"
    return {"ll": lls, "errors": errors, "param_names": list(names)}
