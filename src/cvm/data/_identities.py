"""Customers' contact details and the call-centre records that identify them.

The customers table carries each customer's synthetic email, phone and loyalty card; the
call-centre system holds records keyed by the same details, formatted differently, with
documented ambiguous cases, and an answer key (the identity truth) that says whose each
record is.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from cvm.data._profile import _DAY, _MINUTE, BoolArray, IntArray, _Profile

#: Columns of the generated customers table: the canonical ones, then attributes.
CUSTOMER_COLUMNS: Final = (
    "customer_id",
    "acquired_at",
    "acquisition_channel",
    "email",
    "phone",
    "loyalty_card",
    "country",
    "synthetic",
)
#: ``source`` of the call-centre identity records.
CALLCENTRE: Final = "callcentre"
_TRUTH_COLUMNS: Final = ("source", "source_id", "customer_id", "case")
_CHANNELS: Final = ("organic", "search", "email", "partner", "social")
_CHANNEL_P: Final = (0.38, 0.27, 0.12, 0.13, 0.10)
_CONFLICTS: Final = 3  # call-centre records whose phone and email belong to two customers


def _customers(
    rng: np.random.Generator,
    prof: _Profile,
    referral_ts: IntArray,
    phones: dict[str, pd.Series],
    always_phone: BoolArray,
) -> pd.DataFrame:
    n = prof.n
    signup = rng.random(n) < 0.4  # signed up a few days before buying
    lead = rng.integers(1, 8, n) * _DAY + rng.integers(0, 24 * 60, n) * _MINUTE
    acquired = np.where(signup, prof.first_buy - lead, prof.first_buy)
    acquired = np.where(referral_ts >= 0, np.maximum(acquired, referral_ts), acquired)
    channel = rng.choice(np.array(_CHANNELS, dtype=object), n, p=_CHANNEL_P)
    channel[referral_ts >= 0] = "referral"
    key = prof.ids.str.lower().str.replace(r"[^0-9a-z]+", "-", regex=True)
    if key.duplicated().any():
        key = pd.Series(np.arange(n).astype(str), dtype=str)
    email = ("c" + key + "@example.com").where(rng.random(n) < 0.93)
    style = rng.random(n)
    national_ok = phones["national"].notna().to_numpy()
    phone = phones["spaced"].where(style >= 0.85, phones["e164"])
    phone = phone.where(~((style < 0.55) & national_ok), phones["national"])
    phone = phone.where((rng.random(n) < 0.92) | always_phone)
    cards = pd.Series(rng.choice(10**8, n, replace=False), dtype="int64").astype(str)
    card = ("LC-" + cards.str.zfill(8)).where(rng.random(n) < 0.35)
    return pd.DataFrame(
        {
            "customer_id": prof.ids,
            "acquired_at": pd.to_datetime(acquired - acquired % _MINUTE),
            "acquisition_channel": pd.Series(channel, dtype=str),
            "email": email,
            "phone": phone,
            "loyalty_card": card,
            "country": prof.country,
            "synthetic": True,
        }
    )


def _identities(
    rng: np.random.Generator,
    prof: _Profile,
    customers: pd.DataFrame,
    phones: dict[str, pd.Series],
    national_home: BoolArray,
    switchboard: IntArray,
    interactions: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, dict[str, int]]:
    """Call-centre records of the customers who phoned, keyed by phone, email or card."""
    n = prof.n
    has_phone = customers["phone"].notna().to_numpy()
    has_email = customers["email"].notna().to_numpy()
    has_card = customers["loyalty_card"].notna().to_numpy()
    owner_i = interactions["owner"].to_numpy()
    by_phone = (interactions["channel"] == "phone").to_numpy()
    known = np.bincount(owner_i[by_phone], minlength=n) > 0
    known[switchboard] = True
    known &= has_phone | has_email | has_card
    first = np.flatnonzero(known)
    # Registered twice in the call centre (switchboard callers have one record each).
    twice = first[(rng.random(first.size) < 0.02) & ~np.isin(first, switchboard)]
    owner = np.concatenate([first, twice])
    size = owner.size
    case = np.full(size, "unique", dtype=object)
    case[np.isin(owner, twice)] = "duplicate_record"
    on_switchboard = np.isin(owner, switchboard)
    case[on_switchboard] = "shared_phone"
    use_phone = has_phone[owner] & (rng.random(size) < 0.85)
    use_email = has_email[owner] & (rng.random(size) < 0.5)
    use_card = has_card[owner] & (rng.random(size) < 0.3)
    use_phone |= has_phone[owner] & ~(use_email | use_card)
    use_email |= has_email[owner] & ~(use_phone | use_card)
    use_card |= has_card[owner] & ~(use_phone | use_email)
    use_phone[on_switchboard], use_email[on_switchboard] = True, False
    use_card[on_switchboard] = False
    # A few callers give their own phone and someone else's email (a colleague's).
    email = customers["email"].to_numpy(dtype=object)[owner]
    pool = np.flatnonzero((case == "unique") & use_phone)
    others = np.flatnonzero(has_email)
    conflicts = rng.choice(pool, min(_CONFLICTS, pool.size), replace=False)
    if others.size > 1:
        partner = rng.choice(others, conflicts.size)
        same = partner == owner[conflicts]
        partner[same] = others[(np.searchsorted(others, partner[same]) + 1) % others.size]
        email[conflicts] = customers["email"].to_numpy(dtype=object)[partner]
        use_email[conflicts] = True
        case[conflicts] = "conflict"
    at = {name: phones[name].to_numpy(dtype=object)[owner] for name in ("e164", "spaced")}
    typed = phones["national"].str.replace(r"\D", "", regex=True).to_numpy(dtype=object)[owner]
    style = rng.random(size)  # caller id (E.164), spaced, or typed in by an agent
    phone = np.select(
        [style < 0.6, style < 0.85, national_home[owner]],
        [at["e164"], at["spaced"], typed],
        default=at["e164"],
    )
    look = rng.random(size)
    email_s = pd.Series(email, dtype=str)
    domain_up = email_s.str.replace("@example.com", "@Example.com", regex=False)
    email_s = email_s.where(look < 0.6, email_s.str.upper().where(look < 0.85, domain_up))
    card = customers["loyalty_card"].to_numpy(dtype=object)[owner]
    card_s = pd.Series(card, dtype=str)
    card_s = card_s.where(rng.random(size) < 0.5, card_s.str.replace("-", "", regex=False))
    width = max(6, len(str(size)))
    number = pd.Series(rng.permutation(size) + 1).astype(str).str.zfill(width)
    source_id = ("CC-" + number).to_numpy(dtype=object)
    identities = pd.DataFrame(
        {
            "source": CALLCENTRE,
            "source_id": pd.Series(source_id, dtype=str),
            "customer_id": pd.Series(pd.NA, index=range(size), dtype=str),
            "email": email_s.where(use_email),
            "phone": pd.Series(phone, dtype=str).where(use_phone),
            "loyalty_card": card_s.where(use_card),
            "external_id": pd.Series(pd.NA, index=range(size), dtype=str),
        }
    )
    truth = pd.DataFrame(
        {
            "source": CALLCENTRE,
            "source_id": identities["source_id"],
            "customer_id": prof.ids.to_numpy()[owner],
            "case": pd.Series(case, dtype=str),
        }
    )
    # Half of the phone contacts of known callers are filed under a call-centre id.
    order = np.argsort(owner, kind="stable")
    start = np.searchsorted(owner[order], owner_i, side="left")
    count = np.searchsorted(owner[order], owner_i, side="right") - start
    filed = by_phone & (count > 0) & (rng.random(owner_i.size) < 0.5)
    ids = prof.ids.to_numpy(dtype=object)[owner_i]
    if filed.any():
        offset = (rng.random(int(filed.sum())) * count[filed]).astype(np.int64)
        ids[filed] = source_id[order[start[filed] + offset]]
    counts = {
        "callcentre_records": size,
        "callcentre_customers": int(first.size),
        "callcentre_duplicate_records": int(twice.size),
        "shared_phone_customers": int(np.unique(switchboard).size),
        "shared_phone_records": int(on_switchboard.sum()),
        "conflicting_records": int((case == "conflict").sum()),
        "interactions_under_callcentre_id": int(filed.sum()),
    }
    return (
        identities.sort_values("source_id", ignore_index=True),
        truth.sort_values("source_id", ignore_index=True),
        pd.Series(ids, dtype=str),
        counts,
    )
