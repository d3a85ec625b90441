"""Synthetic relationship data for the real customers of a transaction log.

No public dataset has referrals, surveys and service interactions for the same
customers, so this module makes them up — reproducibly, from a seed — for the real
customers and purchases of a transaction log (by default the bundled UCI Online Retail
data). Purchases stay real; everything else is synthetic and labelled so: the files are
named ``synthetic_<table>.csv``, a ``README.md`` written next to them says how they were
made, and every customer row has ``synthetic = True``.

What is generated, per customer (the rules are in ``docs/synthetic-data.md``):

- **customers** — acquisition date and channel, a synthetic email
  (``c12345@example.com``), a phone in the national format of the customer's country or
  in E.164, a loyalty card for some;
- **identities** — a call-centre system (``source = "callcentre"``, ids ``CC-000123``)
  whose records carry the customer's phone, email or card, formatted differently, plus
  documented ambiguous cases (a shared switchboard phone, records whose phone and email
  belong to different customers);
- **interactions** — calls, emails, tickets and visits whose rate rises with purchase
  activity and with returns, with cost to serve, CSAT and a resolved flag; some are
  recorded under the call-centre id, so only identity resolution links them;
- **surveys** — NPS and CSAT for a sample of customers, driven by their experience;
- **referrals** — who referred whom, consistent with first purchases, with a few chains
  and a handful of documented defects (a self-referral, duplicates).

Everything is vectorised and runs on 100k+ customers in seconds.

This module holds the public API; the work is done in private modules: ``_profile``
(per-customer facts of the transactions, shared time helpers), ``_phones`` (numbering
plans, phone formats, switchboards), ``_identities`` (customers and call-centre records),
``_events`` (referrals, interactions, surveys) and ``_readme`` (the README and CSV text).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np
import pandas as pd

from cvm.data._events import KIND_COSTS, _interactions, _referrals, _surveys
from cvm.data._identities import (
    _TRUTH_COLUMNS,
    CALLCENTRE,
    CUSTOMER_COLUMNS,
    _customers,
    _identities,
)
from cvm.data._phones import _PHONE_PLANS, _phone_formats, _switchboard_groups
from cvm.data._profile import _profile
from cvm.data._readme import _readme, _text_times
from cvm.store.schema import INPUT_COLUMNS

__all__ = [
    "CALLCENTRE",
    "CUSTOMER_COLUMNS",
    "KIND_COSTS",
    "SyntheticData",
    "generate_relationship_data",
    "online_retail_transactions",
    "write_synthetic",
]


@dataclass(frozen=True, eq=False)
class SyntheticData:
    """Synthetic relationship tables for the customers of a transaction log.

    Attributes
    ----------
    customers
        ``CUSTOMER_COLUMNS``: one row per customer, ``synthetic`` always ``True``.
    identities
        ``INPUT_COLUMNS["identities"]``: call-centre records (``CC-000123``) with the
        customer's phone, email or loyalty card; ``customer_id`` is empty.
    interactions, surveys, referrals
        The canonical columns of ``INPUT_COLUMNS``.
    identity_truth
        The answer key of identity resolution, not an input: ``source``, ``source_id``,
        the true ``customer_id`` and the ``case`` (``unique``, ``duplicate_record``,
        ``shared_phone``, ``conflict``).
    seed, as_of
        The generator's seed and the date nothing is generated after.
    source
        What the real transactions were.
    counts
        Rows and documented special cases (defects, ambiguous identities).
    """

    customers: pd.DataFrame
    identities: pd.DataFrame
    interactions: pd.DataFrame
    surveys: pd.DataFrame
    referrals: pd.DataFrame
    identity_truth: pd.DataFrame
    seed: int
    as_of: dt.date
    source: str = ""
    counts: Mapping[str, int] = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """Return the tables by name, in the order they are written."""
        return {
            "customers": self.customers,
            "identities": self.identities,
            "interactions": self.interactions,
            "surveys": self.surveys,
            "referrals": self.referrals,
            "identity_truth": self.identity_truth,
        }

    def nps(self) -> float:
        """Net promoter score of the surveys: % promoters (9–10) − % detractors (0–6)."""
        scores = self.surveys["nps"].dropna()
        if scores.empty:
            return float("nan")
        return float(100.0 * ((scores >= 9).mean() - (scores <= 6).mean()))


def online_retail_transactions() -> pd.DataFrame:
    """Transactions of the bundled UCI Online Retail data (CC BY 4.0), canonical columns.

    Rows without a customer id are dropped; returns and cancellations are kept.

    Returns
    -------
    pandas.DataFrame
        ``customer_id`` (text, e.g. ``"17850"``), ``ts``, ``amount`` (quantity × unit
        price; negative = return), ``transaction_id`` (invoice) and ``country``.
    """
    with as_file(files("cvm.data") / "online_retail.parquet") as path:
        raw = pd.read_parquet(
            path,
            columns=[
                "invoice_no",
                "quantity",
                "invoice_date",
                "unit_price",
                "customer_id",
                "country",
            ],
        )
    raw = raw[raw["customer_id"].notna()]
    return pd.DataFrame(
        {
            "customer_id": raw["customer_id"].astype("int64").astype(str),
            "ts": raw["invoice_date"],
            "amount": raw["quantity"] * raw["unit_price"],
            "transaction_id": raw["invoice_no"],
            "country": raw["country"],
        }
    ).reset_index(drop=True)


def generate_relationship_data(
    transactions: pd.DataFrame,
    *,
    seed: int = 7,
    as_of: dt.date | None = None,
    home_country: str = "United Kingdom",
    source: str = "the transactions given to the generator",
) -> SyntheticData:
    """Generate synthetic relationship data for the real customers of ``transactions``.

    Parameters
    ----------
    transactions
        Columns ``customer_id``, ``ts`` and ``amount`` (negative = return); ``country``
        is used when present. Rows with a missing value are ignored.
    seed
        Seed of ``numpy.random.default_rng``; the same seed and input give the same data.
    as_of
        Nothing is generated after this date and later transactions are ignored;
        default: the date of the last transaction.
    home_country
        The company's country: its phone plan is used for customers without a known
        country, and call-centre agents type its numbers in national format.
    source
        What the transactions are, for the README written by :func:`write_synthetic`.

    Returns
    -------
    SyntheticData
        The tables, the seed, ``as_of`` and the counts of documented special cases.

    Raises
    ------
    SchemaError
        If a required column is missing or no transaction is on or before ``as_of``.
    ValueError
        If ``home_country`` has no phone plan, or there are over 10 million customers.
    """
    if home_country not in _PHONE_PLANS:
        raise ValueError(
            f"home_country must be one of {', '.join(sorted(_PHONE_PLANS))}; got {home_country!r}"
        )
    prof = _profile(transactions, as_of, home_country)
    n = prof.n
    if n > 9_999_000:
        raise ValueError(f"at most 9,999,000 customers can get distinct phones; got {n:,}")
    rng = np.random.default_rng(seed)
    mood = rng.standard_normal(n)  # a customer's disposition: satisfaction, referring
    referrals, referral_ts, counts = _referrals(rng, prof, mood)
    plan = prof.country.where(prof.country.isin(list(_PHONE_PLANS)), home_country)
    groups = _switchboard_groups(rng, plan)
    numbers = rng.choice(10**7, n + len(groups), replace=False).astype(np.int64)
    for index, members in enumerate(groups):
        numbers[members] = numbers[n + index]
    switchboard = np.concatenate([np.empty(0, dtype=np.int64), *groups]).astype(np.int64)
    phones = _phone_formats(plan, numbers[:n])
    national_home = ((plan == home_country) & phones["national"].notna()).to_numpy()
    always = np.zeros(n, dtype=bool)
    always[switchboard] = True
    customers = _customers(rng, prof, referral_ts, phones, always)
    contacts = _interactions(rng, prof, mood)
    identities, truth, filed_ids, id_counts = _identities(
        rng, prof, customers, phones, national_home, switchboard, contacts
    )
    is_referrer = np.zeros(n, dtype=bool)
    genuine = referrals.loc[referrals["referrer_id"] != referrals["referred_id"], "referrer_id"]
    is_referrer[prof.ids.searchsorted(genuine)] = True
    surveys = _surveys(rng, prof, mood, contacts, is_referrer)
    interactions = contacts.drop(columns="owner")
    interactions.insert(0, "customer_id", filed_ids)
    interactions["ts"] = pd.to_datetime(interactions["ts"])
    counts |= id_counts | {"shared_phone_groups": len(groups)}
    return SyntheticData(
        customers=customers,
        identities=identities[list(INPUT_COLUMNS["identities"])],
        interactions=interactions[list(INPUT_COLUMNS["interactions"])],
        surveys=surveys[list(INPUT_COLUMNS["surveys"])],
        referrals=referrals[list(INPUT_COLUMNS["referrals"])],
        identity_truth=truth[list(_TRUTH_COLUMNS)],
        seed=seed,
        as_of=prof.as_of,
        source=source,
        counts={"customers": n, **counts},
    )


def write_synthetic(data: SyntheticData, directory: str | Path) -> dict[str, Path]:
    """Write the tables as ``synthetic_<table>.csv`` and a ``README.md`` describing them.

    Parameters
    ----------
    data
        From :func:`generate_relationship_data`.
    directory
        Created if needed; files of the same names are replaced.

    Returns
    -------
    dict
        Table name (and ``"readme"``) → path written.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    names = {name: f"synthetic_{name}.csv" for name in data.tables()}
    written: dict[str, Path] = {}
    for name, table in data.tables().items():
        path = target / names[name]
        _text_times(table).to_csv(path, index=False)
        written[name] = path
    readme = target / "README.md"
    readme.write_text(_readme(data, names), encoding="utf-8")
    written["readme"] = readme
    return written
