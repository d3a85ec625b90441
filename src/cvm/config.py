"""``cvm.toml`` → one validated :class:`Settings` object.

Every setting has a default and a one-line description; :func:`default_toml` renders
them into the commented file that ``cvm init`` writes, so the file, the docs and the
code cannot drift apart. Loading rejects unknown keys, wrong types and out-of-range
values with a :class:`~cvm.errors.ConfigError` naming the key, the file and the line.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic import ValidationError as PydanticValidationError

from cvm.errors import ConfigError

__all__ = [
    "CONFIG_FILENAME",
    "AlertSettings",
    "AssessSettings",
    "CrossSellSettings",
    "DecisionSettings",
    "DynamicsSettings",
    "FeatureSettings",
    "IdentitySettings",
    "InfluenceSettings",
    "IngestSettings",
    "LifecycleSettings",
    "MigrationSettings",
    "ModelSettings",
    "RelationshipSettings",
    "RfmSettings",
    "ScoreSettings",
    "SegmentSettings",
    "Settings",
    "StoreSettings",
    "TableMapping",
    "TierSettings",
    "UpliftSettings",
    "ValueSettings",
    "default_toml",
    "load_settings",
    "toml_value",
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
    interactions: TableMapping = Field(
        default_factory=TableMapping, description="column mapping for interactions"
    )
    surveys: TableMapping = Field(
        default_factory=TableMapping, description="column mapping for surveys"
    )
    referrals: TableMapping = Field(
        default_factory=TableMapping, description="column mapping for referrals"
    )
    identities: TableMapping = Field(
        default_factory=TableMapping, description="column mapping for identities"
    )
    actions: TableMapping = Field(
        default_factory=TableMapping, description="column mapping for actions"
    )


class FeatureSettings(_Section):
    """How per-customer summaries are computed."""

    time_unit: TimeUnit = Field(
        "week", description="unit of recency and T: day, week, month or year"
    )
    period: Period = Field("month", description="length of the per-period series: month or quarter")


#: The value dimensions a value score can weigh.
VALUE_DIMENSIONS = ("realized", "potential", "influence")

_ATTRIBUTE_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ \-]*")


def _check_finite(name: str, values: dict[str, float]) -> None:
    for key, weight in values.items():
        if not math.isfinite(weight):
            raise ValueError(f"{name} of {key!r} must be a finite number")


class ScoreSettings(_Section):
    """How the value score weighs the value dimensions and strategic attributes."""

    weights: dict[str, float] = Field(
        default_factory=lambda: dict.fromkeys(VALUE_DIMENSIONS, 1.0),
        description=(
            "weight of each value dimension (realized, potential, influence); "
            "one left out keeps its weight 1.0"
        ),
        validate_default=True,
    )
    attributes: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "score added per unit of a numeric or true/false customer attribute, "
            "e.g. key_account = 5000.0"
        ),
    )

    @field_validator("weights")
    @classmethod
    def _complete_weights(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(VALUE_DIMENSIONS))
        if unknown:
            raise ValueError(
                f"unknown value dimension {', '.join(map(repr, unknown))}; "
                f"expected {', '.join(VALUE_DIMENSIONS)}"
            )
        _check_finite("weight", value)
        return {name: value.get(name, 1.0) for name in VALUE_DIMENSIONS}

    @field_validator("attributes")
    @classmethod
    def _check_attributes(cls, value: dict[str, float]) -> dict[str, float]:
        for key in value:
            if not _ATTRIBUTE_KEY.fullmatch(key):
                raise ValueError(
                    f"attribute name {key!r} may hold only letters, digits, '_', '-' and spaces"
                )
        _check_finite("weight", value)
        return value


class InfluenceSettings(_Section):
    """How influence value is credited along the referral graph (Kumar et al. 2007)."""

    share: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description=(
            "share of a directly referred customer's realized + potential value "
            "credited to the referrer"
        ),
    )
    decay: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="factor applied per further level (referrals of referrals get share × decay)",
    )
    max_depth: int = Field(
        3, ge=1, le=20, description="levels of the referral tree credited (1 = direct only)"
    )


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
    score: ScoreSettings = Field(default_factory=ScoreSettings, description="the value score")
    influence: InfluenceSettings = Field(
        default_factory=InfluenceSettings, description="influence value from referrals"
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


def _check_shares(name: str, value: list[float]) -> list[float]:
    if not value:
        raise ValueError(f"give at least one of the {name}")
    outside = [share for share in value if not 0.0 < share < 1.0]
    if outside:
        raise ValueError(f"{name} must lie strictly between 0 and 1 (not {outside[0]})")
    if value != sorted(set(value)):
        raise ValueError(f"{name} must be strictly increasing")
    return value


class TierSettings(_Section):
    """How value tiers are cut from the value score."""

    method: Literal["cumulative", "percentile", "thresholds"] = Field(
        "cumulative",
        description=(
            'how tiers are cut: "cumulative" (by cutoffs), "percentile" (by percentiles) '
            'or "thresholds" (by thresholds)'
        ),
    )
    cutoffs: list[float] = Field(
        default_factory=lambda: [0.5, 0.8, 0.95],
        description=(
            "cumulative shares of total value (increasing, between 0 and 1) that end "
            "tiers 1, 2, …, customers ranked by value score"
        ),
        validate_default=True,
    )
    percentiles: list[float] = Field(
        default_factory=lambda: [0.01, 0.05, 0.2],
        description=(
            "cumulative shares of customers (increasing, between 0 and 1) that end "
            "tiers 1, 2, …: top 1 %, next 4 %, next 15 %, rest"
        ),
        validate_default=True,
    )
    thresholds: list[float] = Field(
        default_factory=list,
        description="minimum value score of tiers 1, 2, … (decreasing)",
        validate_default=True,
    )
    names: list[str] = Field(
        default_factory=lambda: ["platinum", "gold", "iron", "lead"],
        description="tier names, best first: one more than the method's cutoffs",
        validate_default=True,
    )

    @field_validator("cutoffs")
    @classmethod
    def _check_cutoffs(cls, value: list[float]) -> list[float]:
        return _check_shares("cutoffs", value)

    @field_validator("percentiles")
    @classmethod
    def _check_percentiles(cls, value: list[float]) -> list[float]:
        return _check_shares("percentiles", value)

    @field_validator("thresholds")
    @classmethod
    def _check_thresholds(cls, value: list[float], info: ValidationInfo) -> list[float]:
        if info.data.get("method") == "thresholds" and not value:
            raise ValueError('method "thresholds" needs at least one threshold')
        if not all(math.isfinite(v) for v in value):
            raise ValueError("thresholds must be finite numbers")
        if value != sorted(set(value), reverse=True):
            raise ValueError("thresholds must be strictly decreasing (tier 1 first)")
        return value

    @field_validator("names")
    @classmethod
    def _check_names(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("tier names must not be empty")
        if len(set(value)) != len(value):
            raise ValueError("tier names must be unique")
        method = info.data.get("method")
        bounds_name = {"percentile": "percentiles", "thresholds": "thresholds"}.get(
            str(method), "cutoffs"
        )
        bounds = info.data.get(bounds_name)
        if bounds is not None and len(value) != len(bounds) + 1:
            raise ValueError(
                f"{len(bounds)} {bounds_name} make {len(bounds) + 1} tiers, "
                f"but {len(value)} names are given"
            )
        return value

    def bounds(self) -> list[float]:
        """Return the active method's tier bounds (cutoffs, percentiles or thresholds)."""
        if self.method == "percentile":
            return list(self.percentiles)
        if self.method == "thresholds":
            return list(self.thresholds)
        return list(self.cutoffs)


