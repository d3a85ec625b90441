"""Benchmark steps for lifetimes 0.11.3 (run inside bench/.data/venvs/lifetimes).

Each step fits one model on the simulated summary with the library's defaults
and times its predictions; the harness measures the process's peak memory.
Never imports cvm.
"""

from __future__ import annotations

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


def _params(fitter: Any) -> dict[str, float]:
    return {str(k): float(v) for k, v in fitter.params_.items()}


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
    from lifetimes import BetaGeoFitter, GammaGammaFitter, ParetoNBDFitter  # type: ignore[import-not-found, unused-ignore]

    df = load_summary(data)
    f, r, t, m = df["frequency"], df["recency"], df["T"], df["monetary_value"]
    repeat = df[df["frequency"] > 0]  # lifetimes' Gamma-Gamma rejects non-repeat rows
    watch = Stopwatch()
    out: dict[str, Any] = {"library": "lifetimes", "version": package_version("lifetimes")}
    checks: dict[str, Any] = {}

    if model in ("bgnbd", "pareto_nbd"):
        fitter = BetaGeoFitter() if model == "bgnbd" else ParetoNBDFitter()
        watch.call("fit", fitter.fit, f, r, t)
        expected = watch.call(
            "predict:expected_purchases",
            fitter.conditional_expected_number_of_purchases_up_to_time,
            HORIZON_DAYS,
            f,
            r,
            t,
        )
        alive = watch.call("predict:p_alive", fitter.conditional_probability_alive, f, r, t)
        checks = {"expected_purchases": facts(expected), "p_alive": facts(alive)}
        out["params"] = _params(fitter)
        if model == "bgnbd":
            ggf = GammaGammaFitter()
            watch.call("gg_fit", ggf.fit, repeat["frequency"], repeat["monetary_value"])
            clv = watch.call(
                "clv",
                ggf.customer_lifetime_value,
                fitter,
                f,
                r,
                t,
                m,
                time=CLV_MONTHS,
                discount_rate=MONTHLY_DISCOUNT,
                freq="D",
            )
            checks["clv"] = facts(clv)
            out["spend_params"] = _params(ggf)
    elif model == "gamma_gamma":
        ggf = GammaGammaFitter()
        watch.call("fit", ggf.fit, repeat["frequency"], repeat["monetary_value"])
        spend = watch.call("predict:expected_spend", ggf.conditional_expected_average_profit, f, m)
        checks = {"expected_spend": facts(spend)}
        out["params"] = _params(ggf)
    else:
        raise ValueError(f"unknown model {model!r}")
    out["times"] = watch.times
    out["checks"] = checks
    return out
