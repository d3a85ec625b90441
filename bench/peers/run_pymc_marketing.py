"""Benchmark steps for pymc-marketing (run inside bench/.data/venvs/pymc-marketing).

Fits are maximum a posteriori (``fit(method="map")``) under the library's default
priors, the fastest point estimate it offers. PyTensor compiles C code the first
time a graph is seen and caches it on disk: ``run_models.py`` runs :func:`run`
once on a small data set first (``warm-up``) so that one-time cost is not charged
to the first timed size. Never imports cvm.
"""

from __future__ import annotations

import warnings
from typing import Any

from _common import (
    CLV_MONTHS,
    HORIZON_DAYS,
    MONTHLY_DISCOUNT,
    Stopwatch,
    facts,
    load_summary,
    package_version,
)

__all__ = ["run"]

_RFM = ["customer_id", "frequency", "recency", "T"]


def _params(model: Any, names: tuple[str, ...]) -> dict[str, float]:
    posterior = model.fit_result
    return {name: float(posterior[name].values.squeeze()) for name in names}


def run(model: str, data: str) -> dict[str, Any]:
    """Fit ``model`` (``bgnbd``, ``pareto_nbd`` or ``gamma_gamma``) and time predictions.

    The ``bgnbd`` step also fits a Gamma-Gamma model (timed as ``gg_fit``, not
    reported as a fit) and times 12-month CLV scoring (``clv``).

    Parameters
    ----------
    model
        Which model.
    data
        Parquet summary written by ``simulate.py``.

    Returns
    -------
    dict
        Timings (``times``), fitted ``params``, prediction ``checks``.
    """
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel, ParetoNBDModel  # type: ignore[import-not-found, unused-ignore]

    warnings.simplefilter("ignore")  # this child process only: notices would flood the log
    df = load_summary(data)
    repeat = df[df["frequency"] > 0]  # its Gamma-Gamma rejects monetary_value ≤ 0
    watch = Stopwatch()
    out: dict[str, Any] = {
        "library": "pymc-marketing",
        "version": package_version("pymc-marketing"),
        "fit_method": "map",
    }

    def fit_spend() -> Any:
        spend = GammaGammaModel()
        spend.fit(
            repeat[["customer_id", "frequency", "monetary_value"]],
            method="map",
            progressbar=False,
        )
        return spend

    if model in ("bgnbd", "pareto_nbd"):
        if model == "bgnbd":
            purchases: Any = BetaGeoModel()
            names: tuple[str, ...] = ("r", "alpha", "a", "b")
        else:
            purchases = ParetoNBDModel()
            names = ("r", "alpha", "s", "beta")
        watch.call("fit", purchases.fit, df[_RFM], method="map", progressbar=False)
        with watch.time("predict:expected_purchases"):
            expected = purchases.expected_purchases(df, future_t=HORIZON_DAYS).values
        with watch.time("predict:p_alive"):
            alive = purchases.expected_probability_alive(df).values
        checks = {"expected_purchases": facts(expected), "p_alive": facts(alive)}
        out["params"] = _params(purchases, names)
        if model == "bgnbd":
            spend = watch.call("gg_fit", fit_spend)
            with watch.time("clv"):
                clv = spend.expected_customer_lifetime_value(
                    transaction_model=purchases,
                    data=df,
                    future_t=CLV_MONTHS,
                    discount_rate=MONTHLY_DISCOUNT,
                    time_unit="D",
                ).values
            checks["clv"] = facts(clv)
            out["spend_params"] = _params(spend, ("p", "q", "v"))
    elif model == "gamma_gamma":
        spend = watch.call("fit", fit_spend)
        with watch.time("predict:expected_spend"):
            values = spend.expected_customer_spend(df).values
        checks = {"expected_spend": facts(values)}
        out["params"] = _params(spend, ("p", "q", "v"))
    else:
        raise ValueError(f"unknown model {model!r}")
    out["times"] = watch.times
    out["checks"] = checks
    return out