class RfmSettings(_Section):
    """How RFM scores and segments are computed."""

    monetary: Literal["revenue", "mean_spend"] = Field(
        "revenue",
        description=(
            'M score from "revenue" (net, whole history) or "mean_spend" '
            "(revenue per purchase occasion)"
        ),
    )
    ties: Literal["shared", "split"] = Field(
        "shared",
        description=(
            '"shared": equal values get equal scores (the score of the first of them); '
            '"split": exactly equal quintiles, equal values split by customer id'
        ),
    )
    rules: str = Field(
        "",
        description=(
            "TOML file of RFM segment rules, relative to the config file's folder "
            '("" = the built-in rules)'
        ),
    )

    def rules_path(self, base: Path | None = None) -> Path | None:
        """Return the rules file resolved against ``base`` (``None`` = built-in rules)."""
        if not self.rules:
            return None
        path = Path(self.rules)
        if not path.is_absolute() and base is not None:
            path = base / path
        return path


class LifecycleSettings(_Section):
    """The rules that put each customer in a lifecycle stage (evaluated in this order).

    Departure, acquisition, decline, growth, maturity; see docs/segments.md.
    """

    departure_p_alive: float = Field(
        0.2, ge=0.0, le=1.0, description="departure when P(alive) is below this"
    )
    departure_days: int = Field(
        365, ge=1, description="departure when the last purchase is more days ago than this"
    )
    acquisition_days: int = Field(
        90, ge=0, description="acquisition while the first purchase is fewer days ago than this"
    )
    decline_trend: float = Field(
        -0.3,
        description="decline when value per period changes by this or less (-0.3 = down 30 %)",
    )
    decline_p_alive: float = Field(
        0.5, ge=0.0, le=1.0, description="decline when P(alive) is below this"
    )
    decline_days: int = Field(
        180,
        ge=1,
        description=(
            "without a P(alive) (no purchase model fitted): decline when the last purchase "
            "is more days ago than this"
        ),
    )
    growth_trend: float = Field(
        0.3,
        description="growth when value per period changes by this or more (0.3 = up 30 %)",
    )
    developing_days: int = Field(
        365,
        ge=0,
        description=(
            "growth on any rise in value while the first purchase is fewer days ago than this"
        ),
    )
    window_months: int = Field(
        6,
        ge=1,
        le=60,
        description=(
            "months in each window of the trend: the last ones up to as_of against the "
            "same number before (a multiple of 3 for quarterly periods)"
        ),
    )
    measure: Literal["revenue", "margin", "occasions"] = Field(
        "revenue",
        description='value whose trend counts: "revenue" (spend), "margin" or "occasions"',
    )

    @field_validator("decline_trend")
    @classmethod
    def _check_decline_trend(cls, value: float) -> float:
        if not -1.0 <= value < 0.0:
            raise ValueError(
                "decline_trend must be a fall, at least -1 and below 0 (e.g. -0.3 for down 30 %)"
            )
        return value

    @field_validator("decline_p_alive")
    @classmethod
    def _check_decline_p_alive(cls, value: float, info: ValidationInfo) -> float:
        departure = info.data.get("departure_p_alive")
        if departure is not None and value < departure:
            raise ValueError(
                f"decline_p_alive ({value}) must not be below departure_p_alive ({departure})"
            )
        return value

    @field_validator("decline_days")
    @classmethod
    def _check_decline_days(cls, value: int, info: ValidationInfo) -> int:
        departure = info.data.get("departure_days")
        if departure is not None and value > departure:
            raise ValueError(
                f"decline_days ({value}) must not be above departure_days ({departure})"
            )
        return value

    @field_validator("growth_trend")
    @classmethod
    def _check_growth_trend(cls, value: float) -> float:
        if not 0.0 < value < math.inf:
            raise ValueError("growth_trend must be a rise, above 0 (e.g. 0.3 for up 30 %)")
        return value

    @field_validator("developing_days")
    @classmethod
    def _check_developing_days(cls, value: int, info: ValidationInfo) -> int:
        acquisition = info.data.get("acquisition_days")
        if acquisition is not None and value < acquisition:
            raise ValueError(
                f"developing_days ({value}) must not be below acquisition_days ({acquisition})"
            )
        return value


