"""Target lists: which customers to contact for an action, under a budget.

For one action of the playbook, every customer the playbook gives that action is a
candidate, and contacting customer *i* is worth, in expectation,

    profit_i = r × v_i − c_i

where ``r`` is the action's response rate — the *incremental* share of contacted
customers whose outcome the contact changes (retention or purchase uplift over doing
nothing, as a control group measures it; ``[decisions] response_rates``, or learned
rates passed as ``rates``) — ``v_i`` the customer's value at stake for that action
(``[decisions] value_at_stake``: potential value by default, realized value for win
back) and ``c_i`` the cost of the contact: the action's offer cost
(``[decisions] contact_costs``) plus the cost of the customer's channel
(``[decisions] channel_costs``). This is the expected-profit targeting rule of
database marketing (Blattberg, Kim & Neslin 2008): contact a customer when
the incremental margin expected exceeds the cost of contact.

Choosing customers to maximise Σ profit_i with Σ c_i ≤ budget is a 0/1 knapsack
problem. :func:`select_within_budget` solves it greedily (Dantzig 1957): customers with
positive expected profit are taken in decreasing order of profit per unit of cost (ties
by profit, then ``customer_id``), skipping any that no longer fits; customers with zero
or negative expected profit are never taken, whatever the budget. When every cost is
equal — one channel per action, the usual case — profit per cost orders customers
exactly as profit does and the greedy list **is** optimal. With unequal costs it can
leave budget unused, but it falls short of the optimum by less than the profit of one
customer, the first that did not fit (the bound of the linear relaxation, Dantzig
1957); it is also compared with the single most profitable customer that fits and the
better of the two is kept, which guarantees at least half the optimum (Martello & Toth
1990). Money is counted in integer millionths, so rounding never exceeds the budget.

A share of the chosen customers is then held out at random as a **control group**: they
are not contacted, and comparing them with the treated customers measures the action's
real effect (Blattberg, Kim & Neslin 2008; :mod:`cvm.decisions.uplift`). The
hold-out is stratified: customers are sorted by rule and by quintile of expected profit
(random order within each), and every 1/share-th is taken from a random start
(systematic sampling, Cochran 1977). Every stratum then gives its share to the
control group, rounded down or up, so that treatment and control have the same mix of
segments and expected profit — an unbiased comparison with less variance than a simple
random split — and the control group is ⌊n·share⌋ or ⌈n·share⌉ customers in all. The
draw is seeded (by default from the campaign id), so the same list gives the same
groups. The control group costs nothing, so what is spent is the treated customers'
cost: the budget caps that spend, and the control group's share of it stays unspent —
the price of being able to measure the effect.

References
----------
Blattberg, R. C., Kim, B.-D. & Neslin, S. A. (2008). *Database Marketing: Analyzing and
Managing Customers*. New York: Springer.

Dantzig, G. B. (1957). Discrete-variable extremum problems. *Operations Research* 5(2),
266–288.

Martello, S. & Toth, P. (1990). *Knapsack Problems: Algorithms and Computer
Implementations*. Chichester: Wiley.

Cochran, W. G. (1977). *Sampling Techniques*, 3rd ed. New York: Wiley.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

import ibis
import numpy as np
import numpy.typing as npt
import pandas as pd

from cvm.config import DecisionSettings, Settings
from cvm.errors import ConfigError, DataError, SchemaError
from cvm.ingest import IngestReport, ingest
from cvm.store import Store

__all__ = [
    "TargetList",
    "control_group",
    "export_targets",
    "record_targets",
    "select_within_budget",
    "target_list",
]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Money is counted in integer units of this size when packing the budget.
_UNIT: Final[float] = 1e-6
#: Expected-profit bands (quantiles) that stratify the control group.
_PROFIT_BANDS: Final[int] = 5
_REQUIRED: Final[tuple[str, ...]] = (
    "customer_id",
    "action",
    "service_level",
    "channel",
    "rule",
    "segment",
)

#: Columns of a target list, in order.
COLUMNS: Final[tuple[str, ...]] = (
    "rank",
    "customer_id",
    "group",
    "campaign",
    "action",
    "channel",
    "service_level",
    "rule",
    "segment",
    "value_at_stake",
    "response_rate",
    "cost",
    "expected_profit",
    "reason",
)


@dataclass(frozen=True)
class TargetList:
    """The customers chosen for one action under a budget, with a control group.

    Attributes
    ----------
    action, campaign, date
        What, under which campaign id, and the date recorded as ``ts``.
    budget
        The most that may be spent on treated customers.
    response_rate, rate_source
        The rate used and where it came from (``"configured"`` or ``"given"``).
    value_at_stake
        The column whose value a response brings.
    control_share, seed
        The share held out and the seed of the draw.
    eligible
        Customers the playbook gives the action.
    profitable
        Of those, customers with positive expected profit.
    selected
        Customers chosen (treatment and control).
    treatment, control
        Customers contacted, and held out.
    spend
        Cost of contacting the treatment group (never above ``budget``).
    held_out_cost
        What contacting the control group would have cost (not spent).
    expected_profit
        Expected incremental profit of the treatment group, net of its cost.
    rows
        One row per chosen customer, best first (:data:`COLUMNS`).
    """

    action: str
    campaign: str
    date: dt.date
    budget: float
    response_rate: float
    rate_source: str
    value_at_stake: str
    control_share: float
    seed: int
    eligible: int
    profitable: int
    selected: int
    treatment: int
    control: int
    spend: float
    held_out_cost: float
    expected_profit: float
    rows: pd.DataFrame = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as plain data (without the rows)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rows"}
        data["date"] = self.date.isoformat()
        return data

    def actions_frame(self) -> pd.DataFrame:
        """Return the list as rows of the ``actions`` input table.

        ``cost`` is what is spent on the customer: the contact cost for the treatment
        group, 0 for the control group (not contacted). ``channel`` is the channel the
        customer would be (or is) contacted through.
        """
        r = self.rows
        treated = r["group"] == "treatment"
        return pd.DataFrame(
            {
                "customer_id": r["customer_id"].astype("string"),
                "action": self.action,
                "ts": pd.Timestamp(self.date),
                "group": r["group"],
                "campaign": self.campaign,
                "cost": r["cost"].where(treated, 0.0).astype("float64"),
                "channel": r["channel"],
            }
        )


def _units(cost: Any) -> npt.NDArray[np.int64]:
    """Amounts in integer millionths."""
    return np.round(np.asarray(cost, dtype=np.float64) / _UNIT).astype(np.int64)


def _priority(profit: FloatArray, units: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """Order of the greedy: profit per cost (free items first), then profit, then position."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(units > 0, profit / np.maximum(units, 1), np.inf)
    return np.lexsort((np.arange(profit.size), -profit, -ratio))


