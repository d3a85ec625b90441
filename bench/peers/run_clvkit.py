"""Benchmark steps for clvkit (run inside bench/.data/venvs/clvkit).

clvkit fits BG/NBD (Nelder-Mead, then L-BFGS-B) and Gamma-Gamma by maximum
likelihood on a ``CustomerBase``; it has no Pareto/NBD. Its CLV sums one
prediction per ``time_unit`` with a discount rate per ``time_unit``: on daily data
that is 365 daily steps at the daily rate equivalent to 1 % a month. Never
imports cvm.
"""

from __future__ import annotations

from typing import Any

from _common import (
    CLV_MONTHS,
    DAYS_PER_YEAR,
    HORIZON_DAYS,
    MONTHLY_DISCOUNT,
    Stopwatch,
    facts,
    load_summary,
    package_version,
)

__all__ = ["run"]


def _customer_base(data: str) -> Any:
    """Return the simulated summary as a clvkit ``CustomerBase`` (daily, with spend)."""
    import pandas as pd
    from clvkit import CustomerBase  # type: ignore[import-not-found, unused-ignore]

    df = load_summary(data).set_index("customer_id")
    return CustomerBase(
        df[["frequency", "recency", "T", "monetary_value"]],
        time_unit="D",
        observation_period_end=pd.Timestamp("2021-12-31"),
        has_monetary=True,
        on_negative="net",
    )


def run(model: str, data: str) -> dict[str, Any]:
    """Fit ``model`` (``bgnbd`` or ``gamma_gamma``) and time predictions.

    The ``bgnbd`` step also fits a Gamma-Gamma model (timed as ``gg_fit``, not
    reported as a fit) and times 12-month CLV scoring (``clv``).

    Parameters
    ----------
    model
        Which model (``pareto_nbd`` raises: clvkit has none).
    data
        Parquet summary written by ``simulate.py``.

    Returns
    -------
    dict
        Timings (``times``), fitted ``params``, prediction ``checks``.
    """
    from clvkit import BGNBD, CLV, GammaGamma  # type: ignore[import-not-found, unused-ignore]

    cb = _customer_base(data)
    watch = Stopwatch()
    out: dict[str, Any] = {"library": "clvkit", "version": package_version("clvkit")}

    def values(prediction: Any) -> Any:
        return prediction.to_pandas().iloc[:, 0].to_numpy()

    if model == "bgnbd":
        purchases = watch.call("fit", BGNBD().fit, cb)
        with watch.time("predict:expected_purchases"):
            expected = values(purchases.predict(HORIZON_DAYS))
        with watch.time("predict:p_alive"):
            alive = values(purchases.probability_alive())
        checks = {"expected_purchases": facts(expected), "p_alive": facts(alive)}
        out["params"] = {str(k): float(v) for k, v in purchases.params_.items()}
        out["library_ll"] = purchases.log_likelihood_
        spend = watch.call("gg_fit", GammaGamma().fit, cb)
        days = round(CLV_MONTHS * DAYS_PER_YEAR / 12)
        daily_rate = (1.0 + MONTHLY_DISCOUNT) ** (12 / DAYS_PER_YEAR) - 1.0
        with watch.time("clv"):
            # Both sub-models are fitted: compose them without refitting (CLV.fit
            # would fit both again); CLV.predict needs only the fitted base.
            composed = CLV(purchases, spend, check_independence=False)
            composed._cb = cb
            composed.time_unit_ = cb.time_unit
            clv = composed.predict(horizon=days, discount_rate=daily_rate).to_pandas()["clv"]
        checks["clv"] = facts(clv.to_numpy())
        out["spend_params"] = {"p": spend.p, "q": spend.q, "v": spend.gamma}
    elif model == "gamma_gamma":
        spend = watch.call("fit", GammaGamma().fit, cb)
        with watch.time("predict:expected_spend"):
            amounts = values(spend.predict())
        checks = {"expected_spend": facts(amounts)}
        out["params"] = {"p": spend.p, "q": spend.q, "v": spend.gamma}
    elif model == "pareto_nbd":
        raise NotImplementedError("clvkit has no Pareto/NBD model")
    else:
        raise ValueError(f"unknown model {model!r}")
    out["times"] = watch.times
    out["checks"] = checks
    return out