class RelationshipSettings(_Section):
    """Windows and choices of the relationship measures (``cvm kpis``)."""

    nps_window_months: int = Field(
        12,
        ge=0,
        description=(
            "the headline NPS counts each customer's latest answer in this many months "
            "up to as_of (0 = all history)"
        ),
    )
    activity_window_months: int = Field(
        12,
        ge=1,
        description=(
            "a customer counts as active at a date after a purchase in this many "
            "months up to it (retention and churn rates)"
        ),
    )
    high_value_tiers: list[str] = Field(
        default_factory=list,
        description=(
            "tiers counted as high value in the value × satisfaction grid "
            "(empty = the two best tiers)"
        ),
    )


class SegmentSettings(_Section):
    """How customers are grouped: value tiers, RFM segments and lifecycle stages."""

    tiers: TierSettings = Field(default_factory=TierSettings, description="value tiers")
    rfm: RfmSettings = Field(default_factory=RfmSettings, description="RFM scores and segments")
    relationship: RelationshipSettings = Field(
        default_factory=RelationshipSettings, description="relationship measures (cvm kpis)"
    )
    lifecycle: LifecycleSettings = Field(
        default_factory=LifecycleSettings, description="lifecycle stages"
    )


IdentifierKind = Literal["email", "phone", "loyalty_card", "external_id"]


