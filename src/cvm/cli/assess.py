"""``cvm assess``: how much the company can afford to spend on CRM."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from cvm.cli.common import (
    ConfigOption,
    DbOption,
    FormatOption,
    RunOption,
    app,
    maybe,
    open_store,
    read_settings,
)
from cvm.cli.output import Format, console, emit_csv, emit_json, table
from cvm.decisions.assessment import (
    CEILING_TERMS,
    Assessment,
    AssessmentInput,
    AssessmentInputs,
    Figure,
    assess,
    assess_store,
)
from cvm.errors import NotFoundError, ValidationError

#: Field of :class:`AssessmentInputs` → its option.
OPTIONS = {
    "revenue": "--revenue",
    "turnover": "--turnover",
    "acquisition_rate": "--acquisition-rate",
    "revenue_growth": "--revenue-growth",
    "referral_value": "--referral-value",
    "margin_rate": "--margin-rate",
    "market_growth": "--market-growth",
    "expense": "--expense",
    "target_retention": "--target-retention",
    "retention_improvement": "--retention-improvement",
}


def _option(name: str, text: str) -> Any:
    return typer.Option(OPTIONS[name], help=text, show_default=False)


def _value(value: float | None, unit: str) -> str:
    return maybe(value, "{:,.2f}" if unit == "money" else "{:.1%}")


def _given(item: AssessmentInput) -> str:
    return f"{item.name} = {_value(item.value, item.unit)} ({item.source})"


def _print_figure(figure: Figure) -> None:
    mark = "  [in the ceiling]" if figure.in_ceiling else ""
    console.print(
        f"[bold]{figure.label}[/bold]: {_value(figure.value, figure.unit)}{mark}", soft_wrap=True
    )
    console.print(f"    = {figure.formula}", markup=False, soft_wrap=True)
    console.print(
        "    with " + ", ".join(_given(i) for i in figure.inputs), markup=False, soft_wrap=True
    )


def print_assessment(result: Assessment) -> None:
    """Print every figure of the assessment with its inputs and the spending ceiling."""
    title = "[bold]CRM investment assessment[/bold]"
    if result.measures is not None:
        m = result.measures
        console.print(
            f"{title}: run {m.run_id}, the 12 months "
            f"{(m.start + dt.timedelta(days=1)).isoformat()} to {m.as_of.isoformat()}"
        )
    else:
        console.print(f"{title} from given inputs only")
    console.print(
        table(
            "Inputs",
            ["input", "value", "source", "basis"],
            [(i.label, _value(i.value, i.unit), i.source, i.basis) for i in result.inputs.values()],
        )
    )
    console.print("[bold]Figures[/bold]")
    for name, figure in result.figures.items():
        if name == "spending_ceiling":
            terms = " + ".join(result.figures[term].label for term in CEILING_TERMS)
            console.print(f"[bold]Spending ceiling[/bold] = {terms}", soft_wrap=True)
        _print_figure(figure)
    for note in result.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=True)


def _csv_rows(result: Assessment) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in result.inputs.values():
        rows.append(
            {
                "kind": "input",
                "name": i.name,
                "label": i.label,
                "value": i.value,
                "unit": i.unit,
                "source": i.source,
                "basis": i.basis,
                "formula": "",
                "inputs": "",
                "in_ceiling": "",
            }
        )
    for f in result.figures.values():
        rows.append(
            {
                "kind": "figure",
                "name": f.name,
                "label": f.label,
                "value": f.value,
                "unit": f.unit,
                "source": "",
                "basis": "",
                "formula": f.formula,
                "inputs": "; ".join(f"{i.name}={i.value} ({i.source})" for i in f.inputs),
                "in_ceiling": f.in_ceiling,
            }
        )
    return rows


@app.command("assess")
def assess_command(
    market_growth: Annotated[
        float | None,
        _option(
            "market_growth", "Annual growth rate of the market, e.g. 0.05 (default: [assess])."
        ),
    ] = None,
    expense: Annotated[
        float | None,
        _option("expense", "Annual sales and marketing expense (default: [assess])."),
    ] = None,
    target_retention: Annotated[
        float | None,
        _option(
            "target_retention",
            "Retention rate to reach, e.g. 0.9 (default: measured + retention improvement).",
        ),
    ] = None,
    retention_improvement: Annotated[
        float | None,
        _option("retention_improvement", "Rise in retention the default target aims at (0.05)."),
    ] = None,
    revenue: Annotated[
        float | None, _option("revenue", "Annual revenue (default: measured, last 12 months).")
    ] = None,
    turnover: Annotated[
        float | None,
        _option("turnover", "Customer turnover rate, 1 − retention (default: measured)."),
    ] = None,
    acquisition_rate: Annotated[
        float | None,
        _option("acquisition_rate", "New customers / customers at start (default: measured)."),
    ] = None,
    revenue_growth: Annotated[
        float | None,
        _option("revenue_growth", "Revenue growth over the year before (default: measured)."),
    ] = None,
    referral_value: Annotated[
        float | None,
        _option(
            "referral_value",
            "Influence value of the active customers (default: measured).",
        ),
    ] = None,
    margin_rate: Annotated[
        float | None,
        _option("margin_rate", "Profit per unit of revenue (default: measured)."),
    ] = None,
    run: RunOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """How much can we afford to spend on CRM? Price customer turnover from our own figures.

    Revenue, turnover, acquisition rate, revenue growth, referral value and margin are
    measured in the store (last 12 months to the run's date) unless given; market
    growth and sales and marketing expense come from the options or [assess] in
    cvm.toml. Without a store, --revenue and --turnover are enough. Formulas:
    docs/assessment.md.
    """
    settings = read_settings(config)
    overrides = {
        "revenue": revenue,
        "turnover": turnover,
        "acquisition_rate": acquisition_rate,
        "revenue_growth": revenue_growth,
        "referral_value": referral_value,
        "margin_rate": margin_rate,
        "market_growth": market_growth,
        "expense": expense,
        "target_retention": target_retention,
        "retention_improvement": retention_improvement,
    }
    try:
        given = AssessmentInputs.from_settings(settings.assess, **overrides)
    except ValidationError as exc:
        hint = OPTIONS.get(exc.key or "", "")
        raise typer.BadParameter(exc.message, param_hint=hint or None) from None
    try:
        store = open_store(db, settings, read_only=True, must_exist=True)
    except NotFoundError as exc:
        if db is not None or run is not None or given.revenue is None or given.turnover is None:
            raise NotFoundError(
                f"{exc.message} (or give --revenue and --turnover to assess without a store)",
                path=exc.path,
            ) from None
        result = assess(given)
    else:
        with store:
            result = assess_store(store, run, settings=settings, given=given)
    if fmt is Format.json:
        emit_json(result.to_dict())
    elif fmt is Format.csv:
        emit_csv(_csv_rows(result))
    else:
        print_assessment(result)
