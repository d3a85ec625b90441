"""The playbook: rules as data, their validation, and one action per customer."""

from __future__ import annotations

import itertools
import re
import warnings
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pytest

from cvm.config import DecisionSettings, settings_from_dict
from cvm.decisions.actions import action_mix
from cvm.decisions.playbook import (
    DIMENSIONS,
    SERVICE_LEVELS,
    Playbook,
    PlaybookWarning,
    assign_actions,
    load_playbook,
    playbook_for,
    potential_threshold,
)
from cvm.errors import ConfigError, DataError, SchemaError
from cvm.segments.lifecycle import LIFECYCLE_STAGES

TIERS = ("platinum", "gold", "iron", "lead")

#: Snapshot values that put a customer in each band (with high_potential = 500).
P_ALIVE = {"at_risk": 0.3, "stable": 0.95, "unknown": None}
NPS = {"promoter": "promoter", "passive": "passive", "detractor": "detractor", "unknown": None}
OCCASIONS = {"one_time": 1, "repeat": 4}
POTENTIAL = {"high": 900.0, "low": 40.0, "unknown": None}


def write(tmp_path: Path, text: str, name: str = "playbook.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def every_segment(tiers: tuple[str, ...] = TIERS) -> pd.DataFrame:
    """One customer per segment: every combination of the six dimensions."""
    rows = []
    combos = itertools.product(tiers, LIFECYCLE_STAGES, P_ALIVE, NPS, OCCASIONS, POTENTIAL)
    for i, (tier, stage, risk, nps, buyer, potential) in enumerate(combos):
        rows.append(
            {
                "customer_id": f"c{i:05d}",
                "tier": tiers.index(tier) + 1,
                "tier_name": tier,
                "lifecycle_stage": stage,
                "p_alive": P_ALIVE[risk],
                "nps_category": NPS[nps],
                "occasions": OCCASIONS[buyer],
                "potential_value": POTENTIAL[potential],
                "realized_value": 100.0,
                "total_value": 100.0 + (POTENTIAL[potential] or 0.0),
                "expected": {
                    "tier": tier,
                    "stage": stage,
                    "risk": risk,
                    "satisfaction": nps,
                    "buyer": buyer,
                    "potential": potential,
                },
            }
        )
    return pd.DataFrame(rows)


SCHEMA = {
    "customer_id": "string",
    "tier": "int64",
    "tier_name": "string",
    "lifecycle_stage": "string",
    "p_alive": "float64",
    "nps_category": "string",
    "occasions": "int64",
    "potential_value": "float64",
    "realized_value": "float64",
    "total_value": "float64",
}


def table(frame: pd.DataFrame) -> Any:
    """The frame as a table of an in-memory DuckDB (the snapshot's columns only)."""
    columns = [c for c in SCHEMA if c in frame.columns]
    schema = ibis.schema({c: SCHEMA[c] for c in columns})
    return ibis.duckdb.connect().create_table(
        "snapshot", ibis.memtable(frame[columns], schema=schema)
    )


# -- the built-in playbook -------------------------------------------------------------
def test_default_playbook_covers_every_segment_once() -> None:
    playbook = load_playbook()
    check = playbook.check
    assert playbook.source == "default_playbook.toml"
    assert check.segments == 4 * 5 * 3 * 4 * 2 * 3 == 1440
    assert check.gaps == () and check.gap_segments == 0
    assert check.shadowed == ()
    assert sum(check.decides.values()) == check.segments
    assert all(n > 0 for n in check.decides.values())
    assert {r.service_level for r in playbook.rules} <= set(SERVICE_LEVELS)
    # the last rule is the catch-all: low-value customers through a low-cost channel
    last = playbook.rules[-1]
    assert last.conditions == {} and last.action == "serve_low_cost"
    assert (last.service_level, last.channel) == ("self_service", "digital")


def test_default_playbook_follows_cvm_practice() -> None:
    pb = load_playbook()

    def decide(**segment: str) -> tuple[str, str, str]:
        base = {
            "tier": "platinum",
            "stage": "maturity",
            "risk": "stable",
            "satisfaction": "promoter",
            "buyer": "repeat",
            "potential": "high",
        }
        rule = pb.rule_for(**(base | segment))
        return rule.action, rule.service_level, rule.channel

    # retain high-value customers before they leave
    assert decide(stage="decline")[:2] == ("retain", "premium")
    assert decide(risk="at_risk")[:2] == ("retain", "premium")
    assert decide(tier="gold", stage="decline")[0] == "retain"
    # a high-value detractor is a relationship to recover
    assert decide(satisfaction="detractor")[0] == "retain"
    # develop growth, cross-sell and up-sell in maturity
    assert decide(stage="growth")[0] == "develop"
    assert decide()[0] == "cross_sell"
    assert decide(tier="gold")[0] == "up_sell"
    assert decide(tier="lead", stage="growth", potential="high")[0] == "develop"
    # win back valuable customers who left, not lost low-value ones
    assert decide(stage="departure")[0] == "win_back"
    assert decide(tier="lead", stage="departure")[0] == "serve_low_cost"
    # low-value customers through low-cost channels
    assert decide(tier="lead", potential="low") == ("serve_low_cost", "self_service", "digital")
    # premium service goes to the top tier only
    for tier, stage, risk, nps, buyer, potential in itertools.product(
        TIERS[1:], *(pb.dimensions()[d] for d in DIMENSIONS[1:])
    ):
        rule = pb.rule_for(
            tier=tier, stage=stage, risk=risk, satisfaction=nps, buyer=buyer, potential=potential
        )
        assert rule.service_level != "premium", (tier, rule.id)


def test_one_time_large_buyer_does_not_get_premium_service() -> None:
    """One large purchase with low potential: no premium service, whatever the tier."""
    pb = load_playbook()
    for tier, stage, risk, nps in itertools.product(
        ("platinum", "gold"), *(pb.dimensions()[d] for d in ("stage", "risk", "satisfaction"))
    ):
        for potential in ("low", "unknown"):
            rule = pb.rule_for(
                tier=tier,
                stage=stage,
                risk=risk,
                satisfaction=nps,
                buyer="one_time",
                potential=potential,
            )
            assert rule.service_level != "premium", (tier, stage, risk, nps, rule.id)
    # in the data: two platinum customers of equal value, one with a single purchase
    frame = pd.DataFrame(
        {
            "customer_id": ["one-big-order", "regular", "one-order-high-potential"],
            "tier": [1, 1, 1],
            "tier_name": ["platinum"] * 3,
            "lifecycle_stage": ["acquisition", "acquisition", "acquisition"],
            "p_alive": [1.0, 0.98, 1.0],
            "nps_category": [None, None, None],
            "occasions": [1, 6, 1],
            "potential_value": [300.0, 300.0, 5000.0],
            "realized_value": [20000.0, 20000.0, 20000.0],
            "total_value": [20300.0, 20300.0, 25000.0],
        }
    )
    got = (
        assign_actions(table(frame), pb, high_potential=1000.0)
        .select("customer_id", "buyer", "potential", "action", "service_level", "rule")
        .to_pandas()
        .set_index("customer_id")
    )
    big = got.loc["one-big-order"]
    assert (big.buyer, big.potential) == ("one_time", "low")
    assert big.rule == "one-time-large-buyer"
    assert (big.action, big.service_level) == ("develop", "standard")
    assert got.loc["regular", "service_level"] == "premium"
    # a first purchase with high potential is a customer to develop personally
    assert got.loc["one-order-high-potential", "service_level"] == "premium"


# -- assigning -------------------------------------------------------------------------
def test_every_customer_gets_exactly_one_action_the_first_matching_rule() -> None:
    """SQL assignment agrees with the rules' Python semantics on every segment."""
    pb = load_playbook()
    frame = every_segment()
    assigned = assign_actions(table(frame), pb, high_potential=500.0).to_pandas()
    assert len(assigned) == len(frame) == pb.check.segments
    assert assigned["customer_id"].is_unique
    for column in ("action", "service_level", "channel", "rule"):
        assert assigned[column].notna().all(), column
    assigned = assigned.set_index("customer_id").loc[frame["customer_id"]]
    expected = [pb.rule_for(**segment) for segment in frame["expected"]]
    assert list(assigned["rule"]) == [r.id for r in expected]
    assert list(assigned["action"]) == [r.action for r in expected]
    assert list(assigned["service_level"]) == [r.service_level for r in expected]
    assert list(assigned["channel"]) == [r.channel for r in expected]
    for dim, column in (("risk", "risk"), ("satisfaction", "satisfaction")):
        assert list(assigned[column]) == [s[dim] for s in frame["expected"]]
    assert assigned["segment"].iloc[0] == (
        "platinum · acquisition · at_risk · promoter · one_time · potential high"
    )
    mix = action_mix(assign_actions(table(frame), pb, high_potential=500.0), pb)
    assert sum(r["customers"] for r in mix["actions"]) == len(frame)
    assert [r["rule"] for r in mix["rules"]] == [r.id for r in pb.rules]
    assert {r["rule"]: r["customers"] for r in mix["rules"]} == pb.check.decides
    assert [r["service_level"] for r in mix["service_levels"]] == list(SERVICE_LEVELS)


def test_bands_from_thresholds() -> None:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "tier_name": ["lead"] * 5,
            "lifecycle_stage": ["maturity"] * 5,
            "p_alive": [0.69, 0.7, None, 0.2, 1.0],
            "nps_category": ["passive", None, "detractor", "promoter", None],
            "occasions": [0, 1, 2, 7, 1],
            "potential_value": [10.0, 20.0, 30.0, 40.0, None],
        }
    )
    snapshot = table(frame)
    # the 0.8 quantile of 10, 20, 30, 40 (interpolated), NULL left out
    assert potential_threshold(snapshot, 0.8) == pytest.approx(34.0)
    got = (
        assign_actions(snapshot, load_playbook())
        .to_pandas()
        .set_index("customer_id")[["risk", "satisfaction", "buyer", "potential"]]
    )
    assert list(got["risk"]) == ["at_risk", "stable", "unknown", "at_risk", "stable"]
    assert list(got["satisfaction"]) == ["passive", "unknown", "detractor", "promoter", "unknown"]
    assert list(got["buyer"]) == ["one_time", "one_time", "repeat", "repeat", "one_time"]
    assert list(got["potential"]) == ["low", "low", "low", "high", "unknown"]
    strict = DecisionSettings(at_risk_p_alive=0.1, high_potential_quantile=0.2)
    got = assign_actions(snapshot, load_playbook(), strict).to_pandas()
    assert set(got["risk"]) == {"stable", "unknown"}
    assert list(got.sort_values("customer_id")["potential"]) == [
        "low",
        "high",
        "high",
        "high",
        "unknown",
    ]