def _strong_identifiers() -> list[IdentifierKind]:
    return ["loyalty_card"]


class IdentitySettings(_Section):
    """How records of one person across sources and channels become one customer."""

    default_country_code: str = Field(
        "",
        pattern=r"^([1-9][0-9]{0,2})?$",
        description=(
            'calling code given to national phone numbers, e.g. "44" ("" = national '
            "numbers cannot be normalised and are reported)"
        ),
    )
    max_customers_per_identifier: int = Field(
        3,
        ge=1,
        description=(
            "an identifier claimed by more customers than this within one source "
            "(a switchboard phone, a placeholder) is reported and not used to merge"
        ),
    )
    strip_email_tags: bool = Field(
        False, description='treat "name+tag@host" as "name@host" when matching emails'
    )
    strong_identifiers: list[IdentifierKind] = Field(
        default_factory=_strong_identifiers,
        description=(
            "identifiers a person has only one of: a merged customer holding two "
            "different values is reported (and still merged)"
        ),
    )
    ignore_values: list[str] = Field(
        default_factory=lambda: ["n/a", "na", "none", "null", "unknown", "-"],
        description="identifier values that mean 'missing' (compared ignoring case)",
    )


AlertRule = Literal["tier_drop", "decline", "p_alive", "value_drop", "detractor"]
LifecycleStageName = Literal["acquisition", "growth", "maturity", "decline", "departure"]


def _alert_rules() -> list[AlertRule]:
    return ["tier_drop", "decline", "p_alive", "value_drop", "detractor"]


def _check_set(name: str, value: list[Any]) -> list[Any]:
    if not value:
        raise ValueError(f"give at least one of the {name}")
    if len(set(value)) != len(value):
        raise ValueError(f"{name} must not repeat")
    return value


