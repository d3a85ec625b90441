"""Seeded synthetic customers from the BG/NBD and Gamma-Gamma processes, on a daily grid.

Each customer (Fader, Hardie & Lee 2005; Fader & Hardie 2013):

* makes a first purchase on a day drawn uniformly from a cohort window
  (``cohort_days``) at the start of the observation period (``days`` long);
* while active buys as a Poisson process with rate λ ~ Gamma(r, α) per day;
* after every repeat purchase drops out with probability p ~ Beta(a, b);
* spends Gamma(p_spend, ν) per purchase, ν ~ Gamma(q, γ) across customers.

Purchases are simulated in continuous time and collapsed to days, as in real
daily transaction logs: several purchases on one day count once, with the day's
total as its value. The output is the per-customer summary the models take,
written as Parquet:

``customer_id``, ``frequency`` (repeat purchase days), ``recency`` (days from the
first to the last purchase day), ``T`` (days from the first purchase day to the
last observed day) and ``monetary_value`` (mean value of the repeat purchase days,
0 without repeats).

Vectorised with numpy: one iteration per purchase occasion over the customers
still active and inside the window (about as many iterations as the busiest
customer has purchases), not one per customer.

Usage::

    python bench/peers/simulate.py --customers 100000 --seed 7 --out summary.parquet
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["TRUE_PARAMS", "simulate", "simulate_summary"]

#: True parameters (days). BG/NBD scaled from FHL 2005's CDNOW weekly estimates
#: (α in days); Gamma-Gamma close to Fader & Hardie 2013's CDNOW estimates.
TRUE_PARAMS: dict[str, float] = {
    "r": 0.25,
    "alpha": 30.0,
    "a": 0.8,
    "b": 2.5,
    "p": 6.0,
    "q": 4.0,
    "gamma": 15.0,
}


def simulate_summary(
    n_customers: int,
    *,
    seed: int = 0,
    days: int = 730,
    cohort_days: int = 365,
    params: dict[str, float] | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """Simulate ``n_customers`` and return their summary as numpy columns.

    Parameters
    ----------
    n_customers
        Number of customers.
    seed
        Seed of :func:`numpy.random.default_rng`.
    days
        Length of the observation period; the last observed day is ``days - 1``.
    cohort_days
        First purchases fall uniformly on days ``0 .. cohort_days - 1``.
    params
        Overrides of :data:`TRUE_PARAMS`.

    Returns
    -------
    dict
        ``customer_id`` (int64), ``frequency``, ``recency``, ``T`` (int64, days) and
        ``monetary_value`` (float64).
    """
    if not 0 < cohort_days <= days:
        raise ValueError(f"need 0 < cohort_days ≤ days, got {cohort_days} and {days}")
    theta = {**TRUE_PARAMS, **(params or {})}
    rng = np.random.default_rng(seed)
    n = int(n_customers)
    last_day = days - 1
    first_day = rng.integers(0, cohort_days, size=n)
    rate = rng.gamma(theta["r"], 1.0 / theta["alpha"], size=n)
    dropout = rng.beta(theta["a"], theta["b"], size=n)
    nu = rng.gamma(theta["q"], 1.0 / theta["gamma"], size=n)

    clock = first_day + rng.random(n)  # continuous time of the latest purchase
    latest_day = first_day.copy()  # day of the latest (collapsed) purchase
    frequency = np.zeros(n, dtype=np.int64)
    spend = np.zeros(n)
    active = np.arange(n)
    with np.errstate(divide="ignore"):
        while active.size:
            clock[active] += rng.standard_exponential(active.size) / rate[active]
            day = np.floor(clock[active])
            inside = day <= last_day
            active, day = active[inside], day[inside].astype(np.int64)
            if not active.size:
                break
            new_day = day > latest_day[active]
            frequency[active[new_day]] += 1
            latest_day[active] = day
            repeat = active[day > first_day[active]]
            spend[repeat] += rng.gamma(theta["p"], 1.0 / nu[repeat])
            active = active[rng.random(active.size) >= dropout[active]]

    monetary = np.divide(spend, frequency, out=np.zeros(n), where=frequency > 0)
    return {
        "customer_id": np.arange(n, dtype=np.int64),
        "frequency": frequency,
        "recency": latest_day - first_day,
        "T": last_day - first_day,
        "monetary_value": monetary,
    }


def simulate(out: str, customers: int, seed: int = 0) -> dict[str, Any]:
    """Simulate a summary and write it to Parquet (a benchmark step).

    Parameters
    ----------
    out
        Target Parquet path; ``<out>.json`` gets the facts of the data.
    customers
        Number of customers.
    seed
        Random seed.

    Returns
    -------
    dict
        Row count, repeat buyers, means and the true parameters.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = simulate_summary(customers, seed=seed)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    pq.write_table(pa.table(columns), tmp)
    tmp.replace(target)
    freq = columns["frequency"]
    facts: dict[str, Any] = {
        "customers": int(customers),
        "seed": int(seed),
        "repeat_buyers": int((freq > 0).sum()),
        "mean_frequency": float(freq.mean()),
        "max_frequency": int(freq.max()),
        "unique_rows": int(
            np.unique(np.column_stack([freq, columns["recency"], columns["T"]]), axis=0).shape[0]
        ),
        "mean_monetary_repeat": float(columns["monetary_value"][freq > 0].mean()),
        "true_params": TRUE_PARAMS,
    }
    target.with_suffix(".json").write_text(json.dumps(facts, indent=1))
    return facts


def main(argv: list[str] | None = None) -> None:
    """Command line: simulate one data set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(simulate(args.out, args.customers, args.seed), indent=1))


if __name__ == "__main__":
    main()
