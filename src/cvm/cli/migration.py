"""``cvm migration``: how customers move between tiers, stages and segments."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from cvm.cli.common import (
    ConfigOption,
    DbOption,
    FormatOption,
    app,
    maybe,
    open_store,
    read_settings,
)
from cvm.cli.output import Format, console, emit_csv, emit_json
from cvm.dynamics import MarkovProjection, MigrationMatrix, migration_matrix
from cvm.dynamics.migration import LOST, NEW


class MigrationBy(StrEnum):
    """What ``cvm migration`` groups customers by."""

    tier = "tier"
    stage = "stage"
    rfm = "rfm"


_TITLES = {"tier": "value tier", "stage": "lifecycle stage", "rfm": "RFM segment"}


def _label(name: str, *, row: bool) -> str:
    if row and name == NEW:
        return "(new)"
    if not row and name == LOST:
        return "(lost)"
    return name


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def _matrix(
    m: MigrationMatrix,
    title: str,
    cells: list[list[Any]],
    total: str,
    bottom: tuple[str, list[Any]],
) -> Table:
    """Build a rows × columns table with row totals and a bottom row (column figures)."""
    out = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    out.add_column("A \\ B", no_wrap=True)
    for name in [*(_label(c, row=False) for c in m.columns), total]:
        out.add_column(name, justify="right", no_wrap=True)
    for label, row in zip(m.rows, cells, strict=True):
        out.add_row(_label(label, row=True), *map(_number, row), _number(sum(row)))
    name, sums = bottom
    grand = sum(x for x in sums if x is not None)
    out.add_row(name, *map(_number, sums), _number(grand), end_section=True)
    return out


def _moves(m: MigrationMatrix, title: str, cells: list[list[Any]]) -> Table:
    """Build the same cells as a list (when the matrix is wider than the terminal)."""
    out = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    out.add_column("A")
    out.add_column("B")
    out.add_column("", justify="right")
    out.add_column("share of row", justify="right")
    shares = m.probabilities()
    for i, label in enumerate(m.rows):
        for j, column in enumerate(m.columns):
            if m.counts[i][j]:
                share = shares[i][j]
                out.add_row(
                    _label(label, row=True),
                    _label(column, row=False),
                    _number(cells[i][j]),
                    maybe(share, "{:.1%}"),
                )
    return out


def _width(out: Table) -> int:
    """Width of a table whose cells are plain text, none wrapped (three spaces apart)."""
    widths = [
        max([len(str(column.header)), *(len(str(cell)) for cell in column.cells)])
        for column in out.columns
    ]
    return sum(widths) + 3 * (len(widths) - 1) + 2


def _print_cells(
    m: MigrationMatrix,
    title: str,
    cells: list[list[Any]],
    total: str,
    bottom: tuple[str, list[Any]],
) -> None:
    matrix = _matrix(m, title, cells, total, bottom)
    if _width(matrix) <= console.width:
        console.print(matrix)
    else:
        wide = f"{title}, per move (the matrix is wider than the terminal)"
        console.print(_moves(m, wide, cells))


def print_migration(m: MigrationMatrix, projection: MarkovProjection | None, values: bool) -> None:
    """Print the migration matrix (counts, values on request) and the projection."""
    console.print(
        f"[bold]Migration by {_TITLES[m.by]}[/bold]: A = run {m.from_run} "
        f"({m.from_as_of.isoformat()}) → B = run {m.to_run} ({m.to_as_of.isoformat()}), "
        f"{m.period_days} days",
        markup=True,
    )
    counts_at_b: list[Any] = [*m.to_sizes, None]
    _print_cells(m, "Customers", m.counts, "total at A", ("total at B", counts_at_b))
    stayed = sum(m.counts[i][i] for i in range(len(m.groups)))
    at_a = sum(m.from_sizes)
    new = sum(m.counts[-1])
    lost = sum(row[-1] for row in m.counts)
    console.print(
        f"{at_a:,} customers at A, {sum(m.to_sizes):,} at B: {new:,} new, {lost:,} lost; "
        f"{stayed:,} ({maybe(stayed / at_a if at_a else None, '{:.1%}')}) stayed in their "
        f"{_TITLES[m.by]}."
    )
    if values:
        at_b: list[Any] = [sum(row[j] for row in m.value_end) for j in range(len(m.groups))]
        at_b.append(None)
        _print_cells(
            m,
            f"Value ({m.value_column}: at A for A's customers, at B for new ones)",
            m.value,
            "total",
            ("value at B", at_b),
        )
    if projection is not None:
        out = Table(
            title=(
                f"Projected customers per {_TITLES[m.by]}, {projection.periods} periods of "
                f"{projection.period_days} days (period 0 = B)"
            ),
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        out.add_column("period", no_wrap=True)
        for t in range(projection.periods + 1):
            out.add_column(str(t), justify="right", no_wrap=True)
        for i, group in enumerate(projection.groups):
            out.add_row(group, *(_number(sizes[i]) for sizes in projection.sizes))
        out.add_row("total", *(_number(sum(sizes)) for sizes in projection.sizes))
        out.add_row("lost in the period", *map(_number, projection.lost))
        console.print(out)
        console.print(
            "A Markov chain of the observed transition shares (Pfeifer & Carraway 2000), "
            f"with {sum(projection.inflow):,.0f} new customers arriving per period, split "
            "as observed.",
            markup=False,
        )
        if projection.unobserved:
            console.print(
                "no customers at A in: "
                + ", ".join(projection.unobserved)
                + " (their customers are assumed to stay)",
                markup=False,
            )


@app.command("migration")
def migration_command(
    from_run: Annotated[
        str | None,
        typer.Option("--from", help="The earlier run (default: the latest run dated before --to)."),
    ] = None,
    to_run: Annotated[
        str | None, typer.Option("--to", help="The later run (default: the latest run).")
    ] = None,
    by: Annotated[
        MigrationBy | None,
        typer.Option(
            "--by", help="Group by tier, stage or rfm (default: [dynamics.migration] by)."
        ),
    ] = None,
    project: Annotated[
        int | None,
        typer.Option(
            "--project",
            min=0,
            help=(
                "Project group sizes this many periods ahead, 0 for none "
                "(default: [dynamics.migration] projection_periods)."
            ),
        ),
    ] = None,
    values: Annotated[
        bool, typer.Option("--values", help="Also show the value table (table format).")
    ] = False,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Show customers and value moving between tiers, stages or RFM segments of two runs.

    Rows are the groups at the earlier run A plus "new" (only in B); columns the groups
    at the later run B plus "lost" (only in A). With --project, a Markov projection of
    the group sizes for the next periods (each as long as the interval A → B).
    """
    settings = read_settings(config)
    grouping = by.value if by is not None else settings.dynamics.migration.by
    periods = project if project is not None else settings.dynamics.migration.projection_periods
    with open_store(db, settings, read_only=True, must_exist=True) as store:
        matrix = migration_matrix(store, from_run, to_run, by=grouping, settings=settings)
    projection = matrix.project(periods) if periods > 0 and matrix.period_days > 0 else None
    if fmt is Format.json:
        emit_json({**matrix.to_dict(), "projection": projection.to_dict() if projection else None})
    elif fmt is Format.csv:
        rows = [{"kind": "migration", "period": None, **cell} for cell in matrix.cells()]
        if projection is not None:
            for t, sizes in enumerate(projection.sizes):
                for group, size in [*zip(projection.groups, sizes, strict=True)]:
                    rows.append(_projection_row(t, group, size))
                if t:
                    rows.append(_projection_row(t, LOST, projection.lost[t]))
        emit_csv(rows)
    else:
        print_migration(matrix, projection, values)
        if periods > 0 and projection is None:
            console.print("no projection: the two runs share their date", markup=False)


def _projection_row(period: int, group: str, customers: float) -> dict[str, Any]:
    return {
        "kind": "projection",
        "period": period,
        "from": None,
        "to": group,
        "customers": customers,
        "share_of_from": None,
        "value": None,
        "value_end": None,
    }
