"""What customers did besides buying: referrals, service interactions and surveys.

Each generator draws from a customer's real purchase history and a shared disposition
(``mood``), so satisfied, frequent customers refer more and answer surveys more kindly.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from cvm.data._profile import (
    _DAY,
    _MINUTE,
    BoolArray,
    FloatArray,
    IntArray,
    _clip_ts,
    _office_hours,
    _pick_days,
    _Profile,
)

#: Assumed cost to serve per contact, uniform between the bounds (data's currency).
KIND_COSTS: Final[dict[str, tuple[float, float]]] = {
    "call": (4.0, 8.0),
    "email": (1.0, 2.0),
    "ticket": (10.0, 25.0),
    "visit": (20.0, 60.0),
}
_P_RESOLVED: Final = {"call": 0.88, "email": 0.90, "ticket": 0.80}
_COMMENTS: Final = {
    "detractor": (
        "My return took weeks to sort out.",
        "Nobody called me back about my complaint.",
        "Parts of my order arrived damaged.",
    ),
    "passive": ("Fine, but delivery could be quicker.", "Good range, prices went up."),
    "promoter": (
        "Great range and fast delivery.",
        "Very helpful customer service.",
        "Our shop's favourite supplier.",
    ),
}
_KINDS: Final = ("call", "email", "ticket", "visit")


def _referrals(
    rng: np.random.Generator, prof: _Profile, mood: FloatArray
) -> tuple[pd.DataFrame, IntArray, dict[str, int]]:
    """Who referred whom; returns the table, each customer's referral ts (-1: none), counts."""
    n, fb = prof.n, prof.first_buy
    order = np.argsort(fb, kind="stable")
    earlier = np.searchsorted(fb[order], fb - _DAY, side="left")  # first bought ≥ 1 day before
    buyer = prof.occasions > 0  # customers with only returns neither refer nor are referred
    referred = (rng.random(n) < 0.075) & buyer
    # Frequent, satisfied and themselves referred customers refer more.
    weight = np.power(prof.occasions + 1.0, 0.9) * np.exp(0.5 * mood) * buyer
    weight *= np.where(referred, 2.5, 1.0)
    cum = np.concatenate([[0.0], np.cumsum(weight[order])])
    referred &= cum[earlier] > 0  # someone bought at least a day before
    who = np.flatnonzero(referred)
    limit = earlier[who]
    pos = np.searchsorted(cum, rng.random(who.size) * cum[limit], side="right") - 1
    referrer = order[np.minimum(pos, limit - 1)]
    gap = fb[who] - fb[referrer]
    lead = (np.minimum(gap, 14 * _DAY) * rng.uniform(0.02, 0.98, who.size)).astype(np.int64)
    ts = fb[who] - lead
    ts -= ts % _MINUTE
    referral_ts = np.full(n, -1, dtype=np.int64)
    referral_ts[who] = ts
    rows = [pd.DataFrame({"referrer": referrer, "referred": who, "ts": ts})]
    counts = {
        "referred_customers": int(who.size),
        "referrers": int(np.unique(referrer).size),
        "referrers_with_several": int((np.bincount(referrer) >= 2).sum()),
        "referral_chains": int(referred[referrer].sum()),
        "referrals_self": 0,
        "referrals_duplicate": 0,
    }
    # Defects of real referral programmes: a customer entering their own code, and
    # the same referral submitted twice (once at once, once a few minutes later).
    loyal = np.flatnonzero(~referred & (prof.occasions >= 2))
    if loyal.size and who.size >= 2:
        self_ref = rng.choice(loyal, 1)
        day = _pick_days(rng, prof, self_ref) + _office_hours(rng, 1)
        dup = rng.choice(who.size, 2, replace=False)
        later = np.minimum(ts[dup[1]] + rng.integers(1, 30) * _MINUTE, fb[who[dup[1]]])
        rows.append(
            pd.DataFrame(
                {
                    "referrer": [self_ref[0], referrer[dup[0]], referrer[dup[1]]],
                    "referred": [self_ref[0], who[dup[0]], who[dup[1]]],
                    "ts": [
                        min(_clip_ts(rng, prof, self_ref, day)[0], prof.end - _MINUTE),
                        ts[dup[0]],
                        later,
                    ],
                }
            )
        )
        counts["referrals_self"], counts["referrals_duplicate"] = 1, 2
    table = pd.concat(rows, ignore_index=True).sort_values("ts", kind="stable")
    out = pd.DataFrame(
        {
            "referrer_id": prof.ids.to_numpy()[table["referrer"]],
            "referred_id": prof.ids.to_numpy()[table["referred"]],
            "ts": pd.to_datetime(table["ts"].to_numpy(np.int64)),
        }
    )
    return out, referral_ts, counts


