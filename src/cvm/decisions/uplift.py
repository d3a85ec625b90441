"""Measured uplift: what logged actions did to retention and spend, against control groups.

An action is logged per customer (the ``actions`` table: ``customer_id``, ``action``,
``ts``, ``group`` = treatment or control, ``campaign``, ``cost``, ``channel``). A
*campaign* is the rows sharing a ``campaign`` value (rows without one form a campaign
named after their action); its customers are those rows' customers, and each
customer's campaign date is the ``ts`` of their (first) row. The outcome of a customer
is what they did in the window after that moment: transactions with
``ts`` in ``(action ts, action ts + window_days]`` (default 90 days).

Per campaign (and per action, over the campaigns that tested it) the report gives,
treatment − control:

* **retention uplift** — the difference of the shares of customers who bought in the
  window (a transaction with a positive amount), with Newcombe's hybrid score interval
  (Newcombe 1998, method 10) or the Wald interval;
* **spend uplift** — the difference of the mean net revenue per customer in the window
  (returns subtract; customers who bought nothing count as 0), with Welch's t interval
  (Welch 1947). Revenue **per buyer** is compared too, but only descriptively: who buys
  is itself changed by the action, so that difference is not a randomised comparison;
* **incremental revenue** = spend uplift × treated customers, and **incremental profit**
  = incremental revenue × margin rate − the campaign's cost (the sum of its rows'
  ``cost``), each with its interval (the cost is known, so the profit interval is the
  revenue interval scaled and shifted).

The comparison is causal only because the groups were randomised; this is the
"two-model" uplift of Radcliffe & Surry (2011) measured on a campaign's whole target
population rather than modelled per customer, and the test-versus-control reading of
campaign results in Blattberg, Kim & Neslin (2008, ch. 12).

The unit of measurement is a *cell*: one action within one campaign. A campaign's
figures combine its cells and an action's figures combine the campaigns that tested it,
as a stratified difference (each cell weighted by its customers; the intervals combine
the cells' own limits, Zou & Donner 2008) so that campaigns with different treatment
shares cannot bias each other (Simpson's paradox). Cells that cannot be measured — no
control group, no treatment group, fewer than 2 customers in a group — are left out of
the combination and named in the notes; so are, for actions, campaigns whose window
has not ended by the data's last day (``as_of``).

Customers in both groups of one cell are left out (and counted: ``conflicting``).
Customers the store does not know (no customer record, transaction or identity) are
kept and counted (``unknown_customers``): whether a customer is known may depend on
whether they bought after the action, so dropping them would condition on the outcome.

:func:`learned_response_rates` turns the per-action retention uplift into the response
rates target lists use in place of the configured ones.

References
----------
Newcombe, R. G. (1998). Interval estimation for the difference between independent
proportions: comparison of eleven methods. Statistics in Medicine 17(8), 873–890.

Welch, B. L. (1947). The generalization of 'Student's' problem when several different
population variances are involved. Biometrika 34(1–2), 28–35.

Zou, G. Y. & Donner, A. (2008). Construction of confidence limits about effect
measures: a general approach. Statistics in Medicine 27(10), 1693–1702.

Radcliffe, N. J. & Surry, P. D. (2011). Real-world uplift modelling with
significance-based uplift trees. Stochastic Solutions white paper.

Blattberg, R. C., Kim, B.-D. & Neslin, S. A. (2008). Database Marketing: Analyzing and
Managing Customers. Springer (ch. 12, "Test design and analysis").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import ibis
import numpy as np

from cvm.config import Settings
from cvm.decisions.intervals import ProportionMethod, mover, proportion_interval, welch_interval
from cvm.decisions.outcomes import MIN_GROUP, Cell, cell_outcomes
from cvm.dynamics.overview import input_table
from cvm.errors import NotFoundError, SchemaError
from cvm.store import Store

__all__ = [
    "Effect",
    "GroupStats",
    "Uplift",
    "UpliftReport",
    "campaign_uplift",
    "learned_response_rates",
    "measure_uplift",
]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)


@dataclass(frozen=True)
class Effect:
    """A treatment − control difference and its confidence interval.

    Attributes
    ----------
    estimate, low, high
        The difference and its interval's limits.
    method
        How the interval was formed: ``"newcombe"``, ``"wald"`` or ``"welch"``.
    """

    estimate: float
    low: float
    high: float
    method: str

    @property
    def width(self) -> float:
        """Width of the interval (high − low)."""
        return self.high - self.low

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the interval (limits included)."""
        return self.low <= value <= self.high


