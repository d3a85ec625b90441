"""Analysis runs and their snapshots.

``analyze`` computes every customer's features and realized value at an ``as_of`` date
inside the store's engine and keeps them, with the settings used, as an immutable
snapshot tied to a run id, so that results can be compared over time and reproduced.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import ibis
import pyarrow as pa

from cvm import __version__
from cvm.config import Settings
from cvm.dynamics.segmentation import segment_customers
from cvm.errors import DataError, NotFoundError
from cvm.features import (
    TIME_UNIT_DAYS,
    btyd_summary,
    calibration_holdout,
    customer_totals,
    period_series,
)
from cvm.store import Store
from cvm.store.identity import IdentityReport, resolve_identities, unified
from cvm.value import realized_value
from cvm.value.potential import PotentialValue, potential_value

__all__ = [
    "RunOverview",
    "analyze",
    "latest_run_id",
    "list_runs",
    "run_overview",
]

#: Called with (steps done, steps total, what is happening).
StepProgress = Callable[[int, int, str], None]

#: Steps of one analysis as reported to ``progress``.
ANALYZE_STEPS = 7


@dataclass(frozen=True)
class RunOverview:
    """The headline figures of one analysis run."""

    run_id: str
    as_of: dt.date
    customers: int
    transactions: int
    revenue: float
    returns: float
    realized_value: float
    top_share: float
    top_value_share: float
    top_customers: list[dict[str, Any]] = field(default_factory=list)
    potential_value: float | None = None
    purchase_model: str | None = None
    model_reason: str | None = None
    spend_model: str | None = None
    model_errors: list[str] = field(default_factory=list)
    cost_to_serve: float = 0.0
    influence_value: float = 0.0
    total_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        return data


def _default_as_of(store: Store) -> dt.date:
    row = store.con.execute("SELECT max(ts)::DATE FROM transactions").fetchone()
    if row is None or row[0] is None:
        raise DataError("the store has no transactions; run 'cvm ingest transactions' first")
    value: dt.date = row[0]
    return value


def analyze(
    store: Store,
    settings: Settings | None = None,
    *,
    as_of: dt.date | None = None,
    progress: StepProgress | None = None,
) -> RunOverview:
    """Compute features and realized value at ``as_of`` and store them as a snapshot.

    Parameters
    ----------
    store
        The open store (with transactions).
    settings
        Settings (time unit, period, margin rate); defaults when ``None``.
    as_of
        Observation end (inclusive); defaults to the date of the last transaction.
    progress
        Optional callback ``(done, total, step)``.

    Returns
    -------
    RunOverview
        The run's headline figures.

    Raises
    ------
    DataError
        If the store holds no transactions on or before ``as_of``.
    """
    settings = settings or Settings()
    as_of = as_of or _default_as_of(store)
    if progress is not None:
        progress(0, ANALYZE_STEPS, "identities")
    tables, identity = _input_tables(store, settings)
    return _analyze_at(store, settings, as_of, tables, identity, progress)


def _analyze_at(
    store: Store,
    settings: Settings,
    as_of: dt.date,
    tables: dict[str, Any],
    identity: IdentityReport | None,
    progress: StepProgress | None,
) -> RunOverview:
    """Run the analysis at ``as_of`` on input tables whose customer ids are unified.

    The part of :func:`analyze` after identity resolution, shared with
    :func:`cvm.dynamics.backfill`, which resolves identities once for many dates.
    """
    steps = ANALYZE_STEPS

    def step(done: int, what: str) -> None:
        if progress is not None:
            progress(done, steps, what)

    step(1, "features")
    transactions = tables["transactions"]
    unit = settings.features.time_unit
    rate = settings.value.margin_rate
    summary = btyd_summary(transactions, observation_end=as_of, time_unit=unit)
    interactions = tables["interactions"]
    costs = interactions.filter(
        interactions.cost.notnull() & (interactions.ts.date() <= as_of)
    ).select("customer_id", "cost")
    totals = realized_value(
        customer_totals(transactions, observation_end=as_of, margin_rate=rate), costs
    )
    joined = summary.join(totals.drop("first_purchase", "last_purchase"), "customer_id")
    run_id = f"{as_of:%Y%m%d}-{uuid.uuid4().hex[:8]}"
    snapshot = joined.select(
        run_id=ibis.literal(run_id),
        customer_id=joined.customer_id,
        first_purchase=joined.first_purchase,
        last_purchase=joined.last_purchase,
        frequency=joined.frequency,
        recency=joined.recency,
        t=joined.t,
        monetary_value=joined.monetary_value,
        occasions=joined.occasions,
        transactions=joined.transactions,
        revenue=joined.revenue,
        returns=joined.returns,
        margin=joined.margin,
        realized_value=joined.realized_value,
        cost_to_serve=joined.cost_to_serve,
    )
    periods = period_series(
        transactions, observation_end=as_of, period=settings.features.period, margin_rate=rate
    )
    periods = periods.select(
        run_id=ibis.literal(run_id), **{c: periods[c] for c in periods.columns}
    )
    step(2, "models")
    potential = _potential_value(store, settings, transactions, summary, as_of)
    con = store.con
    tag = run_id.replace("-", "_")
    predictions, base = f"__cvm_predictions_{tag}", f"__cvm_base_{tag}"
    con.register(predictions, pa.Table.from_pandas(potential.predictions, preserve_index=False))
    predicted = ["p_alive", "expected_purchases_90d", "expected_spend", "potential_value"]
    try:
        con.execute(
            f"CREATE TEMP TABLE {base} AS SELECT s.*, "
            f"{', '.join('p.' + c for c in predicted)} "
            f"FROM ({store.backend.compile(snapshot)}) s "
            f"LEFT JOIN {predictions} p USING (customer_id)"
        )
    finally:
        con.unregister(predictions)
    temporary = [base]
    try:
        with store.transaction():
            step(3, "period series")
            inserted = con.execute(
                f"INSERT INTO period_snapshots {store.backend.compile(periods)}"
            ).fetchone()
            n_periods = int(inserted[0]) if inserted else 0
            step(4, "values and segments")
            stored_periods = store.table("period_snapshots")
            segmented = segment_customers(
                store,
                store.backend.table(base),
                periods=stored_periods.filter(stored_periods.run_id == run_id),
                settings=settings,
                as_of=as_of,
                tables=tables,
            )
            temporary.extend(segmented.temporary)
            step(5, "customer snapshot")
            columns = ", ".join(store.backend.table(segmented.table).columns)
            con.execute(
                f"INSERT INTO customer_snapshots ({columns}) SELECT {columns} "
                f"FROM {segmented.table}"
            )
            _store_fits(store, run_id, potential)
            row = con.execute(
                "SELECT count(*) FROM customer_snapshots WHERE run_id = ?", [run_id]
            ).fetchone()
            n = int(row[0]) if row else 0
            if n == 0:
                raise DataError(f"no transactions on or before {as_of.isoformat()}")
            details = {
                "identity": _plain(asdict(identity)) if identity is not None else None,
                "referrals": segmented.referrals,
            }
            con.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    as_of,
                    dt.datetime.now(),
                    unit,
                    settings.features.period,
                    settings.model_dump_json(),
                    n,
                    n_periods,
                    __version__,
                    json.dumps(details),
                ],
            )
    finally:
        for name in temporary:
            con.execute(f"DROP TABLE IF EXISTS {name}")
    step(6, "overview")
    overview = run_overview(store, run_id, top_share=settings.value.top_share)
    step(7, "done")
    return overview


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready copy: dates and times as ISO text."""
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in data.items()}


