from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest

from cvm.config import IngestSettings, Settings, default_toml, load_settings
from cvm.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cvm.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_toml_loads_to_the_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, default_toml()))
    assert settings.model_dump(exclude={"source"}) == Settings().model_dump(exclude={"source"})
    assert settings.store_path() == tmp_path / "cvm.duckdb"


def test_every_setting_is_documented_in_the_default_file() -> None:
    text = default_toml()
    for section in ("store", "ingest", "features", "value"):
        assert f"[{section}]" in text
    for name, field in IngestSettings.model_fields.items():
        assert name in text, name
        assert field.description


def test_configuration_doc_shows_the_current_default_file() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert default_toml() in doc


def test_unknown_key_names_key_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[value]\nmargin_rate = 0.2\nmargn = 3\n")
    with pytest.raises(ConfigError, match=r"cvm.toml, line 3, key 'value.margn': unknown"):
        load_settings(path)


def test_wrong_type_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[features]\ntime_unit = "fortnight"\n')
    with pytest.raises(ConfigError, match=r"line 2, key 'features.time_unit'.*fortnight"):
        load_settings(path)


def test_out_of_range_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[value]\nmargin_rate = 1.5\n")
    with pytest.raises(ConfigError, match=r"key 'value.margin_rate'.*1.5"):
        load_settings(path)


def test_string_where_number_expected(tmp_path: Path) -> None:
    path = write(tmp_path, '[ingest]\nmax_future_days = "3"\n')
    with pytest.raises(ConfigError, match=r"key 'ingest.max_future_days'"):
        load_settings(path)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[value\n")
    with pytest.raises(ConfigError, match=r"cvm.toml: not valid TOML"):
        load_settings(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "nope.toml")


def test_mappings_and_dates_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[ingest]\nmin_date = 1990-01-01\n[ingest.transactions.columns]\namount = "Price"\n'
        '[ingest.transactions.derive]\nmargin = "Price - Cost"\n',
    )
    settings = load_settings(path)
    assert settings.ingest.min_date == dt.date(1990, 1, 1)
    assert settings.ingest.transactions.columns == {"amount": "Price"}
    assert settings.ingest.transactions.derive == {"margin": "Price - Cost"}
    assert tomllib.loads(default_toml())["value"]["margin_rate"] == 0.3


def test_no_file_in_cwd_gives_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().source is None
