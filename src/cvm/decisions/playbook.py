"""The playbook: what to do with each customer, kept as data.

A **segment** is one combination of six dimensions of a customer snapshot:

=============  ===========================================================================
dimension      values
=============  ===========================================================================
tier           the run's value tiers (``tier_name``; a rule may name them or give their
               numbers, 1 = best)
stage          the lifecycle stage: acquisition, growth, maturity, decline, departure
risk           ``at_risk`` when P(alive) is below ``[decisions] at_risk_p_alive``,
               ``stable`` otherwise, ``unknown`` without a P(alive)
satisfaction   the latest NPS answer's category (promoter, passive, detractor), or
               ``unknown``
buyer          ``one_time`` (at most one purchase occasion) or ``repeat``
potential      ``high`` when potential value is at least the
               ``[decisions] high_potential_quantile`` of the run's customers, ``low``
               below it, ``unknown`` without a potential value
=============  ===========================================================================

A **rule** names, for some dimensions, the values it applies to (one value or a list;
a dimension left out, or ``"*"``, matches any value) and gives an action, a service
level and a channel. The semantics are those of a firewall or a decision list
(Rivest 1987): **rules are tried in order and the first rule that matches decides**.
A later rule that also matches a segment *overlaps* an earlier one there and is not
applied to it; overlaps are how specific rules come before general ones, so they are
reported, not refused. A rule that decides no segment at all — every segment it
matches is decided by earlier rules, or it matches none — is *shadowed*: almost
certainly a mistake, and warned about (:class:`PlaybookWarning`). The rules must
together cover every segment: a segment no rule matches is a *gap* and the playbook
is refused (:class:`~cvm.errors.ConfigError` naming the segments), so that every
customer gets exactly one action.

The built-in playbook (``default_playbook.toml`` in this package; docs/decisions.md
draws it) follows customer-value-management practice: serve customers by the value
they bring and can bring (the customer pyramid of Zeithaml, Rust & Lemon 2001), retain
valuable customers before they leave and win back those who left (Peppers & Rogers
2004; Thomas, Blattberg & Fox 2004), develop customers with growth potential,
cross-sell and up-sell in maturity, serve low-value customers through low-cost
channels, and do not give the best service to customers whose one large purchase put
them in a high tier but who show no potential to buy again.

References
----------
Rivest, R. L. (1987). Learning decision lists. *Machine Learning* 2(3), 229–246.

Zeithaml, V. A., Rust, R. T. & Lemon, K. N. (2001). The customer pyramid: creating and
serving profitable customers. *California Management Review* 43(4), 118–142.

Peppers, D. & Rogers, M. (2004). *Managing Customer Relationships: A Strategic
Framework*. Hoboken, NJ: Wiley.

Thomas, J. S., Blattberg, R. C. & Fox, E. J. (2004). Recapturing lost customers.
*Journal of Marketing Research* 41(1), 31–45.
"""

from __future__ import annotations

import importlib.resources
import re
import tomllib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import ibis
import numpy as np

from cvm.config import DecisionSettings, Settings, TierSettings
from cvm.decisions._coverage import Overlap, PlaybookCheck, coverage
from cvm.errors import ConfigError, DataError, SchemaError
from cvm.segments.lifecycle import LIFECYCLE_STAGES
from cvm.segments.relationship import NPS_CATEGORIES

__all__ = [
    "BUYER_TYPES",
    "DIMENSIONS",
    "POTENTIAL_BANDS",
    "RISK_BANDS",
    "SATISFACTION",
    "SERVICE_LEVELS",
    "Overlap",
    "Playbook",
    "PlaybookCheck",
    "PlaybookWarning",
    "Rule",
    "assign_actions",
    "load_playbook",
    "playbook_for",
    "potential_threshold",
]

Table = Any  # ibis.expr.types.Table (Ibis ships no stubs mypy can use)