def select_within_budget(profit: Any, cost: Any, budget: float) -> BoolArray:
    """Choose items maximising total profit with total cost within a budget (greedy).

    Parameters
    ----------
    profit, cost
        Expected profit and cost per item (same length; costs ≥ 0).
    budget
        The budget (≥ 0).

    Returns
    -------
    numpy.ndarray
        Boolean mask of the chosen items: no item with profit ≤ 0, total cost ≤ budget.
        See the module docstring for the order and the optimality guarantee.

    Raises
    ------
    ValueError
        If the lengths differ, a cost is negative or not finite, or the budget is
        negative or not finite.
    """
    p = np.asarray(profit, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    if p.shape != c.shape or p.ndim != 1:
        raise ValueError("profit and cost must be 1-d arrays of the same length")
    if not (np.isfinite(c).all() and (c >= 0).all()):
        raise ValueError("costs must be finite and not negative")
    if not (math.isfinite(budget) and budget >= 0):
        raise ValueError(f"the budget must be a finite amount ≥ 0, got {budget}")
    units = _units(c)
    remaining = math.floor(budget / _UNIT + 1e-6)
    candidates = np.flatnonzero((p > 0) & np.isfinite(p) & (units <= remaining))
    chosen = np.zeros(p.size, dtype=bool)
    if candidates.size == 0:
        return chosen
    pool = candidates[_priority(p[candidates], units[candidates])]
    # Take the longest prefix that fits; the first item that does not fit never will
    # (the budget only shrinks), and neither will any item costing more than what is
    # left, so each round removes at least one cost level: few rounds, each vectorised.
    while pool.size:
        spent = np.cumsum(units[pool])
        k = int(np.searchsorted(spent, remaining, side="right"))
        chosen[pool[:k]] = True
        if k == pool.size:
            break
        remaining -= int(spent[k - 1]) if k else 0
        rest = pool[k + 1 :]
        pool = rest[units[rest] <= remaining]
    best = candidates[np.argmax(p[candidates])]
    if p[best] > p[chosen].sum():
        chosen[:] = False
        chosen[best] = True
    return chosen


def control_group(strata: Any, share: float, seed: int) -> BoolArray:
    """Hold out a stratified random share of a list as a control group.

    Parameters
    ----------
    strata
        One stratum label (integer) per customer, e.g. rule × profit band.
    share
        The share held out, 0 ≤ share < 1.
    seed
        Seed of the random draw (same inputs and seed, same groups).

    Returns
    -------
    numpy.ndarray
        True for the control group: ⌊n·share⌋ or ⌈n·share⌉ customers, each stratum
        giving its share rounded down or up (systematic sampling over the customers
        sorted by stratum, randomly within each, from a random start).

    Raises
    ------
    ValueError
        If ``share`` is outside [0, 1).
    """
    labels = np.asarray(strata, dtype=np.int64)
    if not 0.0 <= share < 1.0:
        raise ValueError(f"the control share must be at least 0 and below 1, got {share}")
    n = labels.size
    held = np.zeros(n, dtype=bool)
    if n == 0 or share == 0.0:
        return held
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n), labels))
    start = rng.random()
    position = np.arange(n, dtype=np.float64)
    held[order] = np.floor((position + 1) * share + start) > np.floor(position * share + start)
    return held