class AlertSettings(_Section):
    """Early warnings between two snapshots (``cvm alerts``); see docs/dynamics.md."""

    rules: list[AlertRule] = Field(
        default_factory=_alert_rules,
        description=(
            "the rules that raise alerts: tier_drop, decline, p_alive, value_drop, detractor"
        ),
        validate_default=True,
    )
    high_tiers: int = Field(
        2,
        ge=1,
        description=(
            "tier_drop watches customers in tiers 1 to this at the earlier snapshot, "
            "detractor those in them at either (2 = the two best tiers)"
        ),
    )
    decline_from: list[LifecycleStageName] = Field(
        default_factory=lambda: ["growth", "maturity"],
        description="decline: lifecycle stages at the earlier snapshot that are watched",
        validate_default=True,
    )
    decline_to: list[LifecycleStageName] = Field(
        default_factory=lambda: ["decline", "departure"],
        description="decline: lifecycle stages at the later snapshot that raise an alert",
        validate_default=True,
    )
    p_alive_threshold: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="p_alive: alert when P(alive) falls below this from at or above it",
    )
    value_drop_share: float = Field(
        0.3,
        gt=0.0,
        le=1.0,
        description=(
            "value_drop: alert when total value falls by more than this share of its "
            "earlier, positive, level (0.3 = 30 %)"
        ),
    )

    @field_validator("rules")
    @classmethod
    def _check_rules(cls, value: list[AlertRule]) -> list[AlertRule]:
        return _check_set("rules", value)

    @field_validator("decline_from")
    @classmethod
    def _check_decline_from(cls, value: list[str]) -> list[str]:
        return _check_set("decline_from stages", value)

    @field_validator("decline_to")
    @classmethod
    def _check_decline_to(cls, value: list[str], info: ValidationInfo) -> list[str]:
        _check_set("decline_to stages", value)
        both = sorted(set(value) & set(info.data.get("decline_from") or []))
        if both:
            raise ValueError(f"decline_to repeats stage(s) of decline_from: {', '.join(both)}")
        return value


class MigrationSettings(_Section):
    """The migration matrix and its Markov projection (``cvm migration``; docs/dynamics.md)."""

    by: Literal["tier", "stage", "rfm"] = Field(
        "tier", description="what cvm migration groups customers by: tier, stage or rfm"
    )
    projection_periods: int = Field(
        4,
        ge=0,
        le=120,
        description=(
            "periods (each as long as the interval between the two runs) that cvm "
            "migration projects group sizes ahead; 0 = no projection"
        ),
    )


class DynamicsSettings(_Section):
    """How value movements are watched: migration and early-warning alerts."""

    migration: MigrationSettings = Field(
        default_factory=MigrationSettings, description="the migration matrix (cvm migration)"
    )
    alerts: AlertSettings = Field(
        default_factory=AlertSettings, description="early-warning alerts (cvm alerts)"
    )


class CrossSellSettings(_Section):
    """Product affinity from co-purchases and cross-sell recommendations (docs/cross-sell.md)."""

    level: Literal["customer", "basket"] = Field(
        "customer",
        description=(
            'what counts as buying two products together: "customer" (the same customer, '
            'at any time) or "basket" (the same transaction_id; customer-day without one)'
        ),
    )
    exclude_products: list[str] = Field(
        default_factory=lambda: [
            "POST",
            "POSTAGE",
            "SHIPPING",
            "DELIVERY",
            "BANK CHARGES",
            "*FEE",
            "DISCOUNT",
            "GIFT_*",
        ],
        description=(
            "product ids that are not products (postage, fees, manual lines, discounts); "
            "ignoring case, * and ? as wildcards"
        ),
    )
    max_basket_share: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description=(
            "products in more than this share of baskets (carrier bags, fees) are "
            "left out of affinity and recommendations"
        ),
    )
    min_pair_count: int = Field(
        10,
        ge=1,
        description="a product pair needs at least this many customers (or baskets) buying both",
    )
    min_support: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="a product pair needs at least this share of all customers (or baskets)",
    )
    min_confidence: float = Field(
        0.0, ge=0.0, le=1.0, description="a rule A → B needs P(B | A) of at least this"
    )
    min_lift: float = Field(
        1.0, ge=0.0, description="a rule A → B needs a lift of at least this (1 = independence)"
    )
    rules_per_product: int = Field(
        20, ge=1, description="rules kept per product bought, the strongest first"
    )
    score: Literal["lift", "confidence"] = Field(
        "confidence",
        description='measure of the rules that ranks recommendations: "lift" or "confidence"',
    )
    aggregate: Literal["sum", "max"] = Field(
        "max",
        description=(
            'how the rules from a customer\'s products combine into a score: "sum" or "max"'
        ),
    )
    top_n: int = Field(10, ge=1, le=1000, description="products recommended per customer")