#: The dimensions of a segment, in the order combinations are shown.
DIMENSIONS: Final[tuple[str, ...]] = ("tier", "stage", "risk", "satisfaction", "buyer", "potential")
#: Risk bands from P(alive).
RISK_BANDS: Final[tuple[str, ...]] = ("at_risk", "stable", "unknown")
#: Satisfaction: the NPS categories, or no answer.
SATISFACTION: Final[tuple[str, ...]] = (*NPS_CATEGORIES, "unknown")
#: Buyer types from the number of purchase occasions.
BUYER_TYPES: Final[tuple[str, ...]] = ("one_time", "repeat")
#: Potential bands from potential value.
POTENTIAL_BANDS: Final[tuple[str, ...]] = ("high", "low", "unknown")
#: Service levels, best first.
SERVICE_LEVELS: Final[tuple[str, ...]] = ("premium", "standard", "basic", "self_service")

_BUILTIN: Final[str] = "default_playbook.toml"
_WORD: Final[re.Pattern[str]] = re.compile(r"[a-z][a-z0-9_]*")
_ID: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_OUTCOMES: Final[tuple[str, ...]] = ("action", "service_level", "channel")
_KEYS: Final[frozenset[str]] = frozenset({"id", "description", *DIMENSIONS, *_OUTCOMES})
#: Segments shown per list in messages.
_SHOWN: Final[int] = 8


class PlaybookWarning(UserWarning):
    """A playbook rule that can never apply (shadowed, or matching no segment)."""


