"""The measured cvm steps of the foundation benchmark (run in fresh processes).

:mod:`run_foundation` starts each step through :func:`harness.run_step`; the
functions here are what runs in the child process. Only the lines between
``>>> CALL SITE`` and ``<<< CALL SITE`` should need editing when cvm's API
changes. Anything raised is recorded as status "error" with the message; if
the entry point of :data:`CVM_ENTRY_POINTS` is missing the step is recorded as
"not available" and never started.

==================== =====================================================
``cvm_ingest``       :func:`step_cvm_ingest` --
                     ``cvm.ingest.ingest_transactions(store, path)``
``cvm_features``     :func:`step_cvm_features` --
                     ``cvm.features.btyd_summary(...)`` fetched to Arrow
``cvm_segments``     :func:`step_cvm_segments` --
                     ``cvm.dynamics.segmentation.segment_customers(...)``,
                     after the untimed :func:`setup_cvm_segments`
==================== =====================================================
"""

from __future__ import annotations

import datetime as dt
import gc
import shutil
from pathlib import Path
from typing import Any

__all__ = [
    "CVM_ENTRY_POINTS",
    "CVM_PREIMPORT",
    "remove_store",
    "setup_cvm_segments",
    "step_cvm_features",
    "step_cvm_ingest",
    "step_cvm_segments",
    "teardown_cvm_segments",
]

#: Modules imported *before* the clock starts, so import time is not charged.
CVM_PREIMPORT = {
    "cvm_ingest": ("cvm", "cvm.store", "cvm.ingest"),
    "cvm_features": ("cvm", "cvm.store", "cvm.features", "duckdb", "pyarrow", "pyarrow.compute"),
    "cvm_segments": (
        "cvm",
        "cvm.store",
        "cvm.features",
        "cvm.value",
        "cvm.value.potential",
        "cvm.dynamics.segmentation",
        "duckdb",
        "ibis",
        "pandas",
        "pyarrow",
    ),
}

#: Entry point probed for each cvm step (module, attribute).
CVM_ENTRY_POINTS = {
    "cvm_ingest": ("cvm.ingest", "ingest_transactions"),
    "cvm_features": ("cvm.features", "btyd_summary"),
    "cvm_segments": ("cvm.dynamics.segmentation", "segment_customers"),
}


def _open_store(store_path: str, *, fresh: bool) -> Any:
    """Return the cvm store object for ``store_path``.

    Parameters
    ----------
    store_path : str
        Location reserved for the store under ``bench/.data/work/``.
    fresh : bool
        ``True`` for ingest (any previous store at the path was deleted).

    Returns
    -------
    object
        Whatever ``cvm.ingest.ingest_transactions`` expects as ``store``.
    """
    # >>> CALL SITE (store): adjust if the store constructor changes.
    from cvm.store import Store  # type: ignore[import-not-found, unused-ignore]

    return Store(store_path, read_only=not fresh)
    # <<< CALL SITE (store)


def _close(store: Any) -> None:
    """Close the store if it has a ``close()`` method."""
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _materialize(result: Any) -> Any:
    """Force a possibly lazy result (ibis / duckdb relation) into Arrow."""
    for method in ("to_pyarrow", "to_arrow_table", "arrow"):
        fn = getattr(result, method, None)
        if callable(fn):
            return fn()
    return result


def step_cvm_ingest(parquet: str, store_path: str) -> dict[str, Any]:
    """Measured step: ingest the Parquet file into a fresh cvm store.

    Parameters
    ----------
    parquet : str
        Transactions Parquet file.
    store_path : str
        Where the store lives (deleted first).

    Returns
    -------
    dict
        Whatever ``ingest_transactions`` returned, if it is a small dict.
    """
    import cvm.ingest  # type: ignore[import-not-found, unused-ignore]

    remove_store(store_path)
    store = _open_store(store_path, fresh=True)
    # >>> CALL SITE (cvm_ingest)
    out = cvm.ingest.ingest_transactions(store, parquet)
    # <<< CALL SITE (cvm_ingest)
    _close(store)  # inside the timing, like the CTAS baseline's close()
    return _small_details(out)


def step_cvm_features(store_path: str, observation_end: str) -> dict[str, Any]:
    """Measured step: compute the BTYD summary with cvm and materialise it.

    Parameters
    ----------
    store_path : str
        Store written by :func:`step_cvm_ingest`.
    observation_end : str
        ISO date, the last day of observation (inclusive); only the date part
        is used if a timestamp is given.

    Returns
    -------
    dict
        Row count and checksums, comparable with ``summary_sql_table_core``.
    """
    import cvm.features

    store = _open_store(store_path, fresh=False)
    end = dt.date.fromisoformat(observation_end.strip()[:10])
    # >>> CALL SITE (cvm_features)
    transactions = store.table("transactions")
    out = store.to_arrow(cvm.features.btyd_summary(transactions, observation_end=end))
    # <<< CALL SITE (cvm_features)
    table = _materialize(out)
    _close(store)
    try:
        import pyarrow as pa

        from baselines import summary_facts

        if not isinstance(table, pa.Table):
            table = pa.Table.from_pandas(table, preserve_index=False)
        return summary_facts(table)
    except Exception as exc:  # checksums are best effort
        return {"type": type(out).__name__, "facts_error": str(exc)}