def _input_tables(store: Store, settings: Settings) -> tuple[dict[str, Any], IdentityReport | None]:
    """Return the input tables with unified customer ids (resolving identities if any).

    Identity resolution runs when the store holds identity records or customers with an
    email, phone or loyalty card; otherwise every id is its own customer.
    """
    row = store.con.execute(
        "SELECT (SELECT count(*) FROM identities) + (SELECT count(*) FROM customers "
        "WHERE coalesce(email, phone, loyalty_card) IS NOT NULL) "
        "+ (SELECT count(*) FROM customer_map)"
    ).fetchone()
    names = ("transactions", "interactions", "surveys", "referrals", "customers")
    if not row or not row[0]:
        return {name: store.table(name) for name in names}, None
    report = resolve_identities(store, settings.identity)
    return {name: unified(store, name) for name in names}, report


def _units_per_year(time_unit: str) -> float:
    return 365.2425 / TIME_UNIT_DAYS[time_unit]


def _potential_value(
    store: Store, settings: Settings, transactions: Any, summary: Any, as_of: dt.date
) -> PotentialValue:
    """Fit the configured models on the run's summaries and predict every customer."""
    unit = settings.features.time_unit
    frame = store.to_arrow(
        summary.select("customer_id", "frequency", "recency", "t", "monetary_value")
    ).to_pandas()
    split = None
    if settings.models.purchase == "auto":
        calibration_end = as_of - dt.timedelta(days=settings.models.holdout_days)
        first = store.con.execute("SELECT min(ts)::DATE FROM transactions").fetchone()
        if first and first[0] is not None and calibration_end > first[0]:
            split = store.to_arrow(
                calibration_holdout(
                    transactions,
                    calibration_end=calibration_end,
                    observation_end=as_of,
                    time_unit=unit,
                )
            ).to_pandas()
    return potential_value(
        frame,
        split=split,
        settings=settings.models,
        units_per_year=_units_per_year(unit),
        margin=_margin_ratio(store, as_of, settings.value.margin_rate),
    )