@dataclass(frozen=True)
class Rule:
    """One playbook rule.

    Attributes
    ----------
    id
        Unique name of the rule (letters, digits, ``_``, ``-``, ``.``).
    action, service_level, channel
        What the rule decides.
    description
        Why (shown with the customers it decides).
    conditions
        Dimension → the values the rule applies to; a dimension left out matches any
        value. Tier numbers are resolved to tier names.
    """

    id: str
    action: str
    service_level: str
    channel: str
    description: str = ""
    conditions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def matches(self, segment: Mapping[str, str]) -> bool:
        """Return whether the rule applies to a segment (dimension → value)."""
        return all(segment.get(d) in values for d, values in self.conditions.items())

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (conditions as lists)."""
        data = asdict(self)
        data["conditions"] = {d: list(v) for d, v in self.conditions.items()}
        return data


@dataclass(frozen=True)
class Playbook:
    """A validated playbook: rules in order, over the tiers it was checked against.

    Attributes
    ----------
    rules
        The rules, first match wins.
    tiers
        Tier names, best first (the tier dimension's values).
    source
        The file the rules came from (``default_playbook.toml`` for the built-in one).
    check
        Gaps (none), overlaps and shadowed rules.
    """

    rules: tuple[Rule, ...]
    tiers: tuple[str, ...]
    source: str
    check: PlaybookCheck

    def dimensions(self) -> dict[str, tuple[str, ...]]:
        """Return each dimension's values."""
        return _dimensions(self.tiers)

    def rule_for(self, **segment: str) -> Rule:
        """Return the rule that decides a segment, e.g. ``rule_for(tier="gold", …)``.

        Raises
        ------
        ValueError
            If a dimension is missing or has a value outside its values.
        """
        dims = self.dimensions()
        for name, values in dims.items():
            if segment.get(name) not in values:
                raise ValueError(
                    f"{name} must be one of {', '.join(values)}, got {segment.get(name)!r}"
                )
        return next(r for r in self.rules if r.matches(segment))

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (for JSON output)."""
        return {
            "source": self.source,
            "tiers": list(self.tiers),
            "rules": [r.to_dict() for r in self.rules],
            "check": self.check.to_dict(),
        }


def _dimensions(tiers: Sequence[str]) -> dict[str, tuple[str, ...]]:
    return {
        "tier": tuple(tiers),
        "stage": LIFECYCLE_STAGES,
        "risk": RISK_BANDS,
        "satisfaction": SATISFACTION,
        "buyer": BUYER_TYPES,
        "potential": POTENTIAL_BANDS,
    }


# -- reading ---------------------------------------------------------------------------
def _rule_lines(text: str) -> list[int]:
    """Line numbers of the ``[[rule]]`` headers, in order (tomllib keeps no positions)."""
    return [
        number
        for number, line in enumerate(text.splitlines(), start=1)
        if re.fullmatch(r"\s*\[\[\s*rule\s*\]\]\s*(#.*)?", line)
    ]


class _Reader:
    """Parse one file's rules, raising errors that name the file, rule and line."""

    def __init__(self, source: str, text: str, tiers: tuple[str, ...]) -> None:
        self.source = source
        self.lines = _rule_lines(text)
        self.tiers = tiers
        self.dims = _dimensions(tiers)

    def error(self, index: int, rule_id: Any, key: str | None, message: str) -> ConfigError:
        name = (
            f"rule {rule_id!r} ({_ordinal(index)} rule)" if rule_id else f"{_ordinal(index)} rule"
        )
        line = self.lines[index - 1] if index - 1 < len(self.lines) else None
        where = f"rule[{index}].{key}" if key else f"rule[{index}]"
        return ConfigError(f"{name}: {message}", path=self.source, line=line, key=where)

    def values(self, index: int, rule_id: str, dim: str, raw: Any) -> tuple[str, ...] | None:
        """Return a condition's values (``None``: any), tier numbers as names."""
        if raw == "*":
            return None
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise self.error(index, rule_id, dim, 'an empty list matches nothing; use "*"')
        allowed = self.dims[dim]
        out: list[str] = []
        for item in items:
            if dim == "tier" and isinstance(item, int) and not isinstance(item, bool):
                if item < 1:
                    raise self.error(
                        index, rule_id, dim, f"tier numbers start at 1 (the best), got {item}"
                    )
                if item > len(self.tiers):
                    warnings.warn(
                        f"{self.source}: rule {rule_id!r} names tier {item}, but there are "
                        f"only {len(self.tiers)} tiers ({', '.join(self.tiers)})",
                        PlaybookWarning,
                        stacklevel=4,
                    )
                    continue
                out.append(self.tiers[item - 1])
            elif isinstance(item, str) and item in allowed:
                out.append(item)
            else:
                numbers = " or a tier number" if dim == "tier" else ""
                raise self.error(
                    index,
                    rule_id,
                    dim,
                    f"unknown {dim} {item!r}; expected one of {', '.join(allowed)}{numbers}",
                )
        return tuple(dict.fromkeys(out))

    def rule(self, index: int, item: Any) -> Rule:
        if not isinstance(item, dict):
            raise self.error(index, None, None, "expected a table of keys")
        rule_id = item.get("id")
        if not isinstance(rule_id, str) or not _ID.fullmatch(rule_id):
            raise self.error(
                index,
                None,
                "id",
                f"every rule needs an id of letters, digits, '_', '-' or '.', got {rule_id!r}",
            )
        extra = sorted(set(item) - _KEYS)
        if extra:
            raise self.error(
                index,
                rule_id,
                extra[0],
                f"unknown key {extra[0]!r}; expected {', '.join(sorted(_KEYS))}",
            )
        outcomes: dict[str, str] = {}
        for key in _OUTCOMES:
            value = item.get(key)
            if value is None:
                raise self.error(index, rule_id, key, f"no {key.replace('_', ' ')} given")
            if key == "service_level":
                ok = value in SERVICE_LEVELS
                expected = f"one of {', '.join(SERVICE_LEVELS)}"
            else:
                ok = isinstance(value, str) and bool(_WORD.fullmatch(value))
                expected = "a word of lower-case letters, digits and '_'"
            if not ok:
                raise self.error(index, rule_id, key, f"expected {expected}, got {value!r}")
            outcomes[key] = value
        description = item.get("description", "")
        if not isinstance(description, str):
            raise self.error(index, rule_id, "description", f"expected text, got {description!r}")
        conditions: dict[str, tuple[str, ...]] = {}
        for dim in DIMENSIONS:
            if dim in item:
                values = self.values(index, rule_id, dim, item[dim])
                if values is not None:
                    conditions[dim] = values
        return Rule(
            id=rule_id,
            description=" ".join(description.split()),
            conditions=conditions,
            **outcomes,
        )

    def playbook(self, data: dict[str, Any]) -> tuple[Rule, ...]:
        unknown = sorted(set(data) - {"rule"})
        if unknown:
            raise ConfigError(
                f"unknown key {unknown[0]!r}; a playbook holds only [[rule]] tables",
                path=self.source,
                key=unknown[0],
            )
        items = data.get("rule")
        if not isinstance(items, list) or not items:
            raise ConfigError(
                "no rules: expected one [[rule]] table per rule", path=self.source, key="rule"
            )
        rules = tuple(self.rule(i, item) for i, item in enumerate(items, start=1))
        seen: dict[str, int] = {}
        for index, rule in enumerate(rules, start=1):
            if rule.id in seen:
                raise self.error(
                    index, rule.id, "id", f"the id is already used by rule {seen[rule.id]}"
                )
            seen[rule.id] = index
        return rules


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def load_playbook(
    path: str | Path | None = None, *, tiers: Sequence[str] | None = None
) -> Playbook:
    """Load and validate a playbook.

    Parameters
    ----------
    path
        A TOML file of ``[[rule]]`` tables (see ``default_playbook.toml`` in this
        package for the format); ``None`` loads the built-in playbook.
        :func:`playbook_for` resolves the configured file.
    tiers
        Tier names, best first (default: :class:`~cvm.config.TierSettings` names).
        Rules may name tiers by these names or by number (1 = best).

    Returns
    -------
    Playbook
        Rules that cover every segment, with their overlaps and shadowed rules.

    Raises
    ------
    ConfigError
        If the file cannot be read or parsed; a rule is malformed (missing id, action,
        service level or channel, an unknown key or value, a repeated id), naming the
        file, the rule and its line; or some segments are matched by no rule (the
        message lists them as patterns).

    Warns
    -----
    PlaybookWarning
        For each rule that decides no segment, and each tier number beyond the tiers.
    """
    tier_names = tuple(tiers) if tiers is not None else tuple(TierSettings().names)
    if not tier_names or len(set(tier_names)) != len(tier_names):
        raise ConfigError(f"the tiers must be distinct names, got {list(tier_names)}")
    if path is None:
        text = importlib.resources.files("cvm.decisions").joinpath(_BUILTIN).read_text("utf-8")
        source = _BUILTIN
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError("playbook file not found", path=source) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read playbook file: {exc}", path=source) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=source) from exc
    rules = _Reader(source, text, tier_names).playbook(data)
    check = coverage(rules, _dimensions(tier_names))
    if check.gaps:
        shown = "; ".join(check.gaps[:_SHOWN])
        more = f"; … ({len(check.gaps)} patterns)" if len(check.gaps) > _SHOWN else ""
        raise ConfigError(
            f"the rules must cover every segment, but {check.gap_segments} of "
            f"{check.segments} segments match no rule: {shown}{more}. Add rules for them, "
            "or end with a rule without conditions (it matches every segment)",
            path=source,
        )
    for rule_id in check.shadowed:
        rule = next(r for r in rules if r.id == rule_id)
        covering = [o.earlier for o in check.overlaps if o.rule == rule_id]
        reason = (
            f"every segment it matches is decided by earlier rules ({', '.join(covering)})"
            if covering
            else "it matches no segment"
        )
        warnings.warn(
            f"{source}: rule {rule.id!r} never applies: {reason}",
            PlaybookWarning,
            stacklevel=2,
        )
    return Playbook(rules=rules, tiers=tier_names, source=source, check=check)


def playbook_for(settings: Settings, *, tiers: Sequence[str] | None = None) -> Playbook:
    """Load the playbook ``settings`` name (relative to the config file's folder).

    ``tiers`` defaults to the settings' tier names.
    """
    base = settings.source.parent if settings.source is not None else None
    return load_playbook(
        settings.decisions.playbook_path(base),
        tiers=tiers if tiers is not None else settings.segments.tiers.names,
    )


# -- assigning -------------------------------------------------------------------------
_REQUIRED: Final[tuple[str, ...]] = (
    "customer_id",
    "tier_name",
    "lifecycle_stage",
    "p_alive",
    "nps_category",
    "occasions",
    "potential_value",
)


def potential_threshold(snapshot: Table, quantile: float) -> float | None:
    """Return the ``quantile`` of the customers' potential values (``None``: none known)."""
    value = snapshot.potential_value.cast("float64").quantile(quantile).execute()
    if value is None:
        return None
    number = float(value)
    return number if np.isfinite(number) else None


def _tests(t: Table, at_risk: float, high_potential: float | None) -> dict[str, dict[str, Any]]:
    """Per dimension and value, the test on the snapshot's own columns.

    Rules are compiled to these rather than to the band columns, so that the SQL
    states each band's test where it is used instead of repeating a CASE per use.
    """
    p_alive = t.p_alive.cast("float64")
    value = t.potential_value.cast("float64")
    occasions = t.occasions.fill_null(0)
    nps = t.nps_category.cast("string")
    false, true = ibis.literal(False), ibis.literal(True)
    return {
        "risk": {
            "at_risk": p_alive < at_risk,
            "stable": p_alive >= at_risk,
            "unknown": p_alive.isnull(),
        },
        "satisfaction": {
            **{c: nps == c for c in NPS_CATEGORIES},
            "unknown": nps.isnull() | ~nps.isin(NPS_CATEGORIES),
        },
        "buyer": {"one_time": occasions <= 1, "repeat": occasions > 1},
        "potential": {
            "high": false if high_potential is None else value >= high_potential,
            "low": false if high_potential is None else value < high_potential,
            "unknown": true if high_potential is None else value.isnull(),
        },
    }


def _condition(t: Table, rule: Rule, tests: dict[str, dict[str, Any]], dims: Any) -> Any:
    """Return the rule's test: for each dimension it names, one of its values."""
    result: Any = ibis.literal(True)
    for dim, values in rule.conditions.items():
        if len(values) == len(dims[dim]):
            continue
        if dim in ("tier", "stage"):
            column = t.tier_name if dim == "tier" else t.lifecycle_stage
            test = column == values[0] if len(values) == 1 else column.isin(values)
        else:
            test = tests[dim][values[0]]
            for value in values[1:]:
                test = test | tests[dim][value]
        result = result & test
    return result


def assign_actions(
    snapshot: Table,
    playbook: Playbook,
    settings: DecisionSettings | None = None,
    *,
    high_potential: float | None = None,
) -> Table:
    """Give every customer of a snapshot exactly one action, service level and channel.

    Parameters
    ----------
    snapshot
        One row per customer with ``customer_id``, ``tier_name``, ``lifecycle_stage``,
        ``p_alive``, ``nps_category``, ``occasions`` and ``potential_value`` — the
        customer snapshot of one run. Read twice (the potential quantile, the check).
    playbook
        The rules (:func:`load_playbook`, :func:`playbook_for`).
    settings
        The risk and potential bands' settings; defaults when ``None``.
    high_potential
        The potential value from which potential is ``high``; default: the
        ``high_potential_quantile`` of the snapshot's potential values.

    Returns
    -------
    Table
        ``snapshot`` plus the segment's bands ``risk``, ``satisfaction``, ``buyer``
        and ``potential``, ``segment`` (the six dimensions as text), and ``action``,
        ``service_level``, ``channel`` and ``rule`` (the id of the rule that decided).

    Raises
    ------
    SchemaError
        If a needed column is missing.
    DataError
        If customers have a tier or lifecycle stage outside the playbook's (e.g. a run
        cut with other tier names), naming them.
    """
    settings = settings or DecisionSettings()
    missing = [c for c in _REQUIRED if c not in snapshot.columns]
    if missing:
        raise SchemaError(
            f"the playbook needs the column(s) {', '.join(map(repr, missing))}",
            column=missing[0],
        )
    t = snapshot
    outside = t.filter(
        t.tier_name.isnull()
        | ~t.tier_name.isin(playbook.tiers)
        | t.lifecycle_stage.isnull()
        | ~t.lifecycle_stage.isin(LIFECYCLE_STAGES)
    )
    examples = (
        outside.group_by("tier_name", "lifecycle_stage")
        .aggregate(customers=outside.count())
        .order_by(ibis.desc("customers"))
        .limit(_SHOWN)
        .to_pyarrow()
        .to_pylist()
    )
    if examples:
        shown = "; ".join(
            f"tier {e['tier_name']!r}, stage {e['lifecycle_stage']!r}: {e['customers']}"
            for e in examples
        )
        raise DataError(
            f"customers fall outside the playbook's segments ({shown}); the playbook "
            f"knows the tiers {', '.join(playbook.tiers)} and the stages "
            f"{', '.join(LIFECYCLE_STAGES)}"
        )
    if high_potential is None:
        high_potential = potential_threshold(t, settings.high_potential_quantile)
    p_alive = t.p_alive.cast("float64")
    potential_value = t.potential_value.cast("float64")
    if high_potential is None:
        potential = ibis.literal("unknown")
    else:
        potential = ibis.cases(
            (potential_value.isnull(), "unknown"),
            (potential_value >= high_potential, "high"),
            else_="low",
        )
    nps = t.nps_category.cast("string")
    bands = {
        "risk": ibis.cases(
            (p_alive.isnull(), "unknown"),
            (p_alive < settings.at_risk_p_alive, "at_risk"),
            else_="stable",
        ),
        "satisfaction": nps.isin(NPS_CATEGORIES).ifelse(nps, "unknown").fill_null("unknown"),
        "buyer": (t.occasions.fill_null(0) <= 1).ifelse("one_time", "repeat"),
        "potential": potential,
    }
    segment = t.tier_name.cast("string") + " · " + t.lifecycle_stage
    for name in ("risk", "satisfaction", "buyer"):
        segment = segment + " · " + bands[name]
    segment = segment + " · potential " + bands["potential"]
    tests = _tests(t, settings.at_risk_p_alive, high_potential)
    dims = playbook.dimensions()
    deciding = [
        (i, rule) for i, rule in enumerate(playbook.rules) if playbook.check.decides[rule.id]
    ]
    number = ibis.cases(*((_condition(t, rule, tests, dims), i) for i, rule in deciding))
    # the outcomes come from a small table of the rules, joined on the rule's number, so
    # that the CASE over the rules is stated once
    outcomes = ibis.memtable(
        {
            "_cvm_rule": [i for i, _ in deciding],
            "action": [r.action for _, r in deciding],
            "service_level": [r.service_level for _, r in deciding],
            "channel": [r.channel for _, r in deciding],
            "rule": [r.id for _, r in deciding],
        },
        schema={
            "_cvm_rule": "int64",
            "action": "string",
            "service_level": "string",
            "channel": "string",
            "rule": "string",
        },
    )
    kept = [c for c in t.columns if c not in (*bands, "segment", *_OUTCOMES, "rule")]
    decided = t.select(*kept, **bands, segment=segment, _cvm_rule=number.cast("int64"))
    joined = decided.left_join(outcomes, "_cvm_rule")
    return joined.select(*kept, *bands, "segment", *_OUTCOMES, "rule")