def _seed(campaign: str) -> int:
    return int.from_bytes(hashlib.sha256(campaign.encode("utf-8")).digest()[:8], "big") >> 1


def _configured(mapping: Mapping[str, Any], name: str, key: str) -> Any:
    if name not in mapping:
        raise ConfigError(
            f"no value for {name!r}: add {name} = … to [decisions] {key} in cvm.toml",
            key=f"decisions.{key}",
        )
    return mapping[name]


def target_list(
    assigned: Table,
    action: str,
    budget: float,
    *,
    settings: DecisionSettings | None = None,
    rates: Mapping[str, float] | None = None,
    control_share: float | None = None,
    seed: int | None = None,
    campaign: str | None = None,
    date: dt.date | None = None,
) -> TargetList:
    """Choose the customers to contact for an action within a budget.

    Parameters
    ----------
    assigned
        Customers with their playbook action (:func:`cvm.decisions.playbook.assign_actions`).
    action
        The action, e.g. ``"retain"``.
    budget
        The most to spend on contacted (treated) customers.
    settings
        Response rates, costs, values at stake and control share; defaults when
        ``None``.
    rates
        Response rates per action that replace the configured ones, e.g. measured
        uplift (:mod:`cvm.decisions.uplift`); actions not in it keep their
        configured rate.
    control_share
        Share held out as a control group (default ``settings.control_share``).
    seed
        Seed of the control draw (default: derived from the campaign id).
    campaign
        Campaign id (default ``"{action}-{date:%Y%m%d}"``).
    date
        The date of the campaign, recorded as ``ts`` (default: today).

    Returns
    -------
    TargetList
        The chosen customers, best first, with group, reason and expected profit.

    Raises
    ------
    SchemaError
        If ``assigned`` lacks the playbook's columns.
    ConfigError
        If the action, or a channel of its customers, has no response rate or cost,
        or the budget or control share is out of range.
    """
    settings = settings or DecisionSettings()
    share = settings.control_share if control_share is None else control_share
    if not 0.0 <= share < 1.0:
        raise ConfigError(f"the control share must be at least 0 and below 1, got {share}")
    if not (math.isfinite(budget) and budget >= 0):
        raise ConfigError(f"the budget must be an amount ≥ 0, got {budget}")
    date = date or dt.date.today()
    campaign = campaign or f"{action}-{date:%Y%m%d}"
    seed = _seed(campaign) if seed is None else seed
    given = rates is not None and action in rates
    rate = float(
        rates[action]
        if rates is not None and given
        else _configured(settings.response_rates, action, "response_rates")
    )
    if not (math.isfinite(rate) and -1.0 <= rate <= 1.0):
        raise ConfigError(f"the response rate of {action!r} must lie between -1 and 1, got {rate}")
    offer = float(_configured(settings.contact_costs, action, "contact_costs"))
    stake_column = settings.value_at_stake.get(action, "potential_value")
    missing = [c for c in (*_REQUIRED, stake_column) if c not in assigned.columns]
    if missing:
        raise SchemaError(
            f"a target list needs the column(s) {', '.join(map(repr, missing))} "
            "(customers with their playbook action)",
            column=missing[0],
        )
    eligible = assigned.filter(assigned.action == action)
    per_channel = eligible.group_by("channel").aggregate(n=eligible.count()).to_pyarrow()
    channel_costs = {
        str(c): float(_configured(settings.channel_costs, str(c), "channel_costs"))
        for c in per_channel.column("channel").to_pylist()
    }
    stake = eligible[stake_column].cast("float64").fill_null(0.0)
    cost = ibis.literal(offer) + (
        eligible.channel.cases(*channel_costs.items(), else_=0.0)
        if channel_costs
        else ibis.literal(0.0)
    )
    scored = eligible.mutate(value_at_stake=stake, cost=cost).mutate(
        expected_profit=lambda t: rate * t.value_at_stake - t.cost
    )
    profitable = scored.filter(scored.expected_profit > 0)
    frame = (
        profitable.select(
            "customer_id",
            "channel",
            "service_level",
            "rule",
            "segment",
            "value_at_stake",
            "cost",
            "expected_profit",
        )
        .order_by("customer_id")
        .to_pyarrow()
        .to_pandas()
    )
    frame["customer_id"] = frame["customer_id"].astype("string")
    chosen = select_within_budget(frame["expected_profit"], frame["cost"], budget)
    rows = frame.loc[chosen].reset_index(drop=True)  # still in customer_id order
    profit = rows["expected_profit"].to_numpy(dtype=np.float64)
    held = control_group(_strata(rows["rule"].to_numpy(dtype=str), profit), share, seed)
    rows.insert(1, "group", np.where(held, "control", "treatment"))
    rows.insert(2, "campaign", campaign)
    rows.insert(3, "action", action)
    rows["response_rate"] = rate
    # best first: the greedy's order
    rows = rows.iloc[_priority(profit, _units(rows["cost"]))].reset_index(drop=True)
    rows.insert(0, "rank", np.arange(1, len(rows) + 1, dtype=np.int64))
    rows["reason"] = _reasons(rows, stake_column)
    rows = rows[list(COLUMNS)]
    treated = rows["group"] == "treatment"
    return TargetList(
        action=action,
        campaign=campaign,
        date=date,
        budget=float(budget),
        response_rate=rate,
        rate_source="given" if given else "configured",
        value_at_stake=stake_column,
        control_share=share,
        seed=seed,
        eligible=int(sum(per_channel.column("n").to_pylist())),
        profitable=len(frame),
        selected=len(rows),
        treatment=int(treated.sum()),
        control=int((~treated).sum()),
        spend=_money(rows.loc[treated, "cost"]),
        held_out_cost=_money(rows.loc[~treated, "cost"]),
        expected_profit=float(rows.loc[treated, "expected_profit"].sum()),
        rows=rows,
    )


