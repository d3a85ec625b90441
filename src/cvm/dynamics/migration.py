"""The migration matrix between two snapshots, and a Markov projection of segment sizes.

:func:`migration_matrix` compares the customers of two analysis runs A (the earlier,
"from") and B (the later, "to") by value tier, lifecycle stage or RFM segment. Every
customer of A or B is in exactly one cell:

* a customer in both runs is counted in the row of their group in A and the column of
  their group in B (the diagonal holds those who stayed);
* a customer only in B is in the row **"new"** (arrivals: first purchase after A's
  date, or an id that was not a customer at A);
* a customer only in A is in the column **"lost"** (leavers: no longer a customer at
  B — merged into another customer by identity resolution, or erased from the store).

So the row sums of the groups are A's group sizes, the column sums B's group sizes, and
the "new" row plus A's customers minus the "lost" column is B's customers. Snapshots
keep every customer with a purchase up to their date, so a customer who stops buying is
not "lost": they stay in the snapshot and move, in time, to the departure stage, the
RFM segments of lapsed customers and the lower tiers — which is where churn shows.

Each cell also carries value (by default the ``total_value`` of the snapshot):

* ``value`` — the value that moved: for customers of A (stayers, movers and leavers)
  their value *at A*, what the group held at the start; for new customers their value
  *at B*, what they brought. Row sums of the groups are A's group values;
* ``value_end`` — the customers' value *at B* (0 for leavers). Column sums are B's
  group values; ``value_end - value`` of a cell of A's customers is how their value
  changed between the snapshots.

:meth:`MigrationMatrix.project` turns the counts into a Markov chain (Pfeifer & Carraway
2000): the probability of moving from group *i* to group *j* (or to "lost") in one
period — the interval between the two snapshots — is the share of A's customers of
group *i* found in group *j* at B, and new customers keep arriving per period as many,
and into the same groups, as between A and B. Sizes after *t* periods are

    n(t + 1) = n(t) · Q + a,

with Q the transition probabilities between groups and a the arrivals per period; the
customers leaving in period t + 1 are n(t) · q, with q the probabilities of "lost".

References
----------
Pfeifer, P. E., & Carraway, R. L. (2000). Modeling customer relationships as Markov
chains. *Journal of Interactive Marketing*, 14(2), 43–55.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from cvm.config import Settings
from cvm.errors import DataError, NotFoundError, ValidationError
from cvm.segments.lifecycle import LIFECYCLE_STAGES
from cvm.segments.rfm import load_rfm_rules
from cvm.store import Store

__all__ = [
    "LOST",
    "NEW",
    "MarkovProjection",
    "MigrationBy",
    "MigrationMatrix",
    "migration_matrix",
    "project_sizes",
]

#: The row of customers only in the later snapshot.
NEW: Final = "new"
#: The column of customers only in the earlier snapshot.
LOST: Final = "lost"
#: Label of customers whose group is missing in a snapshot.
NONE: Final = "(none)"

#: What the customers are grouped by.
MigrationBy = Literal["tier", "stage", "rfm"]
#: Which snapshot value is moved around.
ValueColumn = Literal["total_value", "realized_value", "potential_value", "influence_value"]

_COLUMNS: Final[dict[str, str]] = {
    "tier": "tier_name",
    "stage": "lifecycle_stage",
    "rfm": "rfm_segment",
}
_VALUES: Final = ("total_value", "realized_value", "potential_value", "influence_value")

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MarkovProjection:
    """Projected group sizes for the next periods (see the module docstring).

    Attributes
    ----------
    by
        The grouping: ``"tier"``, ``"stage"`` or ``"rfm"``.
    groups
        The groups (states), in order.
    start
        The date of the later snapshot, where period 0 is observed.
    period_days
        Length of one period: days between the two snapshots.
    transition
        Per group of A: probabilities of each group of B, then of ``"lost"``.
    inflow
        New customers arriving per period in each group.
    sizes
        Customers per group after 0, 1, …, ``periods`` periods (row 0 is observed).
    lost
        Customers leaving in each period (0 for period 0).
    steady_state
        Long-run group sizes, ``a · (I − Q)⁻¹``, when the chain loses customers from
        every group (else ``None``: with inflow and no way out the sizes keep growing).
    unobserved
        Groups without customers at A: no transitions observed, so their customers are
        assumed to stay.
    """

    by: str
    groups: list[str]
    start: dt.date
    period_days: int
    transition: list[list[float]]
    inflow: list[float]
    sizes: list[list[float]]
    lost: list[float]
    steady_state: list[float] | None = None
    unobserved: list[str] = field(default_factory=list)

    @property
    def periods(self) -> int:
        """Number of projected periods."""
        return len(self.sizes) - 1

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        data = asdict(self)
        data["start"] = self.start.isoformat()
        data["periods"] = self.periods
        data["totals"] = [float(sum(row)) for row in self.sizes]
        return data


@dataclass(frozen=True)
class MigrationMatrix:
    """Customers and value moving between the groups of two snapshots.

    Rows are the groups of A then ``"new"``; columns the groups of B then ``"lost"``;
    the groups are the same for rows and columns (every group of either run), in tier
    order, lifecycle order or RFM rule order. The cell ``["new"]["lost"]`` is always 0.

    Attributes
    ----------
    by
        ``"tier"`` (tier name), ``"stage"`` (lifecycle stage) or ``"rfm"`` (RFM segment).
    from_run, to_run, from_as_of, to_as_of
        The two runs and their dates.
    value_column
        The snapshot column summed in ``value`` and ``value_end``.
    groups
        The groups, in order.
    counts
        Customers per cell.
    value
        Value per cell: at A for A's customers, at B for new customers.
    value_end
        Value per cell at B (0 in the "lost" column).
    """

    by: str
    from_run: str
    to_run: str
    from_as_of: dt.date
    to_as_of: dt.date
    value_column: str
    groups: list[str]
    counts: list[list[int]]
    value: list[list[float]]
    value_end: list[list[float]]

    @property
    def rows(self) -> list[str]:
        """Row labels: the groups, then ``"new"``."""
        return [*self.groups, NEW]

    @property
    def columns(self) -> list[str]:
        """Column labels: the groups, then ``"lost"``."""
        return [*self.groups, LOST]

    @property
    def from_sizes(self) -> list[int]:
        """Customers per group in A (row sums)."""
        return [sum(row) for row in self.counts[:-1]]

    @property
    def to_sizes(self) -> list[int]:
        """Customers per group in B (column sums)."""
        return [sum(row[j] for row in self.counts) for j in range(len(self.groups))]

    @property
    def period_days(self) -> int:
        """Days between the two snapshots."""
        return (self.to_as_of - self.from_as_of).days

    def probabilities(self) -> list[list[float | None]]:
        """Row shares of the counts: for a group, P(group of B or lost | group of A).

        The "new" row holds the shares of the arrivals by group; a row without customers
        has ``None`` everywhere.
        """
        counts = np.asarray(self.counts, dtype=np.float64)
        totals = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        return [
            [float(p) for p in row] if total > 0 else [None] * len(row)
            for row, total in zip(shares, totals[:, 0], strict=True)
        ]

    def project(self, periods: int) -> MarkovProjection:
        """Project the group sizes ``periods`` periods past B (see the module docstring).

        Raises
        ------
        ValidationError
            If ``periods`` is negative or the two runs share their date (no period).
        """
        if periods < 0:
            raise ValidationError(f"the projection needs 0 or more periods, got {periods}")
        if self.period_days <= 0:
            raise ValidationError(
                f"runs '{self.from_run}' and '{self.to_run}' share their date "
                f"{self.to_as_of.isoformat()}: there is no period to project"
            )
        counts = np.asarray(self.counts, dtype=np.float64)
        k = len(self.groups)
        observed = counts[:k]
        totals = observed.sum(axis=1)
        transition = np.zeros((k, k + 1))
        seen = totals > 0
        transition[seen] = observed[seen] / totals[seen, None]
        transition[~seen, np.flatnonzero(~seen)] = 1.0  # unobserved groups keep customers
        inflow = counts[k, :k]
        sizes, lost = project_sizes(
            transition, inflow, np.asarray(self.to_sizes, dtype=np.float64), periods
        )
        return MarkovProjection(
            by=self.by,
            groups=list(self.groups),
            start=self.to_as_of,
            period_days=self.period_days,
            transition=transition.tolist(),
            inflow=inflow.tolist(),
            sizes=sizes.tolist(),
            lost=lost.tolist(),
            steady_state=_steady_state(transition[:, :k], inflow),
            unobserved=[g for g, s in zip(self.groups, seen, strict=True) if not s],
        )

    def cells(self) -> list[dict[str, Any]]:
        """Return one row per cell with customers (long form, for CSV)."""
        shares = self.probabilities()
        return [
            {
                "from": r,
                "to": c,
                "customers": self.counts[i][j],
                "share_of_from": shares[i][j],
                "value": self.value[i][j],
                "value_end": self.value_end[i][j],
            }
            for i, r in enumerate(self.rows)
            for j, c in enumerate(self.columns)
            if self.counts[i][j]
        ]

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        data = asdict(self)
        data["from_as_of"] = self.from_as_of.isoformat()
        data["to_as_of"] = self.to_as_of.isoformat()
        data |= {
            "rows": self.rows,
            "columns": self.columns,
            "period_days": self.period_days,
            "from_sizes": self.from_sizes,
            "to_sizes": self.to_sizes,
            "new": sum(self.counts[-1]),
            "lost": sum(row[-1] for row in self.counts),
            "probabilities": self.probabilities(),
        }
        return data


def project_sizes(
    transition: FloatArray, inflow: FloatArray, start: FloatArray, periods: int
) -> tuple[FloatArray, FloatArray]:
    """Iterate ``n(t + 1) = n(t) · Q + a`` for ``periods`` periods.

    Parameters
    ----------
    transition
        ``k × (k + 1)`` probabilities: to each of the ``k`` groups, then of leaving.
        Rows sum to 1.
    inflow
        ``k`` arrivals per period.
    start
        ``k`` sizes at period 0.
    periods
        Number of periods.

    Returns
    -------
    sizes, lost
        ``(periods + 1) × k`` sizes (row 0 is ``start``) and the ``periods + 1``
        customers leaving in each period (0 for period 0).
    """
    k = len(start)
    q, leave = transition[:, :k], transition[:, k]
    sizes = np.empty((periods + 1, k))
    lost = np.zeros(periods + 1)
    sizes[0] = start
    for t in range(periods):
        sizes[t + 1] = sizes[t] @ q + inflow
        lost[t + 1] = sizes[t] @ leave
    return sizes, lost


def _steady_state(q: FloatArray, inflow: FloatArray) -> list[float] | None:
    """Return ``a · (I − Q)⁻¹`` when the spectral radius of Q is below 1, else ``None``."""
    if len(q) == 0 or np.max(np.abs(np.linalg.eigvals(q))) >= 1.0 - 1e-9:
        return None
    solved = np.linalg.solve((np.eye(len(q)) - q).T, inflow)
    return [float(x) for x in solved]


# -- reading the two snapshots ------------------------------------------------------------
def _run(store: Store, run_id: str) -> tuple[str, dt.date, dt.datetime]:
    row = store.con.execute(
        "SELECT run_id, as_of, created_at FROM runs WHERE run_id = ?", [run_id]
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no run '{run_id}'", path=store.path)
    return str(row[0]), row[1], row[2]


def _pick_runs(
    store: Store, from_run: str | None, to_run: str | None
) -> tuple[tuple[str, dt.date], tuple[str, dt.date]]:
    """Return the runs to compare: by default the latest and the latest dated before it."""
    given = _run(store, from_run) if from_run is not None else None
    if to_run is not None:
        to = _run(store, to_run)
    else:
        row = store.con.execute(
            "SELECT run_id, as_of, created_at FROM runs ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
        if row is None:
            raise NotFoundError("no analysis runs yet; run 'cvm analyze' first", path=store.path)
        to = (str(row[0]), row[1], row[2])
    if given is not None:
        start = given
    else:
        row = store.con.execute(
            "SELECT run_id, as_of, created_at FROM runs WHERE as_of < ? "
            "ORDER BY as_of DESC, created_at DESC LIMIT 1",
            [to[1]],
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"no run dated before run '{to[0]}' ({to[1].isoformat()}) to compare it "
                "with; run 'cvm analyze --as-of DATE' at an earlier date, or backfill "
                "with 'cvm analyze --every month'",
                path=store.path,
            )
        start = (str(row[0]), row[1], row[2])
    if start[1] > to[1]:
        raise ValidationError(
            f"run '{start[0]}' ({start[1].isoformat()}) is dated after run '{to[0]}' "
            f"({to[1].isoformat()}); give the earlier run as --from"
        )
    return (start[0], start[1]), (to[0], to[1])


def _order(
    store: Store, by: str, runs: list[str], settings: Settings
) -> dict[str, tuple[Any, ...]]:
    """Return the sort key of every group of the runs: tier, lifecycle or rule order."""
    column = _COLUMNS[by]
    if by == "tier":
        rows = store.con.execute(
            f"SELECT coalesce({column}, '{NONE}'), min(tier) FROM customer_snapshots "
            "WHERE run_id IN (?, ?) GROUP BY 1",
            runs,
        ).fetchall()
        return {name: (tier is None, tier or 0, name) for name, tier in rows}
    rows = store.con.execute(
        f"SELECT DISTINCT coalesce({column}, '{NONE}') FROM customer_snapshots "
        "WHERE run_id IN (?, ?)",
        runs,
    ).fetchall()
    if by == "stage":
        known = list(LIFECYCLE_STAGES)
    else:
        folder = settings.source.parent if settings.source is not None else None
        rules = load_rfm_rules(settings.segments.rfm.rules_path(folder))
        known = [segment.name for segment in rules.segments]
    rank = {name: i for i, name in enumerate(known)}
    return {name: (name == NONE, rank.get(name, len(known)), name) for (name,) in rows}


def migration_matrix(
    store: Store,
    from_run: str | None = None,
    to_run: str | None = None,
    *,
    by: MigrationBy = "tier",
    value: ValueColumn = "total_value",
    settings: Settings | None = None,
) -> MigrationMatrix:
    """Count customers and value moving between the groups of two snapshots.

    Parameters
    ----------
    store
        The store.
    from_run
        The earlier run (A); by default the latest run dated before ``to_run``.
    to_run
        The later run (B); by default the latest run.
    by
        ``"tier"`` (``tier_name``), ``"stage"`` (``lifecycle_stage``) or ``"rfm"``
        (``rfm_segment``).
    value
        The snapshot value summed per cell (see the module docstring).
    settings
        For the order of the RFM segments (the configured rules); defaults when ``None``.

    Returns
    -------
    MigrationMatrix
        Counts and values per (group of A or "new", group of B or "lost").

    Raises
    ------
    NotFoundError
        If a run does not exist, or no earlier run exists to compare with.
    ValidationError
        If ``by`` or ``value`` is unknown, or ``from_run`` is dated after ``to_run``.
    DataError
        If a group is named "new" or "lost" (it would be confused with those rows).
    """
    if by not in _COLUMNS:
        raise ValidationError(f"unknown grouping {by!r}; expected tier, stage or rfm", value=by)
    if value not in _VALUES:
        raise ValidationError(
            f"unknown value {value!r}; expected one of {', '.join(_VALUES)}", value=value
        )
    settings = settings or Settings()
    (a_run, a_date), (b_run, b_date) = _pick_runs(store, from_run, to_run)
    order = _order(store, by, [a_run, b_run], settings)
    clash = sorted(set(order) & {NEW, LOST})
    if clash:
        raise DataError(
            f"a {by} group is named {clash[0]!r}, which is the name of the migration "
            "matrix's row of new or column of lost customers; rename the group"
        )
    groups = sorted(order, key=order.__getitem__)
    column = _COLUMNS[by]
    cells = store.con.execute(
        f"""
        WITH a AS (
            SELECT customer_id, coalesce({column}, '{NONE}') AS g, coalesce({value}, 0) AS v
            FROM customer_snapshots WHERE run_id = ?
        ), b AS (
            SELECT customer_id, coalesce({column}, '{NONE}') AS g, coalesce({value}, 0) AS v
            FROM customer_snapshots WHERE run_id = ?
        )
        SELECT a.g, b.g, count(*), sum(CASE WHEN a.customer_id IS NULL THEN b.v ELSE a.v END),
               sum(coalesce(b.v, 0))
        FROM a FULL OUTER JOIN b ON a.customer_id = b.customer_id
        GROUP BY ALL
        """,
        [a_run, b_run],
    ).fetchall()
    k = len(groups)
    index = {g: i for i, g in enumerate(groups)}
    counts = np.zeros((k + 1, k + 1), dtype=np.int64)
    moved = np.zeros((k + 1, k + 1))
    ended = np.zeros((k + 1, k + 1))
    for a_group, b_group, n, v, v_end in cells:  # one row per cell, not per customer
        i = index[a_group] if a_group is not None else k
        j = index[b_group] if b_group is not None else k
        counts[i, j], moved[i, j], ended[i, j] = n, v, v_end
    return MigrationMatrix(
        by=by,
        from_run=a_run,
        to_run=b_run,
        from_as_of=a_date,
        to_as_of=b_date,
        value_column=value,
        groups=groups,
        counts=counts.tolist(),
        value=moved.tolist(),
        value_end=ended.tolist(),
    )