def remove_store(store_path: str) -> None:
    """Delete ``store_path`` and siblings named ``<store_path>.*`` (files or dirs)."""
    target = Path(store_path)
    for path in [target, *target.parent.glob(target.name + ".*")]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _small_details(value: Any) -> dict[str, Any]:
    """Keep the scalar fields of a step's return value (dict or ``to_dict()``)."""
    to_dict = getattr(value, "to_dict", None)
    data = to_dict() if callable(to_dict) else value
    if not isinstance(data, dict):
        return {} if value is None else {"returned": type(value).__name__}
    return {
        str(k): v for k, v in data.items() if v is None or isinstance(v, bool | int | float | str)
    }


# -- cvm_segments --------------------------------------------------------------------
#: Run id of the benchmark's base snapshot (its period rows are rolled back).
_RUN_ID = "bench-segments"


def _sql_path(path: str) -> str:
    return "'" + str(Path(path).resolve()).replace("'", "''") + "'"


def _release_memory() -> None:
    """Free the setup's garbage and hand freed heap back to the OS (best effort)."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def setup_cvm_segments(
    store_path: str, observation_end: str, referrals: str, surveys: str
) -> dict[str, Any]:
    """Untimed setup of :func:`step_cvm_segments`: what ``cvm analyze`` has built by then.

    Follows ``cvm.dynamics.snapshots.analyze`` up to its segmentation step, on the
    store written by :func:`step_cvm_ingest` (opened writable, as ``analyze`` does):

    * the run's base snapshot -- BTYD features, customer totals, realized value
      (``realized_value(customer_totals(...), costs)``) and the predictions of
      ``cvm.value.potential.potential_value`` (the production path: BG/NBD +
      Gamma-Gamma, P(alive), expected purchases and spend, discounted potential
      value with the store's margin ratio) -- in a temporary table, as ``analyze``
      creates it. The purchase model is set to ``bgnbd`` rather than ``auto`` only
      to skip the holdout backtest of three models, which changes which model
      predicts, not the work of the stage;
    * a transaction is opened and the run's period series is inserted into
      ``period_snapshots``, so the stage reads it as in ``analyze`` (uncommitted
      rows of that transaction); :func:`teardown_cvm_segments` rolls it back and
      the store is left unchanged;
    * the input tables: ``referrals`` and ``surveys`` from the Parquet files of
      ``generate.generate_inputs`` (temporary tables), the store's empty
      ``interactions`` and ``customers``.

    Parameters
    ----------
    store_path : str
        Store written by :func:`step_cvm_ingest`.
    observation_end : str
        ISO date, the run's ``as_of``.
    referrals, surveys : str
        Parquet files of ``generate.generate_inputs``.

    Returns
    -------
    dict
        The keyword arguments of :func:`step_cvm_segments`.
    """
    import ibis
    import pyarrow as pa

    from cvm.config import Settings
    from cvm.features import TIME_UNIT_DAYS, btyd_summary, customer_totals, period_series
    from cvm.store import Store
    from cvm.value import realized_value
    from cvm.value.potential import potential_value

    as_of = dt.date.fromisoformat(observation_end.strip()[:10])
    settings = Settings()
    # >>> CALL SITE (cvm_segments setup): mirrors analyze() up to its step 4.
    store = Store(store_path)
    con = store.con
    transactions = store.table("transactions")
    interactions = store.table("interactions")
    unit = settings.features.time_unit
    rate = settings.value.margin_rate
    summary = btyd_summary(transactions, observation_end=as_of, time_unit=unit)
    costs = interactions.filter(
        interactions.cost.notnull() & (interactions.ts.date() <= as_of)
    ).select("customer_id", "cost")
    totals = realized_value(
        customer_totals(transactions, observation_end=as_of, margin_rate=rate), costs
    )
    joined = summary.join(totals.drop("first_purchase", "last_purchase"), "customer_id")
    columns = [
        *("customer_id", "first_purchase", "last_purchase", "frequency", "recency", "t"),
        *("monetary_value", "occasions", "transactions", "revenue", "returns", "margin"),
        *("realized_value", "cost_to_serve"),
    ]
    snapshot = joined.select(run_id=ibis.literal(_RUN_ID), **{c: joined[c] for c in columns})
    frame = store.to_arrow(
        summary.select("customer_id", "frequency", "recency", "t", "monetary_value")
    ).to_pandas()
    row = con.execute(
        "SELECT sum(coalesce(margin, amount - cost)), sum(amount), count(*) FROM transactions "
        "WHERE (margin IS NOT NULL OR cost IS NOT NULL) AND ts::DATE <= ?",
        [as_of],
    ).fetchone()
    margin = rate if not row or not row[2] or not row[1] else min(max(row[0] / row[1], 0.0), 1.0)
    potential = potential_value(
        frame,
        split=None,
        settings=settings.models.model_copy(update={"purchase": "bgnbd"}),
        units_per_year=365.2425 / TIME_UNIT_DAYS[unit],
        margin=margin,
    )
    predicted = ["p_alive", "expected_purchases_90d", "expected_spend", "potential_value"]
    con.register("__bench_predictions", pa.Table.from_pandas(potential.predictions))
    con.execute(
        f"CREATE TEMP TABLE __bench_base AS SELECT s.*, "
        f"{', '.join('p.' + c for c in predicted)} "
        f"FROM ({store.backend.compile(snapshot)}) s "
        f"LEFT JOIN __bench_predictions p USING (customer_id)"
    )
    con.unregister("__bench_predictions")
    for name, path in (("referrals", referrals), ("surveys", surveys)):
        con.execute(f"CREATE TEMP TABLE __bench_{name} AS FROM read_parquet({_sql_path(path)})")
    periods = period_series(
        transactions, observation_end=as_of, period=settings.features.period, margin_rate=rate
    )
    periods = periods.select(
        run_id=ibis.literal(_RUN_ID), **{c: periods[c] for c in periods.columns}
    )
    con.execute("BEGIN TRANSACTION")  # rolled back by teardown_cvm_segments
    con.execute(f"INSERT INTO period_snapshots {store.backend.compile(periods)}")
    stored = store.table("period_snapshots")
    inputs = {
        "base": store.backend.table("__bench_base"),
        "periods": stored.filter(stored.run_id == _RUN_ID),
        "settings": settings,
        "as_of": as_of,
        "tables": {
            "referrals": store.backend.table("__bench_referrals"),
            "surveys": store.backend.table("__bench_surveys"),
            "interactions": interactions,
            "customers": store.table("customers"),
        },
    }
    # <<< CALL SITE (cvm_segments setup)
    count = con.execute(
        "SELECT (SELECT count(*) FROM __bench_base), "
        "(SELECT count(*) FROM period_snapshots WHERE run_id = ?), "
        "(SELECT count(*) FROM __bench_referrals), (SELECT count(*) FROM __bench_surveys)",
        [_RUN_ID],
    ).fetchone()
    assert count is not None
    chosen = [f"{f.role}:{f.name}" for f in potential.fits if f.chosen]
    info = {
        "base_rows": int(count[0]),
        "period_rows": int(count[1]),
        "referral_rows": int(count[2]),
        "survey_rows": int(count[3]),
        "models": ", ".join(chosen),
    }
    del frame, potential
    _release_memory()
    return {"store": store, "inputs": inputs, "info": info}


def step_cvm_segments(store: Any, inputs: dict[str, Any], info: dict[str, Any]) -> Any:
    """Measured step: the value, segment and lifecycle stage of ``cvm analyze``.

    ``segment_customers`` adds influence value (referral graph), value score, value
    tier, RFM, trend + lifecycle stage and satisfaction to the base snapshot and
    materialises the enriched rows in a temporary table.

    Parameters
    ----------
    store : cvm.store.Store
        The open store of :func:`setup_cvm_segments`.
    inputs : dict
        Base snapshot, period series, settings, ``as_of`` and input tables.
    info : dict
        Facts about the setup (unused here; reported by the teardown).

    Returns
    -------
    cvm.dynamics.segmentation.SegmentationResult
        Where the enriched rows are.
    """
    from cvm.dynamics.segmentation import segment_customers

    # >>> CALL SITE (cvm_segments)
    return segment_customers(
        store,
        inputs["base"],
        periods=inputs["periods"],
        settings=inputs["settings"],
        as_of=inputs["as_of"],
        tables=inputs["tables"],
    )
    # <<< CALL SITE (cvm_segments)


def teardown_cvm_segments(result: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Untimed: summarise the enriched rows, roll the transaction back, close the store.

    Parameters
    ----------
    result : cvm.dynamics.segmentation.SegmentationResult
        What :func:`step_cvm_segments` returned.
    state : dict
        The keyword arguments the step was called with.

    Returns
    -------
    dict
        Setup facts, row count and checksums of the enriched rows, referral counts.
    """
    store = state["store"]
    con = store.con
    try:
        row = con.execute(
            "SELECT count(*), sum(total_value), sum(value_score), sum(influence_value), "
            "count(*) FILTER (WHERE referred_customers > 0), count(DISTINCT tier_name), "
            "count(DISTINCT rfm_segment), count(DISTINCT lifecycle_stage), count(trend), "
            f"count(nps), count(csat) FROM {result.table}"
        ).fetchone()
        assert row is not None
        stages = con.execute(
            f"SELECT lifecycle_stage, count(*) FROM {result.table} GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        con.execute("ROLLBACK")
        store.close()
    names = [
        *("customers", "sum_total_value", "sum_value_score", "sum_influence_value"),
        *("referrers_credited", "tiers", "rfm_segments", "lifecycle_stages", "with_trend"),
        *("with_nps", "with_csat"),
    ]
    facts = {
        k: (round(v, 4) if isinstance(v, float) else v) for k, v in zip(names, row, strict=True)
    }
    referrals = {f"referrals_{k}": v for k, v in result.referrals.items()}
    return {
        **state["info"],
        **facts,
        "stages": "; ".join(f"{s}={n}" for s, n in stages),
        **referrals,
    }