def _strata(rules: npt.NDArray[np.str_], profit: FloatArray) -> npt.NDArray[np.int64]:
    """Stratum of each customer: rule × quintile of expected profit within the list."""
    n = profit.size
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-profit, kind="stable")] = np.arange(n)
    band = rank * _PROFIT_BANDS // max(n, 1)
    _, rule = np.unique(rules, return_inverse=True)
    return np.asarray(rule, dtype=np.int64).reshape(-1) * _PROFIT_BANDS + band


def _money(values: pd.Series) -> float:
    """Sum amounts in integer millionths (what :func:`select_within_budget` compares)."""
    return round(float(_units(values).sum() * _UNIT), 6)


def _reasons(rows: pd.DataFrame, stake: str) -> pd.Series:
    def text(column: str) -> pd.Series:
        return rows[column].round(2).astype("string")

    return (
        "rule "
        + rows["rule"].astype("string")
        + " ("
        + rows["segment"].astype("string")
        + "): expected profit "
        + rows["response_rate"].astype("string")
        + " × "
        + text("value_at_stake")
        + f" {stake.replace('_', ' ')} − "
        + text("cost")
        + " contact = "
        + text("expected_profit")
        + "; rank "
        + rows["rank"].astype("string")
        + " by profit per cost"
    )


def export_targets(targets: TargetList, path: str | Path) -> Path:
    """Write a target list to a CSV (``.csv``) or Parquet (``.parquet``) file.

    Raises
    ------
    ConfigError
        If the file name ends otherwise.
    DataError
        If the file cannot be written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ConfigError("expected a file name ending .csv or .parquet", path=path)
    try:
        if suffix == ".csv":
            targets.rows.to_csv(path, index=False)
        else:
            targets.rows.to_parquet(path, index=False)
    except OSError as exc:
        raise DataError(f"cannot write the target list: {exc}", path=path) from exc
    return path


def record_targets(
    store: Store, targets: TargetList, settings: Settings | None = None
) -> IngestReport:
    """Record a target list in the ``actions`` table (treatment and control rows).

    Loaded through :func:`cvm.ingest.ingest`, with all its guarantees (one
    transaction, counts that reconcile, an ingest log entry).

    Raises
    ------
    DataError
        If the campaign id is already recorded, or the date lies further ahead than
        ``[ingest] max_future_days`` allows (the rows would be quarantined).
    """
    settings = settings or Settings()
    ahead = (targets.date - dt.date.today()).days
    if ahead > settings.ingest.max_future_days:
        raise DataError(
            f"the campaign date {targets.date.isoformat()} is {ahead} days ahead; actions "
            f"may be recorded at most {settings.ingest.max_future_days} day(s) ahead "
            "([ingest] max_future_days)"
        )
    row = store.con.execute(
        "SELECT count(*) FROM actions WHERE campaign = ?", [targets.campaign]
    ).fetchone()
    if row and row[0]:
        raise DataError(
            f"campaign {targets.campaign!r} is already recorded ({row[0]} actions); "
            "give the list another campaign id"
        )
    return ingest(store, targets.actions_frame(), table="actions", settings=settings)
