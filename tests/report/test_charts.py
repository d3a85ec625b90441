from __future__ import annotations

import datetime as dt
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.conftest import shared

from cvm import Store
from cvm.config import settings_from_dict
from cvm.dynamics import analyze
from cvm.ingest import ingest_transactions
from cvm.report.charts import grouped_bars, heatmap, line_chart
from cvm.report.model_plots import model_plots

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_line_chart_draws_one_line_per_series() -> None:
    root = parse(
        line_chart(
            "A & B",
            [1, 2, 3],
            {"actual": [1, 4, 9], "expected": [1, 3, 8]},
            x_label="week",
            y_label="purchases",
        )
    )
    assert root.find(f"{SVG}title").text == "A & B"  # type: ignore[union-attr]
    lines = root.findall(f"{SVG}polyline")
    assert [line.find(f"{SVG}title").text for line in lines] == ["actual", "expected"]  # type: ignore[union-attr]
    assert len(lines[0].get("points", "").split()) == 3
    with pytest.raises(ValueError, match="one value per x"):
        line_chart("t", [1, 2], {"a": [1]}, x_label="x", y_label="y")


def test_bars_and_heatmap() -> None:
    bars = parse(
        grouped_bars(
            "t", ["0", "1", "2+"], {"a": [1, 2, 3], "b": [2, 2, 2]}, x_label="x", y_label="y"
        )
    )
    assert len(bars.findall(f"{SVG}rect")) == 1 + 6 + 2  # background, bars, legend
    frame = pd.DataFrame([[1.0, np.nan], [0.5, 0.25]], index=[0, 1], columns=[0.0, 1.0])
    cells = parse(heatmap("h", frame, x_label="r", y_label="f")).findall(f"{SVG}rect")
    assert len(cells) == 1 + 3  # the NaN cell is left out


@pytest.mark.slow
def test_model_plots_of_a_run(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        ingest_transactions(store, shared("cdnow_sample.parquet"))
        settings = settings_from_dict({"models": {"purchase": "bgnbd", "holdout_days": 273}})
        run = analyze(store, settings, as_of=dt.date(1998, 6, 30))
        plots = model_plots(store, run.run_id)
    assert set(plots) == {
        "calibration_holdout.svg",
        "tracking_cumulative.svg",
        "tracking_per_period.svg",
        "p_alive_matrix.svg",
        "expected_purchases_matrix.svg",
    }
    for svg in plots.values():
        assert parse(svg).tag == f"{SVG}svg"
    assert "(bgnbd)" in plots["tracking_cumulative.svg"]
    assert "holdout after 1997-09-30" in plots["tracking_cumulative.svg"]


@pytest.mark.slow
def test_cvm_models_writes_plots(tmp_path: Path) -> None:
    cvm = Path(sys.executable).parent / "cvm"
    db = str(tmp_path / "s.duckdb")
    for args in (["ingest", "transactions", str(shared("cdnow_sample.parquet"))], ["analyze"]):
        subprocess.run([str(cvm), *args, "--db", db], check=True, capture_output=True)
    done = subprocess.run(
        [str(cvm), "models", "--db", db, "--plots", str(tmp_path / "p")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote" in done.stdout
    assert len(list((tmp_path / "p").glob("*.svg"))) == 5
