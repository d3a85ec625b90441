"""CRM investment assessment: how much the company can afford to spend on CRM.

The assessment prices customer turnover from the company's own measured figures, every
one of which can be overridden, plus two inputs the store cannot know (the market's
growth rate and the sales and marketing expense). All rates are annual and refer to
the 12 months up to the run's ``as_of``.

Inputs
------
revenue ``R``
    Net revenue (sales − returns) in the 12 months up to ``as_of``.
turnover ``t``
    Customer turnover (churn) rate ``1 − retention`` over those 12 months, with the
    retention rate of :func:`cvm.segments.cohorts.retention_rates`:
    ``(customers at end − new customers) / customers at start``.
acquisition rate ``a``
    ``new customers / customers at start`` over the same period.
revenue growth
    ``R / R_previous − 1``, ``R_previous`` the revenue of the 12 months before (only
    when the data cover them).
referral value ``V``
    Influence value (:mod:`cvm.value.influence`) of the customers active at ``as_of``.
margin rate ``m``
    Profit per unit of net revenue in the 12 months.
market growth ``g``, expense ``X``, target retention ``r*``
    Given (``[assess]`` in ``cvm.toml``, options or arguments); ``r*`` defaults to the
    measured retention plus ``retention_improvement``.

Figures
-------
With ``N`` customers at the start and the retention and acquisition rates defined on
that base, the customers at the end are exactly ``N (1 − t + a)``, so:

* revenue lost to turnover ``A = R t``;
* revenue still lost if acquisition only keeps pace with the market (``a = g``):
  ``B = R max(t − g, 0)`` (the fall from today's revenue, ``R − R (1 − t + g)``);
* acquisition rate needed to grow with the market: ``a* = t + g`` (exact, not an
  approximation, because ``t`` and ``a`` share the base ``N``);
* sales and marketing effort spent replacing lost customers ``C = X t``;
* referral value lost with departing customers ``D = V t``;
* revenue gained by raising retention to the target ``E = R max(r* − (1 − t), 0)``;
* for comparison, the acquisition gap ``a* − a`` and revenue growth minus ``g``;
* spending ceiling ``A + D``, and on a profit basis ``m A + D``.

``B`` and ``E`` are parts of ``A``, and ``C`` is the price of buying ``A`` back through
acquisition, so adding any of them to ``A`` would count the same departing customers
twice; ``D`` is the only other separate loss. See docs/assessment.md.

References
----------
Reichheld, F. F. & Sasser, W. E. (1990). "Zero defections: quality comes to services",
*Harvard Business Review* 68(5): 105-111.

Gupta, S. & Lehmann, D. R. (2005). *Managing Customers as Investments*. Wharton School
Publishing.

Kumar, V., Petersen, J. A. & Leone, R. P. (2007). "How valuable is word of mouth?",
*Harvard Business Review* 85(10): 139-146.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import ibis

from cvm.config import AssessSettings, Settings
from cvm.dynamics.card import find_run
from cvm.dynamics.overview import input_table
from cvm.errors import ValidationError
from cvm.segments.cohorts import RetentionPeriod, months_before, retention_rates
from cvm.store import Store

__all__ = [
    "Assessment",
    "AssessmentInput",
    "AssessmentInputs",
    "Figure",
    "StoreMeasures",
    "assess",
    "assess_store",
    "measure",
]

Source = Literal["measured", "given", "derived", "missing"]
Unit = Literal["money", "rate"]

#: Input name → (label, unit), in display order.
INPUTS: Final[dict[str, tuple[str, Unit]]] = {
    "revenue": ("annual revenue", "money"),
    "turnover": ("customer turnover rate", "rate"),
    "acquisition_rate": ("acquisition rate", "rate"),
    "revenue_growth": ("revenue growth", "rate"),
    "referral_value": ("referral value", "money"),
    "margin_rate": ("margin rate", "rate"),
    "market_growth": ("market growth rate", "rate"),
    "expense": ("sales and marketing expense", "money"),
    "target_retention": ("target retention rate", "rate"),
}

#: The inputs the store can measure.
MEASURABLE: Final[tuple[str, ...]] = (
    "revenue",
    "turnover",
    "acquisition_rate",
    "revenue_growth",
    "referral_value",
    "margin_rate",
)

#: The figures summed into the spending ceiling (see the module docstring).
CEILING_TERMS: Final[tuple[str, ...]] = ("revenue_lost_to_turnover", "referral_value_lost")

# (lowest, highest, what the value is) of every given input
_BOUNDS: Final[dict[str, tuple[float, float | None, str]]] = {
    "revenue": (0.0, None, "an amount"),
    "turnover": (0.0, 1.0, "a share of customers"),
    "acquisition_rate": (0.0, None, "new customers per customer at the start"),
    "revenue_growth": (-1.0, None, "a growth rate"),
    "referral_value": (0.0, None, "an amount"),
    "margin_rate": (0.0, 1.0, "a share of revenue"),
    "market_growth": (0.0, None, "a growth rate"),
    "expense": (0.0, None, "an amount"),
    "target_retention": (0.0, 1.0, "a share of customers"),
    "retention_improvement": (0.0, 1.0, "a share of customers"),
}


def _check(name: str, value: float) -> None:
    low, high, what = _BOUNDS[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"expected a number, got {value!r}", key=name, value=value)
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        span = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise ValidationError(
            f"must be {span} ({what}), got {value!r}", key=name, value=value, expected=span
        )


@dataclass(frozen=True)
class AssessmentInputs:
    """Given inputs of the assessment; ``None`` means measure it (or leave it out).

    Attributes
    ----------
    revenue, turnover, acquisition_rate, revenue_growth, referral_value, margin_rate
        Overrides of the measured figures (module docstring).
    market_growth, expense
        The market's annual growth rate and the annual sales and marketing expense;
        the figures that need them are left out when ``None``.
    target_retention
        Retention rate to reach; ``None`` = measured retention + ``retention_improvement``
        (at most 1).
    retention_improvement
        Rise in retention the default target aims at (0.05 = 5 points).

    Raises
    ------
    ValidationError
        If a value is out of range (negative amounts or rates, turnover, margin or target
        retention above 1, revenue growth below −1, non-finite numbers); the error's
        ``key`` names the field.
    """

    revenue: float | None = None
    turnover: float | None = None
    acquisition_rate: float | None = None
    revenue_growth: float | None = None
    referral_value: float | None = None
    margin_rate: float | None = None
    market_growth: float | None = None
    expense: float | None = None
    target_retention: float | None = None
    retention_improvement: float = 0.05

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is not None:
                _check(item.name, value)

    @classmethod
    def from_settings(cls, settings: AssessSettings, **overrides: float | None) -> AssessmentInputs:
        """Build from ``[assess]`` of ``cvm.toml``, then apply the non-``None`` overrides.

        Raises
        ------
        ValidationError
            If an override is out of range.
        TypeError
            If an override names no field.
        """
        base = cls(
            market_growth=_number(settings.market_growth),
            expense=_number(settings.sales_marketing_expense),
            target_retention=_number(settings.target_retention),
            retention_improvement=settings.retention_improvement,
        )
        return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _number(value: float | str) -> float | None:
    return None if isinstance(value, str) else float(value)


@dataclass(frozen=True)
class StoreMeasures:
    """What the store measures for the assessment, at a run's ``as_of``.

    The period is ``(start, as_of]``, ``start`` = ``as_of`` − 12 months; the previous
    period is ``(previous_start, start]``.

    Attributes
    ----------
    run_id, as_of, start, previous_start
        The run and the periods.
    first_transaction
        Date of the first transaction in the store.
    activity_window_months
        A customer counts at a date after a purchase in this many months up to it.
    customers_start, customers_end, new_customers, retained, reactivated
        The counts of :func:`cvm.segments.cohorts.retention_rates` for the period.
    revenue, profit
        Net revenue and profit of the period.
    revenue_previous
        Net revenue of the previous period; ``None`` when the data begin after its
        first day.
    active_customers, referral_value
        Customers of the run active at ``as_of`` and their influence value.
    notes
        Caveats about the data (short history, win-backs, …).
    """

    run_id: str
    as_of: dt.date
    start: dt.date
    previous_start: dt.date
    first_transaction: dt.date | None
    activity_window_months: int
    customers_start: int
    customers_end: int
    new_customers: int
    retained: int
    reactivated: int
    revenue: float
    profit: float
    revenue_previous: float | None
    active_customers: int
    referral_value: float
    notes: tuple[str, ...] = ()

    @property
    def retention_rate(self) -> float | None:
        """``(customers_end − new_customers) / customers_start`` (``None`` without a start)."""
        if not self.customers_start:
            return None
        return (self.customers_end - self.new_customers) / self.customers_start

    @property
    def turnover(self) -> float | None:
        """``1 − retention``, floored at 0 (win-backs can push retention above 1)."""
        rate = self.retention_rate
        return None if rate is None else max(1.0 - rate, 0.0)

    @property
    def acquisition_rate(self) -> float | None:
        """``new_customers / customers_start`` (``None`` without a start)."""
        return self.new_customers / self.customers_start if self.customers_start else None

    @property
    def revenue_growth(self) -> float | None:
        """``revenue / revenue_previous − 1`` (``None`` without a positive previous year)."""
        if self.revenue_previous is None or self.revenue_previous <= 0:
            return None
        return self.revenue / self.revenue_previous - 1.0

    @property
    def margin_rate(self) -> float | None:
        """``profit / revenue``, clipped to [0, 1] (``None`` without positive revenue)."""
        return min(max(self.profit / self.revenue, 0.0), 1.0) if self.revenue > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        data = dataclasses.asdict(self)
        for key in ("as_of", "start", "previous_start", "first_transaction"):
            value = data[key]
            data[key] = value.isoformat() if value is not None else None
        data["notes"] = list(self.notes)
        data |= {
            "retention_rate": self.retention_rate,
            "turnover": self.turnover,
            "acquisition_rate": self.acquisition_rate,
            "revenue_growth": self.revenue_growth,
            "margin_rate": self.margin_rate,
        }
        return data

    def basis(self, name: str) -> str:
        """How an input was measured, with the numbers it came from."""
        period = f"{self.start + dt.timedelta(days=1)} to {self.as_of}"
        if name == "revenue":
            return f"net revenue (sales − returns), {period}"
        if name == "turnover":
            return (
                f"1 − retention, retention = ({self.customers_end:,} at end − "
                f"{self.new_customers:,} new) / {self.customers_start:,} at start, {period}"
            )
        if name == "acquisition_rate":
            return f"{self.new_customers:,} new / {self.customers_start:,} at start, {period}"
        if name == "revenue_growth":
            previous = self.start - dt.timedelta(days=1)
            return (
                f"revenue {period} / revenue {self.previous_start + dt.timedelta(days=1)} "
                f"to {previous} − 1"
            )
        if name == "referral_value":
            return (
                f"influence value of the {self.active_customers:,} customers active at {self.as_of}"
            )
        if name == "margin_rate":
            return f"profit / net revenue, {period}"
        raise KeyError(name)


def _rows(expr: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = expr.to_pyarrow().to_pylist()
    return rows


def measure(
    store: Store, run_id: str | None = None, *, settings: Settings | None = None
) -> StoreMeasures:
    """Measure the assessment's inputs in the store, at a run's ``as_of``.

    Parameters
    ----------
    store
        The store, with an analysis run.
    run_id
        The run; the latest when ``None``.
    settings
        Settings: the activity window of ``segments.relationship`` and the default
        ``value.margin_rate``; defaults when ``None``.

    Returns
    -------
    StoreMeasures
        Counts, revenue and referral value, with notes on the data's limits.

    Raises
    ------
    NotFoundError
        If there is no such run.

    Notes
    -----
    Customer ids are the unified ids of identity resolution, as in the run. Profit is
    ``margin``, else ``amount − cost``, else ``amount × value.margin_rate`` (as for
    realized value).
    """
    settings = settings or Settings()
    run_id, as_of, _ = find_run(store, run_id)
    window = settings.segments.relationship.activity_window_months
    start = months_before(as_of, 12)
    previous_start = months_before(as_of, 24)
    transactions = input_table(store, "transactions")
    (counts,) = _rows(
        retention_rates(
            transactions, [RetentionPeriod("assessment", start, as_of)], activity_months=window
        )
    )
    next_day = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    t = transactions.filter(transactions.ts < ibis.timestamp(next_day))
    day = t.ts.date()
    in_period = day > ibis.date(start)
    in_previous = (day > ibis.date(previous_start)) & ~in_period
    profit = ibis.coalesce(t.margin, t.amount - t.cost, t.amount * settings.value.margin_rate)
    (sums,) = _rows(
        t.aggregate(
            first_day=day.min(),
            revenue=t.amount.sum(where=in_period),
            profit=profit.sum(where=in_period),
            previous=t.amount.sum(where=in_previous),
        )
    )
    snapshot = store.table("customer_snapshots")
    active = snapshot.filter(
        (snapshot.run_id == run_id)
        & (snapshot.last_purchase > ibis.date(months_before(as_of, window)))
    )
    (referrals,) = _rows(
        active.aggregate(customers=active.count(), value=active.influence_value.fill_null(0).sum())
    )
    first: dt.date | None = sums["first_day"]
    notes: list[str] = []
    covered = first is not None and first <= previous_start + dt.timedelta(days=1)
    if not covered:
        notes.append(
            f"the data begin on {first}, after {previous_start + dt.timedelta(days=1)}: "
            "no revenue of the 12 months before the period, so revenue growth is not "
            "measured"
        )
    counted_from = months_before(start, window) + dt.timedelta(days=1)
    if first is not None and first > counted_from:
        notes.append(
            f"the data begin on {first}, less than {window} months before the period "
            f"starts ({start + dt.timedelta(days=1)}): customers at start are only those "
            f"who bought from {first} to {start}, so turnover is measured on them alone and "
            "the acquisition rate is overstated (customers who bought before the data "
            "began count as new); override turnover and acquisition_rate if they are known"
        )
    measures = StoreMeasures(
        run_id=run_id,
        as_of=as_of,
        start=start,
        previous_start=previous_start,
        first_transaction=first,
        activity_window_months=window,
        customers_start=int(counts["customers_start"]),
        customers_end=int(counts["customers_end"]),
        new_customers=int(counts["new_customers"]),
        retained=int(counts["retained"]),
        reactivated=int(counts["reactivated"]),
        revenue=float(sums["revenue"] or 0.0),
        profit=float(sums["profit"] or 0.0),
        revenue_previous=float(sums["previous"] or 0.0) if covered else None,
        active_customers=int(referrals["customers"]),
        referral_value=float(referrals["value"] or 0.0),
    )
    retention = measures.retention_rate
    if retention is None:
        notes.append(
            f"no customers at the start of the period ({start}): turnover and the "
            "acquisition rate are not measured"
        )
    elif retention > 1:
        notes.append(
            f"measured retention is {retention:.1%}: win-backs outnumber departures, so "
            "turnover counts as 0"
        )
    return dataclasses.replace(measures, notes=tuple(notes))


@dataclass(frozen=True)
class AssessmentInput:
    """One input of the assessment: its value and where it came from.

    ``source`` is ``"measured"`` (from the store), ``"given"`` (overridden or set in
    ``cvm.toml``), ``"derived"`` (the default target retention) or ``"missing"``
    (neither measured nor given; figures needing it are left out). ``basis`` says how
    it was measured or derived.
    """

    name: str
    label: str
    value: float | None
    unit: Unit
    source: Source
    basis: str

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Figure:
    """One figure of the assessment, with its formula and the inputs it used.

    ``value`` is ``None`` when an input is missing (named in ``missing``);
    ``in_ceiling`` tells whether the figure is a term of the spending ceiling.
    """

    name: str
    label: str
    value: float | None
    unit: Unit
    formula: str
    inputs: tuple[AssessmentInput, ...]
    in_ceiling: bool = False

    @property
    def missing(self) -> tuple[str, ...]:
        """The inputs without a value."""
        return tuple(i.name for i in self.inputs if i.value is None)

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return {
            "name": self.name,
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "formula": self.formula,
            "in_ceiling": self.in_ceiling,
            "missing": list(self.missing),
            "inputs": {i.name: {"value": i.value, "source": i.source} for i in self.inputs},
        }


@dataclass(frozen=True)
class Assessment:
    """The CRM investment assessment: inputs, figures and the spending ceiling.

    Attributes
    ----------
    inputs
        Every input by name (see :data:`INPUTS`), with value and source.
    figures
        Every figure by name, in display order, the two ceilings last.
    run_id, as_of
        The run measured (``None`` when every input was given).
    measures
        What the store measured (``None`` likewise).
    notes
        Caveats: short history, missing inputs, ….
    """

    inputs: dict[str, AssessmentInput]
    figures: dict[str, Figure]
    run_id: str | None = None
    as_of: dt.date | None = None
    measures: StoreMeasures | None = None
    notes: tuple[str, ...] = ()

    @property
    def spending_ceiling(self) -> float | None:
        """Revenue lost to turnover + referral value lost (``None`` if either is)."""
        return self.figures["spending_ceiling"].value

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "spending_ceiling": self.spending_ceiling,
            "ceiling_terms": list(CEILING_TERMS),
            "inputs": {name: item.to_dict() for name, item in self.inputs.items()},
            "figures": {name: item.to_dict() for name, item in self.figures.items()},
            "measures": self.measures.to_dict() if self.measures else None,
            "notes": list(self.notes),
        }


def _inputs(given: AssessmentInputs, measured: StoreMeasures | None) -> dict[str, AssessmentInput]:
    out: dict[str, AssessmentInput] = {}
    for name, (label, unit) in INPUTS.items():
        value: float | None = getattr(given, name)
        source: Source = "given"
        basis = "given"
        if value is None and name in MEASURABLE and measured is not None:
            value = getattr(measured, name)
            source, basis = ("measured", measured.basis(name))
        if value is None and name == "target_retention" and "turnover" in out:
            turnover = out["turnover"].value
            if turnover is not None:
                improvement = given.retention_improvement
                value = min(1.0 - turnover + improvement, 1.0)
                source = "derived"
                basis = (
                    f"retention 1 − turnover ({out['turnover'].source}) + "
                    f"retention_improvement {improvement:g}, at most 1"
                )
        if value is None:
            source = "missing"
            basis = "neither given nor measured" if name in MEASURABLE else "not given"
        out[name] = AssessmentInput(name, label, value, unit, source, basis)
    return out


def _figure(
    inputs: dict[str, AssessmentInput],
    name: str,
    label: str,
    unit: Unit,
    formula: str,
    uses: tuple[str, ...],
    compute: Callable[..., float],
) -> Figure:
    used = tuple(inputs[n] for n in uses)
    values = [i.value for i in used]
    value = None if any(v is None for v in values) else float(compute(*values))
    return Figure(name, label, value, unit, formula, used, in_ceiling=name in CEILING_TERMS)


def assess(
    given: AssessmentInputs | None = None, measured: StoreMeasures | None = None
) -> Assessment:
    """Compute the CRM investment assessment from given and measured inputs.

    Parameters
    ----------
    given
        Given inputs; each one that is not ``None`` overrides the measured figure.
    measured
        What the store measured (:func:`measure`); ``None`` uses the given inputs only.

    Returns
    -------
    Assessment
        Every figure of the module docstring with its inputs; a figure is ``None`` when
        one of its inputs is neither given nor measured.

    Examples
    --------
    The worked example: revenue 1 billion, 30 % turnover, 15 % market growth.

    >>> a = assess(AssessmentInputs(revenue=1e9, turnover=0.3, market_growth=0.15))
    >>> round(a.figures["revenue_lost_at_market_pace"].value)
    150000000
    >>> round(a.figures["acquisition_needed"].value, 2)
    0.45

    References
    ----------
    Reichheld, F. F. & Sasser, W. E. (1990). "Zero defections: quality comes to
    services", *Harvard Business Review* 68(5): 105-111.
    """
    given = given or AssessmentInputs()
    inputs = _inputs(given, measured)
    specs: list[tuple[str, str, Unit, str, tuple[str, ...], Callable[..., float]]] = [
        (
            "revenue_lost_to_turnover",
            "revenue lost to customer turnover",
            "money",
            "revenue × turnover",
            ("revenue", "turnover"),
            lambda r, t: r * t,
        ),
        (
            "revenue_lost_at_market_pace",
            "revenue still lost if acquisition only keeps pace with the market",
            "money",
            "revenue × max(turnover − market_growth, 0)",
            ("revenue", "turnover", "market_growth"),
            lambda r, t, g: r * max(t - g, 0.0),
        ),
        (
            "acquisition_needed",
            "acquisition rate needed to grow with the market",
            "rate",
            "turnover + market_growth",
            ("turnover", "market_growth"),
            lambda t, g: t + g,
        ),
        (
            "acquisition_gap",
            "acquisition rate still missing to grow with the market",
            "rate",
            "turnover + market_growth − acquisition_rate",
            ("turnover", "market_growth", "acquisition_rate"),
            lambda t, g, a: t + g - a,
        ),
        (
            "growth_versus_market",
            "revenue growth ahead of the market",
            "rate",
            "revenue_growth − market_growth",
            ("revenue_growth", "market_growth"),
            lambda rg, g: rg - g,
        ),
        (
            "replacement_effort",
            "sales and marketing effort spent replacing lost customers",
            "money",
            "expense × turnover",
            ("expense", "turnover"),
            lambda x, t: x * t,
        ),
        (
            "referral_value_lost",
            "referral value lost with departing customers",
            "money",
            "referral_value × turnover",
            ("referral_value", "turnover"),
            lambda v, t: v * t,
        ),
        (
            "retention_gain",
            "revenue gained by raising retention to the target",
            "money",
            "revenue × max(target_retention − (1 − turnover), 0)",
            ("revenue", "target_retention", "turnover"),
            lambda r, target, t: r * max(target - (1.0 - t), 0.0),
        ),
        (
            "spending_ceiling",
            "CRM spending ceiling",
            "money",
            "revenue_lost_to_turnover + referral_value_lost",
            ("revenue", "turnover", "referral_value"),
            lambda r, t, v: r * t + v * t,
        ),
        (
            "profit_ceiling",
            "CRM spending ceiling on a profit basis",
            "money",
            "margin_rate × revenue_lost_to_turnover + referral_value_lost",
            ("margin_rate", "revenue", "turnover", "referral_value"),
            lambda m, r, t, v: m * r * t + v * t,
        ),
    ]
    figures = {spec[0]: _figure(inputs, *spec) for spec in specs}
    notes = list(measured.notes if measured is not None else ())
    missing = [i for i in inputs.values() if i.value is None]
    for item in missing:
        needed = [f.label for f in figures.values() if item.name in [i.name for i in f.inputs]]
        if needed:
            notes.append(f"{item.label} is {item.basis}: left out {', '.join(needed)}")
    return Assessment(
        inputs=inputs,
        figures=figures,
        run_id=measured.run_id if measured else None,
        as_of=measured.as_of if measured else None,
        measures=measured,
        notes=tuple(notes),
    )


def assess_store(
    store: Store,
    run_id: str | None = None,
    *,
    settings: Settings | None = None,
    given: AssessmentInputs | None = None,
) -> Assessment:
    """Measure a run's inputs in the store and compute the assessment.

    Parameters
    ----------
    store
        The store, with an analysis run.
    run_id
        The run; the latest when ``None``.
    settings
        Settings; defaults when ``None``.
    given
        Given inputs and overrides; from ``settings.assess`` when ``None``.

    Raises
    ------
    NotFoundError
        If there is no such run.
    """
    settings = settings or Settings()
    given = given or AssessmentInputs.from_settings(settings.assess)
    return assess(given, measure(store, run_id, settings=settings))