class UpliftSettings(_Section):
    """How the effect of logged actions is measured against their control groups."""

    window_days: int = Field(
        90,
        ge=1,
        le=3650,
        description="purchases in this many days after an action count towards its effect",
    )
    confidence: float = Field(
        0.95, ge=0.5, lt=1.0, description="confidence level of the uplift intervals"
    )
    retention_interval: Literal["newcombe", "wald"] = Field(
        "newcombe",
        description=(
            'interval of the retention uplift: "newcombe" (hybrid score, Newcombe 1998) or "wald"'
        ),
    )
    max_interval_width: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description=(
            "an action's measured retention uplift replaces its configured response rate "
            "only when its interval is at most this wide (0.1 = 10 points)"
        ),
    )


StakeColumn = Literal["potential_value", "realized_value", "total_value"]


def _response_rates() -> dict[str, float]:
    return {
        "retain": 0.10,
        "develop": 0.05,
        "cross_sell": 0.08,
        "up_sell": 0.06,
        "win_back": 0.05,
        "serve_low_cost": 0.02,
    }


def _contact_costs() -> dict[str, float]:
    return {
        "retain": 10.0,
        "develop": 2.0,
        "cross_sell": 2.0,
        "up_sell": 2.0,
        "win_back": 5.0,
        "serve_low_cost": 0.0,
    }


def _channel_costs() -> dict[str, float]:
    return {"account_manager": 40.0, "phone": 6.0, "email": 0.2, "digital": 0.05}


def _value_at_stake() -> dict[str, StakeColumn]:
    return {"win_back": "realized_value"}


class DecisionSettings(_Section):
    """What to do: the playbook, target lists under a budget, uplift, cross-sell."""

    playbook: str = Field(
        "",
        description=(
            "TOML file of playbook rules, relative to the config file's folder "
            '("" = the built-in playbook; see docs/decisions.md)'
        ),
    )
    at_risk_p_alive: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description='playbook risk band: "at_risk" when P(alive) is below this, else "stable"',
    )
    high_potential_quantile: float = Field(
        0.8,
        gt=0.0,
        lt=1.0,
        description=(
            'playbook potential band: "high" when potential value is at least this '
            'quantile of the run\'s customers (0.8 = the top 20 %), else "low"'
        ),
    )
    response_rates: dict[str, float] = Field(
        default_factory=_response_rates,
        description=(
            "per action: the share of targeted customers whose outcome the contact changes "
            "(incremental response or uplift, -1 to 1); an action left out keeps its default"
        ),
    )
    contact_costs: dict[str, float] = Field(
        default_factory=_contact_costs,
        description=(
            "per action: cost of the offer for one targeted customer; an action left out "
            "keeps its default"
        ),
    )
    channel_costs: dict[str, float] = Field(
        default_factory=_channel_costs,
        description=(
            "per channel: cost of one contact, added to the action's contact cost; a "
            "channel left out keeps its default"
        ),
    )
    value_at_stake: dict[str, StakeColumn] = Field(
        default_factory=_value_at_stake,
        description=(
            "per action: the value a response brings (potential_value, realized_value or "
            "total_value); an action left out uses potential_value"
        ),
    )
    control_share: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="share of each target list held out at random as a control group",
    )

    @field_validator("response_rates")
    @classmethod
    def _check_response_rates(cls, value: dict[str, float]) -> dict[str, float]:
        _check_finite("response rate", value)
        outside = [k for k, rate in value.items() if not -1.0 <= rate <= 1.0]
        if outside:
            raise ValueError(f"the response rate of {outside[0]!r} must lie between -1 and 1")
        return _response_rates() | value

    @field_validator("contact_costs", "channel_costs")
    @classmethod
    def _check_costs(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        _check_finite("cost", value)
        negative = [k for k, cost in value.items() if cost < 0]
        if negative:
            raise ValueError(f"the cost of {negative[0]!r} must not be negative")
        defaults = _contact_costs() if info.field_name == "contact_costs" else _channel_costs()
        return defaults | value

    def playbook_path(self, base: Path | None = None) -> Path | None:
        """Return the playbook file resolved against ``base`` (``None`` = built-in)."""
        if not self.playbook:
            return None
        path = Path(self.playbook)
        if not path.is_absolute() and base is not None:
            path = base / path
        return path

    cross_sell: CrossSellSettings = Field(
        default_factory=CrossSellSettings, description="cross-sell from co-purchases"
    )
    uplift: UpliftSettings = Field(
        default_factory=UpliftSettings, description="measured uplift of logged actions"
    )


def _assess_number(value: Any, *, unset: str, low: float = 0.0, high: float | None = None) -> Any:
    """Validate an assessment number that may also be the word ``unset``."""
    if value == unset:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f'expected a number or "{unset}"')
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        upper = f" and at most {high:g}" if high is not None else ""
        raise ValueError(f"must be a finite number of at least {low:g}{upper}")
    return float(value)