def _interactions(rng: np.random.Generator, prof: _Profile, mood: FloatArray) -> pd.DataFrame:
    """Contacts per customer: rates rise with purchase days; returns raise tickets."""
    n, occasions = prof.n, prof.occasions + 1.0
    activity = np.power(occasions, 0.75)
    big = prof.revenue >= np.quantile(prof.revenue, 0.95)  # key accounts get visits
    rates = (
        0.15 + 0.25 * activity,
        0.30 + 0.30 * activity,
        0.08 + 0.05 * activity,
        np.where(big, 0.3 * np.sqrt(occasions), 0.01),
    )
    owners, codes, days = [], [], []
    for index, rate in enumerate(rates):
        owner = np.repeat(np.arange(n, dtype=np.int64), rng.poisson(rate))
        owners.append(owner)
        codes.append(np.full(owner.size, index))
        days.append(_pick_days(rng, prof, owner) + rng.integers(0, 22, owner.size) * _DAY)
    hit = rng.random(prof.return_owner.size) < 0.55  # a return often starts with a ticket
    owners.append(prof.return_owner[hit])
    codes.append(np.full(int(hit.sum()), 2))
    days.append(prof.return_days[hit] - rng.integers(0, 6, int(hit.sum())) * _DAY)
    owner, code = np.concatenate(owners), np.concatenate(codes)
    from_return = np.zeros(owner.size, dtype=bool)
    from_return[owner.size - int(hit.sum()) :] = True
    ts = _clip_ts(rng, prof, owner, np.concatenate(days) + _office_hours(rng, owner.size))
    due = ts < prof.end  # the rest would happen after as_of
    owner, code, from_return, ts = owner[due], code[due], from_return[due], ts[due]
    size = owner.size
    kind = np.array(_KINDS, dtype=object)[code]
    ticket_channel = np.where(rng.random(size) < 0.6, "web", "phone")
    channel = np.array(["phone", "email", "", "field"], dtype=object)[code]
    channel[code == 2] = ticket_channel[code == 2]
    low = np.array([KIND_COSTS[k][0] for k in _KINDS])[code]
    high = np.array([KIND_COSTS[k][1] for k in _KINDS])[code]
    p_resolved = np.array([*(_P_RESOLVED[k] for k in _KINDS[:3]), 1.0])[code]
    p_resolved[from_return] = 0.70
    resolved = rng.random(size) < p_resolved
    visit = code == 3
    answered = rng.random(size) < np.where(visit, 0.5, 0.35)
    effect = np.where(visit, 0.3, np.where(resolved, 0.4, -1.6))
    latent = 3.9 + 0.6 * mood[owner] + effect + rng.normal(0.0, 0.8, size)
    resolved_or_na = pd.array(resolved, dtype="boolean")
    resolved_or_na[visit] = pd.NA
    frame = pd.DataFrame(
        {
            "owner": owner,
            "ts": ts,
            "kind": pd.Series(kind, dtype=str),
            "channel": pd.Series(channel, dtype=str),
            "cost": np.round(rng.uniform(low, high), 2),
            "csat": np.where(answered, np.clip(np.rint(latent), 1, 5), np.nan),
            "resolved": resolved_or_na,
        }
    )
    return frame.sort_values(["ts", "owner"], kind="stable", ignore_index=True)


def _surveys(
    rng: np.random.Generator,
    prof: _Profile,
    mood: FloatArray,
    interactions: pd.DataFrame,
    referrers: BoolArray,
) -> pd.DataFrame:
    """NPS and CSAT for a sample of customers, driven by their experience."""
    n = prof.n
    owner = interactions["owner"].to_numpy()
    failed = (interactions["resolved"] == False).fillna(False).to_numpy(dtype=bool)  # noqa: E712
    unresolved = np.bincount(owner[failed], minlength=n)
    csat = interactions["csat"].to_numpy()
    rated = ~np.isnan(csat)
    ratings = np.bincount(owner[rated], minlength=n)
    csat_sum = np.bincount(owner[rated], weights=csat[rated], minlength=n)
    csat_gap = np.where(ratings > 0, csat_sum / np.maximum(ratings, 1) - 3.9, 0.0)
    activity = np.log1p(prof.occasions) - np.median(np.log1p(prof.occasions))
    base = (
        8.2
        + 1.3 * mood
        + 1.0 * activity
        - 1.2 * np.minimum(unresolved, 3)
        + 0.4 * csat_gap
        + 0.6 * referrers
    )
    repeat = prof.occasions >= 2
    asked = rng.random(n) < np.where(repeat, 0.3, 0.18)
    again = asked & repeat & (rng.random(n) < 0.15)  # asked twice
    who = np.concatenate([np.flatnonzero(asked), np.flatnonzero(again)])
    day = _pick_days(rng, prof, who) + rng.integers(3, 31, who.size) * _DAY
    ts = _clip_ts(rng, prof, who, day + _office_hours(rng, who.size))
    due = ts < prof.end
    who, ts = who[due], ts[due]
    size = who.size
    latent = base[who] + rng.normal(0.0, 0.9, size)
    nps = np.clip(np.rint(latent), 0, 10)
    survey_csat = np.clip(np.rint(1.0 + latent / 2.5 + rng.normal(0.0, 0.5, size)), 1, 5)
    comment = np.full(size, None, dtype=object)
    for name, group in (
        ("detractor", nps <= 6),
        ("passive", (nps > 6) & (nps < 9)),
        ("promoter", nps >= 9),
    ):
        chosen = group & (rng.random(size) < 0.2)
        options = np.array(_COMMENTS[name], dtype=object)
        comment[chosen] = options[rng.integers(0, options.size, int(chosen.sum()))]
    frame = pd.DataFrame(
        {
            "customer_id": prof.ids.to_numpy()[who],
            "ts": ts,
            "nps": nps,
            "csat": np.where(rng.random(size) < 0.8, survey_csat, np.nan),
            "comment": pd.Series(comment, dtype=str),
        }
    )
    frame = frame.sort_values(["ts", "customer_id"], kind="stable", ignore_index=True)
    frame["ts"] = pd.to_datetime(frame["ts"])
    return frame
