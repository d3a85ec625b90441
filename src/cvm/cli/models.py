"""``cvm models``: the models fitted for a run, their backtests and diagnostic plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
from cvm.dynamics import model_fits
from cvm.store import Store


# -- models -----------------------------------------------------------------------------
@app.command("models")
def models_command(
    run: RunOption = None,
    plots: Annotated[
        Path | None,
        typer.Option(
            "--plots", help="Write diagnostic plots (SVG) into this folder.", file_okay=False
        ),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Show the models fitted for a run: parameters, fit, backtest and the choice."""
    settings = read_settings(config)
    with open_store(db, settings, read_only=True) as store:
        fits = model_fits(store, run_id=run)
        written = _write_plots(store, run, plots) if plots is not None else []
    if fmt is Format.json:
        emit_json(fits)
        return
    if fmt is Format.csv:
        emit_csv([{k: v for k, v in f.items() if not isinstance(v, dict)} for f in fits])
        return
    rows = []
    for f in fits:
        test = f["backtest"] or {}
        rows.append(
            (
                f["role"],
                f["model"],
                "yes" if f["chosen"] else "",
                maybe(f["log_likelihood"], "{:,.1f}"),
                maybe(f["bic"], "{:,.1f}"),
                maybe(test.get("mae"), "{:.4f}"),
                maybe(test.get("auc_expected"), "{:.3f}"),
            )
        )
    title = f"Models of run {fits[0]['run_id']}" if fits else "Models"
    columns = ["role", "model", "used", "log-lik.", "BIC", "holdout MAE", "AUC"]
    console.print(table(title, columns, rows))
    for f in fits:
        params = ", ".join(f"{k} = {v:.4g}" for k, v in (f["params"] or {}).items())
        detail = params or f"not fitted: {f['error']}"
        console.print(f"{f['role']} {f['model']}: {detail}", markup=False, soft_wrap=True)
    for f in fits:
        if f["chosen"] and f["reason"]:
            console.print(f"Chosen {f['role']} model: {f['reason']}", markup=False)
    for path in written:
        console.print(f"wrote {path}", markup=False)


def _write_plots(store: Store, run: str | None, folder: Path) -> list[Path]:
    from cvm.report.model_plots import model_plots

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, svg in model_plots(store, run).items():
        path = folder / name
        path.write_text(svg, encoding="utf-8")
        written.append(path)
    return written