class AssessSettings(_Section):
    """Inputs of the CRM investment assessment that the store cannot measure."""

    market_growth: float | Literal["unknown"] = Field(
        "unknown",
        description=(
            'annual growth rate of the market, e.g. 0.05 for 5 % ("unknown": the figures '
            "that need it are left out)"
        ),
    )
    sales_marketing_expense: float | Literal["unknown"] = Field(
        "unknown",
        description=(
            'annual sales and marketing expense, in the currency of amount ("unknown": '
            "the replacement-effort figure is left out)"
        ),
    )
    target_retention: float | Literal["auto"] = Field(
        "auto",
        description=(
            "retention rate to reach, e.g. 0.9 "
            '("auto": the measured retention plus retention_improvement)'
        ),
    )
    retention_improvement: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description=(
            'rise in retention that target_retention = "auto" aims at (0.05 = 5 points, '
            "Reichheld & Sasser 1990)"
        ),
    )

    @field_validator("market_growth", "sales_marketing_expense", mode="before")
    @classmethod
    def _check_unknown(cls, value: Any) -> Any:
        return _assess_number(value, unset="unknown")

    @field_validator("target_retention", mode="before")
    @classmethod
    def _check_target(cls, value: Any) -> Any:
        return _assess_number(value, unset="auto", high=1.0)


class Settings(_Section):
    """All of cvm's settings (the contents of ``cvm.toml``)."""

    store: StoreSettings = Field(default_factory=StoreSettings, description="the store")
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="ingestion")
    features: FeatureSettings = Field(default_factory=FeatureSettings, description="features")
    value: ValueSettings = Field(default_factory=ValueSettings, description="value")
    models: ModelSettings = Field(default_factory=ModelSettings, description="models")
    segments: SegmentSettings = Field(default_factory=SegmentSettings, description="segments")
    identity: IdentitySettings = Field(default_factory=IdentitySettings, description="identity")
    dynamics: DynamicsSettings = Field(default_factory=DynamicsSettings, description="dynamics")
    decisions: DecisionSettings = Field(default_factory=DecisionSettings, description="decisions")
    assess: AssessSettings = Field(default_factory=AssessSettings, description="assessment")

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
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_value(key)


def toml_value(value: Any) -> str:
    """Render a default value as TOML (strings, numbers, dates, lists, tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dt.date | int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items())
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
                lines.append(f"{field_name} = {toml_value(default)}")
        for field_name, sub in nested:
            section(sub, f"{name}.{field_name}")

    for field_name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            section(annotation, field_name)
    return "\n".join(lines) + "\n"
