"""Synthetic campaigns with a known effect, run on real customers (tests and the demo).

Nothing this module makes is measured data. :func:`simulate_campaign` takes real
transactions (e.g. UCI Online Retail), picks the customers who bought in the year
before a campaign date, randomises them to treatment and control, and *adds* purchases
in the window after the date to treated customers only, so that the campaign's true
effect is known:

* **retention** — each treated customer who did not buy in the window (in the real
  data) is given one purchase with probability ``q = uplift · N / (N − B)`` (``N``
  customers, ``B`` of them buyers in the real window), so that the expected share of
  buyers rises by exactly ``retention_uplift`` over the campaign's customers;
* **spend** — those new purchases are Gamma-distributed (shape 2) with mean
  ``new_buyer_spend``, and every treated customer with positive net revenue in the
  window spends ``spend_lift`` more (one added purchase of that size).

The true average effects over the campaign's customers — the quantities a randomised
comparison estimates — are returned with the data. The real data supply the baseline
(control) behaviour, with its heavy-tailed spend, so the measured intervals are as wide
as they would be on that business.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cvm.errors import DataError, SchemaError

__all__ = ["SimulatedCampaign", "simulate_campaign"]


@dataclass(frozen=True)
class SimulatedCampaign:
    """A synthetic randomised campaign and its true effect.

    Attributes
    ----------
    actions
        Action rows (canonical columns: ``customer_id``, ``action``, ``ts``,
        ``group``, ``campaign``, ``cost``, ``channel``), one per customer.
    transactions
        The added purchases of treated customers (``customer_id``, ``ts``, ``amount``,
        ``transaction_id``); load them with the real transactions.
    retention_uplift, spend_uplift
        True average effect over the campaign's customers on the share who buy in the
        window and on net revenue per customer in the window.
    baseline_retention, baseline_spend
        The same two figures without the campaign (all customers, real data).
    """

    actions: pd.DataFrame
    transactions: pd.DataFrame
    retention_uplift: float
    spend_uplift: float
    baseline_retention: float
    baseline_spend: float


def simulate_campaign(
    transactions: pd.DataFrame,
    *,
    date: dt.date,
    seed: int,
    retention_uplift: float = 0.05,
    new_buyer_spend: float = 250.0,
    spend_lift: float = 0.1,
    window_days: int = 90,
    treatment_share: float = 0.5,
    customers: int | None = None,
    lookback_days: int = 365,
    action: str = "retention_offer",
    campaign: str | None = None,
    channel: str = "email",
    cost_per_contact: float = 1.0,
) -> SimulatedCampaign:
    """Simulate a randomised campaign with a known effect on real customers.

    Parameters
    ----------
    transactions
        Real transactions: ``customer_id``, ``ts``, ``amount``.
    date
        The campaign's date (every action at its midnight).
    seed
        Seed of the randomisation and of the added purchases.
    retention_uplift
        True rise of the share of customers who buy in the window (0.05 = 5 points).
    new_buyer_spend
        Mean amount of a purchase the campaign brings a customer who would not have
        bought.
    spend_lift
        Extra spend of treated customers who would have bought anyway (0.1 = +10 %).
    window_days
        The outcome window after the date.
    treatment_share
        Share of customers randomised to treatment (complete randomisation).
    customers
        Draw this many of the eligible customers; all when ``None``.
    lookback_days
        Eligible customers bought in this many days before the date.
    action, campaign, channel
        Names written to the action rows (``campaign`` defaults to
        ``"<action> <date>"``).
    cost_per_contact
        Cost of each treated customer's action row (control rows carry no cost).

    Returns
    -------
    SimulatedCampaign
        Actions, added purchases and the true effects.

    Raises
    ------
    SchemaError
        If ``transactions`` lacks a required column.
    DataError
        If too few customers are eligible, or the uplift asked for cannot be reached
        (it exceeds the share of customers who would not buy).
    """
    missing = [c for c in ("customer_id", "ts", "amount") if c not in transactions.columns]
    if missing:
        raise SchemaError(f"transactions lack the columns {', '.join(map(repr, missing))}")
    if not 0.0 < treatment_share < 1.0:
        raise DataError(f"treatment_share must lie strictly between 0 and 1, got {treatment_share}")
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(date)
    window = pd.Timedelta(days=window_days)
    ids = transactions["customer_id"].astype(str)
    ts = pd.to_datetime(transactions["ts"])
    amount = transactions["amount"].astype(float)

    before = (ts < start) & (ts >= start - pd.Timedelta(days=lookback_days)) & (amount > 0)
    eligible = np.sort(ids[before].unique())
    if customers is not None and customers < len(eligible):
        eligible = np.sort(rng.choice(eligible, size=customers, replace=False))
    n = len(eligible)
    if n < 4:
        raise DataError(f"only {n} customers bought in the {lookback_days} days before {date}")

    inside = (ts > start) & (ts <= start + window)
    revenue = amount[inside].groupby(ids[inside]).sum().reindex(eligible, fill_value=0.0)
    bought_ids = ids[inside & (amount > 0)].unique()
    bought = pd.Index(eligible).isin(bought_ids)  # hashed: np.isin sorts strings
    rev = revenue.to_numpy(dtype=np.float64)
    non_buyers = int((~bought).sum())
    if non_buyers == 0 or retention_uplift * n > non_buyers:
        raise DataError(
            f"a retention uplift of {retention_uplift} is impossible: only "
            f"{non_buyers / n:.1%} of the customers did not buy in the window"
        )
    q = retention_uplift * n / non_buyers

    treated = np.zeros(n, dtype=bool)
    treated[rng.permutation(n)[: round(treatment_share * n)]] = True
    converts = treated & ~bought & (rng.random(n) < q)
    lifted = treated & bought & (rev > 0) & (spend_lift > 0)
    new_amount = rng.gamma(2.0, new_buyer_spend / 2.0, size=n)
    seconds = window.total_seconds()
    offset = np.ceil((1.0 - rng.random(n)) * seconds)  # in (0, window]

    added_ids = np.concatenate([eligible[converts], eligible[lifted]])
    added_amount = np.concatenate([new_amount[converts], spend_lift * rev[lifted]])
    added_offset = np.concatenate([offset[converts], offset[lifted]])
    added = pd.DataFrame(
        {
            "customer_id": added_ids,
            "ts": start + pd.to_timedelta(added_offset, unit="s"),
            "amount": added_amount,
            "transaction_id": np.char.add(f"SIM{seed}-", np.arange(len(added_ids)).astype(str)),
        }
    )
    actions = pd.DataFrame(
        {
            "customer_id": eligible,
            "action": action,
            "ts": start,
            "group": np.where(treated, "treatment", "control"),
            "campaign": campaign or f"{action} {date.isoformat()}",
            "cost": np.where(treated, cost_per_contact, np.nan),
            "channel": channel,
        }
    )
    positive = np.where(bought & (rev > 0), rev, 0.0)
    return SimulatedCampaign(
        actions=actions,
        transactions=added,
        retention_uplift=retention_uplift,
        spend_uplift=retention_uplift * new_buyer_spend + spend_lift * float(positive.mean()),
        baseline_retention=float(bought.mean()),
        baseline_spend=float(rev.mean()),
    )
