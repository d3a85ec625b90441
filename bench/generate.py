"""Seeded generator of synthetic retail transactions, written as Parquet.

The generator is designed for benchmarking: it is deterministic for a given
seed and shape, fully vectorised with numpy, and writes the output in
chunks so peak memory is bounded by the chunk size (plus a few 8-byte
arrays per *customer*), never by the total number of rows.

Generative model
----------------
* Customers are acquired uniformly over the observation window.  Each
  customer has an exponentially distributed active lifetime, a gamma
  distributed purchase rate (so counts are gamma-Poisson, i.e. negative
  binomial, and heavy tailed) and a lognormal mean spend; ~3 % of customers
  get an extra Pareto multiplier (the "whales").
* Every customer has at least one row: the first purchase happens at the
  acquisition instant, the remaining ones uniformly over the active span.
  Purchase counts are adjusted so that the total is *exactly* ``rows``.
* About 2 % of rows are returns: the amount and margin are negative, the
  quantity stays positive (the sign lives in ``amount``).  A customer's
  first row is never a return.
* Rows are written customer-block by customer-block (customers are assigned
  to blocks by a random permutation) and sorted by ``ts`` within a block, so
  a row group mixes many customers.  ``transaction_id`` is unique
  (``T`` + zero-padded row number).

Schema
------
``customer_id`` string, ``ts`` timestamp[us] (whole seconds), ``amount``
float64 (2 decimals), ``margin`` float64 (2 decimals), ``quantity`` int32,
``product_id`` string, ``transaction_id`` string.

Side tables
-----------
:func:`generate_inputs` writes referrals (``referrer_id``, ``referred_id``,
``ts``) and surveys (``customer_id``, ``ts``, ``nps``, ``csat``) for the same
customers -- their acquisition times are redrawn from the same seed -- with a
random stream of their own, so the transactions file does not change.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "REFERRAL_SCHEMA",
    "SCHEMA",
    "SURVEY_SCHEMA",
    "CustomerPlan",
    "fixed_width_ids",
    "generate",
    "generate_inputs",
    "main",
    "plan_customers",
]

SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us"), nullable=False),
        pa.field("amount", pa.float64(), nullable=False),
        pa.field("margin", pa.float64(), nullable=False),
        pa.field("quantity", pa.int32(), nullable=False),
        pa.field("product_id", pa.string(), nullable=False),
        pa.field("transaction_id", pa.string(), nullable=False),
    ]
)

REFERRAL_SCHEMA = pa.schema(
    [
        pa.field("referrer_id", pa.string(), nullable=False),
        pa.field("referred_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us")),
    ]
)

SURVEY_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us"), nullable=False),
        pa.field("nps", pa.float64()),
        pa.field("csat", pa.float64()),
    ]
)

DEFAULT_ROWS = 10_000_000
DEFAULT_CUSTOMERS = 1_000_000
DEFAULT_SEED = 42
DEFAULT_START = "2023-01-01"
DEFAULT_DAYS = 730
DEFAULT_CHUNK_ROWS = 1_000_000
ROW_GROUP_SIZE = 262_144

_SECONDS_PER_DAY = 86_400
_SECONDS_PER_YEAR = 365.25 * _SECONDS_PER_DAY
_RETURN_RATE = 0.02
_WHALE_RATE = 0.03
DEFAULT_REFERRED_SHARE = 0.10
DEFAULT_SURVEYED_SHARE = 0.05
# Shares of the referral rows that exercise the graph cleaning (influence value).
_SECOND_REFERRER = 0.02
_SELF_REFERRAL = 0.002
_NO_DATE = 0.005

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CustomerPlan:
    """Per-customer parameters (one array element per customer).

    Attributes
    ----------
    counts : numpy.ndarray
        Number of rows of each customer (>= 1); sums to the requested rows.
    birth : numpy.ndarray
        First purchase, in seconds since the window start.
    span : numpy.ndarray
        Active span in seconds; later purchases fall in ``[birth, birth+span]``.
    spend : numpy.ndarray
        Mean spend per purchase (currency units).
    """

    counts: IntArray
    birth: IntArray
    span: IntArray
    spend: FloatArray


def plan_customers(rows: int, customers: int, days: int, rng: np.random.Generator) -> CustomerPlan:
    """Draw per-customer parameters with an exact total row count.

    Parameters
    ----------
    rows : int
        Total number of rows to generate; must be ``>= customers``.
    customers : int
        Number of distinct customers (each gets at least one row).
    days : int
        Length of the observation window in days.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    CustomerPlan
        The per-customer parameters.

    Raises
    ------
    ValueError
        If ``rows < customers`` or a size is not positive.
    """
    if customers <= 0 or days <= 0:
        raise ValueError("customers and days must be positive")
    if rows < customers:
        raise ValueError(f"rows ({rows}) must be >= customers ({customers})")
    window = days * _SECONDS_PER_DAY

    birth = rng.integers(0, window, size=customers, dtype=np.int64)
    lifetime = rng.exponential(1.5 * _SECONDS_PER_YEAR, size=customers)
    span = np.minimum(lifetime.astype(np.int64), window - 1 - birth)

    # Gamma-distributed purchase rate -> gamma-Poisson (negative binomial)
    # counts; scaled so that the expected number of repeat rows is right.
    rate = rng.gamma(shape=0.5, scale=1.0, size=customers)
    weight = rate * (span / _SECONDS_PER_YEAR)
    target_extra = rows - customers
    total_weight = float(weight.sum())
    if total_weight <= 0.0:  # degenerate tiny windows: spread uniformly
        weight = np.ones(customers)
        span = np.full(customers, window - 1, dtype=np.int64) - birth
        total_weight = float(customers)
    expected = weight * (target_extra / total_weight)
    extra = rng.poisson(expected).astype(np.int64)

    # Make the total exact without distorting the shape: thin the surplus
    # with a multivariate hypergeometric draw, or top up proportionally.
    have = int(extra.sum())
    if have > target_extra:
        extra = rng.multivariate_hypergeometric(extra, target_extra, method="marginals").astype(
            np.int64
        )
    elif have < target_extra:
        extra += rng.multinomial(target_extra - have, expected / expected.sum())
    counts = extra + 1

    spend = rng.lognormal(mean=np.log(35.0), sigma=0.8, size=customers)
    whales = rng.random(customers) < _WHALE_RATE
    tail = np.minimum(1.0 + rng.pareto(1.3, size=customers), 200.0)
    spend = np.where(whales, spend * tail, spend)
    return CustomerPlan(counts=counts, birth=birth, span=span, spend=spend)


def fixed_width_ids(prefix: str, values: npt.ArrayLike, width: int) -> pa.Array:
    """Build ``prefix + zero-padded number`` strings without Python objects.

    Parameters
    ----------
    prefix : str
        ASCII prefix, e.g. ``"C"``.
    values : array_like of int
        Non-negative integers to format.
    width : int
        Number of digits (values are zero padded, and must fit).

    Returns
    -------
    pyarrow.StringArray
        The formatted strings, built directly from a byte buffer.
    """
    v = np.asarray(values, dtype=np.int64).copy()
    n = v.shape[0]
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    item = head.shape[0] + width
    buf = np.empty((n, item), dtype=np.uint8)
    buf[:, : head.shape[0]] = head
    for col in range(item - 1, head.shape[0] - 1, -1):
        buf[:, col] = v % 10 + 48
        v //= 10
    if (n + 1) * item < 2**31:
        offsets = np.arange(0, (n + 1) * item, item, dtype=np.int32)
        typ = pa.string()
    else:
        offsets = np.arange(0, (n + 1) * item, item, dtype=np.int64)
        typ = pa.large_string()
    arr = pa.Array.from_buffers(typ, n, [None, pa.py_buffer(offsets), pa.py_buffer(buf)])
    return arr if typ == pa.string() else arr.cast(pa.string())


def _product_catalog(n_products: int, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Return the Zipf popularity CDF and the margin rate of each product."""
    popularity = 1.0 / np.arange(1, n_products + 1, dtype=np.float64) ** 1.1
    popularity = popularity[rng.permutation(n_products)]
    cdf = np.cumsum(popularity)
    cdf /= cdf[-1]
    margin_rate = rng.uniform(0.05, 0.55, size=n_products)
    return cdf, margin_rate


