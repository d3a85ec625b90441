"""The README's two commands, and docs that stay true to the code."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cvm.cli.main import app

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_commands() -> None:
    head = README[: README.index("## Using it")]
    assert "make demo" in head and "make test" in head


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_make_test_runs_pytest() -> None:
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    out = subprocess.run(
        ["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "pytest" in out


@pytest.mark.slow
def test_make_demo_runs_the_demo(tmp_path: Path) -> None:
    """`make demo` (the README's first command) on the bundled data."""
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    result = subprocess.run(
        ["make", "demo", f"DEMO_DIR={tmp_path / 'demo'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Ingested 69,659 rows: 69,659 loaded" in out
    assert "Ingested 541,909 rows: 406,829 loaded, 135,080 quarantined, 0 duplicates" in out
    assert re.search(r"The top 20% of customers hold \d+\.\d% of realized value", out)
    assert "Ingested 328 rows of referrals (synthetic)" in out
    for heading in ("Value tiers", "Lifecycle stages", "Relationship measures", "NPS"):
        assert heading in out, heading
    assert (tmp_path / "demo" / "online_retail.duckdb").exists()


def test_every_command_is_documented() -> None:
    doc = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    names += [g.name or "" for g in app.registered_groups]
    assert set(names) == {
        "init",
        "ingest",
        "analyze",
        "customer",
        "segments",
        "kpis",
        "migration",
        "alerts",
        "actions",
        "assess",
        "models",
        "demo",
    }
    for name in names:
        assert f"`cvm {name}" in doc, name
        assert f"cvm {name}" in README or name in ("init", "demo", "models"), name
