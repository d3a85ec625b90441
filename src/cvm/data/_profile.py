"""Per-customer facts of a transaction log, and the time helpers every generator shares.

:func:`_profile` reduces the real transactions to the arrays the generators draw from
(first purchase, purchase days, revenue, returns); position ``i`` of every array is the
``i``-th customer id in sorted order. Timestamps are ``int64`` nanoseconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvm.errors import SchemaError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_DAY: Final = 86_400_000_000_000  # nanoseconds
_MINUTE: Final = 60_000_000_000


@dataclass(frozen=True)
class _Profile:
    """Per-customer facts from the transactions (position i = i-th customer id)."""

    ids: pd.Series
    country: pd.Series
    first_ts: IntArray  # first transaction (ns)
    first_buy: IntArray  # first purchase with a positive amount, else first transaction
    occasions: IntArray  # distinct purchase days
    revenue: FloatArray
    day_start: IntArray  # customer i's activity days are days[day_start[i]:day_start[i+1]]
    days: IntArray
    return_owner: IntArray  # one entry per (customer, day) with a negative amount
    return_days: IntArray
    end: int  # exclusive upper bound of generated timestamps (ns)
    as_of: dt.date

    @property
    def n(self) -> int:
        return len(self.ids)


def _as_ids(values: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(values) and bool((values % 1 == 0).all()):
        values = values.astype("int64")
    return values.astype(str)


def _profile(transactions: pd.DataFrame, as_of: dt.date | None, home: str) -> _Profile:
    missing = [c for c in ("customer_id", "ts", "amount") if c not in transactions.columns]
    if missing:
        raise SchemaError(
            f"transactions need the columns customer_id, ts and amount; missing {missing}",
            path="transactions",
        )
    tx = transactions.dropna(subset=["customer_id", "ts", "amount"])
    ts = pd.to_datetime(tx["ts"]).to_numpy("datetime64[ns]").astype(np.int64)
    if as_of is None:
        as_of = pd.Timestamp(ts.max()).date() if len(ts) else dt.date.today()
    as_of = pd.Timestamp(as_of).date()
    end = int(pd.Timestamp(as_of).value) + _DAY
    keep = ts < end
    country = tx["country"].astype(str) if "country" in tx.columns else None
    frame = pd.DataFrame(
        {
            "cid": _as_ids(tx["customer_id"]).to_numpy()[keep],
            "ts": ts[keep],
            "amount": tx["amount"].to_numpy(dtype=np.float64)[keep],
            "country": country.to_numpy()[keep] if country is not None else home,
        }
    )
    if frame.empty:
        raise SchemaError(f"no transactions on or before {as_of}", path="transactions")
    frame = frame.sort_values(["cid", "ts", "amount"], kind="stable", ignore_index=True)
    codes, ids = pd.factorize(frame["cid"], sort=True)
    n = len(ids)
    frame["c"] = codes
    frame["day"] = frame["ts"] - frame["ts"] % _DAY
    by_c = frame.groupby("c", sort=True)
    bought = frame["amount"] > 0
    first_buy = frame["ts"].where(bought).groupby(frame["c"]).min()
    first_ts = by_c["ts"].min().to_numpy()
    buy_days = frame.loc[bought, ["c", "day"]].drop_duplicates()
    returns = frame.loc[frame["amount"] < 0, ["c", "day"]].drop_duplicates()
    days = frame[["c", "day"]].drop_duplicates()
    return _Profile(
        ids=pd.Series(ids, dtype=str),
        country=by_c["country"].first().reset_index(drop=True),
        first_ts=first_ts,
        first_buy=first_buy.reindex(range(n)).fillna(pd.Series(first_ts)).to_numpy(np.int64),
        occasions=np.bincount(buy_days["c"].to_numpy(), minlength=n).astype(np.int64),
        revenue=np.bincount(codes, weights=frame["amount"].clip(lower=0), minlength=n).astype(
            np.float64
        ),
        day_start=np.concatenate([[0], np.cumsum(np.bincount(days["c"], minlength=n))]).astype(
            np.int64
        ),
        days=days["day"].to_numpy(np.int64),
        return_owner=returns["c"].to_numpy(np.int64),
        return_days=returns["day"].to_numpy(np.int64),
        end=end,
        as_of=as_of,
    )


def _pick_days(rng: np.random.Generator, prof: _Profile, owner: IntArray) -> IntArray:
    """Draw a random activity day (ns, midnight) of each owner."""
    start = prof.day_start[owner]
    count = prof.day_start[owner + 1] - start
    return prof.days[start + (rng.random(owner.size) * count).astype(np.int64)]


def _clip_ts(rng: np.random.Generator, prof: _Profile, owner: IntArray, ts: IntArray) -> IntArray:
    """Move timestamps before the owner's first transaction to 1–180 minutes after it.

    Timestamps are floored to the minute; those after ``as_of`` are left for the
    caller to drop (they have not happened yet).
    """
    first = prof.first_ts[owner]
    ts = np.where(ts < first, first + rng.integers(1, 181, ts.size) * _MINUTE, ts)
    return ts - ts % _MINUTE


def _office_hours(rng: np.random.Generator, size: int) -> IntArray:
    return rng.integers(8 * 60, 18 * 60, size) * _MINUTE