def _chunk_table(
    cust: IntArray,
    plan: CustomerPlan,
    start_us: int,
    first_row: int,
    catalog: tuple[FloatArray, FloatArray],
    widths: tuple[int, int, int],
    return_p: float,
    rng: np.random.Generator,
) -> pa.Table:
    """Generate the rows of a block of customers as an Arrow table."""
    counts = plan.counts[cust]
    n = int(counts.sum())
    row_cust = np.repeat(cust, counts)
    first = np.zeros(n, dtype=bool)
    first[np.concatenate(([0], np.cumsum(counts)[:-1]))] = True

    offset = (rng.random(n) * (plan.span[row_cust] + 1)).astype(np.int64)
    offset[first] = 0
    ts_s = plan.birth[row_cust] + offset
    order = np.argsort(ts_s, kind="stable")
    row_cust, ts_s, first = row_cust[order], ts_s[order], first[order]

    noise = rng.lognormal(mean=-0.18, sigma=0.6, size=n)  # mean-one noise
    amount = np.maximum(np.round(plan.spend[row_cust] * noise, 2), 0.01)
    is_return = (rng.random(n) < return_p) & ~first
    amount = np.where(is_return, -amount, amount)

    cdf, margin_rate = catalog
    product = np.searchsorted(cdf, rng.random(n), side="right")
    product = np.minimum(product, cdf.shape[0] - 1)
    margin = np.round(amount * margin_rate[product], 2)
    quantity = (1 + rng.poisson(0.6, size=n)).astype(np.int32)

    cw, pw, tw = widths
    ts = pa.array(ts_s * 1_000_000 + start_us, type=pa.int64()).cast(pa.timestamp("us"))
    return pa.Table.from_arrays(
        [
            fixed_width_ids("C", row_cust, cw),
            ts,
            pa.array(amount, type=pa.float64()),
            pa.array(margin, type=pa.float64()),
            pa.array(quantity, type=pa.int32()),
            fixed_width_ids("P", product, pw),
            fixed_width_ids("T", np.arange(first_row, first_row + n), tw),
        ],
        schema=SCHEMA,
    )