def test_customers_outside_the_playbooks_tiers_are_refused() -> None:
    frame = every_segment().drop(columns="expected").head(3)
    frame.loc[1, "tier_name"] = "diamond"
    with pytest.raises(DataError, match="tier 'diamond', stage 'acquisition': 1"):
        assign_actions(table(frame), load_playbook())
    with pytest.raises(SchemaError, match="'nps_category'"):
        assign_actions(table(frame.drop(columns="nps_category")), load_playbook())


# -- the format and its validation -----------------------------------------------------
RULES = """
[[rule]]
id = "keep-the-best"
tier = 1
stage = ["growth", "maturity"]
action = "retain"
service_level = "premium"
channel = "account_manager"

[[rule]]
id = "everyone-else"
tier = "*"
action = "serve_low_cost"
service_level = "self_service"
channel = "digital"
"""


def test_a_user_playbook_overlaps_are_reported_not_refused(tmp_path: Path) -> None:
    pb = load_playbook(write(tmp_path, RULES), tiers=["gold", "silver"])
    assert pb.tiers == ("gold", "silver")
    assert pb.rules[0].conditions == {"tier": ("gold",), "stage": ("growth", "maturity")}
    check = pb.check
    assert check.segments == 2 * 5 * 3 * 4 * 2 * 3
    assert check.decides == {"keep-the-best": 144, "everyone-else": 576}
    (overlap,) = check.overlaps
    assert (overlap.rule, overlap.earlier, overlap.segments) == (
        "everyone-else",
        "keep-the-best",
        144,
    )
    assert overlap.patterns == ("tier=gold, stage=growth|maturity",)


