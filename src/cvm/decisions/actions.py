"""The playbook applied to a stored run, and the mix of actions it gives.

:func:`actions_for_run` loads the configured playbook (checked against the tiers the
run was cut with) and assigns every customer of the run's snapshot one action, service
level and channel (:func:`cvm.decisions.playbook.assign_actions`); :func:`action_mix`
counts customers and value per action, service level, channel and rule.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd

from cvm.config import Settings
from cvm.decisions.playbook import (
    SERVICE_LEVELS,
    Playbook,
    assign_actions,
    playbook_for,
    potential_threshold,
)
from cvm.dynamics.card import find_run
from cvm.store import Store

__all__ = ["RunActions", "action_mix", "actions_for_run"]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)

_VALUE_COLUMNS: Final[tuple[str, ...]] = ("total_value", "potential_value", "realized_value")


def action_mix(
    assigned: Table, playbook: Playbook | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Count customers and value per action, service level, channel and rule.

    Parameters
    ----------
    assigned
        The result of :func:`assign_actions`.
    playbook
        When given, rules are listed in its order, those without customers too.

    Returns
    -------
    dict
        ``{"actions": […], "service_levels": […], "channels": […], "rules": […]}``,
        each row with ``customers``, ``customer_share``, ``total_value``,
        ``potential_value``, ``realized_value`` and ``value_share`` (of total value);
        rules also with their action, service level and channel. Actions and channels
        by customers, most first; service levels best first.
    """
    t = assigned
    values = {
        c: t[c].cast("float64").fill_null(0.0).sum() for c in _VALUE_COLUMNS if c in t.columns
    }
    keys = ["rule", "action", "service_level", "channel"]
    grouped = t.group_by(*keys).aggregate(customers=t.count(), **values).to_pyarrow().to_pandas()
    for column in _VALUE_COLUMNS:
        if column not in grouped.columns:
            grouped[column] = 0.0
    if playbook is not None:
        listed = pd.DataFrame(
            [[r.id, r.action, r.service_level, r.channel] for r in playbook.rules], columns=keys
        )
        grouped = listed.merge(grouped, on=keys, how="left").fillna(
            dict.fromkeys(["customers", *_VALUE_COLUMNS], 0)
        )
    total_customers = float(grouped["customers"].sum())
    total_value = float(grouped["total_value"].sum())

    def rows(by: list[str], order: Sequence[str] | None = None) -> list[dict[str, Any]]:
        if by == keys:
            frame = grouped.copy()
        else:
            frame = grouped.groupby(by, as_index=False, sort=False)[
                ["customers", *_VALUE_COLUMNS]
            ].sum()
        frame["customer_share"] = frame["customers"] / total_customers if total_customers else 0.0
        frame["value_share"] = frame["total_value"] / total_value if total_value else float("nan")
        if order is not None:
            rank = {v: i for i, v in enumerate(order)}
            frame = frame.sort_values(by[0], key=lambda s: s.map(rank), kind="stable")
        elif playbook is None or by != keys:
            frame = frame.sort_values(["customers", by[0]], ascending=[False, True])
        frame["customers"] = frame["customers"].astype("int64")
        records: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
        return records

    return {
        "actions": rows(["action"]),
        "service_levels": rows(["service_level"], SERVICE_LEVELS),
        "channels": rows(["channel"]),
        "rules": rows(keys),
    }


@dataclass(frozen=True)
class RunActions:
    """The playbook applied to one run's customers.

    Attributes
    ----------
    run_id, as_of
        The run.
    playbook
        The playbook, checked against the run's tiers.
    table
        The run's customer snapshot with actions (:func:`assign_actions`); lazy.
    high_potential
        The potential value from which potential is ``high`` (``None``: unknown).
    """

    run_id: str
    as_of: dt.date
    playbook: Playbook
    table: Table
    high_potential: float | None


def _run_tiers(store: Store, run_id: str) -> list[str] | None:
    """Return the tier names a run was cut with (from its stored settings), if recorded."""
    row = store.con.execute("SELECT settings FROM runs WHERE run_id = ?", [run_id]).fetchone()
    try:
        names = json.loads(row[0])["segments"]["tiers"]["names"] if row else None
    except (KeyError, TypeError, ValueError):
        return None
    return [str(n) for n in names] if isinstance(names, list) and names else None


def actions_for_run(
    store: Store,
    settings: Settings | None = None,
    *,
    run_id: str | None = None,
    playbook: Playbook | None = None,
) -> RunActions:
    """Apply the playbook to a run's customers (default: the latest run).

    Parameters
    ----------
    store
        The store.
    settings
        Settings (the playbook file and the bands); defaults when ``None``.
    run_id
        The run; the latest when ``None``.
    playbook
        The playbook; default: the one ``settings`` name (:func:`playbook_for`),
        checked against the tiers the run was cut with.

    Raises
    ------
    NotFoundError
        If there is no such run (or none at all).
    ConfigError
        If the playbook is invalid.
    """
    settings = settings or Settings()
    run_id, as_of, _ = find_run(store, run_id)
    if playbook is None:
        playbook = playbook_for(settings, tiers=_run_tiers(store, run_id))
    snapshots = store.table("customer_snapshots")
    snapshot = snapshots.filter(snapshots.run_id == run_id)
    high = potential_threshold(snapshot, settings.decisions.high_potential_quantile)
    table = assign_actions(snapshot, playbook, settings.decisions, high_potential=high)
    return RunActions(
        run_id=run_id, as_of=as_of, playbook=playbook, table=table, high_potential=high
    )
