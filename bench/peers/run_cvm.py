"""Benchmark steps for cvm (run in the project's own venv).

Same steps as the peer runners: fit with the defaults, time expected purchases
over 90 days and P(alive) (or expected spend), and in the ``bgnbd`` step 12-month
CLV with :func:`cvm.models.clv.customer_lifetime_value` (monthly steps, the annual
rate equivalent to 1 % a month). Models other engineers are still adding
(Pareto/NBD) are looked up by name and reported missing if absent.
"""

from __future__ import annotations

import importlib
from typing import Any

from _common import (
    CLV_MONTHS,
    DAYS_PER_YEAR,
    HORIZON_DAYS,
    Stopwatch,
    annual_discount,
    facts,
    load_summary,
    package_version,
)

__all__ = ["MODELS", "model_class", "run"]

#: Benchmark model name → (module, class) in cvm.
MODELS: dict[str, tuple[str, str]] = {
    "bgnbd": ("cvm.models.bgnbd", "BetaGeoModel"),
    "pareto_nbd": ("cvm.models.pareto_nbd", "ParetoNBDModel"),
    "gamma_gamma": ("cvm.models.gamma_gamma", "GammaGammaModel"),
}


def model_class(model: str) -> Any:
    """Return cvm's class for a benchmark model name.

    Raises
    ------
    ImportError
        If cvm does not have the model (yet).
    """
    module, name = MODELS[model]
    cls = getattr(importlib.import_module(module), name, None)
    if cls is None:
        raise ImportError(f"{module}.{name} is missing")
    return cls


def run(model: str, data: str) -> dict[str, Any]:
    """Fit ``model`` (``bgnbd``, ``pareto_nbd`` or ``gamma_gamma``) and time predictions.

    Parameters
    ----------
    model
        Which model.
    data
        Parquet summary written by ``simulate.py``.

    Returns
    -------
    dict
        Timings (``times``), fitted ``params``, the model's own ``library_ll``,
        prediction ``checks``.
    """
    from cvm.models.clv import customer_lifetime_value

    df = load_summary(data)
    watch = Stopwatch()
    out: dict[str, Any] = {"library": "cvm", "version": package_version("cvm")}

    def fit_with_errors(frame: Any) -> Any:
        # cvm computes standard errors on first use; lifetimes computes its Hessian in
        # fit, so the timed fit includes them for a like-for-like comparison.
        model_ = model_class(model)().fit(frame)
        model_.standard_errors_  # noqa: B018 - computes them
        return model_

    fitted = watch.call("fit", fit_with_errors, df)
    out["params"] = dict(fitted.params_)
    out["library_ll"] = fitted.log_likelihood_
    out["settings"] = fitted.get_params()
    if model in ("bgnbd", "pareto_nbd"):
        expected = watch.call(
            "predict:expected_purchases", fitted.expected_purchases, df, HORIZON_DAYS
        )
        alive = watch.call("predict:p_alive", fitted.probability_alive, df)
        checks = {"expected_purchases": facts(expected), "p_alive": facts(alive)}
        if model == "bgnbd":
            spend = watch.call("gg_fit", model_class("gamma_gamma")().fit, df)
            clv = watch.call(
                "clv",
                customer_lifetime_value,
                fitted,
                df,
                horizon=CLV_MONTHS * DAYS_PER_YEAR / 12,
                discount_rate=annual_discount(),
                units_per_year=DAYS_PER_YEAR,
                spend=spend,
                margin=1.0,
            )
            checks["clv"] = facts(clv)
            out["spend_params"] = dict(spend.params_)
    else:
        values = watch.call("predict:expected_spend", fitted.expected_spend, df)
        checks = {"expected_spend": facts(values)}
    out["times"] = watch.times
    out["checks"] = checks
    return out