@dataclass(frozen=True)
class GroupStats:
    """What one group (treatment or control) did in the window.

    Attributes
    ----------
    customers, buyers
        Customers in the group, and those who bought in the window.
    revenue
        Their net revenue in the window.
    cost
        Sum of the ``cost`` of the group's action rows.
    unknown_customers
        Customers the store does not know (kept; see the module notes).
    retention, revenue_per_customer, revenue_per_buyer
        buyers / customers, revenue / customers, revenue / buyers (``None`` when the
        denominator is 0).
    """

    customers: int
    buyers: int
    revenue: float
    cost: float
    unknown_customers: int
    retention: float | None
    revenue_per_customer: float | None
    revenue_per_buyer: float | None


@dataclass(frozen=True)
class Uplift:
    """The measured effect of one campaign, or of one action over its campaigns.

    Attributes
    ----------
    name
        The campaign (campaign rows) or the action (action rows).
    campaigns, actions
        The campaigns and actions whose cells were combined.
    first_action, last_action, window_end
        Earliest and latest action time, and when the last window ends.
    window_complete
        Whether every window ended by the data's last day; otherwise the effect is the
        effect so far.
    treatment, control
        Each group's figures (summed over the combined cells).
    conflicting
        Customers in both groups of a cell, left out.
    cost
        The cost of the combined cells (both groups' rows).
    retention, spend, spend_per_buyer
        Uplift of the retention rate (share points as a fraction), of revenue per
        customer and of revenue per buyer (descriptive: buyers are not randomised),
        each treatment − control with its interval; ``None`` when not measurable.
    incremental_revenue, incremental_profit
        spend uplift × treated customers, and that × margin rate − cost.
    notes
        Why something was not measured, what was left out, what to keep in mind.
    """

    name: str
    campaigns: list[str]
    actions: list[str]
    first_action: dt.datetime | None
    last_action: dt.datetime | None
    window_end: dt.datetime | None
    window_complete: bool
    treatment: GroupStats
    control: GroupStats
    conflicting: int
    cost: float
    retention: Effect | None
    spend: Effect | None
    spend_per_buyer: Effect | None
    incremental_revenue: Effect | None
    incremental_profit: Effect | None
    notes: list[str] = field(default_factory=list)

    @property
    def measurable(self) -> bool:
        """Whether the effects could be measured (both groups present)."""
        return self.retention is not None


@dataclass(frozen=True)
class UpliftReport:
    """Measured uplift per campaign and per action.

    Attributes
    ----------
    as_of
        The data's last day used (transactions and actions after it are ignored);
        ``None`` when there is no data at all.
    window_days, confidence, retention_interval, margin_rate
        The settings the report was computed with.
    campaigns
        One row per campaign, in order of their first action.
    actions
        One row per action, combining the campaigns that tested it with a finished
        window; in order of name.
    """

    as_of: dt.date | None
    window_days: int
    confidence: float
    retention_interval: str
    margin_rate: float
    campaigns: list[Uplift]
    actions: list[Uplift]

    def campaign(self, name: str) -> Uplift:
        """Return one campaign's row.

        Raises
        ------
        NotFoundError
            If no campaign has that name.
        """
        return _find(self.campaigns, name, "campaign")

    def action(self, name: str) -> Uplift:
        """Return one action's row.

        Raises
        ------
        NotFoundError
            If no action has that name.
        """
        return _find(self.actions, name, "action")

    def response_rates(self, max_interval_width: float = 0.1) -> dict[str, float]:
        """Return each action's learned response rate (see :func:`learned_response_rates`)."""
        return {
            row.name: max(0.0, row.retention.estimate)
            for row in self.actions
            if row.retention is not None and row.retention.width <= max_interval_width
        }

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        data: dict[str, Any] = _plain(asdict(self))
        return data


