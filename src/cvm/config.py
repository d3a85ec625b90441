"""``cvm.toml`` → one validated :class:`Settings` object.

Every setting has a default and a one-line description; :func:`default_toml` renders
them into the commented file that ``cvm init`` writes, so the file, the docs and the
code cannot drift apart. Loading rejects unknown keys, wrong types and out-of-range
values with a :class:`~cvm.errors.ConfigError` naming the key, the file and the line.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from cvm.errors import ConfigError

__all__ = [
    "CONFIG_FILENAME",
    "FeatureSettings",
    "IdentitySettings",
    "IngestSettings",
    "ModelSettings",
    "SegmentSettings",
    "Settings",
    "StoreSettings",
    "TableMapping",
    "ValueSettings",
    "default_toml",
    "load_settings",
]

CONFIG_FILENAME = "cvm.toml"

TimeUnit = Literal["day", "week", "month", "year"]
Period = Literal["month", "quarter"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class StoreSettings(_Section):
    """Where the integrated customer store lives."""

    path: str = Field(
        "cvm.duckdb",
        description="DuckDB file of the store, relative to the config file's folder",
    )


class TableMapping(_Section):
    """How a user's columns map onto one canonical input table."""

    columns: dict[str, str] = Field(
        default_factory=dict,
        description='canonical column = "your column", e.g. amount = "Price"',
    )
    derive: dict[str, str] = Field(
        default_factory=dict,
        description='canonical column = "expression", e.g. amount = "quantity * unit_price"',
    )


class IngestSettings(_Section):
    """How files and DataFrames are read and validated."""

    encoding: str = Field(
        "auto", description='text encoding of CSV files ("auto" detects; e.g. "cp1252")'
    )
    delimiter: str = Field(
        "auto", description='CSV field delimiter ("auto" detects among , ; tab |)'
    )
    date_format: str = Field(
        "auto",
        description='format of text dates ("auto" detects; e.g. "%d/%m/%Y %H:%M")',
    )
    exact_duplicates: Literal["keep", "skip"] = Field(
        "keep",
        description=(
            'identical rows within one source: "keep" (real repeat purchases) '
            'or "skip" (count them as duplicates)'
        ),
    )
    min_date: dt.date = Field(
        dt.date(1900, 1, 1), description="earlier dates are quarantined as impossible"
    )
    max_future_days: int = Field(
        1, ge=0, description="dates more than this many days after today are quarantined"
    )
    transactions: TableMapping = Field(
        default_factory=TableMapping, description="column mapping for transactions"
    )
    customers: TableMapping = Field(
        default_factory=TableMapping, description="column mapping for customers"
    )


class FeatureSettings(_Section):
    """How per-customer summaries are computed."""

    time_unit: TimeUnit = Field(
        "week", description="unit of recency and T: day, week, month or year"
    )
    period: Period = Field("month", description="length of the per-period series: month or quarter")


class ValueSettings(_Section):
    """How value is computed."""

    margin_rate: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="share of revenue that is profit when the data has no margin or cost",
    )
    top_share: float = Field(
        0.2, gt=0.0, lt=1.0, description="the top share of customers in the concentration figure"
    )


class ModelSettings(_Section):
    """Which purchase and spend models give potential value, and how it is discounted."""

    purchase: Literal["auto", "bgnbd", "mbgnbd", "pareto_nbd"] = Field(
        "auto",
        description=(
            'purchase model: "auto" chooses by a calibration/holdout backtest, or '
            "bgnbd, mbgnbd, pareto_nbd"
        ),
    )
    spend: Literal["gamma_gamma", "mean"] = Field(
        "gamma_gamma", description='spend model: "gamma_gamma" or "mean" (mean repeat spend)'
    )
    horizon_years: float = Field(
        3.0, gt=0.0, le=50.0, description="years of future purchases counted in potential value"
    )
    discount_rate: float = Field(
        0.1, ge=0.0, le=1.0, description="annual discount rate of future profit"
    )
    holdout_days: int = Field(
        180, ge=7, description='days held out to backtest the models when purchase = "auto"'
    )
    penalizer: float = Field(0.0, ge=0.0, description="L2 penalty on the log-parameters")