def _margin_ratio(store: Store, as_of: dt.date, default: float) -> float:
    """Profit per unit of revenue: measured where the data carry margin or cost."""
    row = store.con.execute(
        "SELECT sum(coalesce(margin, amount - cost)), sum(amount), count(*) FROM transactions "
        "WHERE (margin IS NOT NULL OR cost IS NOT NULL) AND ts::DATE <= ?",
        [as_of],
    ).fetchone()
    if row is None or not row[2] or not row[1] or row[1] <= 0:
        return default
    return float(min(max(row[0] / row[1], 0.0), 1.0))


def _store_fits(store: Store, run_id: str, potential: PotentialValue) -> None:
    rows = []
    for fit in potential.fits:
        model = fit.model
        data = model.to_dict() if model is not None else None
        rows.append(
            [
                run_id,
                fit.role,
                fit.name,
                fit.chosen,
                model.log_likelihood_ if model is not None else None,
                model.aic_ if model is not None else None,
                model.bic_ if model is not None else None,
                model.n_customers_ if model is not None else None,
                model.converged_ if model is not None else None,
                json.dumps(model.params_) if model is not None else None,
                json.dumps(fit.backtest.to_dict()) if fit.backtest is not None else None,
                fit.reason,
                fit.error,
                json.dumps(data) if data is not None else None,
            ]
        )
    if rows:
        store.con.executemany(
            "INSERT INTO model_fits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )


def model_fits(store: Store, *, run_id: str | None = None) -> list[dict[str, Any]]:
    """Return the models fitted for a run (default: the latest), backtests included."""
    run_id = run_id or latest_run_id(store)
    _run_as_of(store, run_id)
    cursor = store.con.execute(
        "SELECT run_id, role, model, chosen, log_likelihood, aic, bic, n_customers, converged, "
        "params, backtest, reason, error FROM model_fits WHERE run_id = ? "
        "ORDER BY role DESC, chosen DESC, model",
        [run_id],
    )
    names = [d[0] for d in cursor.description]
    out = []
    for row in cursor.fetchall():
        item = dict(zip(names, row, strict=True))
        for key in ("params", "backtest"):
            item[key] = json.loads(item[key]) if item[key] else None
        out.append(item)
    return out


def list_runs(store: Store) -> list[dict[str, Any]]:
    """Return every run, newest first: run id, as_of, created, customers."""
    rows = store.con.execute(
        "SELECT run_id, as_of, created_at, n_customers FROM runs ORDER BY created_at DESC"
    ).fetchall()
    return [
        {
            "run_id": r[0],
            "as_of": r[1].isoformat(),
            "created_at": r[2].isoformat(),
            "customers": int(r[3]),
        }
        for r in rows
    ]


def latest_run_id(store: Store) -> str:
    """Return the id of the most recent run.

    Raises
    ------
    NotFoundError
        If no analysis has been run.
    """
    row = store.con.execute("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()
    if row is None:
        raise NotFoundError("no analysis run yet; run 'cvm analyze' first", path=store.path)
    return str(row[0])


def _run_as_of(store: Store, run_id: str) -> dt.date:
    row = store.con.execute("SELECT as_of FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        raise NotFoundError(f"no run '{run_id}'", path=store.path)
    as_of: dt.date = row[0]
    return as_of


def run_overview(
    store: Store, run_id: str | None = None, *, top_share: float = 0.2, top_n: int = 5
) -> RunOverview:
    """Summarise a run: customers, revenue, realized value and its concentration.

    ``top_value_share`` is the share of total realized value held by the top
    ``top_share`` of customers ranked by realized value (the 80/20 view).
    """
    run_id = run_id or latest_run_id(store)
    as_of = _run_as_of(store, run_id)
    con = store.con
    row = con.execute(
        "SELECT count(*), sum(transactions), sum(revenue), sum(returns), sum(realized_value), "
        "sum(potential_value), sum(coalesce(cost_to_serve, 0)), "
        "sum(coalesce(influence_value, 0)), sum(total_value) "
        "FROM customer_snapshots WHERE run_id = ?",
        [run_id],
    ).fetchone()
    assert row is not None
    customers, n_tx = int(row[0]), int(row[1] or 0)
    revenue, returns, value, potential, cost, influence, total_value = row[2:]
    fits = con.execute(
        "SELECT role, model, chosen, reason, error FROM model_fits WHERE run_id = ?", [run_id]
    ).fetchall()
    chosen = {role: (model, reason) for role, model, is_chosen, reason, _ in fits if is_chosen}
    k = max(1, math.ceil(customers * top_share))
    top_row = con.execute(
        "SELECT sum(realized_value) FROM (SELECT realized_value FROM customer_snapshots "
        "WHERE run_id = ? ORDER BY realized_value DESC LIMIT ?)",
        [run_id, k],
    ).fetchone()
    top_value = float(top_row[0]) if top_row and top_row[0] is not None else 0.0
    total = float(value or 0.0)
    top = con.execute(
        "SELECT customer_id, occasions, revenue, realized_value FROM customer_snapshots "
        "WHERE run_id = ? ORDER BY realized_value DESC, customer_id LIMIT ?",
        [run_id, top_n],
    ).fetchall()
    return RunOverview(
        run_id=run_id,
        as_of=as_of,
        customers=customers,
        transactions=n_tx,
        revenue=float(revenue or 0.0),
        returns=float(returns or 0.0),
        realized_value=total,
        top_share=top_share,
        top_value_share=top_value / total if total > 0 else float("nan"),
        top_customers=[
            {"customer_id": c, "occasions": int(o), "revenue": float(r), "realized_value": float(v)}
            for c, o, r, v in top
        ],
        potential_value=float(potential) if potential is not None else None,
        purchase_model=chosen.get("purchase", (None, None))[0],
        model_reason=chosen.get("purchase", (None, None))[1],
        spend_model=chosen.get("spend", (None, None))[0],
        model_errors=[f"{model}: {error}" for _, model, _, _, error in fits if error],
        cost_to_serve=float(cost or 0.0),
        influence_value=float(influence or 0.0),
        total_value=float(total_value) if total_value is not None else None,
    )