def generate(
    out: str | os.PathLike[str],
    rows: int = DEFAULT_ROWS,
    customers: int = DEFAULT_CUSTOMERS,
    seed: int = DEFAULT_SEED,
    start: str = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> dict[str, Any]:
    """Generate synthetic transactions and write them to a Parquet file.

    The file is written to a temporary name and renamed on success, so a
    partially written file is never mistaken for a cached dataset.

    Parameters
    ----------
    out : path-like
        Destination Parquet file (zstd compressed).
    rows : int, default 10_000_000
        Exact number of rows.
    customers : int, default 1_000_000
        Exact number of distinct customers (each has >= 1 row).
    seed : int, default 42
        Random seed; output is byte-for-byte deterministic for a given
        ``(rows, customers, seed, start, days, chunk_rows)``.
    start : str, default "2023-01-01"
        ISO date of the window start.
    days : int, default 730
        Window length in days (all ``ts`` fall in ``[start, start+days)``).
    chunk_rows : int, default 1_000_000
        Approximate rows generated per chunk (bounds peak memory).

    Returns
    -------
    dict
        Summary: rows, customers, bytes written, window bounds and the
        suggested ``observation_end`` (last day of the window, ISO date).
    """
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    seq = np.random.SeedSequence(seed)
    plan_seq, catalog_seq, chunk_seq = seq.spawn(3)
    rng = np.random.default_rng(plan_seq)
    plan = plan_customers(rows, customers, days, rng)
    n_products = int(min(50_000, max(100, rows // 200)))
    catalog = _product_catalog(n_products, np.random.default_rng(catalog_seq))

    # Non-first rows are returns with probability p so that ~2 % of all rows
    # are returns.
    repeat_rows = rows - customers
    return_p = min(1.0, _RETURN_RATE * rows / repeat_rows) if repeat_rows else 0.0

    widths = (
        max(8, len(str(customers - 1))),
        max(6, len(str(n_products - 1))),
        max(10, len(str(rows - 1))),
    )
    start_dt = dt.datetime.fromisoformat(start)
    start_us = int((start_dt - dt.datetime(1970, 1, 1)) / dt.timedelta(microseconds=1))

    perm = rng.permutation(customers)
    cum = np.cumsum(plan.counts[perm])
    cuts = np.searchsorted(cum, np.arange(chunk_rows, rows, chunk_rows), side="left")
    bounds = np.unique(np.concatenate(([0], cuts + 1, [customers])))
    bounds = bounds[bounds <= customers]
    chunk_rngs = [np.random.default_rng(s) for s in chunk_seq.spawn(len(bounds))]

    tmp = out_path.with_name(out_path.name + ".tmp")
    written = 0
    with pq.ParquetWriter(tmp, SCHEMA, compression="zstd", compression_level=3) as writer:
        for i in range(len(bounds) - 1):
            cust = np.sort(perm[bounds[i] : bounds[i + 1]]).astype(np.int64)
            table = _chunk_table(
                cust, plan, start_us, written, catalog, widths, return_p, chunk_rngs[i]
            )
            writer.write_table(table, row_group_size=ROW_GROUP_SIZE)
            written += table.num_rows
            del table
    if written != rows:  # pragma: no cover - guarded by plan_customers
        raise RuntimeError(f"wrote {written} rows, expected {rows}")
    tmp.replace(out_path)
    end_dt = start_dt + dt.timedelta(days=days)
    return {
        "rows": written,
        "customers": customers,
        "products": n_products,
        "bytes": out_path.stat().st_size,
        "window_start": start_dt.isoformat(sep=" "),
        "window_end": end_dt.isoformat(sep=" "),
        "observation_end": (end_dt - dt.timedelta(days=1)).date().isoformat(),
    }


def _write_parquet(table: pa.Table, out: Path) -> int:
    """Write ``table`` to ``out`` via a temporary name; return the bytes written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", compression_level=3)
    tmp.replace(out)
    return out.stat().st_size


def _referrals(
    plan: CustomerPlan,
    width: int,
    start_us: int,
    window: int,
    share: float,
    rng: np.random.Generator,
) -> pa.Table:
    """Referral rows: ``share`` of the customers referred by an earlier customer."""
    customers = plan.birth.shape[0]
    order = np.argsort(plan.birth, kind="stable")  # customers by acquisition
    n = min(round(share * customers), customers - 1)
    rank = np.sort(rng.choice(np.arange(1, customers), size=n, replace=False))
    # Referrers are drawn among the customers acquired earlier, in proportion to a
    # heavy-tailed propensity: a few customers refer many, chains form naturally.
    weight = np.cumsum((1.0 + rng.pareto(1.2, size=customers))[order])
    pick = np.searchsorted(weight, rng.random(n) * weight[rank - 1], side="right")
    referred = order[rank]
    referrer = order[np.minimum(pick, rank - 1)]
    day = _SECONDS_PER_DAY
    ts = np.maximum(plan.birth[referred] - rng.integers(0, 14 * day, size=n), 0)
    # A second, later referral of the same customer by someone else (not credited).
    again = rng.random(n) < _SECOND_REFERRER
    other = order[rng.integers(0, np.maximum(rank[again], 1))]
    later = np.minimum(ts[again] + rng.integers(1, 30 * day, size=other.size), window - 1)
    selfish = rng.choice(customers, size=round(_SELF_REFERRAL * n), replace=False)
    referrer = np.concatenate([referrer, other, selfish])
    referred = np.concatenate([referred, referred[again], selfish])
    ts = np.concatenate([ts, later, plan.birth[selfish]])
    shuffle = rng.permutation(referrer.size)
    referrer, referred, ts = referrer[shuffle], referred[shuffle], ts[shuffle]
    stamps = pa.array(
        ts * 1_000_000 + start_us, type=pa.int64(), mask=rng.random(ts.size) < _NO_DATE
    )
    return pa.Table.from_arrays(
        [
            fixed_width_ids("C", referrer, width),
            fixed_width_ids("C", referred, width),
            stamps.cast(pa.timestamp("us")),
        ],
        schema=REFERRAL_SCHEMA,
    )


def _surveys(
    plan: CustomerPlan,
    width: int,
    start_us: int,
    window: int,
    share: float,
    rng: np.random.Generator,
) -> pa.Table:
    """Survey rows: ``share`` of the customers answer 1 or more times after acquisition."""
    customers = plan.birth.shape[0]
    chosen = np.sort(rng.choice(customers, size=round(share * customers), replace=False))
    who = np.repeat(chosen, 1 + rng.poisson(0.5, size=chosen.size))
    birth = plan.birth[who]
    ts = birth + (rng.random(who.size) * (window - birth)).astype(np.int64)
    nps = np.clip(np.round(rng.normal(7.5, 2.2, size=who.size)), 0, 10)
    csat = np.clip(np.round(rng.normal(4.0, 1.0, size=who.size)), 1, 5)
    return pa.Table.from_arrays(
        [
            fixed_width_ids("C", who, width),
            pa.array(ts * 1_000_000 + start_us, type=pa.int64()).cast(pa.timestamp("us")),
            pa.array(nps, type=pa.float64()),
            pa.array(csat, type=pa.float64(), mask=rng.random(who.size) < 0.4),
        ],
        schema=SURVEY_SCHEMA,
    )


def generate_inputs(
    referrals_out: str | os.PathLike[str],
    surveys_out: str | os.PathLike[str],
    rows: int = DEFAULT_ROWS,
    customers: int = DEFAULT_CUSTOMERS,
    seed: int = DEFAULT_SEED,
    start: str = DEFAULT_START,
    days: int = DEFAULT_DAYS,
    referred_share: float = DEFAULT_REFERRED_SHARE,
    surveyed_share: float = DEFAULT_SURVEYED_SHARE,
) -> dict[str, Any]:
    """Generate referrals and surveys for the customers of :func:`generate`.

    The customers' acquisition times are redrawn from the same seed (the plan of
    :func:`generate` with equal ``rows``, ``customers``, ``seed`` and ``days``), so
    a referral falls in the two weeks before the referred customer's first purchase
    and a survey after the customer's. The draws use their own random stream: the
    transactions file does not change.

    Referrals (``referrer_id``, ``referred_id``, ``ts``): ``referred_share`` of the
    customers are referred, each by a customer acquired earlier and chosen in
    proportion to a heavy-tailed (Pareto) propensity, so a few customers refer many
    and chains of referrals form. To exercise the graph cleaning of influence value,
    2 % of the referred customers get a second, later referral by someone else, 0.2 %
    as many rows are self-referrals and 0.5 % of the rows have no date.

    Surveys (``customer_id``, ``ts``, ``nps`` 0-10, ``csat`` 1-5 or missing):
    ``surveyed_share`` of the customers answer 1 + Poisson(0.5) times, uniformly
    between their acquisition and the window end.

    Parameters
    ----------
    referrals_out, surveys_out : path-like
        Destination Parquet files (zstd compressed).
    rows, customers, seed, start, days
        As given to :func:`generate`.
    referred_share : float, default 0.10
        Share of the customers who were referred.
    surveyed_share : float, default 0.05
        Share of the customers who answered a survey.

    Returns
    -------
    dict
        Row counts and bytes written of both files.
    """
    plan_seq = np.random.SeedSequence(seed).spawn(3)[0]  # the plan of generate()
    plan = plan_customers(rows, customers, days, np.random.default_rng(plan_seq))
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])
    width = max(8, len(str(customers - 1)))
    start_dt = dt.datetime.fromisoformat(start)
    start_us = int((start_dt - dt.datetime(1970, 1, 1)) / dt.timedelta(microseconds=1))
    window = days * _SECONDS_PER_DAY
    referrals = _referrals(plan, width, start_us, window, referred_share, rng)
    surveys = _surveys(plan, width, start_us, window, surveyed_share, rng)
    return {
        "referrals": referrals.num_rows,
        "referred_customers": pc.count_distinct(referrals.column("referred_id")).as_py(),
        "referrers": pc.count_distinct(referrals.column("referrer_id")).as_py(),
        "referrals_bytes": _write_parquet(referrals, Path(referrals_out)),
        "surveys": surveys.num_rows,
        "surveyed_customers": pc.count_distinct(surveys.column("customer_id")).as_py(),
        "surveys_bytes": _write_parquet(surveys, Path(surveys_out)),
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--start", default=DEFAULT_START, help="ISO window start")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    parser.add_argument("--out", required=True, help="output .parquet path")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (defaults to ``sys.argv[1:]``).

    Returns
    -------
    int
        Process exit code.
    """
    args = _parse_args(argv)
    t0 = time.perf_counter()
    info = generate(
        args.out,
        rows=args.rows,
        customers=args.customers,
        seed=args.seed,
        start=args.start,
        days=args.days,
        chunk_rows=args.chunk_rows,
    )
    elapsed = time.perf_counter() - t0
    print(
        f"wrote {info['rows']:,} rows / {info['customers']:,} customers "
        f"({info['bytes'] / 2**20:.1f} MiB) to {args.out} in {elapsed:.1f}s; "
        f"observation_end={info['observation_end']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