def _find(rows: list[Uplift], name: str, kind: str) -> Uplift:
    for row in rows:
        if row.name == name:
            return row
    known = ", ".join(repr(r.name) for r in rows) or "none"
    raise NotFoundError(f"no {kind} named {name!r} among the logged actions (known: {known})")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


# -- combining cells --------------------------------------------------------------------
@dataclass(frozen=True)
class _Options:
    window: dt.timedelta
    end: dt.datetime
    confidence: float
    method: ProportionMethod
    margin_rate: float


def _group(cells: Sequence[Cell], i: int) -> GroupStats:
    n = int(sum(c.n[i] for c in cells))
    buyers = int(sum(c.buyers[i] for c in cells))
    revenue = float(sum(c.revenue[i] for c in cells))
    return GroupStats(
        customers=n,
        buyers=buyers,
        revenue=revenue,
        cost=float(sum(c.cost[i] for c in cells)),
        unknown_customers=int(sum(c.unknown[i] for c in cells)),
        retention=buyers / n if n else None,
        revenue_per_customer=revenue / n if n else None,
        revenue_per_buyer=revenue / buyers if buyers else None,
    )


def _stack(cells: Sequence[Cell], name: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Treatment values of every cell, then control values."""
    values = np.array([getattr(c, name) for c in cells], dtype=np.float64)
    return np.concatenate([values[:, 0], values[:, 1]])


def _effects(
    cells: Sequence[Cell], by: str, options: _Options
) -> tuple[Effect, Effect, Effect | None, Effect, str | None]:
    """Retention, spend, per-buyer spend and incremental-revenue effects of measurable cells."""
    n = _stack(cells, "n")
    k = len(cells)
    size = n[:k] + n[k:]
    weights = size / size.sum()
    signs = np.concatenate([weights, -weights])
    p, low, high = proportion_interval(
        _stack(cells, "buyers"), n, options.confidence, options.method
    )
    retention = Effect(*mover(p, low, high, signs), method=options.method)
    mean, var = _stack(cells, "mean"), _stack(cells, "var")
    spend = Effect(*welch_interval(mean, var, n, signs, options.confidence), method="welch")
    treated = np.concatenate([n[:k], -n[:k]])
    revenue = Effect(*welch_interval(mean, var, n, treated, options.confidence), method="welch")
    buyers = _stack(cells, "buyers")
    enough = (buyers[:k] >= MIN_GROUP) & (buyers[k:] >= MIN_GROUP)
    per_buyer = None
    note = None
    if enough.any():
        both = np.concatenate([enough, enough])
        size_b = (buyers[:k] + buyers[k:])[enough]
        w = size_b / size_b.sum()
        per_buyer = Effect(
            *welch_interval(
                _stack(cells, "buyer_mean")[both],
                _stack(cells, "buyer_var")[both],
                buyers[both],
                np.concatenate([w, -w]),
                options.confidence,
            ),
            method="welch",
        )
    if not enough.all():
        names = ", ".join(_label(c, by) for c, ok in zip(cells, enough, strict=True) if not ok)
        note = f"spend per buyer: fewer than {MIN_GROUP} buyers in a group ({names})"
    return retention, spend, per_buyer, revenue, note


def _label(cell: Cell, by: str) -> str:
    return f"campaign '{cell.campaign}'" if by == "action" else f"action '{cell.action}'"


def _combine(name: str, cells: list[Cell], by: str, options: _Options) -> Uplift:
    """One report row from the cells of a campaign (``by="campaign"``) or an action."""
    notes: list[str] = []
    used: list[Cell] = []
    for cell in cells:
        problem = cell.problem
        complete = cell.last + options.window <= options.end
        if problem is None and (complete or by == "campaign"):
            used.append(cell)
        elif problem is not None:
            notes.append(f"{_label(cell, by)}: {problem}; not measured")
        else:
            notes.append(
                f"{_label(cell, by)}: its window has not ended by the data's last day; left out"
            )
    shown = used or cells  # the figures of what was measured, else of everything
    first = min(c.first for c in shown)
    last = max(c.last for c in shown)
    window_end = last + options.window
    complete = window_end <= options.end
    if used and not complete:
        notes.append(
            f"the window ends {window_end:%Y-%m-%d}, after the data's last day "
            f"({options.end - dt.timedelta(days=1):%Y-%m-%d}): the effect so far"
        )
    conflicting = sum(c.conflicting for c in shown)
    if conflicting:
        notes.append(f"{conflicting} customers were in both groups and are left out")
    treatment, control = _group(shown, 0), _group(shown, 1)
    unknown = treatment.unknown_customers + control.unknown_customers
    if unknown:
        notes.append(
            f"{unknown} customers are unknown to the store (no customer record, transaction "
            "or identity); kept, counting as customers who bought nothing"
        )
    cost = treatment.cost + control.cost
    retention = spend = per_buyer = revenue = profit = None
    if used:
        retention, spend, per_buyer, revenue, note = _effects(used, by, options)
        if note:
            notes.append(note)
        m = options.margin_rate
        profit = Effect(
            revenue.estimate * m - cost, revenue.low * m - cost, revenue.high * m - cost, "welch"
        )
    return Uplift(
        name=name,
        campaigns=sorted({c.campaign for c in shown}),
        actions=sorted({c.action for c in shown}),
        first_action=first,
        last_action=last,
        window_end=window_end,
        window_complete=complete,
        treatment=treatment,
        control=control,
        conflicting=conflicting,
        cost=cost,
        retention=retention,
        spend=spend,
        spend_per_buyer=per_buyer,
        incremental_revenue=revenue,
        incremental_profit=profit,
        notes=notes,
    )


def _require(table: Table, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SchemaError(
            f"{name} lacks the column{'s' if len(missing) > 1 else ''} "
            + ", ".join(repr(c) for c in missing)
        )


def measure_uplift(
    actions: Table,
    transactions: Table,
    *,
    known: Table | None = None,
    window_days: int = 90,
    confidence: float = 0.95,
    retention_interval: ProportionMethod = "newcombe",
    margin_rate: float = 0.3,
    as_of: dt.date | None = None,
) -> UpliftReport:
    """Measure the uplift of logged actions from Ibis tables (any backend).

    Parameters
    ----------
    actions
        Actions: ``customer_id``, ``action``, ``ts``, ``group`` and optionally
        ``campaign`` and ``cost``.
    transactions
        Transactions: ``customer_id``, ``ts``, ``amount``.
    known
        A table whose ``customer_id`` lists the customers the store knows (to count
        unknown ones); ``None`` counts none as unknown.
    window_days
        Days after an action whose purchases count (``(ts, ts + window_days]``).
    confidence
        Confidence level of every interval.
    retention_interval
        ``"newcombe"`` (Newcombe 1998, method 10) or ``"wald"``.
    margin_rate
        Share of incremental revenue that is profit.
    as_of
        Last day of data to use; the last transaction's day when ``None``.

    Returns
    -------
    UpliftReport
        One row per campaign and per action (empty when there are no actions).

    Raises
    ------
    SchemaError
        If a table lacks a required column.
    ValidationError
        If an action's group is neither ``"treatment"`` nor ``"control"``.
    ValueError
        If ``window_days`` is below 1 or ``confidence`` not in (0, 1).
    """
    _require(actions, "actions", ("customer_id", "action", "ts", "group"))
    _require(transactions, "transactions", ("customer_id", "ts", "amount"))
    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if as_of is None:
        last = transactions.ts.max().to_pyarrow().as_py()
        if last is None:
            last = actions.ts.max().to_pyarrow().as_py()
        as_of = last.date() if last is not None else None
    report = UpliftReport(
        as_of=as_of,
        window_days=window_days,
        confidence=confidence,
        retention_interval=retention_interval,
        margin_rate=margin_rate,
        campaigns=[],
        actions=[],
    )
    if as_of is None:
        return report
    end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
    options = _Options(
        window=dt.timedelta(days=window_days),
        end=end,
        confidence=confidence,
        method=retention_interval,
        margin_rate=margin_rate,
    )
    cells = cell_outcomes(actions, transactions, known, window_days=window_days, end=end)
    by_campaign: dict[str, list[Cell]] = {}
    by_action: dict[str, list[Cell]] = {}
    for cell in sorted(cells, key=lambda c: (c.first, c.campaign, c.action)):
        by_campaign.setdefault(cell.campaign, []).append(cell)
        by_action.setdefault(cell.action, []).append(cell)
    report.campaigns.extend(_combine(k, v, "campaign", options) for k, v in by_campaign.items())
    report.actions.extend(_combine(k, by_action[k], "action", options) for k in sorted(by_action))
    return report


def _known_customers(store: Store) -> Table:
    """Every customer id the store knows, with unified ids (as the ingest check reads it)."""
    customers = input_table(store, "customers")
    transactions = input_table(store, "transactions")
    identities = input_table(store, "identities")
    parts = [
        customers.select(customer_id=customers.customer_id.cast("string")),
        transactions.select(customer_id=transactions.customer_id.cast("string")),
        identities.select(customer_id=identities.customer_id.cast("string")),
        identities.select(customer_id=identities.source_id.cast("string")),
    ]
    return ibis.union(*parts, distinct=True)


def campaign_uplift(
    store: Store, settings: Settings | None = None, *, as_of: dt.date | None = None
) -> UpliftReport:
    """Measure the uplift of the store's logged actions, per campaign and per action.

    Reads ``actions`` and ``transactions`` with unified customer ids; the window,
    confidence and interval come from ``settings.decisions.uplift``, the margin rate
    from ``settings.value.margin_rate``.

    Parameters
    ----------
    store
        The store.
    settings
        Settings; defaults when ``None``.
    as_of
        Last day of data to use; the last transaction's day when ``None``.

    Returns
    -------
    UpliftReport
        See :func:`measure_uplift`; empty when no actions are logged.
    """
    settings = settings or Settings()
    options = settings.decisions.uplift
    return measure_uplift(
        input_table(store, "actions"),
        input_table(store, "transactions"),
        known=_known_customers(store),
        window_days=options.window_days,
        confidence=options.confidence,
        retention_interval=options.retention_interval,
        margin_rate=settings.value.margin_rate,
        as_of=as_of,
    )


def learned_response_rates(
    store: Store, settings: Settings | None = None, *, as_of: dt.date | None = None
) -> dict[str, float]:
    """Per action, the response rate measured by its controlled campaigns.

    The rate of an action is its measured retention uplift (the stratified difference
    over its campaigns with a control group and a finished window), floored at 0, and
    only when the measurement is *informative*: its interval is at most
    ``settings.decisions.uplift.max_interval_width`` wide. Informative means precise,
    not significant: a precisely measured effect near 0 (or below, hence 0) is kept,
    because it is what the action does; keeping only intervals that exclude 0 would
    overstate the rates (the winner's curse). Actions left out keep their configured
    rates in targeting.

    Parameters
    ----------
    store
        The store.
    settings
        Settings; defaults when ``None``.
    as_of
        Last day of data to use; the last transaction's day when ``None``.

    Returns
    -------
    dict[str, float]
        Action → incremental probability of buying in the window (in [0, 1]).
    """
    settings = settings or Settings()
    report = campaign_uplift(store, settings, as_of=as_of)
    return report.response_rates(settings.decisions.uplift.max_interval_width)