class SegmentSettings(_Section):
    """How customers are grouped: value tiers, RFM segments and lifecycle stages."""


class IdentitySettings(_Section):
    """How records of one person across sources and channels become one customer."""


class Settings(_Section):
    """All of cvm's settings (the contents of ``cvm.toml``)."""

    store: StoreSettings = Field(default_factory=StoreSettings, description="the store")
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="ingestion")
    features: FeatureSettings = Field(default_factory=FeatureSettings, description="features")
    value: ValueSettings = Field(default_factory=ValueSettings, description="value")
    models: ModelSettings = Field(default_factory=ModelSettings, description="models")
    segments: SegmentSettings = Field(default_factory=SegmentSettings, description="segments")
    identity: IdentitySettings = Field(default_factory=IdentitySettings, description="identity")

    source: Path | None = Field(None, exclude=True, description="file the settings came from")

    def store_path(self) -> Path:
        """Return the store's file path, resolved against the config file's folder."""
        path = Path(self.store.path)
        if not path.is_absolute() and self.source is not None:
            path = self.source.parent / path
        return path


def _line_of(text: str, loc: tuple[str | int, ...]) -> int | None:
    """Best-effort line of a dotted key in TOML text (tomllib keeps no positions)."""
    if not loc:
        return None
    names = [str(p) for p in loc]
    section = ".".join(names[:-1])
    key = names[-1]
    current = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1)
            if current == ".".join(names):
                return number
            continue
        match = re.match(r'^"?([A-Za-z0-9_\-]+)"?\s*=', line)
        if match and match.group(1) == key and current == section:
            return number
    return None


def load_settings(path: str | Path | None = None) -> Settings:
    """Load and validate settings.

    Parameters
    ----------
    path
        A ``cvm.toml`` file. ``None`` uses ``./cvm.toml`` when it exists, else defaults.

    Returns
    -------
    Settings
        The validated settings.

    Raises
    ------
    ConfigError
        If the file cannot be read or parsed, or a key is unknown, of the wrong type or
        out of range; the message names the key, the file and (when found) the line.
    """
    if path is None:
        candidate = Path.cwd() / CONFIG_FILENAME
        if not candidate.exists():
            return Settings()
        path = candidate
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("configuration file not found", path=path) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file: {exc}", path=path) from exc
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from exc
    return settings_from_dict(data, source=path, text=text)


def settings_from_dict(
    data: dict[str, Any], *, source: Path | None = None, text: str = ""
) -> Settings:
    """Validate a settings mapping (parsed TOML) into :class:`Settings`.

    Raises
    ------
    ConfigError
        Naming the first offending key.
    """
    try:
        settings = Settings.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        key = ".".join(str(p) for p in loc)
        if first["type"] == "extra_forbidden":
            message = "unknown setting"
        else:
            message = f"{first['msg']}, got {first.get('input')!r}"
        raise ConfigError(
            message, path=source, line=_line_of(text, loc), key=key, value=first.get("input")
        ) from exc
    return settings.model_copy(update={"source": source})


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dt.date | int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    raise TypeError(f"no TOML rendering for {value!r}")  # pragma: no cover


def default_toml() -> str:
    """Render the default configuration as commented TOML (what ``cvm init`` writes)."""
    lines = [
        "# cvm configuration. Every setting below shows its default; delete a line to keep",
        "# the default. Reference: docs/configuration.md",
    ]

    def section(model: type[BaseModel], name: str) -> None:
        lines.append("")
        lines.append(f"[{name}]")
        nested: list[tuple[str, type[BaseModel]]] = []
        for field_name, field in model.model_fields.items():
            if field.exclude:
                continue
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((field_name, annotation))
                continue
            default = field.get_default(call_default_factory=True)
            lines.append(f"# {field.description}")
            if isinstance(default, dict) and not default:
                lines.append(f"# {field_name} = {{}}")
            else:
                lines.append(f"{field_name} = {_toml_value(default)}")
        for field_name, sub in nested:
            section(sub, f"{name}.{field_name}")

    for field_name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            section(annotation, field_name)
    return "\n".join(lines) + "\n"
