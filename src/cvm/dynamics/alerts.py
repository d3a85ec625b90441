"""Early warnings: the valuable customers who slipped between two snapshots.

Two snapshots of the same customers — a run and the one before it by ``as_of``, or any
two runs — are compared customer by customer, and a customer present in both raises
an alert when one of these rules holds (thresholds from
:class:`~cvm.config.AlertSettings`, ``[dynamics.alerts]`` in ``cvm.toml``; defaults in
brackets):

``tier_drop``
    In one of the best ``high_tiers`` [2] tiers at the earlier snapshot and in a
    worse tier (a higher tier number) at the later one.
``decline``
    In a stage of ``decline_from`` [growth, maturity] at the earlier snapshot and in
    one of ``decline_to`` [decline, departure] at the later one; the reason quotes
    the lifecycle rule that put the customer there.
``p_alive``
    P(alive) at or above ``p_alive_threshold`` [0.5] at the earlier snapshot and
    below it at the later one.
``value_drop``
    Total value positive at the earlier snapshot and down by more than
    ``value_drop_share`` [0.3] of it at the later one (exactly 30 % raises no alert;
    the share is rounded to 9 decimals first, so that float noise cannot tip it).
``detractor``
    In one of the best ``high_tiers`` tiers at either snapshot, with a latest NPS
    answer in the detractor range (0–6) at the later snapshot and not at the earlier
    one (a promoter, a passive or no answer before).

A missing figure (no P(alive) when no purchase model could be fitted, no NPS answer)
never raises an alert by itself. Customers in only one of the snapshots raise none:
snapshots are cumulative (every customer with a purchase on or before ``as_of``), so a
customer is new when their first purchase falls between the two dates, and is missing
from the later snapshot only when identity resolution merged them into another
customer; the summary counts both.

**One alert per customer.** A customer who meets several rules gets one alert, with
every rule (``rules``) and every reason in words and numbers (``reasons``), e.g.
``tier platinum → gold (tier 1 → 2); P(alive) 0.71 → 0.38 (below 0.50)``.

**Value at risk** — what the company stands to lose with the customer: the future
profit still expected from them at the later snapshot (``potential_value``, at least
0) plus the value already lost between the two snapshots (the fall in
``total_value``, 0 when it rose). Alerts are ranked by it, highest first; ties by the
earlier total value (highest first), then by ``customer_id``. For a customer whose
realized value did not move, it is about their potential value at the earlier
snapshot: a fall in P(alive) moves value from the first term to the second.

Everything runs as one set-based Ibis expression (a join of the two snapshots, the
rules as boolean columns, the reasons as ``CASE`` expressions), so it runs in the
store's engine, however many customers there are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, get_args

import ibis
import pandas as pd

from cvm.config import AlertRule, AlertSettings, Settings
from cvm.dynamics.card import find_run
from cvm.errors import ConfigError, DataError, NotFoundError, SchemaError
from cvm.store import Store

__all__ = [
    "ALERT_COLUMNS",
    "ALERT_RULES",
    "REQUIRED_COLUMNS",
    "AlertSummary",
    "EarlyWarnings",
    "compare_snapshots",
    "early_warnings",
]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)
Expr = Any  # ibis.expr.types.Value

#: The alert rules, in the order they are listed in an alert.
ALERT_RULES: Final[tuple[str, ...]] = get_args(AlertRule)

#: Snapshot columns the rules read.
REQUIRED_COLUMNS: Final[tuple[str, ...]] = (
    "customer_id",
    "tier",
    "tier_name",
    "lifecycle_stage",
    "lifecycle_reason",
    "p_alive",
    "total_value",
    "potential_value",
    "nps",
    "nps_category",
)

_DETRACTOR: Final[str] = "detractor"


# -- number formatting inside the engine ------------------------------------------------
def _whole(value: Expr) -> Expr:
    return value.cast("int64").cast("string")


def _amount(value: Expr) -> Expr:
    """Show an amount with two decimals (``-12.50``), rounded to the cent."""
    cents = (value * 100).round(0).cast("int64")
    size = cents.abs()
    text = _whole(size // 100) + "." + _whole(size % 100 + 100).substr(1, 2)
    return ((cents < 0).ifelse("-", "") + text).fill_null("?")


def _probability(p: Expr) -> Expr:
    """Show a probability with two decimals, truncated (0.499 as 0.49, below 0.50)."""
    hundredths = (p * 100).round(6).floor().cast("int64")
    padded = "0." + _whole(hundredths + 100).substr(1, 2)
    return (hundredths >= 100).ifelse("1.00", padded).fill_null("?")


def _percent(share: Expr) -> Expr:
    """Show a share as a percentage with one decimal, truncated (0.3004 as 30.0)."""
    tenths = (share * 1000).round(6).floor().cast("int64")
    return (_whole(tenths // 10) + "." + _whole(tenths % 10)).fill_null("?")


def _fmt_probability(value: float) -> str:
    return f"{value:.2f}" if round(value, 2) == value else f"{value:g}"


def _fmt_share(value: float) -> str:
    return f"{value * 100:.10g} %"


# -- the rules --------------------------------------------------------------------------
def _paired(before: Table, after: Table) -> Table:
    """Pair the customers present in both snapshots: each figure before and after."""
    for name, table in (("before", before), ("after", after)):
        missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
        if missing:
            raise SchemaError(
                f"the {name} snapshot has no {', '.join(map(repr, missing))} column",
                column=missing[0],
                expected=", ".join(REQUIRED_COLUMNS),
            )

    def side(table: Table, suffix: str) -> Table:
        return table.select(
            customer_id=table.customer_id.cast("string"),
            **{
                f"tier_{suffix}": table.tier.cast("int64"),
                f"tier_name_{suffix}": table.tier_name.cast("string"),
                f"stage_{suffix}": table.lifecycle_stage.cast("string"),
                f"stage_reason_{suffix}": table.lifecycle_reason.cast("string"),
                f"p_alive_{suffix}": table.p_alive.cast("float64"),
                f"total_value_{suffix}": table.total_value.cast("float64"),
                f"potential_value_{suffix}": table.potential_value.cast("float64"),
                f"nps_{suffix}": table.nps.cast("float64"),
                f"nps_category_{suffix}": table.nps_category.cast("string"),
            },
        )

    return side(before, "before").join(side(after, "after"), "customer_id")


def _value_fall(t: Table) -> Expr:
    """Return the relative fall of total value (positive = down), to 9 decimals."""
    before = t.total_value_before
    return ((before - t.total_value_after) / before).round(9)


def _conditions(t: Table, s: AlertSettings) -> dict[str, Expr]:
    high = s.high_tiers
    return {
        "tier_drop": (t.tier_before <= high) & (t.tier_after > t.tier_before),
        "decline": t.stage_before.isin(list(s.decline_from))
        & t.stage_after.isin(list(s.decline_to)),
        "p_alive": (t.p_alive_before >= s.p_alive_threshold)
        & (t.p_alive_after < s.p_alive_threshold),
        "value_drop": (t.total_value_before > 0) & (_value_fall(t) > s.value_drop_share),
        "detractor": ((t.tier_before <= high) | (t.tier_after <= high)).fill_null(False)
        & (t.nps_category_after == _DETRACTOR)
        & (t.nps_category_before.fill_null("") != _DETRACTOR),
    }


def _reasons(t: Table, s: AlertSettings) -> dict[str, Expr]:
    threshold = _fmt_probability(s.p_alive_threshold)
    return {
        "tier_drop": "tier "
        + t.tier_name_before.fill_null("?")
        + " → "
        + t.tier_name_after.fill_null("?")
        + " (tier "
        + _whole(t.tier_before)
        + " → "
        + _whole(t.tier_after)
        + ")",
        "decline": "stage "
        + t.stage_before
        + " → "
        + t.stage_after
        + ": "
        + t.stage_reason_after.fill_null("?"),
        "p_alive": "P(alive) "
        + _probability(t.p_alive_before)
        + " → "
        + _probability(t.p_alive_after)
        + f" (below {threshold})",
        "value_drop": "total value "
        + _amount(t.total_value_before)
        + " → "
        + _amount(t.total_value_after)
        + " (down "
        + _percent(_value_fall(t))
        + f" %, more than {_fmt_share(s.value_drop_share)})",
        "detractor": "tier "
        + t.tier_name_after.fill_null("?")
        + " customer became a detractor (NPS "
        + _whole(t.nps_after.floor()).fill_null("?")
        + "; before: "
        + t.nps_category_before.fill_null("no answer")
        + ")",
    }


def _chosen_rules(settings: AlertSettings, rules: Sequence[str] | None) -> list[str]:
    """Return the rules to evaluate, in :data:`ALERT_RULES` order."""
    wanted = list(settings.rules if rules is None else rules)
    unknown = [r for r in wanted if r not in ALERT_RULES]
    if unknown:
        raise ConfigError(
            f"unknown alert rule {unknown[0]!r}",
            key="dynamics.alerts.rules",
            value=unknown[0],
            expected=", ".join(ALERT_RULES),
        )
    if not wanted:
        raise ConfigError("give at least one alert rule", key="dynamics.alerts.rules")
    return [r for r in ALERT_RULES if r in wanted]


def _joined(flags: list[Expr], texts: list[Expr | str], separator: str) -> Expr:
    """Join the texts whose flag is true with ``separator`` (at least one flag is true)."""
    text = ibis.literal("")
    for flag, part in zip(flags, texts, strict=True):
        text = text + flag.ifelse(part + separator, "")
    return text.substr(0, text.length() - len(separator))


def _flagged(before: Table, after: Table, s: AlertSettings, rules: list[str]) -> Table:
    """Every alerted customer: the figures, one boolean column per rule, value at risk."""
    paired = _paired(before, after)
    conditions = _conditions(paired, s)
    marked = paired.mutate(**{f"_rule_{r}": conditions[r].fill_null(False) for r in rules})
    any_rule = ibis.or_(*(marked[f"_rule_{r}"] for r in rules))
    alerted = marked.filter(any_rule)
    reasons = _reasons(alerted, s)
    flags = [alerted[f"_rule_{r}"] for r in rules]
    fall = (alerted.total_value_before - alerted.total_value_after).clip(lower=0).fill_null(0.0)
    potential = alerted.potential_value_after.clip(lower=0).fill_null(0.0)
    return alerted.mutate(
        value_at_risk=potential + fall,
        rules=_joined(flags, list(rules), ", "),
        reasons=_joined(flags, [reasons[r] for r in rules], "; "),
    )


#: Columns of an alert, in order (see :func:`compare_snapshots`).
ALERT_COLUMNS: Final[tuple[str, ...]] = (
    "rank",
    "customer_id",
    "value_at_risk",
    "rules",
    "reasons",
    "tier_before",
    "tier_after",
    "tier_name_before",
    "tier_name_after",
    "stage_before",
    "stage_after",
    "p_alive_before",
    "p_alive_after",
    "total_value_before",
    "total_value_after",
    "potential_value_before",
    "potential_value_after",
    "nps_category_before",
    "nps_category_after",
)


def _ranked(flagged: Table) -> Table:
    order = [
        ibis.desc(flagged.value_at_risk),
        ibis.desc(flagged.total_value_before.fill_null(0.0)),
        flagged.customer_id,
    ]
    ranked = flagged.mutate(rank=ibis.row_number().over(order_by=order) + 1)
    return ranked.select(*ALERT_COLUMNS).order_by("rank")


def compare_snapshots(
    before: Table,
    after: Table,
    settings: AlertSettings | None = None,
    *,
    rules: Sequence[str] | None = None,
) -> Table:
    """Raise the alerts between two snapshots, ranked by value at risk.

    Parameters
    ----------
    before, after
        The earlier and the later snapshot (Ibis tables or pandas DataFrames): one row
        per customer with the columns of ``customer_snapshots`` that the rules read
        (:data:`REQUIRED_COLUMNS`).
    settings
        The rules' thresholds and the rules that run; defaults when ``None``.
    rules
        The rules to evaluate (names of :data:`ALERT_RULES`), instead of the
        settings' ``rules``.

    Returns
    -------
    Table
        One row per alerted customer, ordered by ``rank`` (1 = the most value at
        risk): ``customer_id``, ``value_at_risk``, ``rules`` (comma-separated),
        ``reasons`` (``"; "``-separated sentences, one per rule, with the numbers),
        and the figures before and after (:data:`ALERT_COLUMNS`).

    Raises
    ------
    SchemaError
        If a snapshot lacks a column the rules read.
    ConfigError
        If a rule name is unknown or no rule is given.
    """
    s = settings or AlertSettings()
    before, after = (
        ibis.memtable(t) if isinstance(t, pd.DataFrame) else t for t in (before, after)
    )
    return _ranked(_flagged(before, after, s, _chosen_rules(s, rules)))


# -- between two stored runs ------------------------------------------------------------
@dataclass(frozen=True)
class AlertSummary:
    """What the alerts between two runs add up to.

    Attributes
    ----------
    run_id, as_of
        The later run.
    against, against_as_of
        The earlier run it is compared with.
    customers
        Customers in both snapshots (the only ones the rules can alert).
    new_customers, lost_customers
        Customers only in the later snapshot, only in the earlier one.
    alerts
        Alerted customers (one alert per customer).
    value_at_risk
        Their total value at risk.
    rules
        The rules evaluated.
    by_rule
        Per rule: ``alerts`` (customers who meet it) and ``value_at_risk`` (theirs); a
        customer who meets several rules counts under each, so these add up to more
        than the totals.
    settings
        The thresholds used.
    """

    run_id: str
    as_of: dt.date
    against: str
    against_as_of: dt.date
    customers: int
    new_customers: int
    lost_customers: int
    alerts: int
    value_at_risk: float
    rules: list[str]
    by_rule: dict[str, dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        data["against_as_of"] = self.against_as_of.isoformat()
        return data


@dataclass(frozen=True)
class EarlyWarnings:
    """The alerts between two runs: a lazy table and its summary.

    Attributes
    ----------
    table
        The alerts as an Ibis table over the store (see :func:`compare_snapshots`);
        it reads the store when executed, so use it while the store is open.
    summary
        Counts by rule and value at risk.
    """

    table: Table
    summary: AlertSummary
    store: Store = field(repr=False)

    def rows(self, top: int | None = None) -> list[dict[str, Any]]:
        """Return the first ``top`` alerts (all when ``None``) as plain dicts, by rank."""
        expr = self.table if top is None else self.table.limit(top)
        rows: list[dict[str, Any]] = self.store.to_arrow(expr).to_pylist()
        return rows

    def to_pandas(self, top: int | None = None) -> pd.DataFrame:
        """Return the first ``top`` alerts (all when ``None``) as a DataFrame."""
        expr = self.table if top is None else self.table.limit(top)
        frame: pd.DataFrame = self.store.to_arrow(expr).to_pandas()
        return frame

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        """Return the summary and the first ``top`` alerts as plain data."""
        return {"summary": self.summary.to_dict(), "alerts": self.rows(top)}


def _previous_run(store: Store, run_id: str, as_of: dt.date) -> tuple[str, dt.date]:
    row = store.con.execute(
        "SELECT run_id, as_of FROM runs WHERE as_of < ? ORDER BY as_of DESC, created_at DESC "
        "LIMIT 1",
        [as_of],
    ).fetchone()
    if row is None:
        raise NotFoundError(
            f"no run before {as_of.isoformat()} to compare run {run_id} with; "
            "run 'cvm analyze --as-of DATE' at an earlier date first",
            path=store.path,
        )
    return str(row[0]), row[1]


def early_warnings(
    store: Store,
    run_id: str | None = None,
    *,
    against: str | None = None,
    settings: Settings | None = None,
    rules: Sequence[str] | None = None,
) -> EarlyWarnings:
    """Compare a run with an earlier one and raise alerts, ranked by value at risk.

    Parameters
    ----------
    store
        The store.
    run_id
        The later run; the latest when ``None``.
    against
        The earlier run; when ``None``, the run with the latest ``as_of`` before the
        later run's (the most recently created of them on a tie).
    settings
        Settings (``[dynamics.alerts]``); defaults when ``None``.
    rules
        The rules to evaluate (names of :data:`ALERT_RULES`), instead of the
        settings' ``rules``.

    Returns
    -------
    EarlyWarnings
        The alerts (a lazy table) and their summary.

    Raises
    ------
    NotFoundError
        If a run does not exist, or there is no earlier run to compare with.
    DataError
        If ``against`` is the same run or a later one than ``run_id``.
    ConfigError
        If a rule name is unknown or no rule is given.
    """
    s = (settings or Settings()).dynamics.alerts
    chosen = _chosen_rules(s, rules)
    run_id, as_of, _ = find_run(store, run_id)
    if against is None:
        against, against_as_of = _previous_run(store, run_id, as_of)
    else:
        against, against_as_of, _ = find_run(store, against)
        if against == run_id:
            raise DataError(f"cannot compare run {run_id} with itself")
        if against_as_of > as_of:
            raise DataError(
                f"run {against} (as of {against_as_of.isoformat()}) is later than run "
                f"{run_id} (as of {as_of.isoformat()}); compare a run with an earlier one"
            )
    snapshots = store.table("customer_snapshots")
    before = snapshots.filter(snapshots.run_id == against)
    after = snapshots.filter(snapshots.run_id == run_id)
    flagged = _flagged(before, after, s, chosen)
    totals = flagged.aggregate(
        alerts=flagged.count(),
        value_at_risk=flagged.value_at_risk.sum(),
        **{f"n_{r}": flagged[f"_rule_{r}"].cast("int64").sum() for r in chosen},
        **{
            f"v_{r}": flagged[f"_rule_{r}"].ifelse(flagged.value_at_risk, 0.0).sum() for r in chosen
        },
    )
    got = store.to_arrow(totals).to_pylist()[0]
    row = store.con.execute(
        "SELECT (SELECT count(*) FROM customer_snapshots WHERE run_id = ?), "
        "(SELECT count(*) FROM customer_snapshots WHERE run_id = ?), "
        "(SELECT count(*) FROM customer_snapshots a JOIN customer_snapshots b "
        "USING (customer_id) WHERE a.run_id = ? AND b.run_id = ?)",
        [against, run_id, against, run_id],
    ).fetchone()
    assert row is not None
    n_before, n_after, both = (int(v) for v in row)
    summary = AlertSummary(
        run_id=run_id,
        as_of=as_of,
        against=against,
        against_as_of=against_as_of,
        customers=both,
        new_customers=n_after - both,
        lost_customers=n_before - both,
        alerts=int(got["alerts"]),
        value_at_risk=float(got["value_at_risk"] or 0.0),
        rules=chosen,
        by_rule={
            r: {"alerts": int(got[f"n_{r}"] or 0), "value_at_risk": float(got[f"v_{r}"] or 0.0)}
            for r in chosen
        },
        settings=s.model_dump(),
    )
    return EarlyWarnings(table=_ranked(flagged), summary=summary, store=store)
