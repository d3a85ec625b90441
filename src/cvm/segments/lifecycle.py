"""Lifecycle stages — acquisition, growth, maturity, decline, departure — with reasons.

Every customer is put in exactly one stage by explainable rules on their tenure, the
trend of their value per period (:mod:`cvm.features.trend`) and their probability of
being alive from the fitted purchase model, and every stage comes with the reason in
words and numbers, e.g. ``"first purchase 41 days ago (under 90 days: acquisition)"``.

The stages follow the relationship phases of Dwyer, Schurr & Oh (1987), "Developing
buyer-seller relationships", Journal of Marketing 51(2), 11–27 — exploration
(acquisition), expansion (growth), commitment (maturity) and dissolution (decline,
departure). Whether a customer is still "alive" is read from the BTYD models:
P(alive) as in Schmittlein, Morrison & Colombo (1987), "Counting your customers: who
are they and what will they do next?", Management Science 33(1), and Fader, Hardie &
Lee (2005), "Counting your customers the easy way", Marketing Science 24(2).

The rules, first match wins (thresholds from :class:`~cvm.config.LifecycleSettings`,
defaults in brackets):

1. **departure** — P(alive) below ``departure_p_alive`` [0.20], or no purchase for more
   than ``departure_days`` [365] (a hard limit: under BG/NBD a one-time buyer keeps
   P(alive) = 1 for ever).
2. **acquisition** — first purchase fewer than ``acquisition_days`` [90] days ago.
3. **decline** — value per period in the recent window down by ``decline_trend``
   [−30 %] or more on the window before, or nothing in either window; or P(alive)
   below ``decline_p_alive`` [0.50]; when no model gave a P(alive), instead no purchase
   for more than ``decline_days`` [180] (the reason says so).
4. **growth** — value per period up by ``growth_trend`` [+30 %] or more, or up from
   nothing; or up at all while the first purchase is fewer than ``developing_days``
   [365] days ago; or a repeat buyer whose whole history lies in the recent window.
5. **acquisition** — a one-time buyer whose purchase lies in the recent window and
   who shows no sign of decline: still in trial, waiting for the second purchase.
6. **maturity** — everyone else: a stable trend between the two thresholds.

Everything is set-based Ibis — the number of the first rule that holds, then the stage
and the reason from it, each a ``CASE`` — so that it runs on DuckDB, PySpark or any
other backend.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, Literal

import ibis

from cvm.config import LifecycleSettings
from cvm.errors import ConfigError, SchemaError
from cvm.features.trend import trend_features

__all__ = ["LIFECYCLE_STAGES", "REQUIRED_COLUMNS", "lifecycle_from_periods", "lifecycle_stage"]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)
Expr = Any  # ibis.expr.types.Value

#: The lifecycle stages, in the order of the relationship.
LIFECYCLE_STAGES: Final[tuple[str, ...]] = (
    "acquisition",
    "growth",
    "maturity",
    "decline",
    "departure",
)

#: Columns :func:`lifecycle_stage` needs (``p_alive`` is optional).
REQUIRED_COLUMNS: Final[tuple[str, ...]] = (
    "customer_id",
    "tenure_days",
    "days_since_last",
    "occasions",
    "recent_value",
    "previous_value",
    "previous_exposure",
    "trend",
)

_MEASURE_WORDS: Final[dict[str, str]] = {
    "revenue": "spend",
    "margin": "margin",
    "occasions": "purchases",
}


def _text(value: Expr) -> Expr:
    """Show an integer-valued expression as text ('?' when missing: never a NULL reason)."""
    return value.cast("int64").cast("string").fill_null("?")


def _percent(trend: Expr) -> Expr:
    """Show the size of a relative change in whole percent, truncated toward zero.

    Truncation keeps the shown number on the same side of a whole-percent threshold
    as the value itself (29.97 % shows as 29 %, not as 30 %).
    """
    # capped so that any finite trend fits the integer cast (shown as "up 1000000000 %")
    return _text(ibis.least((trend * 100).round(4).abs().floor(), 1e9))


def _probability(p: Expr) -> Expr:
    """Show a probability with two decimals, truncated (0.199 as 0.19, below 0.20)."""
    hundredths = (p * 100).round(6).floor().cast("int64")
    # 100 + h is "1hh": the last two digits are h padded with a zero.
    padded = "0." + (hundredths + 100).cast("string").substr(1, 2)
    return (hundredths >= 100).ifelse("1.00", padded).fill_null("?")


def _fmt_probability(value: float) -> str:
    return f"{value:.2f}" if round(value, 2) == value else f"{value:g}"


def _fmt_percent(value: float) -> str:
    sign = "+" if value > 0 else "−"
    return f"{sign}{abs(value) * 100:.10g} %"


def _months(n: int) -> str:
    return "month" if n == 1 else f"{n} months"


def lifecycle_stage(customers: Table, settings: LifecycleSettings | None = None) -> Table:
    """Put every customer in one lifecycle stage and give the reason.

    Parameters
    ----------
    customers
        One row per customer with ``customer_id``, ``tenure_days``,
        ``days_since_last``, ``occasions`` (purchase occasions), ``recent_value``,
        ``previous_value``, ``previous_exposure`` and ``trend`` — as made by
        :func:`cvm.features.trend_features` with the settings' ``window_months`` and
        ``measure`` — and optionally ``p_alive`` (NULL, or absent, when no purchase
        model could be fitted). Other columns are kept.
    settings
        The rules' thresholds; defaults when ``None``.

    Returns
    -------
    Table
        ``customers`` plus ``lifecycle_stage`` (one of :data:`LIFECYCLE_STAGES`) and
        ``lifecycle_reason`` (a sentence with the numbers that decided it).

    Raises
    ------
    SchemaError
        If a required column is missing.

    Notes
    -----
    The rules and their order are given in the module docstring and in
    ``docs/segments.md``; thresholds compare as written (``trend`` is rounded to 6
    decimals by :func:`~cvm.features.value_trend`): at exactly −30 % a customer
    declines, at exactly 90 days of tenure acquisition is over.
    """
    s = settings or LifecycleSettings()
    missing = [c for c in REQUIRED_COLUMNS if c not in customers.columns]
    if missing:
        raise SchemaError(
            f"customers lack column(s) {', '.join(missing)} for lifecycle stages; "
            "add them with cvm.features.trend_features",
            expected=", ".join(REQUIRED_COLUMNS),
        )
    # Conditions first, once, as the number of the first rule that holds; then the
    # stage and the reason from that number (each rule's sentence is built only for
    # its own customers).
    rules = _rules(customers, s)
    number = ibis.cases(*[(cond, k) for k, (_, cond, _) in enumerate(rules)], else_=len(rules))
    numbered = customers.mutate(_lifecycle_rule=number)
    texts = _rules(numbered, s)
    rule = numbered._lifecycle_rule
    stage = rule.cases(*[(k, name) for k, (name, _, _) in enumerate(texts)], else_="maturity")
    reason = rule.cases(
        *[(k, text) for k, (_, _, text) in enumerate(texts)], else_=_maturity_reason(numbered, s)
    )
    return numbered.mutate(lifecycle_stage=stage, lifecycle_reason=reason.fill_null("?")).drop(
        "_lifecycle_rule"
    )


def _change(c: Table, s: LifecycleSettings) -> Expr:
    """Sentence of the trend, e.g. "spend in the last 6 months down 62 % on the 6 months before"."""
    months = _months(s.window_months)
    up = (c.trend >= 0).ifelse("up ", "down ")
    return (
        f"{_MEASURE_WORDS[s.measure]} in the last {months} "
        + up
        + _percent(c.trend)
        + (f" % on the {months} before")
    )


def _maturity_reason(c: Table, s: LifecycleSettings) -> Expr:
    between = f" (maturity between {_fmt_percent(s.decline_trend)}"
    return _change(c, s) + between + f" and {_fmt_percent(s.growth_trend)})"


def _rules(c: Table, s: LifecycleSettings) -> list[tuple[str, Expr, Expr]]:
    """Return the rules in order: (stage, condition, reason) bound to table ``c``."""
    p_alive = c.p_alive if "p_alive" in c.columns else ibis.null("float64")
    tenure = c.tenure_days
    idle = c.days_since_last
    trend = c.trend
    recent = c.recent_value
    earlier = c.previous_exposure.fill_null(0.0) > 0  # the customer was there before

    what = _MEASURE_WORDS[s.measure]
    last = f"in the last {_months(s.window_months)}"
    before = f"the {_months(s.window_months)} before"
    no_model = "no P(alive) (no purchase model fitted); "
    idle_text = "no purchase for " + _text(idle) + " days"
    change = _change(c, s)
    return [
        (
            "departure",
            p_alive < s.departure_p_alive,
            "P(alive) "
            + _probability(p_alive)
            + f" below {_fmt_probability(s.departure_p_alive)} (departure)",
        ),
        (
            "departure",
            idle > s.departure_days,
            p_alive.isnull().ifelse(no_model, "")
            + idle_text
            + f" (over {s.departure_days}: departure)",
        ),
        (
            "acquisition",
            tenure < s.acquisition_days,
            "first purchase "
            + _text(tenure)
            + f" days ago (under {s.acquisition_days} days: acquisition)",
        ),
        (
            "decline",
            trend <= s.decline_trend,
            change + f" (decline at {_fmt_percent(s.decline_trend)})",
        ),
        (
            "decline",
            earlier & trend.isnull() & (recent <= 0),
            ibis.literal(f"no {what} {last} nor in {before} (decline)"),
        ),
        (
            "decline",
            p_alive < s.decline_p_alive,
            "P(alive) "
            + _probability(p_alive)
            + f" below {_fmt_probability(s.decline_p_alive)} (decline)",
        ),
        (
            "decline",
            p_alive.isnull() & (idle > s.decline_days),
            no_model + idle_text + f" (over {s.decline_days}: decline)",
        ),
        (
            "growth",
            trend >= s.growth_trend,
            change + f" (growth at {_fmt_percent(s.growth_trend)})",
        ),
        (
            "growth",
            earlier & trend.isnull() & (recent > 0),
            ibis.literal(f"{what} {last} after none in {before} (growth)"),
        ),
        (
            "growth",
            (tenure < s.developing_days) & (trend > 0),
            change
            + ", first purchase "
            + _text(tenure)
            + f" days ago (rising within {s.developing_days} days: growth)",
        ),
        (
            "growth",
            ~earlier & (c.occasions >= 2),
            _text(c.occasions)
            + " purchases since the first "
            + _text(tenure)
            + f" days ago, all {last} (repeat buyer: growth)",
        ),
        (
            "acquisition",
            ~earlier,
            "one purchase, "
            + _text(tenure)
            + " days ago, none since (acquisition until a repeat purchase)",
        ),
    ]


def lifecycle_from_periods(
    customers: Table,
    periods: Table,
    *,
    as_of: dt.date,
    settings: LifecycleSettings | None = None,
    period: Literal["month", "quarter"] = "month",
) -> Table:
    """Compute the trend features and the lifecycle stage in one expression.

    Parameters
    ----------
    customers
        One row per customer with ``customer_id``, ``first_purchase``,
        ``last_purchase`` and ``occasions``, and optionally ``p_alive`` — e.g. the rows
        of one run in the store's ``customer_snapshots``.
    periods
        The customers' period series at ``as_of`` (:func:`cvm.features.period_series`,
        or the run's rows of ``period_snapshots``).
    as_of
        The analysis date.
    settings
        The lifecycle rules; defaults when ``None``.
    period
        The period of the series (``features.period``).

    Returns
    -------
    Table
        ``customers`` plus the columns of :func:`cvm.features.trend_features`,
        ``lifecycle_stage`` and ``lifecycle_reason``.

    Raises
    ------
    ConfigError
        If ``window_months`` is not a whole number of periods.
    SchemaError
        If a needed column is missing.
    """
    s = settings or LifecycleSettings()
    if period == "quarter" and s.window_months % 3:
        raise ConfigError(
            f"window_months must be a multiple of 3 with quarterly periods "
            f"(features.period = 'quarter'), got {s.window_months}",
            key="segments.lifecycle.window_months",
            value=s.window_months,
        )
    features = trend_features(
        customers,
        periods,
        as_of=as_of,
        window_months=s.window_months,
        period=period,
        measure=s.measure,
    )
    return lifecycle_stage(features, s)