def test_gaps_are_an_error_naming_the_segments(tmp_path: Path) -> None:
    text = RULES.replace(
        'tier = "*"\n', 'tier = 2\nstage = ["acquisition", "growth", "maturity"]\n'
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_playbook(path, tiers=["gold", "silver"])
    message = str(info.value)
    assert message.startswith(f"{path}: the rules must cover every segment")
    assert "360 of 720 segments match no rule" in message
    # merged into patterns: both tiers in decline or departure, gold also in acquisition
    assert "match no rule: tier=gold, stage=acquisition; stage=decline|departure." in message


def test_shadowed_rules_are_warned_about(tmp_path: Path) -> None:
    text = RULES + (
        '\n[[rule]]\nid = "too-late"\nstage = "decline"\naction = "retain"\n'
        'service_level = "basic"\nchannel = "email"\n'
    )
    expected = r"rule 'too-late' never applies: every segment it matches is decided by earlier"
    with pytest.warns(PlaybookWarning, match=expected + r" rules \(everyone-else\)"):
        pb = load_playbook(write(tmp_path, text))
    assert pb.check.shadowed == ("too-late",)
    assert pb.check.decides["too-late"] == 0
    # a tier number beyond the tiers matches nothing: warned twice (number, shadowed)
    text = RULES.replace("tier = 1\n", "tier = 5\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pb = load_playbook(write(tmp_path, text))
    messages = [str(w.message) for w in caught if issubclass(w.category, PlaybookWarning)]
    assert any("names tier 5, but there are only 4 tiers" in m for m in messages)
    assert any("'keep-the-best' never applies: it matches no segment" in m for m in messages)


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (
            ('stage = ["growth", "maturity"]', 'stage = ["growth", "adolescence"]'),
            [
                "rule 'keep-the-best' (1st rule)",
                "line 1, key 'rule[1].stage'",
                "unknown stage 'adolescence'; expected one of acquisition, growth",
            ],
        ),
        (
            ('service_level = "self_service"', 'service_level = "gold-plated"'),
            [
                "rule 'everyone-else' (2nd rule)",
                "line 9, key 'rule[2].service_level'",
                "expected one of premium, standard, basic, self_service, got 'gold-plated'",
            ],
        ),
        (
            ('channel = "digital"\n', 'channel = "digital"\ncolour = "red"\n'),
            ["rule 'everyone-else'", "key 'rule[2].colour'", "unknown key 'colour'"],
        ),
        (
            ('action = "retain"\n', ""),
            ["rule 'keep-the-best'", "key 'rule[1].action'", "no action given"],
        ),
        (
            ('id = "everyone-else"', 'id = "keep-the-best"'),
            ["rule 'keep-the-best' (2nd rule)", "the id is already used by rule 1"],
        ),
        (
            ('id = "everyone-else"\n', ""),
            ["2nd rule", "key 'rule[2].id'", "every rule needs an id"],
        ),
        (
            ("tier = 1\n", "tier = 0\n"),
            ["rule 'keep-the-best'", "tier numbers start at 1"],
        ),
        (
            ('tier = "*"', "tier = []"),
            ["rule 'everyone-else'", 'an empty list matches nothing; use "*"'],
        ),
        (
            ('tier = "*"', 'tier = "diamond"'),
            ["unknown tier 'diamond'; expected one of platinum, gold, iron, lead or a tier number"],
        ),
        (('[[rule]]\nid = "keep', '[rules]\nid = "keep'), ["unknown key 'rules'"]),
        (('[[rule]]\nid = "keep', '[[rule]\nid = "keep'), ["not valid TOML"]),
    ],
)
def test_a_bad_file_is_an_error_naming_the_file_and_rule(
    tmp_path: Path, edit: tuple[str, str], fragments: list[str]
) -> None:
    old, new = edit
    assert old in RULES
    path = write(tmp_path, RULES.replace(old, new, 1).lstrip("\n"))
    with pytest.raises(ConfigError) as info:
        load_playbook(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_file_and_empty_playbook(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=re.escape(f"{tmp_path / 'nope.toml'}: playbook file not found")
    ):
        load_playbook(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="no rules: expected one"):
        load_playbook(write(tmp_path, "# nothing here\n"))


def test_settings_name_a_playbook_relative_to_the_config_file(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    write(folder, RULES, "rules.toml")
    config = folder / "cvm.toml"
    config.write_text(
        '[decisions]\nplaybook = "rules.toml"\n[segments.tiers]\n'
        'cutoffs = [0.8]\nnames = ["top", "rest"]\n',
        encoding="utf-8",
    )
    from cvm.config import load_settings

    settings = load_settings(config)
    pb = playbook_for(settings)
    assert pb.source == str(folder / "rules.toml")
    assert pb.tiers == ("top", "rest")
    assert isinstance(playbook_for(settings_from_dict({})), Playbook)
    with pytest.raises(ConfigError, match=r"rules-missing\.toml: playbook file not found"):
        playbook_for(
            settings.model_copy(
                update={
                    "decisions": settings.decisions.model_copy(
                        update={"playbook": "rules-missing.toml"}
                    )
                }
            )
        )


def test_decision_settings_are_validated() -> None:
    settings = settings_from_dict({"decisions": {"response_rates": {"retain": 0.3, "vip": 0.5}}})
    rates = settings.decisions.response_rates
    assert rates["retain"] == 0.3 and rates["vip"] == 0.5
    assert rates["develop"] == DecisionSettings().response_rates["develop"]  # default kept
    with pytest.raises(ConfigError, match=r"decisions\.response_rates"):
        settings_from_dict({"decisions": {"response_rates": {"retain": 1.5}}})
    with pytest.raises(ConfigError, match=r"decisions\.channel_costs"):
        settings_from_dict({"decisions": {"channel_costs": {"phone": -1.0}}})
    with pytest.raises(ConfigError, match=r"decisions\.value_at_stake\.retain"):
        settings_from_dict({"decisions": {"value_at_stake": {"retain": "revenue"}}})
    with pytest.raises(ConfigError, match=r"decisions\.control_share"):
        settings_from_dict({"decisions": {"control_share": 1.0}})


def test_rule_for_checks_its_segment() -> None:
    with pytest.raises(ValueError, match="stage must be one of"):
        load_playbook().rule_for(
            tier="gold",
            stage="teen",
            risk="stable",
            satisfaction="unknown",
            buyer="repeat",
            potential="low",
        )


def test_random_snapshots_match_the_python_semantics() -> None:
    """Random customers (with NULLs): SQL and ``rule_for`` agree for a user playbook too."""
    rng = np.random.default_rng(7)
    n = 500
    frame = every_segment().drop(columns="expected").sample(n, replace=True, random_state=3)
    frame["customer_id"] = [f"r{i}" for i in range(n)]
    frame["p_alive"] = np.where(rng.random(n) < 0.1, np.nan, rng.random(n))
    frame["potential_value"] = np.where(rng.random(n) < 0.1, np.nan, rng.gamma(1.0, 300.0, n))
    pb = load_playbook()
    got = assign_actions(table(frame), pb, DecisionSettings(at_risk_p_alive=0.4)).to_pandas()
    threshold = float(np.nanquantile(frame["potential_value"], 0.8))
    for row in got.itertuples():
        risk = "unknown" if pd.isna(row.p_alive) else "at_risk" if row.p_alive < 0.4 else "stable"
        potential = (
            "unknown"
            if pd.isna(row.potential_value)
            else "high"
            if row.potential_value >= threshold
            else "low"
        )
        expected = pb.rule_for(
            tier=row.tier_name,
            stage=row.lifecycle_stage,
            risk=risk,
            satisfaction=row.nps_category if isinstance(row.nps_category, str) else "unknown",
            buyer="one_time" if row.occasions <= 1 else "repeat",
            potential=potential,
        )
        assert row.rule == expected.id, row.customer_id
